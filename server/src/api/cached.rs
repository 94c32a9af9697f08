//! Catalogue answers served from the process's cache while `generations.catalog` holds
//! (`db::generations`: a write through any server moves it, so what is served is never
//! older than the last write a client was told of). The hot reads use it: a version, a
//! resolution, a search page.

use std::future::Future;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;

use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};

/// The JSON answer for `key`: the cached bytes under the current catalogue generation, or
/// `compute`'s value, serialised, kept and sent (computed once for all the requests that
/// miss at the same time). Errors are not kept.
pub async fn json<T, E, F>(
    app: &AppState,
    caller: &Caller,
    key: String,
    compute: impl FnOnce() -> F,
) -> ApiResult<Response>
where
    T: Serialize,
    ApiError: From<E>,
    F: Future<Output = Result<T, E>>,
{
    let generation = match caller.generations {
        Some(g) => g.catalog,
        None => app.db.generations().await?.catalog,
    };
    let bytes = app
        .db
        .caches
        .catalog
        .get_or_try_init(generation, &key, || async {
            let value = compute().await.map_err(ApiError::from)?;
            serde_json::to_vec(&value)
                .map(Bytes::from)
                .map_err(ApiError::internal)
        })
        .await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        bytes,
    )
        .into_response())
}

/// A cache key from its parts (a separator no part can hold: names, versions, selectors and
/// query strings are printable).
pub fn key(parts: &[&str]) -> String {
    parts.join("\u{1f}")
}
