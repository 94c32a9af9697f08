//! `adapterctl inspect DIR [--base-dir BASE_DIR]`: offline inspection of an adapter or a model.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use adapter_core::model::{Hashing, ModelDir};
use adapter_core::peft::{self, AdapterReport};
use anyhow::Context;
use serde_json::json;

use crate::exit::{Failure, PROBLEMS};
use crate::output::{field, findings, group_digits};

/// Arguments of `adapterctl inspect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// An adapter directory (adapter_config.json + adapter_model.safetensors) or a model
    /// directory (config.json + model.safetensors or a sharded index).
    dir: PathBuf,
    /// Also check the adapter against this base model directory (headers only).
    #[arg(long, value_name = "BASE_DIR")]
    base_dir: Option<PathBuf>,
}

pub fn run(args: &Args, json: bool) -> Result<ExitCode, Failure> {
    let (dir, base_dir) = (args.dir.as_path(), args.base_dir.as_deref());
    if !dir.is_dir() {
        return Err(Failure::unreadable(anyhow::anyhow!(
            "{}: not a directory",
            dir.display()
        )));
    }
    if dir.join(peft::CONFIG_FILE).is_file() {
        inspect_adapter(dir, base_dir, json)
    } else if base_dir.is_some() {
        Err(Failure::unreadable(anyhow::anyhow!(
            "{}: --base-dir applies to adapters, and this directory has no {}",
            dir.display(),
            peft::CONFIG_FILE
        )))
    } else {
        inspect_model(dir, json)
    }
}

fn inspect_adapter(dir: &Path, base_dir: Option<&Path>, json: bool) -> Result<ExitCode, Failure> {
    let base = match base_dir {
        Some(b) => Some(
            ModelDir::open(b, Hashing::HeadersOnly)
                .with_context(|| format!("reading base model {}", b.display()))
                .map_err(Failure::unreadable)?,
        ),
        None => None,
    };
    let base_tensors = base.as_ref().map(ModelDir::tensor_infos);
    let report = peft::inspect_adapter_dir(dir, base_tensors.as_ref())
        .with_context(|| format!("reading adapter {}", dir.display()))
        .map_err(Failure::unreadable)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("report serialises")
        );
    } else {
        print_adapter(dir, base_dir, &report);
    }
    Ok(exit_for(!report.findings.errors.is_empty()))
}

fn print_adapter(dir: &Path, base_dir: Option<&Path>, r: &AdapterReport) {
    println!("adapter {}", dir.display());
    field("peft type", format!("{} ({})", r.peft_type, r.variant));
    if let Some(task) = &r.task_type {
        field("task", task);
    }
    field(
        "base model",
        r.base_model_name_or_path
            .as_deref()
            .unwrap_or("(not recorded)"),
    );
    if let Some(b) = base_dir {
        field("checked on", b.display());
    }
    let ranks: Vec<u64> = r.modules.iter().map(|m| m.rank).collect();
    let (lo, hi) = (ranks.iter().min(), ranks.iter().max());
    let rank = match (lo, hi) {
        (Some(lo), Some(hi)) if lo != hi => format!("{} (per module {lo}–{hi})", r.r),
        _ => r.r.to_string(),
    };
    field("rank", rank);
    field("alpha", r.lora_alpha);
    field("targets", r.target_modules.join(", "));
    if !r.layers.is_empty() {
        let layers: Vec<String> = r.layers.iter().map(ToString::to_string).collect();
        field("layers", layers.join(", "));
    }
    let dtypes: Vec<String> = r.dtypes.iter().map(ToString::to_string).collect();
    field("dtypes", dtypes.join(", "));
    field("parameters", group_digits(r.parameters));
    field("modules", r.modules.len());
    if !r.modules.is_empty() {
        println!();
        let width = r
            .modules
            .iter()
            .map(|m| m.base_tensor.len())
            .max()
            .unwrap_or(0);
        println!(
            "  {:<width$}  {:>5} {:>7} {:>9} {:>7} {:>7}",
            "base tensor", "rank", "alpha", "scale", "in", "out"
        );
        for m in &r.modules {
            println!(
                "  {:<width$}  {:>5} {:>7} {:>9.4} {:>7} {:>7}",
                m.base_tensor, m.rank, m.alpha, m.scale, m.in_features, m.out_features
            );
        }
    }
    println!();
    findings(&r.findings);
}

fn inspect_model(dir: &Path, json: bool) -> Result<ExitCode, Failure> {
    let m = ModelDir::open(dir, Hashing::Full)
        .with_context(|| format!("reading model {}", dir.display()))
        .map_err(Failure::unreadable)?;
    let content = m
        .content_digest()
        .expect("full hashing yields a content digest");
    let fingerprint = m.shape_fingerprint();
    let config = m.config.as_ref();
    let config_str = |key: &str| config.and_then(|c| c.get(key)).cloned();
    if json {
        let files: Vec<_> = m
            .files
            .iter()
            .map(|f| json!({"path": f.path, "size": f.size, "sha256": f.digest, "tensors": f.header.tensors.len()}))
            .collect();
        let out = json!({
            "kind": "model",
            "content_digest": content,
            "shape_fingerprint": fingerprint,
            "tensor_count": m.tensors.len(),
            "parameters": m.parameters(),
            "dtypes": m.dtypes().into_iter().map(|(d, n)| (d.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
            "files": files,
            "model_type": config_str("model_type"),
            "architectures": config_str("architectures"),
            "num_hidden_layers": config_str("num_hidden_layers"),
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&out).expect("model summary serialises")
        );
    } else {
        println!("model {}", dir.display());
        if let Some(t) = config_str("model_type") {
            field("model type", t.as_str().unwrap_or("?"));
        }
        field("content", content);
        field("fingerprint", fingerprint);
        field("tensors", m.tensors.len());
        field("parameters", group_digits(m.parameters()));
        let dtypes: Vec<String> = m
            .dtypes()
            .into_iter()
            .map(|(d, n)| format!("{d} ×{n}"))
            .collect();
        field("dtypes", dtypes.join(", "));
        for f in &m.files {
            let digest = f.digest.map(|d| d.to_string()).unwrap_or_default();
            field(
                "file",
                format!("{} ({} bytes) {digest}", f.path, group_digits(f.size)),
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn exit_for(has_errors: bool) -> ExitCode {
    if has_errors {
        ExitCode::from(PROBLEMS)
    } else {
        ExitCode::SUCCESS
    }
}
