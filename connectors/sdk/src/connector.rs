//! The trait a connector implements, and what the engine hands it.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use futures::future::BoxFuture;

use crate::{dead_letter::BatchInfo, envelope::Envelope, record::RecordSender, shutdown::Shutdown};

/// A source's family decides the defaults of its delivery policy
/// (DESIGN.md, "Failure policy by source family").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// Kafka, DynamoDB Streams: ordered per key, retried until attempts or age
    /// run out; on-failure records describe the batch (`…BatchInfo`).
    Stream,
    /// AMQP, SQS: retried, then dead-lettered or left to the broker.
    Queue,
    /// S3, SNS, cron: like Lambda's asynchronous invoke, two retries and a
    /// maximum event age; on-failure records carry the request payload.
    Notification,
}

/// What the engine needs to know about a source before it starts.
#[derive(Clone)]
pub struct SourceDescriptor {
    pub family: Family,
    pub envelope: Envelope,
    /// Describes a failed batch for stream on-failure records
    /// (`DDBStreamBatchInfo`, `KafkaBatchInfo`). `None` gives the asynchronous
    /// invoke's shape, with the event as `requestPayload`.
    pub batch_info: Option<Arc<dyn BatchInfo>>,
}

impl std::fmt::Debug for SourceDescriptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceDescriptor")
            .field("family", &self.family)
            .field("envelope", &self.envelope)
            .field(
                "batch_info",
                &self.batch_info.as_ref().map(|b| b.field_name()),
            )
            .finish()
    }
}

/// Everything a running connector is handed.
#[derive(Debug, Clone)]
pub struct SourceContext {
    /// The pipeline's name, for logs and metrics.
    pub pipeline: Arc<str>,
    /// Where records go. `send` waits while the pipeline is full.
    pub records: RecordSender,
    pub shutdown: Shutdown,
    pub status: SourceStatus,
}

/// Whether the source is connected; `/readyz` reports ready only when every
/// pipeline's source is.
#[derive(Debug, Clone, Default)]
pub struct SourceStatus {
    connected: Arc<AtomicBool>,
}

impl SourceStatus {
    pub fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Relaxed);
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }
}

/// A source-side plug-in: reads its source, yields records, and acknowledges
/// each at its source once its outcome is final.
///
/// `run` returns when the connector has stopped: after [`Shutdown::drained`]
/// (having applied every ack), or with an error it cannot recover from.
pub trait Connector: Send + 'static {
    fn descriptor(&self) -> SourceDescriptor;

    fn run(
        self: Box<Self>,
        context: SourceContext,
    ) -> BoxFuture<'static, Result<(), ConnectorError>>;
}

/// A connector failed for good. Transient faults (a dropped connection) are the
/// connector's to retry; this is for what retrying cannot mend.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ConnectorError {
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl ConnectorError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            source: None,
        }
    }

    pub fn with_source(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }
}
