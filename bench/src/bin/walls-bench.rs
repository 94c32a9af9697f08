//! walls-bench: what the namespace walls on blobs cost (docs/API.md, "Authentication and
//! authorization": a blob is readable through a version the caller may read, or its own
//! upload). The baseline is measured in the same run, on the same server and data: an admin
//! over all namespaces reads every stored blob through the query the registry used before
//! the walls (is it stored?), a namespace-limited token through the walled one (is it
//! listed by a version in my namespaces, or mine?).
//!
//! ```text
//! cargo build --release --workspace --bins
//! ./target/release/walls-bench [--models 2000]
//! ```
//!
//! Seeds `--models` one-file models over 10 namespaces on the embedded stack (SQLite +
//! local files), then times, admin vs a writer of one namespace, best of 3 rounds:
//! * `POST /v1/blobs/check` of 10,000 digests (every stored one plus unknown ones): what a
//!   push of a very large directory asks;
//! * 200 × `POST /v1/blobs/check` of 2 digests: what the re-push of an unchanged adapter
//!   directory asks;
//! * 200 × `HEAD /v1/blobs/{digest}` of blobs the writer may read: what a pull asks per file.
//!
//! Prints each time and the ratio walled / unscoped. Exit status 0 when every request
//! answered as expected, 2 otherwise.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use adapter_core::digest::Digest;
use adapter_testkit::http;
use adapter_testkit::{Backend, ServerProcess, Stack};
use anyhow::{Context, Result, bail, ensure};
use serde_json::json;

const NAMESPACES: usize = 10;
const CHECK_DIGESTS: usize = 10_000;
const REPEAT: usize = 200;
const ROUNDS: usize = 3;

/// A one-tensor safetensors file whose bytes differ for every `i`.
fn weights(i: u64) -> Vec<u8> {
    let header = json!({ "w": { "dtype": "U8", "shape": [8], "data_offsets": [0, 8] } });
    let mut h = header.to_string().into_bytes();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    out.extend_from_slice(&i.to_le_bytes());
    out
}

fn ok(status: u16, expected: u16, what: &str, body: &str) -> Result<()> {
    if status != expected {
        bail!("{what}: {status} (expected {expected}): {body}");
    }
    Ok(())
}

/// The best of [`ROUNDS`] runs of `f`.
fn best(mut f: impl FnMut() -> Result<()>) -> Result<Duration> {
    let mut best = Duration::MAX;
    for _ in 0..ROUNDS {
        let t = Instant::now();
        f()?;
        best = best.min(t.elapsed());
    }
    Ok(best)
}

fn run() -> Result<()> {
    let mut models = 2000usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--models" => {
                models = args
                    .next()
                    .context("--models takes a number")?
                    .parse()
                    .context("--models takes a number")?;
            }
            _ => bail!("usage: walls-bench [--models N]"),
        }
    }
    println!("machine: {}", adapter_bench::machine());
    let backend = Backend::new(&Stack::Embedded);
    let server = ServerProcess::start_with(&backend, &["--workers", "0"], &[]);
    let url = server.url.clone();
    let admin = format!("Bearer {}", server.token());
    let admin = [("authorization", admin.as_str())];

    let created = http(
        "POST",
        &format!("{url}/v1/tokens"),
        &[admin[0], ("content-type", "application/json")],
        json!({"name": "bench", "scope": "write", "namespaces": ["team0"]})
            .to_string()
            .as_bytes(),
    );
    ok(created.status, 201, "creating a token", &created.text())?;
    let scoped = format!(
        "Bearer {}",
        created.json()["token"].as_str().unwrap_or_default()
    );
    let scoped = [("authorization", scoped.as_str())];

    let seeding = Instant::now();
    let mut digests = Vec::with_capacity(models);
    for i in 0..models {
        let bytes = weights(i as u64);
        let d = Digest::of_bytes(&bytes);
        let put = http("PUT", &format!("{url}/v1/blobs/{d}"), &admin, &bytes);
        ok(put.status, 201, "uploading", &put.text())?;
        let manifest = json!({
            "schema": "adapter-registry.manifest.v1",
            "kind": "model",
            "files": [{"path": "model.safetensors", "size": bytes.len(), "digest": d.to_string()}],
            "metadata": {},
        });
        let path = format!("{url}/v1/models/team{}/m{i}/versions/1.0.0", i % NAMESPACES);
        let published = http("PUT", &path, &admin, manifest.to_string().as_bytes());
        ok(published.status, 201, "publishing", &published.text())?;
        digests.push(d.to_string());
    }
    println!(
        "seeded {models} one-file models over {NAMESPACES} namespaces in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );
    let mine: Vec<&String> = digests.iter().step_by(NAMESPACES).collect();
    ensure!(!mine.is_empty(), "no blob in team0: seed more models");

    let check_all: Vec<String> = digests
        .iter()
        .cloned()
        .chain(
            (0..CHECK_DIGESTS.saturating_sub(models))
                .map(|i| Digest::of_bytes(format!("absent {i}").as_bytes()).to_string()),
        )
        .take(CHECK_DIGESTS)
        .collect();
    let big = json!({ "digests": check_all }).to_string();
    let small = json!({ "digests": [mine[0], mine[mine.len() - 1]] }).to_string();
    let check = |who: &[(&str, &str)], body: &str, missing: usize| -> Result<()> {
        let mut headers = who.to_vec();
        headers.push(("content-type", "application/json"));
        let r = http(
            "POST",
            &format!("{url}/v1/blobs/check"),
            &headers,
            body.as_bytes(),
        );
        ok(r.status, 200, "check", &r.text())?;
        let got = r.json()["missing"].as_array().map_or(0, Vec::len);
        ensure!(got == missing, "check: {got} missing, expected {missing}");
        Ok(())
    };
    let unknown = check_all.len() - models.min(CHECK_DIGESTS);
    let hidden = models.min(CHECK_DIGESTS) - mine.len();
    let big_admin = best(|| check(&admin, &big, unknown))?;
    let big_scoped = best(|| check(&scoped, &big, unknown + hidden))?;
    let small_admin = best(|| (0..REPEAT).try_for_each(|_| check(&admin, &small, 0)))?;
    let small_scoped = best(|| (0..REPEAT).try_for_each(|_| check(&scoped, &small, 0)))?;
    let head = |who: &[(&str, &str)]| -> Result<()> {
        for d in mine.iter().cycle().take(REPEAT) {
            let r = http("HEAD", &format!("{url}/v1/blobs/{d}"), who, b"");
            ok(r.status, 200, "HEAD", &r.text())?;
        }
        Ok(())
    };
    let head_admin = best(|| head(&admin))?;
    let head_scoped = best(|| head(&scoped))?;

    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let line = |what: &str, a: Duration, s: Duration| {
        println!(
            "{what:<44} unscoped {:>8.2} ms   walled {:>8.2} ms   = {:.2}x",
            ms(a),
            ms(s),
            s.as_secs_f64() / a.as_secs_f64()
        );
    };
    line(
        &format!("check of {} digests", check_all.len()),
        big_admin,
        big_scoped,
    );
    line(
        &format!("{REPEAT} x check of 2 digests (re-push)"),
        small_admin,
        small_scoped,
    );
    line(
        &format!("{REPEAT} x HEAD /v1/blobs (pull)"),
        head_admin,
        head_scoped,
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("walls-bench: {e:#}");
            ExitCode::from(2)
        }
    }
}
