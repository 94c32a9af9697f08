//! End to end, on every available stack: the real `adapter-registry` (its in-process
//! workers) and the real `adapterctl`. `merge ADAPTER_REF --as NS/NAME@V --wait` makes a model
//! version whose files are byte-identical to `merge --local` of the same pair, whose lineage
//! names both inputs with the scales used, and which the adapter's lineage lists as a child.
//! Refusals: a taken output version, a headers-only base, a CUDA device on a CPU build, a
//! bad output reference, an adapter without a registered base.

mod support;

use serde_json::Value;
use support::{
    Env, examples, merge_examples_locally, model_files, pull_model_files, push_llama_and_bot,
};

fn dir(name: &str) -> String {
    examples().join(name).display().to_string()
}

#[test]
fn merge_job_equals_the_local_kernel_and_records_lineage() {
    for stack in adapter_testkit::stacks() {
        let env = Env::new(&stack);
        push_llama_and_bot(&env);

        // The reference: the same kernel, offline, 64 KiB shards so both outputs are sharded.
        let local = env.path("local");
        merge_examples_locally(&local, "65536");

        // The base is the one the adapter names; the job waits and prints its result.
        let result = env.ctl_json(
            &[
                "merge",
                "acme/bot@1.0.0",
                "--as",
                "acme/merged@1.0.0",
                "--shard-size",
                "65536",
                "--wait",
            ],
            0,
        );
        assert_eq!(result["output"], "acme/merged@1.0.0", "{stack}: {result}");
        assert!(
            result["tensors"]["merged"].as_u64().unwrap() > 0,
            "{result}"
        );

        let remote = pull_model_files(&env, "acme/merged@1.0.0", &env.path("pulled"));
        let local = model_files(&local);
        let names = |t: &[(String, Vec<u8>)]| t.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>();
        assert_eq!(names(&remote), names(&local), "{stack}");
        assert!(
            remote == local,
            "{stack}: the job's files differ from merge --local"
        );
        assert!(
            names(&remote).contains(&"model.safetensors.index.json".to_owned())
                && names(&remote)
                    .iter()
                    .filter(|n| n.ends_with(".safetensors"))
                    .count()
                    > 2,
            "{stack}: expected a sharded output: {:?}",
            names(&remote)
        );

        // Lineage: both inputs, with the recipe (scales, dtype, tool).
        let shown = env.ctl_json(&["show", "acme/merged@1.0.0", "--kind", "model"], 0);
        let parents = shown["lineage"]["parents"].as_array().unwrap();
        let find = |kind: &str| -> &Value {
            parents
                .iter()
                .find(|p| p["kind"] == kind)
                .unwrap_or_else(|| panic!("no {kind} parent: {shown}"))
        };
        assert_eq!(find("adapter")["reference"], "acme/bot@1.0.0");
        assert_eq!(find("model")["reference"], "acme/llama@1.0.0");
        assert_eq!(find("model")["relation"], "input");
        let recipe = &find("adapter")["recipe"];
        assert_eq!(recipe["kind"], "merge", "{recipe}");
        assert!(
            recipe["params"]["scales"]
                .as_array()
                .is_some_and(|s| !s.is_empty()),
            "{recipe}"
        );
        assert!(
            recipe["params"]["tool"]
                .as_str()
                .unwrap()
                .starts_with("adapter-registry "),
            "{recipe}"
        );
        let chain = shown["lineage"]["chain"].as_array().unwrap();
        assert_eq!(chain[1]["reference"], "acme/llama@1.0.0", "{shown}");
        // The adapter's catalogue entry links to the merged model.
        let adapter = env.ctl_json(&["show", "acme/bot@1.0.0"], 0);
        let children = adapter["lineage"]["children"].as_array().unwrap();
        assert!(
            children
                .iter()
                .any(|c| c["name"] == "merged" && c["kind"] == "model"),
            "{adapter}"
        );

        // Merge, then quantise the merged model: the GGUF's chain leads through the merged
        // model to the base.
        env.ctl_json(
            &[
                "quantise",
                "acme/merged@1.0.0",
                "--format",
                "q8_0",
                "--as",
                "acme/merged-gguf@1.0.0",
                "--wait",
            ],
            0,
        );
        let gguf = env.ctl_json(&["show", "acme/merged-gguf@1.0.0", "--kind", "model"], 0);
        let chain: Vec<&str> = gguf["lineage"]["chain"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|n| n["name"].as_str())
            .collect();
        assert_eq!(chain, ["merged-gguf", "merged", "llama"], "{stack}: {gguf}");

        // The same request again is the same job (its result), not a second merge.
        let again = env.ctl_json(
            &[
                "merge",
                "acme/bot@1.0.0",
                "--as",
                "acme/merged@1.0.0",
                "--shard-size",
                "65536",
                "--wait",
            ],
            0,
        );
        assert_eq!(again["manifest_digest"], result["manifest_digest"]);
        // Another request for the taken version is refused before any work: 409.
        let taken = env.ctl_json(&["merge", "acme/bot@1.0.0", "--as", "acme/merged@1.0.0"], 5);
        assert_eq!(taken["error"]["code"], "version_exists", "{taken}");
    }
}

#[test]
fn merge_job_refusals_change_nothing() {
    for stack in adapter_testkit::stacks() {
        let env = Env::new(&stack);
        push_llama_and_bot(&env);
        // A headers-only base has no weights to merge into: the job fails, no version.
        env.ctl_json(
            &[
                "push",
                &dir("tiny-llama"),
                "--name",
                "acme/llama-h",
                "--version",
                "1.0.0",
                "--headers-only",
            ],
            0,
        );
        let failed = env.ctl_json(
            &[
                "merge",
                "acme/bot@1.0.0",
                "--base",
                "acme/llama-h@1.0.0",
                "--as",
                "acme/m@1.0.0",
                "--wait",
            ],
            12,
        );
        let job = &failed["error"]["details"]["job"];
        assert!(
            job["error"].as_str().unwrap().contains("headers-only"),
            "{failed}"
        );
        assert_eq!(job["attempts"], 1, "a refusal is not retried: {failed}");
        let e = env.ctl_json(&["show", "acme/m@1.0.0", "--kind", "model"], 6);
        assert_eq!(e["error"]["code"], "repository_not_found", "{e}");

        for (args, code, what) in [
            (
                vec!["--as", "acme/m@1.0.0", "--device", "cuda:0"],
                "invalid_job",
                "no CUDA support",
            ),
            (vec!["--as", "acme/m@^1"], "invalid_job", "exact version"),
            (
                vec!["--as", "acme/m@1.0.0", "--base", "acme/nope@1"],
                "repository_not_found",
                "",
            ),
        ] {
            let mut all = vec!["merge", "acme/bot@1.0.0"];
            all.extend(args);
            let out = env.ctl(&[all.as_slice(), &["--json"]].concat());
            let e = support::json_of(&out);
            assert_ne!(out.status.code(), Some(0), "{all:?}");
            assert_eq!(e["error"]["code"], code, "{all:?}: {e}");
            assert!(
                e["error"]["message"].as_str().unwrap().contains(what),
                "{e}"
            );
        }

        // An adapter pushed without --base names no registered base: say so.
        env.ctl_json(
            &[
                "push",
                &dir("tiny-llama-lora"),
                "--name",
                "acme/loose",
                "--version",
                "1.0.0",
            ],
            0,
        );
        let e = env.ctl_json(&["merge", "acme/loose@1.0.0", "--as", "acme/m@1.0.0"], 4);
        assert_eq!(e["error"]["code"], "invalid_job", "{e}");
        assert!(
            e["error"]["message"]
                .as_str()
                .unwrap()
                .contains("names no registered base"),
            "{e}"
        );
        let jobs = env.ctl_json(&["jobs", "ls", "--kind", "merge"], 0);
        assert_eq!(
            jobs["jobs"].as_array().unwrap().len(),
            1,
            "only the headers-only attempt was queued: {jobs}"
        );
    }
}
