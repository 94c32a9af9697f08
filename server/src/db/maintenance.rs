//! What the operators' tools need of the database: `gc` (unreferenced blobs past the grace
//! period, their deletion while nothing references them: docs/ARCHITECTURE.md, "gc"), `fsck`
//! (every version and referenced blob) and `/metrics` (the shared gauges).

use adapter_core::digest::Digest;
use sqlx::Row as _;

use super::{Db, is_foreign_key_violation, retry_busy, to_u64};

impl Db {
    /// Up to `limit` blobs that no version references, created before `cutoff` (unix
    /// seconds), after `after` in digest order: `(digest, size)`.
    pub async fn unreferenced_blobs(
        &self,
        cutoff: i64,
        after: &str,
        limit: i64,
    ) -> Result<Vec<(Digest, u64)>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT b.digest, b.size FROM blobs b WHERE b.created_at < $1 AND b.digest > $2 \
             AND NOT EXISTS (SELECT 1 FROM version_blobs vb WHERE vb.digest = b.digest) \
             ORDER BY b.digest LIMIT $3",
        )
        .bind(cutoff)
        .bind(after.to_owned())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let d: String = r.try_get(0)?;
                let digest = d
                    .parse()
                    .map_err(|e| sqlx::Error::Decode(format!("blobs.digest {d}: {e}").into()))?;
                Ok((digest, to_u64(r.try_get(1)?)))
            })
            .collect()
    }

    /// When the oldest running job started (its outputs are younger): `gc` keeps what is
    /// younger than that too.
    pub async fn oldest_running_job_start(&self) -> Result<Option<i64>, sqlx::Error> {
        let row = sqlx::query("SELECT MIN(started_at) FROM jobs WHERE state = 'running'")
            .fetch_one(&self.pool)
            .await?;
        row.try_get(0)
    }

    /// Delete blob `digest` if no version references it, running `delete_object` (the
    /// stored bytes) before the row's deletion commits. `Ok(false)`: it is referenced now
    /// (nothing deleted).
    ///
    /// Why this is safe against a publish in flight: the row is deleted first, inside the
    /// transaction, and the bytes while the deletion is uncommitted. On SQLite the
    /// transaction holds the one write lock, so a publish (which checks its blobs inside
    /// its own write transaction) runs wholly before or after. On PostgreSQL the foreign key
    /// from `version_blobs` makes a publish that references the blob lock its row: the
    /// delete then waits and fails, or the publish waits and fails (`missing_blobs`). An
    /// upload of the same bytes meanwhile sees the row and only verifies (it writes nothing
    /// that could be lost); once the row is gone it stores them afresh.
    pub async fn delete_unreferenced_blob<F, Fut, E>(
        &self,
        digest: &Digest,
        delete_object: F,
    ) -> Result<Result<bool, E>, sqlx::Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(), E>>,
    {
        let d = digest.to_string();
        let mut tx = retry_busy(|| async {
            let mut tx = self.pool.begin().await?;
            sqlx::query("DELETE FROM blob_uploaders WHERE digest = $1")
                .bind(d.clone())
                .execute(&mut *tx)
                .await?;
            Ok(tx)
        })
        .await?;
        let deleted = sqlx::query(
            "DELETE FROM blobs WHERE digest = $1 \
             AND NOT EXISTS (SELECT 1 FROM version_blobs WHERE digest = $1)",
        )
        .bind(d.clone())
        .execute(&mut *tx)
        .await;
        match deleted {
            Ok(r) if r.rows_affected() == 1 => {}
            Ok(_) => {
                tx.rollback().await?;
                return Ok(Ok(false));
            }
            Err(e) if is_foreign_key_violation(&e) => {
                tx.rollback().await?;
                return Ok(Ok(false));
            }
            Err(e) => return Err(e),
        }
        if let Err(e) = delete_object().await {
            tx.rollback().await?;
            return Ok(Err(e));
        }
        tx.commit().await?;
        Ok(Ok(true))
    }
}

/// A version as fsck reads it.
#[derive(Debug, Clone)]
pub struct StoredVersion {
    pub id: i64,
    /// `kind ns/name@version`.
    pub label: String,
    pub manifest_digest: String,
    pub manifest: String,
    pub damaged: Option<String>,
}

impl Db {
    /// Up to `limit` versions with row id above `after`, by id.
    pub async fn versions_after(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<StoredVersion>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT v.id, r.kind, r.namespace, r.name, v.version, v.manifest_digest, v.manifest, \
             v.damaged FROM versions v JOIN repositories r ON r.id = v.repository_id \
             WHERE v.id > $1 ORDER BY v.id LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let (kind, ns, name, version): (String, String, String, String) =
                    (r.try_get(1)?, r.try_get(2)?, r.try_get(3)?, r.try_get(4)?);
                Ok(StoredVersion {
                    id: r.try_get(0)?,
                    label: format!("{kind} {ns}/{name}@{version}"),
                    manifest_digest: r.try_get(5)?,
                    manifest: r.try_get(6)?,
                    damaged: r.try_get(7)?,
                })
            })
            .collect()
    }

    /// Up to `limit` blobs some version references, after `after` in digest order, with the
    /// size their row records (`None`: the row is missing).
    pub async fn referenced_blobs(
        &self,
        after: &str,
        limit: i64,
    ) -> Result<Vec<(String, Option<u64>)>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT vb.digest, MAX(b.size) FROM version_blobs vb \
             LEFT JOIN blobs b ON b.digest = vb.digest WHERE vb.digest > $1 \
             GROUP BY vb.digest ORDER BY vb.digest LIMIT $2",
        )
        .bind(after.to_owned())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get::<Option<i64>, _>(1)?.map(to_u64))))
            .collect()
    }

    /// The row ids of the versions that reference blob `digest`.
    pub async fn versions_referencing(&self, digest: &str) -> Result<Vec<i64>, sqlx::Error> {
        let rows = sqlx::query("SELECT version_id FROM version_blobs WHERE digest = $1")
            .bind(digest.to_owned())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| r.try_get(0)).collect()
    }

    /// Mark version `id` damaged (`Some(why)`) or sound (`None`).
    pub async fn set_damaged(&self, id: i64, why: Option<&str>) -> Result<(), sqlx::Error> {
        retry_busy(|| {
            sqlx::query("UPDATE versions SET damaged = $1 WHERE id = $2")
                .bind(why.map(str::to_owned))
                .bind(id)
                .execute(&self.pool)
        })
        .await
        .map(|_| ())
    }
}

/// What `/metrics` reads from the shared database at scrape time.
#[derive(Debug, Default)]
pub struct ScrapeStats {
    /// `(kind, state, count)`.
    pub jobs: Vec<(String, String, i64)>,
    pub queue_depth: i64,
    pub upload_sessions: i64,
}

impl Db {
    pub async fn scrape_stats(&self) -> Result<ScrapeStats, sqlx::Error> {
        let now = super::now();
        let jobs = sqlx::query("SELECT kind, state, COUNT(*) FROM jobs GROUP BY kind, state")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let queue_depth: i64 =
            sqlx::query("SELECT COUNT(*) FROM jobs WHERE state = 'queued' AND run_after <= $1")
                .bind(super::jobs::now_ms())
                .fetch_one(&self.pool)
                .await?
                .try_get(0)?;
        let upload_sessions: i64 =
            sqlx::query("SELECT COUNT(*) FROM upload_sessions WHERE expires_at > $1")
                .bind(now)
                .fetch_one(&self.pool)
                .await?
                .try_get(0)?;
        Ok(ScrapeStats {
            jobs,
            queue_depth,
            upload_sessions,
        })
    }
}
