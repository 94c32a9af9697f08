//! The HTTP API `/v1` (docs/API.md): routes, the 405 mapping, request spans. Handlers are
//! thin: each parses its input (`extract`) and calls the catalogue or a service. Top floor;
//! `serve` puts it together with the pages (`ui`) under the shared layers. The pages call
//! the read handlers of `repositories` (search), `lineage` and `jobs` directly, so a page
//! and its `/v1` twin answer from the same code.
//!
//! Every route is registered through utoipa-axum's `routes!`, so each one carries its
//! OpenAPI description; [`openapi`] is the spec (committed at `openapi/openapi.json`,
//! served at `GET /openapi.json`, browsable at `/docs`).

mod aliases;
mod audit;
mod blobs;
mod cached;
mod doc;
mod evals;
mod grammar;
mod health;
pub(crate) mod jobs;
pub(crate) mod lineage;

pub(crate) mod repositories;
mod search;
mod tokens;
mod uploads;
mod versions;
mod yank;

use axum::extract::{MatchedPath, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::{Config, SwaggerUi};

use adapter_core::api::kind_segment;
use adapter_core::manifest::Kind;

use crate::app::AppState;
use crate::error::ApiError;

pub use adapter_core::api::ErrorBody;
pub use tokens::validate as validate_token_request;

/// Where the spec is served.
pub const OPENAPI_PATH: &str = "/openapi.json";
/// Where Swagger UI (assets embedded in the binary) is served.
pub const DOCS_PATH: &str = "/docs";

/// The API routes, plus `GET /openapi.json` and Swagger UI at `/docs`.
pub fn router() -> Router<AppState> {
    let (api, spec) = api_router().split_for_parts();
    // `validator_url("none")`: Swagger UI would otherwise send the spec to swagger.io.
    let docs = SwaggerUi::new(DOCS_PATH)
        .url(OPENAPI_PATH, spec)
        .config(Config::new([OPENAPI_PATH]).validator_url("none"));
    api.merge(docs)
}

/// The OpenAPI 3.1 description of every API route (what `GET /openapi.json` serves).
pub fn openapi() -> OpenApi {
    api_router().split_for_parts().1
}

/// The API routes with their descriptions; no route is added any other way.
fn api_router() -> OpenApiRouter<AppState> {
    let mut api = OpenApiRouter::with_openapi(doc::base())
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(blobs::check))
        .routes(routes!(blobs::get, blobs::head, blobs::put))
        .routes(routes!(tokens::whoami))
        .routes(routes!(tokens::create, tokens::list))
        .routes(routes!(tokens::revoke))
        .routes(routes!(audit::list))
        .routes(routes!(uploads::start))
        .routes(routes!(
            uploads::status,
            uploads::append,
            uploads::finish,
            uploads::cancel
        ))
        .routes(routes!(jobs::submit, jobs::list))
        .routes(routes!(jobs::get))
        .routes(routes!(jobs::cancel))
        .routes(routes!(jobs::logs))
        .routes(routes!(jobs::events));
    for kind in [Kind::Adapter, Kind::Model] {
        api = api.nest(&format!("/v1/{}", kind_segment(kind)), kind_routes(kind));
    }
    doc::optional_bodies_are_not_null(api.get_openapi_mut());
    grammar::parameter_grammars(api.get_openapi_mut());
    grammar::auth_responses(api.get_openapi_mut());
    grammar::body_grammars(api.get_openapi_mut());
    api
}

fn kind_routes(kind: Kind) -> OpenApiRouter<AppState> {
    let mut r = OpenApiRouter::new()
        .routes(routes!(repositories::list))
        .routes(routes!(repositories::info))
        .routes(routes!(repositories::versions))
        .routes(routes!(versions::publish, versions::get))
        .routes(routes!(evals::add, evals::list))
        .routes(routes!(jobs::validations))
        .routes(routes!(repositories::resolve_latest))
        .routes(routes!(repositories::resolve))
        .routes(routes!(aliases::list))
        .routes(routes!(aliases::get, aliases::put, aliases::delete))
        .routes(routes!(aliases::history))
        .routes(routes!(
            aliases::get_gate,
            aliases::set_gate,
            aliases::delete_gate
        ))
        .routes(routes!(yank::yank, yank::unyank))
        .routes(routes!(lineage::get))
        .layer(Extension(kind));
    // The same handlers serve both kinds: give each copy its own tag and operation ids.
    doc::for_kind(r.get_openapi_mut(), kind_segment(kind));
    r
}

/// axum answers a known route with the wrong method with an empty 405; give it our shape.
pub async fn error_shape_for_405(res: Response) -> Response {
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

pub fn span_for(req: &Request) -> tracing::Span {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("<unmatched>", MatchedPath::as_str);
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    tracing::info_span!("request", method = %req.method(), route = %route, request_id = %id)
}
