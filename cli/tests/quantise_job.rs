//! End to end, on every available stack: `adapterctl quantise MODEL_REF --format … --as
//! NS/NAME@V --wait` on the real registry. The published GGUF holds the same quantised tensor
//! bytes as `quantise --local` of the same model (which scripts/check_gguf.py holds against
//! gguf-py), with the registry's lineage keys; the NF4 version holds the same tensors and a
//! config.json with the quantization_config; both carry the error report and `input` lineage
//! with the recipe. Refusals: unknown types, options of the other format, a taken version.

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use adapter_core::quant::gguf::{MetaValue, read_gguf};
use serde_json::Value;
use support::{Env, examples, offline, pull_model_files};

fn tiny() -> String {
    examples().join("tiny-llama").display().to_string()
}

/// Every tensor's stored bytes in a GGUF file, by name.
fn gguf_tensors(
    path: &Path,
) -> (
    BTreeMap<String, Vec<u8>>,
    adapter_core::quant::gguf::GgufFile,
) {
    let bytes = std::fs::read(path).unwrap();
    let g = read_gguf(std::io::Cursor::new(&bytes)).unwrap();
    let map = g
        .tensors
        .iter()
        .map(|t| {
            let at = usize::try_from(g.data_start + t.offset).unwrap();
            let len = usize::try_from(t.byte_len()).unwrap();
            (t.name.clone(), bytes[at..at + len].to_vec())
        })
        .collect();
    (map, g)
}

/// Every tensor of a safetensors file: name → (dtype, shape, bytes).
fn st_tensors(path: &Path) -> BTreeMap<String, (String, Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(n, v)| {
            (
                n,
                (
                    format!("{:?}", v.dtype()),
                    v.shape().to_vec(),
                    v.data().to_vec(),
                ),
            )
        })
        .collect()
}

#[test]
fn quantise_jobs_match_the_local_kernels_and_record_lineage() {
    for stack in adapter_testkit::stacks() {
        let env = Env::new(&stack);
        env.ctl_json(
            &[
                "push",
                &tiny(),
                "--name",
                "acme/llama",
                "--version",
                "1.0.0",
            ],
            0,
        );

        // GGUF Q4_K.
        let r = env.ctl_json(
            &[
                "quantise",
                "acme/llama@1.0.0",
                "--format",
                "q4_k",
                "--as",
                "acme/llama-gguf@1.0.0-q4-k",
                "--wait",
            ],
            0,
        );
        assert_eq!(r["output"], "acme/llama-gguf@1.0.0-q4-k", "{stack}: {r}");
        assert!(r["report"]["fallbacks"].as_u64().unwrap() > 0, "{r}");
        let pulled = env.path("gguf");
        pull_model_files(&env, "acme/llama-gguf@1.0.0-q4-k", &pulled);
        let local = env.path("local.gguf");
        let out = offline(&[
            "quantise",
            "--local",
            &tiny(),
            "--format",
            "q4_k",
            "-o",
            local.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{out:?}");
        let (remote, g) = gguf_tensors(&pulled.join("model-q4_k.gguf"));
        let (mine, _) = gguf_tensors(&local);
        assert_eq!(remote.len(), 21, "{stack}");
        assert!(
            remote == mine,
            "{stack}: the job's tensors differ from quantise --local"
        );
        assert_eq!(
            g.get("adapter_registry.source.reference")
                .and_then(MetaValue::as_str),
            Some("acme/llama@1.0.0")
        );
        assert_eq!(
            g.get("general.name").and_then(MetaValue::as_str),
            Some("acme/llama@1.0.0")
        );
        let report: Value = serde_json::from_slice(
            &std::fs::read(pulled.join("quantisation_report.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(report["tensors"].as_array().unwrap().len(), 21, "{report}");

        let shown = env.ctl_json(
            &["show", "acme/llama-gguf@1.0.0-q4-k", "--kind", "model"],
            0,
        );
        assert_eq!(shown["summary"]["format"], "gguf", "{shown}");
        assert_eq!(shown["summary"]["tensor_count"], 21, "{shown}");
        let parent = &shown["lineage"]["parents"][0];
        assert_eq!(parent["reference"], "acme/llama@1.0.0", "{shown}");
        assert_eq!(parent["relation"], "input");
        assert_eq!(parent["recipe"]["kind"], "quantise");
        assert_eq!(parent["recipe"]["params"]["quant_type"], "q4_k");
        assert!(
            parent["recipe"]["params"]["fallbacks"]
                .as_array()
                .is_some_and(|f| !f.is_empty()),
            "{parent}"
        );

        // A GGUF model is an output, not an input: a clear failure, not retried.
        let failed = env.ctl_json(
            &[
                "quantise",
                "acme/llama-gguf@1.0.0-q4-k",
                "--format",
                "q8_0",
                "--as",
                "acme/again@1.0.0",
                "--wait",
            ],
            12,
        );
        let job = &failed["error"]["details"]["job"];
        assert!(
            job["error"]
                .as_str()
                .unwrap()
                .contains("no safetensors weights"),
            "{stack}: {failed}"
        );
        assert_eq!(job["attempts"], 1, "{failed}");

        // NF4 with double quantisation.
        env.ctl_json(
            &[
                "quantise",
                "acme/llama@1.0.0",
                "--format",
                "nf4",
                "--double-quant",
                "--as",
                "acme/llama-nf4@1.0.0",
                "--wait",
            ],
            0,
        );
        let pulled = env.path("nf4");
        pull_model_files(&env, "acme/llama-nf4@1.0.0", &pulled);
        let local = env.path("local-nf4");
        let out = offline(&[
            "quantise",
            "--local",
            &tiny(),
            "--format",
            "nf4",
            "--double-quant",
            "-o",
            local.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{out:?}");
        let remote = st_tensors(&pulled.join("model.safetensors"));
        assert!(
            remote.keys().any(|k| k.ends_with(".weight.nested_absmax")),
            "{stack}: double quantisation: {:?}",
            remote.keys().collect::<Vec<_>>()
        );
        assert!(
            remote == st_tensors(&local.join("model.safetensors")),
            "{stack}: the job's NF4 tensors differ from quantise --local"
        );
        let config: Value =
            serde_json::from_slice(&std::fs::read(pulled.join("config.json")).unwrap()).unwrap();
        let q = &config["quantization_config"];
        assert_eq!(q["bnb_4bit_quant_type"], "nf4", "{config}");
        assert_eq!(q["bnb_4bit_use_double_quant"], true, "{config}");
    }
}

#[test]
fn quantise_job_refusals() {
    for stack in adapter_testkit::stacks() {
        let env = Env::new(&stack);
        env.ctl_json(
            &[
                "push",
                &tiny(),
                "--name",
                "acme/llama",
                "--version",
                "1.0.0",
            ],
            0,
        );
        for (args, exit, code) in [
            (
                &["--format", "q4_k", "--as", "acme/llama@1.0.0"][..],
                5,
                "version_exists",
            ),
            (
                &["--format", "q8_0", "--double-quant", "--as", "acme/q@1.0.0"][..],
                4,
                "invalid_job",
            ),
            (
                &["--format", "q8_0", "--as", "acme/q"][..],
                4,
                "invalid_job",
            ),
        ] {
            let e = env.ctl_json(
                &[&["quantise", "acme/llama@1.0.0"][..], args].concat(),
                exit,
            );
            assert_eq!(e["error"]["code"], code, "{stack}: {args:?}: {e}");
        }
        let jobs = env.ctl_json(&["jobs", "ls", "--kind", "quantise"], 0);
        assert_eq!(jobs["jobs"].as_array().unwrap().len(), 0, "{stack}: {jobs}");
    }
}
