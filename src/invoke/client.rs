//! The HTTP client side of the invoker.

use bytes::Bytes;

use super::InvokeOutcome;
use crate::config::{FunctionConfig, InvocationType};

/// Invokes one configured function. Cheap to clone; connections are reused.
#[derive(Debug, Clone)]
pub struct Invoker {
    function_arn: String,
    max_payload: usize,
    invocation_type: InvocationType,
}

#[derive(Debug, thiserror::Error)]
pub enum InvokerError {
    #[error("function `{function}`: {message}")]
    Setup { function: String, message: String },
}

impl Invoker {
    /// An invoker for the function configured under `key`.
    pub async fn new(key: &str, config: &FunctionConfig) -> Result<Self, InvokerError> {
        let _ = key;
        Ok(Self {
            function_arn: String::new(),
            max_payload: super::max_payload(config),
            invocation_type: config.invocation_type,
        })
    }

    /// Sends `event` and classifies the answer. Never fails: every fault is an
    /// outcome.
    pub async fn invoke(&self, event: Bytes) -> InvokeOutcome {
        let _ = event;
        InvokeOutcome::Retryable {
            reason: "not implemented".into(),
            response: None,
        }
    }

    /// The qualified ARN on-failure records name.
    pub fn function_arn(&self) -> &str {
        &self.function_arn
    }

    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    pub fn invocation_type(&self) -> InvocationType {
        self.invocation_type
    }
}
