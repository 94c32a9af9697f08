//! Helpers for the job tests: fast worker settings, direct enqueue, polling, an execution counter.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use adapter_core::api::JobInfo;
use adapter_registry::app::AppState;
use adapter_registry::db::jobs::new_job_id as new_id;
use adapter_registry::db::jobs::{NewJob, Submitted};
use adapter_registry::jobs::{JobsConfig, Kinds};
use serde_json::json;

pub fn fast() -> JobsConfig {
    JobsConfig {
        lease: Duration::from_secs(5),
        poll: Duration::from_millis(20),
        retry_base: Duration::from_millis(10),
        max_attempts: 3,
        ..JobsConfig::default()
    }
}

/// Insert a job of any kind straight into the queue (the API accepts only real kinds).
pub async fn enqueue(app: &AppState, kind: &str, key: &str) -> JobInfo {
    let (how, job) = app
        .db
        .submit_job(&NewJob {
            id: new_id(),
            kind: kind.into(),
            inputs: "{}".into(),
            params: "{}".into(),
            idempotency_key: key.into(),
            max_attempts: 3,
            submitter: Some("test".into()),
            namespaces: Vec::new(),
        })
        .await
        .unwrap();
    assert_eq!(how, Submitted::Created);
    job
}

/// Poll the job until `done` holds (30 s at most).
pub async fn wait_for(
    app: &AppState,
    id: &str,
    what: &str,
    done: impl Fn(&JobInfo) -> bool,
) -> JobInfo {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let job = app.db.job(id).await.unwrap().expect("job exists");
        if done(&job) {
            return job;
        }
        assert!(
            Instant::now() < deadline,
            "job {id} never became {what}: {job:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn wait_final(app: &AppState, id: &str) -> JobInfo {
    wait_for(app, id, "final", |j| j.state.is_terminal()).await
}

/// Counts executions per job id and notices two runs of one job at the same time.
#[derive(Default, Clone)]
pub struct Counter {
    pub runs: Arc<Mutex<HashMap<String, u32>>>,
    pub running: Arc<Mutex<HashSet<String>>>,
    pub overlaps: Arc<Mutex<u32>>,
}

impl Counter {
    pub fn kinds(&self) -> Kinds {
        let c = self.clone();
        Kinds::default().with("count", move |ctx| {
            let c = c.clone();
            Box::pin(async move {
                if !c.running.lock().unwrap().insert(ctx.id.clone()) {
                    *c.overlaps.lock().unwrap() += 1;
                }
                *c.runs.lock().unwrap().entry(ctx.id.clone()).or_default() += 1;
                ctx.progress(0.5, "half way").await?;
                tokio::task::yield_now().await;
                c.running.lock().unwrap().remove(&ctx.id);
                Ok(json!({"ok": true}))
            })
        })
    }
}
