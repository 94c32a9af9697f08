//! What resolving a reference needs from the database: a repository's versions (as
//! [`VersionRecord`]s, with their row ids) and its aliases, read in one place on any
//! connection (the pool, or the transaction of an alias move whose gate resolves a base).
//! The rules themselves are `adapter_core::reference::resolve`; `catalog` maps the outcome.

use std::collections::BTreeMap;

use adapter_core::manifest::Kind;
use adapter_core::name::AliasName;
use adapter_core::reference::{Resolution, ResolveError, Selector, VersionRecord, resolve};
use sqlx::{AnyConnection, Row as _};

use super::repositories::RepoRow;

/// A repository with everything resolution reads.
#[derive(Debug, Clone)]
pub struct Resolvable {
    pub repo: RepoRow,
    pub records: Vec<VersionRecord>,
    pub aliases: BTreeMap<AliasName, semver::Version>,
    /// Versions `fsck --repair` marked damaged, with why.
    pub damaged: BTreeMap<semver::Version, String>,
    ids: BTreeMap<semver::Version, i64>,
}

/// A resolved version with its row id.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub resolution: Resolution,
    pub version_id: i64,
}

impl Resolvable {
    /// Resolve `selector` (`None`: the latest non-yanked, non-pre-release version).
    pub fn resolve(&self, selector: Option<&Selector>) -> Result<Resolved, ResolveError> {
        let resolution = resolve(selector, &self.records, &self.aliases)?;
        let version_id = self.ids[&resolution.version];
        Ok(Resolved {
            resolution,
            version_id,
        })
    }
}

/// The versions and aliases of `kind` `ns/name`, or `None` when no such repository exists.
/// Rows that do not parse (never written by this code) are skipped.
pub async fn resolvable(
    conn: &mut AnyConnection,
    kind: Kind,
    ns: &str,
    name: &str,
) -> Result<Option<Resolvable>, sqlx::Error> {
    let Some(repo) = sqlx::query(
        "SELECT id, namespace, name, created_at FROM repositories \
         WHERE kind = $1 AND namespace = $2 AND name = $3",
    )
    .bind(kind.as_str())
    .bind(ns.to_owned())
    .bind(name.to_owned())
    .fetch_optional(&mut *conn)
    .await?
    .as_ref()
    .map(super::repositories::repo_of)
    .transpose()?
    else {
        return Ok(None);
    };
    resolvable_in(conn, repo).await.map(Some)
}

/// [`resolvable`] of a repository already read.
pub async fn resolvable_in(
    conn: &mut AnyConnection,
    repo: RepoRow,
) -> Result<Resolvable, sqlx::Error> {
    let mut all = resolvables_in(conn, vec![repo]).await?;
    Ok(all.pop().expect("one repository in, one out"))
}

/// [`resolvable_in`] of several repositories in two queries (a page of search hits), in
/// the order given.
pub async fn resolvables_in(
    conn: &mut AnyConnection,
    repos: Vec<RepoRow>,
) -> Result<Vec<Resolvable>, sqlx::Error> {
    let mut out: Vec<Resolvable> = repos
        .into_iter()
        .map(|repo| Resolvable {
            repo,
            records: Vec::new(),
            aliases: BTreeMap::new(),
            damaged: BTreeMap::new(),
            ids: BTreeMap::new(),
        })
        .collect();
    if out.is_empty() {
        return Ok(out);
    }
    let at: std::collections::HashMap<i64, usize> = out
        .iter()
        .enumerate()
        .map(|(i, r)| (r.repo.id, i))
        .collect();
    // Only `$N` placeholders are interpolated; every id is bound.
    let placeholders: Vec<String> = (1..=out.len()).map(|i| format!("${i}")).collect();
    let list = placeholders.join(", ");
    let ids: Vec<i64> = out.iter().map(|r| r.repo.id).collect();
    let sql = format!(
        "SELECT repository_id, id, version, manifest_digest, yanked, damaged FROM versions \
         WHERE repository_id IN ({list})"
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for &id in &ids {
        q = q.bind(id);
    }
    for row in q.fetch_all(&mut *conn).await? {
        let r = &mut out[at[&row.try_get::<i64, _>(0)?]];
        let version: String = row.try_get(2)?;
        let digest: String = row.try_get(3)?;
        let (Ok(v), Ok(d)) = (version.parse::<semver::Version>(), digest.parse()) else {
            continue;
        };
        r.ids.insert(v.clone(), row.try_get::<i64, _>(1)?);
        if let Some(why) = row.try_get::<Option<String>, _>(5)? {
            r.damaged.insert(v.clone(), why);
        }
        r.records.push(VersionRecord {
            version: v,
            manifest_digest: d,
            yanked: row.try_get::<i64, _>(4)? != 0,
        });
    }
    let sql = format!(
        "SELECT repository_id, alias, version FROM aliases WHERE repository_id IN ({list})"
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for &id in &ids {
        q = q.bind(id);
    }
    for row in q.fetch_all(&mut *conn).await? {
        let r = &mut out[at[&row.try_get::<i64, _>(0)?]];
        let a: String = row.try_get(1)?;
        let v: String = row.try_get(2)?;
        if let (Ok(a), Ok(v)) = (AliasName::new(a.as_str()), v.parse()) {
            r.aliases.insert(a, v);
        }
    }
    Ok(out)
}
