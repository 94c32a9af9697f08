//! What the jobs that make a model version (merge, quantise) share: the output version they
//! are asked for, the check that it is free, the device choice, and publishing the result
//! with `metadata.derived_from` (from which the registry writes its lineage).

use adapter_core::api::metadata::DERIVED_FROM;
use adapter_core::api::{Derivation, DerivedInput, JobInput, VersionInfo};
use adapter_core::digest::Digest;
use adapter_core::manifest::{FileEntry, FilePath, Kind, Manifest};
use adapter_core::merge::check_device_name;
use adapter_core::name::Name;
use adapter_core::reference::{Reference, Selector};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::blobio::{StoredFile, clear_staging};
use super::inputs::{Loaded, no_safetensors};
use super::{Ctx, JobError};
use crate::app::AppState;
use crate::catalog;
use crate::error::{ApiError, ApiResult};
use crate::extract::{RepoPath, VersionPath, parse_version};
use crate::publish::facts::derivation;
use crate::publish::model::{is_headers_only, weights};
use crate::publish::publish_derived;

/// The version a job is asked to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub namespace: Name,
    pub name: Name,
    pub version: semver::Version,
}

impl Output {
    /// `ns/name@version` with an exact semver version.
    pub fn parse(s: &str) -> ApiResult<Self> {
        let invalid = |m: String| {
            ApiError::with_details(
                "invalid_job",
                format!("params.output `{}`: {m}", s.escape_debug()),
                json!({ "field": "params.output" }),
            )
        };
        let r: Reference = s.parse().map_err(|e| invalid(format!("{e}")))?;
        let version = match &r.selector {
            Some(Selector::Version(v)) => v.clone(),
            _ => return Err(invalid("name an exact version: ns/name@1.0.0".into())),
        };
        parse_version(&version.to_string()).map_err(|e| invalid(e.to_string()))?;
        Ok(Self {
            namespace: r.namespace,
            name: r.name,
            version,
        })
    }

    pub fn reference(&self) -> String {
        format!("{}/{}@{}", self.namespace, self.name, self.version)
    }
}

/// A job parameter refused: 400 `invalid_job` naming `params.<field>`.
pub fn invalid_param(field: &str, message: String) -> ApiError {
    ApiError::with_details(
        "invalid_job",
        message,
        json!({ "field": format!("params.{field}") }),
    )
}

/// The weight files of a model version a job reads; a headers-only model has none to read
/// (the job fails at once, saying what to do to `verb` it).
pub(super) fn stored_weights(
    model: &Loaded,
    reference: &str,
    verb: &str,
) -> Result<Vec<StoredFile>, JobError> {
    if is_headers_only(&model.manifest).map_err(JobError::fatal)? {
        return Err(JobError::fatal(format!(
            "{reference} is registered headers-only: push it with its weight files to {verb}"
        )));
    }
    let files: Vec<StoredFile> = weights(&model.manifest)
        .map_err(JobError::fatal)?
        .into_iter()
        .map(|w| StoredFile {
            path: w.path,
            digest: w.sha256,
            size: w.size,
        })
        .collect();
    if files.is_empty() {
        return Err(no_safetensors(reference));
    }
    Ok(files)
}

/// Check `params.device` (default `auto`) for a job that can use a GPU (`gpu`: merge) or not
/// (quantise: its encoders run at the speed of reading the input on the CPU). Returns the
/// canonical name (`auto`, `cpu`, `cuda:N`); `cuda[:N]` is refused with a reason by a build
/// without the `cuda` feature and by a CPU-only job, never silently run elsewhere.
pub fn check_device(device: Option<&str>, gpu: bool) -> ApiResult<String> {
    let invalid = |message: String| {
        ApiError::with_details("invalid_job", message, json!({ "field": "params.device" }))
    };
    let name = check_device_name(device.unwrap_or("auto")).map_err(|e| invalid(e.to_string()))?;
    if !gpu && name.starts_with("cuda") {
        return Err(invalid(format!(
            "device `{name}`: this job runs on the CPU only; use auto or cpu"
        )));
    }
    Ok(if gpu { name } else { "cpu".to_owned() })
}

/// Is the output version still to be made?
#[derive(Debug)]
pub enum Existing {
    Free,
    /// Published by this job (an earlier attempt got that far).
    Ours(Box<VersionInfo>),
    /// Published by someone or something else.
    Taken(String),
}

/// Look at the output version: free, ours (made by `job`), or taken.
pub async fn existing(app: &AppState, out: &Output, job: &str) -> anyhow::Result<Existing> {
    let (ns, nm, ver) = (
        out.namespace.as_str(),
        out.name.as_str(),
        out.version.to_string(),
    );
    let Some(row) = app.db.version(Kind::Model, ns, nm, &ver).await? else {
        return Ok(Existing::Free);
    };
    let manifest = Manifest::from_json(row.manifest.as_bytes())?;
    let made_by = derivation(&manifest)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .map(|d| d.job);
    if made_by.as_deref() == Some(job) {
        let info = catalog::version_info_of(Kind::Model, ns, nm, &row)?;
        return Ok(Existing::Ours(Box::new(info)));
    }
    Ok(Existing::Taken(row.head.manifest_digest))
}

/// Fail the job now when its output version exists and is not its own work; the version
/// if it is (an earlier attempt published it).
pub async fn claim_output(ctx: &Ctx, out: &Output) -> Result<Option<VersionInfo>, JobError> {
    match existing(&ctx.app, out, &ctx.id).await? {
        Existing::Free => Ok(None),
        Existing::Ours(info) => Ok(Some(*info)),
        Existing::Taken(digest) => Err(JobError::fatal(format!(
            "model {} exists already ({digest}); choose a new version",
            out.reference()
        ))),
    }
}

/// The input as lineage records it.
pub fn derived_input(
    name: &str,
    kind: Kind,
    input: &JobInput,
    content_digest: Option<Digest>,
) -> DerivedInput {
    DerivedInput {
        name: name.to_owned(),
        kind,
        reference: input.reference.clone(),
        manifest_digest: input.manifest_digest,
        content_digest,
    }
}

/// Run a kernel that writes staged objects on a blocking thread while reporting progress
/// once a second: `done` (which the kernel counts up) of `total` `units`. A cancel seen by
/// the progress report makes the job's writers fail, which ends the kernel; the job then ends
/// cancelled. When the kernel fails, what this attempt staged is deleted.
pub async fn run_blocking<T: Send + 'static>(
    ctx: &Ctx,
    done: Arc<AtomicUsize>,
    total: usize,
    units: &str,
    work: impl FnOnce() -> Result<T, JobError> + Send + 'static,
) -> Result<T, JobError> {
    let result = report_while(ctx, done, total, units, work).await;
    if result.is_err()
        && let Err(e) = clear_staging(&ctx.app, &ctx.id).await
    {
        tracing::warn!(job = %ctx.id, error = %e, "cannot clear the staging objects");
    }
    result
}

async fn report_while<T: Send + 'static>(
    ctx: &Ctx,
    done: Arc<AtomicUsize>,
    total: usize,
    units: &str,
    work: impl FnOnce() -> Result<T, JobError> + Send + 'static,
) -> Result<T, JobError> {
    let mut work = tokio::task::spawn_blocking(work);
    let mut every = tokio::time::interval(Duration::from_secs(1));
    let total = total.max(1);
    loop {
        tokio::select! {
            joined = &mut work => {
                let result = joined
                    .map_err(|e| JobError::Failed(anyhow::anyhow!("the kernel thread: {e}")))?;
                ctx.checkpoint()?;
                return result;
            }
            _ = every.tick() => {
                let n = done.load(Ordering::Relaxed);
                #[allow(clippy::cast_precision_loss)]
                let fraction = 0.05 + 0.9 * n as f64 / total as f64;
                let _ = ctx.progress(fraction, &format!("{n} of {total} {units}")).await;
            }
        }
    }
}

/// A manifest entry for a file the job stored.
pub fn file_entry(path: &str, size: u64, digest: Digest) -> anyhow::Result<FileEntry> {
    Ok(FileEntry {
        path: FilePath::new(path.to_owned())?,
        size,
        digest,
    })
}

/// A job's result: the version it published and its figures, which the job recorded under
/// `key` in the version's recipe (so a retried attempt that finds the version an earlier one
/// published answers the same figures).
pub fn result_of(info: &VersionInfo, key: &str) -> Value {
    let figures = info
        .manifest
        .metadata()
        .get(DERIVED_FROM)
        .and_then(|d| d.get("recipe"))
        .and_then(|r| r.get(key))
        .cloned()
        .unwrap_or(Value::Null);
    let mut v = json!({
        "output": format!("{}/{}@{}", info.namespace, info.name, info.version),
        "manifest_digest": info.manifest_digest,
        "files": info.manifest.files(),
        "content_digest": info.summary.model().map(|m| m.content_digest),
    });
    v[key] = figures;
    v
}

/// The tool that made a version (recorded in its recipe).
pub fn tool() -> String {
    format!("adapter-registry {}", env!("CARGO_PKG_VERSION"))
}

/// Publish the job's model version (files already stored as blobs). A version with the
/// same content is success (a retried attempt); other content there fails the job.
pub async fn publish(
    ctx: &Ctx,
    out: &Output,
    files: Vec<FileEntry>,
    inputs: Vec<DerivedInput>,
    recipe: Value,
) -> Result<VersionInfo, JobError> {
    let derivation = Derivation {
        job: ctx.id.clone(),
        kind: ctx.kind.clone(),
        inputs,
        recipe,
    };
    let mut metadata = Map::new();
    metadata.insert(
        DERIVED_FROM.to_owned(),
        serde_json::to_value(&derivation).map_err(anyhow::Error::from)?,
    );
    let manifest = Manifest::new(Kind::Model, files, metadata).map_err(anyhow::Error::from)?;
    let at = VersionPath {
        repo: RepoPath {
            kind: manifest.kind(),
            ns: out.namespace.clone(),
            name: out.name.clone(),
        },
        version: out.version.clone(),
    };
    match publish_derived(&ctx.app, &at, manifest).await {
        Ok(p) => {
            ctx.log(format!(
                "published {} ({})",
                out.reference(),
                p.info.manifest_digest
            ))
            .await;
            Ok(p.info)
        }
        Err(e) if e.code() == "version_exists" => Err(JobError::fatal(format!(
            "model {} was published by someone else meanwhile: {e}",
            out.reference()
        ))),
        Err(e) if e.status().is_client_error() => {
            Err(JobError::fatal(format!("the result does not publish: {e}")))
        }
        Err(e) => Err(JobError::Failed(anyhow::anyhow!("publishing: {e}"))),
    }
}
