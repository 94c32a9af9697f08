//! End to end: eval results through `push --eval`, `eval add` and `eval ls`, labels on push,
//! and `adapterctl diff` between two real versions (config, targets, tensors, eval deltas,
//! catastrophic forgetting) against the real server on every available stack.

mod support;

use std::path::{Path, PathBuf};

use adapter_testkit::stacks;
use serde_json::{Value, json};
use support::{Env, copy_dir, examples, lora};

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `benchmark:metric → value` of a list of results.
fn values(list: &Value) -> Vec<(String, f64)> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|e| {
            (
                format!(
                    "{}:{}",
                    e["benchmark"].as_str().unwrap(),
                    e["metric"].as_str().unwrap()
                ),
                e["value"].as_f64().unwrap(),
            )
        })
        .collect()
}

fn kv(k: &str, v: f64) -> (String, f64) {
    (k.to_owned(), v)
}

#[test]
fn push_records_evals_once_and_eval_add_and_ls_work() {
    for stack in stacks() {
        let env = Env::new(&stack);
        let dir = lora();
        let push = |extra: &[&str], code: i32| {
            let mut args = vec!["push", &dir, "--name", "acme/bot", "--version", "1.0.0"];
            args.extend_from_slice(extra);
            env.ctl_json(&args, code)
        };
        let evals = [
            "--eval",
            "mmlu:acc=0.612",
            "--eval",
            "support-tone:match=0.81",
            "--label",
            "team=nlp",
            "--label",
            "stage=exp",
        ];
        let v = push(&evals, 0);
        assert_eq!(v["created"], true, "{stack}: {v}");
        assert_eq!(v["evals"]["skipped"], 0, "{stack}: {v}");
        assert_eq!(
            values(&v["evals"]["added"]),
            [kv("mmlu:acc", 0.612), kv("support-tone:match", 0.81)],
            "{stack}"
        );
        let show = env.ctl_json(&["show", "acme/bot@1.0.0"], 0);
        assert_eq!(
            show["manifest"]["metadata"]["labels"],
            json!({"stage": "exp", "team": "nlp"}),
            "{stack}: {show}"
        );
        assert_eq!(
            values(&show["evals"]),
            [kv("mmlu:acc", 0.612), kv("support-tone:match", 0.81)],
            "{stack}"
        );

        // The same push again: idempotent, and the results are not appended twice.
        let again = push(&evals, 0);
        assert_eq!(again["created"], false, "{stack}: {again}");
        assert_eq!(
            again["evals"],
            json!({"added": [], "skipped": 2}),
            "{stack}"
        );
        let ls = env.ctl_json(&["eval", "ls", "acme/bot@1.0.0"], 0);
        assert_eq!(ls["reference"], "acme/bot@1.0.0", "{stack}");
        assert_eq!(ls["evals"].as_array().unwrap().len(), 2, "{stack}: {ls}");

        // One new value: only it is appended, and it becomes the latest.
        let changed = push(
            &[
                "--eval",
                "mmlu:acc=0.62",
                "--eval",
                "support-tone:match=0.81",
                "--label",
                "team=nlp",
                "--label",
                "stage=exp",
            ],
            0,
        );
        assert_eq!(
            values(&changed["evals"]["added"]),
            [kv("mmlu:acc", 0.62)],
            "{stack}"
        );
        assert_eq!(changed["evals"]["skipped"], 1, "{stack}");
        let ls = env.ctl_json(&["eval", "ls", "acme/bot"], 0);
        assert_eq!(
            values(&ls["evals"]),
            [
                kv("mmlu:acc", 0.612),
                kv("support-tone:match", 0.81),
                kv("mmlu:acc", 0.62)
            ],
            "{stack}: oldest first"
        );
        let show = env.ctl_json(&["show", "acme/bot"], 0);
        assert_eq!(values(&show["evals"])[0], kv("mmlu:acc", 0.62), "{stack}");

        // eval add with dataset, source and direction.
        let add = env.ctl_json(
            &[
                "eval",
                "add",
                "acme/bot@^1",
                "wikitext:ppl=7.25",
                "lambada:acc=0.5",
                "--dataset",
                "wikitext-2/test",
                "--source",
                "run-42",
                "--lower-is-better",
            ],
            0,
        );
        assert_eq!(add["reference"], "acme/bot@1.0.0", "{stack}: {add}");
        let added = add["added"].as_array().unwrap();
        assert_eq!(added.len(), 2, "{stack}");
        assert_eq!(added[0]["dataset"], "wikitext-2/test", "{stack}");
        assert_eq!(added[0]["source"], "run-42", "{stack}");
        assert_eq!(added[0]["higher_is_better"], false, "{stack}");
        assert!(
            added[0]["author"]
                .as_str()
                .unwrap()
                .starts_with("admin (tok_"),
            "{stack}: {}",
            added[0]
        );
        let text = env.ctl(&["eval", "ls", "acme/bot@1.0.0"]);
        assert_eq!(text.status.code(), Some(0));
        let text = stdout(&text);
        assert!(
            text.contains("wikitext:ppl") && text.contains("7.25") && text.contains("run-42"),
            "{stack}: {text}"
        );

        // Refused before any request, with usage errors (exit 2).
        for bad in [
            vec!["eval", "add", "acme/bot", "mmlu:acc=0.5"],
            vec!["eval", "add", "acme/bot@1.0.0", "mmlu:ACC=0.5"],
            vec!["eval", "add", "acme/bot@1.0.0", "mmlu:acc=nan"],
            vec!["eval", "add", "acme/bot@1.0.0", "mmlu=0.5"],
            vec!["eval", "add", "acme/bot@1.0.0", "mmlu:acc=1", "mmlu:acc=2"],
            vec![
                "eval",
                "add",
                "acme/bot@1.0.0",
                "mmlu:acc=1",
                "--source",
                "",
            ],
            vec!["eval", "add", "acme/bot@1.0.0"],
        ] {
            let out = env.ctl(&bad);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{stack}: {bad:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // Unknown versions are not found (6).
        let e = env.ctl_json(&["eval", "add", "acme/bot@9.9.9", "mmlu:acc=0.5"], 6);
        assert_eq!(e["error"]["code"], "no_match", "{stack}: {e}");
        env.ctl_json(&["eval", "ls", "acme/nobody"], 6);
        // Still the four results plus the two added: nothing else was recorded.
        let ls = env.ctl_json(&["eval", "ls", "acme/bot@1.0.0"], 0);
        assert_eq!(ls["evals"].as_array().unwrap().len(), 5, "{stack}: {ls}");

        // A push with bad --eval or --label arguments publishes nothing.
        for bad in [
            vec!["--eval", "mmlu:acc"],
            vec!["--eval", "mmlu:acc=1", "--eval", "mmlu:acc=2"],
            vec!["--label", "team=a", "--label", "team=b"],
            vec!["--label", "=x"],
        ] {
            let mut args = vec!["push", &dir, "--name", "acme/other", "--version", "1.0.0"];
            args.extend(bad.iter().copied());
            let out = env.ctl(&args);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{stack}: {bad:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        env.ctl_json(&["ls", "acme/other"], 6);
    }
}

/// The example adapter changed: alpha 32, no `v_proj`, layer 1's q_proj at rank 8 (not 16).
fn variant(dir: &Path) -> PathBuf {
    let out = dir.join("variant");
    copy_dir(&examples().join("tiny-llama-lora"), &out);
    let cfg_path = out.join("adapter_config.json");
    let mut cfg: Value = serde_json::from_slice(&std::fs::read(&cfg_path).unwrap()).unwrap();
    cfg["lora_alpha"] = json!(32);
    cfg["rank_pattern"] = json!({});
    cfg["target_modules"] = json!(["q_proj", "k_proj", "o_proj"]);
    std::fs::write(&cfg_path, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();

    let weights = out.join("adapter_model.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut data: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, view) in st.tensors() {
        if name.contains("v_proj") {
            continue;
        }
        let shape = view.shape().to_vec();
        let raw = view.data();
        if name.contains("layers.1.self_attn.q_proj.lora_A") {
            // [16, in] → the first 8 rows.
            let row = shape[1] * 4;
            data.push((name, vec![8, shape[1]], raw[..8 * row].to_vec()));
        } else if name.contains("layers.1.self_attn.q_proj.lora_B") {
            // [out, 16] → the first 8 columns of every row.
            let mut cut = Vec::new();
            for r in 0..shape[0] {
                cut.extend_from_slice(&raw[r * shape[1] * 4..(r * shape[1] + 8) * 4]);
            }
            data.push((name, vec![shape[0], 8], cut));
        } else {
            data.push((name, shape, raw.to_vec()));
        }
    }
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = data
        .iter()
        .map(|(n, s, d)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), d)
                    .unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, &weights).unwrap();
    out
}

#[test]
fn diff_shows_config_targets_tensors_and_flags_forgetting() {
    for stack in stacks() {
        let env = Env::new(&stack);
        let b_dir = variant(env.home.path());
        env.ctl_json(
            &[
                "push",
                &lora(),
                "--name",
                "acme/bot",
                "--version",
                "1.0.0",
                "--eval",
                "mmlu:acc=0.612",
                "--eval",
                "support-tone:match=0.81",
                "--eval",
                "hellaswag:acc=0.5",
            ],
            0,
        );
        env.ctl_json(
            &[
                "push",
                b_dir.to_str().unwrap(),
                "--name",
                "acme/bot",
                "--version",
                "1.1.0",
                "--eval",
                "mmlu:acc=0.571",
                "--eval",
                "support-tone:match=0.89",
                "--eval",
                "hellaswag:acc=0.495",
                "--eval",
                "tone-safety:rate=0.99",
            ],
            0,
        );

        let d = env.ctl_json(&["diff", "acme/bot@1.0.0", "acme/bot@1.1.0"], 0);
        assert_eq!(d["a"]["reference"], "acme/bot@1.0.0", "{stack}");
        assert_eq!(d["b"]["reference"], "acme/bot@1.1.0", "{stack}");
        assert_eq!(d["same_manifest"], false, "{stack}");
        // Config: the three changed fields, nothing else.
        assert_eq!(d["config"]["file"], "adapter_config.json", "{stack}");
        let changed: Vec<&str> = d["config"]["changed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["key"].as_str().unwrap())
            .collect();
        assert_eq!(
            changed,
            ["lora_alpha", "rank_pattern", "target_modules"],
            "{stack}: {d}"
        );
        assert_eq!(d["config"]["added"], json!([]), "{stack}");
        // Summary and targets.
        let summary = |f: &str| {
            d["summary"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["field"] == f)
                .unwrap_or_else(|| panic!("no {f}: {d}"))
                .clone()
        };
        assert_eq!(summary("lora_alpha")["a"], 16.0, "{stack}");
        assert_eq!(summary("lora_alpha")["b"], 32.0, "{stack}");
        assert_eq!(summary("r")["changed"], false, "{stack}");
        assert_eq!(
            d["targets"],
            json!({"added": [], "removed": ["v_proj"]}),
            "{stack}"
        );
        // Tensors: the v_proj pairs of both layers removed, layer 1's q_proj reshaped.
        let t = &d["tensors"];
        let removed: Vec<&str> = t["removed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["name"].as_str().unwrap())
            .collect();
        assert_eq!(removed.len(), 4, "{stack}: {t}");
        assert!(
            removed.iter().all(|n| n.contains("v_proj")),
            "{stack}: {removed:?}"
        );
        assert_eq!(t["added"], json!([]), "{stack}");
        let reshaped = t["changed"].as_array().unwrap();
        assert_eq!(reshaped.len(), 2, "{stack}: {t}");
        let a_side = reshaped
            .iter()
            .find(|c| c["key"].as_str().unwrap().contains("q_proj.lora_A"))
            .unwrap();
        assert_eq!(
            a_side["a"],
            json!({"dtype": "F32", "shape": [16, 64]}),
            "{stack}"
        );
        assert_eq!(
            a_side["b"],
            json!({"dtype": "F32", "shape": [8, 64]}),
            "{stack}"
        );
        assert_eq!(t["unchanged"], 10, "{stack}: {t}");
        // Evals: mmlu fell by 0.041 while the task metric rose: forgetting. hellaswag fell
        // by 0.005, under the threshold.
        assert_eq!(d["forgetting"], json!(["mmlu:acc"]), "{stack}: {d}");
        let ev = |k: &str| {
            d["evals"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["key"] == k)
                .unwrap()
                .clone()
        };
        assert_eq!(ev("support-tone:match")["movement"], "improved", "{stack}");
        assert_eq!(ev("mmlu:acc")["movement"], "regressed", "{stack}");
        assert!(
            (ev("mmlu:acc")["delta"].as_f64().unwrap() + 0.041).abs() < 1e-9,
            "{stack}"
        );
        assert_eq!(ev("hellaswag:acc")["forgetting"], false, "{stack}");
        assert_eq!(ev("hellaswag:acc")["general"], true, "{stack}");
        assert_eq!(ev("tone-safety:rate")["movement"], "added", "{stack}");

        // --fail-on-forgetting: the same diff, exit 1.
        let failed = env.ctl_json(
            &[
                "diff",
                "acme/bot@1.0.0",
                "acme/bot@1.1.0",
                "--fail-on-forgetting",
            ],
            1,
        );
        assert_eq!(failed["forgetting"], json!(["mmlu:acc"]), "{stack}");
        // A looser threshold, or another list of general benchmarks: nothing flagged.
        let loose = env.ctl_json(
            &[
                "diff",
                "acme/bot@1.0.0",
                "acme/bot@1.1.0",
                "--fail-on-forgetting",
                "--forgetting-threshold",
                "0.05",
            ],
            0,
        );
        assert_eq!(loose["forgetting"], json!([]), "{stack}");
        let custom = env.ctl_json(
            &[
                "diff",
                "acme/bot@1.0.0",
                "acme/bot@1.1.0",
                "--general",
                "hellaswag",
                "--forgetting-threshold",
                "0.001",
            ],
            0,
        );
        assert_eq!(custom["forgetting"], json!(["hellaswag:acc"]), "{stack}");
        for bad in [
            vec![
                "diff",
                "acme/bot@1.0.0",
                "acme/bot@1.1.0",
                "--forgetting-threshold",
                "-1",
            ],
            vec![
                "diff",
                "acme/bot@1.0.0",
                "acme/bot@1.1.0",
                "--general",
                "MMLU",
            ],
            vec!["diff", "acme/bot@1.0.0"],
        ] {
            assert_eq!(env.ctl(&bad).status.code(), Some(2), "{stack}: {bad:?}");
        }
        env.ctl_json(&["diff", "acme/bot@1.0.0", "acme/bot@7.0.0"], 6);

        // Text: the flag is visible to a person, and the exit code to a script.
        let out = env.ctl(&[
            "diff",
            "acme/bot@1.0.0",
            "acme/bot@1.1.0",
            "--fail-on-forgetting",
        ]);
        assert_eq!(out.status.code(), Some(1), "{stack}");
        let text = stdout(&out);
        assert!(text.contains("FORGETTING"), "{stack}: {text}");
        assert!(
            text.contains("catastrophic forgetting: general benchmark mmlu:acc")
                && text.contains("while support-tone:match"),
            "{stack}: {text}"
        );
        assert!(text.contains("~ lora_alpha: 16 → 32"), "{stack}: {text}");
        assert!(text.contains("- target v_proj"), "{stack}: {text}");
        assert!(
            text.contains("tensors: 0 added, 4 removed, 2 changed, 10 unchanged"),
            "{stack}: {text}"
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("mmlu:acc"),
            "{stack}"
        );

        // A version against itself: nothing differs.
        let same = env.ctl_json(&["diff", "acme/bot@1.0.0", "acme/bot@1.0.0"], 0);
        assert_eq!(same["same_manifest"], true, "{stack}");
        assert_eq!(same["tensors"]["unchanged"], 16, "{stack}");
        assert_eq!(same["config"]["changed"], json!([]), "{stack}");
        assert!(
            same["evals"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["movement"] == "unchanged"),
            "{stack}: {same}"
        );

        // Models: config.json, tensors from every shard, or from the header blobs of a
        // headers-only registration.
        let model = examples().join("tiny-llama");
        let model = model.to_str().unwrap();
        env.ctl_json(
            &["push", model, "--name", "acme/llama", "--version", "1.0.0"],
            0,
        );
        env.ctl_json(
            &[
                "push",
                model,
                "--name",
                "acme/llama",
                "--version",
                "1.1.0",
                "--headers-only",
            ],
            0,
        );
        let m = env.ctl_json(&["diff", "acme/llama@1.0.0", "acme/llama@1.1.0"], 0);
        assert_eq!(m["a"]["kind"], "model", "{stack}: {m}");
        assert_eq!(m["config"]["file"], "config.json", "{stack}");
        assert_eq!(m["config"]["changed"], json!([]), "{stack}");
        let tm = &m["tensors"];
        assert_eq!(
            (
                tm["added"].as_array().unwrap().len(),
                tm["removed"].as_array().unwrap().len()
            ),
            (0, 0),
            "{stack}: {tm}"
        );
        assert_eq!(tm["unchanged"], 21, "{stack}: {tm}");
        let headers_only = m["summary"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["field"] == "headers_only")
            .unwrap()
            .clone();
        assert_eq!(
            headers_only,
            json!({"field": "headers_only", "a": false, "b": true, "changed": true}),
            "{stack}"
        );
    }
}
