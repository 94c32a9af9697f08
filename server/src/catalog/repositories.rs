//! Repositories: one by name, its summary (version count, latest, aliases), its versions,
//! and the listing the HTML index shows.

use adapter_core::api::{RepositoryInfo, VersionSummary};
use adapter_core::manifest::Kind;
use adapter_core::name::Name;

use super::CatalogResult;
use super::error::CatalogError;
use crate::db::Db;
use crate::db::catalog::PageVersion;
use crate::db::repositories::RepoRow;

/// `kind` `ns/name`, or [`CatalogError::RepositoryNotFound`].
pub async fn repository(db: &Db, kind: Kind, ns: &Name, name: &Name) -> CatalogResult<RepoRow> {
    db.repository(kind, ns.as_str(), name.as_str())
        .await?
        .ok_or_else(|| CatalogError::RepositoryNotFound {
            kind,
            namespace: ns.to_string(),
            name: name.to_string(),
        })
}

/// A repository as the API shows it (`matched` left empty: search fills it).
pub async fn repository_info(db: &Db, kind: Kind, repo: &RepoRow) -> CatalogResult<RepositoryInfo> {
    let mut all = repository_infos(db, kind, vec![repo.clone()]).await?;
    Ok(all.pop().expect("one repository in, one out"))
}

/// [`repository_info`] of several repositories (a page of search hits) in two queries.
pub async fn repository_infos(
    db: &Db,
    kind: Kind,
    repos: Vec<RepoRow>,
) -> CatalogResult<Vec<RepositoryInfo>> {
    let mut conn = db.pool.acquire().await?;
    let found = crate::db::resolve::resolvables_in(&mut conn, repos).await?;
    drop(conn);
    Ok(found
        .into_iter()
        .map(|found| {
            let latest = found
                .resolve(None)
                .ok()
                .map(|r| r.resolution.version.to_string());
            RepositoryInfo {
                kind,
                namespace: found.repo.namespace.clone(),
                name: found.repo.name.clone(),
                version_count: found.records.len() as u64,
                latest,
                aliases: found
                    .aliases
                    .iter()
                    .map(|(a, v)| (a.to_string(), v.to_string()))
                    .collect(),
                created_at: found.repo.created_at,
                matched: None,
            }
        })
        .collect())
}

/// A repository's versions, newest (highest semver) first.
pub async fn versions(db: &Db, repo: &RepoRow) -> CatalogResult<Vec<VersionSummary>> {
    let heads = db.version_heads(repo.id).await?;
    let mut items = heads
        .into_iter()
        .map(|h| {
            let version: semver::Version = h.version.parse().map_err(CatalogError::corrupt)?;
            let summary = VersionSummary {
                manifest_digest: h.manifest_digest.parse().map_err(CatalogError::corrupt)?,
                version: h.version,
                yanked: h.yanked,
                created_at: h.created_at,
                size: h.total_size,
            };
            Ok((version, summary))
        })
        .collect::<CatalogResult<Vec<_>>>()?;
    items.sort_by(|a, b| b.0.cmp(&a.0));
    Ok(items.into_iter().map(|(_, s)| s).collect())
}

/// Repositories of every kind (`(kind, row)`), by namespace, name, kind; at most `limit`.
pub async fn all_repositories(db: &Db, limit: i64) -> CatalogResult<Vec<(Kind, RepoRow)>> {
    Ok(db
        .all_repositories(limit)
        .await?
        .into_iter()
        .filter_map(|(kind, row)| Some((crate::db::facts::kind_of(&kind)?, row)))
        .collect())
}

/// Every version row of a repository, newest semver first, with its aliases (`(alias,
/// version)` by alias).
pub async fn page_versions(
    db: &Db,
    repo: &RepoRow,
) -> CatalogResult<(Vec<PageVersion>, Vec<(String, String)>)> {
    let mut versions = db.page_versions(repo.id).await?;
    versions.sort_by(|a, b| {
        let (pa, pb) = (
            semver::Version::parse(&a.version).ok(),
            semver::Version::parse(&b.version).ok(),
        );
        pb.cmp(&pa)
    });
    Ok((versions, db.aliases_of(repo.id).await?))
}
