//! `adapterctl merge ADAPTER_REF [--base MODEL_REF] --as NS/NAME@VERSION [--wait]`: queue a
//! `merge` job on the registry (the result is a new model version with lineage);
//! `adapterctl merge --local ADAPTER_DIR --base-dir DIR -o OUT_DIR`: the same kernel offline.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use adapter_core::api::jobs::KIND_MERGE;
use adapter_core::api::{JobSubmit, MergeParams};
use adapter_core::merge::{
    DEFAULT_SHARD_SIZE, Device, MergeError, MergeOptions, Progress, merge_dir,
};
use adapter_core::safetensors::Dtype;
use clap::{Args, ValueEnum};
use serde_json::json;

use crate::Ctx;
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
    /// The adapter on the registry: `ns/name[@selector]` (a `merge` job; needs --as).
    #[arg(value_name = "ADAPTER_REF", conflicts_with = "local")]
    pub adapter: Option<String>,
    /// The base model on the registry (default: the registered base the adapter names).
    #[arg(long, value_name = "MODEL_REF", requires = "adapter")]
    pub base: Option<String>,
    /// The model version to create: `ns/name@version`.
    #[arg(long = "as", value_name = "NS/NAME@VERSION", requires = "adapter")]
    pub output: Option<String>,
    /// Where the LoRA products are computed (the worker's device for a job): auto, cpu or
    /// cuda:N (a build with the `cuda` feature); auto picks GPU 0 when there is one.
    #[arg(long, value_name = "DEVICE")]
    pub device: Option<String>,
    /// Wait for the merge to finish (a progress bar on a terminal) and print the new version.
    #[arg(long, requires = "adapter")]
    pub wait: bool,
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
        MergeError::Refused(_) | MergeError::Input(_) | MergeError::Device(_) => PROBLEMS,
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

pub fn run(ctx: &Ctx, args: &MergeArgs) -> Result<ExitCode, Failure> {
    let json_out = ctx.json;
    let Some(adapter) = &args.local else {
        crate::runtime()?.block_on(remote(ctx, args))?;
        return Ok(ExitCode::SUCCESS);
    };
    let (Some(base), Some(out)) = (&args.base_dir, &args.out) else {
        return Err(Failure::usage(anyhow::anyhow!(
            "merge --local needs --base-dir DIR and -o OUT_DIR"
        )));
    };
    let options = MergeOptions {
        dtype: args.dtype.map(Into::into),
        shard_size: args.shard_size,
        device: Device::open(args.device.as_deref().unwrap_or("auto")).map_err(failure)?,
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
        println!("  device   {}", summary.device);
        for f in &summary.files {
            println!("  {:<40} {:>14} bytes", f.path, f.size);
        }
        for w in &summary.warnings {
            println!("  warning: {w}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Submit the merge job; with `--wait`, follow it and print the new version.
async fn remote(ctx: &Ctx, args: &MergeArgs) -> Result<(), Failure> {
    let (Some(adapter), Some(output)) = (&args.adapter, &args.output) else {
        return Err(Failure::usage(anyhow::anyhow!(
            "merge ADAPTER_REF needs --as NS/NAME@VERSION (or merge offline with --local)"
        )));
    };
    crate::pull::parse_reference(adapter)?;
    let mut inputs = std::collections::BTreeMap::from([("adapter".to_owned(), adapter.clone())]);
    if let Some(base) = &args.base {
        crate::pull::parse_reference(base)?;
        inputs.insert("base".to_owned(), base.clone());
    }
    let params = MergeParams {
        output: output.clone(),
        dtype: args.dtype.map(|d| Dtype::from(d).as_str().to_lowercase()),
        shard_size: (args.shard_size != DEFAULT_SHARD_SIZE).then_some(args.shard_size),
        device: args.device.clone(),
    };
    let req = JobSubmit {
        kind: KIND_MERGE.to_owned(),
        inputs,
        params: Some(serde_json::to_value(&params).map_err(anyhow::Error::from)?),
        idempotency_key: None,
    };
    crate::jobs::submit_and_follow(ctx, &req, args.wait, "merge", |job| {
        let result = job.result.clone().unwrap_or_default();
        let out = result["output"].as_str().unwrap_or_default().to_owned();
        let mut lines = vec![format!(
            "merged {} into {} as {out} ({})",
            crate::jobs::input_ref(job, "adapter"),
            crate::jobs::input_ref(job, "base"),
            result["manifest_digest"].as_str().unwrap_or_default()
        )];
        if let Some(t) = result.get("tensors").filter(|t| !t.is_null()) {
            lines.push(format!(
                "  tensors: {} merged, {} replaced, {} copied",
                t["merged"], t["replaced"], t["copied"]
            ));
        }
        lines
    })
    .await
}
