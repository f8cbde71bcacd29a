//! `trigger-bridge echo-function`: a Lambda-compatible function that prints
//! every event it receives, one compact JSON line each on stdout, and answers
//! success. For local trials and benchmarks, so the hot path takes one lock of
//! stdout per event and allocates nothing for the event itself.

use std::{
    future::Future,
    io::{self, Write},
};

use axum::{
    Router,
    body::Bytes,
    extract::DefaultBodyLimit,
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use tokio::net::TcpListener;
use uuid::Uuid;

use crate::config::defaults::SYNC_PAYLOAD_BYTES;

const INVOKE_PATH: &str = "/2015-03-31/functions/{name}/invocations";
const REQUEST_ID: HeaderName = HeaderName::from_static("x-amzn-requestid");
const EXECUTED_VERSION: HeaderName = HeaderName::from_static("x-amz-executed-version");
const ERROR_TYPE: HeaderName = HeaderName::from_static("x-amzn-errortype");
const INVOCATION_TYPE: &str = "x-amz-invocation-type";

/// The echo function's routes: the Invoke API for any function name.
pub fn router() -> Router {
    Router::new()
        .route(INVOKE_PATH, post(invoke))
        .layer(DefaultBodyLimit::max(SYNC_PAYLOAD_BYTES))
}

/// Serves the echo function on `listener` until `stop` completes.
pub async fn serve(
    listener: TcpListener,
    stop: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    axum::serve(listener, router())
        .with_graceful_shutdown(stop)
        .await
}

async fn invoke(headers: HeaderMap, body: Bytes) -> Response {
    let request_id = request_id();
    // Lambda hands a function invoked without a payload an empty object.
    let event: &[u8] = if body.is_empty() { b"{}" } else { &body };
    if let Err(error) = serde_json::from_slice::<serde::de::IgnoredAny>(event) {
        return invalid_request_content(request_id, &error);
    }

    let invocation_type = headers.get(INVOCATION_TYPE).map(HeaderValue::as_bytes);
    if invocation_type == Some(b"DryRun") {
        return (StatusCode::NO_CONTENT, [(REQUEST_ID, request_id)]).into_response();
    }
    if let Err(error) = write_compact(&mut io::stdout().lock(), event) {
        tracing::warn!(%error, "Could not print an event on stdout");
    }
    if invocation_type == Some(b"Event") {
        return (StatusCode::ACCEPTED, [(REQUEST_ID, request_id)]).into_response();
    }

    let headers = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ),
        (EXECUTED_VERSION, HeaderValue::from_static("$LATEST")),
        (REQUEST_ID, request_id),
    ];
    (headers, "{}").into_response()
}

/// Lambda's answer to a payload that is not JSON.
fn invalid_request_content(request_id: HeaderValue, error: &serde_json::Error) -> Response {
    let body = serde_json::json!({
        "Type": "User",
        "message": format!("Could not parse request body into json: {error}"),
    });
    let headers = [
        (
            ERROR_TYPE,
            HeaderValue::from_static("InvalidRequestContentException"),
        ),
        (REQUEST_ID, request_id),
    ];
    (StatusCode::BAD_REQUEST, headers, axum::Json(body)).into_response()
}

fn request_id() -> HeaderValue {
    let mut buffer = Uuid::encode_buffer();
    let id = Uuid::new_v4().hyphenated().encode_lower(&mut buffer);
    HeaderValue::from_str(id).expect("a hyphenated UUID is a valid header value")
}

/// Writes `json`, which must be valid JSON, without the whitespace between
/// its tokens, then a newline. Strings and numbers keep their exact text.
fn write_compact(out: &mut impl Write, json: &[u8]) -> io::Result<()> {
    let mut in_string = false;
    let mut escaped = false;
    let mut start = 0;
    for (i, &byte) in json.iter().enumerate() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
        } else if byte == b'"' {
            in_string = true;
        } else if matches!(byte, b' ' | b'\t' | b'\n' | b'\r') {
            out.write_all(&json[start..i])?;
            start = i + 1;
        }
    }
    out.write_all(&json[start..])?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compact(json: &str) -> String {
        let mut out = Vec::new();
        write_compact(&mut out, json.as_bytes()).expect("a Vec takes every write");
        String::from_utf8(out).expect("compacting keeps UTF-8")
    }

    #[test]
    fn drops_whitespace_between_tokens_only() {
        let pretty = "{\r\n  \"a b\" : [ 1 , 2.50e3 ,\t\"x \\\" y\\\\\" ],\n  \"c\": null }";
        assert_eq!(
            compact(pretty),
            "{\"a b\":[1,2.50e3,\"x \\\" y\\\\\"],\"c\":null}\n"
        );
    }

    #[test]
    fn keeps_a_compact_event_as_it_came() {
        let event = r#"{"Records":[{"body":"  spaced  ","n":1.0}]}"#;
        assert_eq!(compact(event), format!("{event}\n"));
    }
}
