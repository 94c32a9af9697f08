//! The merge kernel against a naive f64 implementation of PEFT's formulas, on small real
//! tensors written to disk: plain LoRA with GQA shapes, rsLoRA, rank/alpha patterns on all
//! seven Llama linears, DoRA, GPT-2 Conv1D (fan_in_fan_out) with lora_bias, embedding LoRA,
//! modules_to_save, bf16/f16/f32 bases, sharded input and output, and the refusals. With the
//! `candle` feature, plain LoRA and Conv1D also run through candle's product (CPU backend).
#![allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]

mod compat_support;
mod merge_support;
mod peft_support;

use std::collections::BTreeMap;
use std::path::Path;

use adapter_core::merge::{Device, MergeError, MergeOptions, MergeSummary, merge_dir};
use adapter_core::safetensors::Dtype;
use merge_support::{
    Rng, T, assert_merged, delta, dora, read_model, transpose, write_adapter, write_model,
};
use serde_json::{Value, json};

const P: &str = "base_model.model.";

/// Our CPU kernel, and candle's path when built with it: both must meet the same reference.
fn devices() -> Vec<MergeOptions> {
    let d = [
        Device::Cpu,
        #[cfg(feature = "candle")]
        Device::Candle(candle_core::Device::Cpu),
    ];
    d.into_iter()
        .map(|device| MergeOptions {
            device,
            ..MergeOptions::default()
        })
        .collect()
}

/// A base from the compat fixtures' names, shapes and config.json, filled with values.
fn fill_base(base: &compat_support::Base, dtype: Dtype, seed: u64) -> (Value, BTreeMap<String, T>) {
    let mut rng = Rng::new(seed);
    let tensors = base
        .tensors
        .values()
        .map(|info| {
            (
                info.name.clone(),
                T::random(dtype, &info.shape, 0.5, &mut rng),
            )
        })
        .collect();
    (base.config.clone().unwrap(), tensors)
}

/// A Llama base with grouped-query attention: 4 heads of 16, 1 key/value head (k/v are
/// [16, 64]).
fn gqa_llama(layers: u64) -> compat_support::Base {
    let mut b = compat_support::llama(layers)
        .config("num_attention_heads", json!(4))
        .config("num_key_value_heads", json!(1));
    for i in 0..layers {
        for m in ["k_proj", "v_proj"] {
            b = b.tensor(&format!("model.layers.{i}.self_attn.{m}.weight"), &[16, 64]);
        }
    }
    b
}

struct Lora {
    config: Value,
    tensors: BTreeMap<String, T>,
    rng: Rng,
    dtype: Dtype,
}

impl Lora {
    fn new(config: Value, dtype: Dtype) -> Self {
        Self {
            config,
            tensors: BTreeMap::new(),
            rng: Rng::new(7),
            dtype,
        }
    }
    fn put(&mut self, name: &str, shape: &[u64]) {
        let t = T::random(self.dtype, shape, 0.5, &mut self.rng);
        self.tensors.insert(name.to_owned(), t);
    }
    /// lora_A [r, in], lora_B [out, r] of `module`.
    fn linear(mut self, module: &str, r: u64, inf: u64, outf: u64) -> Self {
        self.put(&format!("{P}{module}.lora_A.weight"), &[r, inf]);
        self.put(&format!("{P}{module}.lora_B.weight"), &[outf, r]);
        self
    }
    fn a(&self, module: &str) -> &T {
        &self.tensors[&format!("{P}{module}.lora_A.weight")]
    }
    fn b(&self, module: &str) -> &T {
        &self.tensors[&format!("{P}{module}.lora_B.weight")]
    }
}

fn merge(
    adapter: &Lora,
    base: &(Value, BTreeMap<String, T>),
    shards: usize,
    options: &MergeOptions,
    dir: &Path,
) -> Result<MergeSummary, MergeError> {
    let (a, b, o) = (dir.join("adapter"), dir.join("base"), dir.join("out"));
    write_adapter(&a, &adapter.config, &adapter.tensors);
    write_model(&b, &base.0, &base.1, shards);
    merge_dir(&a, &b, &o, options, &mut |_| {})
}

fn config(r: u64, alpha: f64, targets: &[&str]) -> Value {
    json!({"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": r, "lora_alpha": alpha,
           "target_modules": targets, "bias": "none"})
}

/// Every base tensor not in `changed` is bit-identical in the output.
fn assert_untouched(base: &BTreeMap<String, T>, out: &BTreeMap<String, T>, changed: &[String]) {
    assert_eq!(
        base.keys().collect::<Vec<_>>(),
        out.keys().collect::<Vec<_>>()
    );
    for (name, t) in base {
        if !changed.contains(name) {
            assert_eq!(t.values, out[name].values, "{name} changed");
            assert_eq!(t.dtype, out[name].dtype);
        }
    }
}

/// Expected W + s·ΔW for a [out, in] weight.
fn linear_expected(w: &T, a: &T, b: &T, s: f64) -> Vec<f64> {
    w.values
        .iter()
        .zip(delta(a, b, s))
        .map(|(w, d)| w + d)
        .collect()
}

#[test]
fn plain_lora_on_q_k_v_o_with_gqa_shapes_in_bf16() {
    for options in devices() {
        plain_lora_on(&options);
    }
}

fn plain_lora_on(options: &MergeOptions) {
    let dir = tempfile::tempdir().unwrap();
    let base = fill_base(&gqa_llama(2), Dtype::BF16, 1);
    let mut lora = Lora::new(
        config(8, 16.0, &["q_proj", "k_proj", "v_proj", "o_proj"]),
        Dtype::F32,
    );
    for i in 0..2 {
        for (m, out) in [
            ("q_proj", 64),
            ("k_proj", 16),
            ("v_proj", 16),
            ("o_proj", 64),
        ] {
            lora = lora.linear(&format!("model.layers.{i}.self_attn.{m}"), 8, 64, out);
        }
    }
    let summary = merge(&lora, &base, 1, options, dir.path()).unwrap();
    assert_eq!(summary.device, options.device.name());
    assert_eq!(summary.merged, 8);
    assert!(summary.scales.iter().all(|s| s.scale == 2.0 && s.rank == 8));
    let out = read_model(&dir.path().join("out"));
    let mut changed = Vec::new();
    for i in 0..2 {
        for m in ["q_proj", "k_proj", "v_proj", "o_proj"] {
            let module = format!("model.layers.{i}.self_attn.{m}");
            let name = format!("{module}.weight");
            let want = linear_expected(&base.1[&name], lora.a(&module), lora.b(&module), 2.0);
            assert_eq!(out[&name].dtype, Dtype::BF16);
            assert_merged(&name, &out[&name], &want);
            assert_ne!(out[&name].values, base.1[&name].values, "{name} unchanged");
            changed.push(name);
        }
    }
    assert_untouched(&base.1, &out, &changed);
    let o = dir.path().join("out");
    assert!(o.join("config.json").is_file() && o.join("tokenizer.json").is_file());
    assert!(!o.join("model.safetensors.index.json").exists());
}

#[test]
fn rslora_on_an_f16_base() {
    let dir = tempfile::tempdir().unwrap();
    let base = fill_base(&compat_support::llama(1), Dtype::F16, 2);
    let mut cfg = config(16, 8.0, &["q_proj", "v_proj"]);
    cfg["use_rslora"] = json!(true);
    let lora = Lora::new(cfg, Dtype::F32)
        .linear("model.layers.0.self_attn.q_proj", 16, 64, 64)
        .linear("model.layers.0.self_attn.v_proj", 16, 64, 64);
    let summary = merge(&lora, &base, 1, &MergeOptions::default(), dir.path()).unwrap();
    assert!(
        summary.scales.iter().all(|s| s.scale == 2.0),
        "8 / sqrt(16)"
    );
    let out = read_model(&dir.path().join("out"));
    for m in ["q_proj", "v_proj"] {
        let module = format!("model.layers.0.self_attn.{m}");
        let name = format!("{module}.weight");
        let want = linear_expected(&base.1[&name], lora.a(&module), lora.b(&module), 2.0);
        assert_eq!(out[&name].dtype, Dtype::F16);
        assert_merged(&name, &out[&name], &want);
    }
}

#[test]
fn rank_and_alpha_patterns_on_all_seven_llama_linears_in_f32() {
    let dir = tempfile::tempdir().unwrap();
    let base = fill_base(&compat_support::llama(2), Dtype::F32, 3);
    let seven = [
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    ];
    let mut cfg = config(8, 16.0, &seven);
    cfg["rank_pattern"] = json!({"q_proj": 4, "model.layers.1.mlp.down_proj": 2});
    cfg["alpha_pattern"] = json!({"v_proj": 3.0, "model.layers.0.mlp.up_proj": 5.0});
    // (module, r, alpha) as PEFT resolves them.
    let mut expected = Vec::new();
    let mut lora = Lora::new(cfg, Dtype::F32);
    for i in 0..2 {
        for m in seven {
            let group =
                if m.ends_with("_proj") && ["gate_proj", "up_proj", "down_proj"].contains(&m) {
                    "mlp"
                } else {
                    "self_attn"
                };
            let module = format!("model.layers.{i}.{group}.{m}");
            let r = match (i, m) {
                (_, "q_proj") => 4,
                (1, "down_proj") => 2,
                _ => 8,
            };
            let alpha = match (i, m) {
                (_, "v_proj") => 3.0,
                (0, "up_proj") => 5.0,
                _ => 16.0,
            };
            let (inf, outf) = match m {
                "gate_proj" | "up_proj" => (64, 128),
                "down_proj" => (128, 64),
                _ => (64, 64),
            };
            lora = lora.linear(&module, r, inf, outf);
            expected.push((module, r, alpha));
        }
    }
    let summary = merge(&lora, &base, 1, &MergeOptions::default(), dir.path()).unwrap();
    assert_eq!(summary.merged, 14);
    let out = read_model(&dir.path().join("out"));
    for (module, r, alpha) in expected {
        let s = alpha / r as f64;
        let used = summary.scales.iter().find(|x| x.module == module).unwrap();
        assert_eq!(
            (used.rank, used.alpha, used.scale),
            (r, alpha, s),
            "{module}"
        );
        let name = format!("{module}.weight");
        let want = linear_expected(&base.1[&name], lora.a(&module), lora.b(&module), s);
        assert_merged(&name, &out[&name], &want);
    }
}

#[test]
fn dora_renormalises_each_output_row() {
    let dir = tempfile::tempdir().unwrap();
    let base = fill_base(&compat_support::llama(1), Dtype::BF16, 4);
    let mut cfg = config(8, 8.0, &["q_proj", "down_proj"]);
    cfg["use_dora"] = json!(true);
    let mut lora = Lora::new(cfg, Dtype::F32)
        .linear("model.layers.0.self_attn.q_proj", 8, 64, 64)
        .linear("model.layers.0.mlp.down_proj", 8, 128, 64);
    lora.put(
        &format!("{P}model.layers.0.self_attn.q_proj.lora_magnitude_vector"),
        &[64],
    );
    lora.put(
        &format!("{P}model.layers.0.mlp.down_proj.lora_magnitude_vector"),
        &[64],
    );
    let summary = merge(&lora, &base, 1, &MergeOptions::default(), dir.path()).unwrap();
    assert!(summary.scales.iter().all(|s| s.dora));
    let out = read_model(&dir.path().join("out"));
    for module in [
        "model.layers.0.self_attn.q_proj",
        "model.layers.0.mlp.down_proj",
    ] {
        let name = format!("{module}.weight");
        let v = linear_expected(&base.1[&name], lora.a(module), lora.b(module), 1.0);
        let m = &lora.tensors[&format!("{P}{module}.lora_magnitude_vector")].values;
        let want = dora(&v, m);
        assert_merged(&name, &out[&name], &want);
        // Each output row's norm is |m|, up to bf16 rounding.
        let inner = want.len() / m.len();
        for (row, m) in out[&name].values.chunks(inner).zip(m) {
            let n = row.iter().map(|x| x * x).sum::<f64>().sqrt();
            assert!(
                (n - m.abs()).abs() <= 0.01 * m.abs() + 1e-6,
                "{name}: {n} vs {m}"
            );
        }
    }
}

#[test]
fn gpt2_conv1d_takes_the_delta_transposed_and_lora_bias_adds_scaled() {
    for options in devices() {
        gpt2_conv1d_on(&options);
    }
}

fn gpt2_conv1d_on(options: &MergeOptions) {
    let dir = tempfile::tempdir().unwrap();
    let base = fill_base(&compat_support::gpt2(1), Dtype::F32, 5);
    let mut cfg = config(4, 8.0, &["c_attn"]);
    cfg["fan_in_fan_out"] = json!(true);
    cfg["lora_bias"] = json!(true);
    let mut lora = Lora::new(cfg, Dtype::F32).linear("transformer.h.0.attn.c_attn", 4, 64, 192);
    lora.put(
        &format!("{P}transformer.h.0.attn.c_attn.lora_B.bias"),
        &[192],
    );
    merge(&lora, &base, 1, options, dir.path()).unwrap();
    let out = read_model(&dir.path().join("out"));
    let module = "transformer.h.0.attn.c_attn";
    let d = delta(lora.a(module), lora.b(module), 2.0); // [192, 64]
    let dt = transpose(&d, 192, 64); // [64, 192] as stored
    let w = &base.1["h.0.attn.c_attn.weight"];
    let want: Vec<f64> = w.values.iter().zip(&dt).map(|(w, d)| w + d).collect();
    assert_merged("c_attn.weight", &out["h.0.attn.c_attn.weight"], &want);
    let b = &base.1["h.0.attn.c_attn.bias"];
    let lb = &lora.tensors[&format!("{P}{module}.lora_B.bias")];
    let want: Vec<f64> = b
        .values
        .iter()
        .zip(&lb.values)
        .map(|(b, l)| b + 2.0 * l)
        .collect();
    assert_merged("c_attn.bias", &out["h.0.attn.c_attn.bias"], &want);
    assert_untouched(
        &base.1,
        &out,
        &[
            "h.0.attn.c_attn.weight".into(),
            "h.0.attn.c_attn.bias".into(),
        ],
    );
}

#[test]
fn embedding_lora_is_transposed_into_num_embeddings_by_dim() {
    let dir = tempfile::tempdir().unwrap();
    let base = fill_base(&compat_support::llama(1), Dtype::BF16, 6);
    let mut lora = Lora::new(config(4, 4.0, &["embed_tokens"]), Dtype::F32);
    lora.put(
        &format!("{P}model.embed_tokens.lora_embedding_A"),
        &[4, 100],
    );
    lora.put(&format!("{P}model.embed_tokens.lora_embedding_B"), &[64, 4]);
    merge(&lora, &base, 1, &MergeOptions::default(), dir.path()).unwrap();
    let out = read_model(&dir.path().join("out"));
    let a = &lora.tensors[&format!("{P}model.embed_tokens.lora_embedding_A")];
    let b = &lora.tensors[&format!("{P}model.embed_tokens.lora_embedding_B")];
    let d = transpose(&delta(a, b, 1.0), 64, 100); // [100, 64]
    let w = &base.1["model.embed_tokens.weight"];
    let want: Vec<f64> = w.values.iter().zip(&d).map(|(w, d)| w + d).collect();
    assert_merged("embed_tokens", &out["model.embed_tokens.weight"], &want);
}

#[test]
fn modules_to_save_replace_the_base_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let base = fill_base(&compat_support::llama(1), Dtype::BF16, 7);
    let mut cfg = config(4, 8.0, &["q_proj"]);
    cfg["modules_to_save"] = json!(["lm_head"]);
    let mut lora = Lora::new(cfg, Dtype::BF16).linear("model.layers.0.self_attn.q_proj", 4, 64, 64);
    lora.put(&format!("{P}lm_head.weight"), &[100, 64]);
    let summary = merge(&lora, &base, 1, &MergeOptions::default(), dir.path()).unwrap();
    assert_eq!((summary.merged, summary.replaced), (1, 1));
    let out = read_model(&dir.path().join("out"));
    assert_eq!(
        out["lm_head.weight"].values,
        lora.tensors[&format!("{P}lm_head.weight")].values
    );
    let module = "model.layers.0.self_attn.q_proj";
    let name = format!("{module}.weight");
    // bf16 adapter weights, math in f32.
    assert_merged(
        &name,
        &out[&name],
        &linear_expected(&base.1[&name], lora.a(module), lora.b(module), 2.0),
    );
}

#[test]
fn sharded_base_in_sharded_output_out_with_an_index() {
    let dir = tempfile::tempdir().unwrap();
    let base = fill_base(&compat_support::llama(2), Dtype::BF16, 8);
    let lora = Lora::new(config(4, 8.0, &["o_proj"]), Dtype::F32)
        .linear("model.layers.0.self_attn.o_proj", 4, 64, 64)
        .linear("model.layers.1.self_attn.o_proj", 4, 64, 64);
    let options = MergeOptions {
        dtype: None,
        shard_size: 20_000,
        ..MergeOptions::default()
    };
    let summary = merge(&lora, &base, 3, &options, dir.path()).unwrap();
    let o = dir.path().join("out");
    let index: Value =
        serde_json::from_slice(&std::fs::read(o.join("model.safetensors.index.json")).unwrap())
            .unwrap();
    let map = index["weight_map"].as_object().unwrap();
    assert_eq!(map.len(), base.1.len());
    let shards: std::collections::BTreeSet<&str> =
        map.values().map(|v| v.as_str().unwrap()).collect();
    assert!(shards.len() > 2, "{shards:?}");
    let total: u64 = base.1.values().map(|t| t.values.len() as u64 * 2).sum();
    assert_eq!(index["metadata"]["total_size"], json!(total));
    for f in &summary.files {
        assert_eq!(
            std::fs::metadata(o.join(&f.path)).unwrap().len(),
            f.size,
            "{}",
            f.path
        );
        if f.path.ends_with(".safetensors") {
            assert!(
                f.size <= 20_000 + 4096
                    || map.values().filter(|v| *v == f.path.as_str()).count() == 1
            );
        }
    }
    // Every tensor is in the shard the index names.
    for (name, file) in map {
        let bytes = std::fs::read(o.join(file.as_str().unwrap())).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        assert!(st.tensor(name).is_ok(), "{name} not in {file}");
    }
    let out = read_model(&o);
    let mut changed = Vec::new();
    for i in 0..2 {
        let module = format!("model.layers.{i}.self_attn.o_proj");
        let name = format!("{module}.weight");
        assert_merged(
            &name,
            &out[&name],
            &linear_expected(&base.1[&name], lora.a(&module), lora.b(&module), 2.0),
        );
        changed.push(name);
    }
    assert_untouched(&base.1, &out, &changed);
}

#[test]
fn output_dtype_converts_every_float_tensor_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let base = fill_base(&compat_support::llama(1), Dtype::BF16, 9);
    let lora = Lora::new(config(4, 8.0, &["q_proj"]), Dtype::F32).linear(
        "model.layers.0.self_attn.q_proj",
        4,
        64,
        64,
    );
    let options = MergeOptions {
        dtype: Some(Dtype::F32),
        shard_size: 1 << 30,
        ..MergeOptions::default()
    };
    merge(&lora, &base, 1, &options, dir.path()).unwrap();
    let out = read_model(&dir.path().join("out"));
    for (name, t) in &base.1 {
        assert_eq!(out[name].dtype, Dtype::F32, "{name}");
        if !name.contains("q_proj") {
            assert_eq!(out[name].values, t.values, "{name}: bf16 → f32 is exact");
        }
    }
    let module = "model.layers.0.self_attn.q_proj";
    let name = format!("{module}.weight");
    assert_merged(
        &name,
        &out[&name],
        &linear_expected(&base.1[&name], lora.a(module), lora.b(module), 2.0),
    );
}

fn refused(adapter: &Lora, base: &(Value, BTreeMap<String, T>)) -> MergeError {
    let dir = tempfile::tempdir().unwrap();
    let err = merge(adapter, base, 1, &MergeOptions::default(), dir.path()).unwrap_err();
    assert!(
        !dir.path().join("out").exists(),
        "nothing is left at the output"
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    err
}

#[test]
fn refuses_non_lora_types_rewritten_bases_and_incompatible_pairs() {
    let base = fill_base(&compat_support::llama(1), Dtype::BF16, 10);
    let q = "model.layers.0.self_attn.q_proj";

    let mut cfg = config(4, 8.0, &["q_proj"]);
    cfg["peft_type"] = json!("LOHA");
    let err = refused(&Lora::new(cfg, Dtype::F32).linear(q, 4, 64, 64), &base);
    assert!(
        matches!(err, MergeError::Refused(_)) && err.to_string().contains("LOHA"),
        "{err}"
    );

    let mut cfg = config(4, 8.0, &["q_proj"]);
    cfg["init_lora_weights"] = json!("pissa");
    let err = refused(&Lora::new(cfg, Dtype::F32).linear(q, 4, 64, 64), &base);
    assert!(
        matches!(err, MergeError::Refused(_)) && err.to_string().contains("rewrote the base"),
        "{err}"
    );

    // Trained for hidden 128 while the base has 64.
    let err = refused(
        &Lora::new(config(4, 8.0, &["q_proj"]), Dtype::F32).linear(q, 4, 128, 128),
        &base,
    );
    assert!(
        matches!(&err, MergeError::Incompatible(r) if !r.is_empty()),
        "{err}"
    );
    assert_eq!(err.code(), "incompatible");

    // A layer the base lacks.
    let err = refused(
        &Lora::new(config(4, 8.0, &["q_proj"]), Dtype::F32).linear(
            "model.layers.5.self_attn.q_proj",
            4,
            64,
            64,
        ),
        &base,
    );
    assert!(err.to_string().contains("layer 5"), "{err}");
}

#[test]
fn refuses_an_existing_output_and_bad_options() {
    let dir = tempfile::tempdir().unwrap();
    let base = fill_base(&compat_support::llama(1), Dtype::BF16, 11);
    let lora = Lora::new(config(4, 8.0, &["q_proj"]), Dtype::F32).linear(
        "model.layers.0.self_attn.q_proj",
        4,
        64,
        64,
    );
    std::fs::create_dir_all(dir.path().join("out")).unwrap();
    std::fs::write(dir.path().join("out/keep"), b"x").unwrap();
    let err = merge(&lora, &base, 1, &MergeOptions::default(), dir.path()).unwrap_err();
    assert!(matches!(err, MergeError::Usage(_)), "{err}");
    assert!(
        dir.path().join("out/keep").is_file(),
        "the existing directory is untouched"
    );
    std::fs::remove_dir_all(dir.path().join("out")).unwrap();
    let bad = MergeOptions {
        dtype: Some(Dtype::I8),
        shard_size: 1,
        ..MergeOptions::default()
    };
    assert!(matches!(
        merge(&lora, &base, 1, &bad, dir.path()),
        Err(MergeError::Usage(_))
    ));
    let bad = MergeOptions {
        dtype: None,
        shard_size: 0,
        ..MergeOptions::default()
    };
    assert!(matches!(
        merge(&lora, &base, 1, &bad, dir.path()),
        Err(MergeError::Usage(_))
    ));
    assert!(!dir.path().join("out").exists());
}
