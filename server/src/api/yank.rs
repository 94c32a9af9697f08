//! `POST|DELETE /v1/{kind}/{ns}/{name}/versions/{version}/yank`: yank with a reason, un-yank.
//! A yanked version is left out of ranges and "latest"; exact versions, aliases and digests
//! still resolve it (with `yanked: true` and the reason).

use adapter_core::api::{ErrorBody, YankRequest, YankState, check_reason};
use axum::extract::State;
use axum::{Extension, Json};

use crate::app::AppState;
use crate::auth::Caller;
use crate::catalog::{self, CatalogError};
use crate::db::yank::YankRow;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, VersionPath};

pub fn yank_state(row: YankRow) -> YankState {
    YankState {
        version: row.version,
        yanked: row.yanked,
        yank_reason: row.reason,
        yanked_at: row.at,
        yanked_by: row.by,
    }
}

async fn set(
    app: &AppState,
    p: &VersionPath,
    reason: Option<&str>,
    actor: &str,
) -> ApiResult<YankState> {
    if reason.is_some() {
        check_reason(reason, true).map_err(|m| ApiError::new("invalid_reason", m))?;
    }
    let r = &p.repo;
    let version = catalog::version(&app.db, r.kind, &r.ns, &r.name, &p.version).await?;
    let row = app
        .db
        .set_yank(version.id, reason, actor)
        .await?
        .ok_or_else(|| {
            ApiError::from(CatalogError::VersionNotFound {
                kind: r.kind,
                namespace: r.ns.to_string(),
                name: r.name.to_string(),
                version: p.version.to_string(),
            })
        })?;
    Ok(yank_state(row))
}

/// Yank a version: ranges and "latest" skip it; exact pins, aliases and digests still resolve
/// it (flagged). Yanking again replaces the reason.
#[utoipa::path(
    post,
    path = "/{ns}/{name}/versions/{version}/yank",
    operation_id = "yank_version",
    params(("ns" = String, Path, description = "Namespace."), ("name" = String, Path, description = "Repository name."), ("version" = String, Path, description = "A semver version.")),
    request_body(content = YankRequest, description = "Why (required, 1 to 1024 bytes)."),
    responses(
        (status = 200, description = "Yanked.", body = YankState),
        (status = 400, description = "`invalid_name`, `invalid_version`, `invalid_reason`, `invalid_json`, `invalid_path`.", body = ErrorBody),
        (status = 404, description = "`repository_not_found`, `version_not_found`.", body = ErrorBody),
        (status = 413, description = "`payload_too_large`.", body = ErrorBody),
        (status = 500, description = "`internal`.", body = ErrorBody),
    )
)]
pub async fn yank(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    p: VersionPath,
    JsonBody(body): JsonBody<YankRequest>,
) -> ApiResult<Json<YankState>> {
    Ok(Json(
        set(&app, &p, Some(&body.reason), &caller.actor()).await?,
    ))
}

/// Un-yank a version (a no-op for one that is not yanked).
#[utoipa::path(
    delete,
    path = "/{ns}/{name}/versions/{version}/yank",
    operation_id = "unyank_version",
    params(("ns" = String, Path, description = "Namespace."), ("name" = String, Path, description = "Repository name."), ("version" = String, Path, description = "A semver version.")),
    responses(
        (status = 200, description = "Not yanked (any more).", body = YankState),
        (status = 400, description = "`invalid_name`, `invalid_version`, `invalid_path`.", body = ErrorBody),
        (status = 404, description = "`repository_not_found`, `version_not_found`.", body = ErrorBody),
        (status = 500, description = "`internal`.", body = ErrorBody),
    )
)]
pub async fn unyank(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    p: VersionPath,
) -> ApiResult<Json<YankState>> {
    Ok(Json(set(&app, &p, None, &caller.actor()).await?))
}
