//! A random Llama-shaped model for the benchmarks (merge, quantise): its tensors, a
//! streaming safetensors writer, and a model directory with its `config.json`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use adapter_core::merge::f32_to_bf16;
use anyhow::Result;
use serde_json::json;

/// The dimensions of a Llama-shaped model (untied `lm_head`).
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub hidden: u64,
    pub inter: u64,
    pub layers: u64,
    pub vocab: u64,
}

impl Shape {
    /// ~0.67B parameters: hidden 4096, intermediate 11008, 2 layers, vocab 32000.
    pub const FULL: Shape = Shape {
        hidden: 4096,
        inter: 11008,
        layers: 2,
        vocab: 32000,
    };
    pub const SMALL: Shape = Shape {
        hidden: 1024,
        inter: 2752,
        layers: 2,
        vocab: 32000,
    };
    pub const TINY: Shape = Shape {
        hidden: 256,
        inter: 688,
        layers: 2,
        vocab: 1000,
    };

    pub fn parameters(&self) -> u64 {
        tensors(self)
            .iter()
            .map(|(_, s)| s.iter().product::<u64>())
            .sum()
    }
}

/// (name, shape) of the base, in name order.
pub fn tensors(s: &Shape) -> Vec<(String, Vec<u64>)> {
    let mut t = BTreeMap::new();
    t.insert(
        "model.embed_tokens.weight".to_owned(),
        vec![s.vocab, s.hidden],
    );
    t.insert("lm_head.weight".to_owned(), vec![s.vocab, s.hidden]);
    t.insert("model.norm.weight".to_owned(), vec![s.hidden]);
    for i in 0..s.layers {
        let p = format!("model.layers.{i}");
        for m in ["q_proj", "k_proj", "v_proj", "o_proj"] {
            t.insert(
                format!("{p}.self_attn.{m}.weight"),
                vec![s.hidden, s.hidden],
            );
        }
        t.insert(format!("{p}.mlp.gate_proj.weight"), vec![s.inter, s.hidden]);
        t.insert(format!("{p}.mlp.up_proj.weight"), vec![s.inter, s.hidden]);
        t.insert(format!("{p}.mlp.down_proj.weight"), vec![s.hidden, s.inter]);
        t.insert(format!("{p}.input_layernorm.weight"), vec![s.hidden]);
        t.insert(
            format!("{p}.post_attention_layernorm.weight"),
            vec![s.hidden],
        );
    }
    t.into_iter().collect()
}

/// Random values in [-0.05, 0.05) (xorshift64*), never NaN.
#[derive(Debug)]
struct Values(u64);

impl Values {
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 24) as f32;
        (x - 0.5) * 0.1
    }
}

/// Write a safetensors file of `list` in `dtype` ("F32" or "BF16"), streaming the data.
pub fn write_file(path: &Path, list: &[(String, Vec<u64>)], dtype: &str, seed: u64) -> Result<u64> {
    let width = if dtype == "F32" { 4 } else { 2 };
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), json!({"format": "pt"}));
    let mut offset = 0u64;
    for (name, shape) in list {
        let len = shape.iter().product::<u64>() * width;
        header.insert(
            name.clone(),
            json!({"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len]}),
        );
        offset += len;
    }
    let mut text = serde_json::to_string(&header)?;
    while text.len() % 8 != 0 {
        text.push(' ');
    }
    let mut out = BufWriter::with_capacity(8 << 20, File::create(path)?);
    out.write_all(&(text.len() as u64).to_le_bytes())?;
    out.write_all(text.as_bytes())?;
    let mut rng = Values(0x9E37_79B9_7F4A_7C15 ^ seed);
    let mut buf = Vec::with_capacity(8 << 20);
    for (_, shape) in list {
        let mut left = shape.iter().product::<u64>();
        while left > 0 {
            let n = left.min(1 << 20);
            buf.clear();
            for _ in 0..n {
                let v = rng.next();
                if width == 4 {
                    buf.extend_from_slice(&v.to_le_bytes());
                } else {
                    buf.extend_from_slice(&f32_to_bf16(v).to_le_bytes());
                }
            }
            out.write_all(&buf)?;
            left -= n;
        }
    }
    out.flush()?;
    Ok(8 + text.len() as u64 + offset)
}

/// A model directory `dir` (created): `model.safetensors` of `shape` in `dtype` ("F32" or
/// "BF16", values from `seed`) and a Llama `config.json`. Returns the weights' size.
pub fn write_model(dir: &Path, shape: &Shape, dtype: &str, seed: u64) -> Result<u64> {
    std::fs::create_dir_all(dir)?;
    let bytes = write_file(&dir.join("model.safetensors"), &tensors(shape), dtype, seed)?;
    std::fs::write(
        dir.join("config.json"),
        json!({"architectures": ["LlamaForCausalLM"], "model_type": "llama",
               "hidden_size": shape.hidden, "intermediate_size": shape.inter,
               "num_hidden_layers": shape.layers, "vocab_size": shape.vocab,
               "num_attention_heads": 32, "num_key_value_heads": 32,
               "rms_norm_eps": 1e-5, "max_position_embeddings": 4096,
               "tie_word_embeddings": false})
        .to_string(),
    )?;
    Ok(bytes)
}
