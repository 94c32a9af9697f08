//! quant-model-bench: a whole ~0.67B-parameter Llama-shaped f32 model (hidden 4096,
//! intermediate 11008, 2 layers, vocab 32000; the merge benchmark's shape) quantised to a
//! GGUF file, Q8_0 and Q4_0: our converter (`adapter_core::quant::convert::to_gguf`, what
//! `adapterctl quantise --local` runs, all cores) next to the `gguf` Python package doing the
//! same work in the same run (read each tensor from the safetensors file, `gguf.quants.quantize`
//! the matrices, write a GGUF with `gguf.GGUFWriter`). Target: ours ≥ 3× faster.
//!
//! ```sh
//! cargo run --release -p adapter-bench --bin quant-model-bench              # ~6 GB of disk
//! cargo run --release -p adapter-bench --bin quant-model-bench -- --size small
//! ```
//! Checks that the quantised bytes of one matrix agree between the two outputs. Exit 0 when
//! the target is met, 1 when it is missed, 2 on a usage or I/O error; when Python or `gguf`
//! is missing it prints why and measures ours only (exit 0).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use adapter_bench::llama::{Shape, write_model};
use adapter_bench::{machine, proc_field, python};
use adapter_core::model::{Hashing, ModelDir};
use adapter_core::quant::GgmlType;
use adapter_core::quant::convert::{Options, to_gguf};
use adapter_core::quant::gguf::read_gguf;
use anyhow::{Context, Result, bail};

/// The baseline: what a Python user of the `gguf` package would write.
const GGUF_PY: &str = r#"
import json, struct, sys, time
import numpy as np
import gguf
src, out, name = sys.argv[1], sys.argv[2], sys.argv[3]
qtype = getattr(gguf.GGMLQuantizationType, name)
t0 = time.perf_counter()
with open(src, "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    header = json.loads(f.read(n))
header.pop("__metadata__", None)
data = np.memmap(src, dtype=np.uint8, mode="r", offset=8 + n)
w = gguf.GGUFWriter(out, "llama")
w.add_file_type(7 if name == "Q8_0" else 2)
for tname in sorted(header):
    info = header[tname]
    a, b = info["data_offsets"]
    x = np.frombuffer(data[a:b], dtype=np.float32).reshape(info["shape"])
    if x.ndim == 2:
        q = gguf.quants.quantize(x, qtype)
        w.add_tensor(tname, q, raw_shape=q.shape, raw_dtype=qtype)
    else:
        w.add_tensor(tname, np.ascontiguousarray(x))
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
print(time.perf_counter() - t0)
"#;

fn theirs(python: &Path, src: &Path, out: &Path, ty: GgmlType) -> Result<Duration, String> {
    let name = match ty {
        GgmlType::Q8_0 => "Q8_0",
        GgmlType::Q4_0 => "Q4_0",
        other => return Err(format!("no baseline for {other}")),
    };
    let run = Command::new(python)
        .arg("-c")
        .arg(GGUF_PY)
        .arg(src)
        .arg(out)
        .arg(name)
        .output()
        .map_err(|e| format!("{}: {e}", python.display()))?;
    if !run.status.success() {
        let err = String::from_utf8_lossy(&run.stderr);
        return Err(format!(
            "{} failed: {}",
            python.display(),
            err.lines().last().unwrap_or("no output")
        ));
    }
    let secs: f64 = String::from_utf8_lossy(&run.stdout)
        .trim()
        .parse()
        .map_err(|_| "unexpected output".to_owned())?;
    Ok(Duration::from_secs_f64(secs))
}

/// The stored bytes of tensor `name` in a GGUF file.
fn tensor_bytes(path: &Path, name: &str) -> Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    let g = read_gguf(std::io::BufReader::new(&mut f))?;
    let t = g
        .tensor(name)
        .with_context(|| format!("{}: no tensor {name}", path.display()))?;
    f.seek(SeekFrom::Start(g.data_start + t.offset))?;
    let mut out = vec![0u8; usize::try_from(t.byte_len())?];
    f.read_exact(&mut out)?;
    Ok(out)
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(1),
        Err(e) => {
            eprintln!("quant-model-bench: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

fn run() -> Result<bool> {
    let mut shape = Shape::FULL;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match (a.as_str(), args.next().as_deref()) {
            ("--size", Some("full")) => shape = Shape::FULL,
            ("--size", Some("small")) => shape = Shape::SMALL,
            _ => bail!("usage: quant-model-bench [--size full|small]"),
        }
    }
    let dir = tempfile::tempdir()?;
    let model_dir = dir.path().join("model");
    let bytes = write_model(&model_dir, &shape, "F32", 1)?;
    let mb = bytes as f64 / 1e6;
    let model = ModelDir::open(&model_dir, Hashing::HeadersOnly)?;
    let python = python();
    println!("{}", machine());
    println!(
        "model: {} parameters, f32, {mb:.0} MB; {} threads for ours",
        shape.parameters(),
        std::thread::available_parallelism().map_or(1, usize::from)
    );
    println!(
        "{:<6} {:>11} {:>9} {:>13} {:>9} {:>12} {:>7} {:>13}",
        "type", "ours s", "MB/s", "gguf-py s", "MB/s", "ours/theirs", "bytes", "ours peak RSS"
    );
    let mut met = true;
    for ty in [GgmlType::Q8_0, GgmlType::Q4_0] {
        let ours_out = dir.path().join(format!("ours-{ty}.gguf"));
        // Peak memory of ours alone: VmHWM reset just before (writing the model does not
        // count).
        std::fs::write("/proc/self/clear_refs", "5").context("resetting VmHWM")?;
        let start = Instant::now();
        to_gguf(&model, ty, &ours_out, &Options::default())?;
        let ours = start.elapsed();
        let rss = proc_field("/proc/self/status", "VmHWM:").unwrap_or(0) as f64 / 1024.0;
        let theirs_out = dir.path().join(format!("theirs-{ty}.gguf"));
        match theirs(
            &python,
            &model_dir.join("model.safetensors"),
            &theirs_out,
            ty,
        ) {
            Err(why) => println!(
                "{:<6} {:>11.2} {:>9.0}   peak RSS {rss:.0} MB; gguf-py skipped: {why}",
                ty.name(),
                ours.as_secs_f64(),
                mb / ours.as_secs_f64()
            ),
            Ok(t) => {
                // The same matrix in both files (llama.cpp's name in ours; no permutation
                // touches the MLP).
                let a = tensor_bytes(&ours_out, "blk.0.ffn_up.weight")?;
                let b = tensor_bytes(&theirs_out, "model.layers.0.mlp.up_proj.weight")?;
                let same = a == b;
                if !same {
                    let block = usize::try_from(ty.block_bytes())?;
                    let diff = a
                        .chunks(block)
                        .zip(b.chunks(block))
                        .enumerate()
                        .filter(|(_, (x, y))| x != y)
                        .map(|(i, _)| i)
                        .collect::<Vec<_>>();
                    let first = diff[0];
                    println!(
                        "{ty}: {} of {} blocks differ; block {first}: ours {:02x?} theirs {:02x?}",
                        diff.len(),
                        a.len() / block,
                        &a[first * block..(first + 1) * block],
                        &b[first * block..(first + 1) * block]
                    );
                }
                let ratio = t.as_secs_f64() / ours.as_secs_f64();
                met &= ratio >= 3.0 && same;
                println!(
                    "{:<6} {:>11.2} {:>9.0} {:>13.2} {:>9.0} {:>11.1}× {:>7} {:>10.0} MB",
                    ty.name(),
                    ours.as_secs_f64(),
                    mb / ours.as_secs_f64(),
                    t.as_secs_f64(),
                    mb / t.as_secs_f64(),
                    ratio,
                    if same { "same" } else { "DIFFER" },
                    rss
                );
                std::fs::remove_file(&theirs_out)?;
            }
        }
        std::fs::remove_file(&ours_out)?;
    }
    println!(
        "target: ours ≥ 3× gguf-py end to end: {}",
        if met { "met" } else { "missed" }
    );
    Ok(met)
}
