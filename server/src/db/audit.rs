//! The audit log: one row per mutation, append-only.

use adapter_core::api::AuditEntry;
use serde_json::Value;
use sqlx::Row as _;

use super::{Db, now, retry_busy};

/// An entry to append.
#[derive(Debug)]
pub struct NewAudit<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub method: &'a str,
    pub target: &'a str,
    pub status: u16,
    pub outcome: &'a str,
    pub details: Option<&'a Value>,
}

/// Which entries to list, newest first.
#[derive(Debug, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    /// Only entries with an id below this one (the cursor).
    pub before: Option<i64>,
    pub limit: i64,
}

impl Db {
    pub async fn append_audit(&self, e: &NewAudit<'_>) -> Result<(), sqlx::Error> {
        let details = e.details.map(Value::to_string);
        let at = now();
        retry_busy(|| {
            sqlx::query(
                "INSERT INTO audit_log (created_at, actor, action, method, target, status, \
                 outcome, details) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(at)
            .bind(e.actor.to_owned())
            .bind(e.action.to_owned())
            .bind(e.method.to_owned())
            .bind(e.target.to_owned())
            .bind(i64::from(e.status))
            .bind(e.outcome.to_owned())
            .bind(details.clone())
            .execute(&self.pool)
        })
        .await
        .map(|_| ())
    }

    pub async fn audit(&self, f: &AuditFilter) -> Result<Vec<AuditEntry>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT id, created_at, actor, action, method, target, status, outcome, details \
             FROM audit_log \
             WHERE ($1 IS NULL OR actor = $1) AND ($2 IS NULL OR action = $2) \
               AND ($3 IS NULL OR id < $3) \
             ORDER BY id DESC LIMIT $4",
        )
        .bind(f.actor.clone())
        .bind(f.action.clone())
        .bind(f.before)
        .bind(f.limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let details: Option<String> = r.try_get(8)?;
                Ok(AuditEntry {
                    id: r.try_get(0)?,
                    created_at: r.try_get(1)?,
                    actor: r.try_get(2)?,
                    action: r.try_get(3)?,
                    method: r.try_get(4)?,
                    target: r.try_get(5)?,
                    status: u16::try_from(r.try_get::<i64, _>(6)?).unwrap_or(0),
                    outcome: r.try_get(7)?,
                    details: details
                        .and_then(|d| serde_json::from_str(&d).ok())
                        .unwrap_or(Value::Null),
                })
            })
            .collect()
    }
}
