//! Config file and environment precedence, seen from the outside (no server needed: the
//! errors name the URL that was tried).

use std::process::{Command, Output};

mod support;

fn run(home: &std::path::Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_adapterctl"));
    support::isolate(&mut cmd, home);
    cmd.envs(env.iter().copied())
        .args(args)
        .args(["--json", "show", "a/b"]);
    cmd.output().unwrap()
}

fn message(out: &Output) -> String {
    support::json_of(out)["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn flag_env_file_default_precedence() {
    let home = tempfile::tempdir().unwrap();
    let cfg = home.path().join("config/adapterctl");
    std::fs::create_dir_all(&cfg).unwrap();

    // Default.
    let out = run(home.path(), &[], &[]);
    assert_eq!(out.status.code(), Some(4));
    assert!(
        message(&out).contains("127.0.0.1:8080"),
        "{}",
        message(&out)
    );

    std::fs::write(cfg.join("config.toml"), "url = \"http://127.0.0.1:7\"\n").unwrap();
    let out = run(home.path(), &[], &[]);
    assert!(message(&out).contains("127.0.0.1:7/"), "{}", message(&out));

    let out = run(
        home.path(),
        &[("ADAPTERCTL_URL", "http://127.0.0.1:6")],
        &[],
    );
    assert!(message(&out).contains("127.0.0.1:6/"), "{}", message(&out));

    let out = run(
        home.path(),
        &[("ADAPTERCTL_URL", "http://127.0.0.1:6")],
        &["--url", "http://127.0.0.1:5"],
    );
    assert!(message(&out).contains("127.0.0.1:5/"), "{}", message(&out));

    // A malformed file is a clear usage error naming the file.
    std::fs::write(cfg.join("config.toml"), "url = [\n").unwrap();
    let out = run(home.path(), &[], &[]);
    assert_eq!(out.status.code(), Some(2));
    let m = message(&out);
    assert!(m.contains("config.toml") && m.contains("malformed"), "{m}");
    std::fs::write(cfg.join("config.toml"), "tokn = \"x\"\n").unwrap();
    assert_eq!(run(home.path(), &[], &[]).status.code(), Some(2));
}
