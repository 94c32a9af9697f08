//! What common serving stacks make of an adapter: vLLM, LoRAX, and llama.cpp's
//! `convert_lora_to_gguf.py`. Table-driven; each rule cites the file it mirrors (read at the
//! revisions named in docs/VALIDATION.md). These facts do not change the verdict (which is
//! about the base); a stack's `problems` say why it would refuse the adapter or serve it
//! differently from PEFT, its `notes` what to know before deploying.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::ServingProfile;
use super::base_config::BaseGeometry;
use crate::diag::Finding;
use crate::peft::{AdapterConfig, AdapterReport, Bias, ModuleKind};

/// vLLM's accepted `--max-lora-rank` values: `vllm/config/lora.py`,
/// `MaxLoRARanks = Literal[1, 8, 16, 32, 64, 128, 256, 320, 512]` (older releases:
/// `LoRAConfig.__post_init__`, `possible_max_ranks`, without 1).
pub const VLLM_MAX_LORA_RANKS: &[u64] = &[1, 8, 16, 32, 64, 128, 256, 320, 512];

/// LoRAX's supported target modules per architecture: `docs/models/adapters/lora.md`
/// ("Target Modules"; other modules are ignored with a warning on the backend), keyed by
/// transformers' `model_type`.
pub const LORAX_TARGETS: &[(&str, &[&str])] = &[
    ("llama", LLAMA_LIKE),
    ("mistral", LLAMA_LIKE),
    ("qwen2", LLAMA_LIKE),
    ("cohere", LLAMA_LIKE),
    (
        "mixtral",
        &["q_proj", "k_proj", "v_proj", "o_proj", "lm_head"],
    ),
    (
        "gemma",
        &[
            "q_proj",
            "k_proj",
            "v_proj",
            "o_proj",
            "gate_proj",
            "up_proj",
            "down_proj",
        ],
    ),
    (
        "phi3",
        &["qkv_proj", "o_proj", "gate_up_proj", "down_proj", "lm_head"],
    ),
    (
        "phi",
        &[
            "q_proj", "k_proj", "v_proj", "dense", "fc1", "fc2", "lm_head",
        ],
    ),
    ("qwen", &["c_attn", "c_proj", "w1", "w2", "lm_head"]),
    ("dbrx", &["Wqkv", "out_proj", "lm_head"]),
    ("gpt2", &["c_attn", "c_proj", "c_fc"]),
    (
        "bloom",
        &[
            "query_key_value",
            "dense",
            "dense_h_to_4h",
            "dense_4h_to_h",
            "lm_head",
        ],
    ),
];
const LLAMA_LIKE: &[&str] = &[
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
    "lm_head",
];

/// LoRAX pads ranks for its SGMV kernels: `server/lorax_server/utils/sgmv.py`,
/// `MIN_SGMV_RANK = 8`, `SGMV_BLOCK_SIZE = 16` (`pad_to_min_rank`); its fast custom shrink
/// kernel covers `MIN_RANK_CUSTOM = 16` ..= `MAX_RANK_CUSTOM = 128`, and decode uses BGMV up
/// to `BGMV_MAX_RANK = 128` (`adapters/lora.py`: larger ranks take the SGMV path).
const LORAX_MIN_RANK: u64 = 8;
const LORAX_BLOCK: u64 = 16;
const LORAX_FAST_RANKS: (u64, u64) = (16, 128);

fn leaf(module: &str) -> &str {
    module.rsplit('.').next().unwrap_or(module)
}

/// One stack's verdict on the adapter, serialised into [`ServingProfile::stacks`].
#[derive(Debug, Default, Serialize)]
struct Stack {
    /// No problems: the stack loads the adapter and applies it as PEFT does.
    loads: bool,
    problems: Vec<Finding>,
    notes: Vec<Finding>,
    #[serde(flatten)]
    facts: Map<String, Value>,
}

impl Stack {
    fn problem(&mut self, code: &'static str, message: String) {
        self.problems.push(Finding::new(code, message));
    }

    fn note(&mut self, code: &'static str, message: String) {
        self.notes.push(Finding::new(code, message));
    }

    fn done(mut self) -> Value {
        self.loads = self.problems.is_empty();
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// What the serving rules need to know about the adapter, computed once.
struct Shape<'a> {
    config: &'a AdapterConfig,
    report: &'a AdapterReport,
    /// Largest rank of any module (or `r` when the adapter has no modules).
    max_rank: u64,
    dora: bool,
    /// Modules whose scale differs from `lora_alpha / r` (set by rank/alpha patterns).
    rescaled: Vec<String>,
    embeddings: Vec<String>,
    heads: Vec<String>,
    convs: Vec<String>,
    saved: Vec<String>,
    biases: Vec<String>,
}

impl<'a> Shape<'a> {
    fn new(config: &'a AdapterConfig, report: &'a AdapterReport) -> Self {
        let by = |pred: &dyn Fn(&crate::peft::ModuleReport) -> bool| {
            report
                .modules
                .iter()
                .filter(|m| pred(m))
                .map(|m| m.module.clone())
                .collect::<Vec<_>>()
        };
        let base_scale = crate::peft::scale(config.lora_alpha, config.r, config.use_rslora);
        Self {
            config,
            report,
            max_rank: report
                .modules
                .iter()
                .map(|m| m.rank)
                .max()
                .unwrap_or(config.r)
                .max(config.r),
            dora: config.use_dora || report.modules.iter().any(|m| m.dora),
            rescaled: by(&|m| (m.scale - base_scale).abs() > f64::EPSILON * base_scale.abs()),
            embeddings: by(&|m| m.kind == ModuleKind::Embedding),
            heads: by(&|m| matches!(leaf(&m.module), "lm_head" | "embed_out")),
            convs: by(&|m| m.kind == ModuleKind::Conv),
            saved: report
                .modules_to_save
                .iter()
                .map(|s| s.tensor.clone())
                .collect(),
            biases: report
                .biases
                .iter()
                .map(|s| s.tensor.clone())
                .chain(
                    report
                        .modules
                        .iter()
                        .filter(|m| m.lora_bias)
                        .map(|m| format!("{}.lora_B.bias", m.module)),
                )
                .collect(),
        }
    }
}

fn list(names: &[String]) -> String {
    const SHOWN: usize = 3;
    let mut s = names
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        s.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    s
}

/// The serving profile of an adapter.
pub fn profile(
    config: &AdapterConfig,
    report: &AdapterReport,
    geometry: &BaseGeometry,
) -> ServingProfile {
    let shape = Shape::new(config, report);
    let mut stacks = std::collections::BTreeMap::new();
    stacks.insert("vllm".to_owned(), vllm(&shape, geometry));
    stacks.insert("lorax".to_owned(), lorax(&shape, geometry));
    stacks.insert("llama.cpp".to_owned(), llama_cpp(&shape, geometry));
    ServingProfile { stacks }
}

fn vllm(a: &Shape<'_>, geometry: &BaseGeometry) -> Value {
    let mut s = Stack::default();
    // `vllm/lora/peft_helper.py`, `validate_legal`: `r > max_lora_rank` is refused; the LoRA
    // slots are max_lora_rank wide, so every module's rank must fit, not only `r`.
    let rank = VLLM_MAX_LORA_RANKS
        .iter()
        .copied()
        .find(|&r| r >= a.max_rank);
    s.facts.insert("max_lora_rank".into(), json!(rank));
    match rank {
        Some(r) => {
            s.facts.insert(
                "flags".into(),
                json!(["--enable-lora", format!("--max-lora-rank {r}")]),
            );
        }
        None => s.problem(
            "rank_too_large",
            format!(
                "rank {} exceeds vLLM's largest --max-lora-rank ({})",
                a.max_rank,
                VLLM_MAX_LORA_RANKS.last().copied().unwrap_or_default()
            ),
        ),
    }
    // `vllm/lora/peft_helper.py`, `_validate_features`: "vLLM does not yet support DoRA."
    // (`vllm/lora/lora_model.py`, `from_lora_tensors`: DoRA loading is not implemented).
    if a.dora {
        s.problem(
            "dora_unsupported",
            "DoRA adapters are refused by vLLM (peft_helper: \"does not yet support DoRA\"); \
             merge the adapter into the base instead"
                .to_owned(),
        );
    }
    // Same function: "vLLM only supports modules_to_save being None." (any entry, lm_head
    // and embed_tokens included; full base embedding copies are skipped by
    // `lora/utils.py`, `is_base_embedding_weights`).
    if !a.config.modules_to_save.is_empty() || !a.saved.is_empty() {
        s.problem(
            "modules_to_save_unsupported",
            format!(
                "vLLM refuses adapters with modules_to_save ({}); merge the adapter instead",
                if a.saved.is_empty() {
                    a.config.modules_to_save.join(", ")
                } else {
                    list(&a.saved)
                }
            ),
        );
    }
    // `peft_helper.py`, `validate_legal`: `bias != "none"` → "Adapter bias is not supported."
    // `lora_bias` (`lora_B.bias`) is counted alike: releases that loaded LoRA biases did so
    // only behind `--enable-lora-bias` ("Adapter bias cannot be used without bias_enabled").
    if a.config.bias != Bias::None || a.report.modules.iter().any(|m| m.lora_bias) {
        s.problem(
            "bias_unsupported",
            "vLLM refuses adapters that train biases (bias != \"none\" or lora_bias)".to_owned(),
        );
    }
    // `vllm/lora/utils.py`, `get_supported_lora_modules`: LoRA goes on linear layers, and on
    // embeddings / lm_head only when the model class lists them in `embedding_modules`.
    let special: Vec<String> = a.embeddings.iter().chain(&a.heads).cloned().collect();
    if !special.is_empty() {
        s.note(
            "embedding_lora_model_dependent",
            format!(
                "LoRA on {} loads only for models whose vLLM class lists it in \
                 embedding_modules",
                list(&special)
            ),
        );
    }
    if !a.convs.is_empty() {
        s.problem(
            "module_unsupported",
            format!(
                "vLLM puts LoRA on linear layers only, not convolutions ({})",
                list(&a.convs)
            ),
        );
    }
    // `vllm/lora/lora_model.py`, `from_lora_tensors`: "The embedding LoRA size(…) must be
    // consistent with the base model's vocabulary size(…)".
    if let Some(vocab) = geometry.vocab_size {
        for m in a
            .report
            .modules
            .iter()
            .filter(|m| m.kind == ModuleKind::Embedding)
        {
            if m.in_features != vocab {
                s.problem(
                    "embedding_vocab_mismatch",
                    format!(
                        "{}: lora_embedding_A covers {} tokens, vLLM requires the base's \
                         vocabulary size {vocab}",
                        m.module, m.in_features
                    ),
                );
            }
        }
    }
    s.done()
}

fn lorax_padded_rank(rank: u64) -> u64 {
    if rank <= LORAX_MIN_RANK {
        LORAX_MIN_RANK
    } else {
        rank.div_ceil(LORAX_BLOCK) * LORAX_BLOCK
    }
}

fn lorax(a: &Shape<'_>, geometry: &BaseGeometry) -> Value {
    let mut s = Stack::default();
    let padded = lorax_padded_rank(a.max_rank);
    s.facts.insert("padded_rank".into(), json!(padded));
    let fast = (LORAX_FAST_RANKS.0..=LORAX_FAST_RANKS.1).contains(&padded);
    s.facts.insert("fast_kernels".into(), json!(fast));
    if padded > LORAX_FAST_RANKS.1 {
        s.note(
            "rank_above_fast_path",
            format!(
                "rank {} is above LoRAX's custom SGMV / BGMV kernels (≤ 128): it is served \
                 on the slower path",
                a.max_rank
            ),
        );
    }
    // `docs/models/adapters/lora.md`: unsupported target modules are ignored with a warning.
    let table = geometry
        .model_type
        .as_deref()
        .and_then(|t| LORAX_TARGETS.iter().find(|(k, _)| *k == t));
    match table {
        Some((arch, supported)) => {
            s.facts.insert("architecture".into(), json!(arch));
            let ignored: BTreeSet<&str> = a
                .report
                .modules
                .iter()
                .map(|m| leaf(&m.module))
                .filter(|l| !supported.contains(l))
                .collect();
            if !ignored.is_empty() {
                s.problem(
                    "modules_ignored",
                    format!(
                        "LoRAX ignores these target modules on {arch}: {} (supported: {})",
                        ignored.into_iter().collect::<Vec<_>>().join(", "),
                        supported.join(", ")
                    ),
                );
            }
        }
        None => s.note(
            "architecture_unlisted",
            format!(
                "LoRAX documents no target-module list for model_type {}",
                geometry.model_type.as_deref().unwrap_or("(unknown)")
            ),
        ),
    }
    // `server/lorax_server/adapters/lora.py`, `LoraConfig.load`: only r, target_modules,
    // fan_in_fan_out, lora_alpha and use_rslora are read; `map_weights_for_model` takes only
    // `lora_A.weight` / `lora_B.weight`; `LoraWeights.load` scales every module by
    // `get_scaling_factor(config.lora_alpha, config.r)`.
    if a.dora {
        s.problem(
            "dora_ignored",
            "LoRAX reads no use_dora and never loads lora_magnitude_vector: it would serve \
             the adapter as plain LoRA (different outputs)"
                .to_owned(),
        );
    }
    if !a.rescaled.is_empty() {
        s.problem(
            "per_module_scale_ignored",
            format!(
                "LoRAX scales every module by lora_alpha / r; rank_pattern / alpha_pattern give \
                 {} another scale",
                list(&a.rescaled)
            ),
        );
    }
    let unloaded: Vec<String> = a
        .embeddings
        .iter()
        .chain(&a.saved)
        .chain(&a.biases)
        .cloned()
        .collect();
    if !unloaded.is_empty() {
        s.problem(
            "weights_ignored",
            format!(
                "LoRAX loads only lora_A / lora_B pairs; these weights are dropped: {}",
                list(&unloaded)
            ),
        );
    }
    s.done()
}

fn llama_cpp(a: &Shape<'_>, geometry: &BaseGeometry) -> Value {
    let mut s = Stack::default();
    // `convert_lora_to_gguf.py`, `LoraModel.get_tensors`: only `.lora_A.weight`,
    // `.lora_B.weight`, `.lora_embedding_A/B` (and mergekit's `_layernorm` / `.norm`
    // tensors) are converted; `.base_layer.weight` is skipped; anything else ends the
    // conversion with "Unexpected name …: Not a lora_A or lora_B tensor".
    let mut fatal: Vec<String> = Vec::new();
    if a.dora {
        fatal.extend(
            a.report
                .modules
                .iter()
                .filter(|m| m.dora)
                .map(|m| format!("{}.lora_magnitude_vector", m.module)),
        );
        if fatal.is_empty() {
            fatal.push("lora_magnitude_vector (use_dora)".to_owned());
        }
    }
    fatal.extend(
        a.saved
            .iter()
            .filter(|n| !(n.contains("_layernorm") || n.contains(".norm")))
            .cloned(),
    );
    fatal.extend(a.biases.iter().cloned());
    if !fatal.is_empty() {
        s.problem(
            "conversion_fails",
            format!(
                "convert_lora_to_gguf.py stops at tensors that are not lora_A / lora_B: {} \
                 (DoRA magnitudes, modules_to_save copies and biases are not converted); merge \
                 the adapter and convert the merged model instead",
                list(&fatal)
            ),
        );
    }
    // Same script, `modify_tensors`: "lm_head is present in adapter, but is ignored in base
    // model" when the base ties lm_head to the embeddings.
    if geometry.tied_embeddings && !a.heads.is_empty() {
        s.problem(
            "lm_head_tied",
            format!(
                "the base ties lm_head to its embeddings; the converter refuses LoRA on {}",
                list(&a.heads)
            ),
        );
    }
    // `set_gguf_parameters` writes one `adapter.lora.alpha`; `src/llama-adapter.h`,
    // `llama_adapter_lora_weight::get_scale`: scale = alpha / rank, rank read per tensor
    // (so rank_pattern is honoured, alpha_pattern and rsLoRA's sqrt are not).
    if a.config.use_rslora {
        s.problem(
            "rslora_scale",
            "llama.cpp scales by lora_alpha / r; this rsLoRA adapter expects lora_alpha / \
             sqrt(r): outputs differ unless lora_alpha is rewritten"
                .to_owned(),
        );
    }
    if !a.config.alpha_pattern.is_empty() {
        s.problem(
            "alpha_pattern_ignored",
            "the GGUF adapter holds one lora_alpha; alpha_pattern is lost".to_owned(),
        );
    }
    if !a.convs.is_empty() {
        s.note(
            "conv_modules",
            format!(
                "convolution LoRA ({}) has no llama.cpp mapping",
                list(&a.convs)
            ),
        );
    }
    s.note(
        "architecture_needed",
        format!(
            "the converter needs the base's config.json and an architecture convert_hf_to_gguf.py \
             supports ({})",
            geometry.architecture.as_deref().unwrap_or("none recorded")
        ),
    );
    s.done()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vllm_ranks_are_the_documented_list_in_order() {
        assert!(VLLM_MAX_LORA_RANKS.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(VLLM_MAX_LORA_RANKS.first(), Some(&1));
        assert_eq!(VLLM_MAX_LORA_RANKS.last(), Some(&512));
    }

    #[test]
    fn lorax_pads_to_eight_then_to_sixteens() {
        assert_eq!(lorax_padded_rank(1), 8);
        assert_eq!(lorax_padded_rank(8), 8);
        assert_eq!(lorax_padded_rank(9), 16);
        assert_eq!(lorax_padded_rank(16), 16);
        assert_eq!(lorax_padded_rank(17), 32);
        assert_eq!(lorax_padded_rank(200), 208);
    }
}
