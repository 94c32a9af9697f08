//! Jobs in process, on both stacks: many jobs × several workers (each run exactly once), a
//! job that always panics, cancel (queued and running), idempotent submit, restart with
//! queued jobs, the validate job end to end (auto-queued on publish, stored on the version,
//! read by the `validated_against` gate), events, hostile requests.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use adapter_core::api::{JobInfo, JobState};
use adapter_registry::app::AppState;
use adapter_registry::db::jobs::{NewJob, Submitted};
use adapter_registry::jobs::{self, JobsConfig, Kinds, submit::new_id};
use common::{TestServer, stacks, tiny_adapter, tiny_model};
use serde_json::{Value, json};

fn fast() -> JobsConfig {
    JobsConfig {
        lease: Duration::from_secs(5),
        poll: Duration::from_millis(20),
        retry_base: Duration::from_millis(10),
        max_attempts: 3,
        test_jobs: false,
    }
}

/// Insert a job of any kind straight into the queue (the API accepts only real kinds).
async fn enqueue(app: &AppState, kind: &str, key: &str) -> JobInfo {
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
        })
        .await
        .unwrap();
    assert_eq!(how, Submitted::Created);
    job
}

/// Poll the job until `done` holds (30 s at most).
async fn wait_for(
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

async fn wait_final(app: &AppState, id: &str) -> JobInfo {
    wait_for(app, id, "final", |j| j.state.is_terminal()).await
}

/// Counts executions per job id and notices two runs of one job at the same time.
#[derive(Default, Clone)]
struct Counter {
    runs: Arc<Mutex<HashMap<String, u32>>>,
    running: Arc<Mutex<HashSet<String>>>,
    overlaps: Arc<Mutex<u32>>,
}

impl Counter {
    fn kinds(&self) -> Kinds {
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

async fn post_job(s: &TestServer, body: &Value) -> common::Reply {
    common::Reply::of(
        s.http
            .post(s.u("/v1/jobs"))
            .body(body.to_string())
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn validate_end_to_end_with_idempotent_submit_events_and_gate() {
    for stack in stacks() {
        let backend = adapter_testkit::Backend::new(&stack);
        let s = TestServer::start(&backend).await;
        let model = tiny_model(&s).await;
        assert_eq!(
            s.publish("models", "acme/llama", "1.0.0", &model)
                .await
                .status,
            201
        );
        // Publishing an adapter whose base is registered queues its validation.
        let a = tiny_adapter(&s, json!({"base": {"reference": "acme/llama@^1"}})).await;
        let r = s.publish("adapters", "acme/bot", "1.0.0", &a).await;
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        let listed = s.get("/v1/jobs?kind=validate").await.json();
        let jobs = listed["jobs"].as_array().unwrap().clone();
        assert_eq!(jobs.len(), 1, "{stack}: {listed}");
        assert_eq!(jobs[0]["state"], "queued");
        assert_eq!(jobs[0]["inputs"]["base"]["reference"], "acme/llama@1.0.0");
        let auto_id = jobs[0]["id"].as_str().unwrap().to_owned();

        // The same job by hand: same key, so the same job (200), not new work.
        let body = json!({"kind": "validate", "inputs": {"adapter": "acme/bot@1.0.0", "base": "acme/llama@1.0.0"}});
        let r = post_job(&s, &body).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["id"], auto_id.as_str());
        assert_eq!(
            r.header("location"),
            Some(format!("/v1/jobs/{auto_id}").as_str())
        );
        // Another key: a new job (202).
        let mut keyed = body.clone();
        keyed["idempotency_key"] = json!("by-hand");
        let r = post_job(&s, &keyed).await;
        assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
        let hand_id = r.json()["id"].as_str().unwrap().to_owned();
        assert_ne!(hand_id, auto_id);
        assert_eq!(r.json()["submitter"], s.admin_actor.as_str());

        let _w = jobs::spawn_workers(&s.state, Kinds::standard(&fast()), &fast(), 2);
        for id in [&auto_id, &hand_id] {
            let job = wait_final(&s.state, id).await;
            assert_eq!(job.state, JobState::Succeeded, "{stack}: {job:?}");
            let report = job.result.unwrap();
            assert_eq!(report["verdict"], "compatible", "{report}");
        }
        // Submitting again returns the finished job and its result.
        let r = post_job(&s, &body).await;
        assert_eq!(
            (r.status, r.json()["state"].clone()),
            (200, json!("succeeded"))
        );

        // Logs and events of a finished job.
        let logs = s.get(&format!("/v1/jobs/{auto_id}/logs")).await.json();
        let lines: Vec<&str> = logs["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["line"].as_str().unwrap())
            .collect();
        assert!(
            lines.iter().any(|l| l.contains("verdict: compatible")),
            "{logs}"
        );
        let events = s
            .http
            .get(s.u(&format!("/v1/jobs/{auto_id}/events")))
            .send()
            .await
            .unwrap();
        assert_eq!(
            events.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        let text = events.text().await.unwrap();
        assert!(text.starts_with("event: job\ndata: "), "{text}");
        assert!(text.contains("\"state\":\"succeeded\""), "{text}");

        // Stored on both versions.
        let v = s
            .get("/v1/adapters/acme/bot/versions/1.0.0/validations")
            .await
            .json();
        assert_eq!(v["validations"].as_array().unwrap().len(), 1, "{v}");
        assert_eq!(v["validations"][0]["base"], "acme/llama@1.0.0");
        assert_eq!(v["validations"][0]["verdict"], "compatible");
        // The catalogue finds it by the base it was validated against, and only by that.
        let found = s
            .get("/v1/adapters?compatible_with=acme/llama")
            .await
            .json();
        assert_eq!(found["repositories"][0]["name"], "bot", "{stack}: {found}");
        let pinned = s
            .get("/v1/adapters?compatible_with=acme/llama@1.0.0")
            .await
            .json();
        assert_eq!(
            pinned["repositories"].as_array().unwrap().len(),
            1,
            "{pinned}"
        );
        for other in ["acme/llama@2.0.0", "acme/other"] {
            let none = s
                .get(&format!("/v1/adapters?compatible_with={other}"))
                .await
                .json();
            assert_eq!(none["repositories"], json!([]), "{stack} {other}: {none}");
        }
        s.get("/v1/adapters?compatible_with=acme")
            .await
            .error(400, "invalid_filter");
        let m = s
            .get("/v1/models/acme/llama/versions/1.0.0/validations")
            .await
            .json();
        assert_eq!(m["validations"][0]["adapter"], "acme/bot@1.0.0", "{m}");

        // The gate passes for the validated base, by exact version or by range.
        for (base, ok) in [
            ("acme/llama@1.0.0", true),
            ("acme/llama@^1", true),
            ("acme/llama@^2", false),
        ] {
            let gate = json!({"conditions": [{"validated_against": base}]});
            let r = s
                .http
                .put(s.u("/v1/adapters/acme/bot/aliases/prod/gate"))
                .body(gate.to_string())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let r = common::Reply::of(
                s.http
                    .put(s.u("/v1/adapters/acme/bot/aliases/prod"))
                    .body(json!({"version": "1.0.0"}).to_string())
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            if ok {
                assert!(
                    r.status == 201 || r.status == 200,
                    "{base}: {}",
                    String::from_utf8_lossy(&r.body)
                );
                let del = s
                    .http
                    .delete(s.u("/v1/adapters/acme/bot/aliases/prod?expect=1.0.0"))
                    .send()
                    .await
                    .unwrap();
                assert!(del.status().is_success(), "{}", del.status());
            } else {
                r.error(409, "gate_failed");
            }
        }
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_job_requests_are_refused_and_change_nothing() {
    for stack in stacks() {
        let backend = adapter_testkit::Backend::new(&stack);
        let s = TestServer::start(&backend).await;
        let model = tiny_model(&s).await;
        assert_eq!(
            s.publish("models", "acme/llama", "1.0.0", &model)
                .await
                .status,
            201
        );
        let a = tiny_adapter(&s, json!({})).await;
        assert_eq!(
            s.publish("adapters", "acme/bot", "1.0.0", &a).await.status,
            201
        );
        let ok_inputs = json!({"adapter": "acme/bot@1.0.0", "base": "acme/llama@1.0.0"});
        for (body, status, code) in [
            (
                json!({"kind": "merge", "inputs": ok_inputs}),
                400,
                "invalid_job",
            ),
            // Test kinds exist only with --enable-test-jobs.
            (
                json!({"kind": "test.block", "params": {"record": "/tmp/x", "release": "/tmp/y"}}),
                400,
                "invalid_job",
            ),
            (
                json!({"kind": "validate", "inputs": {"adapter": "acme/bot@1.0.0"}}),
                400,
                "invalid_job",
            ),
            (
                json!({"kind": "validate", "inputs": {"adapter": "acme/bot@1.0.0", "base": "acme/llama@1.0.0", "x": "a/b"}}),
                400,
                "invalid_job",
            ),
            (
                json!({"kind": "validate", "inputs": {"adapter": "../etc@1", "base": "acme/llama@1.0.0"}}),
                400,
                "invalid_job",
            ),
            (
                json!({"kind": "validate", "inputs": ok_inputs, "params": [1]}),
                400,
                "invalid_job",
            ),
            (
                json!({"kind": "validate", "inputs": ok_inputs, "params": {"x": 1}}),
                400,
                "invalid_job",
            ),
            (
                json!({"kind": "validate", "inputs": ok_inputs, "idempotency_key": ""}),
                400,
                "invalid_job",
            ),
            (
                json!({"kind": "validate", "inputs": ok_inputs, "extra": 1}),
                400,
                "invalid_json",
            ),
            (
                json!({"kind": "validate", "inputs": {"adapter": "acme/bot@9.9.9", "base": "acme/llama@1.0.0"}}),
                404,
                "no_match",
            ),
            (
                json!({"kind": "validate", "inputs": {"adapter": "acme/llama@1.0.0", "base": "acme/bot@1.0.0"}}),
                404,
                "repository_not_found",
            ),
        ] {
            post_job(&s, &body).await.error(status, code);
        }
        for (path, status, code) in [
            ("/v1/jobs/nope", 404, "job_not_found"),
            ("/v1/jobs/job_..%2F..", 404, "job_not_found"),
            ("/v1/jobs?state=done", 400, "invalid_query"),
            ("/v1/jobs?limit=0", 400, "invalid_query"),
            ("/v1/jobs?cursor=zzz", 400, "invalid_cursor"),
            ("/v1/jobs?input=sha256:00", 400, "invalid_digest"),
            ("/v1/jobs/nope/logs", 404, "job_not_found"),
            ("/v1/jobs/nope/events", 404, "job_not_found"),
        ] {
            s.get(path).await.error(status, code);
        }
        let listed = s.get("/v1/jobs").await.json();
        assert_eq!(
            listed["jobs"].as_array().unwrap().len(),
            0,
            "{stack}: {listed}"
        );
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_pages_with_a_cursor_and_filters() {
    for stack in stacks() {
        let backend = adapter_testkit::Backend::new(&stack);
        let s = TestServer::start(&backend).await;
        let mut ids = Vec::new();
        for i in 0..5 {
            ids.push(enqueue(&s.state, "count", &format!("p{i}")).await.id);
        }
        s.state.db.cancel_job(&ids[0]).await.unwrap();
        let mut seen = Vec::new();
        let mut url = "/v1/jobs?limit=2".to_owned();
        loop {
            let page = s.get(&url).await.json();
            for j in page["jobs"].as_array().unwrap() {
                seen.push(j["id"].as_str().unwrap().to_owned());
            }
            match page["next_cursor"].as_str() {
                Some(c) => url = format!("/v1/jobs?limit=2&cursor={c}"),
                None => break,
            }
        }
        let mut newest_first = ids.clone();
        newest_first.reverse();
        assert_eq!(seen, newest_first, "{stack}");
        let cancelled = s.get("/v1/jobs?state=cancelled").await.json();
        assert_eq!(cancelled["jobs"].as_array().unwrap().len(), 1);
        assert_eq!(cancelled["jobs"][0]["id"], ids[0].as_str());
        let none = s.get("/v1/jobs?kind=validate").await.json();
        assert_eq!(none["jobs"].as_array().unwrap().len(), 0);
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
