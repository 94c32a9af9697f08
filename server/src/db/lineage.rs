//! Lineage lookups: a version by row id, the registered version a lineage row points at, and
//! the reverse query (which versions point at this one).

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row as _};

use super::Db;
use super::facts::LineageRow;

/// A registered version, as lineage shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRef {
    pub id: i64,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub version: String,
    pub manifest_digest: String,
    pub yanked: bool,
}

const REF_COLUMNS: &str =
    "v.id, r.kind, r.namespace, r.name, v.version, v.manifest_digest, v.yanked";

fn ref_of(row: &AnyRow, at: usize) -> Result<VersionRef, sqlx::Error> {
    Ok(VersionRef {
        id: row.try_get(at)?,
        kind: row.try_get(at + 1)?,
        namespace: row.try_get(at + 2)?,
        name: row.try_get(at + 3)?,
        version: row.try_get(at + 4)?,
        manifest_digest: row.try_get(at + 5)?,
        yanked: row.try_get::<i64, _>(at + 6)? != 0,
    })
}

/// A version pointing at another, with the relation of its lineage row.
#[derive(Debug, Clone)]
pub struct Child {
    pub relation: String,
    pub version: VersionRef,
}

impl Db {
    /// The version with row id `id`.
    pub async fn version_ref(&self, id: i64) -> Result<Option<VersionRef>, sqlx::Error> {
        let sql = format!(
            "SELECT {REF_COLUMNS} FROM versions v JOIN repositories r ON r.id = v.repository_id \
             WHERE v.id = $1"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(|r| ref_of(r, 0)).transpose()
    }

    /// The registered version a lineage row names: by manifest digest, else by its pinned
    /// reference `ns/name@version`, else (models) by content digest. The oldest wins when
    /// several match.
    pub async fn lineage_target(&self, l: &LineageRow) -> Result<Option<VersionRef>, sqlx::Error> {
        let kind_cond = match l.kind.as_deref() {
            Some(k @ ("adapter" | "model")) => Some(k.to_owned()),
            _ => None,
        };
        let base = format!(
            "SELECT {REF_COLUMNS} FROM versions v JOIN repositories r ON r.id = v.repository_id"
        );
        let kind_sql = if kind_cond.is_some() {
            " AND r.kind = $2"
        } else {
            ""
        };
        if let Some(d) = &l.manifest_digest {
            let sql =
                format!("{base} WHERE v.manifest_digest = $1{kind_sql} ORDER BY v.id LIMIT 1");
            let mut q = sqlx::query(AssertSqlSafe(sql)).bind(d.clone());
            if let Some(k) = &kind_cond {
                q = q.bind(k.clone());
            }
            if let Some(row) = q.fetch_optional(&self.pool).await? {
                return ref_of(&row, 0).map(Some);
            }
        }
        if let Some((repo, version)) = l.reference.as_deref().and_then(|r| r.split_once('@'))
            && let Some((ns, name)) = repo.split_once('/')
        {
            let kind_sql = if kind_cond.is_some() {
                " AND r.kind = $4"
            } else {
                ""
            };
            let sql = format!(
                "{base} WHERE r.namespace = $1 AND r.name = $2 AND v.version = $3{kind_sql} \
                 ORDER BY v.id LIMIT 1"
            );
            let mut q = sqlx::query(AssertSqlSafe(sql))
                .bind(ns.to_owned())
                .bind(name.to_owned())
                .bind(version.to_owned());
            if let Some(k) = &kind_cond {
                q = q.bind(k.clone());
            }
            let row = q.fetch_optional(&self.pool).await?;
            if let Some(row) = row {
                return ref_of(&row, 0).map(Some);
            }
        }
        if let Some(c) = &l.content_digest {
            let sql = format!(
                "{base} JOIN version_facts f ON f.version_id = v.id \
                 WHERE f.content_digest = $1 AND r.kind = 'model' ORDER BY v.id LIMIT 1"
            );
            let row = sqlx::query(AssertSqlSafe(sql))
                .bind(c.clone())
                .fetch_optional(&self.pool)
                .await?;
            if let Some(row) = row {
                return ref_of(&row, 0).map(Some);
            }
        }
        Ok(None)
    }

    /// Versions whose lineage points at `target`: by its manifest digest, its pinned
    /// reference, or (a model) its content digest.
    pub async fn lineage_children(
        &self,
        target: &VersionRef,
        content_digest: Option<&str>,
    ) -> Result<Vec<Child>, sqlx::Error> {
        let reference = format!("{}/{}@{}", target.namespace, target.name, target.version);
        let content = if content_digest.is_some() {
            " OR l.content_digest = $4"
        } else {
            ""
        };
        let sql = format!(
            "SELECT l.relation, {REF_COLUMNS} FROM lineage l \
             JOIN versions v ON v.id = l.version_id \
             JOIN repositories r ON r.id = v.repository_id \
             WHERE l.version_id <> $1 AND (l.manifest_digest = $2 OR l.reference = $3{content}) \
             ORDER BY r.kind, r.namespace, r.name, v.id, l.id"
        );
        let mut q = sqlx::query(AssertSqlSafe(sql))
            .bind(target.id)
            .bind(target.manifest_digest.clone())
            .bind(reference);
        if let Some(c) = content_digest {
            q = q.bind(c.to_owned());
        }
        let rows = q.fetch_all(&self.pool).await?;
        let mut out: Vec<Child> = Vec::new();
        for row in &rows {
            let child = Child {
                relation: row.try_get(0)?,
                version: ref_of(row, 1)?,
            };
            // One entry per (version, relation), however many of its rows match.
            if !out
                .iter()
                .any(|c| c.version.id == child.version.id && c.relation == child.relation)
            {
                out.push(child);
            }
        }
        Ok(out)
    }
}
