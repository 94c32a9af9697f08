//! quant-bench: encoder throughput per format on a 4096×4096 f32 tensor, next to the cost of
//! just reading the f32 bytes (little-endian bytes → `Vec<f32>`) in the same run.
//!
//! ```sh
//! cargo run --release -p adapter-bench --bin quant-bench
//! cargo run --release -p adapter-bench --bin quant-bench -- --runs 5 --threads 2
//! ```
//! Prints MB/s of f32 input per format and its ratio to the read baseline, single-threaded
//! and with `--threads` (default: all cores). Then the same data through the `gguf` Python
//! package's quantiser (`gguf.quants.quantize`, Q8_0 and Q4_0; the Python of the venv at
//! `$ADAPTER_REGISTRY_VENV`, default /var/tmp/adapter-registry-venv, else `python3`): its
//! MB/s, our speed over its speed, and whether the bytes are identical; `skipped: …` when
//! Python or gguf is missing. Exit 0; 2 on a usage error.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use adapter_bench::python;
use adapter_core::quant::nf4::quantize_nf4;
use adapter_core::quant::{GgmlType, encode, encode_reference};
use anyhow::{Context, Result, bail};

const ROWS: usize = 4096;
const COLS: usize = 4096;

fn data() -> Vec<u8> {
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut out = Vec::with_capacity(ROWS * COLS * 4);
    for _ in 0..ROWS * COLS {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let u = ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.1;
        out.extend_from_slice(&u.to_le_bytes());
    }
    out
}

fn best<T>(runs: usize, mut f: impl FnMut() -> T) -> Duration {
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(f());
            t.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn median<T>(runs: usize, mut f: impl FnMut() -> T) -> Duration {
    let mut t: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(f());
            t.elapsed()
        })
        .collect();
    t.sort();
    t[t.len() / 2]
}

fn main() -> Result<()> {
    let mut runs = 3usize;
    let mut threads = std::thread::available_parallelism().map_or(1, usize::from);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| -> Result<usize> {
            args.next()
                .with_context(|| format!("{name} needs a value"))?
                .parse()
                .with_context(|| format!("{name} must be a number"))
        };
        match a.as_str() {
            "--runs" => runs = value("--runs")?.max(1),
            "--threads" => threads = value("--threads")?.max(1),
            other => {
                eprintln!("usage: quant-bench [--runs N] [--threads N]");
                if other == "--help" {
                    return Ok(());
                }
                bail!("unknown argument {other}")
            }
        }
    }
    let bytes = data();
    let mb = bytes.len() as f64 / 1e6;
    let read = || -> Vec<f32> {
        bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    };
    let x = read();
    let base = best(runs, read);
    println!("{ROWS}×{COLS} f32 ({mb:.0} MB), best of {runs}; {threads} threads where stated");
    println!("{:<22} {:>10} {:>12}", "step", "MB/s", "vs read");
    let line = |name: &str, d: Duration| {
        let rate = mb / d.as_secs_f64();
        let ratio = d.as_secs_f64() / base.as_secs_f64();
        println!("{name:<22} {rate:>10.0} {ratio:>11.1}×");
    };
    line("read f32 bytes", base);
    for ty in GgmlType::QUANTISED {
        line(
            &format!("{ty} (1 thread)"),
            best(runs, || encode(ty, &x, COLS, 1)),
        );
        if threads > 1 {
            line(
                &format!("{ty} ({threads} threads)"),
                best(runs, || encode(ty, &x, COLS, threads)),
            );
        }
    }
    line("nf4 (1 thread)", best(runs, || quantize_nf4(&x)));
    println!();
    // The K-quant scale searches: eight sub-blocks per vector (lanes) against the scalar
    // reference they must equal byte for byte, one thread each, median of `runs`.
    println!("K-quants, 1 thread, median of {runs}: lanes vs the scalar reference search");
    println!(
        "{:<6} {:>14} {:>14} {:>10} {:>6}",
        "type", "scalar MB/s", "lanes MB/s", "speed-up", "bytes"
    );
    for ty in [GgmlType::Q4K, GgmlType::Q6K] {
        let scalar = median(runs, || encode_reference(ty, &x));
        let lanes = median(runs, || encode(ty, &x, COLS, 1));
        let same = encode_reference(ty, &x) == encode(ty, &x, COLS, 1);
        println!(
            "{:<6} {:>14.0} {:>14.0} {:>9.2}× {:>6}",
            ty.name(),
            mb / scalar.as_secs_f64(),
            mb / lanes.as_secs_f64(),
            scalar.as_secs_f64() / lanes.as_secs_f64(),
            if same { "same" } else { "DIFFER" }
        );
    }
    println!();
    match gguf_py(&bytes, runs) {
        Err(why) => println!("gguf-py comparison skipped: {why}"),
        Ok((python, results)) => {
            println!(
                "gguf-py ({}), gguf.quants.quantize, best of {runs}:",
                python.display()
            );
            println!(
                "{:<8} {:>12} {:>14} {:>14} {:>15} {:>6}",
                "type", "theirs MB/s", "ours 1 thr", "ours/theirs", "ours N thr", "bytes"
            );
            for (ty, theirs, their_bytes) in results {
                let one = best(runs, || encode(ty, &x, COLS, 1));
                let all = best(runs, || encode(ty, &x, COLS, threads));
                let same = encode(ty, &x, COLS, 1) == their_bytes;
                let rate = |d: Duration| mb / d.as_secs_f64();
                println!(
                    "{:<8} {:>12.0} {:>14.0} {:>13.1}× {:>9.0} ({:.1}×) {:>6}",
                    ty.name(),
                    rate(theirs),
                    rate(one),
                    theirs.as_secs_f64() / one.as_secs_f64(),
                    rate(all),
                    theirs.as_secs_f64() / all.as_secs_f64(),
                    if same { "same" } else { "DIFFER" }
                );
            }
        }
    }
    Ok(())
}

/// Times gguf-py in a subprocess on the same bytes. Prints, per type, the best seconds; writes
/// its quantised bytes next to the input.
const GGUF_PY: &str = r#"
import sys, time
import numpy as np
from gguf import GGMLQuantizationType as T
from gguf.quants import quantize
path, rows, cols, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
x = np.fromfile(path, dtype="<f4").reshape(rows, cols)
for name in ("Q8_0", "Q4_0"):
    best = None
    for _ in range(runs):
        t = time.perf_counter()
        q = quantize(x, T[name])
        d = time.perf_counter() - t
        best = d if best is None else min(best, d)
    q.tofile(f"{path}.{name}")
    print(name, best, flush=True)
"#;

type PyResult = (PathBuf, Vec<(GgmlType, Duration, Vec<u8>)>);

fn gguf_py(bytes: &[u8], runs: usize) -> Result<PyResult, String> {
    let python = python();
    let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let input = dir.path().join("x.f32");
    std::fs::write(&input, bytes).map_err(|e| format!("writing the input: {e}"))?;
    let out = Command::new(&python)
        .arg("-c")
        .arg(GGUF_PY)
        .arg(&input)
        .args([ROWS.to_string(), COLS.to_string(), runs.to_string()])
        .output()
        .map_err(|e| format!("{}: {e}", python.display()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or("no output");
        return Err(format!("{} failed: {last}", python.display()));
    }
    let mut results = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let (name, secs) = line
            .split_once(' ')
            .ok_or_else(|| format!("unexpected output {line:?}"))?;
        let ty = match name {
            "Q8_0" => GgmlType::Q8_0,
            "Q4_0" => GgmlType::Q4_0,
            other => return Err(format!("unexpected type {other}")),
        };
        let secs: f64 = secs
            .parse()
            .map_err(|_| format!("unexpected time {secs:?}"))?;
        let theirs = read(&dir.path().join(format!("x.f32.{name}")))?;
        results.push((ty, Duration::from_secs_f64(secs), theirs));
    }
    if results.is_empty() {
        return Err("gguf-py printed nothing".into());
    }
    Ok((python, results))
}

fn read(p: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))
}
