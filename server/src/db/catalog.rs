//! Reads for the HTML catalogue page: every repository, a repository's versions with ids,
//! and its aliases.

use sqlx::{AssertSqlSafe, Row as _};

use super::Db;
use super::repositories::RepoRow;

/// A version row as the page shows it.
#[derive(Debug, Clone)]
pub struct PageVersion {
    pub id: i64,
    pub version: String,
    pub manifest_digest: String,
    pub yanked: bool,
    pub yank_reason: Option<String>,
    pub created_at: i64,
}

impl Db {
    /// Repositories of every kind, by namespace, name, kind; at most `limit`.
    pub async fn all_repositories(
        &self,
        limit: i64,
    ) -> Result<Vec<(String, RepoRow)>, sqlx::Error> {
        let sql = format!(
            "SELECT kind, id, namespace, name, created_at FROM repositories \
             ORDER BY namespace, name, kind LIMIT {}",
            limit.max(0)
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get(0)?,
                    RepoRow {
                        id: r.try_get(1)?,
                        namespace: r.try_get(2)?,
                        name: r.try_get(3)?,
                        created_at: r.try_get(4)?,
                    },
                ))
            })
            .collect()
    }

    /// Every version of a repository (unordered).
    pub async fn page_versions(&self, repo_id: i64) -> Result<Vec<PageVersion>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT id, version, manifest_digest, yanked, yank_reason, created_at \
             FROM versions WHERE repository_id = $1",
        )
        .bind(repo_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(PageVersion {
                    id: r.try_get(0)?,
                    version: r.try_get(1)?,
                    manifest_digest: r.try_get(2)?,
                    yanked: r.try_get::<i64, _>(3)? != 0,
                    yank_reason: r.try_get(4)?,
                    created_at: r.try_get(5)?,
                })
            })
            .collect()
    }

    /// `(alias, version)` of a repository, by alias.
    pub async fn aliases_of(&self, repo_id: i64) -> Result<Vec<(String, String)>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT alias, version FROM aliases WHERE repository_id = $1 ORDER BY alias",
        )
        .bind(repo_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }
}
