//! The one API error: a stable machine `code`, an HTTP status from one table, a message for
//! people and optional details. Rendered as `adapter_core::api::ErrorBody`; 5xx bodies are
//! generic and their cause is logged instead.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use adapter_core::api::{ErrorBody, ErrorInfo, UPLOAD_OFFSET_HEADER};

pub type ApiResult<T> = Result<T, ApiError>;

/// The code of an error response, left in its extensions for the audit log.
#[derive(Debug, Clone, Copy)]
pub struct ErrorCode(pub &'static str);

/// Every way a request can fail.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A client error with a stable code; `status` comes from [`status_of`].
    #[error("{message}")]
    Client {
        code: &'static str,
        message: String,
        details: Value,
    },
    /// `416` for a range outside the blob (`Content-Range: bytes */size`).
    #[error("range not satisfiable for a blob of {size} bytes")]
    RangeNotSatisfiable { size: u64 },
    /// `416` for a chunk that does not start at the session's offset.
    #[error("upload offset {got} does not match the session's offset {offset}")]
    WrongOffset { offset: u64, got: u64 },
    /// The database or blob store is down (`/readyz`).
    #[error("not ready: {0}")]
    NotReady(String),
    /// Anything else: logged, answered with a generic 500.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self::Client {
            code,
            message: message.into(),
            details: Value::Null,
        }
    }

    pub fn with_details(code: &'static str, message: impl Into<String>, details: Value) -> Self {
        Self::Client {
            code,
            message: message.into(),
            details,
        }
    }

    /// An unexpected failure: logged, answered 500 — except a full disk or quota
    /// (`ENOSPC`, `EDQUOT`, SQLite's `SQLITE_FULL`, PostgreSQL's `disk_full`), which is
    /// answered 507 `storage_full` so clients and operators can tell it apart.
    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        let e = e.into();
        if e.chain().any(is_storage_full) {
            tracing::error!(error = ?e, "storage is full");
            return Self::new(
                "storage_full",
                "the registry's storage is full; nothing was stored (retry when space is freed)",
            );
        }
        Self::Internal(e)
    }

    pub fn not_found() -> Self {
        Self::new("not_found", "no such route")
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Client { code, .. } => code,
            Self::RangeNotSatisfiable { .. } => "range_not_satisfiable",
            Self::WrongOffset { .. } => "wrong_offset",
            Self::NotReady(_) => "not_ready",
            Self::Internal(_) => "internal",
        }
    }

    pub fn status(&self) -> StatusCode {
        status_of(self.code())
    }
}

/// Is `e` a full disk or an exceeded quota (of the file system, SQLite or PostgreSQL)?
fn is_storage_full(e: &(dyn std::error::Error + 'static)) -> bool {
    if let Some(io) = e.downcast_ref::<std::io::Error>() {
        // ENOSPC and EDQUOT.
        return matches!(
            io.kind(),
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
        );
    }
    if let Some(sqlx::Error::Database(d)) = e.downcast_ref::<sqlx::Error>() {
        // SQLITE_FULL (13) and its extended codes; PostgreSQL's class 53100 `disk_full`.
        let code = d.code();
        return matches!(code.as_deref(), Some("13" | "53100"))
            || d.message().contains("database or disk is full");
    }
    false
}

/// A request body that went on past the length it announced (an upload session's declared
/// size, an LFS upload's): read as 413 `payload_too_large` by [`body_error`].
#[derive(Debug, thiserror::Error)]
#[error("the body is longer than the {0} bytes announced")]
pub struct BodyTooLong(pub u64);

/// A failed read of a request body: 413 `payload_too_large` when it went past what was
/// announced ([`BodyTooLong`]); 408 `request_timeout` when it stalled longer than the
/// server's `--body-idle-timeout` (`listen`), else `code` (the client went away, or sent
/// something that is not HTTP).
pub fn body_error(e: &(dyn std::error::Error + 'static), code: &'static str) -> ApiError {
    let mut cause = Some(e);
    while let Some(c) = cause {
        // An `io::Error` wrapping ours reports the wrapped error's source, not the error
        // itself: look inside it too.
        let inner = c
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|i| i as &(dyn std::error::Error + 'static));
        for c in std::iter::once(c).chain(inner) {
            if let Some(too_long) = c.downcast_ref::<BodyTooLong>() {
                return ApiError::new("payload_too_large", too_long.to_string());
            }
            if c.is::<tower_http::timeout::TimeoutError>() {
                return ApiError::new(
                    "request_timeout",
                    "the request body stalled longer than the server waits (--body-idle-timeout)",
                );
            }
        }
        cause = c.source();
    }
    ApiError::new(code, format!("reading the request body: {e}"))
}

/// The status table (docs/API.md).
pub fn status_of(code: &str) -> StatusCode {
    match code {
        "not_found"
        | "blob_not_found"
        | "upload_not_found"
        | "repository_not_found"
        | "version_not_found"
        | "alias_not_found"
        | "gate_not_found"
        | "no_match"
        | "token_not_found"
        | "job_not_found"
        // The Hub protocol's (`/hf`): the codes its clients act on.
        | "RepoNotFound"
        | "RevisionNotFound"
        | "EntryNotFound" => StatusCode::NOT_FOUND,
        "unauthenticated" => StatusCode::UNAUTHORIZED,
        "forbidden" => StatusCode::FORBIDDEN,
        "method_not_allowed" => StatusCode::METHOD_NOT_ALLOWED,
        "version_exists" | "conflict" | "upload_finishing" | "gate_failed" | "job_finished" => {
            StatusCode::CONFLICT
        }
        "alias_conflict" | "parent_mismatch" => StatusCode::PRECONDITION_FAILED,
        "version_damaged" => StatusCode::GONE,
        "payload_too_large" => StatusCode::PAYLOAD_TOO_LARGE,
        "range_not_satisfiable" | "wrong_offset" => StatusCode::RANGE_NOT_SATISFIABLE,
        "invalid_adapter" | "invalid_model" => StatusCode::UNPROCESSABLE_ENTITY,
        "request_timeout" => StatusCode::REQUEST_TIMEOUT,
        "not_ready" => StatusCode::SERVICE_UNAVAILABLE,
        "storage_full" => StatusCode::INSUFFICIENT_STORAGE,
        "xet_unsupported" => StatusCode::NOT_IMPLEMENTED,
        "internal" => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// Where the Hugging Face Hub protocol is served (`hf`), whose answers have the Hub's error
/// shape ([`ApiError::into_hub_response`]).
pub const HUB_PREFIX: &str = "/hf";

/// Is `path` under [`HUB_PREFIX`]?
pub fn is_hub_path(path: &str) -> bool {
    path.strip_prefix(HUB_PREFIX)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

impl ApiError {
    /// What an answer says: status, headers, code, message (internal causes are logged
    /// here, never sent), details.
    fn parts(self) -> (StatusCode, HeaderMap, &'static str, String, Value) {
        let status = self.status();
        let code = self.code();
        let mut headers = HeaderMap::new();
        let (message, details) = match &self {
            Self::Internal(cause) => {
                tracing::error!(error = ?cause, "internal error");
                ("internal server error".to_owned(), Value::Null)
            }
            Self::NotReady(cause) => {
                tracing::warn!(%cause, "not ready");
                (
                    "a dependency of the registry is not available".to_owned(),
                    Value::Null,
                )
            }
            Self::Client {
                message, details, ..
            } => (message.clone(), details.clone()),
            Self::RangeNotSatisfiable { size } => {
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    headers.insert(header::CONTENT_RANGE, v);
                }
                (self.to_string(), json!({ "size": size }))
            }
            Self::WrongOffset { offset, .. } => {
                headers.insert(UPLOAD_OFFSET_HEADER, HeaderValue::from(*offset));
                (self.to_string(), json!({ "offset": offset }))
            }
        };
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            // The rest of the body stays unread: the connection cannot carry another
            // request, so say so instead of letting the client reuse it and fail.
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        (status, headers, code, message, details)
    }

    /// The error in the Hugging Face Hub's shape, for the `/hf` routes (docs/HF.md): the
    /// same status, code and details, but `error` is the message (the Hub's clients print a
    /// string `error`; older ones crash on an object), beside `code` and `details`; and the
    /// headers the clients read, `X-Error-Code` (the code) and `X-Error-Message`.
    pub fn into_hub_response(self) -> Response {
        let (status, mut headers, code, message, details) = self.parts();
        headers.insert("x-error-code", HeaderValue::from_static(code));
        if let Ok(v) = HeaderValue::from_str(&message.replace(['\r', '\n'], " ")) {
            headers.insert("x-error-message", v);
        }
        let body = json!({ "error": message, "code": code, "details": details });
        let mut res = (status, headers, axum::Json(body)).into_response();
        res.extensions_mut().insert(ErrorCode(code));
        res
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, headers, code, message, details) = self.parts();
        let body = ErrorBody {
            error: ErrorInfo {
                code: code.to_owned(),
                message,
                details,
            },
        };
        let mut res = (status, headers, axum::Json(body)).into_response();
        res.extensions_mut().insert(ErrorCode(code));
        res
    }
}

impl From<sqlx::Error> for ApiError {
    /// The one place database errors become API errors: a unique violation that reaches a
    /// handler is a conflict; everything else is internal.
    fn from(e: sqlx::Error) -> Self {
        if crate::db::is_unique_violation(&e) {
            return Self::new("conflict", "the resource was changed concurrently; retry");
        }
        if crate::db::is_unavailable(&e) {
            return Self::NotReady(format!("database: {e}"));
        }
        Self::internal(anyhow::Error::new(e).context("database"))
    }
}

impl From<object_store::Error> for ApiError {
    fn from(e: object_store::Error) -> Self {
        Self::internal(anyhow::Error::new(e).context("blob store"))
    }
}
