//! The HTTP server: `/healthz`, `/readyz`, `/metrics`, and the ingress routes
//! connectors mount (SNS and S3 webhooks).

use std::{future::Future, net::SocketAddr};

use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use tokio::net::TcpListener;
use tower_http::limit::RequestBodyLimitLayer;

use crate::{engine::Readiness, metrics::Metrics};

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
}

impl Server {
    pub async fn bind(addr: SocketAddr, router: Router) -> Result<Self, ServerError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })?;
        Ok(Self { listener, router })
    }

    /// The address the server listens on (the real port when bound to 0).
    pub fn local_addr(&self) -> Result<SocketAddr, ServerError> {
        self.listener.local_addr().map_err(ServerError::Serve)
    }

    /// Serves until `stop` completes, then stops accepting connections and
    /// returns once the requests in flight have been answered.
    pub async fn serve(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        // TODO: a header-read timeout and a connection cap, before ingress
        // routes face the internet (SNS, S3 webhooks): axum::serve has
        // neither; serving through hyper-util's connection builder with a
        // timer gives both. Until then a client that never finishes its
        // headers holds a connection (and a file descriptor) open.
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(stop)
            .await
            .map_err(ServerError::Serve)
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
