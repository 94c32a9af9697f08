//! `HEAD|GET|PUT /v1/blobs/{digest}`, `POST /v1/blobs/check`.

use adapter_core::api::{BlobCheckRequest, BlobCheckResponse, BlobInfo, ErrorBody};
use adapter_core::digest::Digest;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use super::doc::Binary;
use crate::app::AppState;
use crate::auth::Caller;
use crate::download::{self, blob_headers};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiPath, JsonBody};

/// Most digests one check may ask about.
pub const MAX_CHECK: usize = 10_000;

pub(super) fn parse_digest(s: &str) -> ApiResult<Digest> {
    s.parse()
        .map_err(|e| ApiError::new("invalid_digest", format!("`{}`: {e}", s.escape_debug())))
}

fn blob_not_found(d: &Digest) -> ApiError {
    ApiError::new("blob_not_found", format!("blob {d} does not exist"))
}

/// The size of a blob the caller may read; `blob_not_found` for one it may not, as for
/// one that does not exist.
async fn size_of(app: &AppState, caller: &Caller, digest: &str) -> ApiResult<(Digest, u64)> {
    let d = parse_digest(digest)?;
    let size = readable(app, caller, &d)
        .await?
        .ok_or_else(|| blob_not_found(&d))?;
    Ok((d, size))
}

/// The size of `d` if it is stored and the caller may read it (`auth::walls`).
async fn readable(app: &AppState, caller: &Caller, d: &Digest) -> ApiResult<Option<u64>> {
    Ok(app
        .db
        .readable_blobs(&[*d], &caller.blob_reader())
        .await?
        .remove(d))
}

/// Does a blob exist, and how large is it?
///
/// Answers the headers of `GET` without a body; `Range` is ignored. A blob is readable by a
/// caller who may read a version that lists it, or who uploaded it (an admin over every
/// namespace reads any); others get `blob_not_found`, as for a missing one.
#[utoipa::path(
    head,
    path = "/v1/blobs/{digest}",
    operation_id = "head_blob",
    tag = "blobs",
    params(("digest" = String, Path, description = "`sha256:<64 hex>`")),
    responses(
        (status = 200, description = "The blob exists.", headers(
            ("Content-Length" = u64, description = "The blob's size."),
            ("ETag" = String, description = "`\"sha256:…\"`"),
            ("Accept-Ranges" = String, description = "`bytes`"),
        )),
        (status = 400, description = "`invalid_digest`, `invalid_path`.", body = ErrorBody),
        (status = 404, description = "`blob_not_found`.", body = ErrorBody),
        (status = 500, description = "`internal`.", body = ErrorBody),
    )
)]
pub async fn head(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(digest): ApiPath<String>,
) -> ApiResult<Response> {
    let (d, size) = size_of(&app, &caller, &digest).await?;
    Ok((StatusCode::OK, blob_headers(&d, size)).into_response())
}

/// Download a blob, whole or one byte range.
///
/// `Range: bytes=a-b`, `bytes=a-` or `bytes=-n` (one range; `b` is clamped to the end).
#[utoipa::path(
    get,
    path = "/v1/blobs/{digest}",
    operation_id = "get_blob",
    tag = "blobs",
    params(
        ("digest" = String, Path, description = "`sha256:<64 hex>`"),
        ("Range" = Option<String>, Header, description = "One range: `bytes=a-b`, `bytes=a-` or `bytes=-n`."),
    ),
    responses(
        (status = 200, description = "The whole blob, streamed.", body = Binary, content_type = "application/octet-stream", headers(
            ("Content-Length" = u64, description = "The blob's size."),
            ("ETag" = String, description = "`\"sha256:…\"`"),
            ("Accept-Ranges" = String, description = "`bytes`"),
        )),
        (status = 206, description = "The requested range.", body = Binary, content_type = "application/octet-stream", headers(
            ("Content-Range" = String, description = "`bytes a-b/size`"),
            ("Content-Length" = u64, description = "The range's length."),
        )),
        (status = 400, description = "`invalid_digest`, `invalid_path`, `invalid_range` (malformed, several ranges, another unit).", body = ErrorBody),
        (status = 404, description = "`blob_not_found`.", body = ErrorBody),
        (status = 416, description = "`range_not_satisfiable` (details `{\"size\": n}`).", body = ErrorBody, headers(
            ("Content-Range" = String, description = "`bytes */size`"),
        )),
        (status = 500, description = "`internal`.", body = ErrorBody),
    )
)]
pub async fn get(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(digest): ApiPath<String>,
    req_headers: HeaderMap,
) -> ApiResult<Response> {
    let (d, size) = size_of(&app, &caller, &digest).await?;
    Ok(download::blob(&app, &d, size, &req_headers)
        .await?
        .into_response())
}

/// Upload a blob in one request.
///
/// The body is streamed and hashed; on a mismatch nothing is stored. A blob the caller may
/// read already is answered 200 without reading the body, with `Connection: close`. A blob
/// stored for other namespaces only is verified against the body and kept once; the answer
/// (201) does not tell it from a new one.
#[utoipa::path(
    put,
    path = "/v1/blobs/{digest}",
    operation_id = "put_blob",
    tag = "blobs",
    params(("digest" = String, Path, description = "`sha256:<64 hex>` of the body")),
    request_body(content = Binary, content_type = "application/octet-stream", description = "The blob's bytes (no size cap)."),
    responses(
        (status = 201, description = "Stored, or verified against the stored copy of a blob the caller could not read yet (it may from now on).", body = BlobInfo),
        (status = 200, description = "The caller may read it already (the body was not read).", body = BlobInfo, headers(
            ("Connection" = String, description = "`close`"),
        )),
        (status = 400, description = "`invalid_digest`, `invalid_path`, `digest_mismatch`, `upload_interrupted`.", body = ErrorBody),
        (status = 500, description = "`internal`.", body = ErrorBody),
    )
)]
pub async fn put(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(digest): ApiPath<String>,
    body: Body,
) -> ApiResult<Response> {
    let d = parse_digest(&digest)?;
    if let Some(size) = readable(&app, &caller, &d).await? {
        // The caller may read it already, so the body was not read: tell the client not to
        // reuse this connection (the unread body is still on it).
        let info = BlobInfo { digest: d, size };
        let mut res = (StatusCode::OK, Json(info)).into_response();
        res.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return Ok(res);
    }
    // New, or stored for others only: either way the bytes are verified, and the answer
    // does not say which (one stored copy stays).
    let (_, info) = crate::uploads::put_monolithic(&app, &d, body).await?;
    if let Some(token) = &caller.token {
        app.db.add_blob_uploader(&d, &token.id).await?;
    }
    Ok((StatusCode::CREATED, Json(info)).into_response())
}

/// Which of these blobs does the server lack?
///
/// A blob counts as present only when the caller may read it: a version it may read lists
/// it, or it uploaded it. Others count as missing (upload them; one stored copy is kept).
#[utoipa::path(
    post,
    path = "/v1/blobs/check",
    operation_id = "check_blobs",
    tag = "blobs",
    request_body(content = BlobCheckRequest, description = "At most 10,000 digests."),
    responses(
        (status = 200, description = "The missing digests, in request order.", body = BlobCheckResponse),
        (status = 400, description = "`invalid_json`, `invalid_body`, `too_many_digests`.", body = ErrorBody),
        (status = 413, description = "`payload_too_large` (over 2 MiB).", body = ErrorBody),
        (status = 500, description = "`internal`.", body = ErrorBody),
    )
)]
pub async fn check(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonBody(req): JsonBody<BlobCheckRequest>,
) -> ApiResult<Json<BlobCheckResponse>> {
    if req.digests.len() > MAX_CHECK {
        return Err(ApiError::new(
            "too_many_digests",
            format!("at most {MAX_CHECK} digests per check"),
        ));
    }
    // Blobs the caller may not read count as missing (`auth::walls`).
    let found = app
        .db
        .readable_blobs(&req.digests, &caller.blob_reader())
        .await?;
    let missing = req
        .digests
        .into_iter()
        .filter(|d| !found.contains_key(d))
        .collect();
    Ok(Json(BlobCheckResponse { missing }))
}
