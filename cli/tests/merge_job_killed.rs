//! Real processes, on every available stack: an `adapter-registry worker` killed with
//! SIGKILL in the middle of a merge job leaves no model version; another worker takes the job
//! over once the lease ran out, and the version it publishes is byte-identical to
//! `merge --local`. The staging objects of both attempts are gone afterwards.
//!
//! The first worker runs with the fail point `job.tensor_written=sleep(400)` (the test
//! suite's `test-hooks` build of the server reads FAILPOINTS) so the kill lands mid-merge,
//! not after it.

mod support;

use std::time::{Duration, Instant};

use adapter_testkit::{Backend, ServerProcess, stacks, start_worker};
use serde_json::Value;
use support::{
    Env, merge_examples_locally, model_files, pull_model_files, push_llama_and_bot, tree,
};

fn worker(backend: &Backend, env: &[(&str, &str)]) -> std::process::Child {
    let args = [
        "--workers",
        "1",
        "--job-lease-ms",
        "1500",
        "--job-poll-ms",
        "50",
    ];
    start_worker(backend, &args, env)
}

fn job(env: &Env, id: &str) -> Value {
    env.ctl_json(&["jobs", "show", id], 0)
}

fn wait_until(env: &Env, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let j = job(env, id);
        if done(&j) {
            return j;
        }
        assert!(Instant::now() < deadline, "never {what}: {j}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Staged objects left under `jobs/` in the blob store.
fn staged(backend: &Backend) -> usize {
    if let Some(s3) = backend.s3() {
        return s3.keys("jobs/").len();
    }
    let root = backend.data_dir().join("blobs/jobs");
    if root.exists() { tree(&root).len() } else { 0 }
}

#[test]
fn a_worker_killed_mid_merge_leaves_no_version_and_another_completes_it() {
    for stack in stacks() {
        let backend = Backend::new(&stack);
        let server = ServerProcess::start_with(&backend, &["--workers", "0"], &[]);
        let env = Env {
            stack: stack.clone(),
            server,
            backend,
            home: tempfile::tempdir().unwrap(),
        };
        push_llama_and_bot(&env);
        let submitted = env.ctl_json(
            &[
                "merge",
                "acme/bot@1.0.0",
                "--as",
                "acme/merged@1.0.0",
                "--shard-size",
                "65536",
            ],
            0,
        );
        let id = submitted["id"].as_str().unwrap().to_owned();

        let mut slow = worker(
            &env.backend,
            &[("FAILPOINTS", "job.tensor_written=sleep(400)")],
        );
        wait_until(&env, &id, "mid-merge", |j| {
            j["state"] == "running" && j["progress"].as_f64().unwrap_or(0.0) > 0.06
        });
        slow.kill().unwrap();
        slow.wait().unwrap();
        assert_eq!(job(&env, &id)["state"], "running", "{stack}");
        let absent = env.ctl_json(&["show", "acme/merged@1.0.0", "--kind", "model"], 6);
        assert!(absent["error"].is_object(), "{stack}: {absent}");

        let mut second = worker(&env.backend, &[]);
        let done = wait_until(&env, &id, "finished", |j| {
            j["state"] != "running" && j["state"] != "queued"
        });
        second.kill().unwrap();
        second.wait().unwrap();
        assert_eq!(done["state"], "succeeded", "{stack}: {done}");
        assert_eq!(done["attempts"], 2, "{stack}: {done}");
        assert_eq!(staged(&env.backend), 0, "{stack}: staging objects left");

        let local = env.path("local");
        merge_examples_locally(&local, "65536");
        let pulled = pull_model_files(&env, "acme/merged@1.0.0", &env.path("pulled"));
        assert!(
            pulled == model_files(&local),
            "{stack}: differs from merge --local"
        );
        let versions = env.ctl_json(&["ls", "acme/merged", "--kind", "model"], 0);
        assert_eq!(
            versions["versions"].as_array().map(Vec::len),
            Some(1),
            "{stack}: {versions}"
        );
    }
}
