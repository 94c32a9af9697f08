//! Client calls for eval results and for reading a blob's first bytes (`adapterctl eval`,
//! `push --eval`, `diff`).

use adapter_core::api::{EvalBatch, EvalInput, EvalList, kind_segment};
use adapter_core::digest::Digest;
use adapter_core::manifest::Kind;
use reqwest::{Method, StatusCode};

use super::{Client, ClientError, Result};

impl Client {
    /// `POST /v1/{kind}/{ns}/{name}/versions/{version}/evals`: the stored results.
    pub async fn add_evals(
        &self,
        kind: Kind,
        ns: &str,
        name: &str,
        version: &str,
        results: &[EvalInput],
    ) -> Result<EvalList> {
        let url = self.url(&[
            "v1",
            kind_segment(kind),
            ns,
            name,
            "versions",
            version,
            "evals",
        ]);
        let body = EvalBatch {
            results: results.to_vec(),
        };
        self.json(self.request(Method::POST, url).json(&body)).await
    }

    /// `GET /v1/{kind}/{ns}/{name}/versions/{version}/evals`: every result, oldest first.
    pub async fn evals(&self, kind: Kind, ns: &str, name: &str, version: &str) -> Result<EvalList> {
        let url = self.url(&[
            "v1",
            kind_segment(kind),
            ns,
            name,
            "versions",
            version,
            "evals",
        ]);
        self.json(self.request(Method::GET, url)).await
    }

    /// `GET /v1/blobs/{digest}` with `Range: bytes=from-(from+len-1)`: at most `len` bytes
    /// from `from` (fewer at the end of the blob). A server that ignores the range (200) is
    /// read no further than `len` bytes.
    pub async fn blob_range(&self, digest: &Digest, from: u64, len: u64) -> Result<Vec<u8>> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let last = from.saturating_add(len - 1);
        let mut resp = self
            .get_blob_range(digest, from..from.saturating_add(len))
            .await?;
        let status = resp.status();
        if status != StatusCode::PARTIAL_CONTENT && !(status == StatusCode::OK && from == 0) {
            return Err(ClientError::Unexpected {
                status,
                what: format!("asked for bytes {from}-{last} of {digest}"),
            });
        }
        let cap = usize::try_from(len).unwrap_or(usize::MAX);
        let mut out = Vec::new();
        let network = |source| ClientError::Network {
            url: self.base.to_string(),
            source,
        };
        while let Some(chunk) = resp.chunk().await.map_err(network)? {
            let room = cap - out.len();
            out.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if out.len() == cap {
                break;
            }
        }
        Ok(out)
    }
}
