//! ui-bench: the pages at 10,000 repositories (issue 19's target: the index and search pages
//! answer with p99 < 50 ms on SQLite). The baselines are measured in the same run, on the
//! same server: `GET /healthz` (no work: the HTTP stack's floor) and `GET /v1/adapters` with
//! the same query (the JSON search the page calls; served from the catalogue cache after its
//! first request, while the page searches every time), so each page prints its cost over
//! them.
//!
//! ```text
//! cargo build --release --workspace --bins
//! ./target/release/ui-bench [--stack embedded|scaleout] [--repos 10000] [--requests 300]
//! ```
//!
//! Seeds `--repos` adapter repositories (one version each, 10 namespaces, labels, every
//! fifth with a `q_proj`-only target) by publishing through the API (on PostgreSQL, then
//! `ANALYZE`, as autovacuum would have by the time a catalogue is that size), then asks each route
//! `--requests` times in turn on one keep-alive connection (a person's browser: one request
//! at a time, so the time is the server's), three rounds, and prints p50 and p99 of each
//! route with the median of the three rounds, and their ratios to the baselines. Exit status
//! 2 if any answer was not 200.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use adapter_bench::conn::{Conn, put, put_example_adapter, stack_arg, start_server};
use adapter_testkit::{ServerProcess, Stack};
use anyhow::{Context, Result, bail};
use serde_json::json;

/// `repos` repositories `team-{r % 10}/bot-{r}@1.0.0`, published through the API.
fn seed(server: &ServerProcess, token: &str, repos: usize) -> Result<()> {
    let files = put_example_adapter(server, token)?;
    for r in 0..repos {
        let manifest = json!({"schema": "adapter-registry.manifest.v1", "kind": "adapter",
            "files": files, "metadata": {"labels": {"team": format!("t{}", r % 7)}}});
        put(
            server,
            token,
            &format!("/v1/adapters/team-{}/bot-{r}/versions/1.0.0", r % 10),
            manifest.to_string().as_bytes(),
        )?;
    }
    Ok(())
}

/// p50 and p99 of `n` requests of `path` (after one warm-up request); failures counted.
fn measure(
    conn: &mut Conn,
    path: &str,
    n: usize,
    failures: &mut usize,
) -> Result<(Duration, Duration)> {
    conn.get(path)?;
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let (status, _) = conn.get(path)?;
        lat.push(t.elapsed());
        if status != 200 {
            *failures += 1;
        }
    }
    lat.sort_unstable();
    let at = |p: f64| lat[((lat.len() as f64 * p).ceil() as usize).saturating_sub(1)];
    Ok((at(0.50), at(0.99)))
}

/// PostgreSQL plans from table statistics, which autovacuum gathers in a database in
/// service but not yet right after a bulk load (without them the index page computes every
/// repository's head and sorts: docs/BENCHMARKS.md). So on the scale-out stack the seeded
/// tables are analysed first, with `psql`; SQLite plans the same either way.
fn analyze(backend: &adapter_testkit::Backend) -> Result<()> {
    if backend.postgres().is_none() {
        return Ok(());
    }
    let status = std::process::Command::new("psql")
        .args([backend.database_url().as_str(), "-q", "-c", "ANALYZE"])
        .status()
        .context("running psql")?;
    if !status.success() {
        bail!("psql ANALYZE: {status}");
    }
    Ok(())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn run() -> Result<bool> {
    let (mut stack, mut repos, mut requests) = (Stack::Embedded, 10_000usize, 300usize);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().with_context(|| format!("{a} takes a value"));
        match a.as_str() {
            "--stack" => stack = stack_arg(&value()?)?,
            "--repos" => repos = value()?.parse()?,
            "--requests" => requests = value()?.parse()?,
            other => bail!("unknown argument {other}"),
        }
    }
    let (backend, server, token) = start_server(&stack)?;
    let t = Instant::now();
    seed(&server, &token, repos)?;
    analyze(&backend)?;
    println!(
        "ui-bench on {stack}: {repos} repositories seeded in {:.1} s; {requests} requests per route and round, 3 rounds, one connection",
        t.elapsed().as_secs_f64()
    );
    let addr = server.url.trim_start_matches("http://").to_owned();
    let mut conn = Conn::open(&addr, &token)?;
    // A page deep in the listing: the cursor the API hands out after 100 pages of 50.
    let mut cursor = String::new();
    for _ in 0..100 {
        let path = if cursor.is_empty() {
            "/v1/adapters?limit=50".to_owned()
        } else {
            format!("/v1/adapters?limit=50&cursor={cursor}")
        };
        let (_, body) = conn.get(&path)?;
        let v: serde_json::Value = serde_json::from_slice(&body)?;
        match v["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    // (route, path, the JSON twin it is compared with)
    let routes: Vec<(&str, String, Option<String>)> = vec![
        ("GET /healthz (baseline)", "/healthz".into(), None),
        ("index, first page", "/".into(), Some("/v1/adapters".into())),
        (
            "index, page 101 (cursor)",
            format!("/?cursor={cursor}"),
            Some(format!("/v1/adapters?cursor={cursor}")),
        ),
        (
            "search ?q=bot-123",
            "/?q=bot-123".into(),
            Some("/v1/adapters?q=bot-123".into()),
        ),
        (
            "search ?namespace=&target=&rank_min=",
            "/?namespace=team-3&target=q_proj&rank_min=4".into(),
            Some("/v1/adapters?namespace=team-3&target=q_proj&rank_min=4".into()),
        ),
        (
            "search ?label=team=t3&sort=-created",
            "/?label=team%3Dt3&sort=-created".into(),
            Some("/v1/adapters?label=team%3Dt3&sort=-created".into()),
        ),
        (
            "repository page",
            "/ui/adapters/team-3/bot-123".into(),
            None,
        ),
        (
            "version page",
            "/ui/adapters/team-3/bot-123/1.0.0".into(),
            None,
        ),
    ];
    let mut failures = 0;
    println!("| route | p50 | p99 | p99 vs /healthz | p99 vs its /v1 JSON |");
    println!("|---|---|---|---|---|");
    let mut baseline_p99 = None;
    for (name, path, twin) in &routes {
        let (mut p50s, mut p99s, mut twin99s) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..3 {
            let (p50, p99) = measure(&mut conn, path, requests, &mut failures)?;
            p50s.push(p50);
            p99s.push(p99);
            if let Some(t) = twin {
                twin99s.push(measure(&mut conn, t, requests, &mut failures)?.1);
            }
        }
        let (p50, p99) = (median(p50s), median(p99s));
        let base = *baseline_p99.get_or_insert(p99);
        println!(
            "| {name} | {} | {} | {:.1}× | {} |",
            ms(p50),
            ms(p99),
            p99.as_secs_f64() / base.as_secs_f64(),
            if twin99s.is_empty() {
                "–".to_owned()
            } else {
                let t = median(twin99s);
                format!("{:.2}× ({})", p99.as_secs_f64() / t.as_secs_f64(), ms(t))
            }
        );
    }
    if failures > 0 {
        eprintln!("{failures} answers were not 200");
    }
    Ok(failures == 0)
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(e) => {
            eprintln!("ui-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
