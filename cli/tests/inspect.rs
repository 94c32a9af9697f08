//! `adapterctl inspect` exercised as a binary, on the bundled examples and on broken copies.

mod support;

use std::path::Path;

use support::{examples, json_of, offline as adapterctl};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn model_json_has_digests_counts_and_config() {
    let dir = examples().join("tiny-llama");
    let out = adapterctl(&["inspect", dir.to_str().unwrap(), "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json_of(&out);
    assert_eq!(v["kind"], "model");
    assert_eq!(v["tensor_count"], 21);
    // embed 256×64, 2 layers × (2 norms 64 + q 64×64 + k,v 32×64 + o 64×64 + 3 MLP 172×64), norm 64, lm_head 256×64.
    assert_eq!(
        v["parameters"],
        16384 + 2 * (2 * 64 + 4096 + 2 * 2048 + 4096 + 3 * 11008) + 64 + 16384
    );
    assert_eq!(v["dtypes"]["BF16"], 21);
    assert_eq!(v["model_type"], "llama");
    assert_eq!(v["files"].as_array().unwrap().len(), 2);

    // The content digest, recomputed from the definition in docs/FORMATS.md by hand.
    let mut listed = Vec::new();
    for f in v["files"].as_array().unwrap() {
        let path = f["path"].as_str().unwrap();
        let bytes = std::fs::read(dir.join(path)).unwrap();
        assert_eq!(f["size"], bytes.len());
        let sha = adapter_core::digest::Digest::of_bytes(&bytes).to_string();
        assert_eq!(f["sha256"], sha.as_str());
        listed.push(format!(
            r#"{{"path":"{path}","sha256":"{sha}","size":{}}}"#,
            bytes.len()
        ));
    }
    let canonical = format!(
        r#"{{"files":[{}],"schema":"adapter-registry.model-content.v1"}}"#,
        listed.join(",")
    );
    let expected = adapter_core::digest::Digest::of_bytes(canonical.as_bytes()).to_string();
    assert_eq!(v["content_digest"], expected.as_str());
    assert!(
        v["shape_fingerprint"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
}

#[test]
fn model_text_output_names_the_digests() {
    let dir = examples().join("tiny-llama");
    let out = adapterctl(&["inspect", dir.to_str().unwrap()]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("content") && text.contains("fingerprint") && text.contains("123,712"),
        "{text}"
    );
}

#[test]
fn corrupt_shard_is_unreadable_with_one_clear_line() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&examples().join("tiny-llama"), tmp.path());
    let shard = tmp.path().join("model-00002-of-00002.safetensors");
    let mut bytes = std::fs::read(&shard).unwrap();
    bytes.truncate(bytes.len() - 1);
    std::fs::write(&shard, bytes).unwrap();
    let out = adapterctl(&["inspect", tmp.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with("error: ") && err.contains("model-00002-of-00002.safetensors"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");

    let out = adapterctl(&["inspect", tmp.path().to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(json_of(&out)["error"]["code"], "unreadable_input");
}

#[test]
fn missing_directory_and_bad_usage_have_distinct_exit_codes() {
    let out = adapterctl(&["inspect", "/nonexistent/adapter"]);
    assert_eq!(out.status.code(), Some(3));
    let out = adapterctl(&["inspect"]);
    assert_eq!(out.status.code(), Some(2));
    let out = adapterctl(&[
        "inspect",
        examples().join("tiny-llama").to_str().unwrap(),
        "--base-dir",
        "x",
    ]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "--base-dir on a model is refused"
    );
}

#[test]
fn adapter_json_has_the_right_numbers() {
    let out = adapterctl(&[
        "inspect",
        examples().join("tiny-llama-lora").to_str().unwrap(),
        "--base-dir",
        examples().join("tiny-llama").to_str().unwrap(),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let v = json_of(&out);
    assert_eq!(v["peft_type"], "LORA");
    assert_eq!(v["r"], 8);
    assert_eq!(v["lora_alpha"], 16.0);
    assert_eq!(v["use_rslora"], false);
    assert_eq!(v["use_dora"], false);
    assert_eq!(
        v["target_modules"],
        serde_json::json!(["k_proj", "o_proj", "q_proj", "v_proj"])
    );
    let modules = v["modules"].as_array().unwrap();
    assert_eq!(modules.len(), 8);
    for m in modules {
        let tensor = m["base_tensor"].as_str().unwrap();
        // rank_pattern gives layer 1's q_proj rank 16: scale 16/16; every other module 16/8.
        let (rank, scale) = if tensor == "model.layers.1.self_attn.q_proj.weight" {
            (16, 1.0)
        } else {
            (8, 2.0)
        };
        assert_eq!(m["rank"], rank, "{tensor}");
        assert_eq!(m["alpha"], 16.0, "{tensor}");
        assert_eq!(m["scale"], scale, "{tensor}");
        assert_eq!(m["in_features"], 64, "{tensor}");
        let out_features = if tensor.contains("k_proj") || tensor.contains("v_proj") {
            32
        } else {
            64
        };
        assert_eq!(m["out_features"], out_features, "{tensor}");
    }
    // A + B per module: q,o 8×64 + 64×8; k,v 8×64 + 32×8; layer 1's q at rank 16.
    assert_eq!(
        v["parameters"],
        (1024 + 768 + 768 + 1024) + (2048 + 768 + 768 + 1024)
    );
    assert_eq!(v["errors"], serde_json::json!([]));
    assert_eq!(v["warnings"], serde_json::json!([]));
}

/// Rename layer 1 to layer 5 in a copy of the example adapter (same byte length, so the
/// safetensors offsets stay valid): an adapter "trained on a deeper model".
fn deeper_adapter(to: &Path) {
    copy_dir(&examples().join("tiny-llama-lora"), to);
    let weights = to.join("adapter_model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8(bytes[8..8 + header_len].to_vec())
        .unwrap()
        .replace("layers.1.", "layers.5.");
    bytes[8..8 + header_len].copy_from_slice(header.as_bytes());
    std::fs::write(&weights, bytes).unwrap();
    let config = to.join("adapter_config.json");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("layers.1.", "layers.5.");
    std::fs::write(config, text).unwrap();
}

#[test]
fn adapter_for_a_deeper_model_is_refused_against_the_base() {
    let tmp = tempfile::tempdir().unwrap();
    deeper_adapter(tmp.path());
    let dir = tmp.path().to_str().unwrap();
    // On its own the adapter is fine…
    let alone = adapterctl(&["inspect", dir, "--json"]);
    assert!(
        alone.status.success(),
        "{}",
        String::from_utf8_lossy(&alone.stdout)
    );
    // …but the base has layers 0–1 only: PEFT would silently drop layer 5's weights.
    let base = examples().join("tiny-llama");
    let out = adapterctl(&[
        "inspect",
        dir,
        "--base-dir",
        base.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let v = json_of(&out);
    let codes: Vec<&str> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes.iter().filter(|c| **c == "layer_out_of_range").count(),
        4,
        "{codes:?}"
    );
    let text = adapterctl(&["inspect", dir, "--base-dir", base.to_str().unwrap()]);
    assert_eq!(text.status.code(), Some(1));
    assert!(
        String::from_utf8(text.stdout)
            .unwrap()
            .contains("error[layer_out_of_range]")
    );
}

#[test]
fn nan_in_adapter_weights_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&examples().join("tiny-llama-lora"), tmp.path());
    let weights = tmp.path().join("adapter_model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    let n = bytes.len();
    bytes[n - 4..].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(&weights, bytes).unwrap();
    let out = adapterctl(&["inspect", tmp.path().to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v = json_of(&out);
    assert_eq!(v["errors"][0]["code"], "nan_in_tensor", "{v}");
}

#[test]
fn malformed_adapter_config_is_unreadable() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&examples().join("tiny-llama-lora"), tmp.path());
    std::fs::write(
        tmp.path().join("adapter_config.json"),
        r#"{"peft_type":"LORA","r":8,"r":16}"#,
    )
    .unwrap();
    let out = adapterctl(&["inspect", tmp.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("duplicate key `r`"), "{err}");
}
