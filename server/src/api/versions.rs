//! `PUT|GET /v1/{kind}/{ns}/{name}/versions/{version}`.

use adapter_core::api::{ErrorBody, VersionInfo};
use adapter_core::manifest::{Kind, Manifest};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use super::extract::{ApiPath, LimitedBytes, MANIFEST_LIMIT};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::publish::{self, info::version_info, parse_name, parse_version};

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
    Extension(kind): Extension<Kind>,
    ApiPath((ns, name, version)): ApiPath<(String, String, String)>,
    LimitedBytes(body): LimitedBytes<MANIFEST_LIMIT>,
) -> ApiResult<Response> {
    let ns = parse_name("namespace", &ns)?;
    let name = parse_name("name", &name)?;
    let version = parse_version(&version)?;
    let mut out = publish::publish(&app, kind, &ns, &name, &version, &body).await?;
    let status = if out.created {
        StatusCode::CREATED
    } else {
        super::evals::attach_latest(&app, &mut out.info).await?;
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
    Extension(kind): Extension<Kind>,
    ApiPath((ns, name, version)): ApiPath<(String, String, String)>,
) -> ApiResult<Json<VersionInfo>> {
    let ns = parse_name("namespace", &ns)?;
    let name = parse_name("name", &name)?;
    let version = parse_version(&version)?.to_string();
    let Some(row) = app
        .db
        .version(kind, ns.as_str(), name.as_str(), &version)
        .await?
    else {
        super::repositories::repository(&app, kind, &ns, &name).await?;
        return Err(ApiError::new(
            "version_not_found",
            format!("{ns}/{name}@{version} does not exist"),
        ));
    };
    let mut info = version_info(kind, ns.as_str(), name.as_str(), &row)?;
    super::evals::attach_latest(&app, &mut info).await?;
    if let Some(y) = app
        .db
        .yank_state_by_name(kind, ns.as_str(), name.as_str(), &version)
        .await?
        .filter(|y| y.yanked)
    {
        (info.yank_reason, info.yanked_at, info.yanked_by) = (y.reason, y.at, y.by);
    }
    Ok(Json(info))
}
