//! Typed HTTP client for the routes of docs/API.md that `adapterctl` calls. Bodies are the
//! `adapter_core::api` types, so the client and the server cannot drift.

use std::fmt;
use std::ops::Range;
use std::time::Duration;

use adapter_core::api::{
    BlobCheckRequest, BlobCheckResponse, BlobInfo, ErrorBody, ErrorInfo, RepositoryInfo,
    ResolveResponse, VersionInfo, VersionList, kind_segment,
};
use adapter_core::digest::Digest;
use adapter_core::manifest::{Kind, Manifest};
use adapter_core::reference::Selector;
use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, RANGE};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde_json::Value;

mod aliases;
mod evals;
pub mod jobs;
mod uploads;

pub use uploads::wrong_offset;

use crate::config::Settings;
use crate::exit::{
    ALIAS_CONFLICT, AUTH, CONFLICT, Failure, GATE_FAILED, NOT_FOUND, PROBLEMS, SERVER, USAGE,
    VERIFY,
};

/// The most digests one `POST /v1/blobs/check` may carry.
pub const CHECK_BATCH: usize = 10_000;

/// Why a request failed.
#[derive(Debug)]
pub enum ClientError {
    /// No answer: connection refused, reset, timed out, or the body broke off.
    Network { url: String, source: reqwest::Error },
    /// The server answered with its error body.
    Api { status: StatusCode, info: ErrorInfo },
    /// The server answered something that is not the documented shape.
    Unexpected { status: StatusCode, what: String },
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Network { url, source } => {
                // reqwest's own message repeats the URL; its causes say what happened.
                let mut cause = std::error::Error::source(source);
                if cause.is_none() {
                    return write!(f, "cannot reach the registry at {url}: {source}");
                }
                write!(f, "cannot reach the registry at {url}")?;
                while let Some(c) = cause {
                    write!(f, ": {c}")?;
                    cause = c.source();
                }
                Ok(())
            }
            Self::Api { info, .. } => f.write_str(&info.message),
            Self::Unexpected { status, what } => {
                write!(f, "unexpected answer from the registry ({status}): {what}")
            }
        }
    }
}

impl std::error::Error for ClientError {}

impl ClientError {
    /// The server's machine code, when it sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { info, .. } => Some(&info.code),
            _ => None,
        }
    }

    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Api { status, .. } | Self::Unexpected { status, .. } => Some(*status),
            Self::Network { .. } => None,
        }
    }

    pub fn details(&self) -> &Value {
        match self {
            Self::Api { info, .. } => &info.details,
            _ => &Value::Null,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(StatusCode::NOT_FOUND)
    }

    /// The exit code this failure maps to (see main.rs).
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Network { .. } => SERVER,
            Self::Unexpected { status, .. } if *status == StatusCode::NOT_FOUND => NOT_FOUND,
            Self::Unexpected { .. } => SERVER,
            Self::Api { status, info } => match (status.as_u16(), info.code.as_str()) {
                (_, "digest_mismatch") => VERIFY,
                (_, "alias_conflict") => ALIAS_CONFLICT,
                (_, "gate_failed") => GATE_FAILED,
                (401 | 403, _) => AUTH,
                (404, _) => NOT_FOUND,
                (409, _) => CONFLICT,
                (422, _) => PROBLEMS,
                (
                    _,
                    "invalid_name" | "invalid_version" | "invalid_selector" | "invalid_filter"
                    | "invalid_sort",
                ) => USAGE,
                _ => SERVER,
            },
        }
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        let code = e.exit_code();
        let api_code = e.code().map(str::to_owned);
        let details = e.details().clone();
        Failure {
            code,
            error: e.into(),
            api_code,
            details,
            quiet: false,
        }
    }
}

pub type Result<T> = std::result::Result<T, ClientError>;

/// The registry client. Cheap to clone (one connection pool).
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: Option<HeaderValue>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

impl Client {
    pub fn new(settings: &Settings) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("adapterctl/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(15))
            .read_timeout(Duration::from_secs(300))
            .build()?;
        let token = match &settings.token {
            Some(t) => {
                let mut v = HeaderValue::from_str(&format!("Bearer {t}")).map_err(|_| {
                    anyhow::anyhow!("the token contains characters not allowed in an HTTP header")
                })?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        Ok(Self {
            http,
            base: settings.url.clone(),
            token,
        })
    }

    /// The registry's base URL (identifies upload sessions in the local state).
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// `base` + percent-encoded path segments.
    pub fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.set_query(None);
        url.set_fragment(None);
        {
            let mut path = url
                .path_segments_mut()
                .expect("the base URL was checked to have a host");
            path.pop_if_empty();
            path.extend(segments);
        }
        url
    }

    pub(crate) fn request(&self, method: Method, url: Url) -> RequestBuilder {
        let rb = self.http.request(method, url);
        match &self.token {
            Some(t) => rb.header(AUTHORIZATION, t.clone()),
            None => rb,
        }
    }

    async fn send(&self, rb: RequestBuilder) -> Result<Response> {
        let (client, req) = rb.build_split();
        let req = req.map_err(|source| ClientError::Network {
            url: self.base.to_string(),
            source,
        })?;
        let url = req.url().to_string();
        client
            .execute(req)
            .await
            .map_err(|source| ClientError::Network { url, source })
    }

    /// Send; a non-2xx answer becomes [`ClientError::Api`] (or `Unexpected`).
    pub(crate) async fn send_ok(&self, rb: RequestBuilder) -> Result<Response> {
        let resp = self.send(rb).await?;
        if resp.status().is_success() {
            Ok(resp)
        } else {
            Err(error_from(resp).await)
        }
    }

    pub(crate) async fn json<T: DeserializeOwned>(&self, rb: RequestBuilder) -> Result<T> {
        let resp = self.send_ok(rb).await?;
        body_json(resp).await
    }

    /// `GET /v1/whoami`: who the registry takes this client's token for.
    pub async fn whoami(&self) -> Result<adapter_core::api::WhoAmI> {
        self.json(self.request(Method::GET, self.url(&["v1", "whoami"])))
            .await
    }

    // ---- blobs ----

    /// `POST /v1/blobs/check`, batched: the digests the server lacks, in input order.
    pub async fn missing_blobs(&self, digests: &[Digest]) -> Result<Vec<Digest>> {
        let mut missing = Vec::new();
        for batch in digests.chunks(CHECK_BATCH) {
            let body = BlobCheckRequest {
                digests: batch.to_vec(),
            };
            let resp: BlobCheckResponse = self
                .json(
                    self.request(Method::POST, self.url(&["v1", "blobs", "check"]))
                        .json(&body),
                )
                .await?;
            missing.extend(resp.missing);
        }
        Ok(missing)
    }

    /// `GET /v1/blobs/{digest}`, from byte `from` on (`Range: bytes=from-` when > 0).
    /// Answers 200 (whole blob) or 206 (the range); the caller checks which.
    pub async fn get_blob(&self, digest: &Digest, from: u64) -> Result<Response> {
        let url = self.url(&["v1", "blobs", &digest.to_string()]);
        let mut rb = self.request(Method::GET, url);
        if from > 0 {
            rb = rb.header(RANGE, format!("bytes={from}-"));
        }
        self.send_ok(rb).await
    }

    /// `GET /v1/blobs/{digest}` with `Range: bytes=a-b` for `range` (not empty). A registry
    /// that honours it answers 206; the caller checks.
    pub async fn get_blob_range(&self, digest: &Digest, range: Range<u64>) -> Result<Response> {
        let url = self.url(&["v1", "blobs", &digest.to_string()]);
        let last = range.end.saturating_sub(1);
        let rb = self
            .request(Method::GET, url)
            .header(RANGE, format!("bytes={}-{last}", range.start));
        self.send_ok(rb).await
    }

    /// `PUT /v1/blobs/{digest}` with a streamed body of `size` bytes.
    pub async fn put_blob(
        &self,
        digest: &Digest,
        size: u64,
        body: reqwest::Body,
    ) -> Result<BlobInfo> {
        let url = self.url(&["v1", "blobs", &digest.to_string()]);
        self.json(
            self.request(Method::PUT, url)
                .header(CONTENT_TYPE, "application/octet-stream")
                .header(CONTENT_LENGTH, size)
                .body(body),
        )
        .await
    }

    // ---- repositories and versions ----

    /// `GET /v1/{kind}/{ns}/{name}`.
    pub async fn repository(&self, kind: Kind, ns: &str, name: &str) -> Result<RepositoryInfo> {
        self.json(self.request(Method::GET, self.url(&["v1", kind_segment(kind), ns, name])))
            .await
    }

    /// `GET /v1/{kind}/{ns}/{name}/versions`.
    pub async fn versions(&self, kind: Kind, ns: &str, name: &str) -> Result<VersionList> {
        let url = self.url(&["v1", kind_segment(kind), ns, name, "versions"]);
        self.json(self.request(Method::GET, url)).await
    }

    /// `PUT /v1/{kind}/{ns}/{name}/versions/{version}`: `(created, info)`; `created` is
    /// false for an idempotent re-publish (200).
    pub async fn publish(
        &self,
        ns: &str,
        name: &str,
        version: &str,
        manifest: &Manifest,
    ) -> Result<(bool, VersionInfo)> {
        let url = self.url(&[
            "v1",
            kind_segment(manifest.kind()),
            ns,
            name,
            "versions",
            version,
        ]);
        let resp = self
            .send_ok(self.request(Method::PUT, url).json(manifest))
            .await?;
        let created = resp.status() == StatusCode::CREATED;
        Ok((created, body_json(resp).await?))
    }

    /// `GET /v1/{kind}/{ns}/{name}/versions/{version}`.
    pub async fn version(
        &self,
        kind: Kind,
        ns: &str,
        name: &str,
        version: &str,
    ) -> Result<VersionInfo> {
        let url = self.url(&["v1", kind_segment(kind), ns, name, "versions", version]);
        self.json(self.request(Method::GET, url)).await
    }

    /// `GET /v1/{kind}/{ns}/{name}/resolve[/{selector}]`.
    pub async fn resolve(
        &self,
        kind: Kind,
        ns: &str,
        name: &str,
        selector: Option<&Selector>,
    ) -> Result<ResolveResponse> {
        let selector = selector.map(ToString::to_string);
        let mut segments = vec!["v1", kind_segment(kind), ns, name, "resolve"];
        if let Some(s) = &selector {
            segments.push(s);
        }
        self.json(self.request(Method::GET, self.url(&segments)))
            .await
    }
}

impl Client {
    /// Resolve in the first of `kinds` that has the repository: a 404 from one kind moves on
    /// to the next. When every kind answers 404, the most specific error is returned (one
    /// that is not `repository_not_found`, else the first).
    pub async fn resolve_in(
        &self,
        kinds: &[Kind],
        ns: &str,
        name: &str,
        selector: Option<&Selector>,
    ) -> Result<(Kind, ResolveResponse)> {
        let mut errors = Vec::new();
        for &kind in kinds {
            match self.resolve(kind, ns, name, selector).await {
                Ok(r) => return Ok((kind, r)),
                Err(e) if e.is_not_found() => errors.push(e),
                Err(e) => return Err(e),
            }
        }
        let pick = errors
            .iter()
            .position(|e| e.code() != Some("repository_not_found"))
            .unwrap_or(0);
        Err(errors.swap_remove(pick))
    }
}

async fn body_json<T: DeserializeOwned>(resp: Response) -> Result<T> {
    let status = resp.status();
    let url = resp.url().to_string();
    let bytes = resp
        .bytes()
        .await
        .map_err(|source| ClientError::Network { url, source })?;
    serde_json::from_slice(&bytes).map_err(|e| ClientError::Unexpected {
        status,
        what: format!("response body does not parse ({e}): {}", snippet(&bytes)),
    })
}

async fn error_from(resp: Response) -> ClientError {
    let status = resp.status();
    let bytes = resp.bytes().await.unwrap_or_default();
    match serde_json::from_slice::<ErrorBody>(&bytes) {
        Ok(body) => ClientError::Api {
            status,
            info: body.error,
        },
        Err(_) => ClientError::Unexpected {
            status,
            what: if bytes.is_empty() {
                "empty body".into()
            } else {
                snippet(&bytes)
            },
        },
    }
}

fn snippet(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    let s: String = s.chars().take(200).collect();
    s.escape_debug().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(base: &str) -> Client {
        Client::new(&Settings {
            url: base.parse().unwrap(),
            token: Some("t".into()),
        })
        .unwrap()
    }

    #[test]
    fn urls_encode_segments_and_keep_a_base_path() {
        let c = client("http://h:1/");
        assert_eq!(
            c.url(&["v1", "adapters", "a", "b", "resolve", ">=1, <2"])
                .as_str(),
            "http://h:1/v1/adapters/a/b/resolve/%3E=1,%20%3C2"
        );
        let c = client("https://h/registry/");
        assert_eq!(
            c.url(&["v1", "blobs", "x/y"]).as_str(),
            "https://h/registry/v1/blobs/x%2Fy"
        );
        let c = client("https://h/registry");
        assert_eq!(c.url(&["healthz"]).as_str(), "https://h/registry/healthz");
    }

    #[test]
    fn exit_codes_follow_status_and_code() {
        let api = |status: u16, code: &str| ClientError::Api {
            status: StatusCode::from_u16(status).unwrap(),
            info: ErrorInfo {
                code: code.into(),
                message: "m".into(),
                details: Value::Null,
            },
        };
        assert_eq!(api(409, "version_exists").exit_code(), CONFLICT);
        assert_eq!(api(412, "alias_conflict").exit_code(), ALIAS_CONFLICT);
        assert_eq!(api(409, "gate_failed").exit_code(), GATE_FAILED);
        assert_eq!(api(404, "version_not_found").exit_code(), NOT_FOUND);
        assert_eq!(api(400, "digest_mismatch").exit_code(), VERIFY);
        assert_eq!(api(401, "unauthorized").exit_code(), AUTH);
        assert_eq!(api(422, "invalid_adapter").exit_code(), PROBLEMS);
        assert_eq!(api(500, "internal").exit_code(), SERVER);
        let e = ClientError::Api {
            status: StatusCode::RANGE_NOT_SATISFIABLE,
            info: ErrorInfo {
                code: "wrong_offset".into(),
                message: "m".into(),
                details: serde_json::json!({"offset": 42}),
            },
        };
        assert_eq!(wrong_offset(&e), Some(42));
        assert_eq!(wrong_offset(&api(416, "range_not_satisfiable")), None);
    }
}
