//! A pipeline: one connector feeding one batcher, run and shut down together.

use std::{sync::Arc, time::Duration};

use tokio::sync::mpsc;
use tokio_util::{sync::CancellationToken, task::AbortOnDropHandle};
use tracing::{error, info, warn};
use trigger_bridge_sdk::{
    Connector, ConnectorError, DeadLetterSink, RecordSender, Shutdown, SourceContext, SourceStatus,
    time::Clock,
};

use crate::{
    dispatch::{
        Invoke, Limits, Policy, Shared,
        batcher::{Batcher, Capacity},
    },
    metrics::PipelineMetrics,
};

/// The most of the shutdown grace kept for a connector to apply its last
/// acknowledgements and return once its pipeline is drained; it gets a fifth
/// of the grace up to this.
const CONNECTOR_CLOSE_MAX: Duration = Duration::from_secs(5);

/// What a connector gets to close even when the grace is zero.
const CONNECTOR_CLOSE_MIN: Duration = Duration::from_millis(100);

fn flatten(
    joined: Result<Result<(), ConnectorError>, tokio::task::JoinError>,
) -> Result<(), ConnectorError> {
    joined.unwrap_or_else(|e| Err(ConnectorError::with_source("connector task failed", e)))
}

/// Everything a pipeline is built from.
pub struct PipelineParts<I> {
    pub name: String,
    pub function: String,
    pub invoker: I,
    pub policy: Policy,
    pub limits: Limits,
    /// The most invocations this pipeline may have in flight; sizes its buffer.
    pub max_concurrency: u32,
    /// The function's reserved concurrency is 0.
    pub disabled: bool,
    pub dead_letter: Option<Arc<dyn DeadLetterSink>>,
    pub metrics: PipelineMetrics,
    pub connector: Box<dyn Connector>,
}

pub struct Pipeline<I> {
    shared: Arc<Shared<I>>,
    connector: Box<dyn Connector>,
    capacity: Capacity,
}

impl<I> std::fmt::Debug for Pipeline<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("name", &self.shared.pipeline)
            .finish_non_exhaustive()
    }
}

impl<I: Invoke> Pipeline<I> {
    pub fn new(parts: PipelineParts<I>) -> Self {
        let source = parts.connector.descriptor();
        let policy = parts.policy;
        // Room for a full batch per permitted invocation plus one filling up.
        let batches = parts.max_concurrency.max(1) as usize + 1;
        let capacity = Capacity {
            records: policy.max_records.saturating_mul(batches),
            bytes: policy.max_bytes.saturating_mul(batches),
            deliveries: batches,
        };
        let shared = Shared {
            pipeline: parts.name.into(),
            function: parts.function.into(),
            invoker: parts.invoker,
            policy,
            limits: parts.limits,
            disabled: parts.disabled,
            source,
            status: SourceStatus::default(),
            dead_letter: parts.dead_letter,
            metrics: parts.metrics,
            clock: Clock::new(),
            stopping: CancellationToken::new(),
        };
        Self {
            shared: Arc::new(shared),
            connector: parts.connector,
            capacity,
        }
    }

    pub fn name(&self) -> &str {
        &self.shared.pipeline
    }

    /// The source's connection state, for `/readyz`.
    pub fn status(&self) -> SourceStatus {
        self.shared.status.clone()
    }

    /// Runs until `stop` is cancelled, the source ends, or the connector
    /// fails, then shuts down within `grace`: no new input, in-flight batches
    /// finish, the rest is left for redelivery. Returns the connector's error,
    /// if it failed.
    pub async fn run(self, stop: CancellationToken, grace: Duration) -> Result<(), ConnectorError> {
        let shared = self.shared;
        let name = shared.pipeline.clone();
        let (tx, rx) = mpsc::channel(shared.policy.max_records.clamp(16, 1024));
        let shutdown = Shutdown::new();
        let context = SourceContext {
            pipeline: name.clone(),
            records: RecordSender::new(tx),
            shutdown: shutdown.clone(),
            status: shared.status.clone(),
        };
        // Aborted if this pipeline is dropped mid-run, as in a crash.
        let mut connector = AbortOnDropHandle::new(tokio::spawn(self.connector.run(context)));

        // Shutdown begins for the connector and the deliveries together.
        let stopping = shared.stopping.clone();
        let relay = {
            let shutdown = shutdown.clone();
            AbortOnDropHandle::new(tokio::spawn(async move {
                stop.cancelled().await;
                shutdown.begin();
                stopping.cancel();
            }))
        };
        info!(pipeline = %name, function = %shared.function, "Pipeline started");

        // The whole shutdown fits in `grace`: batches in flight get most of
        // it, the connector the rest to apply its last acknowledgements.
        let reserve = (grace / 5).min(CONNECTOR_CLOSE_MAX);
        let batcher = Batcher::new(shared.clone(), self.capacity).run(rx, grace - reserve);
        tokio::pin!(batcher);
        let mut ended = None;
        tokio::select! {
            () = &mut batcher => {}
            // The connector ended first. If it failed, nothing it yielded can
            // be acknowledged any more: stop, leaving the rest for redelivery.
            joined = &mut connector => {
                let result = flatten(joined);
                if result.is_err() {
                    shutdown.begin();
                    shared.stopping.cancel();
                }
                ended = Some(result);
                batcher.await;
            }
        }
        drop(relay);
        shared.stopping.cancel();

        // Every record is settled or dropped: the connector may finish.
        shutdown.finish();
        let result = match ended {
            Some(result) => result,
            None => {
                match tokio::time::timeout(reserve.max(CONNECTOR_CLOSE_MIN), &mut connector).await {
                    Ok(joined) => flatten(joined),
                    Err(_) => {
                        warn!(pipeline = %name, "Connector did not stop in time; aborting it");
                        connector.abort();
                        Ok(())
                    }
                }
            }
        };
        shared.status.set_connected(false);
        shared.metrics.source_connected.set(0);
        match &result {
            Ok(()) => info!(pipeline = %name, "Pipeline stopped"),
            Err(e) => error!(pipeline = %name, error = %e, "Pipeline's connector failed"),
        }
        result
    }
}
