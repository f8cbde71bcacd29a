//! The HTTP server: `/healthz`, `/readyz`, `/metrics`, and the ingress routes
//! connectors mount (SNS and S3 webhooks).

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use hyper::server::conn::http1;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use tokio::{net::TcpListener, sync::Semaphore};
use tower_http::limit::RequestBodyLimitLayer;
use tracing::warn;

use crate::{engine::Readiness, metrics::Metrics};

/// How long a client may take to send its request headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 1024;

/// The content type of the exposition `Metrics::encode` writes.
const OPENMETRICS_TEXT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("the HTTP server could not listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the HTTP server failed: {0}")]
    Serve(std::io::Error),
}

/// The server's routes: health, readiness and metrics, and `ingress` with
/// request bodies capped at `max_body_bytes` (larger ones get 413).
pub fn router(
    readiness: Readiness,
    metrics: Metrics,
    ingress: Router,
    max_body_bytes: usize,
) -> Router {
    // The layer answers 413 whether or not the request declares its length;
    // the default limit makes axum's body extractors agree with it.
    let ingress = ingress
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(RequestBodyLimitLayer::new(max_body_bytes));

    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz).with_state(readiness))
        .route("/metrics", get(metrics_text).with_state(metrics))
        .merge(ingress)
}

/// A bound listener and the routes it serves.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    router: Router,
    header_read_timeout: Duration,
}

impl Server {
    pub async fn bind(addr: SocketAddr, router: Router) -> Result<Self, ServerError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })?;
        Ok(Self {
            listener,
            router,
            header_read_timeout: HEADER_READ_TIMEOUT,
        })
    }

    /// Replaces [`HEADER_READ_TIMEOUT`].
    pub fn with_header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// The address the server listens on (the real port when bound to 0).
    pub fn local_addr(&self) -> Result<SocketAddr, ServerError> {
        self.listener.local_addr().map_err(ServerError::Serve)
    }

    /// Serves until `stop` completes, then stops accepting connections and
    /// returns once the requests in flight have been answered.
    ///
    /// HTTP/1.1 only. A client that does not finish its request headers
    /// within the header-read timeout is disconnected, and at most
    /// [`MAX_CONNECTIONS`] are served at once (more wait in the accept
    /// backlog), so slow or numerous clients cannot exhaust the process's
    /// file descriptors, which its function calls and dead-letter writes need.
    pub async fn serve(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let mut http = http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(self.header_read_timeout);
        let graceful = GracefulShutdown::new();
        let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        tokio::pin!(stop);

        loop {
            let permit = tokio::select! {
                () = &mut stop => break,
                permit = connections.clone().acquire_owned() => permit,
            };
            let Ok(permit) = permit else {
                break;
            };
            let stream = tokio::select! {
                () = &mut stop => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    // Out of file descriptors, a connection reset before
                    // accept: the listener itself is fine.
                    Err(error) => {
                        warn!(%error, "Accepting a connection failed");
                        continue;
                    }
                },
            };
            let service = TowerToHyperService::new(self.router.clone());
            let connection = http.serve_connection(TokioIo::new(stream), service);
            let connection = graceful.watch(connection);
            tokio::spawn(async move {
                // A client that goes away or times out is no server fault.
                let _ = connection.await;
                drop(permit);
            });
        }

        graceful.shutdown().await;
        Ok(())
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(readiness): State<Readiness>) -> Response {
    let not_ready = readiness.not_ready();
    if not_ready.is_empty() {
        return Json(serde_json::json!({ "status": "ready" })).into_response();
    }
    let body = serde_json::json!({ "status": "not ready", "not_ready": not_ready });
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

async fn metrics_text(State(metrics): State<Metrics>) -> Response {
    ([(header::CONTENT_TYPE, OPENMETRICS_TEXT)], metrics.encode()).into_response()
}
