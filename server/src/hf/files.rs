//! `HEAD|GET /hf/{ns}/{name}/resolve/{revision}/{path…}`: a file of a version, served
//! directly (no redirect), with the headers `huggingface_hub` reads: `ETag` and
//! `X-Linked-Etag` (the sha256 hex, as the Hub gives for LFS files), `X-Linked-Size`,
//! `X-Repo-Commit`, `Content-Length`, `Accept-Ranges`; `Range` is honoured.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::{HfError, HfResult, HubPath, at_revision};
use crate::app::AppState;
use crate::download;

#[derive(Debug, serde::Deserialize)]
pub struct FilePath {
    ns: String,
    name: String,
    revision: String,
    path: String,
}

/// The file's blob and size, and the Hub's headers for it.
async fn file(
    app: &AppState,
    p: &FilePath,
) -> HfResult<(adapter_core::digest::Digest, u64, HeaderMap)> {
    let at = at_revision(app, &p.ns, &p.name, &p.revision).await?;
    let entry = at.manifest.file(&p.path).ok_or_else(|| {
        HfError::EntryNotFound(format!(
            "{}@{} has no file `{}`",
            at.id,
            at.version,
            p.path.escape_debug()
        ))
    })?;
    let mut h = HeaderMap::new();
    let etag = format!("\"{}\"", entry.digest.hex());
    for (name, value) in [
        ("etag", etag.clone()),
        ("x-linked-etag", etag),
        ("x-linked-size", entry.size.to_string()),
        ("x-repo-commit", at.commit.clone()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    Ok((entry.digest, entry.size, h))
}

pub async fn head(
    State(app): State<AppState>,
    HubPath(p): HubPath<FilePath>,
) -> HfResult<Response> {
    let (d, size, hub) = file(&app, &p).await?;
    let mut headers = download::blob_headers(&d, size);
    headers.extend(hub);
    Ok(headers.into_response())
}

pub async fn get(
    State(app): State<AppState>,
    HubPath(p): HubPath<FilePath>,
    req_headers: HeaderMap,
) -> HfResult<Response> {
    let (d, size, hub) = file(&app, &p).await?;
    let (status, mut headers, body) = download::blob(&app, &d, size, &req_headers)
        .await
        .map_err(HfError::Api)?;
    headers.extend(hub);
    headers.remove(header::CONTENT_ENCODING);
    Ok((status, headers, body).into_response())
}
