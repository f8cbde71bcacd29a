//! The invoker against real HTTP servers on loopback: a scripted function
//! ([`FunctionServer`]) and a closed port.

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use trigger_bridge_sdk::testing::{FunctionServer, Reply};

use super::{InvokeOutcome, Invoker, InvokerError, MAX_RESPONSE_BYTES, Response};
use crate::config::FunctionConfig;

/// A function config from the keys a test cares about, over a short timeout.
fn config(endpoint: &str, extra: Value) -> FunctionConfig {
    let mut value = json!({ "endpoint": endpoint, "timeout": "5s" });
    if let (Some(object), Value::Object(extra)) = (value.as_object_mut(), extra) {
        object.extend(extra);
    }
    serde_json::from_value(value).expect("test function config is valid")
}

async fn invoker(server: &FunctionServer, extra: Value) -> Invoker {
    Invoker::new("orders", &config(&server.endpoint(), extra))
        .await
        .expect("invoker builds")
}

/// Invokes once with `{"n":1}` against a function answering `reply`.
async fn outcome(extra: Value, reply: Reply) -> InvokeOutcome {
    let server = FunctionServer::start().await;
    server.script(move |_| reply.clone());
    invoker(&server, extra).await.invoke(event()).await
}

fn event() -> Bytes {
    Bytes::from_static(br#"{"n":1}"#)
}

fn raw(status: u16, headers: &[(&str, &str)], body: &'static [u8]) -> Reply {
    Reply::Raw {
        status,
        headers: headers
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect(),
        body: Bytes::from_static(body),
    }
}

#[track_caller]
fn delivered(outcome: InvokeOutcome) -> Response {
    match outcome {
        InvokeOutcome::Delivered(response) => response,
        other => panic!("expected delivered, got {other:?}"),
    }
}

#[track_caller]
fn function_error(outcome: InvokeOutcome) -> Response {
    match outcome {
        InvokeOutcome::FunctionError(response) => response,
        other => panic!("expected a function error, got {other:?}"),
    }
}

#[track_caller]
fn retryable(outcome: InvokeOutcome) -> (String, Option<Response>) {
    match outcome {
        InvokeOutcome::Retryable { reason, response } => (reason, response),
        other => panic!("expected retryable, got {other:?}"),
    }
}

#[track_caller]
fn permanent(outcome: InvokeOutcome) -> (String, Response) {
    match outcome {
        InvokeOutcome::Permanent { reason, response } => (reason, response),
        other => panic!("expected permanent, got {other:?}"),
    }
}

#[track_caller]
fn throttled(outcome: InvokeOutcome) -> Option<Duration> {
    match outcome {
        InvokeOutcome::Throttled { retry_after, .. } => retry_after,
        other => panic!("expected throttled, got {other:?}"),
    }
}

// === the request ===

#[tokio::test]
async fn request_names_the_function_by_encoded_arn_with_qualifier_and_context() {
    let server = FunctionServer::start().await;
    let arn = "arn:aws:lambda:eu-west-1:123456789012:function:orders";
    let invoker = invoker(
        &server,
        json!({
            "name": arn,
            "qualifier": "live",
            "client_context": { "custom": { "tenant": "acme" } },
        }),
    )
    .await;

    delivered(invoker.invoke(event()).await);

    let invocations = server.invocations();
    let sent = invocations.first().expect("one invocation arrived");
    assert_eq!(
        sent.path,
        "/2015-03-31/functions/\
         arn%3Aaws%3Alambda%3Aeu-west-1%3A123456789012%3Afunction%3Aorders/invocations"
    );
    assert_eq!(sent.query.as_deref(), Some("Qualifier=live"));
    assert_eq!(sent.header("content-type"), Some("application/json"));
    assert_eq!(
        sent.header("x-amz-invocation-type"),
        Some("RequestResponse")
    );
    assert_eq!(sent.header("authorization"), None);
    assert_eq!(sent.body, event());

    let context = sent
        .header("x-amz-client-context")
        .expect("client context is sent");
    let context = base64::engine::general_purpose::STANDARD
        .decode(context)
        .expect("client context is base64");
    let context: Value = serde_json::from_slice(&context).expect("client context is JSON");
    assert_eq!(context, json!({ "custom": { "tenant": "acme" } }));

    assert_eq!(invoker.function_arn(), format!("{arn}:live"));
}

#[tokio::test]
async fn name_defaults_to_the_key_and_the_qualifier_is_optional() {
    let server = FunctionServer::start().await;
    let invoker = invoker(&server, json!({})).await;

    delivered(invoker.invoke(event()).await);

    let invocations = server.invocations();
    let sent = invocations.first().expect("one invocation arrived");
    assert_eq!(sent.path, "/2015-03-31/functions/orders/invocations");
    assert_eq!(sent.query, None);
    assert_eq!(sent.header("x-amz-client-context"), None);
    assert_eq!(
        invoker.function_arn(),
        "arn:aws:lambda:us-east-1:000000000000:function:orders:$LATEST"
    );
}

#[tokio::test]
async fn event_invocations_are_queued_without_client_context() {
    let server = FunctionServer::start().await;
    server.script(|_| raw(202, &[("x-amzn-RequestId", "req-202")], b""));
    let invoker = invoker(
        &server,
        json!({ "invocation_type": "Event", "client_context": { "a": 1 } }),
    )
    .await;

    let response = delivered(invoker.invoke(event()).await);

    assert_eq!(response.status, 202);
    assert_eq!(response.request_id.as_deref(), Some("req-202"));
    assert!(response.body.is_empty());
    let invocations = server.invocations();
    let sent = invocations.first().expect("one invocation arrived");
    assert_eq!(sent.header("x-amz-invocation-type"), Some("Event"));
    assert_eq!(sent.header("x-amz-client-context"), None);
    assert_eq!(
        invoker.max_payload(),
        crate::config::defaults::ASYNC_PAYLOAD_BYTES
    );
}

// === dialects ===

#[tokio::test]
async fn aws_success_carries_the_answer() {
    let response = delivered(outcome(json!({}), Reply::Ok(json!({ "ok": true }))).await);

    assert_eq!(response.status, 200);
    assert!(response.request_id.is_some());
    assert_eq!(response.executed_version.as_deref(), Some("$LATEST"));
    assert_eq!(response.function_error, None);
    assert_eq!(response.body, Bytes::from_static(br#"{"ok":true}"#));
}

#[tokio::test]
async fn aws_function_error_is_the_header() {
    let reply = Reply::FunctionError {
        error_type: "ValueError".into(),
        message: "bad record".into(),
    };
    let response = function_error(outcome(json!({}), reply).await);

    assert_eq!(response.function_error.as_deref(), Some("Unhandled"));
    let info = response.error_info();
    assert_eq!(info.error_type.as_deref(), Some("ValueError"));
    assert_eq!(info.message.as_deref(), Some("bad record"));
}

#[tokio::test]
async fn aws_does_not_sniff_error_shaped_bodies() {
    let body = json!({ "errorType": "ValueError", "errorMessage": "a result" });
    delivered(outcome(json!({}), Reply::Ok(body)).await);
}

#[tokio::test]
async fn the_function_error_header_counts_in_every_dialect() {
    for dialect in ["aws", "rie", "cargo-lambda"] {
        let reply = raw(200, &[("X-Amz-Function-Error", "Handled")], b"{}");
        let response = function_error(outcome(json!({ "dialect": dialect }), reply).await);
        assert_eq!(
            response.function_error.as_deref(),
            Some("Handled"),
            "{dialect}"
        );
    }
}

#[tokio::test]
async fn rie_error_object_is_a_function_error() {
    let body = json!({ "errorType": "Runtime.ExitError", "errorMessage": "exit status 1" });
    let response = function_error(outcome(json!({ "dialect": "rie" }), Reply::Ok(body)).await);

    assert_eq!(response.function_error.as_deref(), Some("Unhandled"));
    assert_eq!(
        response.error_info().error_type.as_deref(),
        Some("Runtime.ExitError")
    );
}

#[tokio::test]
async fn rie_timeout_text_is_a_function_error() {
    let reply = raw(200, &[], b"Task timed out after 3.00 seconds");
    let response = function_error(outcome(json!({ "dialect": "rie" }), reply).await);
    assert_eq!(response.function_error.as_deref(), Some("Unhandled"));
}

#[tokio::test]
async fn rie_success_and_non_json_answers_are_delivered() {
    let rie = json!({ "dialect": "rie" });
    let half = json!({ "errorType": "only one of the two" });
    delivered(outcome(rie.clone(), Reply::Ok(half)).await);
    delivered(outcome(rie.clone(), Reply::Ok(json!(["errorType", "errorMessage"]))).await);

    let response = delivered(outcome(rie, raw(200, &[], b"plain text, not JSON")).await);
    assert_eq!(response.body, Bytes::from_static(b"plain text, not JSON"));
}

#[tokio::test]
async fn rie_init_failure_502_is_retryable() {
    let (reason, response) =
        retryable(outcome(json!({ "dialect": "rie" }), raw(502, &[], b"")).await);
    assert!(reason.contains("HTTP 502"), "{reason}");
    assert_eq!(response.map(|r| r.status), Some(502));
}

#[tokio::test]
async fn cargo_lambda_500_is_a_function_error() {
    let body = br#"{"errorType":"&alloc::boxed::Box<dyn Error>","errorMessage":"boom"}"#;
    let reply = raw(500, &[], body);
    let response = function_error(outcome(json!({ "dialect": "cargo-lambda" }), reply).await);

    assert_eq!(response.status, 500);
    assert_eq!(response.function_error.as_deref(), Some("Unhandled"));
    assert_eq!(response.error_info().message.as_deref(), Some("boom"));
}

#[tokio::test]
async fn cargo_lambda_success_is_delivered() {
    delivered(
        outcome(
            json!({ "dialect": "cargo-lambda" }),
            Reply::Ok(json!("done")),
        )
        .await,
    );
}

// === service errors ===

#[tokio::test]
async fn throttle_without_retry_after() {
    let reply = Reply::Throttle {
        retry_after_secs: None,
    };
    assert_eq!(throttled(outcome(json!({}), reply).await), None);
}

#[tokio::test]
async fn throttle_with_retry_after_seconds() {
    let reply = Reply::Throttle {
        retry_after_secs: Some(7),
    };
    assert_eq!(
        throttled(outcome(json!({}), reply).await),
        Some(Duration::from_secs(7))
    );
}

#[tokio::test]
async fn throttle_with_retry_after_date() {
    let at = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(30));
    let reply = Reply::Raw {
        status: 429,
        headers: vec![("Retry-After".into(), at)],
        body: Bytes::from_static(br#"{"Type":"User","message":"Rate Exceeded."}"#),
    };

    let retry_after = throttled(outcome(json!({}), reply).await).expect("a retry-after");

    // The date has whole seconds, and some time passes before it is read.
    assert!(retry_after >= Duration::from_secs(27), "{retry_after:?}");
    assert!(retry_after <= Duration::from_secs(30), "{retry_after:?}");
}

#[tokio::test]
async fn throttle_retry_after_is_capped() {
    let reply = Reply::Throttle {
        retry_after_secs: Some(86_400),
    };
    let retry_after = throttled(outcome(json!({}), reply).await);
    assert_eq!(retry_after, Some(super::classify::MAX_RETRY_AFTER));
}

#[tokio::test]
async fn request_too_large_is_split_material() {
    let headers = [("x-amzn-ErrorType", "RequestEntityTooLargeException")];
    let body = br#"{"message":"Request must be smaller than 6291456 bytes"}"#;
    match outcome(json!({}), raw(413, &headers, body)).await {
        InvokeOutcome::TooLarge(response) => assert_eq!(response.status, 413),
        other => panic!("expected too large, got {other:?}"),
    }
}

#[tokio::test]
async fn not_found_is_permanent_with_the_service_reason() {
    let headers = [("x-amzn-ErrorType", "ResourceNotFoundException")];
    let body = br#"{"Type":"User","Message":"Function not found: orders"}"#;

    let (reason, response) = permanent(outcome(json!({}), raw(404, &headers, body)).await);

    assert_eq!(response.status, 404);
    assert!(reason.contains("HTTP 404"), "{reason}");
    assert!(reason.contains("ResourceNotFoundException"), "{reason}");
    assert!(reason.contains("Function not found: orders"), "{reason}");
}

#[tokio::test]
async fn bad_request_is_permanent_even_without_a_json_body() {
    let (reason, _) = permanent(outcome(json!({}), raw(400, &[], b"<html>nope</html>")).await);
    assert!(reason.contains("HTTP 400"), "{reason}");
}

#[tokio::test]
async fn an_unreadable_event_is_invalid_by_header_or_by_body() {
    let body = br#"{"Type":"User","message":"Could not parse request body into json"}"#;
    let headers = [("x-amzn-ErrorType", "InvalidRequestContentException")];
    let by_header = outcome(json!({}), raw(400, &headers, body)).await;
    assert!(
        matches!(by_header, InvokeOutcome::InvalidEvent(_)),
        "{by_header:?}"
    );

    let body = br#"{"errorType":"InvalidRequestContentException","errorMessage":"bad"}"#;
    let by_body = outcome(json!({}), raw(400, &[], body)).await;
    assert!(
        matches!(by_body, InvokeOutcome::InvalidEvent(_)),
        "{by_body:?}"
    );
}

#[tokio::test]
async fn transient_service_errors_are_retryable() {
    for status in [408, 409, 410, 500, 502, 503] {
        let (reason, response) =
            retryable(outcome(json!({}), raw(status, &[], b"<html>busy</html>")).await);
        assert!(reason.contains(&format!("HTTP {status}")), "{reason}");
        assert_eq!(response.map(|r| r.status), Some(status));
    }
}

#[tokio::test]
async fn durable_execution_already_started_is_permanent() {
    let headers = [(
        "x-amzn-ErrorType",
        "DurableExecutionAlreadyStartedException",
    )];
    permanent(outcome(json!({}), raw(409, &headers, b"{}")).await);
}

// === the network ===

#[tokio::test]
async fn a_dropped_connection_is_retryable() {
    let (reason, response) = retryable(outcome(json!({}), Reply::Drop).await);
    assert!(response.is_none());
    assert!(
        reason.contains("request to the function endpoint failed"),
        "{reason}"
    );
}

#[tokio::test]
async fn a_function_that_times_out_has_failed() {
    let server = FunctionServer::start().await;
    server.script(|_| Reply::Delay(Duration::from_secs(5), Box::new(Reply::Ok(json!({})))));
    let invoker = invoker(&server, json!({ "timeout": "200ms" })).await;

    let started = tokio::time::Instant::now();
    let outcome = invoker.invoke(event()).await;

    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let InvokeOutcome::FunctionError(response) = outcome else {
        panic!("a timed-out function has failed, as Lambda reports it: {outcome:?}");
    };
    assert_eq!(response.function_error.as_deref(), Some("Unhandled"));
    let info = response.error_info();
    assert_eq!(info.error_type.as_deref(), Some("Sandbox.Timedout"));
    assert_eq!(
        info.message.as_deref(),
        Some("Task timed out after 0.20 seconds")
    );
}

#[tokio::test]
async fn an_unreachable_endpoint_is_retryable() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a port");
    let closed = listener.local_addr().expect("bound port has an address");
    drop(listener);
    let endpoint = format!("http://{closed}");
    let invoker = Invoker::new("orders", &config(&endpoint, json!({})))
        .await
        .expect("invoker builds");

    let (reason, response) = retryable(invoker.invoke(event()).await);

    assert!(response.is_none());
    assert!(
        reason.starts_with("connecting to the function endpoint failed"),
        "{reason}"
    );
}

#[tokio::test]
async fn an_answer_over_the_response_limit_is_a_function_error() {
    let reply = Reply::Raw {
        status: 200,
        headers: Vec::new(),
        body: Bytes::from(vec![b'x'; MAX_RESPONSE_BYTES + 1]),
    };
    let InvokeOutcome::FunctionError(response) = outcome(json!({}), reply).await else {
        panic!("an oversize answer is the function's failure");
    };
    assert_eq!(response.function_error.as_deref(), Some("Unhandled"));
    assert_eq!(
        response.error_info().error_type.as_deref(),
        Some("Function.ResponseSizeTooLarge")
    );
}

#[tokio::test]
async fn an_answer_at_the_response_limit_is_read_whole() {
    let reply = Reply::Raw {
        status: 200,
        headers: Vec::new(),
        body: Bytes::from(vec![b'x'; MAX_RESPONSE_BYTES]),
    };
    let response = delivered(outcome(json!({}), reply).await);
    assert_eq!(response.body.len(), MAX_RESPONSE_BYTES);
}

#[tokio::test]
async fn sequential_invocations_reuse_one_connection() {
    let server = FunctionServer::start().await;
    let invoker = invoker(&server, json!({})).await;

    for _ in 0..5 {
        delivered(invoker.clone().invoke(event()).await);
    }

    assert_eq!(server.invocation_count(), 5);
    assert_eq!(server.connections(), 1);
}

// === set-up ===

#[tokio::test]
async fn endpoints_must_be_http_urls() {
    for endpoint in [
        "ftp://127.0.0.1:9000",
        "127.0.0.1:9000",
        "http://h/?a=b",
        "nonsense",
    ] {
        let error = Invoker::new("orders", &config(endpoint, json!({})))
            .await
            .expect_err("endpoint is rejected");
        assert!(
            matches!(error, InvokerError::Endpoint { .. }),
            "{endpoint}: {error}"
        );
        assert!(error.to_string().contains("`orders`"), "{error}");
    }
}

#[tokio::test]
async fn an_oversized_client_context_is_rejected() {
    let big = "x".repeat(3_000);
    let config = config(
        "http://127.0.0.1:9",
        json!({ "client_context": { "big": big } }),
    );

    let error = Invoker::new("orders", &config)
        .await
        .expect_err("context is rejected");

    assert!(
        matches!(error, InvokerError::ClientContextTooLarge { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("3583"), "{error}");
}

#[tokio::test]
async fn a_client_context_at_the_limit_is_accepted() {
    // {"k":"…"} is 8 bytes plus the value; 2685 bytes encode to 3580.
    let value = "x".repeat(2_685 - 8);
    let config = config(
        "http://127.0.0.1:9",
        json!({ "client_context": { "k": value } }),
    );
    Invoker::new("orders", &config).await.expect("context fits");
}

#[tokio::test]
async fn the_arn_takes_the_region_of_a_lambda_endpoint() {
    let config = config(
        "https://lambda.ap-south-1.amazonaws.com",
        json!({ "qualifier": "3" }),
    );
    let invoker = Invoker::new("orders", &config)
        .await
        .expect("invoker builds");
    assert_eq!(
        invoker.function_arn(),
        "arn:aws:lambda:ap-south-1:000000000000:function:orders:3"
    );
}

#[tokio::test]
async fn aws_auth_with_a_configured_region_builds() {
    let config = config(
        "http://127.0.0.1:9",
        json!({ "auth": "aws", "region": "eu-west-1", "name": "123456789012:function:orders" }),
    );
    let invoker = Invoker::new("orders", &config)
        .await
        .expect("invoker builds");
    assert_eq!(
        invoker.function_arn(),
        "arn:aws:lambda:eu-west-1:123456789012:function:orders:$LATEST"
    );
}
