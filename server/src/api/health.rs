//! `/healthz` (the process runs) and `/readyz` (the database and blob store answer).

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use adapter_core::api::ErrorBody;

/// `{"status": "ok"}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    status: &'static str,
}

const OK: Health = Health { status: "ok" };

/// Liveness: the process runs.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "health",
    responses((status = 200, description = "The process runs.", body = Health))
)]
pub async fn healthz() -> Json<Health> {
    Json(OK)
}

/// Readiness: the database and the blob store answer.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "health",
    responses(
        (status = 200, description = "The database and the blob store answer.", body = Health),
        (status = 503, description = "`not_ready`: a dependency does not answer.", body = ErrorBody),
    )
)]
pub async fn readyz(State(app): State<AppState>) -> ApiResult<Json<Health>> {
    app.db
        .ping()
        .await
        .map_err(|e| ApiError::NotReady(format!("database: {e}")))?;
    app.blobs
        .ping()
        .await
        .map_err(|e| ApiError::NotReady(format!("blob store: {e}")))?;
    Ok(Json(OK))
}
