//! End to end: a base model registered headers-only, then an adapter that references it by
//! `--base`: the base's identities recorded, checks against the base, mismatches refused.

mod support;

use adapter_testkit::stacks;
use support::{Env, examples, lora};

#[test]
fn headers_only_base_then_adapter_with_base_reference() {
    for stack in stacks() {
        let env = Env::new(&stack);
        let base = examples().join("tiny-llama");
        let m = env.ctl_json(
            &[
                "push",
                base.to_str().unwrap(),
                "--name",
                "acme/tiny-llama",
                "--version",
                "1.0.0",
                "--headers-only",
            ],
            0,
        );
        // Only config + index and the two headers went up, never the weights.
        let weights: u64 = [
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors",
        ]
        .iter()
        .map(|f| std::fs::metadata(base.join(f)).unwrap().len())
        .sum();
        assert!(
            m["uploaded_bytes"].as_u64().unwrap() < weights / 10,
            "{stack}: {m}"
        );
        let show = env.ctl_json(&["show", "acme/tiny-llama@1.0.0"], 0);
        assert_eq!(
            show["manifest"]["metadata"]["headers_only"], true,
            "{stack}"
        );
        assert_eq!(
            show["manifest"]["metadata"]["weights"]
                .as_array()
                .unwrap()
                .len(),
            2,
            "{stack}"
        );
        // The registry's identity of the base equals what inspect computes locally.
        let local = support::json_of(&env.ctl(&["inspect", base.to_str().unwrap(), "--json"]));
        assert_eq!(
            show["summary"]["content_digest"], local["content_digest"],
            "{stack}: {show}"
        );
        assert_eq!(
            show["summary"]["shape_fingerprint"], local["shape_fingerprint"],
            "{stack}"
        );

        let a = env.ctl_json(
            &[
                "push",
                &lora(),
                "--name",
                "acme/bot",
                "--version",
                "1.0.0",
                "--base",
                "acme/tiny-llama@^1",
            ],
            0,
        );
        assert!(a["warnings"].as_array().unwrap().is_empty(), "{stack}: {a}");
        let show = env.ctl_json(&["show", "acme/bot@1.0.0"], 0);
        let declared = &show["manifest"]["metadata"]["base"];
        assert_eq!(
            declared["reference"], "acme/tiny-llama@1.0.0",
            "{stack}: {declared}"
        );
        assert_eq!(
            declared["content_digest"], local["content_digest"],
            "{stack}"
        );
        assert_eq!(
            declared["shape_fingerprint"], local["shape_fingerprint"],
            "{stack}"
        );
        assert_eq!(declared["name_or_path"], "example/tiny-llama", "{stack}");

        // --base-dir computes the same identity locally.
        let b = env.ctl_json(
            &[
                "push",
                &lora(),
                "--name",
                "acme/bot2",
                "--version",
                "1.0.0",
                "--base-dir",
                base.to_str().unwrap(),
            ],
            0,
        );
        let show2 = env.ctl_json(&["show", "acme/bot2@1.0.0"], 0);
        let declared2 = &show2["manifest"]["metadata"]["base"];
        assert_eq!(
            declared2["content_digest"], local["content_digest"],
            "{stack}: {b}"
        );
        assert_eq!(
            declared2["shape_fingerprint"], local["shape_fingerprint"],
            "{stack}"
        );

        // Pulling the headers-only model gives its small files and says the weights are absent.
        let out = env.path("base");
        let p = env.ctl_json(&["pull", "acme/tiny-llama", "-o", out.to_str().unwrap()], 0);
        assert_eq!(p["kind"], "model", "{stack}");
        assert!(
            p["warnings"].to_string().contains("headers-only"),
            "{stack}: {p}"
        );
        assert!(
            out.join("config.json").is_file()
                && !out.join("model-00001-of-00002.safetensors").exists()
        );

        // An unknown base is not found (6); nothing is published.
        env.ctl_json(
            &[
                "push",
                &lora(),
                "--name",
                "acme/bot3",
                "--version",
                "1.0.0",
                "--base",
                "acme/nope",
            ],
            6,
        );
        env.ctl_json(&["show", "acme/bot3"], 6);
    }
}
