//! trigger-bridge runs event sources into Lambda-compatible functions with the
//! semantics of Lambda's event source mappings.
//!
//! - [`config`]: the config file.
//! - [`dispatch`]: batching, delivery with retries and bisection, dead-lettering.
//! - [`invoke`]: the Invoke API client and the classification of its answers.
//! - [`dead_letter`]: the built-in `file` dead-letter sink.
//! - [`metrics`]: Prometheus metrics.

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
