//! `adapterctl quantise MODEL_REF --format FMT --as NS/NAME@VERSION [--wait]`: a `quantise`
//! job on the registry (the result is a new model version with lineage and the error report);
//! `adapterctl quantise --local MODEL_DIR --format FMT -o OUT`: the same kernels offline.
//! Formats: GGUF (q8_0, q4_0, q4_k, q6_k; Llama family) or a bitsandbytes NF4 checkpoint.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use adapter_core::api::jobs::KIND_QUANTISE;
use adapter_core::api::{JobSubmit, QuantiseParams};
use adapter_core::digest::{Digest, sha256_file};
use adapter_core::model::{Hashing, ModelDir};
use adapter_core::quant::convert::{self, Options, QuantReport};
use adapter_core::quant::{GgmlType, QuantError};
use anyhow::anyhow;
use clap::{Args, ValueEnum};
use serde_json::json;

use crate::Ctx;
use crate::cache::{DigestCache, Lookup, Miss};
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
    /// A model on the registry (`ns/name[@selector]`): a `quantise` job (needs --as).
    #[arg(value_name = "MODEL_REF", conflicts_with = "local")]
    pub model: Option<String>,
    /// The model version to create: `ns/name@version`.
    #[arg(long = "as", value_name = "NS/NAME@VERSION", requires = "model")]
    pub as_version: Option<String>,
    /// Where the worker computes: auto, cpu or cuda:N.
    #[arg(long, value_name = "DEVICE", requires = "model")]
    pub device: Option<String>,
    /// Wait for the job to finish (a progress bar on a terminal) and print the new version.
    #[arg(long, requires = "model")]
    pub wait: bool,
    /// nf4: also quantise the absmax values (bitsandbytes `bnb_4bit_use_double_quant`).
    #[arg(long)]
    pub double_quant: bool,
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

pub fn run(ctx: &Ctx, args: &QuantiseArgs) -> Result<ExitCode, Failure> {
    let json = ctx.json;
    let Some(dir) = &args.local else {
        crate::runtime()?.block_on(remote(ctx, args))?;
        return Ok(ExitCode::SUCCESS);
    };
    if args.double_quant && args.format != Format::Nf4 {
        return Err(Failure::usage(anyhow!(
            "--double-quant applies to --format nf4"
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
    let mut model = ModelDir::open(dir, Hashing::HeadersOnly)
        .map_err(|e| Failure::unreadable(anyhow!("reading model {}: {e}", dir.display())))?;
    let mut opts = Options {
        double_quant: args.double_quant,
        ..Options::default()
    };
    if let Some(t) = args.threads {
        opts.threads = t;
    }
    // The weights' content digest (the lineage's) comes from the digest cache that `push`
    // keeps too, for every file unchanged since it was last hashed; otherwise GGUF hashes the
    // weights on a thread of their own while it quantises them (`to_gguf_hashing`), and NF4
    // hashes them first. New digests go into the cache.
    let mut cache = DigestCache::load(ctx.cache_dir.as_deref());
    let mut misses = Vec::new();
    for (i, f) in model.files.iter_mut().enumerate() {
        let path = model.root.join(&f.path);
        match cache.lookup(&path).map_err(unreadable(&path))? {
            Lookup::Hit(digest, _) => f.digest = Some(digest),
            Lookup::Miss(miss) => misses.push((i, miss)),
        }
    }
    let hashing_while = args.format != Format::Nf4 && !misses.is_empty();
    if !hashing_while {
        for (i, miss) in &misses {
            let f = &mut model.files[*i];
            let (digest, len) = sha256_file(&miss.path).map_err(unreadable(&miss.path))?;
            f.digest = Some(digest);
            remember(&mut cache, miss, digest, len);
        }
    }
    if let Some(d) = model.content_digest() {
        let entry = (convert::CONTENT_DIGEST_KEY.to_owned(), d.to_string());
        // GGUF puts it first, as `to_gguf_hashing` does (the same bytes either way).
        match args.format {
            Format::Nf4 => opts.lineage.push(entry),
            _ => opts.lineage.insert(0, entry),
        }
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
        f if hashing_while => {
            convert::to_gguf_hashing(&model, ggml(f), out, &opts).map(|(report, _, files)| {
                for (i, miss) in &misses {
                    let size = model.files[*i].size;
                    remember(&mut cache, miss, files[*i], size);
                }
                report
            })
        }
        f => convert::to_gguf(&model, ggml(f), out, &opts),
    };
    let report = result.map_err(|e| match e {
        QuantError::Io(e) => Failure::unreadable(anyhow!("writing {}: {e}", out.display())),
        other => Failure::new(PROBLEMS, anyhow!("{}: {other}", dir.display())),
    })?;
    if let Err(e) = cache.save() {
        eprintln!("warning: could not save the digest cache: {e:#}");
    }
    if json {
        let mut v = serde_json::to_value(&report).expect("report serialises");
        v["digest_cache"] = json!({"hits": cache.hits, "hashed_bytes": cache.hashed_bytes});
        println!("{}", serde_json::to_string_pretty(&v).expect("serialises"));
    } else {
        print(&report);
    }
    Ok(ExitCode::SUCCESS)
}

fn unreadable(path: &Path) -> impl Fn(std::io::Error) -> Failure + '_ {
    move |e| Failure::unreadable(anyhow!("{}: {e}", path.display()))
}

/// Keep a digest in the cache (a file that changed meanwhile is not kept).
fn remember(cache: &mut DigestCache, miss: &Miss, digest: Digest, len: u64) {
    if let Err(e) = cache.remember(miss, digest, len) {
        eprintln!("warning: {}: {e}", miss.path.display());
    }
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

/// Submit the quantise job; with `--wait`, follow it and print the new version.
async fn remote(ctx: &Ctx, args: &QuantiseArgs) -> Result<(), Failure> {
    let (Some(model), Some(output)) = (&args.model, &args.as_version) else {
        return Err(Failure::usage(anyhow!(
            "quantise MODEL_REF needs --as NS/NAME@VERSION (or quantise offline with --local)"
        )));
    };
    crate::pull::parse_reference(model)?;
    let (format, quant_type) = match args.format {
        Format::Nf4 => ("nf4", None),
        f => ("gguf", Some(ggml(f).name().to_owned())),
    };
    let params = QuantiseParams {
        output: output.clone(),
        format: format.to_owned(),
        quant_type,
        double_quant: args.double_quant.then_some(true),
        device: args.device.clone(),
    };
    let req = JobSubmit {
        kind: KIND_QUANTISE.to_owned(),
        inputs: [("model".to_owned(), model.clone())].into(),
        params: Some(serde_json::to_value(&params).map_err(anyhow::Error::from)?),
        idempotency_key: None,
    };
    crate::jobs::submit_and_follow(ctx, &req, args.wait, "quantise", |job| {
        let r = job.result.clone().unwrap_or_default();
        let mut lines = vec![format!(
            "quantised {} as {} ({})",
            crate::jobs::input_ref(job, "model"),
            r["output"].as_str().unwrap_or_default(),
            r["manifest_digest"].as_str().unwrap_or_default()
        )];
        if let Some(rep) = r.get("report").filter(|v| !v.is_null()) {
            lines.push(format!(
                "  {} tensors, {} fallback(s), worst relative RMSE {:.4}, {} bytes",
                rep["tensors"],
                rep["fallbacks"],
                rep["max_relative_rmse"].as_f64().unwrap_or(0.0),
                rep["output_bytes"]
            ));
        }
        lines
    })
    .await
}
