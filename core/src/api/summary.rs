//! What the registry derives from a version's stored files, typed: an adapter's PEFT facts
//! and base identity, a model's identities and counts. Stored as JSON with the version and
//! returned as `VersionInfo.summary` (docs/API.md, "Version summaries").

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

use super::BaseModelRef;
use crate::digest::Digest;

/// A version's summary: which one it is follows from the version's kind (an adapter's has
/// `peft_type`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum Summary {
    Adapter(AdapterSummary),
    Model(ModelSummary),
}

impl Summary {
    pub fn adapter(&self) -> Option<&AdapterSummary> {
        match self {
            Self::Adapter(a) => Some(a),
            Self::Model(_) => None,
        }
    }

    pub fn model(&self) -> Option<&ModelSummary> {
        match self {
            Self::Model(m) => Some(m),
            Self::Adapter(_) => None,
        }
    }
}

/// An adapter version: its PEFT config and weights as the registry read them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AdapterSummary {
    /// `LORA`, … (`peft_type` of adapter_config.json).
    pub peft_type: String,
    /// `lora`, `rslora`, `dora`, `rslora+dora`.
    pub variant: String,
    /// The config's `r`.
    pub r: u64,
    /// Smallest rank over the adapted modules (`rank_pattern` applied). Absent only in
    /// summaries stored before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank_min: Option<u64>,
    /// Largest rank over the adapted modules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank_max: Option<u64>,
    pub lora_alpha: f64,
    pub use_rslora: bool,
    pub use_dora: bool,
    /// Sorted unique leaf names of the adapted modules (`["k_proj", "q_proj"]`).
    pub target_modules: Vec<String>,
    pub module_count: u64,
    pub tensor_count: u64,
    /// Total element count of the adapter's tensors.
    pub parameters: u64,
    /// Sorted distinct dtypes of the adapter's tensors (`F32`, `BF16`, …).
    pub dtypes: Vec<String>,
    /// Sorted layer indices the adapter touches.
    pub layers: Vec<u64>,
    /// A LoRA adapter without errors: a merge job can take it.
    pub mergeable: bool,
    /// What the checks warned about (errors refuse the publish).
    #[serde(default)]
    pub warnings: Vec<SummaryWarning>,
    /// The base model it was trained on, as declared and checked against the registry.
    #[serde(default)]
    pub base: BaseModelRef,
}

impl AdapterSummary {
    /// `(rank_min, rank_max)`, falling back to `r` for summaries stored before they were.
    pub fn rank_range(&self) -> (u64, u64) {
        (
            self.rank_min.unwrap_or(self.r),
            self.rank_max.unwrap_or(self.r),
        )
    }
}

/// A warning a check found (`code` is stable, `message` for people).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SummaryWarning {
    pub code: String,
    pub message: String,
    /// The tensor, module or file it is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

impl From<&crate::diag::Finding> for SummaryWarning {
    fn from(f: &crate::diag::Finding) -> Self {
        Self {
            code: f.code.to_owned(),
            message: f.message.clone(),
            subject: f.subject.clone(),
        }
    }
}

/// A model version: its identities (content digest, shape fingerprint) and counts, from the
/// headers of its weight files (safetensors, or the GGUF files a quantise job made).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModelSummary {
    /// `gguf` for a GGUF model; absent for safetensors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Registered from the headers of its weight files, without their data.
    pub headers_only: bool,
    /// The exact weights: sha256 over the weight files' paths, sizes and digests.
    pub content_digest: Digest,
    /// Tensor names, dtypes and shapes (safetensors models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape_fingerprint: Option<Digest>,
    pub weight_files: u64,
    pub tensor_count: u64,
    pub parameters: u64,
    /// Tensor count per dtype (per GGUF type for a GGUF model).
    pub dtypes: BTreeMap<String, u64>,
    /// From config.json, when it says (a value of another type is left out).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub model_type: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub architectures: Option<Vec<String>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub num_hidden_layers: Option<u64>,
    /// `general.architecture` of a GGUF model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    /// `general.file_type` of a GGUF model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_type: Option<u32>,
}

/// A copied config value of the wrong type (or `null`) reads as absent instead of failing.
fn lenient<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Option<T>, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    Ok(serde_json::from_value(v).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn digest(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn an_adapter_summary_round_trips_and_reads_as_an_adapter() {
        let stored = json!({
            "peft_type": "LORA", "variant": "lora", "r": 8, "rank_min": 8, "rank_max": 16,
            "lora_alpha": 16.0, "use_rslora": false, "use_dora": false,
            "target_modules": ["q_proj", "v_proj"], "module_count": 4, "tensor_count": 8,
            "parameters": 1024, "dtypes": ["F32"], "layers": [0, 1], "mergeable": true,
            "warnings": [{"code": "x", "message": "y"}],
            "base": {"name_or_path": "org/base", "reference": "acme/llama@1.0.0"},
        });
        let s: Summary = serde_json::from_value(stored.clone()).unwrap();
        let a = s.adapter().expect("an adapter");
        assert_eq!(a.rank_range(), (8, 16));
        assert_eq!(a.base.reference.as_deref(), Some("acme/llama@1.0.0"));
        assert_eq!(serde_json::to_value(&s).unwrap(), stored);
    }

    #[test]
    fn an_old_adapter_summary_without_rank_range_falls_back_to_r() {
        let s: Summary = serde_json::from_value(json!({
            "peft_type": "LORA", "variant": "lora", "r": 4, "lora_alpha": 8,
            "use_rslora": false, "use_dora": false, "target_modules": [],
            "module_count": 0, "tensor_count": 0, "parameters": 0, "dtypes": [],
            "layers": [], "mergeable": false, "warnings": [], "base": {},
        }))
        .unwrap();
        assert_eq!(s.adapter().unwrap().rank_range(), (4, 4));
    }

    #[test]
    fn model_summaries_safetensors_and_gguf() {
        let st = json!({
            "headers_only": false, "content_digest": digest('a'),
            "shape_fingerprint": digest('b'), "weight_files": 2, "tensor_count": 21,
            "parameters": 670, "dtypes": {"F32": 21}, "model_type": "llama",
            "architectures": ["LlamaForCausalLM"], "num_hidden_layers": 2,
        });
        let s: Summary = serde_json::from_value(st.clone()).unwrap();
        let m = s.model().expect("a model");
        assert_eq!(m.shape_fingerprint.unwrap().to_string(), digest('b'));
        assert_eq!(serde_json::to_value(&s).unwrap(), st);

        let gguf = json!({
            "format": "gguf", "headers_only": false, "content_digest": digest('c'),
            "weight_files": 1, "tensor_count": 3, "parameters": 9, "dtypes": {"Q8_0": 3},
            "architecture": "llama", "file_type": 7,
        });
        let s: Summary = serde_json::from_value(gguf.clone()).unwrap();
        assert_eq!(s.model().unwrap().format.as_deref(), Some("gguf"));
        assert_eq!(serde_json::to_value(&s).unwrap(), gguf);
    }

    #[test]
    fn config_values_of_another_type_or_null_read_as_absent() {
        let s: Summary = serde_json::from_value(json!({
            "headers_only": true, "content_digest": digest('a'), "weight_files": 1,
            "tensor_count": 1, "parameters": 1, "dtypes": {},
            "model_type": 5, "architectures": null, "num_hidden_layers": "two",
        }))
        .unwrap();
        let m = s.model().unwrap();
        assert_eq!(
            (&m.model_type, &m.architectures, m.num_hidden_layers),
            (&None, &None, None)
        );
    }
}
