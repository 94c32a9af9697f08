//! Versions: one by exact version, the API's full view of it (manifest, summary, latest
//! evals, yank state), and its files.

use adapter_core::api::{Summary, VersionInfo};
use adapter_core::manifest::{Kind, Manifest};
use adapter_core::name::Name;

use super::CatalogResult;
use super::error::CatalogError;
use crate::db::Db;
use crate::db::versions::VersionRow;

/// `kind` `ns/name@version`, or [`CatalogError::RepositoryNotFound`] /
/// [`CatalogError::VersionNotFound`].
pub async fn version(
    db: &Db,
    kind: Kind,
    ns: &Name,
    name: &Name,
    version: &semver::Version,
) -> CatalogResult<VersionRow> {
    let v = version.to_string();
    if let Some(row) = db.version(kind, ns.as_str(), name.as_str(), &v).await? {
        return Ok(row);
    }
    super::repository(db, kind, ns, name).await?;
    Err(CatalogError::VersionNotFound {
        kind,
        namespace: ns.to_string(),
        name: name.to_string(),
        version: v,
    })
}

/// A stored row as the API shows it: manifest, summary and yank details; the evals are left
/// empty ([`version_info`] fills them).
pub fn version_info_of(
    kind: Kind,
    namespace: &str,
    name: &str,
    row: &VersionRow,
) -> CatalogResult<VersionInfo> {
    let manifest = Manifest::from_json(row.manifest.as_bytes()).map_err(CatalogError::corrupt)?;
    let summary = summary_of(row)?;
    Ok(VersionInfo {
        kind,
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        version: row.head.version.clone(),
        manifest_digest: row
            .head
            .manifest_digest
            .parse()
            .map_err(CatalogError::corrupt)?,
        manifest,
        summary,
        yanked: row.head.yanked,
        yank_reason: row.yank_reason.clone().filter(|_| row.head.yanked),
        yanked_at: row.yanked_at.filter(|_| row.head.yanked),
        yanked_by: row.yanked_by.clone().filter(|_| row.head.yanked),
        damaged: row.head.damaged.clone(),
        created_at: row.head.created_at,
        evals: Vec::new(),
    })
}

/// The stored summary of a version.
pub fn summary_of(row: &VersionRow) -> CatalogResult<Summary> {
    serde_json::from_str(&row.summary).map_err(CatalogError::corrupt)
}

/// Fill `info.evals` with the latest result per `benchmark:metric` of version `id`.
pub async fn attach_latest_evals(db: &Db, info: &mut VersionInfo, id: i64) -> CatalogResult<()> {
    info.evals = db.latest_evals(id).await?;
    Ok(())
}

/// A version in full: manifest, summary, the latest evals, and why and when it was yanked.
pub async fn version_info(
    db: &Db,
    kind: Kind,
    ns: &Name,
    name: &Name,
    v: &semver::Version,
) -> CatalogResult<VersionInfo> {
    let row = version(db, kind, ns, name, v).await?;
    let mut info = version_info_of(kind, ns.as_str(), name.as_str(), &row)?;
    attach_latest_evals(db, &mut info, row.id).await?;
    Ok(info)
}
