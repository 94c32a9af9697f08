//! A new job: its id, its idempotency key, the namespaces it touches (who may see it), its
//! insert in the caller's transaction, and waking the workers.

use std::collections::BTreeMap;

use adapter_core::api::JobInput;
use adapter_core::digest::Digest;
use serde_json::{Value, json};
use sqlx::{AnyConnection, Row as _};
use tokio::sync::Notify;

use super::now_ms;
use crate::db::{Backend, Db, now, retry_busy};

/// Wakes the workers of this process when a job is queued here.
pub static WAKE: Notify = Notify::const_new();
/// The PostgreSQL channel submits notify and workers listen on.
pub const CHANNEL: &str = "adapter_registry_jobs";

/// A job to insert.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub id: String,
    pub kind: String,
    /// JSON.
    pub inputs: String,
    /// JSON object.
    pub params: String,
    pub idempotency_key: String,
    pub max_attempts: u32,
    pub submitter: Option<String>,
    /// The namespaces the job touches (inputs and output): who may see it.
    pub namespaces: Vec<String>,
}

impl NewJob {
    /// A job of `kind` over inputs resolved to manifest digests, touching their namespaces
    /// and `output` (the namespace of the version it will make). `key`: the caller's
    /// idempotency key; by default kind + input digests + parameters, hashed, so the same
    /// work asked twice is one job.
    pub fn new(
        kind: &str,
        inputs: &BTreeMap<String, JobInput>,
        output: Option<&str>,
        params: &Value,
        key: Option<&str>,
        max_attempts: u32,
        submitter: String,
    ) -> Result<Self, serde_json::Error> {
        let mut namespaces: Vec<String> = inputs
            .values()
            .filter_map(|i| namespace_of(&i.reference))
            .chain(output.map(str::to_owned))
            .collect();
        namespaces.sort();
        namespaces.dedup();
        Ok(Self {
            namespaces,
            id: new_job_id(),
            kind: kind.to_owned(),
            inputs: serde_json::to_string(inputs)?,
            params: params.to_string(),
            idempotency_key: key
                .map_or_else(|| default_key(kind, inputs, params), |k| format!("key:{k}")),
            max_attempts: max_attempts.max(1),
            submitter: Some(submitter),
        })
    }
}

/// The namespace of a reference `ns/name[@selector]`.
fn namespace_of(reference: &str) -> Option<String> {
    reference
        .parse::<adapter_core::reference::Reference>()
        .ok()
        .map(|r| r.namespace.to_string())
}

/// The namespaces a stored job touches, from its inputs and `params.output` (jobs stored
/// before they were recorded).
fn touched(inputs: &str, params: &str) -> Vec<String> {
    let inputs: BTreeMap<String, JobInput> = serde_json::from_str(inputs).unwrap_or_default();
    let params: Value = serde_json::from_str(params).unwrap_or_default();
    let mut out: Vec<String> = inputs
        .values()
        .filter_map(|i| namespace_of(&i.reference))
        .chain(
            params
                .get("output")
                .and_then(Value::as_str)
                .and_then(namespace_of),
        )
        .collect();
    out.sort();
    out.dedup();
    out
}

/// `job_` + a time-ordered UUID (v7) in hex: ids sort by creation.
pub fn new_job_id() -> String {
    format!("job_{}", uuid::Uuid::now_v7().simple())
}

/// Whether `s` has the shape of a job id.
pub fn is_job_id(s: &str) -> bool {
    s.strip_prefix("job_").is_some_and(|h| {
        h.len() == 32
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// kind + resolved input digests + parameters, hashed.
fn default_key(kind: &str, inputs: &BTreeMap<String, JobInput>, params: &Value) -> String {
    let digests: BTreeMap<&str, String> = inputs
        .iter()
        .map(|(k, v)| (k.as_str(), v.manifest_digest.to_string()))
        .collect();
    let v = json!({ "kind": kind, "inputs": digests, "params": params });
    format!(
        "auto:{}",
        Digest::of_bytes(&adapter_core::json::canonical(&v))
    )
}

/// Queue `job` on `conn` (the transaction of the change that asked for it) unless a job
/// with its idempotency key exists (`false`). Call [`Db::wake_workers`] after the commit.
pub async fn enqueue_in(conn: &mut AnyConnection, job: &NewJob) -> Result<bool, sqlx::Error> {
    let at = now();
    let inserted = sqlx::query(
        "INSERT INTO jobs (id, kind, inputs, params, idempotency_key, state, attempts, \
         max_attempts, run_after, submitter, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, 'queued', 0, $6, $7, $8, $9, $9) \
         ON CONFLICT (idempotency_key) DO NOTHING",
    )
    .bind(job.id.clone())
    .bind(job.kind.clone())
    .bind(job.inputs.clone())
    .bind(job.params.clone())
    .bind(job.idempotency_key.clone())
    .bind(i64::from(job.max_attempts))
    .bind(now_ms())
    .bind(job.submitter.clone())
    .bind(at)
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() != 1 {
        return Ok(false);
    }
    insert_namespaces(conn, &job.id, &job.namespaces).await?;
    Ok(true)
}

async fn insert_namespaces(
    conn: &mut AnyConnection,
    id: &str,
    namespaces: &[String],
) -> Result<(), sqlx::Error> {
    for ns in namespaces {
        sqlx::query(
            "INSERT INTO job_namespaces (job_id, namespace) VALUES ($1, $2) \
             ON CONFLICT (job_id, namespace) DO NOTHING",
        )
        .bind(id.to_owned())
        .bind(ns.clone())
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

impl Db {
    /// Tell workers (this process's at once; other processes' through PostgreSQL NOTIFY)
    /// that there is work. Best effort: idle workers also poll.
    pub async fn wake_workers(&self) {
        WAKE.notify_waiters();
        if self.backend == Backend::Postgres {
            let notify = sqlx::query(sqlx::AssertSqlSafe(format!("NOTIFY {CHANNEL}")));
            if let Err(e) = notify.execute(&self.pool).await {
                tracing::warn!(error = %e, "cannot notify workers");
            }
        }
    }

    /// The namespaces a job touches.
    pub async fn job_namespaces(&self, id: &str) -> Result<Vec<String>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT namespace FROM job_namespaces WHERE job_id = $1 ORDER BY namespace",
        )
        .bind(id.to_owned())
        .fetch_all(&self.pool)
        .await
    }

    /// Record the touched namespaces of jobs stored before they were (idempotent): read
    /// from their inputs and `params.output`. Returns the jobs updated.
    pub async fn backfill_job_namespaces(&self) -> Result<u64, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT id, inputs, params FROM jobs j \
             WHERE NOT EXISTS (SELECT 1 FROM job_namespaces n WHERE n.job_id = j.id)",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut updated = 0;
        for row in &rows {
            let id: String = row.try_get(0)?;
            let namespaces = touched(&row.try_get::<String, _>(1)?, &row.try_get::<String, _>(2)?);
            if namespaces.is_empty() {
                continue;
            }
            retry_busy(|| async {
                let mut conn = self.pool.acquire().await?;
                insert_namespaces(&mut conn, &id, &namespaces).await
            })
            .await?;
            updated += 1;
        }
        Ok(updated)
    }
}
