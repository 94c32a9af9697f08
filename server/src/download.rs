//! A stored blob as an HTTP response: whole, or the one range a `Range` header asks for,
//! streamed from the blob store (`/v1/blobs/{digest}` and the Hub protocol's `resolve`
//! share it). Bottom floor: imports the handles, `blobs`, `range` and `error`.

use adapter_core::digest::Digest;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};

use crate::app::AppState;
use crate::blobs::blob_key;
use crate::error::{ApiError, ApiResult};
use crate::range;

/// The headers every answer about blob `d` of `len` bytes carries.
pub fn blob_headers(d: &Digest, len: u64) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("\"{d}\"")) {
        h.insert(header::ETAG, v);
    }
    h
}

/// Blob `d` (`size` bytes, known to exist) as 200 or, for a `Range` header, 206.
pub async fn blob(
    app: &AppState,
    d: &Digest,
    size: u64,
    req_headers: &HeaderMap,
) -> ApiResult<(StatusCode, HeaderMap, Body)> {
    let range_header = match req_headers.get(header::RANGE) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| ApiError::new("invalid_range", "Range header is not ASCII"))?,
        ),
    };
    let range = range::parse(range_header, size)?;
    let (status, span) = match &range {
        Some(r) => (StatusCode::PARTIAL_CONTENT, r.clone()),
        None => (StatusCode::OK, 0..size),
    };
    let stream = app.blobs.stream_range(&blob_key(d), span.clone()).await?;
    let mut headers = blob_headers(d, span.end - span.start);
    if range.is_some()
        && let Ok(v) =
            HeaderValue::from_str(&format!("bytes {}-{}/{size}", span.start, span.end - 1))
    {
        headers.insert(header::CONTENT_RANGE, v);
    }
    Ok((status, headers, Body::from_stream(stream)))
}
