//! Yank and un-yank: `versions.yanked` (the flag resolution reads) with who, when and why.

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
        version_id: i64,
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
                 yanked_by = $4 WHERE id = $5",
            )
            .bind(flag)
            .bind(reason.map(str::to_owned))
            .bind(at)
            .bind(by.clone())
            .bind(version_id)
            .execute(&self.pool)
        })
        .await?;
        if r.rows_affected() == 0 {
            return Ok(None);
        }
        self.yank_state(version_id).await
    }

    /// The yank state of the version with row id `version_id`.
    pub async fn yank_state(&self, version_id: i64) -> Result<Option<YankRow>, sqlx::Error> {
        let sql = format!("SELECT {COLUMNS} FROM versions v WHERE v.id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(version_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(yank_of).transpose()
    }
}
