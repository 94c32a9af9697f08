//! The `quantise` job: a model version → GGUF (Q8_0, Q4_0, Q4_K, Q6_K, F16; llama.cpp's
//! names, hyper-parameters and tokenizer metadata) or an NF4 checkpoint in the bitsandbytes
//! layout, with the kernels of `adapter_core::quant` (docs/QUANTISE.md). Tensors stream from
//! the blob store one at a time, the output streams into a staged object; the result is
//! published as a new model version with lineage, and the per-tensor error report is stored
//! with it as `quantisation_report.json`.
//!
//! Like the merge job, attempts are safe to repeat (byte-deterministic output, staged
//! objects, the version published last).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use adapter_core::api::QuantiseParams;
use adapter_core::manifest::Kind;
use adapter_core::merge::{MergeError, TensorSource, is_copied_file};
use adapter_core::model::CONFIG_FILE;
use adapter_core::quant::tokenizer::MAX_TOKENIZER_JSON;
use adapter_core::quant::{GgmlType, ModelInput, Options, QuantError, write_gguf, write_nf4};
use adapter_core::safetensors::TensorInfo;
use serde_json::{Value, json};

use super::blobio::{BlobTensors, BlobWriter, clear_staging, commit, put_small};
use super::derived::{self, Output, check_device};
use super::inputs::{json_file, load};
use super::{Ctx, JobError, JobResult};
use crate::blobs::blob_key;
use crate::error::ApiResult;

pub const KIND: &str = adapter_core::api::jobs::KIND_QUANTISE;

/// The report stored beside the output.
pub const REPORT_FILE: &str = "quantisation_report.json";
/// Largest `tokenizer.json` read: the kernel's own bound.
const MAX_TOKENIZER: u64 = MAX_TOKENIZER_JSON as u64;

/// What to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Gguf(GgmlType),
    Nf4 { double_quant: bool },
}

/// The checked parameters.
#[derive(Debug, Clone)]
pub struct Checked {
    pub output: Output,
    pub format: Format,
    pub device: String,
}

/// Check a quantise job's `params` (at submit, and again when it runs).
pub fn check_params(params: &Value) -> ApiResult<Checked> {
    let p: QuantiseParams = serde_json::from_value(params.clone())
        .map_err(|e| derived::invalid_param("", format!("quantise params: {e}")))?;
    let output = Output::parse(&p.output)?;
    let format = match p.format.as_str() {
        "gguf" => {
            if p.double_quant.is_some() {
                return Err(derived::invalid_param(
                    "double_quant",
                    "double_quant applies to nf4 only".into(),
                ));
            }
            let ty = match p.quant_type.as_deref().unwrap_or("q8_0") {
                t @ ("q8_0" | "q4_0" | "q4_k" | "q6_k" | "f16") => t
                    .parse::<GgmlType>()
                    .map_err(|e| derived::invalid_param("quant_type", e.to_string()))?,
                t => {
                    return Err(derived::invalid_param(
                        "quant_type",
                        format!(
                            "quant_type `{}`: expected q8_0, q4_0, q4_k, q6_k or f16",
                            t.escape_debug()
                        ),
                    ));
                }
            };
            Format::Gguf(ty)
        }
        "nf4" => {
            if p.quant_type.is_some() {
                return Err(derived::invalid_param(
                    "quant_type",
                    "quant_type applies to gguf only".into(),
                ));
            }
            Format::Nf4 {
                double_quant: p.double_quant.unwrap_or(false),
            }
        }
        f => {
            return Err(derived::invalid_param(
                "format",
                format!("format `{}`: expected gguf or nf4", f.escape_debug()),
            ));
        }
    };
    Ok(Checked {
        output,
        format,
        device: check_device(p.device.as_deref(), false)?,
    })
}

/// Counts the tensors the kernel reads (progress). Fail point `job.tensor_written` (a
/// `test-hooks` build; e.g. `FAILPOINTS=job.tensor_written=sleep(400)`) after each.
struct Counting<'a> {
    inner: &'a mut dyn TensorSource,
    done: Arc<AtomicUsize>,
}

impl TensorSource for Counting<'_> {
    fn tensor(&mut self, info: &TensorInfo) -> Result<Box<dyn std::io::Read + '_>, MergeError> {
        if self.done.fetch_add(1, Ordering::Relaxed) > 0 {
            fail::fail_point!("job.tensor_written");
        }
        self.inner.tensor(info)
    }
}

/// A refusal of the kernel fails the job for good; an I/O error (the blob store, the
/// upload) may pass on retry.
fn quant_error(e: QuantError) -> JobError {
    let transient = match &e {
        QuantError::Io(_) => true,
        QuantError::Source { source, .. } => {
            matches!(**source, MergeError::Io(_) | MergeError::Path { .. })
        }
        _ => false,
    };
    if transient {
        JobError::Failed(anyhow::anyhow!("{e}"))
    } else {
        JobError::Fatal(anyhow::anyhow!("{e}"))
    }
}

/// The job.
pub async fn run(ctx: Ctx) -> JobResult {
    let checked = check_params(&ctx.params).map_err(JobError::fatal)?;
    let model_in = ctx.input("model")?.clone();
    if let Some(done) = derived::claim_output(&ctx, &checked.output).await? {
        ctx.log("an earlier attempt published the result").await;
        return Ok(derived::result_of(&done, "report"));
    }
    ctx.log(format!(
        "quantising {} ({:?}) as {} on {}",
        model_in.reference,
        checked.format,
        checked.output.reference(),
        checked.device
    ))
    .await;
    let model = load(&ctx.app, Kind::Model, &model_in.reference).await?;
    let files = derived::stored_weights(&model, &model_in.reference, "quantise it")?;
    let source_bytes = files.iter().map(|f| f.size).sum();
    let (mut source, tensors) = BlobTensors::open(&ctx.app, &files, "invalid_model").await?;
    let json = |path| json_file(&ctx.app, &model.manifest, path, "invalid_model");
    let config = json(CONFIG_FILE).await.map_err(JobError::fatal)?;
    let tokenizer_config = json("tokenizer_config.json")
        .await
        .map_err(JobError::fatal)?;
    let tokenizer_json = match model.manifest.file("tokenizer.json") {
        Some(f) if f.size > MAX_TOKENIZER => {
            return Err(JobError::fatal(format!(
                "tokenizer.json is {} bytes; the limit is {MAX_TOKENIZER}",
                f.size
            )));
        }
        Some(f) => Some(
            ctx.app
                .blobs
                .read_range(&blob_key(&f.digest), 0..f.size)
                .await
                .map_err(anyhow::Error::from)?
                .to_vec(),
        ),
        None => None,
    };

    clear_staging(&ctx.app, &ctx.id).await?;
    let mut writer = BlobWriter::new(&ctx.app, &ctx.id, ctx.cancel_flag());
    let done = Arc::new(AtomicUsize::new(0));
    let counter = done.clone();
    let (name, format, total) = (model_in.reference.clone(), checked.format, tensors.len());
    let from = model.summary.model();
    let digests = [
        ("content_digest", from.map(|m| m.content_digest)),
        ("shape_fingerprint", from.and_then(|m| m.shape_fingerprint)),
    ];
    let mut lineage = vec![
        (
            "adapter_registry.source.reference".to_owned(),
            model_in.reference.clone(),
        ),
        (
            "adapter_registry.source.manifest_digest".to_owned(),
            model_in.manifest_digest.to_string(),
        ),
    ];
    for (k, d) in digests {
        if let Some(d) = d {
            lineage.push((format!("adapter_registry.source.{k}"), d.to_string()));
        }
    }
    lineage.push(("adapter_registry.tool".to_owned(), derived::tool()));
    let content_digest = digests[0].1;
    let (report, new_config, staged) =
        derived::run_blocking(&ctx, done, total, "tensors", move || {
            let mut counting = Counting {
                inner: &mut source,
                done: counter,
            };
            let mut input = ModelInput {
                name,
                config,
                tensors,
                tokenizer_json,
                tokenizer_config,
                source_bytes,
                source: &mut counting,
            };
            let mut opts = Options {
                lineage,
                ..Options::default()
            };
            let (report, config) = match format {
                Format::Gguf(ty) => (
                    write_gguf(&mut input, ty, &opts, &mut writer).map_err(quant_error)?,
                    None,
                ),
                Format::Nf4 { double_quant } => {
                    opts.double_quant = double_quant;
                    let (r, c) = write_nf4(&mut input, &opts, &mut writer).map_err(quant_error)?;
                    (r, Some(c))
                }
            };
            Ok((report, config, writer.finish()?))
        })
        .await?;
    commit(&ctx.app, &staged).await?;
    let (weights_name, type_name) = match checked.format {
        Format::Gguf(ty) => (format!("model-{}.gguf", ty.name()), ty.name().to_owned()),
        Format::Nf4 { .. } => ("model.safetensors".to_owned(), "nf4".to_owned()),
    };
    let mut entries = vec![derived::file_entry(
        &weights_name,
        staged.size,
        staged.digest,
    )?];
    let report_json = serde_json::to_vec_pretty(&report).map_err(anyhow::Error::from)?;
    let (d, n) = put_small(&ctx.app, report_json).await?;
    entries.push(derived::file_entry(REPORT_FILE, n, d)?);
    if let Some(c) = new_config {
        let bytes = serde_json::to_vec_pretty(&c).map_err(anyhow::Error::from)?;
        let (d, n) = put_small(&ctx.app, bytes).await?;
        entries.push(derived::file_entry(CONFIG_FILE, n, d)?);
        // The tokenizer and generation files stay as they are, by digest.
        entries.extend(
            model
                .manifest
                .files()
                .iter()
                .filter(|f| is_copied_file(f.path.as_str()) && f.path.as_str() != CONFIG_FILE)
                .cloned(),
        );
    }
    let fallbacks: Vec<Value> = report
        .tensors
        .iter()
        .filter_map(|t| {
            t.fallback
                .as_ref()
                .map(|f| json!({ "tensor": t.name, "why": f, "stored_as": t.stored_as }))
        })
        .collect();
    let summary = json!({
        "output_bytes": report.output_bytes,
        "source_bytes": report.source_bytes,
        "tensors": report.tensors.len(),
        "fallbacks": fallbacks.len(),
        "max_relative_rmse": report.tensors.iter().map(|t| t.relative_rmse).fold(0.0, f64::max),
    });
    let recipe = json!({
        "format": match checked.format { Format::Gguf(_) => "gguf", Format::Nf4 { .. } => "nf4" },
        "quant_type": type_name,
        "double_quant": matches!(checked.format, Format::Nf4 { double_quant: true }),
        "fallbacks": fallbacks,
        "device": checked.device,
        "report": summary,
        "tool": derived::tool(),
    });
    let inputs = vec![derived::derived_input(
        "model",
        Kind::Model,
        &model_in,
        content_digest,
    )];
    ctx.checkpoint()?;
    let info = derived::publish(&ctx, &checked.output, entries, inputs, recipe).await?;
    Ok(derived::result_of(&info, "report"))
}
