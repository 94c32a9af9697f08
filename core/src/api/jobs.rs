//! Jobs (`/v1/jobs`): submit, state, progress, logs; and the compatibility validations a
//! `validate` job stores on adapter versions. Semantics: docs/API.md, "Jobs".

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::digest::Digest;

/// The kind of the compatibility validation job.
pub const KIND_VALIDATE: &str = "validate";
/// The kind of the job that merges an adapter into its base (a new model version).
pub const KIND_MERGE: &str = "merge";
/// The kind of the job that quantises a model version (a new model version).
pub const KIND_QUANTISE: &str = "quantise";

/// `params` of a `merge` job (inputs: `adapter`, and `base` unless the adapter names a
/// registered base).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MergeParams {
    /// The model version to create: `ns/name@version`, an exact semver version.
    pub output: String,
    /// `bf16`, `f16` or `f32`; absent keeps each base tensor's dtype.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dtype: Option<String>,
    /// Largest output shard in bytes (default 5 GB; at least 64 KiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_size: Option<u64>,
    /// Where the LoRA products are computed: `auto` (default: GPU 0 when the worker has one
    /// and was built with the `cuda` feature, else the CPU), `cpu` or `cuda:N` (refused by a
    /// registry built without CUDA). The recipe records the device used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}

/// `params` of a `quantise` job (input: `model`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct QuantiseParams {
    /// The model version to create: `ns/name@version`, an exact semver version.
    pub output: String,
    /// `gguf` or `nf4`.
    pub format: String,
    /// For `gguf`: `q8_0` (default), `q4_0`, `q4_k`, `q6_k`, `f16`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quant_type: Option<String>,
    /// For `nf4`: also quantise the absmax values (bitsandbytes `bnb_4bit_use_double_quant`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub double_quant: Option<bool>,
    /// `auto` (default) or `cpu`: quantising runs on the CPU (`cuda:N` is refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}

/// `metadata.derived_from` of a model version a job made (merge, quantise). Only jobs
/// write it: a publish through the API that carries it is refused. The registry derives the
/// version's lineage (`input` rows with this recipe) from it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Derivation {
    /// The job that made the version.
    pub job: String,
    /// Its kind (`merge`, `quantise`).
    pub kind: String,
    /// What it was made from.
    pub inputs: Vec<DerivedInput>,
    /// The parameters and facts of the computation (scales, dtype, types, tool version).
    pub recipe: Value,
}

/// One input of a [`Derivation`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DerivedInput {
    /// The job's input name (`adapter`, `base`, `model`).
    pub name: String,
    pub kind: crate::manifest::Kind,
    /// `ns/name@version`.
    pub reference: String,
    pub manifest_digest: Digest,
    /// A model input's content digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_digest: Option<Digest>,
}

/// Where a job is in its life: `queued → running → succeeded | failed | cancelled`
/// (a running job whose attempt failed goes back to `queued` until its attempts run out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 5] = [
        Self::Queued,
        Self::Running,
        Self::Succeeded,
        Self::Failed,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Nothing more will happen to the job.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for JobState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                format!("`{s}` is not a job state (queued, running, succeeded, failed, cancelled)")
            })
    }
}

/// `POST /v1/jobs`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct JobSubmit {
    /// `validate`, `merge` or `quantise` (docs/API.md, "Jobs").
    #[cfg_attr(feature = "openapi", schema(pattern = "^(validate|merge|quantise)$"))]
    pub kind: String,
    /// Input name → reference `ns/name[@selector]`; resolved to a version and manifest
    /// digest when the job is submitted. `validate`: `adapter` and `base`; `merge`:
    /// `adapter` and optionally `base` (default: the registered base the adapter names);
    /// `quantise`: `model`.
    #[serde(default)]
    pub inputs: BTreeMap<String, String>,
    /// Kind-specific parameters (a JSON object; `{}` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Value>,
    /// Replaces the default idempotency key (kind + resolved input digests + parameters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// An input of a job, as resolved at submit time.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobInput {
    /// `ns/name@version` (the exact version the selector resolved to).
    pub reference: String,
    pub manifest_digest: Digest,
}

/// A job.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobInfo {
    /// `job_` + 32 hex digits (time-ordered).
    pub id: String,
    pub kind: String,
    pub state: JobState,
    pub inputs: BTreeMap<String, JobInput>,
    pub params: Value,
    /// Attempts started so far.
    pub attempts: u32,
    pub max_attempts: u32,
    /// 0.0..=1.0, when the job reported any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_message: Option<String>,
    /// Set when the job succeeded (for `validate`: the compatibility report).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// The last attempt's error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A cancel was asked while the job ran; it stops at its next checkpoint.
    #[serde(default)]
    pub cancel_requested: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitter: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<i64>,
}

/// `GET /v1/jobs`: newest first.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobList {
    pub jobs: Vec<JobInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// One log line of a job.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobLogLine {
    /// Increasing; pass the last one as `after` to read on.
    pub seq: i64,
    /// Unix seconds.
    pub at: i64,
    pub line: String,
}

/// `GET /v1/jobs/{id}/logs`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobLogs {
    pub lines: Vec<JobLogLine>,
}

/// The latest compatibility validation of an adapter version against a model version.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ValidationInfo {
    /// The adapter version, `ns/name@version`.
    pub adapter: String,
    /// The base model version, `ns/name@version`.
    pub base: String,
    /// `compatible`, `compatible_with_warnings` or `incompatible`.
    pub verdict: String,
    /// The whole report (`verdict`, `errors`, `warnings`, `modules`, `serving`).
    pub report: Value,
    pub job_id: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// `GET /v1/{kind}/{ns}/{name}/versions/{version}/validations`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ValidationList {
    pub validations: Vec<ValidationInfo>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip() {
        for s in JobState::ALL {
            assert_eq!(s.as_str().parse::<JobState>(), Ok(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert!("done".parse::<JobState>().is_err());
        assert!(JobState::Cancelled.is_terminal() && !JobState::Running.is_terminal());
    }

    #[test]
    fn submit_refuses_unknown_fields() {
        let bad = serde_json::json!({"kind": "validate", "input": {}});
        assert!(serde_json::from_value::<JobSubmit>(bad).is_err());
    }
}
