//! Publishing a version: validate the manifest against the path, check that every blob it
//! needs is stored (with the declared size), derive the summary from the stored bytes, and
//! insert it all in one transaction, with the validation job of an adapter that names a
//! registered base. Idempotent for identical content; 409 otherwise. Middle floor: imports
//! `catalog`, `db`, `blobs`, `error` (never `jobs`: the job is a row it inserts).

mod adapter;
pub mod facts;
pub(crate) mod model;
pub(crate) mod read;

use std::collections::{BTreeMap, HashMap};

use adapter_core::api::VersionInfo;
use adapter_core::api::jobs::KIND_VALIDATE;
use adapter_core::api::metadata::DERIVED_FROM;
use adapter_core::digest::Digest;
use adapter_core::manifest::{Kind, Manifest, ManifestError};
use serde_json::json;

use crate::app::AppState;
use crate::catalog;
use crate::db::blobs::BlobReader;
use crate::db::jobs::NewJob;
use crate::db::versions::{Inserted, NewVersion, VersionRow};
use crate::error::{ApiError, ApiResult};
use crate::extract::VersionPath;

/// Who the validation jobs queued by a publish are submitted by.
pub const VALIDATION_SUBMITTER: &str = "registry (on publish)";

/// List the header blobs of headers-only model versions published before `version_blobs`
/// existed (the migration listed their files). Idempotent; returns the versions seen.
pub async fn backfill_header_blobs(app: &AppState) -> anyhow::Result<u64> {
    let mut seen = 0;
    for (id, manifest) in app.db.headers_only_versions().await? {
        let weights = Manifest::from_json(manifest.as_bytes())
            .map_err(anyhow::Error::from)
            .and_then(|m| model::weights(&m).map_err(|e| anyhow::anyhow!("{e}")));
        match weights {
            Ok(w) => {
                let blobs: Vec<Digest> = w.iter().map(|w| w.header_blob).collect();
                app.db.add_version_blobs(id, &blobs).await?;
                seen += 1;
            }
            Err(e) => tracing::warn!(version = id, error = %e, "cannot list its header blobs"),
        }
    }
    Ok(seen)
}

/// Outcome of a publish.
#[derive(Debug)]
pub struct Published {
    pub created: bool,
    /// The version's row id.
    pub version_id: i64,
    pub info: VersionInfo,
}

/// Publish a manifest sent through the API. `metadata.derived_from` is refused: only the
/// registry's jobs write it ([`publish_derived`]), so lineage with a recipe is never a claim.
/// Every blob the manifest needs must be readable by `reader` (the publisher): listed by a
/// version it may read, or uploaded by it; others count as missing, so a digest learnt
/// elsewhere never mounts another namespace's blob.
pub async fn publish(
    app: &AppState,
    reader: &BlobReader,
    at: &VersionPath,
    body: &[u8],
) -> ApiResult<Published> {
    let manifest = Manifest::from_json(body).map_err(|e| match e {
        ManifestError::Json(m) => ApiError::new("invalid_json", format!("manifest: {m}")),
        other => ApiError::new("invalid_manifest", other.to_string()),
    })?;
    publish_claimed(app, reader, at, manifest).await
}

/// [`publish`] of a manifest built rather than sent (a Hub protocol commit): the same
/// checks, `metadata.derived_from` refused.
pub async fn publish_claimed(
    app: &AppState,
    reader: &BlobReader,
    at: &VersionPath,
    manifest: Manifest,
) -> ApiResult<Published> {
    if manifest.metadata().contains_key(DERIVED_FROM) {
        return Err(ApiError::with_details(
            "invalid_manifest",
            format!("metadata.{DERIVED_FROM} is written by the registry's jobs only"),
            json!({ "field": format!("metadata.{DERIVED_FROM}") }),
        ));
    }
    publish_manifest(app, reader, at, manifest).await
}

/// Publish what a job made (as `at`, whose kind is the manifest's): its manifest carries
/// `metadata.derived_from`.
pub async fn publish_derived(
    app: &AppState,
    at: &VersionPath,
    manifest: Manifest,
) -> ApiResult<Published> {
    if facts::derivation(&manifest)?.is_none() {
        return Err(ApiError::internal(anyhow::anyhow!(
            "a derived version without metadata.{DERIVED_FROM}"
        )));
    }
    publish_manifest(app, &BlobReader::Everything, at, manifest).await
}

async fn publish_manifest(
    app: &AppState,
    reader: &BlobReader,
    at: &VersionPath,
    manifest: Manifest,
) -> ApiResult<Published> {
    let (kind, namespace, name, version) = (at.repo.kind, &at.repo.ns, &at.repo.name, &at.version);
    if manifest.kind() != kind {
        return Err(ApiError::with_details(
            "kind_mismatch",
            format!(
                "the manifest is a {}, but this is the {} route",
                manifest.kind(),
                kind
            ),
            json!({ "manifest_kind": manifest.kind(), "route_kind": kind }),
        ));
    }
    let labels = facts::labels(&manifest)?;
    let digest = manifest.digest();
    let (ns, nm, ver) = (namespace.as_str(), name.as_str(), version.to_string());
    // Cheap answer before any blob is read: the version exists already.
    if let Some(row) = app.db.version(kind, ns, nm, &ver).await? {
        return existing(kind, ns, nm, &row, &digest);
    }
    let (sizes, blobs) = stored_sizes(app, reader, &manifest).await?;
    let (summary, validation) = match kind {
        Kind::Adapter => {
            let (summary, base) = adapter::summary(app, &manifest).await?;
            // Validated against the registered base it names: queued with the insert.
            let job = base
                .map(|base| {
                    let adapter = adapter_core::api::JobInput {
                        reference: format!("{ns}/{nm}@{ver}"),
                        manifest_digest: digest,
                    };
                    let inputs = BTreeMap::from([
                        ("adapter".to_owned(), adapter),
                        ("base".to_owned(), base),
                    ]);
                    NewJob::new(
                        KIND_VALIDATE,
                        &inputs,
                        None,
                        &json!({}),
                        None,
                        app.config.jobs.max_attempts,
                        VALIDATION_SUBMITTER.to_owned(),
                    )
                })
                .transpose()
                .map_err(ApiError::internal)?;
            (summary, job)
        }
        Kind::Model => (model::summary(app, &manifest, &sizes).await?, None),
    };
    let facts = facts::derive(app, &manifest, &summary, labels, None).await?;
    let new = NewVersion {
        kind,
        namespace: ns,
        name: nm,
        version: &ver,
        manifest_digest: digest.to_string(),
        manifest: String::from_utf8(manifest.canonical_bytes()).map_err(ApiError::internal)?,
        summary: serde_json::to_string(&summary).map_err(ApiError::internal)?,
        total_size: manifest.total_size(),
        files: manifest.files(),
        facts: &facts,
        blobs: &blobs,
        job: validation.as_ref(),
    };
    match app.db.insert_version(&new).await? {
        Inserted::Created(row) => {
            crate::crash_point!("publish.after_commit");
            fail::fail_point!("publish.after_insert", |_| Err(ApiError::internal(
                anyhow::anyhow!("fail point publish.after_insert")
            )));
            if validation.is_some() {
                app.db.wake_workers().await;
            }
            Ok(Published {
                created: true,
                version_id: row.id,
                info: catalog::version_info_of(kind, ns, nm, &row)?,
            })
        }
        Inserted::Existing(row) => existing(kind, ns, nm, &row, &digest),
        Inserted::BlobsGone => Err(ApiError::with_details(
            "missing_blobs",
            "a blob the manifest needs was garbage-collected while publishing; upload it again",
            json!({ "missing": blobs }),
        )),
    }
}

fn existing(
    kind: Kind,
    ns: &str,
    nm: &str,
    row: &VersionRow,
    digest: &Digest,
) -> ApiResult<Published> {
    if row.head.manifest_digest == digest.to_string() {
        return Ok(Published {
            created: false,
            version_id: row.id,
            info: catalog::version_info_of(kind, ns, nm, row)?,
        });
    }
    Err(ApiError::with_details(
        "version_exists",
        format!(
            "{ns}/{nm}@{} exists with other content ({})",
            row.head.version, row.head.manifest_digest
        ),
        json!({ "manifest_digest": row.head.manifest_digest }),
    ))
}

/// Every blob the manifest needs must be stored (and readable by `reader`), files with
/// their declared size. Returns the sizes and the distinct blobs.
async fn stored_sizes(
    app: &AppState,
    reader: &BlobReader,
    manifest: &Manifest,
) -> ApiResult<(HashMap<Digest, u64>, Vec<Digest>)> {
    let mut needed: Vec<Digest> = manifest.files().iter().map(|f| f.digest).collect();
    if manifest.kind() == Kind::Model {
        // Headers-only models: the blobs holding each weights file's header.
        needed.extend(model::weights(manifest)?.iter().map(|w| w.header_blob));
    }
    let sizes = app.db.readable_blobs(&needed, reader).await?;
    let mut missing: Vec<Digest> = Vec::new();
    for d in &needed {
        if !sizes.contains_key(d) && !missing.contains(d) {
            missing.push(*d);
        }
    }
    if !missing.is_empty() {
        return Err(ApiError::with_details(
            "missing_blobs",
            format!(
                "{} blob(s) the manifest needs are not uploaded",
                missing.len()
            ),
            json!({ "missing": missing }),
        ));
    }
    for f in manifest.files() {
        let stored = sizes.get(&f.digest).copied().unwrap_or(0);
        if stored != f.size {
            return Err(ApiError::with_details(
                "size_mismatch",
                format!(
                    "{} declares {} bytes, but its blob has {stored}",
                    f.path, f.size
                ),
                json!({ "file": f.path, "declared": f.size, "stored": stored }),
            ));
        }
    }
    needed.sort();
    needed.dedup();
    Ok((sizes, needed))
}
