//! Serving a router on a TCP listener with the connection-level limits `axum::serve` lacks:
//! a client must send its request headers within [`HttpLimits::header_timeout`](crate::config::HttpLimits) (hyper's
//! header-read timer; a slowloris connection is closed), and a request body that stalls for
//! [`HttpLimits::body_idle_timeout`](crate::config::HttpLimits) fails its read, which the API answers 408
//! `request_timeout` ([`crate::error::body_error`]). Both HTTP/1.1 and HTTP/2 (prior
//! knowledge) are served; shutdown is graceful (open requests finish).

use std::future::Future;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower_http::timeout::RequestBodyTimeoutLayer;

pub use crate::config::HttpLimits;

/// Serve `app` on `listener` until `shutdown` completes, then wait for open requests.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = app.layer(RequestBodyTimeoutLayer::new(limits.body_idle_timeout));
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    builder.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: wait, as a busy loop would not help.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Small answers (catalogue reads) should not wait for Nagle's algorithm.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let service = TowerToHyperService::new(app.clone());
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
