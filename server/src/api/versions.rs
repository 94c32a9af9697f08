//! `PUT|GET /v1/{kind}/{ns}/{name}/versions/{version}`.

use adapter_core::api::{ErrorBody, VersionInfo};
use adapter_core::manifest::Manifest;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use super::cached;
use crate::app::AppState;
use crate::auth::Caller;
use crate::catalog;
use crate::error::ApiResult;
use crate::extract::{LimitedBytes, MANIFEST_LIMIT, VersionPath};
use crate::publish;

/// Publish a version with its manifest.
///
/// Checks, in order: names and version, the manifest (strict JSON), its kind, whether the
/// version exists (same manifest digest: 200; other content: 409), the blobs, then the
/// adapter or model itself (docs/API.md, "Version summaries").
#[utoipa::path(
    put,
    path = "/{ns}/{name}/versions/{version}",
    operation_id = "publish_version",
    params(("ns" = String, Path, description = "Namespace (name rules: docs/FORMATS.md)."), ("name" = String, Path, description = "Repository name."), ("version" = String, Path, description = "A semver version (stored in normal form).")),
    request_body(content = Manifest, description = "The manifest (docs/FORMATS.md), at most 8 MiB."),
    responses(
        (status = 201, description = "Published.", body = VersionInfo),
        (status = 200, description = "The same manifest was already published as this version.", body = VersionInfo),
        (status = 400, description = "`invalid_name`, `invalid_version`, `invalid_manifest`, `invalid_path`, `kind_mismatch`, `missing_blobs` (details `{\"missing\": [...]}`), `size_mismatch`, `base_mismatch`.", body = ErrorBody),
        (status = 409, description = "`version_exists` (details `{\"manifest_digest\": existing}`), `conflict`.", body = ErrorBody),
        (status = 413, description = "`payload_too_large` (over 8 MiB).", body = ErrorBody),
        (status = 422, description = "`invalid_adapter`, `invalid_model` (details: findings).", body = ErrorBody),
        (status = 500, description = "`internal`.", body = ErrorBody),
    )
)]
pub async fn publish(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    p: VersionPath,
    LimitedBytes(body): LimitedBytes<MANIFEST_LIMIT>,
) -> ApiResult<Response> {
    let mut out = publish::publish(&app, &caller.blob_reader(), &p, &body).await?;
    let status = if out.created {
        StatusCode::CREATED
    } else {
        catalog::attach_latest_evals(&app.db, &mut out.info, out.version_id).await?;
        StatusCode::OK
    };
    Ok((status, Json(out.info)).into_response())
}

/// A version in full: manifest and server-derived summary.
#[utoipa::path(
    get,
    path = "/{ns}/{name}/versions/{version}",
    operation_id = "get_version",
    params(("ns" = String, Path, description = "Namespace (name rules: docs/FORMATS.md)."), ("name" = String, Path, description = "Repository name."), ("version" = String, Path, description = "A semver version (stored in normal form).")),
    responses(
        (status = 200, description = "The version, with the latest eval result per `benchmark:metric`.", body = VersionInfo),
        (status = 400, description = "`invalid_name`, `invalid_version`, `invalid_path`.", body = ErrorBody),
        (status = 404, description = "`repository_not_found`, `version_not_found`.", body = ErrorBody),
        (status = 500, description = "`internal`.", body = ErrorBody),
    )
)]
pub async fn get(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    p: VersionPath,
) -> ApiResult<Response> {
    let r = &p.repo;
    let version = p.version.to_string();
    let key = cached::key(&[
        "version",
        r.kind.as_str(),
        r.ns.as_str(),
        r.name.as_str(),
        &version,
    ]);
    cached::json(&app, &caller, key, || {
        catalog::version_info(&app.db, r.kind, &r.ns, &r.name, &p.version)
    })
    .await
}
