//! Helpers shared by the benchmarks: input files, page-cache warm-up, the openssl baseline,
//! and how rates and the machine are printed.

#![forbid(unsafe_code)]

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use adapter_core::digest::{Digest, HASH_BUFFER};
use anyhow::{Context, Result, bail};

pub mod conn;
pub mod llama;

pub const GIB: u64 = 1 << 30;

/// The Python for baselines: the project venv's (`$ADAPTER_REGISTRY_VENV`, default
/// `/var/tmp/adapter-registry-venv`, where scripts/test installs gguf and numpy), else
/// `python3` on the PATH.
pub fn python() -> std::path::PathBuf {
    let venv = std::env::var_os("ADAPTER_REGISTRY_VENV").map_or_else(
        || std::path::PathBuf::from("/var/tmp/adapter-registry-venv"),
        std::path::PathBuf::from,
    );
    let p = venv.join("bin/python");
    if p.is_file() {
        p
    } else {
        std::path::PathBuf::from("python3")
    }
}

/// `1024`, `64K`, `512M`, `2G` (binary units) → bytes; zero and overflow refused.
pub fn parse_size(s: &str) -> Result<u64> {
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

/// Write `size` pseudo-random bytes (xorshift64*: incompressible, no pattern for any cache
/// or dedup layer to exploit) to `out`.
pub fn write_random(out: &mut impl Write, size: u64, seed: u64) -> io::Result<()> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15 ^ seed;
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
        out.write_all(&buf[..n])?;
        left -= n as u64;
    }
    Ok(())
}

/// Read the whole file once so that later reads come from the page cache; its length.
pub fn warm_up(path: &Path) -> Result<u64> {
    let mut f = File::open(path).with_context(|| format!("reading {}", path.display()))?;
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

/// `openssl dgst -sha256 -r FILE`, timed from spawn to exit: (time, digest).
pub fn openssl_sha256(path: &Path) -> Result<(Duration, Digest)> {
    let start = Instant::now();
    let out = Command::new("openssl")
        .args(["dgst", "-sha256", "-r"])
        .arg(path)
        .output()
        .context("running `openssl dgst` (is openssl installed?)")?;
    let took = start.elapsed();
    if !out.status.success() {
        bail!(
            "openssl dgst failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    // `-r` prints `<hex> *<path>`.
    let text = String::from_utf8_lossy(&out.stdout);
    let hex = text.split_whitespace().next().unwrap_or_default();
    let digest =
        Digest::from_hex(hex).with_context(|| format!("unexpected openssl output {text:?}"))?;
    Ok((took, digest))
}

/// `1.234 s = 1.74 GB/s (1.62 GiB/s)`.
pub fn rate(bytes: u64, took: Duration) -> String {
    let secs = took.as_secs_f64();
    format!(
        "{:.3} s = {:.2} GB/s ({:.2} GiB/s)",
        secs,
        bytes as f64 / secs / 1e9,
        bytes as f64 / secs / GIB as f64
    )
}

/// One line about the machine: cores, CPU model and the flags hashing depends on, memory,
/// and the OpenSSL version.
pub fn machine() -> String {
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
    let has = |f: &str| {
        if flags.split_whitespace().any(|x| x == f) {
            "yes"
        } else {
            "no"
        }
    };
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = proc_field("/proc/meminfo", "MemTotal:").map_or(0.0, |kb| kb as f64 / 1048576.0);
    let openssl = Command::new("openssl")
        .arg("version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|_| "openssl not found".into());
    format!(
        "nproc {nproc}; CPU {model}; sha_ni {}; avx2 {}; RAM {mem_gib:.1} GiB; {openssl}",
        has("sha_ni"),
        has("avx2"),
    )
}

/// The first number after `name` on its line of a /proc file (`VmHWM:`, `MemTotal:`, …).
pub fn proc_field(path: &str, name: &str) -> Option<u64> {
    fs::read_to_string(path)
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(name))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
