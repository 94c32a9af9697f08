//! `POST|GET /v1/{kind}/{ns}/{name}/versions/{version}/evals`: append-only eval results.

use adapter_core::api::{ErrorBody, EvalBatch, EvalList, VersionInfo};
use adapter_core::manifest::Kind;
use adapter_core::name::Name;
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde_json::json;

use super::extract::{ApiPath, JsonBody};
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::publish::{parse_name, parse_version};

/// The version's id, or 404 `repository_not_found` / `version_not_found`.
pub(super) async fn version_id(
    app: &AppState,
    kind: Kind,
    (ns, name, version): (&str, &str, &str),
) -> ApiResult<(Name, Name, String, i64)> {
    let ns = parse_name("namespace", ns)?;
    let name = parse_name("name", name)?;
    let version = parse_version(version)?.to_string();
    match app
        .db
        .version_id(kind, ns.as_str(), name.as_str(), &version)
        .await?
    {
        Some(id) => Ok((ns, name, version, id)),
        None => {
            super::repositories::repository(app, kind, &ns, &name).await?;
            Err(ApiError::new(
                "version_not_found",
                format!("{ns}/{name}@{version} does not exist"),
            ))
        }
    }
}

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
    Extension(kind): Extension<Kind>,
    Extension(caller): Extension<Caller>,
    ApiPath((ns, name, version)): ApiPath<(String, String, String)>,
    JsonBody(batch): JsonBody<EvalBatch>,
) -> ApiResult<(StatusCode, Json<EvalList>)> {
    let (.., id) = version_id(&app, kind, (&ns, &name, &version)).await?;
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
pub async fn list(
    State(app): State<AppState>,
    Extension(kind): Extension<Kind>,
    ApiPath((ns, name, version)): ApiPath<(String, String, String)>,
) -> ApiResult<Json<EvalList>> {
    let (.., id) = version_id(&app, kind, (&ns, &name, &version)).await?;
    Ok(Json(EvalList {
        evals: app.db.evals(id).await?,
    }))
}

/// Fill `VersionInfo.evals` with the latest result per `benchmark:metric`.
pub(super) async fn attach_latest(app: &AppState, info: &mut VersionInfo) -> ApiResult<()> {
    if let Some(id) = app
        .db
        .version_id(info.kind, &info.namespace, &info.name, &info.version)
        .await?
    {
        info.evals = app.db.latest_evals(id).await?;
    }
    Ok(())
}
