//! References → versions: exact, alias, range, manifest digest, or latest non-yanked. The
//! one resolution every reader uses (the resolve routes, job inputs, a publish's base
//! reference; alias gates resolve through the same `db::resolve` inside their transaction).

use adapter_core::api::JobInput;
use adapter_core::digest::Digest;
use adapter_core::manifest::Kind;
use adapter_core::name::Name;
use adapter_core::reference::{Reference, Selector};

use super::CatalogResult;
use super::error::CatalogError;
use crate::db::Db;
use crate::db::repositories::RepoRow;
use crate::db::resolve::resolvable;

/// The version a reference names.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub repo: RepoRow,
    pub version: semver::Version,
    pub manifest_digest: Digest,
    /// Only an exact version, an alias or a digest selects a yanked version.
    pub yanked: bool,
    pub version_id: i64,
}

impl Resolved {
    /// `ns/name@version`: the exact, pinned reference.
    pub fn pinned(&self) -> String {
        format!(
            "{}/{}@{}",
            self.repo.namespace, self.repo.name, self.version
        )
    }
}

/// What names one version of a repository.
#[derive(Debug, Clone, Copy)]
pub enum Pick<'a> {
    /// A selector; `None`: the highest version neither yanked nor a pre-release.
    Selector(Option<&'a Selector>),
    /// A Hugging Face commit id: a prefix (the first 40 hex digits) of a manifest digest.
    Commit(&'a str),
}

/// Resolve `selector` (`None`: the highest version neither yanked nor a pre-release) in
/// `kind` `ns/name`.
pub async fn resolve(
    db: &Db,
    kind: Kind,
    ns: &Name,
    name: &Name,
    selector: Option<&Selector>,
) -> CatalogResult<Resolved> {
    pick(db, kind, ns, name, Pick::Selector(selector)).await
}

/// The version `pick` names in `kind` `ns/name`, from one read of its versions and aliases.
pub async fn pick(
    db: &Db,
    kind: Kind,
    ns: &Name,
    name: &Name,
    pick: Pick<'_>,
) -> CatalogResult<Resolved> {
    let mut conn = db.pool.acquire().await?;
    let found = resolvable(&mut conn, kind, ns.as_str(), name.as_str())
        .await?
        .ok_or_else(|| CatalogError::RepositoryNotFound {
            kind,
            namespace: ns.to_string(),
            name: name.to_string(),
        })?;
    drop(conn);
    let by_commit;
    let selector = match pick {
        Pick::Selector(s) => s,
        Pick::Commit(commit) => {
            let digest = found
                .records
                .iter()
                .map(|r| r.manifest_digest)
                .find(|d| d.hex().starts_with(commit))
                .ok_or_else(|| CatalogError::VersionNotFound {
                    kind,
                    namespace: ns.to_string(),
                    name: name.to_string(),
                    version: commit.to_owned(),
                })?;
            by_commit = Selector::Digest(digest);
            Some(&by_commit)
        }
    };
    let r = found
        .resolve(selector)
        .map_err(|reason| CatalogError::NoMatch {
            repository: format!("{ns}/{name}"),
            selector: selector.map(ToString::to_string),
            reason,
        })?;
    if let Some(reason) = found.damaged.get(&r.resolution.version) {
        return Err(CatalogError::Damaged {
            reference: format!("{ns}/{name}@{}", r.resolution.version),
            reason: reason.clone(),
        });
    }
    Ok(Resolved {
        repo: found.repo,
        version: r.resolution.version,
        manifest_digest: r.resolution.manifest_digest,
        yanked: r.resolution.yanked,
        version_id: r.version_id,
    })
}

/// [`resolve`] for a parsed reference.
pub async fn resolve_reference(db: &Db, kind: Kind, r: &Reference) -> CatalogResult<Resolved> {
    resolve(db, kind, &r.namespace, &r.name, r.selector.as_ref()).await
}

/// A job input: the reference pinned to the exact version, with its manifest digest.
pub async fn job_input(db: &Db, kind: Kind, r: &Reference) -> CatalogResult<JobInput> {
    let resolved = resolve_reference(db, kind, r).await?;
    Ok(JobInput {
        reference: resolved.pinned(),
        manifest_digest: resolved.manifest_digest,
    })
}
