//! The worker loop: claim, run under a renewed lease with panics caught, finish.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use adapter_core::api::JobState;
use futures::FutureExt as _;
use tokio::task::JoinHandle;

use super::{Ctx, JobError, JobsConfig, Kinds};
use crate::app::AppState;
use crate::db::Backend;
use crate::db::jobs::{CHANNEL, Claimed, WAKE, now_ms};

/// Running workers; [`Workers::stop`] (or dropping it) aborts them. An aborted job's lease
/// runs out and another worker takes it.
#[derive(Debug, Default)]
pub struct Workers {
    tasks: Vec<JoinHandle<()>>,
}

impl Workers {
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    pub fn stop(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Start `n` workers running `kinds` with `config`.
pub fn spawn_workers(app: &AppState, kinds: Kinds, config: &JobsConfig, n: usize) -> Workers {
    let kinds = Arc::new(kinds);
    let mut tasks: Vec<JoinHandle<()>> = (0..n)
        .map(|i| {
            let (app, kinds, config) = (app.clone(), kinds.clone(), config.clone());
            tokio::spawn(async move { work(app, kinds, config, i).await })
        })
        .collect();
    if n > 0 && app.db.backend == Backend::Postgres {
        tasks.push(tokio::spawn(listen(app.config.database_url.clone())));
    }
    Workers { tasks }
}

/// Relay PostgreSQL notifications to this process's workers (best effort: polling is the
/// fallback).
async fn listen(url: String) {
    loop {
        match sqlx::postgres::PgListener::connect(&url).await {
            Ok(mut l) => {
                if let Err(e) = l.listen(CHANNEL).await {
                    tracing::warn!(error = %e, "cannot LISTEN for jobs");
                } else {
                    while l.recv().await.is_ok() {
                        WAKE.notify_waiters();
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot connect to LISTEN for jobs"),
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

async fn work(app: AppState, kinds: Arc<Kinds>, config: JobsConfig, index: usize) {
    let names = kinds.names();
    tracing::info!(worker = index, kinds = ?names, "worker started");
    loop {
        // Register for a wake-up before looking, so a submit in between is not missed.
        let woken = WAKE.notified();
        match run_next(&app, &kinds, &names, &config).await {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => tracing::warn!(worker = index, error = %e, "worker: database error"),
        }
        tokio::select! {
            () = woken => {}
            () = tokio::time::sleep(config.poll) => {}
        }
    }
}

/// Claim and run one job; `false` when there was none. Tests drain a queue with it.
pub async fn run_next(
    app: &AppState,
    kinds: &Kinds,
    names: &[String],
    config: &JobsConfig,
) -> Result<bool, sqlx::Error> {
    let token = uuid::Uuid::new_v4().simple().to_string();
    let lease_ms = i64::try_from(config.lease.as_millis()).unwrap_or(i64::MAX);
    let Some(claim) = app.db.claim_job(names, &token, lease_ms).await? else {
        return Ok(false);
    };
    let claim = Arc::new(claim);
    run_claimed(app, kinds, config, claim).await?;
    Ok(true)
}

async fn run_claimed(
    app: &AppState,
    kinds: &Kinds,
    config: &JobsConfig,
    claim: Arc<Claimed>,
) -> Result<(), sqlx::Error> {
    let db = &app.db;
    if claim.cancel_requested {
        db.finish_job(&claim, JobState::Cancelled, None, None)
            .await?;
        return Ok(());
    }
    if claim.attempt > claim.max_attempts {
        // Its last attempt's worker died (the lease ran out): nothing left to try.
        let error = format!(
            "the worker of attempt {} stopped without finishing (its lease expired)",
            claim.max_attempts
        );
        db.finish_job(&claim, JobState::Failed, None, Some(&error))
            .await?;
        return Ok(());
    }
    let Some(handler) = kinds.get(&claim.kind).cloned() else {
        let error = format!("no worker runs jobs of kind `{}`", claim.kind);
        db.finish_job(&claim, JobState::Failed, None, Some(&error))
            .await?;
        return Ok(());
    };
    tracing::info!(job = %claim.id, kind = %claim.kind, attempt = claim.attempt, "job started");
    let started = std::time::Instant::now();
    let cancelled = Arc::new(AtomicBool::new(false));
    let lost = Arc::new(AtomicBool::new(false));
    // Aborted however this future ends (also when the worker itself is aborted: a renewal
    // that outlived it would hold the lease forever).
    let renew = AbortOnDrop(tokio::spawn(renew_lease(
        app.clone(),
        claim.clone(),
        config.lease,
        cancelled.clone(),
        lost.clone(),
    )));
    let outcome = match Ctx::new(app.clone(), claim.clone(), cancelled) {
        Ok(ctx) => std::panic::AssertUnwindSafe(handler(ctx))
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a non-string panic".into());
                Err(JobError::Failed(anyhow::anyhow!(
                    "the job panicked: {what}"
                )))
            }),
        Err(e) => Err(JobError::Failed(e.context("the job row does not decode"))),
    };
    drop(renew);
    crate::crash_point!("job.before_outcome");
    let label = match &outcome {
        Ok(_) => "succeeded",
        Err(JobError::Cancelled) => "cancelled",
        Err(JobError::Failed(_)) if claim.attempt < claim.max_attempts => "retried",
        Err(_) => "failed",
    };
    app.metrics
        .observe_job(&claim.kind, label, started.elapsed().as_secs_f64());
    let written = match outcome {
        Ok(result) => {
            let json = result.to_string();
            db.finish_job(&claim, JobState::Succeeded, Some(&json), None)
                .await?
        }
        Err(JobError::Cancelled) => {
            db.finish_job(&claim, JobState::Cancelled, None, None)
                .await?
        }
        Err(JobError::Fatal(e)) => {
            let error = format!("{e:#}");
            tracing::warn!(job = %claim.id, attempt = claim.attempt, %error, "job failed (not retried)");
            db.finish_job(&claim, JobState::Failed, None, Some(&error))
                .await?
        }
        Err(JobError::Failed(e)) => {
            let error = format!("{e:#}");
            tracing::warn!(job = %claim.id, attempt = claim.attempt, %error, "job attempt failed");
            if claim.attempt >= claim.max_attempts {
                db.finish_job(&claim, JobState::Failed, None, Some(&error))
                    .await?
            } else {
                let delay = backoff(config.retry_base, claim.attempt);
                let at = now_ms() + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2);
                db.retry_job(&claim, &error, at).await?
            }
        }
    };
    if !written || lost.load(Ordering::SeqCst) {
        tracing::warn!(job = %claim.id, "the job's lease was lost: its outcome was discarded");
    }
    Ok(())
}

/// A task aborted when this is dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// `base · 2^(attempt-1)`, at most an hour.
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    let factor = 1u32 << attempt.saturating_sub(1).min(20);
    base.saturating_mul(factor).min(Duration::from_secs(3600))
}

async fn renew_lease(
    app: AppState,
    claim: Arc<Claimed>,
    lease: Duration,
    cancelled: Arc<AtomicBool>,
    lost: Arc<AtomicBool>,
) {
    let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
    loop {
        tokio::time::sleep(lease / 3).await;
        match app.db.renew_job(&claim.id, &claim.token, lease_ms).await {
            Ok(Some(cancel)) => {
                if cancel {
                    cancelled.store(true, Ordering::SeqCst);
                }
            }
            Ok(None) => {
                lost.store(true, Ordering::SeqCst);
                // Stop the job at its next checkpoint: someone else owns it now.
                cancelled.store(true, Ordering::SeqCst);
                return;
            }
            Err(e) => tracing::warn!(job = %claim.id, error = %e, "cannot renew the lease"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let b = Duration::from_millis(100);
        assert_eq!(backoff(b, 1), b);
        assert_eq!(backoff(b, 3), b * 4);
        assert_eq!(backoff(b, 60), Duration::from_secs(3600));
    }
}
