//! `adapterctl quantise --local` end to end on examples/tiny-llama.

mod support;

use std::path::{Path, PathBuf};

use adapter_core::quant::GgmlType;
use adapter_core::quant::gguf::{MetaValue, read_gguf};
use serde_json::Value;
use support::{copy_dir, json_of, offline as adapterctl, offline_cached};

fn tiny() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/tiny-llama")
}

#[test]
fn gguf_q4_k_with_report_and_lineage() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("tiny.gguf");
    let o = out.to_str().unwrap();
    let run = adapterctl(&[
        "--json",
        "quantise",
        "--local",
        tiny().to_str().unwrap(),
        "--format",
        "q4_k",
        "-o",
        o,
    ]);
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let report = json_of(&run);
    assert_eq!(report["format"], "gguf");
    assert_eq!(report["quant_type"], "q4_k");
    let tensors = report["tensors"].as_array().unwrap();
    assert_eq!(tensors.len(), 21);
    let down = tensors
        .iter()
        .find(|t| t["output_name"] == "blk.1.ffn_down.weight")
        .unwrap();
    assert_eq!(down["stored_as"], "f16");
    assert!(down["fallback"].as_str().unwrap().contains("172"));
    let q = tensors
        .iter()
        .find(|t| t["output_name"] == "blk.0.attn_q.weight")
        .unwrap();
    assert_eq!(q["stored_as"], "q8_0"); // rows of 64 do not fit 256
    assert!(q["relative_rmse"].as_f64().unwrap() < 0.02);

    let g = read_gguf(std::fs::File::open(&out).unwrap()).unwrap();
    assert_eq!(
        g.get("general.file_type").and_then(MetaValue::as_u32),
        Some(GgmlType::Q4K.file_type())
    );
    let digest = g
        .get("adapter_registry.source.content_digest")
        .and_then(MetaValue::as_str)
        .unwrap();
    assert!(digest.starts_with("sha256:"), "{digest}");
    assert_eq!(
        report["output_bytes"].as_u64(),
        Some(std::fs::metadata(&out).unwrap().len())
    );

    // Again without --force: conflict (5), the file untouched; with --force and the alias: 0.
    let again = adapterctl(&[
        "quantise",
        "--local",
        tiny().to_str().unwrap(),
        "--format",
        "q8_0",
        "-o",
        o,
    ]);
    assert_eq!(again.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    let forced = adapterctl(&[
        "quantize",
        "--local",
        tiny().to_str().unwrap(),
        "--format",
        "q8_0",
        "-o",
        o,
        "--force",
    ]);
    assert_eq!(
        forced.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&forced.stderr)
    );
    let g = read_gguf(std::fs::File::open(&out).unwrap()).unwrap();
    assert_eq!(
        g.get("general.file_type").and_then(MetaValue::as_u32),
        Some(7)
    );
}

/// The weights' digests come from the digest cache `push` keeps too: a second quantise of
/// the same files hashes nothing and writes the same bytes; a touched file is hashed again.
#[test]
fn a_second_quantise_takes_the_weights_digests_from_the_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let (model, cache) = (tmp.path().join("model"), tmp.path().join("cache"));
    copy_dir(&tiny(), &model);
    let shards = [
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ];
    let size = |f: &str| std::fs::metadata(model.join(f)).unwrap().len();
    let weights = size(shards[0]) + size(shards[1]);
    let run = |format: &str, out: &str| {
        let out = tmp.path().join(out);
        let args = [
            "--json",
            "quantise",
            "--local",
            model.to_str().unwrap(),
            "--format",
            format,
            "-o",
            out.to_str().unwrap(),
        ];
        let r = offline_cached(&args, &cache);
        assert_eq!(
            r.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&r.stderr)
        );
        (json_of(&r)["digest_cache"].clone(), out)
    };
    let bytes = |p: &Path| {
        if p.is_dir() {
            std::fs::read(p.join("model.safetensors")).unwrap()
        } else {
            std::fs::read(p).unwrap()
        }
    };
    for format in ["q8_0", "nf4"] {
        let (first, a) = run(format, &format!("{format}-1"));
        let (second, b) = run(format, &format!("{format}-2"));
        if format == "q8_0" {
            assert_eq!(first["hits"], 0, "{first}");
            assert_eq!(first["hashed_bytes"], weights, "{first}");
        }
        assert_eq!(second["hits"], 2, "{format}: {second}");
        assert_eq!(second["hashed_bytes"], 0, "{format}: {second}");
        assert!(bytes(&a) == bytes(&b), "{format}: the outputs differ");
    }
    // A new mtime is a new file as far as the cache knows: hashed again, same digest.
    let f = std::fs::File::options()
        .write(true)
        .open(model.join(shards[1]))
        .unwrap();
    f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5))
        .unwrap();
    let (third, c) = run("q8_0", "q8_0-3");
    assert_eq!(third["hits"], 1, "{third}");
    assert_eq!(third["hashed_bytes"], size(shards[1]), "{third}");
    assert!(bytes(&c) == bytes(&tmp.path().join("q8_0-1")));
}

#[test]
fn nf4_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("nf4");
    let run = adapterctl(&[
        "quantise",
        "--local",
        tiny().to_str().unwrap(),
        "--format",
        "nf4",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(String::from_utf8_lossy(&run.stdout).contains("nf4"));
    assert!(out.join("model.safetensors").is_file());
    let cfg: Value =
        serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["quantization_config"]["bnb_4bit_quant_type"], "nf4");
    // The output reads back as a model directory.
    let inspect = adapterctl(&["--json", "inspect", out.to_str().unwrap()]);
    assert_eq!(
        inspect.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&inspect.stdout)
    );
}

#[test]
fn usage_errors_and_unreadable_input() {
    // A registry model without --as: a usage error before any request.
    let run = adapterctl(&["quantise", "acme/llama@1.0.0", "--format", "q8_0"]);
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("needs --as"));
    let run = adapterctl(&[
        "quantise",
        "--local",
        tiny().to_str().unwrap(),
        "--format",
        "q8_0",
        "--double-quant",
        "-o",
        "y.gguf",
    ]);
    assert_eq!(run.status.code(), Some(2), "--double-quant is for nf4");
    let run = adapterctl(&[
        "quantise",
        "--local",
        tiny().to_str().unwrap(),
        "--format",
        "q8_0",
    ]);
    assert_eq!(run.status.code(), Some(2), "missing -o");
    let run = adapterctl(&["quantise", "--local", "x", "--format", "q5_1", "-o", "y"]);
    assert_eq!(run.status.code(), Some(2), "unknown format");
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope");
    let out = tmp.path().join("o.gguf");
    let run = adapterctl(&[
        "quantise",
        "--local",
        missing.to_str().unwrap(),
        "--format",
        "q8_0",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(run.status.code(), Some(3));
    assert!(!out.exists());
}

#[test]
fn a_model_that_cannot_be_converted_exits_1_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("m");
    std::fs::create_dir(&model).unwrap();
    for e in std::fs::read_dir(tiny()).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), model.join(e.file_name())).unwrap();
    }
    let cfg = model.join("config.json");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("\"llama\"", "\"mistral\"")
        .replace("LlamaForCausalLM", "MistralForCausalLM");
    std::fs::write(&cfg, text).unwrap();
    let out = tmp.path().join("o.gguf");
    let run = adapterctl(&[
        "--json",
        "quantise",
        "--local",
        model.to_str().unwrap(),
        "--format",
        "q4_0",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(run.status.code(), Some(1));
    assert!(
        json_of(&run)["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Llama")
    );
    assert!(!out.exists());
}
