//! `adapterctl quantise --local MODEL_DIR --format FMT -o OUT`: offline quantisation of a
//! model directory to GGUF (q8_0, q4_0, q4_k, q6_k; Llama family) or to a bitsandbytes NF4
//! checkpoint (nf4). The registry job (`quantise MODEL_REF --as …`) is not available yet.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use adapter_core::model::{Hashing, ModelDir};
use adapter_core::quant::convert::{self, Options, QuantReport};
use adapter_core::quant::{GgmlType, QuantError};
use anyhow::anyhow;
use clap::{Args, ValueEnum};

use crate::exit::{CONFLICT, Failure, PROBLEMS};
use crate::output::{field, group_digits};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    #[value(name = "q8_0")]
    Q8_0,
    #[value(name = "q4_0")]
    Q4_0,
    #[value(name = "q4_k")]
    Q4K,
    #[value(name = "q6_k")]
    Q6K,
    Nf4,
}

#[derive(Debug, Args)]
pub struct QuantiseArgs {
    /// A model on the registry (`ns/name[@selector]`): the quantise job is not available yet;
    /// use --local.
    #[arg(value_name = "MODEL_REF")]
    pub model: Option<String>,
    /// Quantise this local model directory (config.json + safetensors weights), offline.
    #[arg(long, value_name = "MODEL_DIR")]
    pub local: Option<PathBuf>,
    /// q8_0, q4_0, q4_k, q6_k: a GGUF file for llama.cpp (Llama family); nf4: a
    /// bitsandbytes NF4 checkpoint directory for QLoRA.
    #[arg(long, value_enum)]
    pub format: Format,
    /// The output: a `.gguf` file, or for nf4 a directory (created).
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    pub output: Option<PathBuf>,
    /// Replace an existing output.
    #[arg(long)]
    pub force: bool,
    /// Encoder threads [default: all cores].
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

pub fn run(args: &QuantiseArgs, json: bool) -> Result<ExitCode, Failure> {
    let Some(dir) = &args.local else {
        return Err(Failure::usage(anyhow!(
            "quantising a registry model (a quantise job) is not available yet: use --local MODEL_DIR -o OUT"
        )));
    };
    if args.model.is_some() {
        return Err(Failure::usage(anyhow!(
            "give either MODEL_REF or --local MODEL_DIR, not both"
        )));
    }
    let Some(out) = &args.output else {
        return Err(Failure::usage(anyhow!("--local needs -o OUT")));
    };
    if args.threads == Some(0) {
        return Err(Failure::usage(anyhow!("--threads must be at least 1")));
    }
    if !dir.is_dir() {
        return Err(Failure::unreadable(anyhow!(
            "{}: not a directory",
            dir.display()
        )));
    }
    clear_output(out, args.force)?;
    let model = ModelDir::open(dir, Hashing::Full)
        .map_err(|e| Failure::unreadable(anyhow!("reading model {}: {e}", dir.display())))?;
    let mut opts = Options::default();
    if let Some(t) = args.threads {
        opts.threads = t;
    }
    if let Some(d) = model.content_digest() {
        opts.lineage.push((
            "adapter_registry.source.content_digest".into(),
            d.to_string(),
        ));
    }
    opts.lineage.push((
        "adapter_registry.source.shape_fingerprint".into(),
        model.shape_fingerprint().to_string(),
    ));
    opts.lineage.push((
        "adapter_registry.tool".into(),
        format!("adapterctl {}", env!("CARGO_PKG_VERSION")),
    ));
    let result = match args.format {
        Format::Nf4 => convert::to_nf4(&model, out, &opts),
        f => convert::to_gguf(&model, ggml(f), out, &opts),
    };
    let report = result.map_err(|e| match e {
        QuantError::Io(e) => Failure::unreadable(anyhow!("writing {}: {e}", out.display())),
        other => Failure::new(PROBLEMS, anyhow!("{}: {other}", dir.display())),
    })?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("report serialises")
        );
    } else {
        print(&report);
    }
    Ok(ExitCode::SUCCESS)
}

fn ggml(f: Format) -> GgmlType {
    match f {
        Format::Q8_0 => GgmlType::Q8_0,
        Format::Q4_0 => GgmlType::Q4_0,
        Format::Q4K => GgmlType::Q4K,
        Format::Q6K => GgmlType::Q6K,
        Format::Nf4 => unreachable!("nf4 is not a ggml type"),
    }
}

fn clear_output(out: &Path, force: bool) -> Result<(), Failure> {
    if !out.exists() {
        return Ok(());
    }
    if !force {
        return Err(Failure::new(
            CONFLICT,
            anyhow!(
                "{}: already exists (use --force to replace it)",
                out.display()
            ),
        ));
    }
    if !out.is_dir() {
        return Ok(()); // a file is replaced by the final rename, only once the new one is complete
    }
    let removed = std::fs::remove_dir_all(out);
    removed.map_err(|e| Failure::unreadable(anyhow!("removing {}: {e}", out.display())))
}

fn print(r: &QuantReport) {
    println!("{} {} → {}", r.format, r.quant_type, r.output.display());
    field("source bytes", group_digits(r.source_bytes));
    field("output bytes", group_digits(r.output_bytes));
    field("tensors", r.tensors.len());
    let worst = r
        .tensors
        .iter()
        .max_by(|a, b| a.relative_rmse.total_cmp(&b.relative_rmse));
    if let Some(w) = worst {
        field(
            "worst rmse",
            format!("{:.4} ({})", w.relative_rmse, w.output_name),
        );
    }
    for t in r.tensors.iter().filter(|t| t.fallback.is_some()) {
        println!(
            "  fallback {}: {}",
            t.output_name,
            t.fallback.as_deref().unwrap_or_default()
        );
    }
    for s in &r.skipped {
        println!("  skipped {s}");
    }
}
