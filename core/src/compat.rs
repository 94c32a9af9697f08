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
use crate::peft::{AdapterConfig, build_report};
use crate::safetensors::TensorInfo;

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
    pub serving: ServingProfile,
}

/// Check an adapter against a base.
pub fn validate(adapter: &AdapterFacts, base: &BaseFacts) -> CompatReport {
    let mut findings = Findings::default();
    let config = match AdapterConfig::from_json_bytes(&adapter.config_json) {
        Ok(c) => c,
        Err(e) => {
            findings.error(Finding::new("invalid_config", e.to_string()));
            return finish(findings, Vec::new(), ServingProfile::default());
        }
    };
    let report = match build_report(&config, &adapter.tensors, Some(&base.tensors)) {
        Ok(r) => r,
        Err(e) => {
            findings.error(Finding::new("invalid_config", e.to_string()));
            return finish(findings, Vec::new(), ServingProfile::default());
        }
    };
    findings.extend(report.findings.clone());
    let modules = report
        .modules
        .iter()
        .map(|m| ModuleCheck {
            module: m.module.clone(),
            base_tensor: Some(m.base_tensor.clone()).filter(|t| base.tensors.contains_key(t)),
            rank: m.rank,
            ok: base.tensors.contains_key(&m.base_tensor),
        })
        .collect();
    if let Some(recorded) = &adapter.recorded_base {
        identity(recorded, base, &mut findings);
    }
    finish(findings, modules, ServingProfile::default())
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

fn finish(findings: Findings, modules: Vec<ModuleCheck>, serving: ServingProfile) -> CompatReport {
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
        serving,
    }
}
