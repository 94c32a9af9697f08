//! quant-bench: encoder throughput per format on a 4096×4096 f32 tensor, next to the cost of
//! just reading the f32 bytes (little-endian bytes → `Vec<f32>`) in the same run.
//!
//! ```sh
//! cargo run --release -p adapter-bench --bin quant-bench
//! cargo run --release -p adapter-bench --bin quant-bench -- --runs 5 --threads 2
//! ```
//! Prints MB/s of f32 input per format and its ratio to the read baseline, single-threaded
//! and with `--threads` (default: all cores). Exit 0; 2 on a usage error.

use std::time::{Duration, Instant};

use adapter_core::quant::nf4::quantize_nf4;
use adapter_core::quant::{GgmlType, encode};
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
    Ok(())
}
