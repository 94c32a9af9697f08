//! Yank and un-yank: `versions.yanked` (the flag resolution reads) with who, when and why.

use adapter_core::manifest::Kind;
use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::{Db, now, retry_busy};

/// A version's yank state.
#[derive(Debug, Clone, PartialEq)]
pub struct YankRow {
    pub version: String,
    pub yanked: bool,
    pub reason: Option<String>,
    pub at: Option<i64>,
    pub by: Option<String>,
}

const COLUMNS: &str = "v.version, v.yanked, v.yank_reason, v.yanked_at, v.yanked_by";

fn yank_of(row: &AnyRow) -> Result<YankRow, sqlx::Error> {
    Ok(YankRow {
        version: row.try_get(0)?,
        yanked: row.try_get::<i64, _>(1)? != 0,
        reason: row.try_get(2)?,
        at: row.try_get(3)?,
        by: row.try_get(4)?,
    })
}

impl Db {
    /// Yank (`Some(reason)`) or un-yank (`None`) a version; `None` when it does not exist.
    /// Yanking a yanked version replaces its reason, time and actor.
    pub async fn set_yank(
        &self,
        repo_id: i64,
        version: &str,
        reason: Option<&str>,
        actor: &str,
    ) -> Result<Option<YankRow>, sqlx::Error> {
        let (flag, at, by) = match reason {
            Some(_) => (1_i64, Some(now()), Some(actor.to_owned())),
            None => (0, None, None),
        };
        let r = retry_busy(|| {
            sqlx::query(
                "UPDATE versions SET yanked = $1, yank_reason = $2, yanked_at = $3, \
                 yanked_by = $4 WHERE repository_id = $5 AND version = $6",
            )
            .bind(flag)
            .bind(reason.map(str::to_owned))
            .bind(at)
            .bind(by.clone())
            .bind(repo_id)
            .bind(version.to_owned())
            .execute(&self.pool)
        })
        .await?;
        if r.rows_affected() == 0 {
            return Ok(None);
        }
        self.yank_state(repo_id, version).await
    }

    pub async fn yank_state(
        &self,
        repo_id: i64,
        version: &str,
    ) -> Result<Option<YankRow>, sqlx::Error> {
        let sql = format!(
            "SELECT {COLUMNS} FROM versions v WHERE v.repository_id = $1 AND v.version = $2"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(repo_id)
            .bind(version.to_owned())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(yank_of).transpose()
    }

    /// The yank state of `kind ns/name@version` (for `GET …/versions/{version}`).
    pub async fn yank_state_by_name(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        version: &str,
    ) -> Result<Option<YankRow>, sqlx::Error> {
        let sql = format!(
            "SELECT {COLUMNS} FROM versions v JOIN repositories r ON r.id = v.repository_id \
             WHERE r.kind = $1 AND r.namespace = $2 AND r.name = $3 AND v.version = $4"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(kind.as_str())
            .bind(namespace.to_owned())
            .bind(name.to_owned())
            .bind(version.to_owned())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(yank_of).transpose()
    }
}
