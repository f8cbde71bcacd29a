//! The config file's types. Field docs are written for operators: they become
//! the JSON Schema's descriptions (`trigger-bridge schema`) and the reference.
//!
//! The top-level keys (`server`, `state`, `functions`, `pipelines`) and the
//! pipeline keys are a contract scripts and charts rely on: extend, never rename.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;

use super::defaults;

/// A trigger-bridge config file.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The HTTP server: health, readiness, metrics and ingress routes.
    #[serde(default)]
    pub server: ServerConfig,
    /// Where checkpoints and persisted ingress events are kept.
    #[serde(default)]
    pub state: StateConfig,
    /// Lambda-compatible functions, by a name pipelines refer to.
    #[serde(default)]
    pub functions: IndexMap<String, FunctionConfig>,
    /// Each pipeline wires one source to one function.
    #[serde(default)]
    pub pipelines: Vec<PipelineConfig>,
    /// The most invocations in flight at once across every pipeline.
    #[serde(default = "defaults::global_max_concurrency")]
    #[schemars(range(min = 1))]
    pub max_concurrency: u32,
    /// How long in-flight batches may take to finish after SIGTERM or SIGINT.
    /// Keep it under the pod's `terminationGracePeriodSeconds`.
    #[serde(default = "defaults::shutdown_grace", with = "humantime_serde")]
    #[schemars(with = "DurationText")]
    pub shutdown_grace: Duration,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address the HTTP server listens on.
    #[serde(default = "defaults::listen")]
    pub listen: SocketAddr,
    /// Largest request body an ingress route accepts; larger ones get 413.
    #[serde(default = "defaults::max_body_bytes")]
    pub max_body_bytes: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: defaults::listen(),
            max_body_bytes: defaults::max_body_bytes(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// Directory of the embedded state store. Mount a volume here in Kubernetes.
    #[serde(default = "defaults::state_dir")]
    pub dir: PathBuf,
}

impl Default for StateConfig {
    fn default() -> Self {
        Self {
            dir: defaults::state_dir(),
        }
    }
}

/// A Lambda-compatible function: AWS Lambda, the Runtime Interface Emulator,
/// LocalStack, `cargo lambda watch`, or any server speaking the Invoke API.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FunctionConfig {
    /// Base URL of the Invoke API, such as `https://lambda.eu-west-1.amazonaws.com`
    /// or `http://127.0.0.1:9000`.
    pub endpoint: String,
    /// Function name or ARN in the Invoke path. Defaults to this function's key.
    #[serde(default)]
    pub name: Option<String>,
    /// Version or alias, sent as `?Qualifier=`.
    #[serde(default)]
    #[schemars(regex(pattern = r"^[a-zA-Z0-9$_-]{1,128}$"))]
    pub qualifier: Option<String>,
    /// `aws` signs requests with SigV4 from the standard AWS credential chain;
    /// `none` sends them unsigned (emulators, compatible servers).
    #[serde(default)]
    pub auth: Auth,
    /// Region for SigV4. Defaults to the one in a `lambda.<region>.amazonaws.com`
    /// endpoint, then to the AWS config chain's.
    #[serde(default)]
    pub region: Option<String>,
    /// `RequestResponse` waits for the function's answer; `Event` queues the
    /// event (HTTP 202) and cannot report partial batch failures.
    #[serde(default)]
    pub invocation_type: InvocationType,
    /// How the endpoint reports a function error: `aws` (200 with
    /// `X-Amz-Function-Error`), `rie` (200 with an `errorType` body or a timeout
    /// text), `cargo-lambda` (HTTP 500).
    #[serde(default)]
    pub dialect: Dialect,
    /// Invocations of this function in flight at once, across every pipeline
    /// that targets it. 0 disables the function: events go straight to the
    /// dead-letter sink with the condition `ZeroReservedConcurrency`.
    #[serde(default)]
    pub reserved_concurrency: Option<u32>,
    /// Time allowed for one invocation, connection included.
    #[serde(default = "defaults::function_timeout", with = "humantime_serde")]
    #[schemars(with = "DurationText")]
    pub timeout: Duration,
    /// Largest event in bytes. Defaults to Lambda's: 6291456 for
    /// `RequestResponse`, 1048576 for `Event`.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub max_payload_bytes: Option<usize>,
    /// A JSON object sent base64-encoded in `X-Amz-Client-Context` (synchronous
    /// invocations only; at most 3583 bytes encoded).
    #[serde(default)]
    pub client_context: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Auth {
    Aws,
    #[default]
    None,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum InvocationType {
    #[default]
    RequestResponse,
    Event,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Dialect {
    #[default]
    Aws,
    Rie,
    CargoLambda,
}

/// A source wired to a function with a delivery policy.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Unique name, used in logs, metrics and ingress routes: letters, digits,
    /// `.`, `_` and `-`.
    #[schemars(regex(pattern = r"^[A-Za-z0-9._-]+$"))]
    pub name: String,
    /// Where records come from: exactly one connector.
    pub source: SourceConfig,
    /// The key of the function in `functions`.
    pub function: String,
    /// When a batch of records is sent to the function.
    #[serde(default)]
    pub batching: BatchingConfig,
    /// How failed invocations are retried.
    #[serde(default)]
    pub retry: RetryConfig,
    /// Read `batchItemFailures` from the function's answer and retry only the
    /// records it names (and, on ordered sources, those after the first one).
    #[serde(default)]
    pub report_batch_item_failures: bool,
    /// Where records that failed for good go. Without one, the source's own
    /// failure handling applies (a broker's dead-letter exchange, a queue's
    /// redrive policy), or a stream skips the record as Lambda does.
    #[serde(default)]
    pub dead_letter: Option<DeadLetterConfig>,
    /// Invocations of this pipeline in flight at once. Ordered sources never
    /// have more than one per ordering key.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub max_concurrency: Option<u32>,
}

impl PipelineConfig {
    /// Everything but the source: what the engine needs to deliver.
    pub fn spec(&self) -> PipelineSpec {
        PipelineSpec {
            name: self.name.clone(),
            function: self.function.clone(),
            batching: self.batching.clone(),
            retry: self.retry.clone(),
            report_batch_item_failures: self.report_batch_item_failures,
            dead_letter: self.dead_letter.clone(),
            max_concurrency: self.max_concurrency,
        }
    }
}

/// A pipeline's delivery settings, apart from its source. Tests and embedders
/// pair one with a connector they built themselves.
#[derive(Debug, Clone, Default)]
pub struct PipelineSpec {
    pub name: String,
    pub function: String,
    pub batching: BatchingConfig,
    pub retry: RetryConfig,
    pub report_batch_item_failures: bool,
    pub dead_letter: Option<DeadLetterConfig>,
    pub max_concurrency: Option<u32>,
}

/// When a batch closes: whichever limit comes first.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchingConfig {
    /// Most records in one invocation. Defaults: 100 for streams and queues,
    /// 1 for notifications (S3, SNS, schedules), as Lambda sends them. At
    /// most 10000.
    #[serde(default)]
    #[schemars(range(min = 1, max = 10000))]
    pub max_records: Option<usize>,
    /// Longest a batch waits for more records after its first. Defaults:
    /// 500ms for streams and queues, 0 for notifications.
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "Option<DurationText>")]
    pub window: Option<Duration>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Invocations of a record before it is dead-lettered, the first included
    /// (Lambda's MaximumRetryAttempts + 1). Throttles and unavailable endpoints
    /// do not use attempts up. Defaults: 10 for streams, 5 for queues, 3 for
    /// notifications.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub max_attempts: Option<u32>,
    /// Records older than this are dead-lettered instead of invoked. Default:
    /// unlimited for streams and queues, 6h for notifications.
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "Option<DurationText>")]
    pub max_record_age: Option<Duration>,
    /// Backoff before the first retry; doubles each retry, with full jitter.
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "Option<DurationText>")]
    pub initial_delay: Option<Duration>,
    /// Longest backoff between two attempts (a `Retry-After` may ask for more).
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "Option<DurationText>")]
    pub max_delay: Option<Duration>,
    /// On a function error, split the batch in two and retry each half, until
    /// a failing record stands alone. Splits do not use attempts up.
    #[serde(default)]
    pub bisect_on_error: bool,
}

/// Source connectors. Each is compiled in by the cargo feature of its name.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceConfig {}

/// Dead-letter sinks.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum DeadLetterConfig {
    /// JSON lines, one on-failure record per failed batch, fsynced before the
    /// records are acknowledged at their source.
    File(FileSinkConfig),
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileSinkConfig {
    /// File to append to; created with its parent directories.
    pub path: PathBuf,
}

/// A duration such as `500ms`, `30s`, `5m`, `1h`, `1h 30m`.
#[derive(JsonSchema)]
#[schemars(transparent)]
#[allow(dead_code)]
struct DurationText(
    #[schemars(
        regex(pattern = r"^\s*\d+\s*[a-zµ]+(\s*\d+\s*[a-zµ]+)*\s*$"),
        extend("format" = "duration")
    )]
    String,
);
