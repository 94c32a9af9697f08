//! End to end: the real server and the real `adapterctl`: `ls` with search filters and
//! sorts, `show` with lineage (base edge, adapters on a model, the chain).

mod support;

use adapter_testkit::stacks;
use serde_json::Value;
use support::{Env, examples};

fn names(v: &Value) -> Vec<String> {
    v["repositories"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .map(|r| {
            format!(
                "{}/{}",
                r["namespace"].as_str().unwrap(),
                r["name"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn ls_filters_and_show_lineage() {
    for stack in stacks() {
        let env = Env::new(&stack);
        let base = examples().join("tiny-llama").display().to_string();
        let lora = examples().join("tiny-llama-lora").display().to_string();
        env.ctl_json(
            &[
                "push",
                &base,
                "--name",
                "acme/tiny-llama",
                "--version",
                "1.0.0",
                "--headers-only",
            ],
            0,
        );
        env.ctl_json(
            &[
                "push",
                &lora,
                "--name",
                "acme/bot",
                "--version",
                "1.0.0",
                "--base",
                "acme/tiny-llama@^1",
            ],
            0,
        );
        env.ctl_json(
            &["push", &lora, "--name", "other/plain", "--version", "1.0.0"],
            0,
        );

        // Filters reach the server; the example adapter is rank 8 with a rank_pattern of 16.
        let v = env.ctl_json(&["ls", "--base", "acme/tiny-llama"], 0);
        assert_eq!(names(&v), ["acme/bot"], "{stack}: {v}");
        let m = &v["repositories"][0]["matched"];
        assert_eq!(m["version"], "1.0.0");
        assert_eq!(
            (
                m["facts"]["rank_min"].as_u64(),
                m["facts"]["rank_max"].as_u64()
            ),
            (Some(8), Some(16)),
            "{m}"
        );
        assert_eq!(
            names(&env.ctl_json(&["ls", "--target", "q_proj", "--target", "o_proj"], 0)),
            ["acme/bot", "other/plain"]
        );
        assert_eq!(
            names(&env.ctl_json(&["ls", "--rank-min", "9"], 0)),
            Vec::<String>::new()
        );
        assert_eq!(
            names(&env.ctl_json(&["ls", "--rank-max", "16", "--variant", "lora"], 0)),
            ["acme/bot", "other/plain"]
        );
        assert_eq!(
            names(&env.ctl_json(&["ls", "--variant", "dora"], 0)),
            Vec::<String>::new()
        );
        assert_eq!(
            names(&env.ctl_json(&["ls", "--kind", "adapter", "--sort", "-name"], 0)),
            ["other/plain", "acme/bot"]
        );
        assert_eq!(
            names(&env.ctl_json(&["ls", "--kind", "adapter", "--limit", "1"], 0)),
            ["acme/bot"]
        );
        assert_eq!(
            names(&env.ctl_json(&["ls", "other", "-q", "PLA"], 0)),
            ["other/plain"]
        );
        assert_eq!(
            names(&env.ctl_json(&["ls", "--kind", "model"], 0)),
            ["acme/tiny-llama"]
        );

        let text = env.ctl(&["ls", "--base", "acme/tiny-llama"]);
        let out = String::from_utf8_lossy(&text.stdout);
        assert!(
            out.contains("acme/bot")
                && out.contains("8-16")
                && out.contains("acme/tiny-llama@1.0.0"),
            "{stack}: {out}"
        );
        assert!(!out.contains("other/plain"), "{stack}: {out}");

        // Refused filters are usage errors (2), with the server's reason.
        let bad = env.ctl(&["--json", "ls", "--eval", "mmlu>=0.6"]);
        assert_eq!(bad.status.code(), Some(2), "{stack}");
        let e = support::json_of(&bad);
        assert!(
            e.to_string().contains("invalid_filter") || e.to_string().contains("eval"),
            "{e}"
        );
        assert_eq!(env.ctl(&["ls", "--sort", "size"]).status.code(), Some(2));
        assert_eq!(
            env.ctl(&["ls", "acme/bot", "--target", "q_proj"])
                .status
                .code(),
            Some(2)
        );

        // show: lineage both ways.
        let s = env.ctl_json(&["show", "acme/bot@1.0.0"], 0);
        let parent = &s["lineage"]["parents"][0];
        assert_eq!(
            (parent["relation"].as_str(), parent["name"].as_str()),
            (Some("base"), Some("tiny-llama")),
            "{stack}: {s}"
        );
        let s = env.ctl_json(&["show", "acme/tiny-llama@1.0.0"], 0);
        let children: Vec<&str> = s["lineage"]["children"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(children, ["bot"], "{stack}: {s}");
        let text = env.ctl(&["show", "acme/bot@1.0.0"]);
        let out = String::from_utf8_lossy(&text.stdout);
        assert!(
            out.contains("acme/bot@1.0.0 → acme/tiny-llama@1.0.0"),
            "{stack}: {out}"
        );
        let text = env.ctl(&["show", "acme/tiny-llama"]);
        let out = String::from_utf8_lossy(&text.stdout);
        assert!(
            out.contains("derived") && out.contains("acme/bot@1.0.0"),
            "{stack}: {out}"
        );
    }
}
