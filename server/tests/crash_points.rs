//! Crashes at named points between a write and its acknowledgement (`crash_point!` in the
//! server, armed with `FAILPOINTS=<point>=return`: the process exits at once, as if killed),
//! on every stack. After each: `adapter-registry fsck` finds nothing damaged, a restarted
//! server shows either all of the unacknowledged write or none of it, and the client's retry
//! succeeds.

use std::time::Duration;

use adapter_core::digest::Digest;
use adapter_testkit::{Backend, ServerProcess, admin_json, http, stacks};
use proc::{
    adapter_manifest, assert_version_whole, get, try_move_alias, try_publish, try_put_blob,
};
use serde_json::{Value, json};

mod proc;

/// A server on `backend` that exits at `point`.
fn armed(backend: &Backend, point: &str, extra: &[&str]) -> ServerProcess {
    let failpoints = format!("{point}=return");
    ServerProcess::start_with(backend, extra, &[("FAILPOINTS", &failpoints)])
}

/// The server died at its armed point (not answering `answer`); fsck is clean afterwards.
fn crashed(server: &mut ServerProcess, backend: &Backend, point: &str, answer: Option<u16>) {
    assert_eq!(answer, None, "{point}: the server answered before crashing");
    let status = server.wait_exit(Duration::from_secs(30));
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(137),
        "{point}: the server did not exit at the point\n{}",
        server.logs()
    );
    assert!(server.logs().contains(&format!("crash point {point}")));
    fsck_clean(backend, point);
}

fn fsck_clean(backend: &Backend, when: &str) {
    let (code, report) = admin_json(backend, &["fsck"]);
    assert_eq!(code, 0, "{when}: fsck: {report}");
    assert_eq!(report["damaged_blobs"], json!([]), "{when}: {report}");
    assert_eq!(report["damaged_versions"], json!([]), "{when}: {report}");
}

fn status(r: std::io::Result<adapter_testkit::HttpResponse>) -> Option<u16> {
    r.ok().map(|r| r.status)
}

#[test]
fn a_crash_between_storing_a_blob_and_answering_loses_nothing_and_shows_nothing_half_done() {
    for stack in stacks() {
        let backend = Backend::new(&stack);
        // Bytes durable, no row yet: the blob is not there; the retry stores it.
        let bytes = b"stored, not recorded".to_vec();
        let digest = Digest::of_bytes(&bytes);
        let mut server = armed(&backend, "blob.after_store", &[]);
        let answer = status(try_put_blob(&server, &bytes));
        crashed(&mut server, &backend, "blob.after_store", answer);
        let server = ServerProcess::start(&backend);
        assert_eq!(get(&server, &format!("/v1/blobs/{digest}")).status, 404);
        assert_eq!(
            try_put_blob(&server, &bytes).unwrap().status,
            201,
            "{stack}"
        );
        assert_eq!(get(&server, &format!("/v1/blobs/{digest}")).body, bytes);
        drop(server);

        // Row committed, no answer: the blob is there, whole; the retry is a no-op.
        let bytes = b"recorded, not answered".to_vec();
        let digest = Digest::of_bytes(&bytes);
        let mut server = armed(&backend, "blob.after_record", &[]);
        let answer = status(try_put_blob(&server, &bytes));
        crashed(&mut server, &backend, "blob.after_record", answer);
        let server = ServerProcess::start(&backend);
        assert_eq!(get(&server, &format!("/v1/blobs/{digest}")).body, bytes);
        assert_eq!(
            try_put_blob(&server, &bytes).unwrap().status,
            200,
            "{stack}"
        );
        drop(server);

        // A chunked upload assembled, its blob not recorded: finishing again completes it.
        let bytes: Vec<u8> = (0..70_000u32).map(|i| (i % 241) as u8).collect();
        let digest = Digest::of_bytes(&bytes);
        let mut server = armed(&backend, "upload.after_assemble", &[]);
        let (name, value) = server.auth();
        let h = [(name, value.as_str())];
        let r = http("POST", &format!("{}/v1/uploads", server.url), &h, b"");
        let id = r.json()["id"].as_str().unwrap().to_owned();
        let url = format!("{}/v1/uploads/{id}", server.url);
        let r = http("PATCH", &url, &[("Upload-Offset", "0"), h[0]], &bytes);
        assert_eq!(r.status, 202, "{stack}: {}", r.text());
        let finish = format!("{url}?digest={digest}");
        let answer = status(adapter_testkit::try_http("PUT", &finish, &h, b""));
        crashed(&mut server, &backend, "upload.after_assemble", answer);
        let server = ServerProcess::start(&backend);
        let finish = format!("{}/v1/uploads/{id}?digest={digest}", server.url);
        let r = http("PUT", &finish, &h, b"");
        assert_eq!(r.status, 201, "{stack}: {}", r.text());
        assert_eq!(get(&server, &format!("/v1/blobs/{digest}")).body, bytes);
        fsck_clean(&backend, "after the retries");
    }
}

#[test]
fn a_crash_after_a_publish_or_an_alias_move_committed_keeps_it_whole() {
    for stack in stacks() {
        let backend = Backend::new(&stack);
        let mut server = armed(&backend, "publish.after_commit", &[]);
        let manifest = adapter_manifest(&server, b"crash after commit");
        let answer = status(try_publish(&server, "crash/bot", "1.0.0", &manifest));
        crashed(&mut server, &backend, "publish.after_commit", answer);
        let server = ServerProcess::start(&backend);
        let digest = assert_version_whole(&server, "crash/bot", "1.0.0");
        // The client's retry of the unanswered publish is the idempotent no-op.
        let r = try_publish(&server, "crash/bot", "1.0.0", &manifest).unwrap();
        assert_eq!(r.status, 200, "{stack}: {}", r.text());
        assert_eq!(r.json()["manifest_digest"], digest.as_str());
        let other = adapter_manifest(&server, b"the second version");
        let r = try_publish(&server, "crash/bot", "1.1.0", &other).unwrap();
        assert_eq!(r.status, 201, "{stack}: {}", r.text());
        let r = try_move_alias(&server, "crash/bot", "prod", "1.0.0", None).unwrap();
        assert_eq!(r.status, 201, "{stack}: {}", r.text());
        drop(server);

        let mut server = armed(&backend, "alias.after_commit", &[]);
        let answer = status(try_move_alias(
            &server,
            "crash/bot",
            "prod",
            "1.1.0",
            Some("1.0.0"),
        ));
        crashed(&mut server, &backend, "alias.after_commit", answer);
        let server = ServerProcess::start(&backend);
        let alias = get(&server, "/v1/adapters/crash/bot/aliases/prod").json();
        assert_eq!(alias["version"], "1.1.0", "{stack}: {alias}");
        let history = get(&server, "/v1/adapters/crash/bot/aliases/prod/history").json();
        assert_eq!(
            adapter_testkit::alias_moves(&history),
            vec![
                (Value::Null, json!("1.0.0")),
                (json!("1.0.0"), json!("1.1.0"))
            ],
            "{stack}: {history}"
        );
        // The retry finds the move made: a stale expectation is refused, nothing recorded.
        let r = try_move_alias(&server, "crash/bot", "prod", "1.1.0", Some("1.0.0")).unwrap();
        assert_eq!(r.status, 412, "{stack}: {}", r.text());
        fsck_clean(&backend, "after the retries");
    }
}

#[test]
fn a_worker_that_dies_before_writing_an_outcome_leaves_the_job_to_finish_once() {
    for stack in stacks() {
        let backend = Backend::new(&stack);
        let record = backend.data_dir().join("record.txt");
        let release = backend.data_dir().join("release");
        std::fs::write(&release, b"").unwrap();
        let jobs = [
            "--workers",
            "1",
            "--enable-test-jobs",
            "--job-lease-ms",
            "1500",
        ];
        let mut server = armed(&backend, "job.before_outcome", &jobs);
        let (name, value) = server.auth();
        let h = [(name, value.as_str())];
        let body = json!({"kind": "test.block", "params": {
            "record": record.display().to_string(), "release": release.display().to_string()}});
        // The in-process worker may run the job, and die, before the submission is answered.
        let submitted = adapter_testkit::try_http(
            "POST",
            &format!("{}/v1/jobs", server.url),
            &h,
            body.to_string().as_bytes(),
        );
        let answered = submitted.ok().map(|r| {
            assert_eq!(r.status, 202, "{stack}: {}", r.text());
            r.json()["id"].as_str().unwrap().to_owned()
        });
        crashed(&mut server, &backend, "job.before_outcome", None);

        // A restarted worker takes the job over once the lease ran out; one outcome.
        let server = ServerProcess::start_with(&backend, &jobs, &[]);
        let listed = get(&server, "/v1/jobs").json();
        let id = listed["jobs"][0]["id"].as_str().unwrap().to_owned();
        assert_eq!(
            listed["jobs"].as_array().unwrap().len(),
            1,
            "{stack}: {listed}"
        );
        if let Some(answered) = answered {
            assert_eq!(answered, id, "{stack}");
        }
        let job = adapter_testkit::wait_for("the job to succeed", Duration::from_secs(60), || {
            let j = get(&server, &format!("/v1/jobs/{id}")).json();
            (j["state"] == "succeeded").then_some(j)
        });
        assert_eq!(job["attempts"], 2, "{stack}: {job}");
        let lines = adapter_testkit::read_lines(&record);
        let done: Vec<&String> = lines.iter().filter(|l| l.starts_with("done ")).collect();
        assert_eq!(
            done.len(),
            2,
            "{stack}: the work ran twice (at least once): {lines:?}"
        );
        // The outcome is the second run's.
        let pid = done[1].rsplit(' ').next().unwrap();
        assert_eq!(job["result"]["pid"].to_string(), pid, "{stack}: {job}");
        fsck_clean(&backend, "after the job");
    }
}
