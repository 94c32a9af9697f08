//! Real-shaped base models for the `validate` checks: tensor headers as a checkpoint's
//! shards list them, and the `config.json` transformers writes for the same architecture,
//! both built in code. Adapters come from `peft_support::Adapter`.
#![allow(dead_code)]

use std::collections::BTreeMap;

use adapter_core::api::BaseModelRef;
use adapter_core::compat::{AdapterFacts, BaseFacts, CompatReport, validate};
use adapter_core::digest::Digest;
use adapter_core::safetensors::{Dtype, TensorInfo};
use serde_json::{Value, json};

use crate::peft_support::Adapter;

/// A base under construction: tensors (BF16) and config.json.
#[derive(Debug, Clone)]
pub struct Base {
    pub tensors: BTreeMap<String, TensorInfo>,
    pub config: Option<Value>,
    pub content: Option<Digest>,
}

impl Base {
    pub fn tensor(mut self, name: &str, shape: &[u64]) -> Self {
        self.tensors.insert(
            name.to_owned(),
            TensorInfo {
                name: name.to_owned(),
                dtype: Dtype::BF16,
                shape: shape.to_vec(),
                data_offsets: (0, 0),
            },
        );
        self
    }

    pub fn without(mut self, name: &str) -> Self {
        assert!(self.tensors.remove(name).is_some(), "no tensor {name}");
        self
    }

    /// Set (or add) one config.json key.
    pub fn config(mut self, key: &str, value: Value) -> Self {
        self.config
            .get_or_insert_with(|| json!({}))
            .as_object_mut()
            .unwrap()
            .insert(key.to_owned(), value);
        self
    }

    pub fn content(mut self, digest: Digest) -> Self {
        self.content = Some(digest);
        self
    }

    /// The shape fingerprint: a digest over names, dtypes and shapes (any stable function
    /// serves these tests; the registry computes its own).
    pub fn fingerprint(&self) -> Digest {
        let text: String = self
            .tensors
            .values()
            .map(|t| format!("{}:{}:{:?};", t.name, t.dtype, t.shape))
            .collect();
        Digest::of_bytes(text.as_bytes())
    }

    pub fn facts(&self) -> BaseFacts {
        BaseFacts {
            tensors: self.tensors.clone(),
            config: self.config.clone(),
            content_digest: self.content,
            shape_fingerprint: self.fingerprint(),
        }
    }
}

/// A Llama-style causal LM: `layers` decoder layers, hidden 64, intermediate 128, vocab
/// 100, untied lm_head, with the config.json `LlamaForCausalLM` has.
pub fn llama(layers: u64) -> Base {
    let mut b = Base {
        tensors: BTreeMap::new(),
        config: None,
        content: None,
    }
    .tensor("model.embed_tokens.weight", &[100, 64])
    .tensor("model.norm.weight", &[64])
    .tensor("lm_head.weight", &[100, 64]);
    for i in 0..layers {
        let p = format!("model.layers.{i}");
        for m in ["q_proj", "k_proj", "v_proj", "o_proj"] {
            b = b.tensor(&format!("{p}.self_attn.{m}.weight"), &[64, 64]);
        }
        b = b
            .tensor(&format!("{p}.mlp.gate_proj.weight"), &[128, 64])
            .tensor(&format!("{p}.mlp.up_proj.weight"), &[128, 64])
            .tensor(&format!("{p}.mlp.down_proj.weight"), &[64, 128])
            .tensor(&format!("{p}.input_layernorm.weight"), &[64])
            .tensor(&format!("{p}.post_attention_layernorm.weight"), &[64]);
    }
    b.config("architectures", json!(["LlamaForCausalLM"]))
        .config("model_type", json!("llama"))
        .config("hidden_size", json!(64))
        .config("intermediate_size", json!(128))
        .config("num_hidden_layers", json!(layers))
        .config("vocab_size", json!(100))
        .config("tie_word_embeddings", json!(false))
        .config("torch_dtype", json!("bfloat16"))
}

/// A GPT-2 checkpoint: `h.N.*` without the `transformer.` prefix, Conv1D weights stored
/// `[in, out]`, no lm_head (tied to `wte`), the config.json `GPT2LMHeadModel` has.
pub fn gpt2(layers: u64) -> Base {
    let mut b = Base {
        tensors: BTreeMap::new(),
        config: None,
        content: None,
    }
    .tensor("wte.weight", &[100, 64])
    .tensor("wpe.weight", &[32, 64])
    .tensor("ln_f.weight", &[64]);
    for i in 0..layers {
        b = b
            .tensor(&format!("h.{i}.attn.c_attn.weight"), &[64, 192])
            .tensor(&format!("h.{i}.attn.c_attn.bias"), &[192])
            .tensor(&format!("h.{i}.attn.c_proj.weight"), &[64, 64])
            .tensor(&format!("h.{i}.mlp.c_fc.weight"), &[64, 256])
            .tensor(&format!("h.{i}.mlp.c_proj.weight"), &[256, 64]);
    }
    b.config("architectures", json!(["GPT2LMHeadModel"]))
        .config("model_type", json!("gpt2"))
        .config("n_embd", json!(64))
        .config("n_layer", json!(layers))
        .config("n_positions", json!(32))
        .config("vocab_size", json!(100))
}

/// The adapter config PEFT writes for a Llama LoRA (the fields that matter here).
pub fn lora_config(r: u64, targets: &[&str]) -> Value {
    json!({
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": "tiny/llama",
        "r": r,
        "lora_alpha": 2 * r,
        "target_modules": targets,
        "bias": "none",
    })
}

/// `lora_A`/`lora_B` for `targets` (Llama attention projections, 64 → 64) on every layer.
pub fn llama_adapter(r: u64, layers: u64, targets: &[&str], hidden: u64) -> Adapter {
    let mut a = Adapter::new(lora_config(r, targets));
    for i in 0..layers {
        for t in targets {
            a = a.linear(
                &format!("model.layers.{i}.self_attn.{t}"),
                r,
                hidden,
                hidden,
            );
        }
    }
    a
}

pub fn run(adapter: &Adapter, base: &Base) -> CompatReport {
    run_recorded(adapter, base, None)
}

pub fn run_recorded(
    adapter: &Adapter,
    base: &Base,
    recorded: Option<BaseModelRef>,
) -> CompatReport {
    let facts = AdapterFacts {
        config_json: adapter.config.to_string().into_bytes(),
        tensors: adapter.infos(),
        recorded_base: recorded,
    };
    validate(&facts, &base.facts())
}

/// The report as JSON (what `adapterctl validate --json` prints).
pub fn json(report: &CompatReport) -> Value {
    serde_json::to_value(report).unwrap()
}

/// Problem codes of one serving stack.
pub fn problems(report: &CompatReport, stack: &str) -> Vec<String> {
    codes_of(&report.serving.stacks[stack]["problems"])
}

pub fn notes(report: &CompatReport, stack: &str) -> Vec<String> {
    codes_of(&report.serving.stacks[stack]["notes"])
}

fn codes_of(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_owned())
        .collect()
}
