//! `PUT|GET /v1/{kind}/{ns}/{name}/versions/{version}`.

use adapter_core::api::VersionInfo;
use adapter_core::manifest::Kind;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use super::extract::{ApiPath, LimitedBytes, MANIFEST_LIMIT};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::publish::{self, info::version_info, parse_name, parse_version};

pub async fn publish(
    State(app): State<AppState>,
    Extension(kind): Extension<Kind>,
    ApiPath((ns, name, version)): ApiPath<(String, String, String)>,
    LimitedBytes(body): LimitedBytes<MANIFEST_LIMIT>,
) -> ApiResult<Response> {
    let ns = parse_name("namespace", &ns)?;
    let name = parse_name("name", &name)?;
    let version = parse_version(&version)?;
    let out = publish::publish(&app, kind, &ns, &name, &version, &body).await?;
    let status = if out.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(out.info)).into_response())
}

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
    Ok(Json(version_info(kind, ns.as_str(), name.as_str(), &row)?))
}
