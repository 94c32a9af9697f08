//! The HTTP API (docs/API.md): routes, the not-found/405 mapping, request tracing.
//! Handlers are thin: each parses its input and calls a store or service.

mod blobs;
mod extract;
mod health;
mod range;
mod repositories;
mod uploads;
mod versions;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Router, middleware};
use tower_http::trace::{DefaultOnResponse, TraceLayer};

use adapter_core::api::kind_segment;
use adapter_core::manifest::Kind;

use crate::app::AppState;
use crate::error::ApiError;

pub use extract::{JSON_LIMIT, MANIFEST_LIMIT};

/// The whole API over one state.
pub fn router(state: AppState) -> Router {
    let mut v1 = Router::new()
        .route("/v1/blobs/check", post(blobs::check))
        .route(
            "/v1/blobs/{digest}",
            get(blobs::get).head(blobs::head).put(blobs::put),
        )
        .route("/v1/uploads", post(uploads::start))
        .route(
            "/v1/uploads/{id}",
            get(uploads::status)
                .patch(uploads::append)
                .put(uploads::finish)
                .delete(uploads::cancel),
        );
    for kind in [Kind::Adapter, Kind::Model] {
        v1 = v1.nest(&format!("/v1/{}", kind_segment(kind)), kind_routes(kind));
    }
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .merge(v1)
        .fallback(|| async { ApiError::not_found() })
        // Bodies are read by our own extractors with explicit caps (JSON) or streamed
        // (uploads); axum's 2 MB default would silently cut uploads.
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::map_response(error_shape_for_405))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(span_for)
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .with_state(state)
}

fn kind_routes(kind: Kind) -> Router<AppState> {
    Router::new()
        .route("/", get(repositories::list))
        .route("/{ns}/{name}", get(repositories::info))
        .route("/{ns}/{name}/versions", get(repositories::versions))
        .route(
            "/{ns}/{name}/versions/{version}",
            put(versions::publish).get(versions::get),
        )
        .route("/{ns}/{name}/resolve", get(repositories::resolve_latest))
        .route(
            "/{ns}/{name}/resolve/{selector}",
            get(repositories::resolve),
        )
        .layer(Extension(kind))
}

/// axum answers a known route with the wrong method with an empty 405; give it our shape.
async fn error_shape_for_405(res: Response) -> Response {
    if res.status() == StatusCode::METHOD_NOT_ALLOWED
        && !res.headers().contains_key(header::CONTENT_TYPE)
    {
        let allow = res.headers().get(header::ALLOW).cloned();
        let mut out =
            ApiError::new("method_not_allowed", "method not allowed on this route").into_response();
        if let Some(allow) = allow {
            out.headers_mut().insert(header::ALLOW, allow);
        }
        return out;
    }
    res
}

fn span_for(req: &Request) -> tracing::Span {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("<unmatched>", MatchedPath::as_str);
    tracing::info_span!("request", method = %req.method(), route = %route)
}
