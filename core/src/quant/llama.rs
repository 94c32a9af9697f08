//! The Llama family in GGUF: llama.cpp's tensor names, its q/k row permutation and the
//! `llama.*` hyper-parameters from `config.json`.
//!
//! Names follow gguf-py's `tensor_mapping.py` / `MODEL_TENSORS[MODEL_ARCH.LLAMA]`; the
//! permutation is `LlamaModel.permute` in llama.cpp's convert_hf_to_gguf.py:
//!
//! ```text
//! if n_head_kv is not None and n_head != n_head_kv: n_head = n_head_kv
//! w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)
//! ```
//!
//! applied to `q_proj` with `n_head` and to `k_proj` with `n_head_kv`: HF stores each head's
//! rotary halves one after the other, ggml's rope pairs neighbouring rows.

use serde_json::Value;

use super::QuantError;
use super::gguf::MetaValue;

/// What a Hugging Face tensor becomes in a llama GGUF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapped {
    pub gguf_name: String,
    /// Rows to permute with this many heads (q: n_head, k: n_head_kv).
    pub permute_heads: Option<u64>,
}

/// Map a Hugging Face Llama tensor name. `Ok(None)`: a tensor llama.cpp does not load
/// (`rotary_emb.inv_freq`), skipped as its converter does.
pub fn map_name(name: &str, hp: &LlamaParams) -> Result<Option<Mapped>, QuantError> {
    let plain = |s: &str| {
        Ok(Some(Mapped {
            gguf_name: s.to_owned(),
            permute_heads: None,
        }))
    };
    match name {
        "model.embed_tokens.weight" => return plain("token_embd.weight"),
        "model.norm.weight" => return plain("output_norm.weight"),
        "lm_head.weight" => return plain("output.weight"),
        _ => {}
    }
    if name.ends_with(".rotary_emb.inv_freq") {
        return Ok(None);
    }
    let unknown = || QuantError::Unsupported(format!("tensor `{name}` has no llama GGUF name"));
    let rest = name.strip_prefix("model.layers.").ok_or_else(unknown)?;
    let (layer, module) = rest.split_once('.').ok_or_else(unknown)?;
    let n: u64 = layer.parse().map_err(|_| unknown())?;
    if n >= hp.block_count {
        return Err(QuantError::Invalid(format!(
            "tensor `{name}`: layer {n} but num_hidden_layers is {}",
            hp.block_count
        )));
    }
    let (module, suffix) = module.rsplit_once('.').ok_or_else(unknown)?;
    if suffix != "weight" && suffix != "bias" {
        return Err(unknown());
    }
    let (short, permute_heads) = match module {
        "self_attn.q_proj" => ("attn_q", Some(hp.head_count)),
        "self_attn.k_proj" => ("attn_k", Some(hp.head_count_kv)),
        "self_attn.v_proj" => ("attn_v", None),
        "self_attn.o_proj" => ("attn_output", None),
        "mlp.gate_proj" => ("ffn_gate", None),
        "mlp.up_proj" => ("ffn_up", None),
        "mlp.down_proj" => ("ffn_down", None),
        "input_layernorm" => ("attn_norm", None),
        "post_attention_layernorm" => ("ffn_norm", None),
        _ => return Err(unknown()),
    };
    Ok(Some(Mapped {
        gguf_name: format!("blk.{n}.{short}.{suffix}"),
        permute_heads,
    }))
}

/// The rows per head of a q/k projection of `rows` rows over `heads` heads, when they split
/// into heads of an even number of rows (what the permutation needs).
pub fn head_rows(rows: usize, heads: usize) -> Option<usize> {
    (heads > 0 && rows.is_multiple_of(2 * heads)).then(|| rows / heads)
}

/// Where row `src` of a q/k projection goes under [`permute_rows`], with heads of `dim`
/// rows (`dim` even): row `j·dim/2 + i` of a head becomes its row `2i + j`.
pub fn permuted_row(src: usize, dim: usize) -> usize {
    let (head, within) = (src / dim, src % dim);
    let half = dim / 2;
    head * dim + 2 * (within % half) + within / half
}

/// Permute the rows of a `[rows, cols]` row-major matrix as `LlamaModel.permute` does:
/// within each head, row `j·half + i` moves to `2·i + j` (j ∈ {0, 1}).
pub fn permute_rows(
    x: &[f32],
    rows: usize,
    cols: usize,
    heads: usize,
) -> Result<Vec<f32>, QuantError> {
    let dim = head_rows(rows, heads).ok_or_else(|| {
        QuantError::Invalid(format!("cannot permute {rows} rows over {heads} heads"))
    })?;
    let mut out = vec![0f32; x.len()];
    for (src, row) in x.chunks_exact(cols.max(1)).enumerate().take(rows) {
        let dst = permuted_row(src, dim);
        out[dst * cols..(dst + 1) * cols].copy_from_slice(row);
    }
    Ok(out)
}

/// The hyper-parameters llama.cpp reads, from a Llama `config.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaParams {
    pub context_length: u64,
    pub embedding_length: u64,
    pub block_count: u64,
    pub feed_forward_length: u64,
    pub head_count: u64,
    pub head_count_kv: u64,
    pub rope_freq_base: f32,
    pub rms_norm_eps: f32,
    pub vocab_size: u64,
}

impl LlamaParams {
    pub fn from_config(config: &Value) -> Result<Self, QuantError> {
        let arch_ok = config["model_type"].as_str() == Some("llama")
            || config["architectures"]
                .as_array()
                .is_some_and(|a| a.iter().any(|v| v.as_str() == Some("LlamaForCausalLM")));
        if !arch_ok {
            return Err(QuantError::Unsupported(
                "GGUF output supports the Llama family only (config.json model_type `llama`)"
                    .into(),
            ));
        }
        let int = |k: &str| {
            config[k]
                .as_u64()
                .filter(|&v| v > 0 && v <= u64::from(u32::MAX))
                .ok_or_else(|| {
                    QuantError::Invalid(format!("config.json: `{k}` must be a positive integer"))
                })
        };
        let head_count = int("num_attention_heads")?;
        let head_count_kv = match config.get("num_key_value_heads") {
            None | Some(Value::Null) => head_count,
            Some(_) => int("num_key_value_heads")?,
        };
        let embedding_length = int("hidden_size")?;
        if embedding_length % head_count != 0 || head_count % head_count_kv != 0 {
            return Err(QuantError::Invalid(
                "config.json: hidden_size, num_attention_heads and num_key_value_heads do not divide".into(),
            ));
        }
        let float = |k: &str, default: f64| match config.get(k) {
            None | Some(Value::Null) => Ok(default as f32),
            Some(v) => v
                .as_f64()
                .filter(|f| f.is_finite() && *f > 0.0)
                .map(|f| f as f32)
                .ok_or_else(|| {
                    QuantError::Invalid(format!("config.json: `{k}` must be a positive number"))
                }),
        };
        Ok(Self {
            context_length: int("max_position_embeddings")?,
            embedding_length,
            block_count: int("num_hidden_layers")?,
            feed_forward_length: int("intermediate_size")?,
            head_count,
            head_count_kv,
            rope_freq_base: float("rope_theta", 10000.0)?,
            rms_norm_eps: float("rms_norm_eps", 1e-6)?,
            vocab_size: int("vocab_size")?,
        })
    }

    /// The `llama.*` keys.
    pub fn metadata(&self) -> Vec<(String, MetaValue)> {
        let u = |k: &str, v: u64| (format!("llama.{k}"), MetaValue::U32(v as u32));
        vec![
            u("context_length", self.context_length),
            u("embedding_length", self.embedding_length),
            u("block_count", self.block_count),
            u("feed_forward_length", self.feed_forward_length),
            u(
                "rope.dimension_count",
                self.embedding_length / self.head_count,
            ),
            u("attention.head_count", self.head_count),
            u("attention.head_count_kv", self.head_count_kv),
            (
                "llama.rope.freq_base".into(),
                MetaValue::F32(self.rope_freq_base),
            ),
            (
                "llama.attention.layer_norm_rms_epsilon".into(),
                MetaValue::F32(self.rms_norm_eps),
            ),
            u("vocab_size", self.vocab_size),
        ]
    }
}
