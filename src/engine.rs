//! The engine: every pipeline of a config, built once and run until told to
//! stop.

use std::{collections::HashMap, future::Future, path::PathBuf, sync::Arc, time::Duration};

use tokio::{sync::Semaphore, task::JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::{error, info};
use trigger_bridge_sdk::{Connector, DeadLetterSink, SourceStatus};

use crate::{
    config::{Config, DeadLetterConfig, PipelineSpec, defaults},
    dead_letter::FileSink,
    dispatch::{Limits, Policy},
    invoke::Invoker,
    metrics::Metrics,
    pipeline::{Pipeline, PipelineParts},
    sources,
};

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
    /// `message` names the function.
    #[error("{message}")]
    Function { function: String, message: String },
    #[error("pipeline `{pipeline}` could not be set up: {message}")]
    Pipeline { pipeline: String, message: String },
    #[error("pipeline `{pipeline}` failed: {message}")]
    Failed { pipeline: String, message: String },
}

/// A configured function, shared by the pipelines that target it.
struct Function {
    invoker: Invoker,
    /// Its reserved concurrency, shared across pipelines.
    reserved: Option<Arc<Semaphore>>,
    disabled: bool,
}

/// Builds an [`Engine`]: functions and sinks from a config, pipelines added
/// one by one with their connectors.
pub struct EngineBuilder {
    metrics: Metrics,
    functions: HashMap<String, Function>,
    process: Arc<Semaphore>,
    file_sinks: HashMap<PathBuf, FileSink>,
    grace: Duration,
    pipelines: Vec<Pipeline<Invoker>>,
}

impl EngineBuilder {
    /// Sets up every function of `config`. Adds no pipeline.
    pub async fn new(config: &Config, metrics: &Metrics) -> Result<Self, EngineError> {
        let mut functions = HashMap::new();
        for (key, function) in &config.functions {
            let invoker = Invoker::new(key, function)
                .await
                .map_err(|e| EngineError::Function {
                    function: key.clone(),
                    message: e.to_string(),
                })?;
            let reserved = function.reserved_concurrency;
            functions.insert(
                key.clone(),
                Function {
                    invoker,
                    reserved: reserved
                        .filter(|n| *n > 0)
                        .map(|n| Arc::new(Semaphore::new(n as usize))),
                    disabled: reserved == Some(0),
                },
            );
        }
        Ok(Self {
            metrics: metrics.clone(),
            functions,
            process: Arc::new(Semaphore::new(config.max_concurrency.max(1) as usize)),
            file_sinks: HashMap::new(),
            grace: config.shutdown_grace,
            pipelines: Vec::new(),
        })
    }

    /// Adds a pipeline delivering `connector`'s records as `spec` says.
    pub fn add_pipeline(
        &mut self,
        spec: &PipelineSpec,
        connector: Box<dyn Connector>,
    ) -> Result<(), EngineError> {
        let fail = |message: String| EngineError::Pipeline {
            pipeline: spec.name.clone(),
            message,
        };
        let function = self
            .functions
            .get(&spec.function)
            .ok_or_else(|| fail(format!("no function named `{}`", spec.function)))?;
        let descriptor = connector.descriptor();
        let policy = Policy::resolve(
            spec,
            descriptor.family,
            &descriptor.envelope,
            function.invoker.max_payload(),
        );
        let max_concurrency = spec
            .max_concurrency
            .unwrap_or(defaults::PIPELINE_MAX_CONCURRENCY)
            .max(1);
        let limits = Limits::new(
            Arc::new(Semaphore::new(max_concurrency as usize)),
            function.reserved.clone(),
            self.process.clone(),
        );
        let parts = PipelineParts {
            name: spec.name.clone(),
            function: spec.function.clone(),
            invoker: function.invoker.clone(),
            policy,
            limits,
            max_concurrency,
            disabled: function.disabled,
            dead_letter: None,
            metrics: self.metrics.pipeline(&spec.name, &spec.function),
            connector,
        };
        let dead_letter = match &spec.dead_letter {
            Some(config) => Some(self.dead_letter(config).map_err(fail)?),
            None => None,
        };
        self.pipelines.push(Pipeline::new(PipelineParts {
            dead_letter,
            ..parts
        }));
        Ok(())
    }

    fn dead_letter(
        &mut self,
        config: &DeadLetterConfig,
    ) -> Result<Arc<dyn DeadLetterSink>, String> {
        match config {
            DeadLetterConfig::File(file) => {
                if let Some(sink) = self.file_sinks.get(&file.path) {
                    return Ok(Arc::new(sink.clone()));
                }
                let sink = FileSink::open(&file.path).map_err(|e| {
                    format!(
                        "dead-letter file {} cannot be opened: {e}",
                        file.path.display()
                    )
                })?;
                self.file_sinks.insert(file.path.clone(), sink.clone());
                Ok(Arc::new(sink))
            }
        }
    }

    pub fn build(self) -> Engine {
        let readiness = Readiness::new(
            self.pipelines
                .iter()
                .map(|p| (p.name().to_owned(), p.status()))
                .collect(),
        );
        Engine {
            pipelines: self.pipelines,
            readiness,
            grace: self.grace,
        }
    }
}

/// Every pipeline of one config, built and ready to run.
pub struct Engine {
    pipelines: Vec<Pipeline<Invoker>>,
    readiness: Readiness,
    grace: Duration,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("pipelines", &self.pipelines.len())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Builds functions, sinks and every pipeline of `config`. Connects nothing
    /// yet.
    pub async fn new(config: &Config, metrics: &Metrics) -> Result<Self, EngineError> {
        let mut builder = EngineBuilder::new(config, metrics).await?;
        for pipeline in &config.pipelines {
            let connector =
                sources::connector(&pipeline.source).map_err(|message| EngineError::Pipeline {
                    pipeline: pipeline.name.clone(),
                    message,
                })?;
            builder.add_pipeline(&pipeline.spec(), connector)?;
        }
        Ok(builder.build())
    }

    pub fn readiness(&self) -> Readiness {
        self.readiness.clone()
    }

    /// Routes connectors serve on the HTTP server (SNS, S3 webhooks).
    pub fn ingress(&self) -> axum::Router {
        axum::Router::new()
    }

    /// Runs every pipeline until `stop` completes or one of them fails for
    /// good, then shuts them all down: no new input, in-flight batches get the
    /// shutdown grace, the rest is left unacknowledged for redelivery.
    pub async fn run(self, stop: impl Future<Output = ()> + Send) -> Result<(), EngineError> {
        let token = CancellationToken::new();
        let mut running = JoinSet::new();
        let mut names = HashMap::new();
        for pipeline in self.pipelines {
            let name = pipeline.name().to_owned();
            let run = pipeline.run(token.clone(), self.grace);
            let task = running.spawn(run);
            names.insert(task.id(), name);
        }
        info!(pipelines = running.len(), "Engine started");

        let mut failure = None;
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop, if !token.is_cancelled() => {
                    info!("Shutting down");
                    token.cancel();
                }
                done = running.join_next_with_id() => match done {
                    // Every pipeline has ended: keep serving until told to stop.
                    None if token.is_cancelled() => break,
                    None => {
                        (&mut stop).await;
                        break;
                    }
                    Some(Ok((_, Ok(())))) => {}
                    Some(Ok((id, Err(e)))) => {
                        let pipeline = names.remove(&id).unwrap_or_default();
                        error!(pipeline = %pipeline, error = %e, "Stopping every pipeline");
                        failure.get_or_insert(EngineError::Failed {
                            pipeline,
                            message: e.to_string(),
                        });
                        token.cancel();
                    }
                    Some(Err(e)) => {
                        let pipeline = names.remove(&e.id()).unwrap_or_default();
                        error!(
                            pipeline = %pipeline,
                            error = %e,
                            "Pipeline task failed; stopping every pipeline"
                        );
                        failure.get_or_insert(EngineError::Failed {
                            pipeline,
                            message: e.to_string(),
                        });
                        token.cancel();
                    }
                },
            }
        }
        info!("Engine stopped");
        failure.map_or(Ok(()), Err)
    }
}
