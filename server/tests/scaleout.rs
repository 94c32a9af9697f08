//! Scale-out, proven with real processes on one PostgreSQL and one S3 server: two `serve`
//! processes (workers off) and two `adapter-registry worker` processes. Pushes through both
//! servers are read back through the other at once (read-after-write); alias moves with
//! compare-and-swap through both lose no update; many jobs spread over both workers, none run
//! twice; a worker killed mid-job leaves it to the other, which finishes it once.
//! (docs/ARCHITECTURE.md, "What processes share".) Runs on the scale-out stack only: it is
//! about processes sharing PostgreSQL and S3.

use std::path::Path;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use adapter_core::digest::Digest;
use adapter_testkit::{
    Backend, HttpResponse, ServerProcess, Stack, http, read_lines, stacks, start_test_worker,
    wait_for,
};
use serde_json::{Value, json};

fn example(file: &str) -> Vec<u8> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/tiny-llama-lora");
    std::fs::read(root.join(file)).unwrap()
}

struct Node {
    server: ServerProcess,
    token: String,
}

impl Node {
    fn call(&self, method: &str, path: &str, body: &[u8]) -> HttpResponse {
        let auth = format!("Bearer {}", self.token);
        http(
            method,
            &format!("{}{path}", self.server.url),
            &[("authorization", auth.as_str())],
            body,
        )
    }

    fn json(&self, method: &str, path: &str, body: &Value) -> HttpResponse {
        self.call(method, path, body.to_string().as_bytes())
    }
}

/// An adapter manifest of the tiny example plus `notes.txt` = `notes` (all uploaded via
/// `node`).
fn adapter_manifest(node: &Node, notes: &[u8]) -> Value {
    let mut files = Vec::new();
    for (path, bytes) in [
        ("adapter_config.json", example("adapter_config.json")),
        (
            "adapter_model.safetensors",
            example("adapter_model.safetensors"),
        ),
        ("notes.txt", notes.to_vec()),
    ] {
        let d = Digest::of_bytes(&bytes);
        let r = node.call("PUT", &format!("/v1/blobs/{d}"), &bytes);
        assert!(r.status == 200 || r.status == 201, "{}", r.text());
        files.push(json!({"path": path, "size": bytes.len(), "digest": d.to_string()}));
    }
    json!({"schema": "adapter-registry.manifest.v1", "kind": "adapter", "files": files, "metadata": {}})
}

#[test]
fn two_servers_and_two_workers_share_one_database_and_store() {
    for stack in stacks() {
        if stack != Stack::Scaleout {
            continue;
        }
        let backend = Backend::new(&stack);
        // Both start at once on the empty database: one of them makes the first admin token.
        let args = ["--workers", "0", "--enable-test-jobs"];
        let (first, second) = std::thread::scope(|scope| {
            let a = scope.spawn(|| ServerProcess::start_with(&backend, &args, &[]));
            let b = scope.spawn(|| ServerProcess::start_with(&backend, &args, &[]));
            (a.join().unwrap(), b.join().unwrap())
        });
        let token = std::fs::read_to_string(backend.data_dir().join("admin.token"))
            .expect("one server made the admin token")
            .trim()
            .to_owned();
        let nodes = [
            Node {
                server: first,
                token: token.clone(),
            },
            Node {
                server: second,
                token,
            },
        ];

        let tokens = nodes[1].call("GET", "/v1/tokens", b"");
        assert_eq!(
            tokens.json()["tokens"].as_array().map(Vec::len),
            Some(1),
            "{}",
            tokens.text()
        );

        // Read-after-write: each push through one server is at once visible, whole, through
        // the other (no cache in between).
        for i in 0..6 {
            let (writer, reader) = (&nodes[i % 2], &nodes[(i + 1) % 2]);
            let manifest = adapter_manifest(writer, format!("push {i}").as_bytes());
            let version = format!("1.0.{i}");
            let r = writer.json(
                "PUT",
                &format!("/v1/adapters/acme/bot/versions/{version}"),
                &manifest,
            );
            assert_eq!(r.status, 201, "{}", r.text());
            let digest = r.json()["manifest_digest"].clone();
            let seen = reader.call("GET", "/v1/adapters/acme/bot/resolve", b"");
            assert_eq!(seen.status, 200, "{}", seen.text());
            assert_eq!(seen.json()["version"], version.as_str());
            assert_eq!(seen.json()["manifest_digest"], digest);
            let notes = manifest["files"][2]["digest"].as_str().unwrap();
            let blob = reader.call("GET", &format!("/v1/blobs/{notes}"), b"");
            assert_eq!(blob.body, format!("push {i}").into_bytes());
        }

        // Alias moves through both servers, compare-and-swap: every acknowledged move is in
        // the history, in order (no lost update).
        let r = nodes[0].json(
            "PUT",
            "/v1/adapters/acme/bot/aliases/prod",
            &json!({"version": "1.0.0"}),
        );
        assert_eq!(r.status, 201, "{}", r.text());
        let acknowledged = Arc::new(AtomicUsize::new(1));
        std::thread::scope(|scope| {
            for (t, node) in nodes
                .iter()
                .enumerate()
                .flat_map(|(i, n)| [(i * 2, n), (i * 2 + 1, n)])
            {
                let acknowledged = acknowledged.clone();
                scope.spawn(move || {
                    for k in 0..8 {
                        loop {
                            let now = node.call("GET", "/v1/adapters/acme/bot/aliases/prod", b"");
                            let current = now.json()["version"].as_str().unwrap().to_owned();
                            let target = format!("1.0.{}", (t + k) % 6);
                            if target == current {
                                break;
                            }
                            let r = node.json(
                                "PUT",
                                "/v1/adapters/acme/bot/aliases/prod",
                                &json!({"version": target, "expect": current}),
                            );
                            match r.status {
                                200 => {
                                    acknowledged.fetch_add(1, Ordering::SeqCst);
                                    break;
                                }
                                412 => continue,
                                other => panic!("alias move answered {other}: {}", r.text()),
                            }
                        }
                    }
                });
            }
        });
        let history = nodes[1].call("GET", "/v1/adapters/acme/bot/aliases/prod/history", b"");
        let moves = history.json()["entries"].as_array().unwrap().len();
        assert_eq!(
            moves,
            acknowledged.load(Ordering::SeqCst),
            "{}",
            history.text()
        );

        // Jobs over two worker processes: spread, none run twice.
        let mut workers = [
            start_test_worker(&backend, 2, &[]),
            start_test_worker(&backend, 2, &[]),
        ];
        // One record file per job (identical jobs would be one job: submits are idempotent).
        let record = |i: usize| backend.data_dir().join(format!("record-{i}.txt"));
        let all_records = || {
            (0..12)
                .flat_map(|i| read_lines(&record(i)))
                .collect::<Vec<_>>()
        };
        let release = backend.data_dir().join("release");
        let mut ids = Vec::new();
        for i in 0..12 {
            let body = json!({"kind": "test.block", "params": {
                "record": record(i).display().to_string(), "release": release.display().to_string()}});
            let r = nodes[i % 2].json("POST", "/v1/jobs", &body);
            assert_eq!(r.status, 202, "{}", r.text());
            ids.push(r.json()["id"].as_str().unwrap().to_owned());
        }
        // Four run at once (two per process) before any is released.
        wait_for("four jobs running", Duration::from_secs(60), || {
            (all_records().len() >= 4).then_some(())
        });
        std::fs::write(&release, b"go").unwrap();
        for id in &ids {
            wait_for("every job to succeed", Duration::from_secs(60), || {
                let j = nodes[0].call("GET", &format!("/v1/jobs/{id}"), b"").json();
                (j["state"] == "succeeded").then_some(())
            });
        }
        let record_lines = all_records();
        let pid = |l: &str| l.rsplit(' ').next().unwrap().to_owned();
        let starts: std::collections::BTreeSet<String> = record_lines
            .iter()
            .filter(|l| l.starts_with("start "))
            .map(|l| pid(l))
            .collect();
        assert_eq!(
            starts.len(),
            2,
            "jobs ran in both worker processes: {record_lines:?}"
        );
        for id in &ids {
            let done = record_lines
                .iter()
                .filter(|l| l.starts_with(&format!("done {id} ")))
                .count();
            assert_eq!(done, 1, "job {id} finished {done} times: {record_lines:?}");
        }

        // A worker killed mid-job: the other finishes it, once.
        let record2 = backend.data_dir().join("record2.txt");
        let release2 = backend.data_dir().join("release2");
        let body = json!({"kind": "test.block", "params": {
            "record": record2.display().to_string(), "release": release2.display().to_string()}});
        let r = nodes[1].json("POST", "/v1/jobs", &body);
        let id = r.json()["id"].as_str().unwrap().to_owned();
        let started_by = wait_for("the job to start", Duration::from_secs(60), || {
            read_lines(&record2).first().map(|l| pid(l))
        });
        let victim = workers
            .iter()
            .position(|w| w.id().to_string() == started_by)
            .expect("started by one of the two workers");
        workers[victim].kill().unwrap();
        workers[victim].wait().unwrap();
        std::fs::write(&release2, b"go").unwrap();
        let done = wait_for(
            "the other worker to finish it",
            Duration::from_secs(60),
            || {
                let j = nodes[0].call("GET", &format!("/v1/jobs/{id}"), b"").json();
                (j["state"] == "succeeded").then_some(j)
            },
        );
        assert_eq!(done["attempts"], 2, "{done}");
        let record2 = read_lines(&record2);
        let dones: Vec<&String> = record2.iter().filter(|l| l.starts_with("done ")).collect();
        assert_eq!(dones.len(), 1, "{record2:?}");
        assert_ne!(pid(dones[0]), started_by, "{record2:?}");
        for w in &mut workers {
            let _ = w.kill();
            let _ = w.wait();
        }
    }
}
