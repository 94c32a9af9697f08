//! `POST|GET /v1/{kind}/{ns}/{name}/versions/{version}/evals`: append-only eval results.

use adapter_core::api::{ErrorBody, EvalBatch, EvalList};
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde_json::json;

use crate::app::AppState;
use crate::auth::Caller;
use crate::catalog;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, VersionPath};

/// Record eval results for a version.
///
/// The batch is validated whole before anything is written, then written in one
/// transaction: either every result is recorded or none is. Results are append-only: a
/// second value for the same `benchmark:metric` becomes the latest, the first stays in the
/// history.
#[utoipa::path(
    post,
    path = "/{ns}/{name}/versions/{version}/evals",
    operation_id = "add_evals",
    params(("ns" = String, Path, description = "Namespace (name rules: docs/FORMATS.md)."), ("name" = String, Path, description = "Repository name."), ("version" = String, Path, description = "A semver version (stored in normal form).")),
    request_body(content = EvalBatch, description = "1..=1000 results, each `benchmark:metric` once."),
    responses(
        (status = 201, description = "Recorded; the stored results in request order.", body = EvalList),
        (status = 400, description = "`invalid_eval` (details `{\"index\", \"field\"}`: the first offending result and field), `invalid_json`, `invalid_name`, `invalid_version`, `invalid_path`.", body = ErrorBody),
        (status = 404, description = "`repository_not_found`, `version_not_found`.", body = ErrorBody),
        (status = 413, description = "`payload_too_large` (over 2 MiB).", body = ErrorBody),
        (status = 500, description = "`internal`.", body = ErrorBody),
    )
)]
pub async fn add(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    p: VersionPath,
    JsonBody(batch): JsonBody<EvalBatch>,
) -> ApiResult<(StatusCode, Json<EvalList>)> {
    let id = version_id(&app, &p).await?;
    batch.check().map_err(|e| {
        ApiError::with_details(
            "invalid_eval",
            e.to_string(),
            json!({ "index": e.index, "field": e.field }),
        )
    })?;
    let evals = app
        .db
        .insert_evals(id, &batch.results, &caller.actor())
        .await?;
    Ok((StatusCode::CREATED, Json(EvalList { evals })))
}

/// Every eval result of a version, oldest first.
#[utoipa::path(
    get,
    path = "/{ns}/{name}/versions/{version}/evals",
    operation_id = "list_evals",
    params(("ns" = String, Path, description = "Namespace (name rules: docs/FORMATS.md)."), ("name" = String, Path, description = "Repository name."), ("version" = String, Path, description = "A semver version (stored in normal form).")),
    responses(
        (status = 200, description = "Every result, in the order recorded.", body = EvalList),
        (status = 400, description = "`invalid_name`, `invalid_version`, `invalid_path`.", body = ErrorBody),
        (status = 404, description = "`repository_not_found`, `version_not_found`.", body = ErrorBody),
        (status = 500, description = "`internal`.", body = ErrorBody),
    )
)]
pub async fn list(State(app): State<AppState>, p: VersionPath) -> ApiResult<Json<EvalList>> {
    let id = version_id(&app, &p).await?;
    Ok(Json(EvalList {
        evals: app.db.evals(id).await?,
    }))
}

/// The row id of the version a path names (404 `repository_not_found` / `version_not_found`).
pub(super) async fn version_id(app: &AppState, p: &VersionPath) -> ApiResult<i64> {
    let r = &p.repo;
    Ok(
        catalog::version(&app.db, r.kind, &r.ns, &r.name, &p.version)
            .await?
            .id,
    )
}
