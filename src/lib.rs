//! trigger-bridge runs event sources into Lambda-compatible functions with the
//! semantics of Lambda's event source mappings.
//!
//! - [`config`]: the config file.
//! - [`dispatch`]: batching, delivery with retries and bisection, dead-lettering.
//! - [`invoke`]: the Invoke API client and the classification of its answers.
//! - [`dead_letter`]: the built-in `file` dead-letter sink.
//! - [`metrics`]: Prometheus metrics.
//! - [`pipeline`], [`engine`]: a connector and its batcher run together; every
//!   pipeline of a config built and run until told to stop.
//! - [`sources`]: the connectors compiled into this binary.
//! - [`server`]: health, readiness, metrics and ingress routes.
//! - [`app`], [`cli`], [`telemetry`]: signals, the command line, logging.
//! - [`echo`]: the `echo-function` command, a Lambda-compatible endpoint that
//!   prints what it receives.

pub mod app;
pub mod cli;
pub mod config;
pub mod dead_letter;
pub mod dispatch;
pub mod echo;
pub mod engine;
pub mod invoke;
pub mod metrics;
pub mod pipeline;
pub mod server;
pub mod sources;
pub mod telemetry;
