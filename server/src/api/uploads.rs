//! `POST /v1/uploads`, `PATCH|GET|PUT|DELETE /v1/uploads/{id}`.

use adapter_core::api::{BlobInfo, ErrorBody, UPLOAD_OFFSET_HEADER, UploadStart, UploadStatus};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;

use super::blobs::parse_digest;
use super::doc::Binary;
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiPath, ApiQuery, LimitedBytes, parse_json};
use crate::uploads;

fn with_offset(status: StatusCode, s: UploadStatus) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(UPLOAD_OFFSET_HEADER, HeaderValue::from(s.offset));
    (status, headers, Json(s)).into_response()
}

/// Start a resumable upload session.
///
/// The body is empty or an `UploadStart` (at most 64 KiB).
#[utoipa::path(
    post,
    path = "/v1/uploads",
    operation_id = "start_upload",
    tag = "uploads",
    request_body(content = Option<UploadStart>, description = "Optional; may be empty."),
    responses(
        (status = 201, description = "The new session.", body = UploadStatus, headers(
            ("Location" = String, description = "`/v1/uploads/{id}`"),
            ("Upload-Offset" = u64, description = "Bytes the session holds: where the next chunk starts."),
        )),
        (status = 400, description = "`invalid_json`, `invalid_body`.", body = ErrorBody),
        (status = 413, description = "`payload_too_large` (over 64 KiB).", body = ErrorBody),
        (status = 500, description = "`internal`.", body = ErrorBody),
    )
)]
pub async fn start(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    LimitedBytes(body): LimitedBytes<{ 64 * 1024 }>,
) -> ApiResult<Response> {
    let req: UploadStart = if body.iter().all(u8::is_ascii_whitespace) {
        UploadStart::default()
    } else {
        parse_json(&body)?
    };
    // Sizes are stored as BIGINT: a larger one would be clamped, not kept as declared.
    if req.size.is_some_and(|s| i64::try_from(s).is_err()) {
        return Err(ApiError::new(
            "invalid_body",
            format!("size is at most {} bytes", i64::MAX),
        ));
    }
    let opener = caller.token.as_ref().map(|t| t.id.as_str());
    let s = uploads::start(&app, req, opener).await?;
    let mut res = with_offset(StatusCode::CREATED, s.clone());
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/uploads/{}", s.id)) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    Ok(res)
}

/// An upload session's state.
#[utoipa::path(
    get,
    path = "/v1/uploads/{id}",
    operation_id = "get_upload",
    tag = "uploads",
    params(("id" = String, Path, description = "The session id (a UUID) from `POST /v1/uploads`.")),
    responses(
        (status = 200, description = "The session.", body = UploadStatus, headers(("Upload-Offset" = u64, description = "Bytes the session holds: where the next chunk starts."))),
        (status = 404, description = "`upload_not_found` (unknown, expired or not a UUID).", body = ErrorBody),
        (status = 500, description = "`internal`.", body = ErrorBody),
    )
)]
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

/// Append a chunk at the session's offset.
///
/// An empty body changes nothing. Every success pushes `expires_at` to now + TTL.
#[utoipa::path(
    patch,
    path = "/v1/uploads/{id}",
    operation_id = "append_upload",
    tag = "uploads",
    params(
        ("id" = String, Path, description = "The session id (a UUID) from `POST /v1/uploads`."),
        ("Upload-Offset" = u64, Header, description = "Where this chunk starts; must equal the session's offset."),
    ),
    request_body(content = Option<Binary>, content_type = "application/octet-stream", description = "The chunk; may be empty."),
    responses(
        (status = 202, description = "Appended; the new offset.", body = UploadStatus, headers(("Upload-Offset" = u64, description = "Bytes the session holds: where the next chunk starts."))),
        (status = 400, description = "`invalid_offset`, `upload_interrupted`.", body = ErrorBody),
        (status = 404, description = "`upload_not_found`.", body = ErrorBody),
        (status = 409, description = "`upload_finishing`, `conflict`.", body = ErrorBody),
        (status = 416, description = "`wrong_offset` (details `{\"offset\": current}`).", body = ErrorBody, headers(("Upload-Offset" = u64, description = "Bytes the session holds: where the next chunk starts."))),
        (status = 500, description = "`internal`.", body = ErrorBody),
    )
)]
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

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FinishQuery {
    /// `sha256:<64 hex>` the uploaded bytes must hash to (required).
    #[param(required = true)]
    digest: Option<String>,
}

/// Finish an upload: verify the digest and store the blob.
///
/// On a mismatch the session is deleted and nothing becomes visible. Answers 201 even when
/// the blob already existed.
#[utoipa::path(
    put,
    path = "/v1/uploads/{id}",
    operation_id = "finish_upload",
    tag = "uploads",
    params(("id" = String, Path, description = "The session id (a UUID) from `POST /v1/uploads`."), FinishQuery),
    responses(
        (status = 201, description = "The stored blob.", body = BlobInfo),
        (status = 400, description = "`invalid_digest` (missing or malformed `digest`), `invalid_query`, `digest_mismatch`.", body = ErrorBody),
        (status = 404, description = "`upload_not_found`.", body = ErrorBody),
        (status = 409, description = "`upload_finishing`, `conflict`.", body = ErrorBody),
        (status = 500, description = "`internal`.", body = ErrorBody),
    )
)]
pub async fn finish(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<FinishQuery>,
) -> ApiResult<Response> {
    let digest = q.digest.ok_or_else(|| {
        ApiError::new("invalid_digest", "the `digest` query parameter is required")
    })?;
    let digest = parse_digest(&digest)?;
    let info = uploads::finish(&app, &id, &digest).await?;
    // The uploader may read (and publish) what it sent, before any version lists it.
    if let Some(token) = &caller.token {
        app.db.add_blob_uploader(&digest, &token.id).await?;
    }
    Ok((StatusCode::CREATED, Json(info)).into_response())
}

/// Cancel an upload: the session and its data are removed.
#[utoipa::path(
    delete,
    path = "/v1/uploads/{id}",
    operation_id = "cancel_upload",
    tag = "uploads",
    params(("id" = String, Path, description = "The session id (a UUID) from `POST /v1/uploads`.")),
    responses(
        (status = 204, description = "Removed."),
        (status = 404, description = "`upload_not_found`.", body = ErrorBody),
        (status = 409, description = "`upload_finishing`.", body = ErrorBody),
        (status = 500, description = "`internal`.", body = ErrorBody),
    )
)]
pub async fn cancel(
    State(app): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    uploads::cancel(&app, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
