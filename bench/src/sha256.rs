//! sha256-bench: our streaming sha256 (`adapter_core::digest::sha256_file`) against
//! `openssl dgst -sha256` on the same file, both from the page cache.
//!
//! ```text
//! cargo run --release -p adapter-bench --bin sha256-bench -- [--size 1G] [--file PATH] [--runs 3]
//! ```
//!
//! Without `--file`, a file of `--size` pseudo-random bytes (default 1 GiB) is written to the
//! system temp dir and removed afterwards. The file is read once to warm the page cache, then
//! each hasher runs `--runs` times and the best time counts. Prints both rates and the ratio
//! ours/openssl (target ≥ 0.9). Exits non-zero when the two digests differ.

use std::fs::{self, OpenOptions};

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use adapter_bench::{GIB, machine, openssl_sha256, parse_size, rate, warm_up, write_random};
use adapter_core::digest::sha256_file;
use anyhow::{Context, Result, bail};

const TARGET_RATIO: f64 = 0.9;

#[derive(Debug)]
struct Args {
    size: u64,
    file: Option<PathBuf>,
    runs: u32,
}

const USAGE: &str = "usage: sha256-bench [--size BYTES[K|M|G]] [--file PATH] [--runs N]";

fn parse_args() -> Result<Args> {
    let mut args = Args {
        size: GIB,
        file: None,
        runs: 3,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .with_context(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--size" => args.size = parse_size(&value()?)?,
            "--file" => args.file = Some(PathBuf::from(value()?)),
            "--runs" => {
                args.runs = value()?
                    .parse()
                    .context("--runs needs a positive integer")?;
                if args.runs == 0 {
                    bail!("--runs must be at least 1");
                }
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    Ok(args)
}

/// A generated input file, removed when dropped.
#[derive(Debug)]
struct TempInput(PathBuf);

impl Drop for TempInput {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// Write `size` pseudo-random bytes (xorshift64*: incompressible, no pattern for any cache
/// or dedup layer to exploit) to a new file in the temp dir.
fn create_input(size: u64) -> Result<TempInput> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let path =
        std::env::temp_dir().join(format!("sha256-bench-{}-{nanos}.bin", std::process::id()));
    let guard = TempInput(path);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&guard.0)
        .with_context(|| format!("creating {}", guard.0.display()))?;
    write_random(&mut file, size, u64::from(nanos))?;
    file.sync_all()?;
    Ok(guard)
}

fn best_of<T>(runs: u32, mut f: impl FnMut() -> Result<T>) -> Result<(Duration, T)> {
    let mut best: Option<(Duration, T)> = None;
    for _ in 0..runs {
        let start = Instant::now();
        let out = f()?;
        let took = start.elapsed();
        if best.as_ref().is_none_or(|(b, _)| took < *b) {
            best = Some((took, out));
        }
    }
    best.context("no runs")
}

fn run() -> Result<bool> {
    let args = parse_args()?;
    let _guard;
    let path = match &args.file {
        Some(p) => p.clone(),
        None => {
            eprintln!("writing {} pseudo-random bytes…", args.size);
            let g = create_input(args.size)?;
            let p = g.0.clone();
            _guard = g;
            p
        }
    };
    let bytes = warm_up(&path).with_context(|| format!("reading {}", path.display()))?;
    println!("machine: {}", machine());
    println!(
        "file: {} ({bytes} bytes = {:.2} GiB), best of {} runs each, page cache warm",
        path.display(),
        bytes as f64 / GIB as f64,
        args.runs
    );

    let (ours_t, (ours, n)) = best_of(args.runs, || Ok(sha256_file(&path)?))?;
    if n != bytes {
        bail!("file changed while benchmarking: read {n} bytes, expected {bytes}");
    }
    println!("adapter-core sha256_file: {}", rate(bytes, ours_t));
    let (theirs_t, (_, theirs)) = best_of(args.runs, || openssl_sha256(&path))?;
    println!("openssl dgst -sha256:     {}", rate(bytes, theirs_t));

    let ratio = theirs_t.as_secs_f64() / ours_t.as_secs_f64();
    let verdict = if ratio >= TARGET_RATIO {
        "meets"
    } else {
        "BELOW"
    };
    println!("ratio ours/openssl: {ratio:.2}x ({verdict} target >= {TARGET_RATIO}x)");
    if ours == theirs {
        println!("digests agree: {ours}");
        Ok(true)
    } else {
        println!("DIGESTS DIFFER: ours {ours}, openssl {theirs}");
        Ok(false)
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("sha256-bench: {e:#}");
            ExitCode::from(2)
        }
    }
}
