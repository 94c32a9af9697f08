//! Client calls for resumable uploads (`POST /v1/uploads`, `PATCH|GET|PUT|DELETE /v1/uploads/{id}`).

use adapter_core::api::{BlobInfo, UPLOAD_OFFSET_HEADER, UploadStart, UploadStatus};
use adapter_core::digest::Digest;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::{Client, ClientError, Result};

impl Client {
    /// `POST /v1/uploads`.
    pub async fn start_upload(&self, start: &UploadStart) -> Result<UploadStatus> {
        self.json(
            self.request(Method::POST, self.url(&["v1", "uploads"]))
                .json(start),
        )
        .await
    }

    /// `GET /v1/uploads/{id}`: `None` when unknown or expired (404).
    pub async fn upload_status(&self, id: &str) -> Result<Option<UploadStatus>> {
        match self
            .json(self.request(Method::GET, self.url(&["v1", "uploads", id])))
            .await
        {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `PATCH /v1/uploads/{id}` with `Upload-Offset: offset` and a chunk of `len` bytes.
    /// A 416 `wrong_offset` is returned as [`ClientError::Api`]; see [`wrong_offset`].
    pub async fn patch_upload(
        &self,
        id: &str,
        offset: u64,
        len: u64,
        body: reqwest::Body,
    ) -> Result<UploadStatus> {
        self.json(
            self.request(Method::PATCH, self.url(&["v1", "uploads", id]))
                .header(UPLOAD_OFFSET_HEADER, offset)
                .header(CONTENT_TYPE, "application/octet-stream")
                .header(CONTENT_LENGTH, len)
                .body(body),
        )
        .await
    }

    /// `PUT /v1/uploads/{id}?digest=…`: finish the session.
    pub async fn finish_upload(&self, id: &str, digest: &Digest) -> Result<BlobInfo> {
        let mut url = self.url(&["v1", "uploads", id]);
        url.query_pairs_mut()
            .append_pair("digest", &digest.to_string());
        self.json(self.request(Method::PUT, url).header(CONTENT_LENGTH, 0))
            .await
    }

    /// `DELETE /v1/uploads/{id}`.
    pub async fn cancel_upload(&self, id: &str) -> Result<()> {
        self.send_ok(self.request(Method::DELETE, self.url(&["v1", "uploads", id])))
            .await
            .map(drop)
    }
}

/// The offset a 416 `wrong_offset` answer reports (details `offset`), if this is one.
pub fn wrong_offset(e: &ClientError) -> Option<u64> {
    match e {
        ClientError::Api { status, info }
            if *status == StatusCode::RANGE_NOT_SATISFIABLE && info.code == "wrong_offset" =>
        {
            info.details.get("offset").and_then(Value::as_u64)
        }
        _ => None,
    }
}
