//! The summary of one adapter (`adapterctl inspect --json`, the registry's version summary).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Serialize;

use super::analyze::{ModuleKind, analyze};
use super::base::check_against_base;
use super::config::AdapterConfig;
use super::data::check_data;
use super::error::PeftError;
use super::values::{Bias, InitLoraWeights, ModulePatterns, TargetModules};
use crate::diag::Findings;
use crate::safetensors::{Dtype, Limits, TensorFile, TensorInfo};

/// The config file of a PEFT adapter directory.
pub const CONFIG_FILE: &str = "adapter_config.json";
/// The weights file of a PEFT adapter directory.
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";
/// The pickle weights file older PEFT releases wrote (refused).
pub const PICKLE_FILE: &str = "adapter_model.bin";

/// One adapted module.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModuleReport {
    /// Module name without `base_model.model.`.
    pub module: String,
    /// The base tensor the update applies to (as found in the base, when one was given).
    pub base_tensor: String,
    pub kind: ModuleKind,
    pub rank: u64,
    pub alpha: f64,
    pub scale: f64,
    /// Linear/Conv: input features; Embedding: num_embeddings. 0 when unknown (tensor missing).
    pub in_features: u64,
    /// Linear/Conv: output features; Embedding: embedding_dim. 0 when unknown.
    pub out_features: u64,
    pub dtype: Option<Dtype>,
    pub dora: bool,
    pub lora_bias: bool,
    pub layer: Option<u64>,
    /// Layout of the base weight: `true` when stored `[in, out]` (Conv1D). Decided by the
    /// base's shape when a base was given, else the config's flag.
    pub fan_in_fan_out: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_dtype: Option<Dtype>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_shape: Option<Vec<u64>>,
}

/// A full tensor the adapter carries (modules_to_save, trained biases).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SavedTensorReport {
    /// Name in the adapter file.
    pub tensor: String,
    /// Name in the base model.
    pub base_tensor: String,
    pub shape: Vec<u64>,
    pub dtype: Dtype,
}

/// Everything `inspect` shows about an adapter.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdapterReport {
    pub peft_type: String,
    pub task_type: Option<String>,
    pub base_model_name_or_path: Option<String>,
    pub revision: Option<String>,
    /// `lora`, `rslora`, `dora`, `rslora+dora` (the lower-cased type for other methods).
    pub variant: String,
    pub r: u64,
    pub lora_alpha: f64,
    pub use_rslora: bool,
    pub use_dora: bool,
    pub fan_in_fan_out: bool,
    pub bias: Bias,
    pub lora_bias: bool,
    pub init_lora_weights: InitLoraWeights,
    /// A LoRA adapter without errors: a merge job can take it.
    pub mergeable: bool,
    /// Sorted unique leaf names of the adapted modules (`["k_proj", "q_proj"]`).
    pub target_modules: Vec<String>,
    /// `target_modules` as written in the config.
    pub target_modules_config: Option<TargetModules>,
    pub exclude_modules: Option<ModulePatterns>,
    /// `rank_pattern`, in file order.
    pub rank_pattern: Vec<(String, u64)>,
    /// `alpha_pattern`, in file order.
    pub alpha_pattern: Vec<(String, f64)>,
    /// Sorted by module name.
    pub modules: Vec<ModuleReport>,
    pub modules_to_save: Vec<SavedTensorReport>,
    pub biases: Vec<SavedTensorReport>,
    /// Sorted layer indices the adapter touches.
    pub layers: Vec<u64>,
    /// Sorted distinct dtypes of the adapter's tensors.
    pub dtypes: Vec<Dtype>,
    /// Total element count of all adapter tensors.
    pub parameters: u64,
    pub tensor_count: usize,
    /// Serialised as top-level `errors` and `warnings`.
    #[serde(flatten)]
    pub findings: Findings,
}

impl AdapterReport {
    /// Add findings from a later check (data, base) and update `mergeable`.
    pub fn add_findings(&mut self, findings: Findings) {
        self.findings.extend(findings);
        self.mergeable = self.peft_type == "LORA" && !self.findings.has_errors();
    }
}

/// The report of an adapter from its config and header (and a base's tensors, if given),
/// without reading tensor data. `Err` only when the config's patterns cannot be compiled.
pub fn build_report(
    config: &AdapterConfig,
    tensors: &[TensorInfo],
    base: Option<&BTreeMap<String, TensorInfo>>,
) -> Result<AdapterReport, PeftError> {
    let analysis = analyze(config, tensors)?;
    let mut findings = analysis.findings.clone();
    let based = base.map(|b| check_against_base(config, &analysis, b));
    if let Some(b) = &based {
        findings.extend(b.findings.clone());
    }
    let modules: Vec<ModuleReport> = analysis
        .modules
        .iter()
        .map(|m| {
            let on_base = based.as_ref().and_then(|b| b.modules.get(&m.name));
            ModuleReport {
                module: m.name.clone(),
                base_tensor: on_base.map_or_else(|| m.base_tensor(), |b| b.tensor.clone()),
                kind: m.kind,
                rank: m.scale.rank,
                alpha: m.scale.alpha,
                scale: m.scale.scale,
                in_features: m.in_features.unwrap_or(0),
                out_features: m.out_features.unwrap_or(0),
                dtype: m.dtype(),
                dora: m.tensors.magnitude.is_some(),
                lora_bias: m.tensors.bias.is_some(),
                layer: m.layer,
                fan_in_fan_out: on_base.map_or(config.fan_in_fan_out, |b| b.fan_in_fan_out),
                base_dtype: on_base.map(|b| b.dtype),
                base_shape: on_base.map(|b| b.shape.clone()),
            }
        })
        .collect();
    let saved = |list: &[super::analyze::SavedTensor]| {
        list.iter()
            .map(|s| SavedTensorReport {
                tensor: s.info.name.clone(),
                base_tensor: s.base.clone(),
                shape: s.info.shape.clone(),
                dtype: s.info.dtype,
            })
            .collect::<Vec<_>>()
    };
    let leaves: BTreeSet<String> = analysis
        .modules
        .iter()
        .map(|m| m.name.rsplit('.').next().unwrap_or(&m.name).to_owned())
        .collect();
    let layers: BTreeSet<u64> = analysis.modules.iter().filter_map(|m| m.layer).collect();
    let dtypes: BTreeSet<Dtype> = tensors.iter().map(|t| t.dtype).collect();
    let mut report = AdapterReport {
        peft_type: config.peft_type.clone(),
        task_type: config.task_type.clone(),
        base_model_name_or_path: config.base_model_name_or_path.clone(),
        revision: config.revision.clone(),
        variant: config.variant(),
        r: config.r,
        lora_alpha: config.lora_alpha,
        use_rslora: config.use_rslora,
        use_dora: config.use_dora,
        fan_in_fan_out: config.fan_in_fan_out,
        bias: config.bias,
        lora_bias: config.lora_bias,
        init_lora_weights: config.init_lora_weights.clone(),
        mergeable: false,
        target_modules: leaves.into_iter().collect(),
        target_modules_config: config.target_modules.clone(),
        exclude_modules: config.exclude_modules.clone(),
        rank_pattern: config.rank_pattern.clone(),
        alpha_pattern: config.alpha_pattern.clone(),
        modules,
        modules_to_save: saved(&analysis.modules_to_save),
        biases: saved(&analysis.biases),
        layers: layers.into_iter().collect(),
        dtypes: dtypes.into_iter().collect(),
        parameters: tensors.iter().map(TensorInfo::num_elements).sum(),
        tensor_count: tensors.len(),
        findings: Findings::default(),
    };
    report.add_findings(findings);
    Ok(report)
}

/// Read `dir/adapter_config.json` and `dir/adapter_model.safetensors`, run every check
/// (header, data, and the base's tensors when given) and report. Problems in the adapter are
/// findings; a missing or unreadable file, an unparseable config or safetensors header, or a
/// pickle-only adapter is an `Err`.
pub fn inspect_adapter_dir(
    dir: &Path,
    base: Option<&BTreeMap<String, TensorInfo>>,
) -> Result<AdapterReport, PeftError> {
    let config_path = dir.join(CONFIG_FILE);
    let bytes = std::fs::read(&config_path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            PeftError::Missing {
                path: config_path.clone(),
            }
        } else {
            PeftError::Io {
                path: config_path.clone(),
                source,
            }
        }
    })?;
    let config = AdapterConfig::from_json_bytes(&bytes)?;
    let weights = dir.join(WEIGHTS_FILE);
    if !weights.is_file() {
        let pickle = dir.join(PICKLE_FILE);
        return Err(if pickle.is_file() {
            PeftError::PickleOnly { path: pickle }
        } else {
            PeftError::Missing { path: weights }
        });
    }
    let safetensors = |source| PeftError::Safetensors {
        path: weights.clone(),
        source,
    };
    let mut file = TensorFile::open(&weights, &Limits::default()).map_err(safetensors)?;
    let tensors = file.header().tensors.clone();
    let mut report = build_report(&config, &tensors, base)?;
    let data = check_data(&mut file).map_err(safetensors)?;
    report.add_findings(data);
    Ok(report)
}
