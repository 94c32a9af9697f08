//! What a catalogue read can fail with, and how `/v1` answers each (the one table; the
//! HTML pages map the same errors in `ui`).

use adapter_core::manifest::Kind;
use adapter_core::reference::ResolveError;
use serde_json::json;

use crate::error::ApiError;

pub type CatalogResult<T> = Result<T, CatalogError>;

/// A catalogue read that found nothing, or could not read.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("{kind} repository {namespace}/{name} does not exist")]
    RepositoryNotFound {
        kind: Kind,
        namespace: String,
        name: String,
    },
    #[error("{namespace}/{name}@{version} does not exist")]
    VersionNotFound {
        kind: Kind,
        namespace: String,
        name: String,
        version: String,
    },
    /// The repository exists, but the selector names none of its versions.
    #[error("{repository}: {reason}")]
    NoMatch {
        /// `ns/name`.
        repository: String,
        /// The selector as given (`None`: latest).
        selector: Option<String>,
        reason: ResolveError,
    },
    /// `adapter-registry fsck --repair` found the version's manifest or blobs damaged.
    #[error(
        "{reference} is damaged ({reason}); restore its blobs and run fsck --repair, or publish anew"
    )]
    Damaged { reference: String, reason: String },
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    /// A stored row that does not parse (never written by this code).
    #[error("stored catalogue data does not parse: {0:#}")]
    Corrupt(anyhow::Error),
}

impl CatalogError {
    pub(crate) fn corrupt(e: impl Into<anyhow::Error>) -> Self {
        Self::Corrupt(e.into())
    }

    /// Whether the thing asked for does not exist (as opposed to a failed read).
    pub fn is_not_found(&self) -> bool {
        !matches!(self, Self::Db(_) | Self::Corrupt(_) | Self::Damaged { .. })
    }

    /// The stable `/v1` code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::RepositoryNotFound { .. } => "repository_not_found",
            Self::VersionNotFound { .. } => "version_not_found",
            Self::NoMatch { .. } => "no_match",
            Self::Damaged { .. } => "version_damaged",
            Self::Db(_) | Self::Corrupt(_) => "internal",
        }
    }
}

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> Self {
        let code = e.code();
        match e {
            CatalogError::Db(e) => e.into(),
            CatalogError::Corrupt(e) => ApiError::Internal(e),
            CatalogError::NoMatch { ref selector, .. } => {
                let details = json!({ "selector": selector });
                ApiError::with_details(code, e.to_string(), details)
            }
            CatalogError::Damaged {
                ref reference,
                ref reason,
            } => {
                let details = json!({ "reference": reference, "reason": reason });
                ApiError::with_details(code, e.to_string(), details)
            }
            e => ApiError::new(code, e.to_string()),
        }
    }
}
