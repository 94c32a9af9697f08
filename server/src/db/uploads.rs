//! Resumable upload sessions and their parts.

use adapter_core::digest::Digest;
use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::{Db, now, retry_busy, to_i64, to_u64};

/// One upload session row.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub offset: u64,
    /// Hex of `Hasher::save_state()`.
    pub hash_state: String,
    pub expected_digest: Option<Digest>,
    pub expected_size: Option<u64>,
    pub finishing: bool,
    pub expires_at: i64,
    /// The token that opened the session (set for Git LFS upload URLs, whose PUT carries no
    /// credentials): the uploader of the blob it makes.
    pub token_id: Option<String>,
}

/// One stored chunk of a session.
#[derive(Debug, Clone)]
pub struct Part {
    pub offset: u64,
    pub size: u64,
    pub key: String,
}

const SESSION_COLUMNS: &str = "id, upload_offset, hash_state, expected_digest, expected_size, \
                               finishing, expires_at, token_id";

fn session_of(row: &AnyRow) -> Result<Session, sqlx::Error> {
    let expected_digest: Option<String> = row.try_get(3)?;
    Ok(Session {
        id: row.try_get(0)?,
        offset: to_u64(row.try_get(1)?),
        hash_state: row.try_get(2)?,
        expected_digest: expected_digest.and_then(|d| d.parse().ok()),
        expected_size: row.try_get::<Option<i64>, _>(4)?.map(to_u64),
        finishing: row.try_get::<i64, _>(5)? != 0,
        expires_at: row.try_get(6)?,
        token_id: row.try_get(7)?,
    })
}

impl Db {
    pub async fn create_session(&self, s: &Session) -> Result<(), sqlx::Error> {
        let t = now();
        retry_busy(|| {
            sqlx::query(
                "INSERT INTO upload_sessions (id, upload_offset, hash_state, expected_digest, \
                 expected_size, finishing, created_at, updated_at, expires_at, token_id) \
                 VALUES ($1, $2, $3, $4, $5, 0, $6, $6, $7, $8)",
            )
            .bind(s.id.clone())
            .bind(to_i64(s.offset))
            .bind(s.hash_state.clone())
            .bind(s.expected_digest.map(|d| d.to_string()))
            .bind(s.expected_size.map(to_i64))
            .bind(t)
            .bind(s.expires_at)
            .bind(s.token_id.clone())
            .execute(&self.pool)
        })
        .await
        .map(|_| ())
    }

    /// A live (not expired) session.
    pub async fn session(&self, id: &str) -> Result<Option<Session>, sqlx::Error> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM upload_sessions WHERE id = $1 AND expires_at > $2"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.to_owned())
            .bind(now())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(session_of).transpose()
    }

    /// Advance a session from `old` to `part.offset + part.size` and record the part, only if
    /// it is still at `old` and not finishing (optimistic). `false`: another request won.
    pub async fn advance_session(
        &self,
        id: &str,
        old: u64,
        hash_state: &str,
        expires_at: i64,
        part: &Part,
    ) -> Result<bool, sqlx::Error> {
        retry_busy(|| async {
            let mut tx = self.pool.begin().await?;
            let updated = sqlx::query(
                "UPDATE upload_sessions SET upload_offset = $1, hash_state = $2, \
                 updated_at = $3, expires_at = $4 \
                 WHERE id = $5 AND upload_offset = $6 AND finishing = 0 AND expires_at > $3",
            )
            .bind(to_i64(old + part.size))
            .bind(hash_state.to_owned())
            .bind(now())
            .bind(expires_at)
            .bind(id.to_owned())
            .bind(to_i64(old))
            .execute(&mut *tx)
            .await?;
            if updated.rows_affected() != 1 {
                tx.rollback().await?;
                return Ok(false);
            }
            sqlx::query(
                "INSERT INTO upload_parts (session_id, part_offset, size, object_key) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(id.to_owned())
            .bind(to_i64(part.offset))
            .bind(to_i64(part.size))
            .bind(part.key.clone())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    /// Mark a session as finishing at `offset` (no more chunks). `false` if it moved on or
    /// is gone. A session already finishing may be finished again (a retried request).
    pub async fn mark_finishing(&self, id: &str, offset: u64) -> Result<bool, sqlx::Error> {
        retry_busy(|| {
            sqlx::query(
                "UPDATE upload_sessions SET finishing = 1, updated_at = $1 \
                 WHERE id = $2 AND upload_offset = $3",
            )
            .bind(now())
            .bind(id.to_owned())
            .bind(to_i64(offset))
            .execute(&self.pool)
        })
        .await
        .map(|r| r.rows_affected() == 1)
    }

    pub async fn parts(&self, id: &str) -> Result<Vec<Part>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT part_offset, size, object_key FROM upload_parts \
             WHERE session_id = $1 ORDER BY part_offset",
        )
        .bind(id.to_owned())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Part {
                    offset: to_u64(r.try_get(0)?),
                    size: to_u64(r.try_get(1)?),
                    key: r.try_get(2)?,
                })
            })
            .collect()
    }

    /// Delete a session's rows (its objects are the caller's job). `false` if it was gone.
    pub async fn delete_session(&self, id: &str) -> Result<bool, sqlx::Error> {
        retry_busy(|| async {
            let mut tx = self.pool.begin().await?;
            let gone = sqlx::query("DELETE FROM upload_sessions WHERE id = $1")
                .bind(id.to_owned())
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM upload_parts WHERE session_id = $1")
                .bind(id.to_owned())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(gone.rows_affected() == 1)
        })
        .await
    }

    /// Ids of sessions idle past their expiry.
    pub async fn expired_sessions(&self, limit: i64) -> Result<Vec<String>, sqlx::Error> {
        let rows = sqlx::query("SELECT id FROM upload_sessions WHERE expires_at <= $1 LIMIT $2")
            .bind(now())
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| r.try_get(0)).collect()
    }
}
