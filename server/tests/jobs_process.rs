//! Real processes: an `adapter-registry worker` killed with SIGKILL in the middle of a job →
//! the job is completed exactly once, by another worker, after the lease ran out. Uses the
//! test-only kind `test.block`, which exists only with `--enable-test-jobs`.

use std::path::Path;
use std::time::Duration;

use adapter_testkit::{
    Backend, ServerProcess, http, read_lines, stacks, start_test_worker, wait_for,
};
use serde_json::{Value, json};

/// Submit a `test.block` job that records to `record` and waits for the file `release`;
/// its id.
fn submit_block(
    server: &ServerProcess,
    headers: &[(&str, &str)],
    record: &Path,
    release: &Path,
) -> String {
    let body = json!({"kind": "test.block", "params": {
        "record": record.display().to_string(), "release": release.display().to_string()}});
    let r = http(
        "POST",
        &format!("{}/v1/jobs", server.url),
        headers,
        body.to_string().as_bytes(),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    r.json()["id"].as_str().unwrap().to_owned()
}

/// Wait (30 s at most) until job `id` has succeeded; the job.
fn wait_succeeded(server: &ServerProcess, headers: &[(&str, &str)], id: &str) -> Value {
    wait_for("the job to succeed", Duration::from_secs(30), || {
        let j = http("GET", &format!("{}/v1/jobs/{id}", server.url), headers, b"").json();
        (j["state"] == "succeeded").then_some(j)
    })
}

#[test]
fn a_worker_killed_mid_job_leaves_it_to_another_that_completes_it_once() {
    for stack in stacks() {
        let backend = Backend::new(&stack);
        let server =
            ServerProcess::start_with(&backend, &["--workers", "0", "--enable-test-jobs"], &[]);
        let auth = server.auth();
        let headers = [(auth.0, auth.1.as_str())];
        let record = backend.data_dir().join("record.txt");
        let release = backend.data_dir().join("release");
        let id = submit_block(&server, &headers, &record, &release);
        let job = |server: &ServerProcess| -> Value {
            http(
                "GET",
                &format!("{}/v1/jobs/{id}", server.url),
                &headers,
                b"",
            )
            .json()
        };

        let mut first = start_test_worker(&backend, 1, &[]);
        wait_for(
            "the first worker to start the job",
            Duration::from_secs(30),
            || (read_lines(&record).len() == 1).then_some(()),
        );
        first.kill().unwrap();
        first.wait().unwrap();
        assert_eq!(job(&server)["state"], "running", "{stack}");

        std::fs::write(&release, b"go").unwrap();
        let mut second = start_test_worker(&backend, 1, &[]);
        let done = wait_for("the job to finish", Duration::from_secs(30), || {
            let j = job(&server);
            j["state"]
                .as_str()
                .is_some_and(|s| s != "running" && s != "queued")
                .then_some(j)
        });
        second.kill().unwrap();
        second.wait().unwrap();

        assert_eq!(done["state"], "succeeded", "{stack}: {done}");
        assert_eq!(done["attempts"], 2, "{stack}: {done}");
        let record = read_lines(&record);
        let starts: Vec<&String> = record.iter().filter(|l| l.starts_with("start ")).collect();
        let dones: Vec<&String> = record.iter().filter(|l| l.starts_with("done ")).collect();
        assert_eq!((starts.len(), dones.len()), (2, 1), "{stack}: {record:?}");
        let pid = |l: &str| l.rsplit(' ').next().unwrap().to_owned();
        assert_ne!(pid(starts[0]), pid(starts[1]), "two processes: {record:?}");
        assert_eq!(pid(dones[0]), pid(starts[1]), "{record:?}");
        assert_eq!(done["result"]["pid"].to_string(), pid(dones[0]));
        let logs = http(
            "GET",
            &format!("{}/v1/jobs/{id}/logs", server.url),
            &headers,
            b"",
        )
        .json();
        assert_eq!(logs["lines"].as_array().unwrap().len(), 2, "{logs}");
    }
}

#[test]
fn serve_runs_workers_and_refuses_test_kinds_without_the_flag() {
    for stack in stacks() {
        let backend = Backend::new(&stack);
        let mut server = ServerProcess::start_with(&backend, &["--job-poll-ms", "50"], &[]);
        let auth = server.auth();
        let headers = [(auth.0, auth.1.as_str())];
        let body = json!({"kind": "test.block", "params": {}});
        let r = http(
            "POST",
            &format!("{}/v1/jobs", server.url),
            &headers,
            body.to_string().as_bytes(),
        );
        assert_eq!(r.status, 400, "{stack}: {}", r.text());
        assert_eq!(r.json()["error"]["code"], "invalid_job");
        server.stop();

        // Restart with test jobs: the in-process workers (default 2) run them.
        let server = ServerProcess::start_with(
            &backend,
            &["--enable-test-jobs", "--job-poll-ms", "50"],
            &[],
        );
        let release = backend.data_dir().join("go");
        std::fs::write(&release, b"").unwrap();
        let record = backend.data_dir().join("rec");
        let id = submit_block(&server, &headers, &record, &release);
        let state = wait_succeeded(&server, &headers, &id);
        assert_eq!(state["attempts"], 1);
        assert_eq!(read_lines(&record).len(), 2);
    }
}

#[test]
fn a_worker_process_serves_its_job_durations_on_metrics_listen() {
    let backend = Backend::new(&adapter_testkit::Stack::Embedded);
    let server =
        ServerProcess::start_with(&backend, &["--workers", "0", "--enable-test-jobs"], &[]);
    let auth = server.auth();
    let headers = [(auth.0, auth.1.as_str())];
    // A free port, taken back by the worker.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut worker = start_test_worker(&backend, 1, &["--metrics-listen", &listen]);
    let release = backend.data_dir().join("go");
    std::fs::write(&release, b"").unwrap();
    let record = backend.data_dir().join("rec");
    let id = submit_block(&server, &headers, &record, &release);
    wait_succeeded(&server, &headers, &id);
    // No token: like a server's /metrics.
    let text = wait_for("the worker's /metrics", Duration::from_secs(10), || {
        adapter_testkit::try_http("GET", &format!("http://{listen}/metrics"), &[], b"")
            .ok()
            .filter(|r| r.status == 200)
            .map(|r| r.text())
    });
    assert!(
        text.contains(r#"adapter_registry_job_duration_seconds_count{kind="test.block",outcome="succeeded"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"adapter_registry_jobs{kind="test.block",state="succeeded"} 1"#),
        "{text}"
    );
    let health = http("GET", &format!("http://{listen}/healthz"), &[], b"");
    assert_eq!(health.status, 200);
    worker.kill().unwrap();
    worker.wait().unwrap();
}
