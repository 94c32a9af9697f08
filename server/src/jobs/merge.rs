//! The `merge` job: an adapter version merged into its base model version, exactly as PEFT's
//! `merge_and_unload()` (the kernel is `adapter_core::merge`, docs/MERGE.md), streamed from
//! the blob store tensor by tensor and into it shard by shard, then published as a new model
//! version whose lineage names both inputs and the scales used.
//!
//! Attempts are safe to repeat: the output is byte-deterministic, staged objects are only
//! made blobs once complete, and the version is published last (a publish of identical
//! content is idempotent). A worker killed mid-merge leaves no version; the next attempt
//! starts over.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use adapter_core::api::MergeParams;
use adapter_core::compat::{AdapterFacts, BaseFacts};
use adapter_core::manifest::Kind;
use adapter_core::merge::{
    DEFAULT_SHARD_SIZE, Device, MergeError, MergeOptions, MergePlan, is_copied_file, plan,
    write_shard,
};
use adapter_core::model::INDEX_FILE;
use adapter_core::peft::WEIGHTS_FILE;
use adapter_core::safetensors::Dtype;
use anyhow::Context as _;
use serde_json::{Value, json};

use super::blobio::{
    BlobTensors, BlobWriter, Staged, StoredFile, clear_staging, commit, put_small,
};
use super::derived::{self, Output, check_device};
use super::inputs::{Loaded, adapter_facts, base_facts_of, load};
use super::{Ctx, JobError, JobResult};
use crate::error::ApiResult;

pub const KIND: &str = adapter_core::api::jobs::KIND_MERGE;

/// Smallest shard size a job accepts.
pub const MIN_SHARD_SIZE: u64 = 64 << 10;

/// The checked parameters.
#[derive(Debug, Clone)]
pub struct Checked {
    pub output: Output,
    pub options: MergeOptions,
    /// `auto`, `cpu` or `cuda:N` (opened when the job runs).
    pub device: String,
}

/// Check a merge job's `params` (at submit, and again when it runs).
pub fn check_params(params: &Value) -> ApiResult<Checked> {
    let p: MergeParams = serde_json::from_value(params.clone())
        .map_err(|e| derived::invalid_param("", format!("merge params: {e}")))?;
    let output = Output::parse(&p.output)?;
    let dtype = match p.dtype.as_deref() {
        None => None,
        Some(d @ ("bf16" | "f16" | "f32")) => Some(
            d.to_uppercase()
                .parse::<Dtype>()
                .map_err(|e| derived::invalid_param("dtype", e.to_string()))?,
        ),
        Some(d) => {
            return Err(derived::invalid_param(
                "dtype",
                format!("dtype `{}`: expected bf16, f16 or f32", d.escape_debug()),
            ));
        }
    };
    let shard_size = p.shard_size.unwrap_or(DEFAULT_SHARD_SIZE);
    if shard_size < MIN_SHARD_SIZE {
        return Err(derived::invalid_param(
            "shard_size",
            format!("shard_size is at least {MIN_SHARD_SIZE} bytes"),
        ));
    }
    Ok(Checked {
        output,
        options: MergeOptions {
            dtype,
            shard_size,
            ..MergeOptions::default()
        },
        device: check_device(p.device.as_deref(), true)?,
    })
}

/// A refusal of the kernel fails the job for good; an I/O error may pass on retry.
fn merge_error(e: MergeError) -> JobError {
    match e {
        MergeError::Io(_) | MergeError::Path { .. } => JobError::Failed(e.into()),
        other => JobError::Fatal(anyhow::anyhow!("{other}")),
    }
}

fn stored(loaded: &Loaded, path: &str) -> anyhow::Result<StoredFile> {
    let f = loaded
        .manifest
        .file(path)
        .with_context(|| format!("the version has no {path}"))?;
    Ok(StoredFile {
        path: path.to_owned(),
        digest: f.digest,
        size: f.size,
    })
}

/// The job.
pub async fn run(ctx: Ctx) -> JobResult {
    let checked = check_params(&ctx.params).map_err(JobError::fatal)?;
    let adapter_in = ctx.input("adapter")?.clone();
    let base_in = ctx.input("base")?.clone();
    if let Some(done) = derived::claim_output(&ctx, &checked.output).await? {
        ctx.log("an earlier attempt published the result").await;
        return Ok(derived::result_of(&done, "tensors"));
    }
    let name = checked.device.clone();
    let device = tokio::task::spawn_blocking(move || Device::open(&name))
        .await
        .map_err(|e| JobError::Failed(e.into()))?
        .map_err(merge_error)?;
    ctx.log(format!(
        "merging {} into {} as {} on {}",
        adapter_in.reference,
        base_in.reference,
        checked.output.reference(),
        device.name()
    ))
    .await;
    let adapter = load(&ctx.app, Kind::Adapter, &adapter_in.reference).await?;
    let base = load(&ctx.app, Kind::Model, &base_in.reference).await?;
    let base_files = derived::stored_weights(&base, &base_in.reference, "merge into it")?;
    let facts: AdapterFacts = adapter_facts(&ctx.app, &adapter).await?;
    // The base's headers, read once: to plan, and to stream its tensors.
    let (base_src, tensors) = BlobTensors::open(&ctx.app, &base_files, "invalid_model").await?;
    let base_facts: BaseFacts = base_facts_of(&ctx.app, &base, tensors).await?;
    let content_digest = base_facts.content_digest;
    let planned = plan(&facts, &base_facts, &checked.options).map_err(merge_error)?;
    ctx.log(format!(
        "plan: {} tensors in {} shard(s), {} module(s) merged",
        planned.tensor_count(),
        planned.shards.len(),
        planned.scales.len()
    ))
    .await;

    clear_staging(&ctx.app, &ctx.id).await?;
    let files = write_shards(&ctx, &adapter, base_src, &planned, device.clone()).await?;
    let mut entries = Vec::new();
    for (name, staged) in files {
        commit(&ctx.app, &staged).await?;
        entries.push(derived::file_entry(&name, staged.size, staged.digest)?);
    }
    if let Some(index) = planned.index_json() {
        let (digest, size) = put_small(&ctx.app, index).await?;
        entries.push(derived::file_entry(INDEX_FILE, size, digest)?);
    }
    for f in base.manifest.files() {
        if is_copied_file(f.path.as_str()) {
            entries.push(f.clone());
        }
    }
    let (merged, replaced, copied) = planned.counts();
    let recipe = json!({
        "dtype": checked.options.dtype.map(|d| d.to_string()),
        "shard_size": checked.options.shard_size,
        "device": device.name(),
        "scales": planned.scales,
        "warnings": planned.warnings,
        "tensors": { "merged": merged, "replaced": replaced, "copied": copied },
        "tool": derived::tool(),
    });
    let inputs = vec![
        derived::derived_input("adapter", Kind::Adapter, &adapter_in, None),
        derived::derived_input("base", Kind::Model, &base_in, content_digest),
    ];
    ctx.checkpoint()?;
    let info = derived::publish(&ctx, &checked.output, entries, inputs, recipe).await?;
    Ok(derived::result_of(&info, "tensors"))
}

/// Stream every shard into a staged object, on a blocking thread, reporting progress.
async fn write_shards(
    ctx: &Ctx,
    adapter: &Loaded,
    mut base_src: BlobTensors,
    planned: &MergePlan,
    device: Device,
) -> Result<Vec<(String, Staged)>, JobError> {
    let (mut adapter_src, _) = BlobTensors::open(
        &ctx.app,
        &[stored(adapter, WEIGHTS_FILE)?],
        "invalid_adapter",
    )
    .await?;
    let total = planned.tensor_count();
    let done = Arc::new(AtomicUsize::new(0));
    let writers: Vec<BlobWriter> = planned
        .shards
        .iter()
        .map(|_| BlobWriter::new(&ctx.app, &ctx.id, ctx.cancel_flag()))
        .collect();
    let shards = planned.shards.clone();
    let counter = done.clone();
    derived::run_blocking(ctx, done, total, "tensors", move || {
        let mut out = Vec::new();
        for (shard, mut writer) in shards.iter().zip(writers) {
            let mut tick = |_p: adapter_core::merge::Progress<'_>| {
                counter.fetch_add(1, Ordering::Relaxed);
                // A `test-hooks` build: `FAILPOINTS=job.tensor_written=sleep(400)` slows the
                // merge so a test can kill the worker in the middle of it.
                fail::fail_point!("job.tensor_written");
            };
            write_shard(
                shard,
                &device,
                &mut base_src,
                &mut adapter_src,
                &mut writer,
                &mut tick,
            )
            .map_err(merge_error)?;
            out.push((shard.file_name.clone(), writer.finish()?));
        }
        Ok(out)
    })
    .await
}
