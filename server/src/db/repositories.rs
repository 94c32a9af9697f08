//! Repositories: one per (kind, namespace, name), created by the first publish; and those
//! created empty with the Hub protocol's `create_repo`, before any version.

use adapter_core::manifest::Kind;
use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::Db;

#[derive(Debug, Clone)]
pub struct RepoRow {
    pub id: i64,
    pub namespace: String,
    pub name: String,
    pub created_at: i64,
}

pub(super) fn repo_of(row: &AnyRow) -> Result<RepoRow, sqlx::Error> {
    Ok(RepoRow {
        id: row.try_get(0)?,
        namespace: row.try_get(1)?,
        name: row.try_get(2)?,
        created_at: row.try_get(3)?,
    })
}

impl Db {
    pub async fn repository(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
    ) -> Result<Option<RepoRow>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT id, namespace, name, created_at FROM repositories \
             WHERE kind = $1 AND namespace = $2 AND name = $3",
        )
        .bind(kind.as_str())
        .bind(namespace.to_owned())
        .bind(name.to_owned())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(repo_of).transpose()
    }

    /// Record a repository created with the Hub's `create_repo` (idempotent; docs/HF.md).
    pub async fn create_hub_repository(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<(), sqlx::Error> {
        super::retry_busy(|| {
            sqlx::query(
                "INSERT INTO hub_repositories (namespace, name, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (namespace, name) DO NOTHING",
            )
            .bind(namespace.to_owned())
            .bind(name.to_owned())
            .bind(super::now())
            .execute(&self.pool)
        })
        .await
        .map(|_| ())
    }

    /// When a repository was created with the Hub's `create_repo`, if it was.
    pub async fn hub_repository(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<i64>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT created_at FROM hub_repositories WHERE namespace = $1 AND name = $2",
        )
        .bind(namespace.to_owned())
        .bind(name.to_owned())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| r.try_get(0)).transpose()
    }
}

/// Escape `%`, `_` and `\` for a LIKE pattern with `ESCAPE '\'`.
pub fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
