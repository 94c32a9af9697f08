//! transfer-bench: push and pull of one large model file through the real server and the
//! real client, against `openssl dgst -sha256` reading the same file (the physical limit:
//! every byte pushed or pulled is hashed at least once) and `dd bs=4M conv=fsync` writing it
//! (the durable write rate of the filesystem: a push and a pull each write it once, synced).
//!
//! ```text
//! cargo build --release --workspace --bins
//! ./target/release/transfer-bench [--size 2G] [--work-dir DIR] [--rounds 2] [--cold-memory]
//! ./target/release/transfer-bench --work-dir /dev/shm     # fast storage: tmpfs, CPU-bound
//! ```
//!
//! One run: writes a model directory (`config.json` + a `model.safetensors` holding one U8
//! tensor of `--size` pseudo-random bytes) into a temp dir under `--work-dir` (the server's
//! data dir and the pulled copy go there too, so `--work-dir /dev/shm` measures storage
//! that is not the limit), times `openssl dgst -sha256` on it (page cache warm, best of 2)
//! and `dd` (best of 2), then on each stack (embedded: SQLite + local files; and PostgreSQL
//! + S3 when scripts/services.sh configured them) starts `adapter-registry serve` and times
//! * `adapterctl push DIR --name bench/big --version 1.0.0` with an empty client cache
//!   (target ≥ 0.8× openssl's rate),
//! * `adapterctl pull bench/big@1.0.0 -o OUT` (target ≥ 0.8×),
//! * the re-push of the same files as `1.0.1` (target < 0.3 s, and the server must read
//!   less than 1 MiB from its sockets meanwhile: nothing uploaded),
//!
//! (each `--rounds` times, default 2, with a fresh server and data dir; before `dd` and
//! each timed step, 1.5× the file's size of memory is touched and freed, so that a VM that
//! hands freed memory back to its host does not charge whichever step writes into it first:
//! `--cold-memory` leaves that out),
//! and reports the peak RSS of each client run (`/usr/bin/time -v`, or polling VmHWM) and
//! of the server (VmHWM at the end, target < 150 MB). Exit status: 0 when every step
//! worked and the pulled files are byte-identical (missed targets are reported, not fatal),
//! 1 when a pulled file differs, 2 on any other failure. The binaries are the ones next
//! to this executable (`target/release/`).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use adapter_bench::{
    GIB, machine, openssl_sha256, parse_size, proc_field, rate, warm_up, write_random,
};
use adapter_core::digest::Digest;
use adapter_testkit::{Backend, ServerProcess, Stack, bin, stacks};
use anyhow::{Context, Result, bail};

const MB: f64 = 1e6;
const TARGET_PUSH: f64 = 0.8;
const TARGET_PULL: f64 = 0.8;
const TARGET_REPUSH_S: f64 = 0.3;
const TARGET_SERVER_RSS_MB: f64 = 150.0;
/// A re-push may send manifests and digest checks, never file contents.
const REPUSH_MAX_SERVER_READ: u64 = 1 << 20;
const USAGE: &str =
    "usage: transfer-bench [--size BYTES[K|M|G]] [--work-dir DIR] [--rounds N] [--cold-memory]";

#[derive(Debug)]
struct Args {
    size: u64,
    work_dir: Option<PathBuf>,
    rounds: usize,
    /// Do not touch memory before each timed step (see [`touch_memory`]).
    cold_memory: bool,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        size: 2 * GIB,
        work_dir: None,
        rounds: 2,
        cold_memory: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .with_context(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--size" => args.size = parse_size(&value()?)?,
            "--work-dir" => args.work_dir = Some(PathBuf::from(value()?)),
            "--rounds" => {
                args.rounds = value()?.parse().context("--rounds takes a number")?;
                if args.rounds == 0 {
                    bail!("--rounds must be at least 1\n{USAGE}");
                }
            }
            "--cold-memory" => args.cold_memory = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    Ok(args)
}

/// Writes `dir/model.safetensors` (one U8 tensor `weight` of `size` pseudo-random bytes,
/// xorshift64*: incompressible) and a minimal `dir/config.json`.
fn write_model(dir: &Path, size: u64) -> Result<PathBuf> {
    fs::create_dir_all(dir)?;
    fs::write(
        dir.join("config.json"),
        br#"{"architectures": ["BenchModel"], "model_type": "bench"}"#,
    )?;
    let mut header =
        format!(r#"{{"weight":{{"dtype":"U8","shape":[{size}],"data_offsets":[0,{size}]}}}}"#);
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let path = dir.join("model.safetensors");
    let mut file = io::BufWriter::with_capacity(1 << 20, File::create(&path)?);
    file.write_all(&(header.len() as u64).to_le_bytes())?;
    file.write_all(header.as_bytes())?;
    write_random(&mut file, size, 0)?;
    file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(path)
}

/// Time of `dd if=FROM of=TO bs=4M conv=fsync` (the copy is removed afterwards): reading
/// and writing the bytes once through user space and syncing them, as push and pull must
/// (`cp` may use `copy_file_range` and write nothing at all).
fn copy_time(from: &Path, to: &Path) -> Result<Duration> {
    let start = Instant::now();
    let status = Command::new("dd")
        .arg(format!("if={}", from.display()))
        .arg(format!("of={}", to.display()))
        .arg("bs=4M")
        .arg("conv=fsync")
        .stderr(Stdio::null())
        .status()
        .context("running `dd`")?;
    let took = start.elapsed();
    anyhow::ensure!(status.success(), "dd failed: {status}");
    fs::remove_file(to).context("removing the copy")?;
    Ok(took)
}

/// One timed client run.
#[derive(Debug)]
struct Run {
    took: Duration,
    /// Peak resident set size in bytes, when measurable.
    peak_rss: Option<u64>,
    /// User + system CPU seconds, when `/usr/bin/time` measured them.
    cpu: Option<f64>,
}

/// Runs `adapterctl ARGS` with its cache in `cache`, timing it and measuring its peak RSS.
fn adapterctl(cache: &Path, args: &[&str]) -> Result<Run> {
    let time = Path::new("/usr/bin/time");
    let mut command = if time.is_file() {
        let mut c = Command::new(time);
        c.arg("-v").arg(bin("adapterctl"));
        c
    } else {
        Command::new(bin("adapterctl"))
    };
    command
        .args(args)
        .env("XDG_CACHE_HOME", cache)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = command.spawn().context("starting adapterctl")?;
    // Without /usr/bin/time, poll the child's high-water mark until it exits.
    let mut polled = None;
    if !time.is_file() {
        let pid = child.id();
        while child.try_wait()?.is_none() {
            polled = vm_hwm(pid).or(polled);
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let out = child.wait_with_output()?;
    let took = start.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!(
            "adapterctl {} failed ({}):\n{}{stderr}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let peak_rss = stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes):"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .or(polled);
    let seconds = |label: &str| {
        stderr
            .lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    let cpu = seconds("User time (seconds):").zip(seconds("System time (seconds):"));
    Ok(Run {
        took,
        peak_rss,
        cpu: cpu.map(|(u, s)| u + s),
    })
}

/// `VmHWM` (peak RSS) of a process, in bytes.
fn vm_hwm(pid: u32) -> Option<u64> {
    proc_field(&format!("/proc/{pid}/status"), "VmHWM:").map(|kb| kb * 1024)
}

/// Bytes a process has read through any descriptor, sockets included (`rchar`).
fn read_chars(pid: u32) -> Option<u64> {
    proc_field(&format!("/proc/{pid}/io"), "rchar:")
}

/// CPU seconds (user + system) a process has used so far, from `/proc/PID/stat`.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / clock_ticks()?)
}

/// `getconf CLK_TCK`: the unit of `/proc/PID/stat` times.
fn clock_ticks() -> Option<f64> {
    let out = Command::new("getconf").arg("CLK_TCK").output().ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn rss(bytes: Option<u64>) -> String {
    bytes.map_or("n/a".into(), |b| format!("{:.1} MB", b as f64 / MB))
}

fn cpu(seconds: Option<f64>) -> String {
    seconds.map_or("n/a".into(), |s| format!("{s:.2} s"))
}

fn verdict(ok: bool) -> &'static str {
    if ok { "meets" } else { "MISSES" }
}

/// Touch `bytes` of fresh memory and free it again, just before a timed step.
///
/// A VM guest with free page reporting (virtio-balloon's `REPORTING` feature, which this
/// development VM has) hands the pages it frees back to its host about two seconds later,
/// and the first write into such a page then faults on the host. A step that fills 1 GiB of
/// new page cache (the server's blob in a push, the client's file in a pull) ran 1.5–2×
/// slower or not depending on how long the machine had been idle before it, whatever the
/// software did (docs/BENCHMARKS.md). Touching the memory first gives every step, `dd`'s
/// baseline included, the same host-backed free pages; `--cold-memory` skips it.
fn touch_memory(bytes: u64) {
    if bytes == 0 {
        return;
    }
    // `vec![1; n]` writes every byte (`vec![0; n]` would map untouched zero pages).
    let pages = vec![1u8; usize::try_from(bytes).unwrap_or(usize::MAX)];
    std::hint::black_box(&pages);
}

/// The baselines measured once per run.
struct Baselines {
    bytes: u64,
    openssl: Duration,
    dd: Duration,
    /// Bytes of memory touched before each timed step ([`touch_memory`]; 0: none).
    touch: u64,
}

impl Baselines {
    /// Just before a timed step.
    fn prepare(&self) {
        touch_memory(self.touch);
    }

    fn vs_openssl(&self, took: Duration) -> f64 {
        self.openssl.as_secs_f64() / took.as_secs_f64()
    }

    fn vs_dd(&self, took: Duration) -> f64 {
        self.dd.as_secs_f64() / took.as_secs_f64()
    }
}

fn run() -> Result<bool> {
    let args = parse_args()?;
    let work = match &args.work_dir {
        Some(dir) => tempfile::Builder::new()
            .prefix("transfer-bench-")
            .tempdir_in(dir),
        None => tempfile::Builder::new().prefix("transfer-bench-").tempdir(),
    }
    .context("creating the work dir")?;
    let model_dir = work.path().join("model");
    println!("machine: {}", machine());
    println!("work dir: {}", work.path().display());

    eprintln!("writing {} pseudo-random bytes…", args.size);
    let model = write_model(&model_dir, args.size)?;
    let bytes = warm_up(&model)?;
    println!(
        "file: model.safetensors, {bytes} bytes ({:.2} GiB), page cache warm",
        bytes as f64 / GIB as f64
    );

    let (t1, digest) = openssl_sha256(&model)?;
    let (t2, _) = openssl_sha256(&model)?;
    let openssl = t1.min(t2);
    println!("openssl dgst -sha256 (best of 2): {}", rate(bytes, openssl));
    // The other physical limit: writing the same bytes once, durably, on this filesystem.
    // Push (server side) and pull (client side) each write the file once and sync it.
    let touch = if args.cold_memory {
        0
    } else {
        bytes + bytes / 2
    };
    if touch > 0 {
        println!(
            "memory: {:.2} GiB touched and freed before each timed step (a VM's freed pages \
             may have gone back to its host; --cold-memory skips this)",
            touch as f64 / GIB as f64
        );
    }
    let copy = work.path().join("copy.bin");
    let mut dd = Duration::MAX;
    for _ in 0..2 {
        touch_memory(touch);
        dd = dd.min(copy_time(&model, &copy)?);
    }
    println!(
        "dd bs=4M conv=fsync to the same filesystem (best of 2): {}",
        rate(bytes, dd)
    );
    let base = Baselines {
        bytes,
        openssl,
        dd,
        touch,
    };

    // Each round is a fresh server and data dir, removed at its end.
    let mut identical = true;
    for round in 1..=args.rounds {
        for stack in stacks() {
            println!("\n-- round {round} of {}", args.rounds);
            identical &= run_stack(&stack, &base, work.path(), &model_dir, &digest)?;
        }
    }
    if stacks().len() == 1 {
        println!(
            "(PostgreSQL + S3 not configured: `source scripts/services.sh` first to measure it)"
        );
    }
    Ok(identical)
}

/// Push, pull and re-push on one stack; whether the pulled files are identical.
fn run_stack(
    stack: &Stack,
    base: &Baselines,
    work: &Path,
    model_dir: &Path,
    digest: &Digest,
) -> Result<bool> {
    let bytes = base.bytes;
    let tag = match stack {
        Stack::Embedded => "embedded",
        Stack::Scaleout => "scaleout",
    };
    let pulled_dir = work.join(format!("pulled-{tag}"));
    // An empty client cache: the push hashes the file (as a first push of a new model does).
    let cache = work.join(format!("cache-{tag}"));
    let backend = Backend::new_in(stack, work);
    let server = ServerProcess::start(&backend);
    let pid = server.pid();
    println!("\n== {stack}: server {} (pid {pid})", server.url);
    let dir = model_dir.to_str().context("work dir is not UTF-8")?;
    let out = pulled_dir.to_str().context("work dir is not UTF-8")?;
    let url = server.url.as_str();
    let token = server
        .admin_token
        .as_deref()
        .context("the server wrote no admin.token")?;
    let ctl = |rest: &[&str]| {
        let mut all = vec!["--url", url, "--token", token];
        all.extend_from_slice(rest);
        adapterctl(&cache, &all)
    };

    let server_cpu = || cpu_seconds(pid);
    base.prepare();
    let cpu_before = server_cpu();
    let push = ctl(&["push", dir, "--name", "bench/big", "--version", "1.0.0"])?;
    let push_ok = base.vs_openssl(push.took) >= TARGET_PUSH;
    println!(
        "push:    {}  = {:.2}x openssl ({} target >= {TARGET_PUSH}x) = {:.2}x dd, client peak RSS {}",
        rate(bytes, push.took),
        base.vs_openssl(push.took),
        verdict(push_ok),
        base.vs_dd(push.took),
        rss(push.peak_rss)
    );
    let cpu_after_push = server_cpu();
    println!(
        "         CPU: client {}, server {}",
        cpu(push.cpu),
        cpu(cpu_after_push.zip(cpu_before).map(|(a, b)| a - b))
    );
    base.prepare();
    let pull = ctl(&["pull", "bench/big@1.0.0", "-o", out])?;
    let pull_ok = base.vs_openssl(pull.took) >= TARGET_PULL;
    println!(
        "pull:    {}  = {:.2}x openssl ({} target >= {TARGET_PULL}x) = {:.2}x dd, client peak RSS {}",
        rate(bytes, pull.took),
        base.vs_openssl(pull.took),
        verdict(pull_ok),
        base.vs_dd(pull.took),
        rss(pull.peak_rss)
    );
    println!(
        "         CPU: client {}, server {}",
        cpu(pull.cpu),
        cpu(server_cpu().zip(cpu_after_push).map(|(a, b)| a - b))
    );
    let read_before = read_chars(pid);
    let repush = ctl(&["push", dir, "--name", "bench/big", "--version", "1.0.1"])?;
    let server_read = read_before
        .zip(read_chars(pid))
        .map(|(a, b)| b.saturating_sub(a));
    let repush_ok = repush.took.as_secs_f64() < TARGET_REPUSH_S
        && server_read.is_none_or(|r| r < REPUSH_MAX_SERVER_READ);
    println!(
        "re-push: {:.3} s, server read {} bytes meanwhile ({} target < {TARGET_REPUSH_S} s, nothing uploaded), client peak RSS {}",
        repush.took.as_secs_f64(),
        server_read.map_or("n/a".into(), |r| r.to_string()),
        verdict(repush_ok),
        rss(repush.peak_rss)
    );

    let server_rss = vm_hwm(pid);
    let server_ok = server_rss.is_some_and(|b| (b as f64 / MB) < TARGET_SERVER_RSS_MB);
    println!(
        "server peak RSS (VmHWM): {} ({} target < {TARGET_SERVER_RSS_MB} MB)",
        rss(server_rss),
        verdict(server_ok)
    );
    drop(server);
    drop(backend);

    let pulled = pulled_dir.join("model.safetensors");
    let (_, pulled_digest) = openssl_sha256(&pulled)
        .with_context(|| format!("hashing the pulled file {}", pulled.display()))?;
    let config_same =
        fs::read(model_dir.join("config.json"))? == fs::read(pulled_dir.join("config.json"))?;
    fs::remove_dir_all(&pulled_dir).context("removing the pulled copy")?;
    // The next round starts with an empty client cache too (a push that finds the digest
    // cached asks first instead of hashing while it uploads).
    fs::remove_dir_all(&cache).context("removing the client cache")?;
    if pulled_digest == *digest && config_same {
        println!("pulled files are byte-identical: {digest}");
        Ok(true)
    } else {
        println!(
            "PULLED FILES DIFFER: model sha256 {digest} vs pulled {pulled_digest}, config.json same: {config_same}"
        );
        Ok(false)
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("transfer-bench: {e:#}");
            ExitCode::from(2)
        }
    }
}
