//! The summary of an adapter version, derived from its stored config and weights header.

use adapter_core::api::{AdapterSummary, BaseModelRef, JobInput, Summary, metadata};
use adapter_core::manifest::{Kind, Manifest};
use adapter_core::peft::{AdapterConfig, CONFIG_FILE, WEIGHTS_FILE, build_report};
use adapter_core::reference::Reference;
use adapter_core::safetensors::Limits;
use serde_json::{Value, json};

use super::read::{safetensors_header, small_file};
use crate::app::AppState;
use crate::catalog::{self, CatalogError};
use crate::error::{ApiError, ApiResult};

const CODE: &str = "invalid_adapter";

fn invalid(message: impl Into<String>, details: Value) -> ApiError {
    ApiError::with_details(CODE, message, details)
}

/// Read the stored config and weights header and build the PEFT report.
async fn report(
    app: &AppState,
    manifest: &Manifest,
) -> ApiResult<(AdapterConfig, adapter_core::peft::AdapterReport)> {
    let entry = |path: &str| {
        manifest.file(path).ok_or_else(|| {
            invalid(
                format!("an adapter version must contain `{path}`"),
                json!({ "file": path }),
            )
        })
    };
    let config_entry = entry(CONFIG_FILE)?;
    let weights_entry = entry(WEIGHTS_FILE)?;
    let config_bytes = small_file(
        app,
        CODE,
        CONFIG_FILE,
        &config_entry.digest,
        config_entry.size,
    )
    .await?;
    let config = AdapterConfig::from_json_bytes(&config_bytes)
        .map_err(|e| invalid(e.to_string(), json!({ "file": CONFIG_FILE })))?;
    let header = safetensors_header(
        app,
        &weights_entry.digest,
        weights_entry.size,
        weights_entry.size,
        Limits::SERVER_ADAPTER,
    )
    .await
    .map_err(|e| e.into_api(CODE, WEIGHTS_FILE))?;
    let report = build_report(&config, &header.tensors, None)
        .map_err(|e| invalid(e.to_string(), json!({ "file": CONFIG_FILE })))?;
    Ok((config, report))
}

/// Smallest and largest rank over the adapted modules (`rank_pattern` applied); `r` when
/// no module is adapted.
fn rank_range(report: &adapter_core::peft::AdapterReport) -> (u64, u64) {
    let ranks = report.modules.iter().map(|m| m.rank);
    (
        ranks.clone().min().unwrap_or(report.r),
        ranks.max().unwrap_or(report.r),
    )
}

/// The rank range of a stored adapter version (re-read from its blobs; the startup
/// backfill uses it for versions whose summary predates `rank_min` / `rank_max`).
pub async fn stored_rank_range(app: &AppState, manifest: &Manifest) -> ApiResult<(u64, u64)> {
    Ok(rank_range(&report(app, manifest).await?.1))
}

/// The summary, and the registered base version it names (pinned), if any.
pub async fn summary(
    app: &AppState,
    manifest: &Manifest,
) -> ApiResult<(Summary, Option<JobInput>)> {
    let (config, report) = report(app, manifest).await?;
    if report.findings.has_errors() {
        return Err(invalid(
            format!(
                "the adapter has {} error(s); first: {}",
                report.findings.errors.len(),
                report.findings.errors[0].message
            ),
            json!({
                "errors": report.findings.errors,
                "warnings": report.findings.warnings,
            }),
        ));
    }
    let (rank_min, rank_max) = rank_range(&report);
    let (base, registered) =
        base_ref(app, manifest, config.base_model_name_or_path.clone()).await?;
    let summary = AdapterSummary {
        peft_type: report.peft_type,
        variant: report.variant,
        r: report.r,
        rank_min: Some(rank_min),
        rank_max: Some(rank_max),
        lora_alpha: report.lora_alpha,
        use_rslora: report.use_rslora,
        use_dora: report.use_dora,
        target_modules: report.target_modules,
        module_count: report.modules.len() as u64,
        tensor_count: report.tensor_count as u64,
        parameters: report.parameters,
        dtypes: report
            .dtypes
            .iter()
            .map(|d| d.as_str().to_owned())
            .collect(),
        layers: report.layers,
        mergeable: report.mergeable,
        warnings: report.findings.warnings.iter().map(Into::into).collect(),
        base,
    };
    Ok((Summary::Adapter(summary), registered))
}

fn base_mismatch(message: impl Into<String>, details: Value) -> ApiError {
    ApiError::with_details("base_mismatch", message, details)
}

/// `metadata.base`, checked against the registered model it references (if any), with the
/// identities filled in from that model when the manifest left them out; and that model
/// version, pinned.
async fn base_ref(
    app: &AppState,
    manifest: &Manifest,
    config_base: Option<String>,
) -> ApiResult<(BaseModelRef, Option<JobInput>)> {
    let mut base: BaseModelRef = match manifest.metadata().get(metadata::BASE) {
        None | Some(Value::Null) => BaseModelRef::default(),
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|e| ApiError::new("invalid_manifest", format!("metadata.base: {e}")))?,
    };
    if base.name_or_path.is_none() {
        base.name_or_path = config_base;
    }
    let Some(reference) = base.reference.clone() else {
        return Ok((base, None));
    };
    let r: Reference = reference
        .parse()
        .map_err(|e| ApiError::new("invalid_manifest", format!("metadata.base.reference: {e}")))?;
    let not_registered = || {
        base_mismatch(
            format!("base model `{reference}` is not registered"),
            json!({ "reference": reference }),
        )
    };
    let resolved = match catalog::resolve_reference(&app.db, Kind::Model, &r).await {
        Ok(resolved) => resolved,
        Err(CatalogError::NoMatch { reason, .. }) => {
            return Err(base_mismatch(
                format!("base model `{reference}`: {reason}"),
                json!({ "reference": reference }),
            ));
        }
        Err(e) if e.is_not_found() => return Err(not_registered()),
        Err(e) => return Err(e.into()),
    };
    let version = resolved.version.to_string();
    let info = catalog::version(
        &app.db,
        Kind::Model,
        &r.namespace,
        &r.name,
        &resolved.version,
    )
    .await
    .and_then(|row| {
        catalog::version_info_of(Kind::Model, r.namespace.as_str(), r.name.as_str(), &row)
    })
    .map_err(|e| {
        if e.is_not_found() {
            not_registered()
        } else {
            e.into()
        }
    })?;
    let model = info.summary.model();
    for (key, declared, found, slot) in [
        (
            "content_digest",
            base.content_digest,
            model.map(|m| m.content_digest),
            &mut base.content_digest,
        ),
        (
            "shape_fingerprint",
            base.shape_fingerprint,
            model.and_then(|m| m.shape_fingerprint),
            &mut base.shape_fingerprint,
        ),
    ] {
        match (declared, found) {
            (Some(d), Some(f)) if d != f => {
                return Err(base_mismatch(
                    format!("metadata.base.{key} is {d}, but `{reference}` has {f}"),
                    json!({ "field": key, "declared": d, "registered": f }),
                ));
            }
            (None, found) => *slot = found,
            _ => {}
        }
    }
    base.reference = Some(format!("{}/{}@{version}", r.namespace, r.name));
    let pinned = JobInput {
        reference: resolved.pinned(),
        manifest_digest: resolved.manifest_digest,
    };
    Ok((base, Some(pinned)))
}
