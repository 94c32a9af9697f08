//! End to end: the real `adapter-registry` (on every available stack, with its in-process
//! workers) and the real `adapterctl`: `validate --wait` (compatible: exit 0; incompatible:
//! exit 11), and `jobs ls|show|logs|watch|cancel` on the job it ran.

mod support;

use adapter_testkit::stacks;
use support::{Env, big_model, push_llama_and_bot};

fn run(env: &Env, args: &[&str], code: i32) -> (String, String) {
    let out = env.ctl(args);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert_eq!(
        out.status.code(),
        Some(code),
        "{args:?}\n{stdout}\n{stderr}"
    );
    (stdout, stderr)
}

#[test]
fn validate_and_jobs_end_to_end() {
    for stack in stacks() {
        let env = Env::new(&stack);
        push_llama_and_bot(&env);

        // The examples are a compatible pair.
        let report = env.ctl_json(
            &[
                "validate",
                "acme/bot@1.0.0",
                "--base",
                "acme/llama@^1",
                "--wait",
            ],
            0,
        );
        assert_eq!(report["verdict"], "compatible", "{stack}: {report}");
        assert!(
            report["modules"].as_array().is_some_and(|m| !m.is_empty()),
            "{report}"
        );
        let (out, _) = run(
            &env,
            &[
                "validate",
                "acme/bot@1.0.0",
                "--base",
                "acme/llama@1.0.0",
                "--wait",
            ],
            0,
        );
        assert!(
            out.contains("acme/bot@1.0.0 against acme/llama@1.0.0: compatible"),
            "{stack}: {out}"
        );

        // One job did it all: publishing queued it, both validates found it (same key).
        let list = env.ctl_json(&["jobs", "ls", "--kind", "validate"], 0);
        let jobs = list["jobs"].as_array().unwrap();
        assert_eq!(jobs.len(), 1, "{stack}: {list}");
        let id = jobs[0]["id"].as_str().unwrap().to_owned();
        let shown = env.ctl_json(&["jobs", "show", &id], 0);
        assert_eq!(shown["state"], "succeeded", "{shown}");
        let (logs, _) = run(&env, &["jobs", "logs", &id], 0);
        assert!(logs.contains("verdict: compatible"), "{logs}");
        // The catalogue finds the adapter by the base it was validated against.
        let found = env.ctl_json(&["ls", "--compatible-with", "acme/llama"], 0);
        let repos = found["repositories"].as_array().unwrap();
        assert_eq!(repos.len(), 1, "{stack}: {found}");
        assert_eq!(
            (repos[0]["namespace"].as_str(), repos[0]["name"].as_str()),
            (Some("acme"), Some("bot")),
            "{stack}: {found}"
        );
        let none = env.ctl_json(&["ls", "--compatible-with", "acme/other"], 0);
        assert_eq!(
            none["repositories"],
            serde_json::json!([]),
            "{stack}: {none}"
        );
        let watched = env.ctl_json(&["jobs", "watch", &id], 0);
        assert_eq!(watched["id"], id.as_str());
        let e = env.ctl_json(&["jobs", "cancel", &id], 5);
        assert_eq!(e["error"]["code"], "job_finished", "{e}");

        // Against a model without the adapted modules: incompatible, exit 11, reasons shown.
        let other = env.path("other");
        big_model(&other, 64, 1);
        let other = other.display().to_string();
        env.ctl_json(
            &["push", &other, "--name", "acme/other", "--version", "1.0.0"],
            0,
        );
        let report = env.ctl_json(
            &[
                "validate",
                "acme/bot@1.0.0",
                "--base",
                "acme/other@1.0.0",
                "--wait",
            ],
            11,
        );
        assert_eq!(report["verdict"], "incompatible", "{stack}: {report}");
        let (out, _) = run(
            &env,
            &[
                "validate",
                "acme/bot@1.0.0",
                "--base",
                "acme/other@1.0.0",
                "--wait",
            ],
            11,
        );
        assert!(out.contains(": incompatible"), "{out}");
        assert!(out.contains("  error: "), "{out}");

        // Without --wait: the job's id; bad references are usage errors; unknown ones 6.
        let queued = env.ctl_json(
            &["validate", "acme/bot@1.0.0", "--base", "acme/other@1.0.0"],
            0,
        );
        assert!(
            queued["id"].as_str().is_some_and(|i| i.starts_with("job_")),
            "{queued}"
        );
        run(&env, &["validate", "not a ref", "--base", "acme/llama"], 2);
        run(
            &env,
            &["validate", "acme/bot@1.0.0", "--base", "acme/nope"],
            6,
        );
        run(&env, &["jobs", "ls", "--state", "done"], 2);
        run(&env, &["jobs", "show", "job_nope"], 6);
    }
}
