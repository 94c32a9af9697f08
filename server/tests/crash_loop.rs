//! Kill loop, on every stack: a `serve` process and a `worker` process run while clients
//! push and publish, move an alias and submit jobs; at a random moment one or both are
//! killed with SIGKILL; then `fsck`, a restart, and the checks:
//! * every acknowledged version is there and whole, and every visible version is whole
//!   (nothing half-visible);
//! * the acknowledged alias moves appear in the history in order, and the alias points where
//!   the history's last move put it (no lost update);
//! * at the end every acknowledged job has finished: succeeded with the outcome of a run
//!   that completed, or failed with a reason.
//!
//! CI runs a few rounds; the long run sets `ADAPTER_REGISTRY_CRASH_ROUNDS` (and
//! `ADAPTER_REGISTRY_CRASH_SEED` to replay one): docs/RELIABILITY.md.

use std::collections::BTreeMap;
use std::process::Child;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use adapter_testkit::{
    Backend, Rng, ServerProcess, admin_json, read_lines, stacks, start_test_worker, try_http,
    wait_for,
};
use proc::{assert_version_whole, get, try_adapter_manifest, try_move_alias, try_publish};
use serde_json::{Value, json};

mod proc;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| v.parse().expect(name))
}

/// What the clients were told succeeded.
#[derive(Default)]
struct Ledger {
    /// version → manifest digest, for every 201.
    versions: Mutex<BTreeMap<String, String>>,
    /// (from, to) of every acknowledged alias move, in acknowledgement order.
    moves: Mutex<Vec<(Option<String>, String)>>,
    /// Ids of the accepted jobs.
    jobs: Mutex<Vec<String>>,
}

const REPO: &str = "crash/loop";

/// Publish new versions until told to stop or the server stops answering.
fn pusher(server: &ServerProcess, round: u64, stop: &AtomicBool, ledger: &Ledger) {
    for n in 0.. {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let Ok(manifest) = try_adapter_manifest(server, format!("{round}.{n}").as_bytes()) else {
            return;
        };
        let version = format!("1.{round}.{n}");
        let Ok(r) = try_publish(server, REPO, &version, &manifest) else {
            return;
        };
        assert!(
            r.status == 201,
            "publish {version}: {} {}",
            r.status,
            r.text()
        );
        let digest = r.json()["manifest_digest"].as_str().unwrap().to_owned();
        ledger.versions.lock().unwrap().insert(version, digest);
    }
}

/// Move `prod` between acknowledged versions with compare-and-swap.
fn mover(server: &ServerProcess, stop: &AtomicBool, ledger: &Ledger, rng: &mut Rng) {
    let current = |server: &ServerProcess| -> Option<Option<String>> {
        let (name, value) = server.auth();
        let url = format!("{}/v1/adapters/{REPO}/aliases/prod", server.url);
        let r = try_http("GET", &url, &[(name, &value)], b"").ok()?;
        Some(match r.status {
            200 => Some(r.json()["version"].as_str().unwrap().to_owned()),
            _ => None,
        })
    };
    let Some(mut expect) = current(server) else {
        return;
    };
    while !stop.load(Ordering::Relaxed) {
        let targets: Vec<String> = ledger.versions.lock().unwrap().keys().cloned().collect();
        if targets.is_empty() {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        let to = targets[rng.below(targets.len() as u64) as usize].clone();
        let Ok(r) = try_move_alias(server, REPO, "prod", &to, expect.as_deref()) else {
            return;
        };
        match r.status {
            200 | 201 => {
                if expect.as_deref() != Some(to.as_str()) {
                    ledger
                        .moves
                        .lock()
                        .unwrap()
                        .push((expect.clone(), to.clone()));
                }
                expect = Some(to);
            }
            412 => match current(server) {
                Some(now) => expect = now,
                None => return,
            },
            s => panic!("moving prod to {to}: {s} {}", r.text()),
        }
    }
}

/// Submit quick `test.block` jobs (their release file exists), each recording to a file
/// of its own (`record-<round>-<n>`: the same parameters would be the same job).
fn submitter(
    server: &ServerProcess,
    round: u64,
    stop: &AtomicBool,
    ledger: &Ledger,
    dir: &str,
    release: &str,
) {
    let (name, value) = server.auth();
    for n in 0.. {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let record = format!("{dir}/record-{round}-{n}");
        let body = json!({"kind": "test.block", "params": {"record": record, "release": release}});
        let url = format!("{}/v1/jobs", server.url);
        let Ok(r) = try_http("POST", &url, &[(name, &value)], body.to_string().as_bytes()) else {
            return;
        };
        assert_eq!(r.status, 202, "{}", r.text());
        ledger
            .jobs
            .lock()
            .unwrap()
            .push(r.json()["id"].as_str().unwrap().to_owned());
        std::thread::sleep(Duration::from_millis(30));
    }
}

/// The checks after a crash (see the module's doc).
fn verify(server: &ServerProcess, ledger: &Ledger, when: &str) {
    for (version, digest) in ledger.versions.lock().unwrap().iter() {
        let got = assert_version_whole(server, REPO, version);
        assert_eq!(&got, digest, "{when}: {version} changed");
    }
    let listed = get(server, &format!("/v1/adapters/{REPO}/versions"));
    if listed.status == 200 {
        for v in listed.json()["versions"].as_array().unwrap() {
            assert_version_whole(server, REPO, v["version"].as_str().unwrap());
        }
    }
    let history = get(server, &format!("/v1/adapters/{REPO}/aliases/prod/history"));
    let entries: Vec<(Option<String>, Option<String>)> = match history.status {
        404 => Vec::new(),
        _ => history.json()["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["from"].as_str().map(str::to_owned),
                    e["to"].as_str().map(str::to_owned),
                )
            })
            .collect(),
    };
    // The acknowledged moves are a subsequence of the history.
    let mut rest = entries.iter();
    for (from, to) in ledger.moves.lock().unwrap().iter() {
        let wanted = (from.clone(), Some(to.clone()));
        assert!(
            rest.any(|e| *e == wanted),
            "{when}: the acknowledged move {wanted:?} is not in the history {entries:?}"
        );
    }
    if let Some((_, last)) = entries.last() {
        let alias = get(server, &format!("/v1/adapters/{REPO}/aliases/prod")).json();
        assert_eq!(
            alias["version"].as_str(),
            last.as_deref(),
            "{when}: {alias}"
        );
    }
}

fn fsck_clean(backend: &Backend, when: &str) {
    let (code, report) = admin_json(backend, &["fsck"]);
    assert_eq!(code, 0, "{when}: {report}");
    assert_eq!(report["damaged_blobs"], json!([]), "{when}: {report}");
    assert_eq!(report["damaged_versions"], json!([]), "{when}: {report}");
}

/// SIGKILL to `pid` (the server, while client threads still hold it; reaped afterwards).
fn sigkill(pid: u32) {
    let sent = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -KILL {pid}");
}

fn kill(worker: &mut Child) {
    let _ = worker.kill();
    let _ = worker.wait();
}

#[test]
fn killed_at_random_moments_nothing_acknowledged_is_lost() {
    let rounds = env_u64("ADAPTER_REGISTRY_CRASH_ROUNDS").unwrap_or(4);
    let seed = env_u64("ADAPTER_REGISTRY_CRASH_SEED").unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1
    });
    eprintln!("kill loop: {rounds} rounds, ADAPTER_REGISTRY_CRASH_SEED={seed}");
    for stack in stacks() {
        let mut rng = Rng::new(seed);
        let backend = Backend::new(&stack);
        let dir = backend.data_dir().display().to_string();
        let release = format!("{dir}/release");
        std::fs::write(&release, b"").unwrap();
        let ledger = Ledger::default();
        let serve_args = ["--workers", "0", "--enable-test-jobs"];
        for round in 0..rounds {
            let when = format!("{stack}, round {round} (seed {seed})");
            let mut server = ServerProcess::start_with(&backend, &serve_args, &[]);
            let mut worker = start_test_worker(&backend, 1, &[]);
            verify(&server, &ledger, &when);
            let stop = AtomicBool::new(false);
            let mut mover_rng = Rng::new(rng.next_u64());
            let delay = Duration::from_millis(100 + rng.below(700));
            let which = rng.below(3);
            let server_pid = server.pid();
            std::thread::scope(|s| {
                s.spawn(|| pusher(&server, round, &stop, &ledger));
                s.spawn(|| mover(&server, &stop, &ledger, &mut mover_rng));
                s.spawn(|| submitter(&server, round, &stop, &ledger, &dir, &release));
                std::thread::sleep(delay);
                // The worker, the server, or both, at once; the clients stop at their next
                // unanswered request (or, if only the worker died, when told to).
                if which != 1 {
                    kill(&mut worker);
                }
                if which != 0 {
                    sigkill(server_pid);
                }
                stop.store(true, Ordering::Relaxed);
            });
            server.kill();
            kill(&mut worker);
            fsck_clean(&backend, &when);
        }
        // Recovery: every acknowledged job finishes, once.
        let server = ServerProcess::start_with(&backend, &serve_args, &[]);
        let mut worker = start_test_worker(&backend, 2, &[]);
        verify(&server, &ledger, &format!("{stack}, after the loop"));
        let jobs = ledger.jobs.lock().unwrap().clone();
        for id in &jobs {
            let job = wait_for("the job to finish", Duration::from_secs(120), || {
                let j = get(&server, &format!("/v1/jobs/{id}")).json();
                matches!(j["state"].as_str(), Some("succeeded" | "failed")).then_some(j)
            });
            let record = job["params"]["record"].as_str().unwrap();
            check_outcome(
                &job,
                &read_lines(std::path::Path::new(record)),
                &stack.to_string(),
            );
        }
        kill(&mut worker);
        let versions = ledger.versions.lock().unwrap().len();
        let moves = ledger.moves.lock().unwrap().len();
        eprintln!(
            "{stack}: {rounds} rounds; acknowledged {versions} versions, {moves} alias moves, {} jobs",
            jobs.len()
        );
    }
}

/// A succeeded job's result names a process that completed it; a failed one says why.
fn check_outcome(job: &Value, lines: &[String], stack: &str) {
    let id = job["id"].as_str().unwrap();
    match job["state"].as_str() {
        Some("succeeded") => {
            let done = format!("done {id} {}", job["result"]["pid"]);
            assert!(
                lines.contains(&done),
                "{stack}: {job}: no `{done}` in {lines:?}"
            );
        }
        _ => {
            let error = job["error"].as_str().unwrap_or_default();
            assert!(!error.is_empty(), "{stack}: failed without a reason: {job}");
        }
    }
}
