//! The job queue in process, on both stacks: many jobs × several workers (each run exactly
//! once), a job that always panics, cancel (queued and running), restart with queued jobs,
//! lease expiry and fencing. The API and the validate job: jobs_api.rs.

mod common;

use std::time::Duration;

use adapter_core::api::JobState;
use adapter_registry::app::AppState;
use adapter_registry::db::jobs::new_job_id as new_id;
use adapter_registry::db::jobs::{NewJob, Submitted};
use adapter_registry::jobs::{self, Kinds};
use common::jobs::{Counter, enqueue, fast, wait_final, wait_for};
use common::{TestServer, stacks};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_jobs_on_many_workers_each_run_exactly_once() {
    for stack in stacks() {
        let backend = adapter_testkit::Backend::new(&stack);
        let s = TestServer::start(&backend).await;
        // A second app over the same storage: another "process" competing for the queue.
        let other = AppState::new(common::config(&backend)).await.unwrap();
        let mut ids = Vec::new();
        for i in 0..60 {
            ids.push(enqueue(&s.state, "count", &format!("k{i}")).await.id);
        }
        let counter = Counter::default();
        let _a = jobs::spawn_workers(&s.state, counter.kinds(), &fast(), 3);
        let _b = jobs::spawn_workers(&other, counter.kinds(), &fast(), 3);
        for id in &ids {
            let job = wait_final(&s.state, id).await;
            assert_eq!(job.state, JobState::Succeeded, "{stack}: {job:?}");
            assert_eq!(job.attempts, 1, "{stack}: {job:?}");
            assert_eq!(job.progress, Some(1.0));
        }
        let runs = counter.runs.lock().unwrap().clone();
        assert_eq!(runs.len(), ids.len(), "{stack}");
        assert!(runs.values().all(|n| *n == 1), "{stack}: {runs:?}");
        assert_eq!(*counter.overlaps.lock().unwrap(), 0, "{stack}");
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_that_always_panics_fails_after_the_cap_while_others_proceed() {
    for stack in stacks() {
        let backend = adapter_testkit::Backend::new(&stack);
        let s = TestServer::start(&backend).await;
        let counter = Counter::default();
        let kinds = counter.kinds().with("boom", |ctx| {
            Box::pin(async move { panic!("boom on attempt {}", ctx.attempt) })
        });
        let boom = enqueue(&s.state, "boom", "boom").await;
        let mut ids = Vec::new();
        for i in 0..10 {
            ids.push(enqueue(&s.state, "count", &format!("c{i}")).await.id);
        }
        let _w = jobs::spawn_workers(&s.state, kinds, &fast(), 2);
        let job = wait_final(&s.state, &boom.id).await;
        assert_eq!(job.state, JobState::Failed, "{stack}: {job:?}");
        assert_eq!(job.attempts, 3, "{stack}: {job:?}");
        let error = job.error.unwrap_or_default();
        assert!(error.contains("panicked: boom on attempt 3"), "{error}");
        for id in &ids {
            assert_eq!(wait_final(&s.state, id).await.state, JobState::Succeeded);
        }
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancel_stops_queued_jobs_at_once_and_running_ones_at_a_checkpoint() {
    for stack in stacks() {
        let backend = adapter_testkit::Backend::new(&stack);
        let s = TestServer::start(&backend).await;
        let cancel = |id: String| {
            let s = &s;
            async move {
                common::Reply::of(
                    s.http
                        .post(s.u(&format!("/v1/jobs/{id}/cancel")))
                        .send()
                        .await
                        .unwrap(),
                )
                .await
            }
        };
        // Queued (no worker yet): cancelled at once, and never run.
        let queued = enqueue(&s.state, "spin", "queued").await;
        let r = cancel(queued.id.clone()).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["state"], "cancelled");
        // Running: spins on checkpoints until cancelled.
        let kinds = Kinds::default().with("spin", |ctx| {
            Box::pin(async move {
                loop {
                    ctx.progress(0.1, "spinning").await?;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
        });
        let running = enqueue(&s.state, "spin", "running").await;
        let _w = jobs::spawn_workers(&s.state, kinds, &fast(), 1);
        wait_for(&s.state, &running.id, "running", |j| {
            j.state == JobState::Running && j.progress.is_some()
        })
        .await;
        let r = cancel(running.id.clone()).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["cancel_requested"], true, "{}", r.json());
        let job = wait_final(&s.state, &running.id).await;
        assert_eq!(job.state, JobState::Cancelled, "{stack}: {job:?}");
        let q = s.state.db.job(&queued.id).await.unwrap().unwrap();
        assert_eq!((q.state, q.attempts), (JobState::Cancelled, 0));
        // A finished job cannot be cancelled; cancelling a cancelled one is a no-op.
        let done = enqueue(&s.state, "spin", "done").await;
        sqlx::query("UPDATE jobs SET state = 'succeeded' WHERE id = $1")
            .bind(done.id.clone())
            .execute(&s.state.db.pool)
            .await
            .unwrap();
        cancel(done.id.clone()).await.error(409, "job_finished");
        assert_eq!(cancel(queued.id.clone()).await.status, 200);
        cancel(format!("job_{}", "0".repeat(32)))
            .await
            .error(404, "job_not_found");
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn queued_jobs_survive_a_restart() {
    for stack in stacks() {
        let backend = adapter_testkit::Backend::new(&stack);
        let s = TestServer::start(&backend).await;
        let mut ids = Vec::new();
        for i in 0..5 {
            ids.push(enqueue(&s.state, "count", &format!("r{i}")).await.id);
        }
        s.stop().await;
        let s = TestServer::start(&backend).await;
        let counter = Counter::default();
        let _w = jobs::spawn_workers(&s.state, counter.kinds(), &fast(), 2);
        for id in &ids {
            assert_eq!(wait_final(&s.state, id).await.state, JobState::Succeeded);
        }
        assert_eq!(counter.runs.lock().unwrap().len(), 5);
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_expire_fence_stale_workers_and_cap_attempts() {
    for stack in stacks() {
        let backend = adapter_testkit::Backend::new(&stack);
        let s = TestServer::start(&backend).await;
        let db = &s.state.db;
        let kinds = vec!["count".to_owned()];
        let job = enqueue(&s.state, "count", "lease").await;
        // A claim whose lease has already run out (its worker "died") …
        let stale = db.claim_job(&kinds, "worker-a", -1).await.unwrap().unwrap();
        assert_eq!((stale.id.as_str(), stale.attempt), (job.id.as_str(), 1));
        // … is claimed again; a live lease is not.
        let live = db
            .claim_job(&kinds, "worker-b", 60_000)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((live.id.as_str(), live.attempt), (job.id.as_str(), 2));
        assert!(
            db.claim_job(&kinds, "worker-c", 60_000)
                .await
                .unwrap()
                .is_none()
        );
        // The stale worker can no longer renew, report or finish it.
        assert_eq!(db.renew_job(&job.id, "worker-a", 1000).await.unwrap(), None);
        assert_eq!(
            db.job_progress(&job.id, "worker-a", 0.5, None)
                .await
                .unwrap(),
            None
        );
        assert!(
            !db.finish_job(&stale, JobState::Succeeded, Some("{}"), None)
                .await
                .unwrap()
        );
        assert_eq!(
            db.renew_job(&job.id, "worker-b", 1000).await.unwrap(),
            Some(false)
        );
        assert!(
            db.finish_job(&live, JobState::Succeeded, Some("{}"), None)
                .await
                .unwrap()
        );
        assert_eq!(
            db.job(&job.id).await.unwrap().unwrap().state,
            JobState::Succeeded
        );

        // A job whose last allowed attempt's worker died ends failed, not run again.
        let capped = enqueue(&s.state, "count", "capped").await;
        for token in ["w1", "w2", "w3"] {
            db.claim_job(&kinds, token, -1).await.unwrap().unwrap();
        }
        let counter = Counter::default();
        let _w = jobs::spawn_workers(&s.state, counter.kinds(), &fast(), 1);
        let j = wait_final(&s.state, &capped.id).await;
        assert_eq!(j.state, JobState::Failed, "{stack}: {j:?}");
        assert!(j.error.unwrap_or_default().contains("lease expired"));
        assert!(
            counter.runs.lock().unwrap().is_empty(),
            "never run past the cap"
        );

        // Submitting a failed job's key again queues it again, attempts reset.
        let (how, again) = db
            .submit_job(&NewJob {
                id: new_id(),
                kind: "count".into(),
                inputs: "{}".into(),
                params: "{}".into(),
                idempotency_key: "capped".into(),
                max_attempts: 3,
                submitter: None,
                namespaces: Vec::new(),
            })
            .await
            .unwrap();
        assert_eq!(
            (how, again.id.as_str()),
            (Submitted::Requeued, capped.id.as_str())
        );
        let j = wait_final(&s.state, &capped.id).await;
        assert_eq!(
            (j.state, j.attempts),
            (JobState::Succeeded, 1),
            "{stack}: {j:?}"
        );
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_deletes_staging_objects_of_ended_jobs_only() {
    use adapter_registry::jobs::blobio::{staging_prefix, sweep_staging};
    use object_store::ObjectStoreExt as _;
    use object_store::path::Path;
    for stack in stacks() {
        let backend = adapter_testkit::Backend::new(&stack);
        let s = TestServer::start(&backend).await;
        let queued = enqueue(&s.state, "count", "live").await;
        let ended = enqueue(&s.state, "count", "ended").await;
        s.state.db.cancel_job(&ended.id).await.unwrap();
        let store = s.state.blobs.object_store().clone();
        for job in [queued.id.as_str(), ended.id.as_str(), "job_gone"] {
            let key = Path::from(format!("{}/part", staging_prefix(job)));
            store.put(&key, b"x".to_vec().into()).await.unwrap();
        }
        assert_eq!(sweep_staging(&s.state).await.unwrap(), 2, "{stack}");
        let left: Vec<String> = {
            use futures::TryStreamExt as _;
            store
                .list(Some(&Path::from("jobs")))
                .map_ok(|m| m.location.to_string())
                .try_collect()
                .await
                .unwrap()
        };
        assert_eq!(left, vec![format!("jobs/{}/part", queued.id)], "{stack}");
        s.stop().await;
    }
}
