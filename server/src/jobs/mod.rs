//! Jobs: durable rows in the metadata database (`db/jobs/`), run by workers in the server
//! process (`serve --workers N`) or alone (`adapter-registry worker`), any number of them
//! against one database and blob store.
//!
//! * A job kind is a name and a handler ([`Kinds`]); submitting resolves the inputs to
//!   manifest digests and inserts a row whose idempotency key (kind + input digests +
//!   parameters, unless the caller names one) makes a second submit return the first job.
//! * A worker ([`worker`]) claims one job atomically with a lease, renews the lease from a
//!   separate task while the job runs (no transaction stays open), catches panics, retries
//!   failed attempts with exponential backoff, and ends the job `failed` with its last error
//!   when the attempts run out. A job whose worker died is claimed again once its lease ran
//!   out. Cancel stops a running job at its next checkpoint ([`Ctx::checkpoint`]).
//! * Kinds: `validate` ([`validate`]), `merge` ([`merge`]) and `quantise` ([`quantise`])
//!   (the last two share the output plumbing in [`derived`] and [`blobio`]); in a build with
//!   the `test-hooks` feature and `--enable-test-jobs`, also the test kinds of `testing`
//!   (not compiled into other builds).

pub mod blobio;
pub mod derived;
mod inputs;
pub mod merge;
pub mod quantise;
pub mod submit;
#[cfg(feature = "test-hooks")]
pub mod testing;
pub mod validate;
pub mod worker;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use adapter_core::api::JobInput;
use futures::future::BoxFuture;
use serde_json::Value;

use crate::app::AppState;
use crate::db::jobs::Claimed;

pub use crate::config::JobsConfig;
pub use submit::submit;
pub use worker::{Workers, spawn_workers};

/// Why a job stopped without a result.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Cancel was asked; the job stopped at a checkpoint.
    #[error("cancelled")]
    Cancelled,
    /// This attempt failed (retried while attempts remain).
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
    /// The job cannot succeed however often it is tried (a refused merge, a taken output
    /// version): it fails now, without further attempts.
    #[error("{0:#}")]
    Fatal(anyhow::Error),
}

impl JobError {
    pub fn fatal(message: impl std::fmt::Display) -> Self {
        Self::Fatal(anyhow::anyhow!("{message}"))
    }
}

/// What a handler returns: the job's result (stored as JSON).
pub type JobResult = Result<Value, JobError>;

/// A job kind's code.
pub type Handler = Arc<dyn Fn(Ctx) -> BoxFuture<'static, JobResult> + Send + Sync>;

/// The kinds a worker runs, by name.
#[derive(Clone, Default)]
pub struct Kinds {
    handlers: BTreeMap<String, Handler>,
}

impl std::fmt::Debug for Kinds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.handlers.keys()).finish()
    }
}

impl Kinds {
    /// The built-in kinds (and, in a `test-hooks` build, the test kinds when
    /// `config.test_jobs`).
    pub fn standard(#[allow(unused_variables)] config: &JobsConfig) -> Self {
        let k = Self::default()
            .with(validate::KIND, |ctx| Box::pin(validate::run(ctx)))
            .with(merge::KIND, |ctx| Box::pin(merge::run(ctx)))
            .with(quantise::KIND, |ctx| Box::pin(quantise::run(ctx)));
        #[cfg(feature = "test-hooks")]
        let k = if config.test_jobs {
            testing::register(k)
        } else {
            k
        };
        k
    }

    /// Add (or replace) a kind.
    #[must_use]
    pub fn with<F>(mut self, name: &str, f: F) -> Self
    where
        F: Fn(Ctx) -> BoxFuture<'static, JobResult> + Send + Sync + 'static,
    {
        self.handlers.insert(name.to_owned(), Arc::new(f));
        self
    }

    pub fn names(&self) -> Vec<String> {
        self.handlers.keys().cloned().collect()
    }

    pub fn get(&self, name: &str) -> Option<&Handler> {
        self.handlers.get(name)
    }
}

/// Whether the API accepts jobs of `kind` (workers may run elsewhere).
pub fn is_submittable(#[allow(unused_variables)] config: &JobsConfig, kind: &str) -> bool {
    #[cfg(feature = "test-hooks")]
    if config.test_jobs && testing::KINDS.contains(&kind) {
        return true;
    }
    [validate::KIND, merge::KIND, quantise::KIND].contains(&kind)
}

/// What a running job sees: the app, its row, and its lease.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub app: AppState,
    pub id: String,
    pub kind: String,
    pub inputs: BTreeMap<String, JobInput>,
    pub params: Value,
    pub attempt: u32,
    claim: Arc<Claimed>,
    cancelled: Arc<AtomicBool>,
}

impl Ctx {
    pub(crate) fn new(
        app: AppState,
        claim: Arc<Claimed>,
        cancelled: Arc<AtomicBool>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            app,
            id: claim.id.clone(),
            kind: claim.kind.clone(),
            inputs: serde_json::from_str(&claim.inputs)?,
            params: serde_json::from_str(&claim.params)?,
            attempt: claim.attempt,
            claim,
            cancelled,
        })
    }

    /// The flag a cancel (or a lost lease) sets: blocking kernel code polls it.
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        self.cancelled.clone()
    }

    /// `Err(Cancelled)` once a cancel was asked (seen by lease renewal or progress).
    pub fn checkpoint(&self) -> Result<(), JobError> {
        if self.cancelled.load(Ordering::SeqCst) {
            Err(JobError::Cancelled)
        } else {
            Ok(())
        }
    }

    /// Report progress (0.0..=1.0) and check for a cancel.
    pub async fn progress(&self, fraction: f64, message: &str) -> Result<(), JobError> {
        match self
            .app
            .db
            .job_progress(&self.id, &self.claim.token, fraction, Some(message))
            .await
        {
            Ok(Some(true)) => self.cancelled.store(true, Ordering::SeqCst),
            Ok(_) => {}
            Err(e) => tracing::warn!(job = %self.id, error = %e, "cannot record progress"),
        }
        self.checkpoint()
    }

    /// Append a log line (also traced).
    pub async fn log(&self, line: impl Into<String>) {
        let line = line.into();
        tracing::info!(job = %self.id, "{line}");
        if let Err(e) = self.app.db.append_job_log(&self.id, &line).await {
            tracing::warn!(job = %self.id, error = %e, "cannot append a job log line");
        }
    }

    /// An input resolved at submit time.
    pub fn input(&self, name: &str) -> anyhow::Result<&JobInput> {
        self.inputs
            .get(name)
            .ok_or_else(|| anyhow::anyhow!("the job has no `{name}` input"))
    }
}
