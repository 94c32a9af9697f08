//! End to end with a namespace-limited token (docs/API.md: namespaces are a wall for jobs
//! and blobs), on every available stack: the real server with its in-process workers and the
//! real `adapterctl`. A writer of `team` pushes the bundled base and adapter, whose files the
//! admin already stored for `acme`: they count as missing for it, so they go up again
//! (verified; one stored copy), and an unchanged re-push sends nothing. It pulls them back
//! byte-identical, validates with `--wait`, and lists and shows its jobs; the admin's jobs in
//! `acme` stay out of its view, and `acme`'s versions are refused.

mod support;

use adapter_testkit::{http, stacks};
use support::{Env, examples, push_llama_and_bot, tree};

#[test]
fn a_scoped_writer_pushes_pulls_and_runs_jobs_in_its_namespace_only() {
    for stack in stacks() {
        let env = Env::new(&stack);
        push_llama_and_bot(&env);
        let (name, value) = env.server.auth();
        let created = http(
            "POST",
            &format!("{}/v1/tokens", env.server.url),
            &[(name, value.as_str()), ("content-type", "application/json")],
            br#"{"name": "team-ci", "scope": "write", "namespaces": ["team"]}"#,
        );
        assert_eq!(created.status, 201, "{stack}: {}", created.text());
        let token = created.json()["token"].as_str().unwrap().to_owned();
        let team = |args: &[&str], code: i32| {
            let mut all = vec!["--token", token.as_str()];
            all.extend_from_slice(args);
            env.ctl_json(&all, code)
        };
        let dir = |name: &str| examples().join(name).display().to_string();

        let base = team(
            &[
                "push",
                &dir("tiny-llama"),
                "--name",
                "team/llama",
                "--version",
                "1.0.0",
            ],
            0,
        );
        assert_eq!(base["skipped_files"], 0, "{stack}: {base}");
        let pushed = team(
            &[
                "push",
                &dir("tiny-llama-lora"),
                "--name",
                "team/bot",
                "--version",
                "1.0.0",
                "--base",
                "team/llama@1.0.0",
            ],
            0,
        );
        assert_eq!(pushed["uploaded_files"], 2, "{stack}: {pushed}");
        let again = team(
            &[
                "push",
                &dir("tiny-llama-lora"),
                "--name",
                "team/bot",
                "--version",
                "1.0.1",
            ],
            0,
        );
        assert_eq!(again["uploaded_files"], 0, "{stack}: {again}");

        let out = env.path("pulled");
        team(&["pull", "team/bot@1.0.0", "-o", out.to_str().unwrap()], 0);
        assert!(
            tree(&out) == tree(&examples().join("tiny-llama-lora")),
            "{stack}: the pulled adapter differs"
        );

        let report = team(
            &[
                "validate",
                "team/bot@1.0.0",
                "--base",
                "team/llama@1.0.0",
                "--wait",
            ],
            0,
        );
        assert_eq!(report["verdict"], "compatible", "{stack}: {report}");
        // Its jobs only: acme's validation (queued when the admin pushed) is not there.
        let mine = team(&["jobs", "ls"], 0);
        let jobs = mine["jobs"].as_array().unwrap();
        assert!(!jobs.is_empty(), "{stack}: {mine}");
        for j in jobs {
            for input in j["inputs"].as_object().unwrap().values() {
                let r = input["reference"].as_str().unwrap();
                assert!(r.starts_with("team/"), "{stack}: {j}");
            }
            team(&["jobs", "show", j["id"].as_str().unwrap()], 0);
        }
        let all = env.ctl_json(&["jobs", "ls"], 0);
        let acme_job = all["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["inputs"]["adapter"]["reference"] == "acme/bot@1.0.0")
            .unwrap_or_else(|| panic!("{stack}: no acme job: {all}"))["id"]
            .as_str()
            .unwrap()
            .to_owned();
        // Not found, as for an id that does not exist (exit 6).
        team(&["jobs", "show", &acme_job], 6);
        // acme's versions are not its to read (exit 8).
        team(&["show", "acme/bot@1.0.0"], 8);
    }
}
