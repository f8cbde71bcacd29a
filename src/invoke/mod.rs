//! The invoker: one Lambda Invoke API call per delivery, and the
//! classification of its answer.
//!
//! This module says what happened ([`InvokeOutcome`]); the dispatcher decides
//! what to do about it (retry, wait, split, dead-letter).

use std::time::Duration;

use bytes::Bytes;
use trigger_bridge_sdk::dead_letter::ResponseContext;

use crate::config::{FunctionConfig, InvocationType};

mod classify;
mod client;
mod sigv4;
mod target;
#[cfg(test)]
mod tests;

pub use client::{Invoker, InvokerError, MAX_CLIENT_CONTEXT_BYTES, MAX_RESPONSE_BYTES};

/// What one invocation came to.
#[derive(Debug, Clone)]
pub enum InvokeOutcome {
    /// The function ran and succeeded (200, or 202 for `Event`). The body may
    /// hold a partial batch response.
    Delivered(Response),
    /// The function ran and failed: `X-Amz-Function-Error`, or the dialect's
    /// equivalent.
    FunctionError(Response),
    /// The function or the service refused for now (429). Does not use up an
    /// attempt.
    Throttled {
        retry_after: Option<Duration>,
        response: Response,
    },
    /// The service or the network failed before the function answered: 5xx,
    /// 408/409/410, a reset or refused connection, a timeout. Does not use up
    /// an attempt.
    Retryable {
        reason: String,
        response: Option<Response>,
    },
    /// The request can never succeed as sent: 400, 403, 404, 415 and the like.
    Permanent { reason: String, response: Response },
    /// The event is over the function's limit (413): split it.
    TooLarge(Response),
    /// The endpoint could not read the event as JSON (400
    /// `InvalidRequestContentException`): a record of the batch is malformed.
    /// Split it to find which.
    InvalidEvent(Response),
}

impl InvokeOutcome {
    /// A bounded metric label.
    pub fn label(&self) -> &'static str {
        match self {
            InvokeOutcome::Delivered(_) => "delivered",
            InvokeOutcome::FunctionError(_) => "function_error",
            InvokeOutcome::Throttled { .. } => "throttled",
            InvokeOutcome::Retryable { .. } => "retryable",
            InvokeOutcome::Permanent { .. } => "permanent",
            InvokeOutcome::TooLarge(_) => "too_large",
            InvokeOutcome::InvalidEvent(_) => "invalid_event",
        }
    }

    /// The answer, when an HTTP response came back.
    pub fn response(&self) -> Option<&Response> {
        match self {
            InvokeOutcome::Delivered(r)
            | InvokeOutcome::FunctionError(r)
            | InvokeOutcome::TooLarge(r)
            | InvokeOutcome::InvalidEvent(r)
            | InvokeOutcome::Throttled { response: r, .. }
            | InvokeOutcome::Permanent { response: r, .. } => Some(r),
            InvokeOutcome::Retryable { response, .. } => response.as_ref(),
        }
    }
}

/// An HTTP answer from the Invoke API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// `x-amzn-RequestId`.
    pub request_id: Option<String>,
    /// `X-Amz-Executed-Version`.
    pub executed_version: Option<String>,
    /// `X-Amz-Function-Error`, or what the dialect implies (`Unhandled`).
    pub function_error: Option<String>,
    /// The body, verbatim (bounded by the client's response limit).
    pub body: Bytes,
}

impl Response {
    /// `errorType` and `errorMessage` of a function error body, when it has them.
    pub fn error_info(&self) -> FunctionErrorInfo {
        classify::error_info(&self.body)
    }

    /// The `responseContext` of an on-failure record.
    pub fn context(&self) -> ResponseContext {
        ResponseContext {
            status_code: self.status,
            executed_version: self.executed_version.clone(),
            function_error: self.function_error.clone(),
            payload: self.body.clone(),
        }
    }
}

/// A function error's type and message, for logs and dead-letter records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FunctionErrorInfo {
    pub error_type: Option<String>,
    pub message: Option<String>,
}

/// Lambda's default payload cap for an invocation type.
pub fn default_max_payload(invocation_type: InvocationType) -> usize {
    match invocation_type {
        InvocationType::RequestResponse => crate::config::defaults::SYNC_PAYLOAD_BYTES,
        InvocationType::Event => crate::config::defaults::ASYNC_PAYLOAD_BYTES,
    }
}

/// The payload cap of a function: its own, or Lambda's for its invocation type.
pub fn max_payload(config: &FunctionConfig) -> usize {
    config
        .max_payload_bytes
        .unwrap_or_else(|| default_max_payload(config.invocation_type))
}
