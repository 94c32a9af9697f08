//! `/healthz` (the process runs) and `/readyz` (the database and blob store answer).

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::error::{ApiError, ApiResult};

pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub async fn readyz(State(app): State<AppState>) -> ApiResult<Json<Value>> {
    app.db
        .ping()
        .await
        .map_err(|e| ApiError::NotReady(format!("database: {e}")))?;
    app.blobs
        .ping()
        .await
        .map_err(|e| ApiError::NotReady(format!("blob store: {e}")))?;
    Ok(Json(json!({ "status": "ok" })))
}
