//! Extractors whose rejections come out in the one error shape: path and query parameters,
//! and size-capped bodies (JSON bodies are small; uploads stream and never use these).

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use bytes::{Bytes, BytesMut};
use futures::StreamExt as _;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Default cap for JSON request bodies.
pub const JSON_LIMIT: usize = 2 * 1024 * 1024;
/// Cap for a manifest body.
pub const MANIFEST_LIMIT: usize = 8 * 1024 * 1024;

/// `axum::extract::Path` with our error shape (`invalid_path`).
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Self(p.0))
            .map_err(|e| ApiError::new("invalid_path", e.body_text()))
    }
}

/// `axum::extract::Query` with our error shape (`invalid_query`).
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Self(q.0))
            .map_err(|e| ApiError::new("invalid_query", e.body_text()))
    }
}

/// The whole body, refused with 413 `payload_too_large` past `LIMIT` bytes.
#[derive(Debug)]
pub struct LimitedBytes<const LIMIT: usize>(pub Bytes);

impl<S: Send + Sync, const LIMIT: usize> FromRequest<S> for LimitedBytes<LIMIT> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        read_limited(req.into_body(), LIMIT).await.map(Self)
    }
}

pub async fn read_limited(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            "payload_too_large",
            format!("request body is larger than {limit} bytes"),
        )
    };
    let mut stream = body.into_data_stream();
    let mut buf = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::new("invalid_body", format!("reading body: {e}")))?;
        if buf.len() + chunk.len() > limit {
            return Err(too_large());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// A strict-JSON body (duplicate keys refused) of at most [`JSON_LIMIT`] bytes.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        let bytes = read_limited(req.into_body(), JSON_LIMIT).await?;
        parse_json(&bytes).map(Self)
    }
}

/// Parse a body as strict JSON into `T` (`invalid_json` on any failure).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value = adapter_core::json::parse_strict(bytes)
        .map_err(|e| ApiError::new("invalid_json", format!("request body: {e}")))?;
    serde_json::from_value(value)
        .map_err(|e| ApiError::new("invalid_json", format!("request body: {e}")))
}

/// A list's page size: `given` or `default`, refused with 400 `invalid_query` outside 1..=`max`.
pub fn page_limit(given: Option<u32>, default: u32, max: u32) -> Result<u32, ApiError> {
    let limit = given.unwrap_or(default);
    if limit == 0 || limit > max {
        return Err(ApiError::new(
            "invalid_query",
            format!("limit must be between 1 and {max}"),
        ));
    }
    Ok(limit)
}
