//! What the base's `config.json` (and its tensor names) say about its geometry, and the
//! checks that need it: hidden size and vocabulary size against what the adapter implies.
//!
//! Key names follow transformers' configuration classes: `hidden_size` (Llama, Mistral,
//! Qwen2, Gemma…), `n_embd` (GPT-2), `d_model` (T5, OPT); `vocab_size` (all);
//! `num_hidden_layers` / `n_layer` / `num_layers`. Multimodal configs nest the language
//! model under `text_config`, which is read when the top level lacks a key.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use crate::diag::{Finding, Findings};
use crate::peft::{AdapterReport, ModuleKind};
use crate::safetensors::TensorInfo;

/// The base's geometry, as far as `config.json` and the tensor names tell.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BaseGeometry {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_type: Option<String>,
    /// `architectures[0]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hidden_size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vocab_size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_layers: Option<u64>,
    /// `tie_word_embeddings: true` in the config, or no `lm_head.weight` among the tensors
    /// while an input embedding exists (GPT-2 style checkpoints).
    pub tied_embeddings: bool,
}

fn lookup<'a>(config: &'a Value, keys: &[&str]) -> Option<&'a Value> {
    let levels = [Some(config), config.get("text_config")];
    levels
        .into_iter()
        .flatten()
        .find_map(|level| keys.iter().find_map(|k| level.get(*k)))
}

fn number(config: &Value, keys: &[&str]) -> Option<u64> {
    lookup(config, keys).and_then(Value::as_u64)
}

/// Leaves of the input embedding (transformers' names).
const EMBEDDING_LEAVES: &[&str] = &["embed_tokens", "wte", "word_embeddings", "embed_in"];
/// Leaves of the output layer.
const OUTPUT_LEAVES: &[&str] = &["lm_head", "embed_out"];

fn leaf(module: &str) -> &str {
    module.rsplit('.').next().unwrap_or(module)
}

fn is_vocab_module(module: &str) -> bool {
    let l = leaf(module);
    EMBEDDING_LEAVES.contains(&l) || OUTPUT_LEAVES.contains(&l)
}

impl BaseGeometry {
    /// Read the geometry from `config.json` (if any) and the tensor names.
    pub fn from_base(config: Option<&Value>, tensors: &BTreeMap<String, TensorInfo>) -> Self {
        let null = Value::Null;
        let c = config.unwrap_or(&null);
        let has_lm_head = tensors.keys().any(|n| n.ends_with("lm_head.weight"));
        let has_embedding = tensors.keys().any(|n| {
            n.strip_suffix(".weight")
                .is_some_and(|m| EMBEDDING_LEAVES.contains(&leaf(m)))
        });
        let tie = lookup(c, &["tie_word_embeddings"]).and_then(Value::as_bool);
        Self {
            model_type: lookup(c, &["model_type"])
                .and_then(Value::as_str)
                .map(str::to_owned),
            architecture: lookup(c, &["architectures"])
                .and_then(|a| a.get(0))
                .and_then(Value::as_str)
                .map(str::to_owned),
            hidden_size: number(c, &["hidden_size", "n_embd", "d_model"]),
            vocab_size: number(c, &["vocab_size", "n_vocab", "padded_vocab_size"]),
            num_layers: number(c, &["num_hidden_layers", "n_layer", "num_layers"]),
            tied_embeddings: tie == Some(true) || (tie.is_none() && has_embedding && !has_lm_head),
        }
    }
}

/// Module leaves whose `in_features` is the model's hidden size (attention inputs, MLP
/// inputs, the output head), by the names of common transformers architectures.
const HIDDEN_IN: &[&str] = &[
    "q_proj",
    "k_proj",
    "v_proj",
    "qkv_proj",
    "gate_proj",
    "up_proj",
    "gate_up_proj",
    "w1",
    "w3",
    "c_attn",
    "c_fc",
    "query_key_value",
    "Wqkv",
    "fc1",
    "dense_h_to_4h",
    "lm_head",
];
/// Module leaves whose `out_features` is the hidden size (attention and MLP outputs).
const HIDDEN_OUT: &[&str] = &[
    "o_proj",
    "down_proj",
    "w2",
    "c_proj",
    "out_proj",
    "fc2",
    "dense_4h_to_h",
];

/// The hidden size that the modules whose shape did not fit the base imply: the most
/// frequent candidate, with one module that shows it. Only misfits vote, so a multimodal
/// adapter (a vision tower with its own width) that fits never raises it.
fn implied_hidden(report: &AdapterReport) -> Option<(u64, String)> {
    let misfits: BTreeSet<&str> = report
        .findings
        .errors
        .iter()
        .filter(|f| f.code == "base_shape_mismatch")
        .filter_map(|f| f.subject.as_deref())
        .collect();
    let mut votes: BTreeMap<u64, (usize, String)> = BTreeMap::new();
    for m in report
        .modules
        .iter()
        .filter(|m| misfits.contains(m.module.as_str()))
    {
        let l = leaf(&m.module);
        let h = match m.kind {
            ModuleKind::Embedding => m.out_features,
            ModuleKind::Linear if HIDDEN_IN.contains(&l) => m.in_features,
            ModuleKind::Linear if HIDDEN_OUT.contains(&l) => m.out_features,
            _ => 0,
        };
        if h > 0 {
            let entry = votes.entry(h).or_insert((0, m.module.clone()));
            entry.0 += 1;
        }
    }
    votes
        .into_iter()
        .max_by_key(|(_, (n, _))| *n)
        .map(|(h, (_, example))| (h, example))
}

/// Checks that need the base's geometry: hidden size and vocabulary size.
pub fn check_geometry(report: &AdapterReport, geometry: &BaseGeometry) -> Findings {
    let mut f = Findings::default();
    if let (Some(base_h), Some((h, example))) = (geometry.hidden_size, implied_hidden(report))
        && h != base_h
    {
        // Beside the per-module shape errors: the one cause a person can act on.
        f.error(Finding::new(
            "hidden_size_mismatch",
            format!(
                "the adapter was trained on a model with hidden size {h} (e.g. {example}), this \
                 base has hidden size {base_h} (config.json): the adapter belongs to another \
                 model size or family; validate it against the base it was trained on"
            ),
        ));
    }
    let Some(vocab) = geometry.vocab_size else {
        return f;
    };
    let rows = report
        .modules
        .iter()
        .filter(|m| m.kind == ModuleKind::Embedding && m.in_features > 0)
        .map(|m| (m.module.clone(), m.in_features, m.base_shape.clone()))
        .chain(
            report
                .modules_to_save
                .iter()
                .filter(|s| {
                    s.shape.len() == 2
                        && s.base_tensor
                            .strip_suffix(".weight")
                            .is_some_and(is_vocab_module)
                })
                .map(|s| (s.tensor.clone(), s.shape[0], None)),
        );
    for (subject, n, base_shape) in rows {
        if n == vocab {
            continue;
        }
        let base_rows = base_shape.and_then(|s| s.first().copied());
        if base_rows == Some(n) {
            f.warn(
                Finding::new(
                    "vocab_size_differs",
                    format!(
                        "{subject}: {n} token rows match the base's embedding tensor, but \
                         config.json says vocab_size {vocab}"
                    ),
                )
                .about(subject),
            );
        } else {
            f.error(
                Finding::new(
                    "vocab_size_mismatch",
                    format!(
                        "{subject}: the adapter has {n} token rows, the base's vocabulary is \
                         {vocab} (config.json vocab_size): it was trained with a resized \
                         vocabulary (tokens added during fine-tuning?); use the base and \
                         tokenizer it was trained with, or resize the base's embeddings to {n} \
                         first"
                    ),
                )
                .about(subject),
            );
        }
    }
    f
}
