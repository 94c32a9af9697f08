//! Stored rows → API bodies, and the semver view of a repository's versions.

use adapter_core::api::{VersionInfo, VersionSummary};
use adapter_core::manifest::{Kind, Manifest};
use adapter_core::reference::VersionRecord;

use crate::db::versions::{VersionHead, VersionRow};
use crate::error::{ApiError, ApiResult};

pub fn version_info(
    kind: Kind,
    namespace: &str,
    name: &str,
    row: &VersionRow,
) -> ApiResult<VersionInfo> {
    let manifest = Manifest::from_json(row.manifest.as_bytes()).map_err(ApiError::internal)?;
    let summary = serde_json::from_str(&row.summary).map_err(ApiError::internal)?;
    Ok(VersionInfo {
        kind,
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        version: row.head.version.clone(),
        manifest_digest: row
            .head
            .manifest_digest
            .parse()
            .map_err(ApiError::internal)?,
        manifest,
        summary,
        yanked: row.head.yanked,
        yank_reason: None,
        yanked_at: None,
        yanked_by: None,
        created_at: row.head.created_at,
        // Filled by the handlers (`api::evals::attach_latest`).
        evals: Vec::new(),
    })
}

/// The versions as resolution takes them (rows that do not parse are skipped).
pub fn version_records(heads: &[VersionHead]) -> Vec<VersionRecord> {
    heads
        .iter()
        .filter_map(|h| {
            Some(VersionRecord {
                version: h.version.parse().ok()?,
                manifest_digest: h.manifest_digest.parse().ok()?,
                yanked: h.yanked,
            })
        })
        .collect()
}

/// Newest (highest semver) first.
pub fn sorted_summaries(heads: &[VersionHead]) -> Vec<VersionSummary> {
    let mut items: Vec<(semver::Version, VersionSummary)> = heads
        .iter()
        .filter_map(|h| {
            Some((
                h.version.parse().ok()?,
                VersionSummary {
                    version: h.version.clone(),
                    manifest_digest: h.manifest_digest.parse().ok()?,
                    yanked: h.yanked,
                    created_at: h.created_at,
                    size: h.total_size,
                },
            ))
        })
        .collect();
    items.sort_by(|a, b| b.0.cmp(&a.0));
    items.into_iter().map(|(_, s)| s).collect()
}
