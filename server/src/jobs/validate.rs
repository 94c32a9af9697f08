//! The `validate` job: an adapter version against a model version, from headers and config
//! files only (`adapter_core::compat::validate`), so its time does not grow with model size.
//! The report is the job's result and is stored on the adapter version (`validations`).

use std::collections::BTreeMap;

use adapter_core::api::jobs::KIND_VALIDATE;
use adapter_core::api::{BaseModelRef, JobInfo, JobSubmit};
use adapter_core::compat::{AdapterFacts, BaseFacts, validate};
use adapter_core::json::parse_strict;
use adapter_core::manifest::{Kind, Manifest};
use adapter_core::model::CONFIG_FILE as MODEL_CONFIG;
use adapter_core::peft::{CONFIG_FILE, WEIGHTS_FILE};
use adapter_core::reference::Reference;
use adapter_core::safetensors::TensorInfo;
use anyhow::Context as _;
use serde_json::Value;

use super::{Ctx, JobError, JobResult, JobsConfig};
use crate::app::AppState;
use crate::db::versions::VersionRow;
use crate::error::{ApiError, ApiResult};
use crate::publish::model::weights;
use crate::publish::read::{safetensors_header, small_file};

pub const KIND: &str = KIND_VALIDATE;

/// A version named by a resolved input, with its id.
pub(super) struct Loaded {
    pub id: i64,
    pub row: VersionRow,
    pub manifest: Manifest,
}

pub(super) async fn load(app: &AppState, kind: Kind, reference: &str) -> anyhow::Result<Loaded> {
    let r: Reference = reference.parse()?;
    let version = r
        .selector
        .as_ref()
        .map(ToString::to_string)
        .context("the input has no version")?;
    let (ns, name) = (r.namespace.as_str(), r.name.as_str());
    let row = app
        .db
        .version(kind, ns, name, &version)
        .await?
        .with_context(|| format!("{reference} no longer exists"))?;
    let id = app
        .db
        .version_id(kind, ns, name, &version)
        .await?
        .with_context(|| format!("{reference} no longer exists"))?;
    let manifest = Manifest::from_json(row.manifest.as_bytes())?;
    Ok(Loaded { id, row, manifest })
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
    let header = safetensors_header(app, &weights.digest, weights.size, weights.size)
        .await
        .map_err(|e| api(e.into_api("invalid_adapter", WEIGHTS_FILE)))?;
    let summary: Value = serde_json::from_str(&a.row.summary)?;
    let recorded_base = summary
        .get("base")
        .cloned()
        .map(serde_json::from_value::<BaseModelRef>)
        .transpose()?;
    Ok(AdapterFacts {
        config_json,
        tensors: header.tensors,
        recorded_base,
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
        let header = safetensors_header(app, &w.header_blob, blob_size, w.size)
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
    let summary: Value = serde_json::from_str(&b.row.summary)?;
    let digest = |k: &str| summary.get(k).and_then(Value::as_str).map(str::parse);
    Ok(BaseFacts {
        tensors,
        config,
        content_digest: digest("content_digest").transpose()?,
        shape_fingerprint: digest("shape_fingerprint")
            .context("the base has no shape fingerprint")??,
    })
}

/// The job.
pub async fn run(ctx: Ctx) -> JobResult {
    let adapter_ref = ctx.input("adapter")?.reference.clone();
    let base_ref = ctx.input("base")?.reference.clone();
    ctx.log(format!("validating {adapter_ref} against {base_ref}"))
        .await;
    let adapter = load(&ctx.app, Kind::Adapter, &adapter_ref).await?;
    let base = load(&ctx.app, Kind::Model, &base_ref).await?;
    if weights(&base.manifest).map_err(JobError::fatal)?.is_empty() {
        return Err(super::derived::no_safetensors(&base_ref));
    }
    let facts = adapter_facts(&ctx.app, &adapter).await?;
    ctx.progress(0.1, "read the adapter").await?;
    let base_facts = base_facts(&ctx, &base).await?;
    let report = validate(&facts, &base_facts);
    let json = serde_json::to_value(&report).map_err(anyhow::Error::from)?;
    let verdict = json
        .get("verdict")
        .and_then(Value::as_str)
        .unwrap_or("incompatible")
        .to_owned();
    ctx.checkpoint()?;
    ctx.app
        .db
        .put_validation(adapter.id, base.id, &verdict, &json.to_string(), &ctx.id)
        .await
        .map_err(anyhow::Error::from)?;
    ctx.log(format!("verdict: {verdict}")).await;
    Ok(json)
}

/// After an adapter version is published: queue its validation against the base it names,
/// when that base is a registered model (`metadata.base.reference`, already resolved to an
/// exact version by the publish). Idempotent; failures are logged, never fatal.
pub async fn after_publish(
    app: &AppState,
    config: &JobsConfig,
    adapter: &str,
    summary: &Value,
) -> Option<JobInfo> {
    let base = summary
        .get("base")
        .and_then(|b| b.get("reference"))
        .and_then(Value::as_str)?;
    let req = JobSubmit {
        kind: KIND.to_owned(),
        inputs: [
            ("adapter".to_owned(), adapter.to_owned()),
            ("base".to_owned(), base.to_owned()),
        ]
        .into(),
        params: None,
        idempotency_key: None,
    };
    match super::submit(
        app,
        config,
        &req,
        super::submit::Submitter::Registry("registry (on publish)"),
    )
    .await
    {
        Ok((_, job)) => Some(job),
        Err(e) => {
            tracing::warn!(adapter, base, error = %e, "cannot queue the validation");
            None
        }
    }
}
