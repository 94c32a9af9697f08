//! A job's inputs, read: the version an input names (pinned at submit) with its manifest,
//! and what the kinds know of it: an adapter's config and tensor headers, a base's tensor
//! headers, config and identities, a version's small JSON files.

use std::collections::BTreeMap;

use adapter_core::api::Summary;
use adapter_core::compat::{AdapterFacts, BaseFacts};
use adapter_core::json::parse_strict;
use adapter_core::manifest::{Kind, Manifest};
use adapter_core::model::CONFIG_FILE as MODEL_CONFIG;
use adapter_core::peft::{CONFIG_FILE, WEIGHTS_FILE};
use adapter_core::reference::{Reference, Selector};
use adapter_core::safetensors::{Limits, TensorInfo};
use anyhow::Context as _;
use serde_json::Value;

use super::{Ctx, JobError};
use crate::app::AppState;
use crate::catalog;
use crate::error::{ApiError, ApiResult};
use crate::publish::model::weights;
use crate::publish::read::{safetensors_header, small_file};

/// A version named by a resolved input, with its id.
pub(super) struct Loaded {
    pub id: i64,
    pub manifest: Manifest,
    pub summary: Summary,
}

pub(super) async fn load(app: &AppState, kind: Kind, reference: &str) -> anyhow::Result<Loaded> {
    let r: Reference = reference.parse()?;
    let Some(Selector::Version(version)) = &r.selector else {
        anyhow::bail!("the input {reference} is not pinned to a version");
    };
    let row = catalog::version(&app.db, kind, &r.namespace, &r.name, version)
        .await
        .with_context(|| format!("{reference} no longer exists"))?;
    let manifest = Manifest::from_json(row.manifest.as_bytes())?;
    Ok(Loaded {
        summary: catalog::summary_of(&row)?,
        id: row.id,
        manifest,
    })
}

fn api(e: ApiError) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

pub(super) async fn adapter_facts(app: &AppState, a: &Loaded) -> anyhow::Result<AdapterFacts> {
    let file = |p: &str| {
        a.manifest
            .file(p)
            .with_context(|| format!("the adapter has no {p}"))
    };
    let config = file(CONFIG_FILE)?;
    let weights = file(WEIGHTS_FILE)?;
    let config_json = small_file(
        app,
        "invalid_adapter",
        CONFIG_FILE,
        &config.digest,
        config.size,
    )
    .await
    .map_err(api)?
    .to_vec();
    let header = safetensors_header(
        app,
        &weights.digest,
        weights.size,
        weights.size,
        Limits::SERVER_ADAPTER,
    )
    .await
    .map_err(|e| api(e.into_api("invalid_adapter", WEIGHTS_FILE)))?;
    Ok(AdapterFacts {
        config_json,
        tensors: header.tensors,
        recorded_base: a.summary.adapter().map(|s| s.base.clone()),
    })
}

/// A small JSON file of a version (`config.json`, `tokenizer_config.json`), if it has one;
/// `code` names the error when it is not valid JSON.
pub(super) async fn json_file(
    app: &AppState,
    manifest: &Manifest,
    path: &str,
    code: &'static str,
) -> ApiResult<Option<Value>> {
    let Some(f) = manifest.file(path) else {
        return Ok(None);
    };
    let bytes = small_file(app, code, path, &f.digest, f.size).await?;
    parse_strict(&bytes)
        .map(Some)
        .map_err(|e| ApiError::new(code, format!("{path}: {e}")))
}

/// What validation and merge know of a base: every tensor's header entry (read from the
/// weight files' headers, also those of a headers-only model), config and identities.
pub(super) async fn base_facts(ctx: &Ctx, b: &Loaded) -> anyhow::Result<BaseFacts> {
    let app = &ctx.app;
    let weights = weights(&b.manifest).map_err(api)?;
    let blobs: Vec<_> = weights.iter().map(|w| w.header_blob).collect();
    let sizes = app.db.existing_blobs(&blobs).await?;
    let mut tensors = BTreeMap::new();
    for (i, w) in weights.iter().enumerate() {
        ctx.checkpoint()?;
        let blob_size = sizes
            .get(&w.header_blob)
            .copied()
            .with_context(|| format!("{}: header blob is missing", w.path))?;
        let header = safetensors_header(app, &w.header_blob, blob_size, w.size, Limits::SERVER)
            .await
            .map_err(|e| api(e.into_api("invalid_model", &w.path)))?;
        for t in header.tensors {
            tensors.insert(t.name.clone(), t);
        }
        #[allow(clippy::cast_precision_loss)]
        let done = 0.1 + 0.8 * (i + 1) as f64 / weights.len() as f64;
        ctx.progress(done, &format!("read the header of {}", w.path))
            .await?;
    }
    base_facts_of(app, b, tensors).await
}

/// [`base_facts`] when the tensors' header entries are already read (the merge job reads
/// them once, to stream the tensors).
pub(super) async fn base_facts_of(
    app: &AppState,
    b: &Loaded,
    tensors: BTreeMap<String, TensorInfo>,
) -> anyhow::Result<BaseFacts> {
    let config = json_file(app, &b.manifest, MODEL_CONFIG, "invalid_model")
        .await
        .map_err(api)?;
    let model = b.summary.model().context("the base is not a model")?;
    Ok(BaseFacts {
        tensors,
        config,
        content_digest: Some(model.content_digest),
        shape_fingerprint: model
            .shape_fingerprint
            .context("the base has no shape fingerprint")?,
    })
}

/// A model without safetensors weights (a GGUF a quantise job made) cannot be read as a
/// base: say so instead of failing on a missing tensor.
pub(super) fn no_safetensors(reference: &str) -> JobError {
    JobError::fatal(format!(
        "{reference} has no safetensors weights (a GGUF model is an output of quantise, not an \
         input of merge, quantise or validate)"
    ))
}
