//! Jobs as rows: submit (idempotent by key), claim with a lease (one statement: PostgreSQL
//! `FOR UPDATE SKIP LOCKED`, SQLite `UPDATE … RETURNING` under its single writer), renew,
//! finish; progress and log lines. Every write by a worker is conditional on its lease token
//! (`locked_by`), so a worker that lost its lease can never overwrite the job. What a new
//! job is (its key, the namespaces it touches) and how it is queued and announced:
//! [`queue`].

mod queue;

pub use queue::{CHANNEL, NewJob, WAKE, enqueue_in, is_job_id, new_job_id};

use std::time::{SystemTime, UNIX_EPOCH};

use adapter_core::api::{JobInfo, JobLogLine, JobState};
use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::{Backend, Db, now, retry_busy};

/// A query on the `Any` driver, as the binding helpers take it.
type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

/// Unix time in milliseconds (leases and backoff).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// What a submit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submitted {
    /// A new job.
    Created,
    /// A failed or cancelled job with the same key, queued again.
    Requeued,
    /// A job with the same key exists (queued, running or succeeded): nothing changed.
    Existing,
}

/// A job as a worker claimed it.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: String,
    pub kind: String,
    pub inputs: String,
    pub params: String,
    /// This attempt's number (1-based).
    pub attempt: u32,
    pub max_attempts: u32,
    pub cancel_requested: bool,
    /// The lease token: every later write of this attempt is conditional on it.
    pub token: String,
}

/// Filters of a job list.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub state: Option<JobState>,
    pub kind: Option<String>,
    /// A manifest digest that must be among the inputs.
    pub input: Option<String>,
    /// Ids below this one (the cursor: the last id of the previous page).
    pub before: Option<String>,
    pub limit: i64,
    /// Only jobs every touched namespace of which is among these (`None`: all jobs).
    pub visible: Option<Vec<String>>,
}

const COLUMNS: &str = "id, kind, state, inputs, params, attempts, max_attempts, progress, \
     progress_message, result, error, cancel_requested, submitter, created_at, started_at, \
     finished_at";

fn decode<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, sqlx::Error> {
    serde_json::from_str(s).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

fn job_of(row: &AnyRow) -> Result<JobInfo, sqlx::Error> {
    let state: String = row.try_get(2)?;
    let result: Option<String> = row.try_get(9)?;
    Ok(JobInfo {
        id: row.try_get(0)?,
        kind: row.try_get(1)?,
        state: state
            .parse()
            .map_err(|e: String| sqlx::Error::Decode(e.into()))?,
        inputs: decode(&row.try_get::<String, _>(3)?)?,
        params: decode(&row.try_get::<String, _>(4)?)?,
        attempts: u32::try_from(row.try_get::<i64, _>(5)?).unwrap_or(0),
        max_attempts: u32::try_from(row.try_get::<i64, _>(6)?).unwrap_or(0),
        progress: row.try_get(7)?,
        progress_message: row.try_get(8)?,
        result: result.as_deref().map(decode).transpose()?,
        error: row.try_get(10)?,
        cancel_requested: row.try_get::<i64, _>(11)? != 0,
        submitter: row.try_get(12)?,
        created_at: row.try_get(13)?,
        started_at: row.try_get(14)?,
        finished_at: row.try_get(15)?,
    })
}

impl Db {
    /// Insert a job unless one with its idempotency key exists; a failed or cancelled one is
    /// queued again (its attempts reset). Returns the job as stored now.
    pub async fn submit_job(&self, job: &NewJob) -> Result<(Submitted, JobInfo), sqlx::Error> {
        let at = now();
        let inserted = retry_busy(|| async {
            let mut conn = self.pool.acquire().await?;
            enqueue_in(&mut conn, job).await
        })
        .await?;
        let how = if inserted {
            Submitted::Created
        } else {
            let requeued = retry_busy(|| async {
                sqlx::query(
                    "UPDATE jobs SET state = 'queued', attempts = 0, run_after = $1, \
                     locked_until = NULL, locked_by = NULL, cancel_requested = 0, \
                     progress = NULL, progress_message = NULL, error = NULL, result = NULL, \
                     started_at = NULL, finished_at = NULL, updated_at = $2 \
                     WHERE idempotency_key = $3 AND state IN ('failed', 'cancelled')",
                )
                .bind(now_ms())
                .bind(at)
                .bind(job.idempotency_key.clone())
                .execute(&self.pool)
                .await
            })
            .await?;
            if requeued.rows_affected() == 1 {
                Submitted::Requeued
            } else {
                Submitted::Existing
            }
        };
        let sql = format!("SELECT {COLUMNS} FROM jobs WHERE idempotency_key = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(job.idempotency_key.clone())
            .fetch_one(&self.pool)
            .await?;
        Ok((how, job_of(&row)?))
    }

    /// The id of the job holding an idempotency key.
    pub async fn job_id_by_key(&self, key: &str) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar("SELECT id FROM jobs WHERE idempotency_key = $1")
            .bind(key.to_owned())
            .fetch_optional(&self.pool)
            .await
    }

    pub async fn job(&self, id: &str) -> Result<Option<JobInfo>, sqlx::Error> {
        let sql = format!("SELECT {COLUMNS} FROM jobs WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.to_owned())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(job_of).transpose()
    }

    /// Newest first.
    pub async fn jobs(&self, f: &JobFilter) -> Result<Vec<JobInfo>, sqlx::Error> {
        let mut sql = format!("SELECT {COLUMNS} FROM jobs WHERE 1 = 1");
        let mut n = 0;
        let mut next = || {
            n += 1;
            n
        };
        if f.state.is_some() {
            sql.push_str(&format!(" AND state = ${}", next()));
        }
        if f.kind.is_some() {
            sql.push_str(&format!(" AND kind = ${}", next()));
        }
        if f.input.is_some() {
            sql.push_str(&format!(" AND inputs LIKE ${}", next()));
        }
        if f.before.is_some() {
            sql.push_str(&format!(" AND id < ${}", next()));
        }
        if let Some(visible) = &f.visible {
            // No touched namespace outside the visible ones.
            let allowed: Vec<String> = visible.iter().map(|_| format!("${}", next())).collect();
            sql.push_str(
                " AND NOT EXISTS (SELECT 1 FROM job_namespaces n WHERE n.job_id = jobs.id",
            );
            if !allowed.is_empty() {
                sql.push_str(&format!(" AND n.namespace NOT IN ({})", allowed.join(", ")));
            }
            sql.push(')');
        }
        sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", next()));
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(s) = f.state {
            q = q.bind(s.as_str());
        }
        if let Some(k) = &f.kind {
            q = q.bind(k.clone());
        }
        if let Some(d) = &f.input {
            // Digests are `sha256:` + hex: nothing in them is special to LIKE.
            q = q.bind(format!("%\"{d}\"%"));
        }
        if let Some(b) = &f.before {
            q = q.bind(b.clone());
        }
        for ns in f.visible.iter().flatten() {
            q = q.bind(ns.clone());
        }
        let rows = q.bind(f.limit).fetch_all(&self.pool).await?;
        rows.iter().map(job_of).collect()
    }

    /// Claim the next runnable job of one of `kinds`: a queued one whose `run_after` has
    /// come, or a running one whose lease expired (its worker died). One statement, so two
    /// workers can never claim the same job.
    pub async fn claim_job(
        &self,
        kinds: &[String],
        token: &str,
        lease_ms: i64,
    ) -> Result<Option<Claimed>, sqlx::Error> {
        if kinds.is_empty() {
            return Ok(None);
        }
        let placeholders: Vec<String> = (0..kinds.len()).map(|i| format!("${}", i + 5)).collect();
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE jobs SET state = 'running', attempts = attempts + 1, locked_until = $1, \
             locked_by = $2, started_at = COALESCE(started_at, $3), updated_at = $3 \
             WHERE id = (SELECT id FROM jobs WHERE \
             ((state = 'queued' AND run_after <= $4) OR (state = 'running' AND locked_until < $4)) \
             AND kind IN ({}) ORDER BY run_after, id LIMIT 1{lock}) \
             RETURNING id, kind, inputs, params, attempts, max_attempts, cancel_requested",
            placeholders.join(", ")
        );
        let row = retry_busy(|| async {
            let t = now_ms();
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .bind(t + lease_ms)
                .bind(token.to_owned())
                .bind(now())
                .bind(t);
            for k in kinds {
                q = q.bind(k.clone());
            }
            q.fetch_optional(&self.pool).await
        })
        .await?;
        row.map(|r| {
            Ok(Claimed {
                id: r.try_get(0)?,
                kind: r.try_get(1)?,
                inputs: r.try_get(2)?,
                params: r.try_get(3)?,
                attempt: u32::try_from(r.try_get::<i64, _>(4)?).unwrap_or(u32::MAX),
                max_attempts: u32::try_from(r.try_get::<i64, _>(5)?).unwrap_or(0),
                cancel_requested: r.try_get::<i64, _>(6)? != 0,
                token: token.to_owned(),
            })
        })
        .transpose()
    }

    /// Extend the lease. `Some(cancel_requested)` while the claim holds; `None` when it was
    /// lost (expired and claimed again, or finished).
    pub async fn renew_job(
        &self,
        id: &str,
        token: &str,
        lease_ms: i64,
    ) -> Result<Option<bool>, sqlx::Error> {
        self.update_running(id, token, "locked_until = $3", |q| {
            q.bind(now_ms() + lease_ms)
        })
        .await
    }

    /// Record progress; same answer as [`Db::renew_job`].
    pub async fn job_progress(
        &self,
        id: &str,
        token: &str,
        fraction: f64,
        message: Option<&str>,
    ) -> Result<Option<bool>, sqlx::Error> {
        let set = "progress = $3, progress_message = $4, updated_at = $5";
        self.update_running(id, token, set, |q| {
            q.bind(fraction.clamp(0.0, 1.0))
                .bind(message.map(str::to_owned))
                .bind(now())
        })
        .await
    }

    /// `UPDATE jobs SET {set}` (its values bound by `values` from `$3` on) while the job is
    /// running under the lease `token`: every write of an attempt goes through here.
    /// `Some(cancel_requested)`, or `None` when the claim was lost (nothing written).
    async fn update_running(
        &self,
        id: &str,
        token: &str,
        set: &str,
        values: impl for<'q> Fn(AnyQuery<'q>) -> AnyQuery<'q>,
    ) -> Result<Option<bool>, sqlx::Error> {
        let sql = format!(
            "UPDATE jobs SET {set} WHERE id = $1 AND locked_by = $2 AND state = 'running' \
             RETURNING cancel_requested"
        );
        let row = retry_busy(|| async {
            let q = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .bind(id.to_owned())
                .bind(token.to_owned());
            values(q).fetch_optional(&self.pool).await
        })
        .await?;
        row.map(|r| Ok(r.try_get::<i64, _>(0)? != 0)).transpose()
    }

    /// End an attempt: `state` is `succeeded`, `failed` or `cancelled`. `false` when the
    /// claim was lost (nothing written).
    pub async fn finish_job(
        &self,
        claim: &Claimed,
        state: JobState,
        result: Option<&str>,
        error: Option<&str>,
    ) -> Result<bool, sqlx::Error> {
        let set = "state = $3, result = $4, error = $5, finished_at = $6, updated_at = $6, \
                   locked_until = NULL, \
                   progress = CASE WHEN $3 = 'succeeded' THEN 1.0 ELSE progress END";
        let at = now();
        let done = self
            .update_running(&claim.id, &claim.token, set, |q| {
                q.bind(state.as_str())
                    .bind(result.map(str::to_owned))
                    .bind(error.map(str::to_owned))
                    .bind(at)
            })
            .await?;
        Ok(done.is_some())
    }

    /// A failed attempt with attempts left: back to `queued`, runnable at `run_after_ms`.
    pub async fn retry_job(
        &self,
        claim: &Claimed,
        error: &str,
        run_after_ms: i64,
    ) -> Result<bool, sqlx::Error> {
        let set = "state = 'queued', error = $3, run_after = $4, locked_until = NULL, \
                   locked_by = NULL, updated_at = $5";
        let done = self
            .update_running(&claim.id, &claim.token, set, |q| {
                q.bind(error.to_owned()).bind(run_after_ms).bind(now())
            })
            .await?;
        Ok(done.is_some())
    }

    /// Cancel: a queued job at once, a running one at its next checkpoint. Returns the job
    /// as it is now (`None`: no such job).
    pub async fn cancel_job(&self, id: &str) -> Result<Option<JobInfo>, sqlx::Error> {
        let at = now();
        retry_busy(|| async {
            sqlx::query(
                "UPDATE jobs SET state = 'cancelled', finished_at = $1, updated_at = $1, \
                 locked_until = NULL, locked_by = NULL WHERE id = $2 AND state = 'queued'",
            )
            .bind(at)
            .bind(id.to_owned())
            .execute(&self.pool)
            .await?;
            sqlx::query(
                "UPDATE jobs SET cancel_requested = 1, updated_at = $1 \
                 WHERE id = $2 AND state = 'running'",
            )
            .bind(at)
            .bind(id.to_owned())
            .execute(&self.pool)
            .await
        })
        .await?;
        self.job(id).await
    }

    pub async fn append_job_log(&self, id: &str, line: &str) -> Result<(), sqlx::Error> {
        retry_busy(|| async {
            sqlx::query("INSERT INTO job_logs (job_id, created_at, line) VALUES ($1, $2, $3)")
                .bind(id.to_owned())
                .bind(now())
                .bind(line.to_owned())
                .execute(&self.pool)
                .await
        })
        .await
        .map(|_| ())
    }

    /// Log lines after `after` (a `seq`), oldest first, at most `limit`.
    pub async fn job_logs(
        &self,
        id: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<JobLogLine>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT id, created_at, line FROM job_logs WHERE job_id = $1 AND id > $2 \
             ORDER BY id LIMIT $3",
        )
        .bind(id.to_owned())
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(JobLogLine {
                    seq: r.try_get(0)?,
                    at: r.try_get(1)?,
                    line: r.try_get(2)?,
                })
            })
            .collect()
    }
}
