//! catalog-bench: catalogue throughput of the real server (issue 13's targets: ≥ 10,000 req/s
//! with p99 < 10 ms for a version lookup and a resolve, ≥ 5,000 req/s for search). The
//! baseline is measured in the same run, on the same server: `GET /healthz`, which does no
//! work, is the ceiling of this machine's HTTP stack and load generator.
//!
//! ```text
//! cargo build --release --workspace --bins
//! ./target/release/catalog-bench [--stack embedded|scaleout] [--seconds 5] [--connections 64]
//!                                [--writes-per-second N]
//! ```
//!
//! Catalogue answers are cached per process while the catalogue's generation counter holds
//! (docs/ARCHITECTURE.md, "What processes share"), so a steady catalogue measures the cached
//! path. `--writes-per-second N` posts N eval results a second during every measurement;
//! each moves the generation, so the figures then include recomputed answers (at 50/s on
//! 64 connections, most requests still hit; with a write before every read none would).
//!
//! Seeds 100 adapter repositories × 5 versions (3 namespaces) on the chosen stack (the
//! scale-out one reads `ADAPTER_REGISTRY_TEST_POSTGRES` and `ADAPTER_REGISTRY_TEST_S3_ENDPOINT`,
//! as the tests do), then for each route keeps `--connections` keep-alive connections busy
//! (one thread each, as `wrk -c` does) for `--seconds` and prints requests per second,
//! p50 and p99 latency, and the ratio to `/healthz`. When `wrk` is installed (Debian's `wrk`)
//! the same routes are first measured with `wrk -t2 -c64 --latency`, the load generator the
//! issue's figures came from. Exit status 2 if any answer was not 200.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use adapter_bench::conn::{Conn, put, put_example_adapter, put_file, stack_arg, start_server};
use adapter_testkit::{ServerProcess, Stack};
use anyhow::{Context, Result, bail};
use serde_json::json;

const REPOS: usize = 100;
const VERSIONS: usize = 5;

struct Outcome {
    requests: usize,
    failures: usize,
    /// Sorted latencies.
    latencies: Vec<Duration>,
    elapsed: Duration,
}

impl Outcome {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> Duration {
        let i = ((self.latencies.len() as f64 * p).ceil() as usize).saturating_sub(1);
        self.latencies.get(i).copied().unwrap_or_default()
    }
}

/// Keep `connections` connections busy for `seconds` with `paths` (round-robin).
fn load(
    addr: &str,
    token: &str,
    paths: &[String],
    connections: usize,
    seconds: u64,
) -> Result<Outcome> {
    let stop = Arc::new(AtomicBool::new(false));
    let paths = Arc::new(paths.to_vec());
    let started = Instant::now();
    let threads: Vec<_> = (0..connections)
        .map(|c| {
            let (stop, paths, addr, token) = (
                stop.clone(),
                paths.clone(),
                addr.to_owned(),
                token.to_owned(),
            );
            std::thread::spawn(move || -> Result<(Vec<Duration>, usize)> {
                let mut conn = Conn::open(&addr, &token)?;
                let mut lat = Vec::with_capacity(100_000);
                let mut failures = 0;
                let mut i = c;
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let (status, _) = conn.get(&paths[i % paths.len()])?;
                    lat.push(t.elapsed());
                    if status != 200 {
                        failures += 1;
                    }
                    i += 1;
                }
                Ok((lat, failures))
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    let mut failures = 0;
    for t in threads {
        let (lat, f) = t
            .join()
            .map_err(|_| anyhow::anyhow!("a load thread panicked"))??;
        latencies.extend(lat);
        failures += f;
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    Ok(Outcome {
        requests: latencies.len(),
        failures,
        latencies,
        elapsed,
    })
}

/// The same load with `wrk -t2 -c{connections} --latency` on the first path (when `wrk` is
/// installed): requests per second, p50, p99.
fn load_wrk(
    url: &str,
    token: &str,
    path: &str,
    connections: usize,
    seconds: u64,
) -> Result<(f64, Duration, Duration)> {
    let out = std::process::Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
        ])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .arg(format!("{url}{path}"))
        .output()
        .context("running wrk")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !text.contains("Requests/sec") {
        bail!("wrk: {text} {}", String::from_utf8_lossy(&out.stderr));
    }
    if text.contains("Non-2xx") {
        bail!("wrk saw answers other than 2xx: {text}");
    }
    let field = |prefix: &str| -> Option<&str> {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix))
            .map(str::trim)
    };
    let duration = |s: &str| -> Option<Duration> {
        let (n, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic())?);
        let n: f64 = n.parse().ok()?;
        let secs = match unit {
            "us" => n / 1e6,
            "ms" => n / 1e3,
            "s" => n,
            _ => return None,
        };
        Some(Duration::from_secs_f64(secs))
    };
    let rate: f64 = field("Requests/sec:")
        .and_then(|v| v.parse().ok())
        .context("wrk rate")?;
    let p50 = field("50%").and_then(duration).context("wrk p50")?;
    let p99 = field("99%").and_then(duration).context("wrk p99")?;
    Ok((rate, p50, p99))
}

fn seed(server: &ServerProcess, token: &str) -> Result<()> {
    let files = put_example_adapter(server, token)?;
    for r in 0..REPOS {
        for v in 0..VERSIONS {
            let notes = format!("repo {r} version {v}").into_bytes();
            let mut all = files.clone();
            all.push(put_file(server, token, "notes.txt", &notes)?);
            let manifest = json!({"schema": "adapter-registry.manifest.v1", "kind": "adapter",
                                  "files": all, "metadata": {"labels": {"team": format!("t{}", r % 7)}}});
            put(
                server,
                token,
                &format!("/v1/adapters/team-{}/bot-{r}/versions/1.{v}.0", r % 3),
                manifest.to_string().as_bytes(),
            )?;
        }
    }
    Ok(())
}

fn run() -> Result<bool> {
    let (mut stack, mut seconds, mut connections) = (Stack::Embedded, 5u64, 64usize);
    let mut writes_per_second = 0u64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().with_context(|| format!("{a} takes a value"));
        match a.as_str() {
            "--stack" => stack = stack_arg(&value()?)?,
            "--seconds" => seconds = value()?.parse()?,
            "--connections" => connections = value()?.parse()?,
            "--writes-per-second" => writes_per_second = value()?.parse()?,
            other => bail!("unknown argument {other}"),
        }
    }
    let (_backend, server, token) = start_server(&stack)?;
    let t = Instant::now();
    seed(&server, &token)?;
    println!(
        "catalog-bench on {stack}: {} versions seeded in {:.1} s; {connections} connections, {seconds} s per route",
        REPOS * VERSIONS,
        t.elapsed().as_secs_f64()
    );
    let addr = server.url.trim_start_matches("http://").to_owned();
    let stop_writes = Arc::new(AtomicBool::new(false));
    let writer = (writes_per_second > 0).then(|| {
        println!("with {writes_per_second} eval writes a second in the background");
        let (url, token, stop) = (server.url.clone(), token.clone(), stop_writes.clone());
        std::thread::spawn(move || background_writes(&url, &token, writes_per_second, &stop))
    });
    let routes: Vec<(&str, Vec<String>)> = vec![
        ("GET /healthz (baseline)", vec!["/healthz".into()]),
        (
            "version lookup",
            (0..REPOS)
                .map(|r| {
                    format!(
                        "/v1/adapters/team-{}/bot-{r}/versions/1.{}.0",
                        r % 3,
                        r % VERSIONS
                    )
                })
                .collect(),
        ),
        (
            "resolve ^1",
            (0..REPOS)
                .map(|r| format!("/v1/adapters/team-{}/bot-{r}/resolve/%5E1", r % 3))
                .collect(),
        ),
        (
            "search ?q=",
            (0..REPOS)
                .map(|r| format!("/v1/adapters?q=bot-{}", r % 20))
                .collect(),
        ),
    ];
    let wrk = std::process::Command::new("wrk")
        .arg("--version")
        .output()
        .is_ok();
    if wrk {
        println!("with wrk -t2 -c{connections} (one path per route):");
        println!("| route | req/s | p50 | p99 | vs /healthz |");
        println!("|---|---|---|---|---|");
        let mut baseline = None;
        for (name, paths) in &routes {
            let (rate, p50, p99) = load_wrk(&server.url, &token, &paths[0], connections, seconds)?;
            let base = *baseline.get_or_insert(rate);
            println!(
                "| {name} | {rate:.0} | {:.2} ms | {:.2} ms | {:.2} |",
                p50.as_secs_f64() * 1e3,
                p99.as_secs_f64() * 1e3,
                rate / base
            );
        }
        println!("with {connections} threads, one keep-alive connection each (all paths in turn):");
    }
    println!("| route | req/s | p50 | p99 | vs /healthz |");
    println!("|---|---|---|---|---|");
    let mut baseline = None;
    let mut clean = true;
    for (name, paths) in &routes {
        let o = load(&addr, &token, paths, connections, seconds)?;
        let base = *baseline.get_or_insert(o.rate());
        println!(
            "| {name} | {:.0} | {:.2} ms | {:.2} ms | {:.2} |",
            o.rate(),
            o.percentile(0.50).as_secs_f64() * 1e3,
            o.percentile(0.99).as_secs_f64() * 1e3,
            o.rate() / base
        );
        if o.failures > 0 {
            eprintln!(
                "{name}: {} of {} answers were not 200",
                o.failures, o.requests
            );
            clean = false;
        }
    }
    stop_writes.store(true, Ordering::Relaxed);
    if let Some(writer) = writer {
        let written = writer
            .join()
            .map_err(|_| anyhow::anyhow!("the writer panicked"))??;
        println!("background writes: {written} eval results posted");
    }
    Ok(clean)
}

/// Post one eval result to `team-0/bot-0@1.0.0` `per_second` times a second until `stop`.
fn background_writes(url: &str, token: &str, per_second: u64, stop: &AtomicBool) -> Result<u64> {
    let auth = format!("Bearer {token}");
    let path = format!("{url}/v1/adapters/team-0/bot-0/versions/1.0.0/evals");
    let period = Duration::from_secs_f64(1.0 / per_second as f64);
    let mut written = 0u64;
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let body = json!({"results": [{"benchmark": "bench", "metric": "n", "value": written}]});
        let r = adapter_testkit::http(
            "POST",
            &path,
            &[
                ("authorization", auth.as_str()),
                ("content-type", "application/json"),
            ],
            body.to_string().as_bytes(),
        );
        if r.status != 201 {
            bail!("posting an eval: {} {}", r.status, r.text());
        }
        written += 1;
        next += period;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    Ok(written)
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(e) => {
            eprintln!("catalog-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
