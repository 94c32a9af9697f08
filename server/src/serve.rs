//! Running the server, the top of the crate: open the state (with its start-up work), put
//! the routers of `/v1` (`api`), `/hf` (`hf`), the pages (`ui`) and `/metrics` together
//! under the shared layers (auth, error shapes, metrics, tracing, request ids), run the
//! sweeper, bind, serve until a shutdown signal.

use std::future::Future;
use std::io::Write as _;
use std::time::Duration;

use std::time::Instant;

use anyhow::Context as _;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Router, middleware};
use tokio::net::TcpListener;
use tower_http::trace::{DefaultOnResponse, TraceLayer};

use crate::app::AppState;
use crate::config::Config;
use crate::error::ApiError;
use crate::{api, auth, hf, jobs, publish, ui, uploads};

/// The state for `serve` and `worker`: connect, migrate, and backfill what earlier versions
/// of the registry did not record (catalogue facts, the namespaces of jobs, the header
/// blobs of headers-only models; each idempotent).
pub async fn open(config: Config) -> anyhow::Result<AppState> {
    let state = AppState::new(config).await?;
    let n = publish::facts::backfill(&state).await?;
    if n > 0 {
        tracing::info!(versions = n, "backfilled catalogue facts");
    }
    // Who may see jobs and blobs stored before the namespace walls (idempotent).
    let jobs = state.db.backfill_job_namespaces().await?;
    let versions = publish::backfill_header_blobs(&state).await?;
    if jobs > 0 {
        tracing::info!(jobs, "recorded the namespaces of earlier jobs");
    }
    tracing::debug!(versions, "listed the header blobs of headers-only models");
    Ok(state)
}

/// Every route (the API with its docs, the Hub protocol, the pages, `/metrics`) over one
/// state.
pub fn router(state: AppState) -> Router {
    api::router()
        .merge(hf::router())
        .merge(ui::router())
        .route("/metrics", get(metrics))
        // After routing, so the layer sees the matched route (docs: server/src/auth/policy.rs).
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::layer))
        .fallback(|req: Request| async move { in_shape(req.uri().path(), ApiError::not_found()) })
        // Browsers on the pages get errors as pages and are sent to sign in (`ui::browser`).
        .layer(middleware::from_fn(ui::browser_layer))
        // Bodies are read by our own extractors with explicit caps (JSON) or streamed
        // (uploads); axum's 2 MB default would silently cut uploads.
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::map_response(api::error_shape_for_405))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(api::span_for)
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .layer(middleware::from_fn(refuse_nul))
        // Outermost: every span and answer carries the request id.
        .layer(middleware::from_fn(request_id))
        .with_state(state)
}

/// `e` in the shape of the API `path` belongs to: the Hub's under `/hf`, else the registry's.
fn in_shape(path: &str, e: ApiError) -> Response {
    if crate::error::is_hub_path(path) {
        e.into_hub_response()
    } else {
        e.into_response()
    }
}

/// A NUL (`%00`) anywhere in the path or the query is refused before routing: no name,
/// reference, filter or id may hold one (PostgreSQL cannot store it; C code ends the string
/// there, so `bot%00x` would read as `bot`).
async fn refuse_nul(req: Request, next: Next) -> Response {
    let has_nul = |s: &str| {
        s.as_bytes()
            .windows(3)
            .any(|w| w.eq_ignore_ascii_case(b"%00"))
    };
    let path = req.uri().path();
    if has_nul(path) {
        let e = ApiError::new("invalid_path", "a path segment holds a NUL (%00)");
        return in_shape(path, e);
    }
    if req.uri().query().is_some_and(has_nul) {
        let e = ApiError::new("invalid_query", "a query parameter holds a NUL (%00)");
        return in_shape(path, e);
    }
    next.run(req).await
}

/// What a `worker` process serves with `--metrics-listen`: `/metrics` and `/healthz`, no
/// token needed (the same as on a server).
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route(
            "/healthz",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .fallback(|| async { ApiError::not_found() })
        .with_state(state)
}

/// `GET /metrics`: the Prometheus text format (`metrics.rs`).
async fn metrics(State(app): State<AppState>) -> Result<Response, ApiError> {
    let text = app.metrics.render(&app.db).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// A body size the headers announce (0 when they do not).
fn content_length(headers: &HeaderMap) -> u64 {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Count the request in `/metrics`: method, route template, status, time to the response
/// head, bytes announced each way.
async fn observe(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    // A shared string: no copy per request.
    let route = req.extensions().get::<MatchedPath>().cloned();
    let method = req.method().clone();
    let bytes_in = content_length(req.headers());
    let res = next.run(req).await;
    app.metrics.observe_request(
        method.as_str(),
        route.as_ref().map_or("<unmatched>", MatchedPath::as_str),
        res.status().as_u16(),
        started.elapsed().as_secs_f64(),
        bytes_in,
        content_length(res.headers()),
    );
    res
}

/// The header that names a request in logs and answers.
pub const REQUEST_ID: &str = "x-request-id";

/// The caller's `X-Request-Id` when it is a sane token (1 to 128 of `A-Z a-z 0-9 - _ .`),
/// else a new UUID; set on the request (the span records it) and on the answer.
async fn request_id(mut req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            (1..=128).contains(&v.len())
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        })
        .map(str::to_owned);
    let id = given.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let value = HeaderValue::from_str(&id).expect("checked or generated: header-safe");
    req.headers_mut().insert(REQUEST_ID, value.clone());
    let mut res = next.run(req).await;
    res.headers_mut().insert(REQUEST_ID, value);
    res
}

/// Serve `state` on `listener` until `shutdown` completes, with the sweeper running.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let gc = spawn_sweeper(state.clone(), state.config.gc_interval);
    let limits = state.config.http;
    let result = crate::listen::serve(listener, router(state), limits, shutdown)
        .await
        .context("serving HTTP");
    gc.abort();
    result
}

/// Every `interval` until aborted: delete expired upload sessions and their parts, and the
/// staging objects of jobs that ended.
fn spawn_sweeper(app: AppState, interval: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        loop {
            tick.tick().await;
            match uploads::sweep(&app).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(sessions = n, "expired upload sessions deleted"),
                Err(e) => tracing::warn!(error = %e, "upload sweep failed"),
            }
            match jobs::blobio::sweep_staging(&app).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(jobs = n, "staging objects of ended jobs deleted"),
                Err(e) => tracing::warn!(error = %e, "job staging sweep failed"),
            }
        }
    })
}

/// Connections the kernel holds for the accept loop: a burst of a thousand clients
/// connecting at once (`process.rs`, a thousand concurrent publishes) overflowed tokio's
/// default of 1024 while the workers were busy, and the kernel reset the excess. The kernel
/// caps it at `net.core.somaxconn`.
const LISTEN_BACKLOG: u32 = 4096;

/// Bind `addr` (with [`LISTEN_BACKLOG`]) and print exactly `listening on http://ADDR` (the
/// bound address) to stdout.
pub async fn bind_and_announce(addr: std::net::SocketAddr) -> anyhow::Result<TcpListener> {
    let listener = bind(addr).with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr()?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening on http://{local}")?;
    out.flush()?;
    Ok(listener)
}

/// A listening socket on `addr`, as `TcpListener::bind` makes it (address reuse on Unix) but
/// with [`LISTEN_BACKLOG`].
pub fn bind(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutting down");
}
