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

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use adapter_core::digest::{Digest, HASH_BUFFER, sha256_file};
use anyhow::{Context, Result, bail};

const TARGET_RATIO: f64 = 0.9;
const GIB: u64 = 1 << 30;

#[derive(Debug)]
struct Args {
    size: u64,
    file: Option<PathBuf>,
    runs: u32,
}

const USAGE: &str = "usage: sha256-bench [--size BYTES[K|M|G]] [--file PATH] [--runs N]";

fn parse_size(s: &str) -> Result<u64> {
    let (digits, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => s.split_at(i),
        None => (s, ""),
    };
    let n: u64 = digits.parse().with_context(|| format!("bad size {s:?}"))?;
    let mult = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KIB" => 1 << 10,
        "M" | "MIB" => 1 << 20,
        "G" | "GIB" => GIB,
        other => bail!("bad size unit {other:?} in {s:?} (use K, M or G: binary units)"),
    };
    let size = n.checked_mul(mult).context("size overflows u64")?;
    if size == 0 {
        bail!("size must be positive");
    }
    Ok(size)
}

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
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15 ^ u64::from(nanos);
    let mut buf = vec![0u8; HASH_BUFFER];
    let mut left = size;
    while left > 0 {
        for word in buf.chunks_exact_mut(8) {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            word.copy_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
        }
        let n = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
        file.write_all(&buf[..n])?;
        left -= n as u64;
    }
    file.sync_all()?;
    Ok(guard)
}

/// Read the whole file once so that every timed run reads from the page cache.
fn warm_up(path: &Path) -> Result<u64> {
    let mut f = File::open(path)?;
    let mut buf = vec![0u8; HASH_BUFFER];
    let mut total = 0u64;
    loop {
        match f.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => total += n as u64,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
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

fn openssl_digest(path: &Path) -> Result<Digest> {
    let out = Command::new("openssl")
        .args(["dgst", "-sha256", "-r"])
        .arg(path)
        .output()
        .context("running `openssl dgst` (is openssl installed?)")?;
    if !out.status.success() {
        bail!(
            "openssl dgst failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    // `-r` prints `<hex> *<path>`.
    let text = String::from_utf8_lossy(&out.stdout);
    let hex = text.split_whitespace().next().unwrap_or_default();
    Digest::from_hex(hex).with_context(|| format!("unexpected openssl output {text:?}"))
}

fn rate(bytes: u64, took: Duration) -> String {
    let secs = took.as_secs_f64();
    format!(
        "{:.3} s = {:.2} GB/s ({:.2} GiB/s)",
        secs,
        bytes as f64 / secs / 1e9,
        bytes as f64 / secs / GIB as f64
    )
}

fn machine() -> String {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        cpuinfo
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
    };
    let model = field("model name").unwrap_or_else(|| "unknown CPU".into());
    let flags = field("flags").unwrap_or_default();
    let has = |f: &str| flags.split_whitespace().any(|x| x == f);
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let openssl = Command::new("openssl")
        .arg("version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|_| "openssl not found".into());
    format!(
        "nproc {nproc}; CPU {model}; sha_ni {}; avx2 {}; {openssl}",
        if has("sha_ni") { "yes" } else { "no" },
        if has("avx2") { "yes" } else { "no" },
    )
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
    let (theirs_t, theirs) = best_of(args.runs, || openssl_digest(&path))?;
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
