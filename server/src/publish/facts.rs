//! A version's searchable facts, labels and lineage, derived from its manifest and summary:
//! written in the publish transaction, and backfilled at startup for versions that lack
//! them (idempotent).

use std::collections::BTreeMap;

use adapter_core::api::catalog::{LABELS, parse_labels};
use adapter_core::api::metadata::DERIVED_FROM;
use adapter_core::api::{BaseModelRef, Derivation, Summary, VersionFacts};
use adapter_core::manifest::{Kind, Manifest};
use adapter_core::reference::{Reference, Selector};
use serde_json::json;

use crate::app::AppState;
use crate::catalog;
use crate::db::facts::{Facts, LineageRow, kind_of};
use crate::error::{ApiError, ApiResult};

/// The manifest's `metadata.labels`, checked (400 `invalid_label`).
pub fn labels(manifest: &Manifest) -> ApiResult<BTreeMap<String, String>> {
    parse_labels(manifest.metadata().get(LABELS)).map_err(|e| {
        ApiError::with_details(
            "invalid_label",
            e.to_string(),
            json!({ "field": "metadata.labels" }),
        )
    })
}

/// `metadata.derived_from` (written by jobs only; see [`super::publish_derived`]).
pub fn derivation(manifest: &Manifest) -> ApiResult<Option<Derivation>> {
    manifest
        .metadata()
        .get(DERIVED_FROM)
        .map(|v| {
            serde_json::from_value::<Derivation>(v.clone()).map_err(|e| {
                ApiError::new("invalid_manifest", format!("metadata.{DERIVED_FROM}: {e}"))
            })
        })
        .transpose()
}

/// The lineage rows of a version a job made: one `input` row per input, with the recipe.
fn derived_lineage(d: &Derivation) -> Vec<LineageRow> {
    d.inputs
        .iter()
        .map(|i| LineageRow {
            relation: "input".into(),
            kind: Some(i.kind.as_str().into()),
            reference: Some(i.reference.clone()),
            manifest_digest: Some(i.manifest_digest.to_string()),
            content_digest: i.content_digest.map(|c| c.to_string()),
            shape_fingerprint: None,
            recipe: Some(
                json!({ "job": d.job, "kind": d.kind, "input": i.name, "params": d.recipe })
                    .to_string(),
            ),
        })
        .collect()
}

/// Facts of a version from its manifest, stored summary and (checked) labels. `ranks` overrides the
/// summary's rank range (backfill of summaries that predate it).
pub async fn derive(
    app: &AppState,
    manifest: &Manifest,
    summary: &Summary,
    labels: BTreeMap<String, String>,
    ranks: Option<(u64, u64)>,
) -> ApiResult<Facts> {
    let mut facts = VersionFacts::default();
    let mut lineage = derivation(manifest)?
        .as_ref()
        .map(derived_lineage)
        .unwrap_or_default();
    match summary {
        Summary::Adapter(a) => {
            facts.peft_type = Some(a.peft_type.clone());
            facts.variant = Some(a.variant.clone());
            let (lo, hi) = ranks.unwrap_or_else(|| a.rank_range());
            facts.rank_min = Some(lo);
            facts.rank_max = Some(hi);
            let mut targets = a.target_modules.clone();
            targets.sort();
            targets.dedup();
            facts.targets = targets;
            let b = &a.base;
            if *b != BaseModelRef::default() {
                // A base known only by name has no identity to link to (the name is a fact).
                let identified = b.reference.is_some()
                    || b.content_digest.is_some()
                    || b.shape_fingerprint.is_some();
                if identified {
                    lineage.push(LineageRow {
                        relation: "base".into(),
                        kind: Some(Kind::Model.as_str().into()),
                        reference: b.reference.clone(),
                        manifest_digest: base_manifest_digest(app, b.reference.as_deref()).await?,
                        content_digest: b.content_digest.map(|d| d.to_string()),
                        shape_fingerprint: b.shape_fingerprint.map(|d| d.to_string()),
                        recipe: None,
                    });
                }
                facts.base = Some(b.clone());
            }
        }
        Summary::Model(m) => {
            facts.content_digest = Some(m.content_digest);
            facts.shape_fingerprint = m.shape_fingerprint;
        }
    }
    Ok(Facts {
        facts,
        labels,
        lineage,
    })
}

/// The manifest digest of a pinned base reference `ns/name@version` registered here.
async fn base_manifest_digest(
    app: &AppState,
    reference: Option<&str>,
) -> ApiResult<Option<String>> {
    let Some(r) = reference.and_then(|r| r.parse::<Reference>().ok()) else {
        return Ok(None);
    };
    let Some(Selector::Version(version)) = &r.selector else {
        return Ok(None);
    };
    match catalog::version(&app.db, Kind::Model, &r.namespace, &r.name, version).await {
        Ok(row) => Ok(Some(row.head.manifest_digest)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Write facts for every version that has none (versions published before the catalogue
/// tables existed). Safe to run again and concurrently; a version whose stored data no
/// longer reads is logged and skipped.
pub async fn backfill(app: &AppState) -> anyhow::Result<u64> {
    const BATCH: i64 = 200;
    let mut written = 0;
    let mut skipped: Vec<i64> = Vec::new();
    loop {
        let batch = app
            .db
            .versions_without_facts(BATCH + skipped.len() as i64)
            .await?;
        let todo: Vec<_> = batch
            .into_iter()
            .filter(|v| !skipped.contains(&v.id))
            .collect();
        if todo.is_empty() {
            return Ok(written);
        }
        for v in todo {
            match backfill_one(app, &v).await {
                Ok(true) => written += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(version_id = v.id, error = %e, "cannot derive catalogue facts");
                    skipped.push(v.id);
                }
            }
        }
    }
}

async fn backfill_one(app: &AppState, v: &crate::db::facts::Unfacted) -> anyhow::Result<bool> {
    kind_of(&v.kind).ok_or_else(|| anyhow::anyhow!("unknown kind {}", v.kind))?;
    let manifest = Manifest::from_json(v.manifest.as_bytes())?;
    let summary: Summary = serde_json::from_str(&v.summary)?;
    let ranks = if summary.adapter().is_some_and(|a| a.rank_min.is_none()) {
        Some(
            super::adapter::stored_rank_range(app, &manifest)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?,
        )
    } else {
        None
    };
    // Labels that predate validation and break the rules are left out, not fatal.
    let labels = labels(&manifest).unwrap_or_default();
    let facts = derive(app, &manifest, &summary, labels, ranks)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(app.db.backfill_facts(v.id, &facts).await?)
}
