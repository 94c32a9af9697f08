//! Request parsing with the one error shape: path and query parameters, the repository
//! path (`{ns}/{name}` with its naming rules, plus `{version}`), and size-capped bodies
//! (JSON bodies are small; uploads stream and never use these). Bottom floor: imports only
//! `error`.

use std::collections::HashMap;

use adapter_core::api::kind_segment;
use adapter_core::manifest::Kind;
use adapter_core::name::{AliasName, Name};
use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use bytes::{Bytes, BytesMut};
use futures::StreamExt as _;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::error::{ApiError, ApiResult};

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

/// Longest accepted version string.
pub const MAX_VERSION_LEN: usize = 256;

/// A namespace or repository name (`what` names the field in the error).
pub fn parse_name(what: &str, s: &str) -> ApiResult<Name> {
    Name::new(s).map_err(|e| {
        ApiError::with_details(
            "invalid_name",
            format!("{what} `{}`: {e}", s.escape_debug()),
            json!({ "field": what }),
        )
    })
}

/// A semver version, at most [`MAX_VERSION_LEN`] bytes.
pub fn parse_version(s: &str) -> ApiResult<semver::Version> {
    let invalid = |m: String| ApiError::new("invalid_version", m);
    if s.len() > MAX_VERSION_LEN {
        return Err(invalid(format!(
            "a version is at most {MAX_VERSION_LEN} bytes"
        )));
    }
    semver::Version::parse(s).map_err(|e| {
        invalid(format!(
            "`{}` is not a semver version: {e}",
            s.escape_debug()
        ))
    })
}

/// The repository a path names: its kind (the route's `Extension<Kind>`, or a `{kind}`
/// segment `adapters` | `models`), `{ns}` and `{name}`, checked against the naming rules.
/// The one place those path parameters are read.
#[derive(Debug, Clone)]
pub struct RepoPath {
    pub kind: Kind,
    pub ns: Name,
    pub name: Name,
}

/// A [`RepoPath`] plus `{version}` (a semver version).
#[derive(Debug, Clone)]
pub struct VersionPath {
    pub repo: RepoPath,
    pub version: semver::Version,
}

/// A [`RepoPath`] plus `{alias}` (alias naming rules; `invalid_alias`).
#[derive(Debug, Clone)]
pub struct AliasPath {
    pub repo: RepoPath,
    pub alias: AliasName,
}

/// Every path parameter of the matched route, by name.
async fn path_params<S: Send + Sync>(
    parts: &mut Parts,
    state: &S,
) -> ApiResult<HashMap<String, String>> {
    let ApiPath(params) =
        ApiPath::<HashMap<String, String>>::from_request_parts(parts, state).await?;
    Ok(params)
}

fn param<'a>(params: &'a HashMap<String, String>, key: &str) -> ApiResult<&'a str> {
    params
        .get(key)
        .map(String::as_str)
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("the route has no `{{{key}}}`")))
}

impl RepoPath {
    fn from_params(parts: &Parts, params: &HashMap<String, String>) -> ApiResult<Self> {
        let kind = match parts.extensions.get::<Kind>() {
            Some(k) => *k,
            None => {
                let segment = param(params, "kind")?;
                [Kind::Adapter, Kind::Model]
                    .into_iter()
                    .find(|k| kind_segment(*k) == segment)
                    .ok_or_else(ApiError::not_found)?
            }
        };
        Ok(Self {
            kind,
            ns: parse_name("namespace", param(params, "ns")?)?,
            name: parse_name("name", param(params, "name")?)?,
        })
    }
}

impl std::fmt::Display for RepoPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.ns, self.name)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RepoPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let params = path_params(parts, state).await?;
        Self::from_params(parts, &params)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for AliasPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let params = path_params(parts, state).await?;
        let repo = RepoPath::from_params(parts, &params)?;
        let alias = param(&params, "alias")?;
        let alias = AliasName::new(alias).map_err(|e| {
            ApiError::new(
                "invalid_alias",
                format!("alias `{}`: {e}", alias.escape_debug()),
            )
        })?;
        Ok(Self { repo, alias })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for VersionPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let params = path_params(parts, state).await?;
        Ok(Self {
            repo: RepoPath::from_params(parts, &params)?,
            version: parse_version(param(&params, "version")?)?,
        })
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
    type Rejection = axum::response::Response;

    /// Refused in the shape of the API the route belongs to (the Hub's under `/hf`).
    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let hub = crate::error::is_hub_path(req.uri().path());
        read_limited(req.into_body(), LIMIT)
            .await
            .map(Self)
            .map_err(|e| {
                if hub {
                    e.into_hub_response()
                } else {
                    axum::response::IntoResponse::into_response(e)
                }
            })
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
        let chunk = chunk.map_err(|e| crate::error::body_error(&e, "invalid_body"))?;
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

/// Parse a body as strict JSON into `T` (`invalid_json` on any failure). Every body is a
/// JSON object: serde would otherwise also fill a struct from an array of its fields in order
/// (`[null, 5]`), a form no client means. A number written with a zero fraction (`5.0`) is
/// the integer it equals: JSON has one number type, and JSON Schema's `integer` admits it.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let invalid = |m: String| ApiError::new("invalid_json", format!("request body: {m}"));
    let mut value = adapter_core::json::parse_strict(bytes).map_err(|e| invalid(e.to_string()))?;
    if !value.is_object() {
        return Err(invalid("must be a JSON object".into()));
    }
    integral_numbers_as_integers(&mut value);
    serde_json::from_value(value).map_err(|e| invalid(e.to_string()))
}

/// `5.0` → `5` at every depth (only where the integer is exact in `i64` or `u64`).
fn integral_numbers_as_integers(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|f| n.is_f64() && f.fract() == 0.0) {
                // `as` saturates; the round trip keeps only exact conversions.
                if f >= 0.0 && (f as u64) as f64 == f && f < u64::MAX as f64 {
                    *value = Value::from(f as u64);
                } else if f < 0.0 && (f as i64) as f64 == f && f > i64::MIN as f64 {
                    *value = Value::from(f as i64);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_numbers_as_integers),
        Value::Object(map) => map.values_mut().for_each(integral_numbers_as_integers),
        _ => {}
    }
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
