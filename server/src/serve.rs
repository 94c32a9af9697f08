//! Running the server, the top of the crate: open the state (with its start-up work), put
//! the routers of `/v1` (`api`) and the pages (`ui`) together under the shared layers
//! (auth, error shapes, tracing), run the sweeper, bind, serve until a shutdown signal.

use std::future::Future;
use std::io::Write as _;
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::DefaultBodyLimit;
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

/// Every route (the API with its docs, and the pages) over one state.
pub fn router(state: AppState) -> Router {
    api::router()
        .merge(hf::router())
        .merge(ui::router())
        // After routing, so the layer sees the matched route (docs: server/src/auth/policy.rs).
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::layer))
        .fallback(|| async { ApiError::not_found() })
        // Bodies are read by our own extractors with explicit caps (JSON) or streamed
        // (uploads); axum's 2 MB default would silently cut uploads.
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::map_response(api::error_shape_for_405))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(api::span_for)
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .with_state(state)
}

/// Serve `state` on `listener` until `shutdown` completes, with the sweeper running.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let gc = spawn_sweeper(state.clone(), state.config.gc_interval);
    let result = axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
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

/// Bind `addr` and print exactly `listening on http://ADDR` (the bound address) to stdout.
pub async fn bind_and_announce(addr: std::net::SocketAddr) -> anyhow::Result<TcpListener> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr()?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening on http://{local}")?;
    out.flush()?;
    Ok(listener)
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
