//! `adapterctl merge --local` as a binary on the bundled examples (tiny Llama with GQA, a
//! sharded bf16 base, an adapter with a rank_pattern): the output against the formula, the
//! sharded output, and the refusals with their exit codes.

#![allow(clippy::cast_precision_loss)]

mod support;

use std::path::Path;

use adapter_core::merge::{bf16_to_f32, f32_to_bf16};
use serde_json::Value;
use support::{examples, json_of, offline as adapterctl};

/// A tensor of any safetensors file in `dir` as f32 (F32 or BF16).
fn tensor(dir: &Path, name: &str) -> (Vec<u64>, Vec<f32>, safetensors::Dtype) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "safetensors") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        if let Ok(v) = st.tensor(name) {
            let values = match v.dtype() {
                safetensors::Dtype::F32 => v
                    .data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
                safetensors::Dtype::BF16 => v
                    .data()
                    .chunks_exact(2)
                    .map(|c| bf16_to_f32(u16::from_le_bytes([c[0], c[1]])))
                    .collect(),
                other => panic!("{other:?}"),
            };
            return (
                v.shape().iter().map(|&d| d as u64).collect(),
                values,
                v.dtype(),
            );
        }
    }
    panic!("{name} not in {}", dir.display())
}

/// W + s·(B@A) in f64, rounded once to bf16 (through f32: the difference is f32 noise).
fn expected(module: &str, scale: f64) -> Vec<f32> {
    let base = examples().join("tiny-llama");
    let adapter = examples().join("tiny-llama-lora");
    let (_, w, _) = tensor(&base, &format!("{module}.weight"));
    let (sa, a, _) = tensor(
        &adapter,
        &format!("base_model.model.{module}.lora_A.weight"),
    );
    let (sb, b, _) = tensor(
        &adapter,
        &format!("base_model.model.{module}.lora_B.weight"),
    );
    let (r, inf, outf) = (sa[0] as usize, sa[1] as usize, sb[0] as usize);
    (0..outf * inf)
        .map(|j| {
            let (o, i) = (j / inf, j % inf);
            let d: f64 = (0..r)
                .map(|k| f64::from(b[o * r + k]) * f64::from(a[k * inf + i]))
                .sum();
            #[allow(clippy::cast_possible_truncation)]
            let v = (f64::from(w[j]) + scale * d) as f32;
            bf16_to_f32(f32_to_bf16(v))
        })
        .collect()
}

#[test]
fn merges_the_example_adapter_as_the_formula_says() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("merged");
    let o = adapterctl(&[
        "--json",
        "merge",
        "--local",
        examples().join("tiny-llama-lora").to_str().unwrap(),
        "--base-dir",
        examples().join("tiny-llama").to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary = json_of(&o);
    assert_eq!(summary["merged"], 8);
    // rank_pattern gives layer 1's q_proj r = 16: scale 16/16 = 1; the rest 16/8 = 2.
    let scales = summary["scales"].as_array().unwrap();
    for s in scales {
        let q1 = s["module"] == "model.layers.1.self_attn.q_proj";
        assert_eq!(s["scale"], if q1 { 1.0 } else { 2.0 }, "{s}");
    }
    for (module, scale) in [
        ("model.layers.0.self_attn.k_proj", 2.0),
        ("model.layers.1.self_attn.q_proj", 1.0),
    ] {
        let (_, got, dtype) = tensor(&out, &format!("{module}.weight"));
        assert_eq!(dtype, safetensors::Dtype::BF16);
        let want = expected(module, scale);
        let off = got.iter().zip(&want).filter(|(g, w)| g != w).count();
        assert!(
            off * 100 <= want.len(),
            "{module}: {off} of {} differ",
            want.len()
        );
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (g - w).abs() <= w.abs() / 64.0 + 1e-6,
                "{module}: {g} vs {w}"
            );
        }
    }
    let inspect = adapterctl(&["--json", "inspect", out.to_str().unwrap()]);
    assert!(
        inspect.status.success(),
        "{}",
        String::from_utf8_lossy(&inspect.stdout)
    );
    assert!(out.join("config.json").is_file());
}

#[test]
fn sharded_f32_output_has_an_index() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("merged");
    let o = adapterctl(&[
        "merge",
        "--local",
        examples().join("tiny-llama-lora").to_str().unwrap(),
        "--base-dir",
        examples().join("tiny-llama").to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--dtype",
        "f32",
        "--shard-size",
        "100000",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let index: Value =
        serde_json::from_slice(&std::fs::read(out.join("model.safetensors.index.json")).unwrap())
            .unwrap();
    assert!(index["weight_map"].as_object().unwrap().len() > 10);
    let (_, _, dtype) = tensor(&out, "model.norm.weight");
    assert_eq!(dtype, safetensors::Dtype::F32);
    let inspect = adapterctl(&["--json", "inspect", out.to_str().unwrap()]);
    assert!(
        inspect.status.success(),
        "{}",
        String::from_utf8_lossy(&inspect.stdout)
    );
}

#[test]
fn refusals_have_exit_codes_and_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("merged");
    let base = examples().join("tiny-llama");

    let o = adapterctl(&["merge", "example/tiny-llama-lora"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--local"));

    // An init method that rewrote the base.
    let adapter = dir.path().join("pissa");
    std::fs::create_dir_all(&adapter).unwrap();
    let src = examples().join("tiny-llama-lora");
    std::fs::copy(
        src.join("adapter_model.safetensors"),
        adapter.join("adapter_model.safetensors"),
    )
    .unwrap();
    let mut config: Value =
        serde_json::from_slice(&std::fs::read(src.join("adapter_config.json")).unwrap()).unwrap();
    config["init_lora_weights"] = "pissa".into();
    std::fs::write(adapter.join("adapter_config.json"), config.to_string()).unwrap();
    let args = |a: &Path| {
        vec![
            "--json".to_owned(),
            "merge".into(),
            "--local".into(),
            a.to_str().unwrap().into(),
            "--base-dir".into(),
            base.to_str().unwrap().into(),
            "-o".into(),
            out.to_str().unwrap().into(),
        ]
    };
    let run = |a: &Path| {
        let v = args(a);
        adapterctl(&v.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let o = run(&adapter);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(json_of(&o)["error"]["code"], "merge_refused");

    // Incompatible: a rank_pattern that makes the example's shapes disagree is caught by the
    // validation; use a base with a layer missing instead.
    config["init_lora_weights"] = true.into();
    config["target_modules"] = serde_json::json!(["q_proj", "k_proj", "v_proj", "o_proj"]);
    std::fs::write(adapter.join("adapter_config.json"), config.to_string()).unwrap();
    let small = dir.path().join("small-base");
    std::fs::create_dir_all(&small).unwrap();
    std::fs::copy(base.join("config.json"), small.join("config.json")).unwrap();
    std::fs::copy(
        base.join("model-00001-of-00002.safetensors"),
        small.join("model.safetensors"),
    )
    .unwrap();
    let v = {
        let mut v = args(&adapter);
        v[5] = small.to_str().unwrap().into();
        v
    };
    let o = adapterctl(&v.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(
        o.status.code(),
        Some(11),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let e = json_of(&o);
    assert_eq!(e["error"]["code"], "incompatible");
    assert!(
        !e["error"]["details"]["reasons"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(!out.exists());
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        left.iter()
            .all(|n| !n.to_string_lossy().contains("partial")),
        "{left:?}"
    );
}
