//! End to end: the real `adapter-registry` (on every available stack) driven by the real
//! `adapterctl`: push, pull, idempotency, conflicts, lock files, destinations, base identity.

mod support;

use adapter_testkit::stacks;
use serde_json::Value;
use support::{Env, copy_dir, examples, lora, tree};

#[test]
fn push_then_pull_is_byte_identical_and_a_second_push_uploads_nothing() {
    for stack in stacks() {
        let env = Env::new(&stack);
        let v = env.ctl_json(
            &["push", &lora(), "--name", "acme/bot", "--version", "1.0.0"],
            0,
        );
        assert_eq!(v["reference"], "acme/bot@1.0.0", "{stack}");
        assert_eq!(v["created"], true, "{stack}");
        let total: u64 = tree(&examples().join("tiny-llama-lora"))
            .iter()
            .map(|(_, b)| b.len() as u64)
            .sum();
        assert_eq!(v["uploaded_bytes"], total, "{stack}");
        // The base identity is unknown without --base/--base-dir: said so.
        assert!(
            v["warnings"].to_string().contains("identity is unknown"),
            "{stack}: {v}"
        );
        let digest = v["manifest_digest"].as_str().unwrap().to_owned();

        let out = env.path("out");
        let p = env.ctl_json(&["pull", "acme/bot@1.0.0", "-o", out.to_str().unwrap()], 0);
        assert_eq!(p["manifest_digest"], digest.as_str(), "{stack}");
        assert_eq!(
            tree(&out),
            tree(&examples().join("tiny-llama-lora")),
            "{stack}"
        );
        // No partial directory left next to it.
        let leftovers: Vec<_> = std::fs::read_dir(env.home.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains("partial"))
            .collect();
        assert!(leftovers.is_empty(), "{stack}: {leftovers:?}");
        // What the pull verified went into the digest cache: pushing the pulled copy hashes
        // nothing.
        let copy = env.ctl_json(
            &[
                "push",
                out.to_str().unwrap(),
                "--name",
                "acme/bot-copy",
                "--version",
                "1.0.0",
            ],
            0,
        );
        assert_eq!(copy["hashed_bytes"], 0, "{stack}: {copy}");
        assert_eq!(copy["cache_hits"], 2, "{stack}: {copy}");
        assert_eq!(copy["manifest_digest"], digest.as_str(), "{stack}");

        // A new version with the same files: nothing to upload, same files deduplicated.
        let v2 = env.ctl_json(
            &["push", &lora(), "--name", "acme/bot", "--version", "1.1.0"],
            0,
        );
        assert_eq!(v2["uploaded_bytes"], 0, "{stack}: {v2}");
        assert_eq!(v2["uploaded_files"], 0, "{stack}: {v2}");
        assert_eq!(v2["skipped_files"], 2, "{stack}: {v2}");
        // The digest cache answered: nothing hashed twice.
        assert_eq!(v2["hashed_bytes"], 0, "{stack}: {v2}");
        // Same manifest content, so the same manifest digest (the version is not in it).
        assert_eq!(v2["manifest_digest"], digest.as_str(), "{stack}");

        // The latest is 1.1.0; ls and show agree.
        let s = env.ctl_json(&["show", "acme/bot"], 0);
        assert_eq!(s["version"], "1.1.0", "{stack}");
        assert_eq!(
            s["manifest"]["files"].as_array().unwrap().len(),
            2,
            "{stack}"
        );
        let l = env.ctl_json(&["ls", "acme/bot"], 0);
        let versions: Vec<&str> = l["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["version"].as_str().unwrap())
            .collect();
        assert_eq!(versions, ["1.1.0", "1.0.0"], "{stack}");
        let l = env.ctl_json(&["ls"], 0);
        assert_eq!(l["repositories"][0]["name"], "bot", "{stack}: {l}");
        let l = env.ctl_json(&["ls", "nobody"], 0);
        assert_eq!(l["repositories"], Value::Array(vec![]), "{stack}: {l}");
        let text = env.ctl(&["ls", "acme/bot"]);
        assert!(
            String::from_utf8_lossy(&text.stdout).contains("1.0.0"),
            "{stack}"
        );
    }
}

#[test]
fn republish_identical_is_fine_and_other_content_is_a_conflict() {
    for stack in stacks() {
        let env = Env::new(&stack);
        env.ctl_json(
            &["push", &lora(), "--name", "acme/bot", "--version", "1.0.0"],
            0,
        );
        let again = env.ctl_json(
            &["push", &lora(), "--name", "acme/bot", "--version", "1.0.0"],
            0,
        );
        assert_eq!(again["created"], false, "{stack}");

        let changed = env.path("changed");
        copy_dir(&examples().join("tiny-llama-lora"), &changed);
        std::fs::write(changed.join("README.md"), "# notes\n").unwrap();
        let args = [
            "push",
            changed.to_str().unwrap(),
            "--name",
            "acme/bot",
            "--version",
            "1.0.0",
        ];
        let e = env.ctl_json(&args, 5);
        assert_eq!(e["error"]["code"], "version_exists", "{stack}: {e}");
        let out = env.ctl(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("already exists with other content")
                && stderr.contains("(version_exists)"),
            "{stack}: {stderr}"
        );
        // Under a new version it goes through, and pulls back with the README.
        env.ctl_json(
            &[
                "push",
                changed.to_str().unwrap(),
                "--name",
                "acme/bot",
                "--version",
                "1.0.1",
            ],
            0,
        );
        let out = env.path("out");
        env.ctl_json(&["pull", "acme/bot@1.0.1", "-o", out.to_str().unwrap()], 0);
        assert_eq!(tree(&out), tree(&changed), "{stack}");
    }
}

#[test]
fn hostile_references_are_refused_before_any_request() {
    // No server at all: a request would be exit 4, a refusal is exit 2.
    let home = tempfile::tempdir().unwrap();
    for bad in [
        "../x",
        "a/b/c",
        "A/b",
        "a/b@",
        "a/b@v1.2.3",
        "a/b@sha256:00",
        "/b",
        "a/",
        "a\\b/c",
    ] {
        for args in [
            vec!["pull", bad, "-o", "out"],
            vec!["show", bad],
            vec!["push", ".", "--name", bad, "--version", "1.0.0"],
        ] {
            let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_adapterctl"));
            cmd.args(["--url", "http://127.0.0.1:9", "--json"])
                .args(&args);
            cmd.current_dir(home.path());
            support::isolate(&mut cmd, home.path());
            let out = cmd.output().unwrap();
            assert_eq!(
                out.status.code(),
                Some(2),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stdout)
            );
            let v = support::json_of(&out);
            assert_eq!(v["error"]["code"], "usage", "{args:?}");
        }
    }
    assert!(!home.path().join("out").exists());
    // And a bad version.
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_adapterctl"));
    cmd.args([
        "--url",
        "http://127.0.0.1:9",
        "push",
        ".",
        "--name",
        "a/b",
        "--version",
        "1.0",
    ]);
    support::isolate(&mut cmd, home.path());
    assert_eq!(cmd.output().unwrap().status.code(), Some(2));
}

#[test]
fn pull_refuses_a_different_destination_without_force() {
    for stack in stacks() {
        let env = Env::new(&stack);
        env.ctl_json(
            &["push", &lora(), "--name", "acme/bot", "--version", "1.0.0"],
            0,
        );
        let out = env.path("out");
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("mine.txt"), "keep me").unwrap();
        let o = out.to_str().unwrap();
        let e = env.ctl_json(&["pull", "acme/bot@1.0.0", "-o", o], 5);
        assert!(
            e["error"]["message"].as_str().unwrap().contains("--force"),
            "{stack}: {e}"
        );
        assert_eq!(
            std::fs::read_to_string(out.join("mine.txt")).unwrap(),
            "keep me"
        );

        let v = env.ctl_json(&["pull", "acme/bot@1.0.0", "-o", o, "--force"], 0);
        assert_eq!(v["up_to_date"], false, "{stack}");
        assert_eq!(
            tree(&out),
            tree(&examples().join("tiny-llama-lora")),
            "{stack}"
        );

        // Exactly the same files: success without downloading anything.
        let v = env.ctl_json(&["pull", "acme/bot@1.0.0", "-o", o], 0);
        assert_eq!(v["up_to_date"], true, "{stack}");
        assert_eq!(v["downloaded_bytes"], 0, "{stack}");

        // An existing empty directory is fine.
        let empty = env.path("empty");
        std::fs::create_dir_all(&empty).unwrap();
        env.ctl_json(&["pull", "acme/bot", "-o", empty.to_str().unwrap()], 0);
        assert_eq!(tree(&empty), tree(&out), "{stack}");

        // Unknown things are "not found" (6), in either kind.
        let e = env.ctl_json(
            &[
                "pull",
                "acme/nothing",
                "-o",
                env.path("x").to_str().unwrap(),
            ],
            6,
        );
        assert!(e["error"]["code"].is_string(), "{stack}");
        env.ctl_json(
            &[
                "pull",
                "acme/bot@9.9.9",
                "-o",
                env.path("x").to_str().unwrap(),
            ],
            6,
        );
        env.ctl_json(
            &[
                "pull",
                "acme/bot",
                "--kind",
                "model",
                "-o",
                env.path("x").to_str().unwrap(),
            ],
            6,
        );
        assert!(!env.path("x").exists());
    }
}

#[test]
fn lock_then_locked_pulls_the_same_version() {
    for stack in stacks() {
        let env = Env::new(&stack);
        env.ctl_json(
            &["push", &lora(), "--name", "acme/bot", "--version", "1.0.0"],
            0,
        );
        let lock = env.path("deploy.lock");
        let l = lock.to_str().unwrap();
        let first = env.ctl_json(
            &[
                "pull",
                "acme/bot@^1",
                "-o",
                env.path("a").to_str().unwrap(),
                "--lock",
                l,
            ],
            0,
        );
        let text = std::fs::read_to_string(&lock).unwrap();
        assert!(
            text.contains("[\"acme/bot\"]") && text.contains("version = \"1.0.0\""),
            "{text}"
        );

        // A newer version appears; the lock still pulls 1.0.0 by its manifest digest.
        let changed = env.path("changed");
        copy_dir(&examples().join("tiny-llama-lora"), &changed);
        std::fs::write(changed.join("README.md"), "v2\n").unwrap();
        env.ctl_json(
            &[
                "push",
                changed.to_str().unwrap(),
                "--name",
                "acme/bot",
                "--version",
                "1.1.0",
            ],
            0,
        );
        let locked = env.ctl_json(
            &[
                "pull",
                "acme/bot",
                "-o",
                env.path("b").to_str().unwrap(),
                "--locked",
                l,
            ],
            0,
        );
        assert_eq!(locked["version"], "1.0.0", "{stack}");
        assert_eq!(
            locked["manifest_digest"], first["manifest_digest"],
            "{stack}"
        );
        assert_eq!(
            tree(&env.path("b")),
            tree(&examples().join("tiny-llama-lora")),
            "{stack}"
        );
        // Without the lock the latest wins.
        let latest = env.ctl_json(
            &["pull", "acme/bot", "-o", env.path("c").to_str().unwrap()],
            0,
        );
        assert_eq!(latest["version"], "1.1.0", "{stack}");

        // A lock that pins 1.0.0 to another digest is a verification failure (7).
        let other = latest["manifest_digest"].as_str().unwrap();
        let first_digest = first["manifest_digest"].as_str().unwrap();
        std::fs::write(&lock, text.replace(first_digest, other)).unwrap();
        env.ctl_json(
            &[
                "pull",
                "acme/bot",
                "-o",
                env.path("d").to_str().unwrap(),
                "--locked",
                l,
            ],
            7,
        );
        assert!(!env.path("d").exists());
        // A repository missing from the lock, or a selector with --locked: usage errors.
        env.ctl_json(
            &[
                "pull",
                "acme/other",
                "-o",
                env.path("d").to_str().unwrap(),
                "--locked",
                l,
            ],
            2,
        );
        env.ctl_json(
            &[
                "pull",
                "acme/bot@1.0.0",
                "-o",
                env.path("d").to_str().unwrap(),
                "--locked",
                l,
            ],
            2,
        );
        std::fs::write(&lock, "garbage [").unwrap();
        env.ctl_json(
            &[
                "pull",
                "acme/bot",
                "-o",
                env.path("d").to_str().unwrap(),
                "--locked",
                l,
            ],
            3,
        );
    }
}

#[test]
fn push_refuses_broken_adapters_and_pickles() {
    for stack in stacks() {
        let env = Env::new(&stack);
        // A pickle next to the adapter: refused (1), nothing published.
        let dir = env.path("pickled");
        copy_dir(&examples().join("tiny-llama-lora"), &dir);
        std::fs::write(dir.join("adapter_model.bin"), b"\x80\x04not really").unwrap();
        let e = env.ctl_json(
            &[
                "push",
                dir.to_str().unwrap(),
                "--name",
                "acme/bot",
                "--version",
                "1.0.0",
            ],
            1,
        );
        assert!(
            e["error"]["message"].as_str().unwrap().contains("pickle"),
            "{stack}: {e}"
        );
        // An adapter checked against a base that lacks its modules: errors, exit 1.
        let small_base = env.path("small-base");
        support::big_model(&small_base, 16, 1);
        env.ctl_json(
            &[
                "push",
                &lora(),
                "--name",
                "acme/bot",
                "--version",
                "1.0.0",
                "--base-dir",
                small_base.to_str().unwrap(),
            ],
            1,
        );
        env.ctl_json(&["show", "acme/bot"], 6);
        // Flags for the wrong kind: usage errors.
        env.ctl_json(
            &[
                "push",
                &lora(),
                "--name",
                "acme/bot",
                "--version",
                "1.0.0",
                "--headers-only",
            ],
            2,
        );
        env.ctl_json(
            &[
                "push",
                small_base.to_str().unwrap(),
                "--name",
                "acme/m",
                "--version",
                "1.0.0",
                "--base",
                "a/b",
            ],
            2,
        );
    }
}
