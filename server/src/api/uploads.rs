//! `POST /v1/uploads`, `PATCH|GET|PUT|DELETE /v1/uploads/{id}`.

use adapter_core::api::{UPLOAD_OFFSET_HEADER, UploadStart, UploadStatus};
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::blobs::parse_digest;
use super::extract::{ApiPath, ApiQuery, LimitedBytes, parse_json};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::uploads;

fn with_offset(status: StatusCode, s: UploadStatus) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(UPLOAD_OFFSET_HEADER, HeaderValue::from(s.offset));
    (status, headers, Json(s)).into_response()
}

pub async fn start(
    State(app): State<AppState>,
    LimitedBytes(body): LimitedBytes<{ 64 * 1024 }>,
) -> ApiResult<Response> {
    let req: UploadStart = if body.iter().all(u8::is_ascii_whitespace) {
        UploadStart::default()
    } else {
        parse_json(&body)?
    };
    let s = uploads::start(&app, req).await?;
    let mut res = with_offset(StatusCode::CREATED, s.clone());
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/uploads/{}", s.id)) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    Ok(res)
}

pub async fn status(
    State(app): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Response> {
    Ok(with_offset(
        StatusCode::OK,
        uploads::status(&app, &id).await?,
    ))
}

/// `Upload-Offset`: required, ASCII digits, fits in u64.
fn offset_header(headers: &HeaderMap) -> ApiResult<u64> {
    let invalid = |why: &str| ApiError::new("invalid_offset", format!("Upload-Offset: {why}"));
    let raw = headers
        .get(UPLOAD_OFFSET_HEADER)
        .ok_or_else(|| invalid("header is required"))?
        .to_str()
        .map_err(|_| invalid("not ASCII"))?
        .trim();
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("must be a non-negative decimal integer"));
    }
    raw.parse().map_err(|_| invalid("too large"))
}

pub async fn append(
    State(app): State<AppState>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let offset = offset_header(&headers)?;
    let s = uploads::append(&app, &id, offset, body).await?;
    Ok(with_offset(StatusCode::ACCEPTED, s))
}

#[derive(Debug, Deserialize)]
pub struct FinishQuery {
    digest: Option<String>,
}

pub async fn finish(
    State(app): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<FinishQuery>,
) -> ApiResult<Response> {
    let digest = q.digest.ok_or_else(|| {
        ApiError::new("invalid_digest", "the `digest` query parameter is required")
    })?;
    let digest = parse_digest(&digest)?;
    let info = uploads::finish(&app, &id, &digest).await?;
    Ok((StatusCode::CREATED, Json(info)).into_response())
}

pub async fn cancel(
    State(app): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    uploads::cancel(&app, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
