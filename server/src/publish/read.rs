//! Reading what a publish needs from stored blobs: small files whole, and only the header
//! of a safetensors file (two ranged reads), never the tensor data.

use std::io::Cursor;

use adapter_core::digest::Digest;
use adapter_core::safetensors::{Header, Limits, SafetensorsError, read_header};
use bytes::Bytes;
use serde_json::json;

use crate::app::AppState;
use crate::blobs::blob_key;
use crate::error::{ApiError, ApiResult};

/// Largest config file read whole (`adapter_config.json`, `config.json`).
pub const MAX_CONFIG: u64 = 1024 * 1024;

/// A stored blob of at most [`MAX_CONFIG`] bytes, read whole. `code` names the error.
pub async fn small_file(
    app: &AppState,
    code: &'static str,
    path: &str,
    digest: &Digest,
    size: u64,
) -> ApiResult<Bytes> {
    if size > MAX_CONFIG {
        return Err(ApiError::with_details(
            code,
            format!("{path} is {size} bytes; the limit is {MAX_CONFIG}"),
            json!({ "file": path }),
        ));
    }
    Ok(app.blobs.read_range(&blob_key(digest), 0..size).await?)
}

/// Why a header could not be read: the file's fault, or ours.
pub enum HeaderError {
    Invalid(SafetensorsError),
    Api(ApiError),
}

impl From<object_store::Error> for HeaderError {
    fn from(e: object_store::Error) -> Self {
        Self::Api(e.into())
    }
}

impl HeaderError {
    /// As an API error: an invalid file becomes `code` (422) with the safetensors code.
    pub fn into_api(self, code: &'static str, path: &str) -> ApiError {
        match self {
            Self::Api(e) => e,
            Self::Invalid(e) => ApiError::with_details(
                code,
                format!("{path}: {e}"),
                json!({ "file": path, "code": e.code(), "message": e.to_string() }),
            ),
        }
    }
}

/// Parse the safetensors header at the start of blob `digest` (`blob_size` bytes stored).
/// `file_len`: the length of the whole file the header belongs to (checked against it).
/// `limits`: [`Limits::SERVER`], or [`Limits::SERVER_ADAPTER`] for an adapter's weights.
pub async fn safetensors_header(
    app: &AppState,
    digest: &Digest,
    blob_size: u64,
    file_len: u64,
    limits: Limits,
) -> Result<Header, HeaderError> {
    let key = blob_key(digest);
    let prefix = app.blobs.read_range(&key, 0..blob_size.min(8)).await?;
    let parse = |bytes: &[u8]| {
        read_header(Cursor::new(bytes), &limits, Some(file_len)).map_err(HeaderError::Invalid)
    };
    let Ok(len_bytes) = <[u8; 8]>::try_from(&prefix[..]) else {
        return parse(&prefix);
    };
    let n = u64::from_le_bytes(len_bytes);
    if n > limits.max_header_len {
        return parse(&prefix);
    }
    let end = (8 + n).min(blob_size);
    let bytes = app.blobs.read_range(&key, 0..end).await?;
    parse(&bytes)
}
