//! The jobs API on both stacks: the validate job end to end (auto-queued on publish, stored on
//! the version, read by the `validated_against` gate and the catalogue), events, hostile
//! requests, paging and filters.

mod common;

use adapter_core::api::JobState;
use adapter_registry::jobs::{self, Kinds};
use common::jobs::{enqueue, fast, wait_final};
use common::{TestServer, post_job, publish_tiny_model, stacks, tiny_adapter};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn validate_end_to_end_with_idempotent_submit_events_and_gate() {
    for stack in stacks() {
        let backend = adapter_testkit::Backend::new(&stack);
        let s = TestServer::start(&backend).await;
        publish_tiny_model(&s, "acme/llama").await;
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
        let r = post_job(&s.http, &s, &body).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["id"], auto_id.as_str());
        assert_eq!(
            r.header("location"),
            Some(format!("/v1/jobs/{auto_id}").as_str())
        );
        // Another key: a new job (202).
        let mut keyed = body.clone();
        keyed["idempotency_key"] = json!("by-hand");
        let r = post_job(&s.http, &s, &keyed).await;
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
        let r = post_job(&s.http, &s, &body).await;
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
        publish_tiny_model(&s, "acme/llama").await;
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
            post_job(&s.http, &s, &body).await.error(status, code);
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
