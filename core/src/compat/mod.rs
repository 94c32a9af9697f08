//! Compatibility of an adapter with a base model, from headers and config files only (the
//! `validate` job): a verdict a person can act on, per-module checks, and what common serving
//! stacks (vLLM, LoRAX, llama.cpp) will make of the adapter.
//!
//! Inputs are what the registry has without reading weights: the adapter's
//! `adapter_config.json` and safetensors header, and the base's tensor headers (all shards),
//! its `config.json` and identities. Time depends on the number of tensors, not their size.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::api::BaseModelRef;
use crate::diag::{Finding, Findings};
use crate::digest::Digest;
use crate::peft::{AdapterConfig, ModuleKind, build_report};
use crate::safetensors::{Dtype, TensorInfo};

mod base_config;
pub mod serving;

pub use base_config::{BaseGeometry, check_geometry};

/// The adapter side.
#[derive(Debug, Clone)]
pub struct AdapterFacts {
    /// `adapter_config.json`, as stored.
    pub config_json: Vec<u8>,
    /// The header of `adapter_model.safetensors`.
    pub tensors: Vec<TensorInfo>,
    /// The base identity recorded when the adapter was published (`metadata.base`), if any.
    pub recorded_base: Option<BaseModelRef>,
}

/// The base side.
#[derive(Debug, Clone)]
pub struct BaseFacts {
    /// Every tensor of the base (all shards), by name.
    pub tensors: BTreeMap<String, TensorInfo>,
    /// The base's `config.json`, when it has one.
    pub config: Option<Value>,
    pub content_digest: Option<Digest>,
    pub shape_fingerprint: Digest,
}

/// The verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Compatible,
    /// Loads and merges, but something deserves a look (e.g. the base's content digest differs
    /// from the one the adapter was trained on while the shapes agree).
    CompatibleWithWarnings,
    Incompatible,
}

/// One adapted module against the base.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModuleCheck {
    pub module: String,
    /// The base tensor it adapts, when found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_tensor: Option<String>,
    pub rank: u64,
    /// Found in the base and no error is about it.
    pub ok: bool,
    pub kind: ModuleKind,
    /// Linear/Conv: input features; Embedding: num_embeddings (0 when unknown).
    pub in_features: u64,
    /// Linear/Conv: output features; Embedding: embedding_dim (0 when unknown).
    pub out_features: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer: Option<u64>,
    /// The dtype of the adapter's `lora_A` (else `lora_B`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dtype: Option<Dtype>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_dtype: Option<Dtype>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_shape: Option<Vec<u64>>,
    /// The base weight is stored `[in, out]` (GPT-2 `Conv1D`).
    pub fan_in_fan_out: bool,
    pub dora: bool,
}

/// One full tensor the adapter carries (`modules_to_save`) against the base.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SavedCheck {
    /// Name in the adapter file.
    pub tensor: String,
    /// The base tensor it replaces.
    pub base_tensor: String,
    pub shape: Vec<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_shape: Option<Vec<u64>>,
    pub ok: bool,
}

/// What a serving stack will make of the adapter (filled in by the serving rules).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ServingProfile {
    /// Per stack (`vllm`, `lorax`, `llama.cpp`): facts and problems.
    pub stacks: BTreeMap<String, Value>,
}

/// The report of a `validate` job (stored on the adapter version, printed by `adapterctl`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompatReport {
    pub verdict: Verdict,
    /// Errors make it `incompatible`, warnings `compatible_with_warnings`.
    #[serde(flatten)]
    pub findings: Findings,
    pub modules: Vec<ModuleCheck>,
    pub modules_to_save: Vec<SavedCheck>,
    /// The base's geometry as read from its config.json and tensor names.
    pub base: BaseGeometry,
    pub serving: ServingProfile,
}

/// Check an adapter against a base: every adapted module and saved tensor against the base's
/// tensors (PEFT's rules, [`crate::peft::check_against_base`]), hidden and vocabulary size
/// against its config.json, the recorded base identity, and the serving profile.
pub fn validate(adapter: &AdapterFacts, base: &BaseFacts) -> CompatReport {
    let mut findings = Findings::default();
    let geometry = BaseGeometry::from_base(base.config.as_ref(), &base.tensors);
    let failed = |mut findings: Findings, e: &dyn std::fmt::Display| {
        findings.error(Finding::new("invalid_config", e.to_string()));
        finish(
            findings,
            Vec::new(),
            Vec::new(),
            geometry.clone(),
            ServingProfile::default(),
        )
    };
    let config = match AdapterConfig::from_json_bytes(&adapter.config_json) {
        Ok(c) => c,
        Err(e) => return failed(findings, &e),
    };
    let report = match build_report(&config, &adapter.tensors, Some(&base.tensors)) {
        Ok(r) => r,
        Err(e) => return failed(findings, &e),
    };
    findings.extend(report.findings.clone());
    findings.extend(check_geometry(&report, &geometry));
    if let Some(recorded) = &adapter.recorded_base {
        identity(recorded, base, &mut findings);
    }
    let about = |subject: &str| {
        findings
            .errors
            .iter()
            .any(|f| f.subject.as_deref() == Some(subject))
    };
    let modules = report
        .modules
        .iter()
        .map(|m| {
            let found = m.base_shape.is_some();
            ModuleCheck {
                module: m.module.clone(),
                base_tensor: Some(m.base_tensor.clone()).filter(|_| found),
                rank: m.rank,
                ok: found && !about(&m.module),
                kind: m.kind,
                in_features: m.in_features,
                out_features: m.out_features,
                layer: m.layer,
                dtype: m.dtype,
                base_dtype: m.base_dtype,
                base_shape: m.base_shape.clone(),
                fan_in_fan_out: m.fan_in_fan_out,
                dora: m.dora,
            }
        })
        .collect();
    let saved = report
        .modules_to_save
        .iter()
        .map(|s| {
            let base_shape = find_base(&base.tensors, &s.base_tensor).map(|t| t.shape.clone());
            SavedCheck {
                tensor: s.tensor.clone(),
                base_tensor: s.base_tensor.clone(),
                shape: s.shape.clone(),
                ok: base_shape.is_some() && !about(&s.tensor),
                base_shape,
            }
        })
        .collect();
    let serving = serving::profile(&config, &report, &geometry);
    finish(findings, modules, saved, geometry, serving)
}

/// The base tensor for `name` under the prefixes checkpoints differ by (as the base checks
/// look it up): as is, without the first segment, with `model.` in front.
fn find_base<'a>(base: &'a BTreeMap<String, TensorInfo>, name: &str) -> Option<&'a TensorInfo> {
    base.get(name)
        .or_else(|| name.split_once('.').and_then(|(_, rest)| base.get(rest)))
        .or_else(|| base.get(&format!("model.{name}")))
}

/// The recorded base identity against this base.
fn identity(recorded: &BaseModelRef, base: &BaseFacts, findings: &mut Findings) {
    if recorded
        .shape_fingerprint
        .is_some_and(|f| f != base.shape_fingerprint)
    {
        findings.warn(Finding::new(
            "base_shape_differs",
            "the adapter was trained on a base with other tensor shapes (shape fingerprint differs)",
        ));
    }
    if let (Some(want), Some(have)) = (recorded.content_digest, base.content_digest)
        && want != have
    {
        findings.warn(Finding::new(
            "base_content_differs",
            format!("the adapter was trained on base weights {want}, this base is {have}"),
        ));
    }
}

fn finish(
    findings: Findings,
    modules: Vec<ModuleCheck>,
    modules_to_save: Vec<SavedCheck>,
    base: BaseGeometry,
    serving: ServingProfile,
) -> CompatReport {
    let verdict = if findings.has_errors() {
        Verdict::Incompatible
    } else if findings.warnings.is_empty() {
        Verdict::Compatible
    } else {
        Verdict::CompatibleWithWarnings
    };
    CompatReport {
        verdict,
        findings,
        modules,
        modules_to_save,
        base,
        serving,
    }
}
