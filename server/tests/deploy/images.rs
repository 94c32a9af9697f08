//! deploy/Dockerfile and deploy/Dockerfile.cuda.

use crate::defs::{assert_flags_of, assert_known_env_names, flag_values, port_of};
use crate::read;

/// A Dockerfile's instructions (continuation lines joined, comments dropped).
pub fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && current.is_empty()) {
            continue;
        }
        match t.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(t);
                let (op, args) = current.split_once(' ').unwrap_or((&current, ""));
                out.push((op.to_uppercase(), args.trim().to_owned()));
                current.clear();
            }
        }
    }
    out
}

pub fn exec_form(args: &str, ctx: &str) -> Vec<String> {
    serde_json::from_str(args)
        .unwrap_or_else(|e| panic!("{ctx}: `{args}` is not the exec (JSON) form: {e}"))
}

pub fn only(instrs: &[(String, String)], op: &str, file: &str) -> String {
    let found: Vec<_> = instrs.iter().filter(|(o, _)| o == op).collect();
    assert_eq!(found.len(), 1, "{file}: expected one {op}");
    found[0].1.clone()
}

/// The port deploy/Dockerfile exposes (and everything else must use).
pub fn exposed_port() -> u16 {
    let instrs = instructions(&read("deploy/Dockerfile"));
    only(&instrs, "EXPOSE", "deploy/Dockerfile")
        .trim_end_matches("/tcp")
        .parse()
        .expect("EXPOSE is one port")
}

#[test]
fn dockerfiles_match_the_binaries() {
    let port = exposed_port();
    let file = "deploy/Dockerfile";
    let text = read(file);
    let instrs = instructions(&text);
    assert_known_env_names(&text, file);
    assert_eq!(
        exec_form(&only(&instrs, "ENTRYPOINT", file), file),
        ["adapter-registry"]
    );
    let cmd = exec_form(&only(&instrs, "CMD", file), file);
    assert_eq!(cmd[0], "serve", "{file}: CMD");
    assert_flags_of("serve", &cmd[1..], file);
    let listen = flag_values(&cmd)["--listen"]
        .clone()
        .expect("--listen ADDR");
    assert_eq!(port_of(&listen), port, "{file}: --listen and EXPOSE");
    let health = only(&instrs, "HEALTHCHECK", file);
    assert!(
        health.contains(&format!(":{port}/healthz")),
        "{file}: HEALTHCHECK {health}"
    );
    assert!(
        text.contains("ADAPTER_REGISTRY_DATA_DIR=/data")
            && only(&instrs, "VOLUME", file) == "/data",
        "{file}: the data directory is the volume /data"
    );
    assert_eq!(only(&instrs, "USER", file), "10001:10001", "{file}: USER");
    assert!(
        text.contains("cargo build --release --locked"),
        "{file}: release build with --locked"
    );

    let file = "deploy/Dockerfile.cuda";
    let text = read(file);
    let instrs = instructions(&text);
    assert_known_env_names(&text, file);
    assert_eq!(
        exec_form(&only(&instrs, "ENTRYPOINT", file), file),
        ["adapter-registry", "worker"]
    );
    if let Some((_, cmd)) = instrs.iter().find(|(op, _)| op == "CMD") {
        assert_flags_of("worker", &exec_form(cmd, file), file);
    }
    assert_eq!(only(&instrs, "USER", file), "10001:10001", "{file}: USER");
    // The feature it builds with exists: `adapter-core/cuda` → core/Cargo.toml [features].
    let features = instrs
        .iter()
        .find_map(|(op, args)| {
            (op == "ARG")
                .then(|| args.strip_prefix("CARGO_FEATURES="))
                .flatten()
        })
        .expect("ARG CARGO_FEATURES=…");
    for feature in features.split([',', ' ']).filter(|f| !f.is_empty()) {
        let (package, name) = feature
            .split_once('/')
            .unwrap_or(("adapter-registry", feature));
        let manifest = match package {
            "adapter-core" => read("core/Cargo.toml"),
            "adapter-registry" => read("server/Cargo.toml"),
            other => panic!("{file}: feature of an unexpected package {other}"),
        };
        let features_table = manifest
            .split_once("[features]")
            .map(|(_, rest)| rest.split("\n[").next().unwrap_or(""))
            .unwrap_or("");
        assert!(
            features_table
                .lines()
                .any(|l| l.starts_with(&format!("{name} = ["))),
            "{file}: {package} has no feature `{name}`"
        );
    }
}
