//! The HTTP API's request and response bodies, shared by the server and `adapterctl` so the
//! two can never drift. Routes and status codes: docs/API.md.

mod auth;

pub use auth::{
    AuditEntry, AuditList, Scope, TokenCreate, TokenCreated, TokenInfo, TokenList, WhoAmI,
};
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::digest::Digest;
use crate::manifest::{Kind, Manifest};

pub mod evals;
pub use evals::{EvalBatch, EvalInput, EvalList, EvalResult};
pub mod aliases;
pub use aliases::*;
pub mod catalog;
pub use catalog::{LatestEval, LineageNode, LineageView, MatchedVersion, VersionFacts};
pub mod summary;
pub use summary::{AdapterSummary, ModelSummary, Summary, SummaryWarning};
pub mod jobs;
pub use jobs::{
    Derivation, DerivedInput, JobInfo, JobInput, JobList, JobLogLine, JobLogs, JobState, JobSubmit,
    MergeParams, QuantiseParams, ValidationInfo, ValidationList,
};

/// The one error body: `{"error": {"code", "message", "details"}}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: ErrorInfo,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorInfo {
    /// Stable machine code (`digest_mismatch`, `version_exists`, …): see docs/API.md.
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub details: Value,
}

/// Header carrying an upload session's offset (request: where this chunk starts; response:
/// how many bytes the session holds).
pub const UPLOAD_OFFSET_HEADER: &str = "upload-offset";

/// Path segment for a kind: `adapters` or `models`.
pub fn kind_segment(kind: Kind) -> &'static str {
    match kind {
        Kind::Adapter => "adapters",
        Kind::Model => "models",
    }
}

/// `POST /v1/blobs/check`: which of these blobs does the server lack?
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BlobCheckRequest {
    pub digests: Vec<Digest>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BlobCheckResponse {
    /// The requested digests the server does not have, in request order.
    pub missing: Vec<Digest>,
}

/// A stored blob (`PUT /v1/blobs/{digest}` and `PUT /v1/uploads/{id}` answer this).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BlobInfo {
    pub digest: Digest,
    pub size: u64,
}

/// `POST /v1/uploads` body (all optional).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UploadStart {
    /// The digest the client expects to finish with (lets the server refuse early).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    /// The total size the client intends to upload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

/// An upload session's state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UploadStatus {
    pub id: String,
    /// Bytes received so far: the offset the next chunk must start at.
    pub offset: u64,
    /// Unix time (seconds) after which an idle session is deleted.
    pub expires_at: i64,
}

/// What a repository is: `GET /v1/{kind}/{ns}/{name}` and list entries.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RepositoryInfo {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
    pub version_count: u64,
    /// Highest version that is neither yanked nor a pre-release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest: Option<String>,
    /// Alias → the version it points to.
    #[serde(default)]
    pub aliases: BTreeMap<String, String>,
    /// Unix time (seconds).
    pub created_at: i64,
    /// In search results: the version that matched (newest non-yanked version passing
    /// every filter), with its facts, labels and latest evals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matched: Option<MatchedVersion>,
}

/// `GET /v1/{kind}?namespace=&q=&…&cursor=&limit=`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RepositoryList {
    pub repositories: Vec<RepositoryInfo>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// One version, as listed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VersionSummary {
    pub version: String,
    pub manifest_digest: Digest,
    pub yanked: bool,
    pub created_at: i64,
    /// Sum of file sizes.
    pub size: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VersionList {
    pub versions: Vec<VersionSummary>,
}

/// A version in full: `GET …/versions/{version}`, and the body of a successful publish.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VersionInfo {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
    pub version: String,
    pub manifest_digest: Digest,
    pub manifest: Manifest,
    /// What the server derived from the stored files (adapter: the PEFT report summary and
    /// base identity; model: digests, fingerprint, counts). See docs/API.md.
    pub summary: Summary,
    pub yanked: bool,
    /// Why it was yanked (only while yanked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yank_reason: Option<String>,
    /// Unix time (seconds) of the yank (only while yanked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yanked_at: Option<i64>,
    /// Who yanked it (only while yanked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yanked_by: Option<String>,
    /// Set when `adapter-registry fsck --repair` found the version's manifest or blobs
    /// damaged (why); resolving or pulling it is refused with 410 `version_damaged`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub damaged: Option<String>,
    pub created_at: i64,
    /// The latest result per `benchmark:metric` (sorted by benchmark, then metric); the
    /// whole history is at `…/evals`.
    #[serde(default)]
    pub evals: Vec<EvalResult>,
}

/// `GET …/resolve/{selector}` (or `…/resolve` for the latest).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResolveResponse {
    pub version: String,
    pub manifest_digest: Digest,
    pub yanked: bool,
    /// Why it was yanked (only when `yanked`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yank_reason: Option<String>,
}

/// Keys of a manifest's declared `metadata` that the registry understands.
pub mod metadata {
    /// Object describing the base model of an adapter (`BaseModelRef`).
    pub const BASE: &str = "base";
    /// `true` for a model registered headers-only.
    pub const HEADERS_ONLY: &str = "headers_only";
    /// For a headers-only model: the weight files not uploaded (`Vec<HeadersOnlyWeight>`).
    pub const WEIGHTS: &str = "weights";
    /// Object string → string of labels (`adapterctl push --label key=value`).
    pub const LABELS: &str = "labels";
    /// How a job made this version (`Derivation`); written by jobs only.
    pub const DERIVED_FROM: &str = "derived_from";
    /// The Hugging Face Hub protocol commit that made this version: `{"summary": …,
    /// "description": …}` (docs/HF.md).
    pub const COMMIT: &str = "commit";
}

/// An adapter's base model identity, as declared in `metadata.base`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BaseModelRef {
    /// `base_model_name_or_path` from adapter_config.json.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_or_path: Option<String>,
    /// A registered model `ns/name@version` when pushed with `--base REF`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_digest: Option<Digest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape_fingerprint: Option<Digest>,
}

/// One weights file of a headers-only model: its size and digest, and the blob holding its
/// first `8 + N` bytes (the safetensors header) so the server can validate it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct HeadersOnlyWeight {
    pub path: String,
    pub size: u64,
    pub sha256: Digest,
    pub header_blob: Digest,
}
