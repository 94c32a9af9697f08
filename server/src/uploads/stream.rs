//! Streaming a request body into a blob-store sink while hashing it.

use adapter_core::digest::Hasher;
use axum::body::Body;
use futures::StreamExt as _;

use crate::blobs::Sink;
use crate::error::{ApiResult, BodyTooLong, body_error};

/// The code of an error reading the request body (the client stopped sending).
pub const INTERRUPTED: &str = "upload_interrupted";

/// Copy `body` into `sink`, hashing as it goes. On `Err` the caller aborts the sink, or
/// (for [`INTERRUPTED`], when the client went away) may keep what arrived: every byte
/// hashed so far was also written.
pub async fn ingest(sink: &mut Sink, hasher: &mut Hasher, body: Body) -> ApiResult<()> {
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| body_error(&e, INTERRUPTED))?;
        hasher.update(&chunk);
        sink.write(chunk).await?;
    }
    Ok(())
}

/// `body`, cut off with [`BodyTooLong`] (413) once more than `limit` bytes arrived (a body
/// that was announced with its size, so nothing past it is read).
pub fn capped(body: Body, limit: u64) -> Body {
    let mut seen: u64 = 0;
    Body::from_stream(body.into_data_stream().map(move |chunk| {
        let chunk = chunk.map_err(std::io::Error::other)?;
        seen = seen.saturating_add(chunk.len() as u64);
        if seen > limit {
            return Err(std::io::Error::other(BodyTooLong(limit)));
        }
        Ok(chunk)
    }))
}

/// Read `body` to its end, hashing it, and check it hashes to `expected` (a blob stored
/// already, sent again by a caller who may not read it: the bytes prove it has them).
/// Returns the size.
pub async fn verify(body: Body, expected: &adapter_core::digest::Digest) -> ApiResult<u64> {
    let mut hasher = Hasher::new();
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| body_error(&e, INTERRUPTED))?;
        hasher.update(&chunk);
    }
    let size = hasher.len();
    let actual = hasher.finish();
    if actual != *expected {
        return Err(super::digest_mismatch(expected, &actual));
    }
    Ok(size)
}

/// Write `body` to `sink` and make it visible only if it hashes to `expected`; otherwise
/// abort (nothing visible) and answer `digest_mismatch`. Returns the size.
pub async fn ingest_verified(
    mut sink: Sink,
    body: Body,
    expected: &adapter_core::digest::Digest,
) -> ApiResult<u64> {
    let mut hasher = Hasher::new();
    if let Err(e) = ingest(&mut sink, &mut hasher, body).await {
        sink.abort().await;
        return Err(e);
    }
    let size = hasher.len();
    let actual = hasher.finish();
    if actual != *expected {
        sink.abort().await;
        return Err(super::digest_mismatch(expected, &actual));
    }
    sink.finish().await?;
    Ok(size)
}
