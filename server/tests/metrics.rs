//! `/metrics` (Prometheus text format), request ids and JSON logs: requests counted by route
//! template and status with latency histograms and bytes, the shared gauges read from the
//! database (jobs by kind and state, queue depth, upload sessions), the pool; every answer
//! carries an `X-Request-Id` (the caller's, or a new one), and `--log-format json` writes one
//! JSON object per line with the request's route and id.

mod common;

use adapter_testkit::{Backend, ServerProcess, Stack, http};
use common::{TestServer, publish_tiny_model, stacks, tiny_adapter};
use serde_json::{Value, json};

/// The value of the sample `name{labels}` (labels as written, in order), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_count_requests_and_read_the_shared_gauges() {
    for stack in stacks() {
        let at = stack.to_string();
        let backend = Backend::new(&stack);
        let s = TestServer::start(&backend).await;
        publish_tiny_model(&s, "acme/llama").await;
        let a = tiny_adapter(&s, json!({"base": {"reference": "acme/llama@1.0.0"}})).await;
        s.publish("adapters", "acme/bot", "1.0.0", &a)
            .await
            .expect(201, &at);
        s.http
            .post(s.u("/v1/uploads"))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        for _ in 0..3 {
            s.get("/v1/adapters/acme/bot/resolve/1.0.0")
                .await
                .expect(200, &at);
        }
        s.get("/v1/adapters/acme/nope/resolve/1.0.0").await;

        // No token needed, like /healthz.
        let r = reqwest::get(s.u("/metrics")).await.unwrap();
        assert_eq!(r.status(), 200, "{at}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .contains("openmetrics-text")
        );
        let text = r.text().await.unwrap();
        let resolve = r#"route="/v1/adapters/{ns}/{name}/resolve/{selector}""#;
        assert_eq!(
            sample(
                &text,
                &format!(
                    r#"adapter_registry_http_requests_total{{method="GET",{resolve},status="200"}}"#
                )
            ),
            Some(3.0),
            "{at}: {text}"
        );
        assert_eq!(
            sample(
                &text,
                &format!(
                    r#"adapter_registry_http_requests_total{{method="GET",{resolve},status="404"}}"#
                )
            ),
            Some(1.0),
            "{at}"
        );
        assert_eq!(
            sample(
                &text,
                &format!(
                    r#"adapter_registry_http_request_duration_seconds_count{{method="GET",{resolve}}}"#
                )
            ),
            Some(4.0),
            "{at}"
        );
        assert!(
            text.contains(r#"adapter_registry_http_request_duration_seconds_bucket{le="#)
                || text.contains(
                    r#"adapter_registry_http_request_duration_seconds_bucket{method="GET""#
                ),
            "{at}"
        );
        let uploaded = sample(
            &text,
            r#"adapter_registry_http_request_body_bytes_total{method="PUT",route="/v1/blobs/{digest}"}"#,
        )
        .unwrap_or(0.0);
        assert!(uploaded > 1000.0, "{at}: blob bytes in: {uploaded}");
        // The adapter names a registered base: its validation job is queued (no workers).
        assert_eq!(
            sample(
                &text,
                r#"adapter_registry_jobs{kind="validate",state="queued"}"#
            ),
            Some(1.0),
            "{at}"
        );
        assert_eq!(
            sample(&text, "adapter_registry_job_queue_depth"),
            Some(1.0),
            "{at}"
        );
        assert_eq!(
            sample(&text, "adapter_registry_upload_sessions"),
            Some(1.0),
            "{at}"
        );
        assert!(sample(&text, "adapter_registry_db_pool_connections").unwrap() >= 1.0);
        assert!(text.trim_end().ends_with("# EOF"), "{at}");

        // Request ids: the caller's when sane, else a new one.
        let mine = s
            .http
            .get(s.u("/healthz"))
            .header("x-request-id", "deploy-42.a_b")
            .send()
            .await
            .unwrap();
        assert_eq!(mine.headers()["x-request-id"], "deploy-42.a_b");
        let bad = s
            .http
            .get(s.u("/healthz"))
            .header("x-request-id", "no spaces or <tags>")
            .send()
            .await
            .unwrap();
        let fresh = bad.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert!(uuid::Uuid::parse_str(&fresh).is_ok(), "{fresh}");
        s.stop().await;
    }
}

#[test]
fn json_logs_carry_the_route_and_the_request_id() {
    let backend = Backend::new(&Stack::Embedded);
    let server = ServerProcess::start_with(&backend, &["--log-format", "json"], &[]);
    let r = http(
        "GET",
        &format!("{}/healthz", server.url),
        &[("x-request-id", "trace-me-7")],
        b"",
    );
    assert_eq!(r.status, 200);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let logs = server.logs();
    let lines: Vec<Value> = logs
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(!lines.is_empty(), "no JSON log lines: {logs}");
    let answered = lines
        .iter()
        .find(|l| l["span"]["request_id"] == "trace-me-7")
        .unwrap_or_else(|| panic!("no line for the request: {logs}"));
    assert_eq!(answered["span"]["route"], "/healthz");
    assert_eq!(answered["span"]["method"], "GET");
}
