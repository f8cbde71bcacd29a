//! A test function: echoes its event back, or fails on request.
//!
//! - An event without `"fail": true` at its top level succeeds with
//!   `{"received": <event>}`.
//! - An event with `"fail": true` at its top level fails with the error type
//!   `RequestedFailure` and a message that says so. Only the top level counts:
//!   a record inside `Records` that carries `"fail": true` does not fail the
//!   invocation.

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::{Value, json};

/// The error type and message a failing invocation reports.
const ERROR_TYPE: &str = "RequestedFailure";
const ERROR_MESSAGE: &str = "the event asked this function to fail";

#[derive(Debug)]
struct RequestedFailure;

impl From<RequestedFailure> for Diagnostic {
    fn from(_: RequestedFailure) -> Self {
        Diagnostic {
            error_type: ERROR_TYPE.to_owned(),
            error_message: ERROR_MESSAGE.to_owned(),
        }
    }
}

async fn handle(event: LambdaEvent<Value>) -> Result<Value, RequestedFailure> {
    let payload = event.payload;
    if payload.get("fail") == Some(&Value::Bool(true)) {
        return Err(RequestedFailure);
    }
    Ok(json!({ "received": payload }))
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::run(service_fn(handle)).await
}
