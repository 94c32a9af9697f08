//! What the push path accepts, shared by `preupload`, `create_branch` and `commit`: the
//! revision a commit may name, the paths it may add, no pull requests.

use adapter_core::manifest::FilePath;
use serde::Deserialize;
use serde_json::json;

use super::{HfError, HfResult};
use crate::error::ApiError;

#[derive(Debug, Default, Deserialize)]
pub struct CommitQuery {
    pub create_pr: Option<String>,
}

/// The version a commit to `revision` makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `main`: the next version after the highest.
    Next,
    Version(semver::Version),
}

/// What a commit (or `create_branch`) may name: `main` or a semver version.
pub fn target_of(revision: &str) -> HfResult<Target> {
    if revision == "main" {
        return Ok(Target::Next);
    }
    semver::Version::parse(revision)
        .map(Target::Version)
        .map_err(|_| {
            HfError::api(ApiError::with_details(
                "invalid_revision",
                format!(
                    "a commit goes to `main` (the next version) or to a semver version such as \
                     `1.2.0`, not to `{}`",
                    revision.escape_debug()
                ),
                json!({ "revision": revision }),
            ))
        })
}

/// Pull requests are not a registry concept.
pub fn no_pull_requests(q: &CommitQuery) -> HfResult<()> {
    if q.create_pr
        .as_deref()
        .is_some_and(|v| v != "0" && v != "false")
    {
        return Err(HfError::api(ApiError::new(
            "unsupported",
            "pull requests are not supported: commit to `main` or to a new version",
        )));
    }
    Ok(())
}

/// A path a commit may add: a valid file path (no traversal, no absolute paths, the
/// registry's path rules) that is not a pickle checkpoint.
pub fn addable(path: &str) -> HfResult<FilePath> {
    let p = FilePath::new(path).map_err(|e| {
        HfError::api(ApiError::with_details(
            "invalid_path",
            format!("`{}`: {e}", path.escape_debug()),
            json!({ "path": path }),
        ))
    })?;
    if adapter_core::model::is_pickle(p.as_str()) {
        return Err(HfError::api(ApiError::with_details(
            "pickle_refused",
            format!(
                "`{p}` is a pickle checkpoint, which the registry never accepts (loading one can \
                 run arbitrary code); save with safetensors"
            ),
            json!({ "path": p.as_str() }),
        )));
    }
    Ok(p)
}
