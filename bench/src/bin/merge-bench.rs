//! merge-bench: `merge --local` (load + merge + save, `adapter_core::merge::merge_dir`)
//! against copying the same files with a plain read + write loop, and the merge's peak RSS.
//!
//! Builds a random Llama-shaped base (full size: hidden 4096, intermediate 11008, 2 layers,
//! vocab 32000, untied lm_head: ~0.67B parameters) and a LoRA with r = 16 on q, k, v, o,
//! in F32 and in BF16, in a temp dir (`$TMPDIR`), and deletes them at the end. Targets:
//! merge ≤ 1.5× copy; peak RSS < 2 × the largest tensor + 200 MB. The peak is the process's
//! VmHWM, reset just before the merge (`/proc/self/clear_refs`), so building the inputs does
//! not count.
//!
//! ```sh
//! cargo run --release -p adapter-bench --bin merge-bench -- --size full   # ~12 GB of disk
//! cargo run --release -p adapter-bench --bin merge-bench -- --size small  # hidden 1024, 2 layers
//! ```
//! Exit status 0 when both targets are met, 1 when one is missed, 2 on a usage or I/O error.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use adapter_bench::llama::{Shape, tensors, write_file, write_model};
use adapter_bench::{machine, proc_field};
use adapter_core::merge::{MergeOptions, merge_dir};
use anyhow::{Context, Result, bail};
use serde_json::json;

/// Copy every file of `from` into `to` with a read + write loop (8 MiB buffer), fsynced
/// as the merge's output is.
fn copy_dir(from: &Path, to: &Path) -> Result<u64> {
    std::fs::create_dir_all(to)?;
    let mut buf = vec![0u8; 8 << 20];
    let mut total = 0;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let mut input = File::open(entry.path())?;
        let mut output = File::create(to.join(entry.file_name()))?;
        loop {
            let n = input.read(&mut buf)?;
            if n == 0 {
                break;
            }
            output.write_all(&buf[..n])?;
            total += n as u64;
        }
        output.sync_all()?;
    }
    Ok(total)
}

struct Figures {
    copy: Duration,
    merge: Duration,
    rss_kib: u64,
    largest: u64,
    bytes: u64,
}

fn run(dir: &Path, shape: &Shape, dtype: &str) -> Result<Figures> {
    let base = dir.join(format!("base-{dtype}"));
    let adapter = dir.join(format!("adapter-{dtype}"));
    std::fs::create_dir_all(&base)?;
    std::fs::create_dir_all(&adapter)?;
    let bytes = write_model(&base, shape, dtype, 1)?;
    let width = if dtype == "F32" { 4 } else { 2 };
    let largest = tensors(shape)
        .iter()
        .map(|(_, s)| s.iter().product::<u64>() * width)
        .max()
        .unwrap_or(0);
    let mut lora = Vec::new();
    for i in 0..shape.layers {
        for m in ["k_proj", "o_proj", "q_proj", "v_proj"] {
            let p = format!("base_model.model.model.layers.{i}.self_attn.{m}");
            lora.push((format!("{p}.lora_A.weight"), vec![16, shape.hidden]));
            lora.push((format!("{p}.lora_B.weight"), vec![shape.hidden, 16]));
        }
    }
    lora.sort();
    write_file(&adapter.join("adapter_model.safetensors"), &lora, "F32", 2)?;
    std::fs::write(
        adapter.join("adapter_config.json"),
        json!({"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 16, "lora_alpha": 32,
               "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]})
        .to_string(),
    )?;

    let copied = dir.join(format!("copy-{dtype}"));
    let start = Instant::now();
    copy_dir(&base, &copied)?;
    let copy = start.elapsed();
    std::fs::remove_dir_all(&copied)?;

    let out = dir.join(format!("merged-{dtype}"));
    // Reset the peak RSS: writing "5" to clear_refs resets VmHWM (proc(5)).
    std::fs::write("/proc/self/clear_refs", "5").context("resetting VmHWM")?;
    let start = Instant::now();
    let summary = merge_dir(&adapter, &base, &out, &MergeOptions::default(), &mut |_| {})?;
    let merge = start.elapsed();
    let rss_kib = proc_field("/proc/self/status", "VmHWM:").unwrap_or(0);
    if summary.merged != usize::try_from(4 * shape.layers)? {
        bail!(
            "merged {} tensors, expected {}",
            summary.merged,
            4 * shape.layers
        );
    }
    std::fs::remove_dir_all(&out)?;
    std::fs::remove_dir_all(&base)?;
    std::fs::remove_dir_all(&adapter)?;
    Ok(Figures {
        copy,
        merge,
        rss_kib,
        largest,
        bytes,
    })
}

#[allow(clippy::cast_precision_loss)]
fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let size = match args.as_slice() {
        [] => "full",
        [flag, v] if flag == "--size" => v.as_str(),
        _ => {
            eprintln!("usage: merge-bench [--size full|small|tiny]");
            return std::process::ExitCode::from(2);
        }
    };
    let shape = match size {
        "full" => Shape::FULL,
        "small" => Shape::SMALL,
        "tiny" => Shape::TINY,
        other => {
            eprintln!("unknown size {other:?}: full, small or tiny");
            return std::process::ExitCode::from(2);
        }
    };
    println!("machine: {}", machine());
    println!(
        "model: {size}, {} parameters, LoRA r=16 on q,k,v,o",
        shape.parameters()
    );
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: temp dir: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let mut ok = true;
    for dtype in ["F32", "BF16"] {
        let f = match run(dir.path(), &shape, dtype) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("error: {dtype}: {e:#}");
                return std::process::ExitCode::from(2);
            }
        };
        let ratio = f.merge.as_secs_f64() / f.copy.as_secs_f64();
        let rss = f.rss_kib * 1024;
        let limit = 2 * f.largest + 200_000_000;
        println!(
            "{dtype}: {:.2} GB; copy {:.2} s, merge {:.2} s: merge/copy {ratio:.2}× (target ≤ 1.5×); \
             peak RSS {:.0} MB, largest tensor {:.0} MB, limit {:.0} MB: {:.2} of it",
            f.bytes as f64 / 1e9,
            f.copy.as_secs_f64(),
            f.merge.as_secs_f64(),
            rss as f64 / 1e6,
            f.largest as f64 / 1e6,
            limit as f64 / 1e6,
            rss as f64 / limit as f64,
        );
        ok &= ratio <= 1.5 && rss < limit;
    }
    if ok {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(1)
    }
}
