//! `adapterctl merge --local ADAPTER_DIR --base-dir DIR -o OUT_DIR`: the merge kernel run
//! offline (the server-side merge job comes later; without `--local` the command says so).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use adapter_core::merge::{DEFAULT_SHARD_SIZE, MergeError, MergeOptions, Progress, merge_dir};
use adapter_core::safetensors::Dtype;
use clap::{Args, ValueEnum};
use serde_json::json;

use crate::exit::{Failure, INCOMPATIBLE, PROBLEMS, UNREADABLE, USAGE};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DtypeArg {
    Bf16,
    F16,
    F32,
}

impl From<DtypeArg> for Dtype {
    fn from(d: DtypeArg) -> Self {
        match d {
            DtypeArg::Bf16 => Dtype::BF16,
            DtypeArg::F16 => Dtype::F16,
            DtypeArg::F32 => Dtype::F32,
        }
    }
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// An adapter on the registry: the merge job is not available yet (use --local).
    #[arg(value_name = "ADAPTER_REF")]
    pub adapter: Option<String>,
    /// Merge offline: ADAPTER_DIR (adapter_config.json + adapter_model.safetensors) into the
    /// base model in --base-dir, writing a new model directory -o OUT_DIR.
    #[arg(long, value_name = "ADAPTER_DIR")]
    pub local: Option<PathBuf>,
    /// The base model directory (config.json + model.safetensors or a sharded index).
    #[arg(long, value_name = "DIR")]
    pub base_dir: Option<PathBuf>,
    /// The output directory (must not exist; written only when the merge succeeds).
    #[arg(short = 'o', long = "out", value_name = "OUT_DIR")]
    pub out: Option<PathBuf>,
    /// Output dtype of the float tensors (default: each base tensor's own).
    #[arg(long, value_enum)]
    pub dtype: Option<DtypeArg>,
    /// Largest output shard in bytes; more than one shard adds model.safetensors.index.json.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_SHARD_SIZE)]
    pub shard_size: u64,
}

fn failure(e: MergeError) -> Failure {
    let code = match &e {
        MergeError::Usage(_) => USAGE,
        MergeError::Incompatible(_) => INCOMPATIBLE,
        MergeError::Refused(_) | MergeError::Input(_) => PROBLEMS,
        MergeError::Path { .. }
        | MergeError::Io(_)
        | MergeError::Model(_)
        | MergeError::Peft(_) => UNREADABLE,
    };
    let mut f = Failure::new(code, anyhow::anyhow!("{e}"));
    f.api_code = Some(e.code().to_owned());
    if let MergeError::Incompatible(reasons) = &e {
        f.details = json!({ "reasons": reasons });
    }
    f
}

pub fn run(args: &MergeArgs, json_out: bool) -> Result<ExitCode, Failure> {
    let Some(adapter) = &args.local else {
        return Err(Failure::usage(anyhow::anyhow!(
            "the server-side merge job is not available yet: use `adapterctl merge --local \
             ADAPTER_DIR --base-dir DIR -o OUT_DIR`"
        )));
    };
    let (Some(base), Some(out)) = (&args.base_dir, &args.out) else {
        return Err(Failure::usage(anyhow::anyhow!(
            "merge --local needs --base-dir DIR and -o OUT_DIR"
        )));
    };
    let options = MergeOptions {
        dtype: args.dtype.map(Into::into),
        shard_size: args.shard_size,
    };
    let show = !json_out && std::io::stderr().is_terminal();
    let mut progress = |p: Progress<'_>| {
        if show {
            eprint!("\r\x1b[2K[{}/{}] {}", p.done, p.total, p.tensor.name);
        }
    };
    let summary = merge_dir(adapter, base, out, &options, &mut progress).map_err(failure)?;
    if show {
        eprintln!();
    }
    if json_out {
        println!(
            "{}",
            serde_json::to_string_pretty(&summary).unwrap_or_default()
        );
    } else {
        println!("merged into {}", summary.output.display());
        println!(
            "  tensors  {} ({} merged, {} replaced, {} copied)",
            summary.tensors, summary.merged, summary.replaced, summary.copied
        );
        for f in &summary.files {
            println!("  {:<40} {:>14} bytes", f.path, f.size);
        }
        for w in &summary.warnings {
            println!("  warning: {w}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
