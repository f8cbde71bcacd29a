//! Helpers shared by the engine's integration tests.

#![allow(dead_code)]

pub mod moto;

use std::{path::Path, time::Duration};

use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use trigger_bridge::{
    config::{Config, DeadLetterConfig, FileSinkConfig, PipelineSpec},
    engine::{EngineBuilder, EngineError},
    metrics::Metrics,
};
use trigger_bridge_sdk::{
    Envelope, Family, SourceDescriptor,
    testing::{MemoryQueue, MemorySource},
};

/// A config with one function `f` at `endpoint`; `extra` adds to its settings.
pub fn config(endpoint: &str, extra: Value) -> Config {
    let mut function = json!({ "endpoint": endpoint, "auth": "none" });
    if let (Some(f), Some(extra)) = (function.as_object_mut(), extra.as_object()) {
        f.extend(extra.clone());
    }
    serde_json::from_value(json!({
        "functions": { "f": function },
        "shutdown_grace": "2s",
    }))
    .expect("test config is valid")
}

/// A pipeline named `name` targeting `f`, retrying fast.
pub fn spec(name: &str) -> PipelineSpec {
    let mut spec = PipelineSpec {
        name: name.into(),
        function: "f".into(),
        ..PipelineSpec::default()
    };
    spec.batching.max_records = Some(10);
    spec.batching.window = Some(Duration::from_millis(20));
    spec.retry.initial_delay = Some(Duration::from_millis(10));
    spec.retry.max_delay = Some(Duration::from_millis(50));
    spec
}

pub fn file_sink(path: &Path) -> Option<DeadLetterConfig> {
    Some(DeadLetterConfig::File(FileSinkConfig {
        path: path.to_owned(),
    }))
}

/// A queue-family source delivering `{"Records":[...]}`.
pub fn memory(queue: &MemoryQueue) -> Box<MemorySource> {
    Box::new(queue.connector(SourceDescriptor {
        family: Family::Queue,
        envelope: Envelope::records(),
        batch_info: None,
    }))
}

/// An engine running in the background.
pub struct Running {
    stop: CancellationToken,
    task: JoinHandle<Result<(), EngineError>>,
    pub metrics: Metrics,
}

impl Running {
    /// Stops gracefully and waits.
    pub async fn stop(self) -> Result<(), EngineError> {
        self.stop.cancel();
        self.task.await.expect("engine task does not panic")
    }

    /// Drops everything at once, as a crash would.
    pub async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// Builds an engine from `config` with the given pipelines and runs it.
pub async fn run(
    config: &Config,
    pipelines: Vec<(PipelineSpec, Box<dyn trigger_bridge_sdk::Connector>)>,
) -> Running {
    let metrics = Metrics::new();
    let mut builder = EngineBuilder::new(config, &metrics)
        .await
        .expect("engine builds");
    for (spec, connector) in pipelines {
        builder
            .add_pipeline(&spec, connector)
            .expect("pipeline builds");
    }
    let engine = builder.build();
    let stop = CancellationToken::new();
    let task = tokio::spawn(engine.run(stop.clone().cancelled_owned()));
    Running {
        stop,
        task,
        metrics,
    }
}

/// The `n` of every record in an event `{"Records":[{"n":…}]}`.
pub fn ns(event: &Value) -> Vec<u64> {
    event["Records"]
        .as_array()
        .map(|rs| rs.iter().filter_map(|r| r["n"].as_u64()).collect())
        .unwrap_or_default()
}

pub fn temp_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("trigger-bridge-{name}-{}", uuid::Uuid::new_v4()))
}
