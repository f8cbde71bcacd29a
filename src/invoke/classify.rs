//! Classification of Invoke API answers, per dialect (reference, sections 2.2,
//! 2.3, 2.5, 2.6).
//!
//! This is the one place that decides what an answer means; how long to wait
//! and how many times to try belong to the dispatcher.

use std::{
    error::Error as _,
    fmt::Write as _,
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName};
use serde::de::IgnoredAny;

use super::{FunctionErrorInfo, InvokeOutcome, Response};
use crate::config::Dialect;

/// The longest `Retry-After` honoured; a larger one is cut to this, so a
/// confused endpoint cannot park a pipeline for hours.
pub(super) const MAX_RETRY_AFTER: Duration = Duration::from_secs(15 * 60);

/// The value the `rie` and `cargo-lambda` dialects imply for
/// `X-Amz-Function-Error`: Lambda's own word for an error the runtime saw.
const UNHANDLED: &str = "Unhandled";

/// Service error messages are quoted in a reason up to this many bytes.
const MAX_QUOTED_MESSAGE: usize = 240;

const FUNCTION_ERROR: HeaderName = HeaderName::from_static("x-amz-function-error");
const EXECUTED_VERSION: HeaderName = HeaderName::from_static("x-amz-executed-version");
const REQUEST_ID: HeaderName = HeaderName::from_static("x-amzn-requestid");
const ERROR_TYPE: HeaderName = HeaderName::from_static("x-amzn-errortype");
const RETRY_AFTER: HeaderName = HeaderName::from_static("retry-after");

/// What an HTTP answer means. `now` dates an HTTP-date `Retry-After`.
pub(super) fn classify(
    dialect: Dialect,
    status: u16,
    headers: &HeaderMap,
    body: Bytes,
    now: SystemTime,
) -> InvokeOutcome {
    let function_error = header(headers, &FUNCTION_ERROR)
        .map(str::to_owned)
        .or_else(|| implied_function_error(dialect, status, &body).map(str::to_owned));
    let response = Response {
        status,
        request_id: header(headers, &REQUEST_ID).map(str::to_owned),
        executed_version: header(headers, &EXECUTED_VERSION).map(str::to_owned),
        function_error,
        body,
    };

    // Lambda answers 200, 202 or 204; any 2xx means the function ran. A 500
    // is a function error when cargo-lambda sends it or a header says so.
    match status {
        200..=299 | 500 if response.function_error.is_some() => {
            InvokeOutcome::FunctionError(response)
        }
        200..=299 => InvokeOutcome::Delivered(response),
        429 => InvokeOutcome::Throttled {
            retry_after: retry_after(headers, now),
            response,
        },
        413 => InvokeOutcome::TooLarge(response),
        409 if is_durable_already_started(headers) => permanent(headers, response),
        400 if is_invalid_content(headers, &response.body) => InvokeOutcome::InvalidEvent(response),
        408..=410 | 500..=599 => InvokeOutcome::Retryable {
            reason: service_reason(headers, &response),
            response: Some(response),
        },
        _ => permanent(headers, response),
    }
}

/// The function took the request and did not answer in time: a function
/// error, as Lambda reports a timed-out function (`Sandbox.Timedout`), so a
/// record that hangs its function uses its attempts up.
fn timed_out(timeout: Duration) -> InvokeOutcome {
    let body = serde_json::json!({
        "errorType": "Sandbox.Timedout",
        "errorMessage": format!("Task timed out after {:.2} seconds", timeout.as_secs_f64()),
    });
    InvokeOutcome::FunctionError(Response {
        status: 200,
        request_id: None,
        executed_version: None,
        function_error: Some("Unhandled".to_owned()),
        body: Bytes::from(body.to_string()),
    })
}

/// An answer over the response limit: a function error, as Lambda reports
/// `Function.ResponseSizeTooLarge`, so it uses attempts up instead of being
/// retried for ever.
pub(super) fn response_too_large(status: u16, headers: &HeaderMap, limit: usize) -> InvokeOutcome {
    let body = serde_json::json!({
        "errorType": "Function.ResponseSizeTooLarge",
        "errorMessage": format!(
            "Response payload size exceeded maximum allowed payload size ({limit} bytes)."
        ),
    });
    InvokeOutcome::FunctionError(Response {
        status,
        request_id: header(headers, &REQUEST_ID).map(str::to_owned),
        executed_version: header(headers, &EXECUTED_VERSION).map(str::to_owned),
        function_error: Some("Unhandled".to_owned()),
        body: Bytes::from(body.to_string()),
    })
}

/// The function error a dialect reports without the header: `rie` answers 200
/// with the runtime's error object or a timeout text, `cargo-lambda` answers
/// 500.
fn implied_function_error(dialect: Dialect, status: u16, body: &[u8]) -> Option<&'static str> {
    match (dialect, status) {
        (Dialect::Rie, 200) if is_rie_error_body(body) => Some(UNHANDLED),
        (Dialect::CargoLambda, 500) => Some(UNHANDLED),
        _ => None,
    }
}

/// A JSON object with both `errorType` and `errorMessage`, or RIE's plain
/// `Task timed out after N seconds`.
fn is_rie_error_body(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct ErrorObject {
        #[serde(rename = "errorType", default)]
        error_type: Present,
        #[serde(rename = "errorMessage", default)]
        error_message: Present,
    }

    let body = body.trim_ascii_start();
    if body.starts_with(b"Task timed out") {
        return true;
    }
    // Checked first because a derived struct also accepts a JSON array.
    if !body.starts_with(b"{") {
        return false;
    }
    serde_json::from_slice::<ErrorObject>(body)
        .is_ok_and(|object| object.error_type.0 && object.error_message.0)
}

/// Whether a member is there, whatever its value (`null` included).
#[derive(Default)]
struct Present(bool);

impl<'de> serde::Deserialize<'de> for Present {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        IgnoredAny::deserialize(deserializer).map(|_| Present(true))
    }
}

/// Lambda's one 409 that retrying cannot fix: the durable execution named in
/// the request already exists.
fn is_durable_already_started(headers: &HeaderMap) -> bool {
    header(headers, &ERROR_TYPE).is_some_and(|t| t.starts_with("DurableExecutionAlreadyStarted"))
}

/// Lambda's answer to an event that is not JSON, by header or by body.
fn is_invalid_content(headers: &HeaderMap, body: &[u8]) -> bool {
    const NAME: &str = "InvalidRequestContentException";
    header(headers, &ERROR_TYPE).is_some_and(|t| t.starts_with(NAME))
        || serde_json::from_slice::<serde_json::Value>(body)
            .is_ok_and(|b| b["Type"] == NAME || b["__type"] == NAME || b["errorType"] == NAME)
}

fn permanent(headers: &HeaderMap, response: Response) -> InvokeOutcome {
    InvokeOutcome::Permanent {
        reason: service_reason(headers, &response),
        response,
    }
}

/// `Retry-After` as delta-seconds or an HTTP date, capped at
/// [`MAX_RETRY_AFTER`]. A date in the past means "now".
pub(super) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = header(headers, &RETRY_AFTER)?.trim();
    let delay = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let at = httpdate::parse_http_date(value).ok()?;
            at.duration_since(now).unwrap_or(Duration::ZERO)
        }
    };
    Some(delay.min(MAX_RETRY_AFTER))
}

/// A sentence naming the status, the service's error type and its message,
/// from `x-amzn-ErrorType` and the body's `Type` and `message` when present.
fn service_reason(headers: &HeaderMap, response: &Response) -> String {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        #[serde(rename = "Type")]
        kind: Option<String>,
        #[serde(alias = "Message")]
        message: Option<String>,
    }

    let body = match response.body.trim_ascii_start().first() {
        Some(b'{') => serde_json::from_slice::<ErrorBody>(&response.body).ok(),
        _ => None,
    };
    let (kind, message) = body.map_or((None, None), |b| (b.kind, b.message));
    // AWS may append `:<documentation URL>` to the error type.
    let error_type = header(headers, &ERROR_TYPE).map(|t| t.split(':').next().unwrap_or(t));

    let mut reason = format!("the function endpoint answered HTTP {}", response.status);
    match (error_type, kind.as_deref()) {
        (Some(error_type), Some(kind)) => {
            let _ = write!(reason, " with {error_type} ({kind} error)");
        }
        (Some(error_type), None) => {
            let _ = write!(reason, " with {error_type}");
        }
        (None, Some(kind)) => {
            let _ = write!(reason, " with a {kind} error");
        }
        (None, None) => {}
    }
    if let Some(message) = message.as_deref().filter(|m| !m.is_empty()) {
        let _ = write!(reason, ": {}", quoted(message));
    }
    reason
}

/// `message` cut to [`MAX_QUOTED_MESSAGE`] bytes on a character boundary.
fn quoted(message: &str) -> &str {
    if message.len() <= MAX_QUOTED_MESSAGE {
        return message;
    }
    let mut end = MAX_QUOTED_MESSAGE;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    &message[..end]
}

/// What a request that got no usable answer means: always worth retrying,
/// with a sentence saying what went wrong.
pub(super) fn transport_failure(error: &reqwest::Error, timeout: Duration) -> InvokeOutcome {
    if error.is_timeout() && !error.is_connect() {
        return timed_out(timeout);
    }
    let reason = if error.is_timeout() {
        format!("connecting to the function endpoint took longer than {timeout:?}")
    } else if error.is_connect() {
        format!(
            "connecting to the function endpoint failed: {}",
            causes(error)
        )
    } else if error.is_body() || error.is_decode() {
        format!("reading the function's answer failed: {}", causes(error))
    } else {
        format!(
            "the request to the function endpoint failed: {}",
            causes(error)
        )
    };
    InvokeOutcome::Retryable {
        reason,
        response: None,
    }
}

/// The chain of causes under a reqwest error, which itself only says "error
/// sending request", joined with `: `.
fn causes(error: &reqwest::Error) -> String {
    let mut text = String::new();
    let mut source = error.source();
    while let Some(cause) = source {
        if !text.is_empty() {
            text.push_str(": ");
        }
        let _ = write!(text, "{cause}");
        source = cause.source();
    }
    if text.is_empty() {
        let _ = write!(text, "{error}");
    }
    text
}

fn header<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

pub(super) fn error_info(body: &Bytes) -> FunctionErrorInfo {
    #[derive(serde::Deserialize)]
    struct Body {
        #[serde(rename = "errorType")]
        error_type: Option<String>,
        #[serde(rename = "errorMessage")]
        message: Option<String>,
    }
    match serde_json::from_slice::<Body>(body) {
        Ok(b) => FunctionErrorInfo {
            error_type: b.error_type,
            message: b.message,
        },
        Err(_) => FunctionErrorInfo::default(),
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    HeaderName::from_static(name),
                    HeaderValue::from_static(value),
                )
            })
            .collect()
    }

    fn outcome(dialect: Dialect, status: u16, body: &'static [u8]) -> InvokeOutcome {
        classify(
            dialect,
            status,
            &HeaderMap::new(),
            Bytes::from_static(body),
            SystemTime::now(),
        )
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let at = |value| retry_after(&headers(&[("retry-after", value)]), now);

        assert_eq!(at(" 120 "), Some(Duration::from_secs(120)));
        assert_eq!(at("0"), Some(Duration::ZERO));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(45));
        let value = HeaderValue::from_str(&later).expect("an HTTP date is a header value");
        let mut map = HeaderMap::new();
        map.insert(RETRY_AFTER, value);
        assert_eq!(retry_after(&map, now), Some(Duration::from_secs(45)));
        assert_eq!(at("Thu, 01 Jan 1970 00:00:00 GMT"), Some(Duration::ZERO));
        assert_eq!(at("86400"), Some(MAX_RETRY_AFTER));
        assert_eq!(at("soon"), None);
        assert_eq!(at("-5"), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn rie_error_bodies_are_recognised() {
        assert!(is_rie_error_body(
            br#"{"errorType":"E","errorMessage":"m","stackTrace":[]}"#
        ));
        assert!(is_rie_error_body(
            br#"  {"errorMessage":"m","errorType":null}"#
        ));
        assert!(is_rie_error_body(b"Task timed out after 3.00 seconds"));
        assert!(!is_rie_error_body(br#"{"errorType":"E"}"#));
        assert!(!is_rie_error_body(br#"["errorType","errorMessage"]"#));
        assert!(!is_rie_error_body(br#""Task timed out""#));
        assert!(!is_rie_error_body(b"{not json"));
        assert!(!is_rie_error_body(b""));
    }

    #[test]
    fn dialects_imply_function_errors_only_at_their_status() {
        let error = br#"{"errorType":"E","errorMessage":"m"}"#;
        assert!(matches!(
            outcome(Dialect::Rie, 200, error),
            InvokeOutcome::FunctionError(_)
        ));
        assert!(matches!(
            outcome(Dialect::Rie, 500, error),
            InvokeOutcome::Retryable { .. }
        ));
        assert!(matches!(
            outcome(Dialect::Aws, 200, error),
            InvokeOutcome::Delivered(_)
        ));
        assert!(matches!(
            outcome(Dialect::Aws, 500, error),
            InvokeOutcome::Retryable { .. }
        ));
        assert!(matches!(
            outcome(Dialect::CargoLambda, 500, b""),
            InvokeOutcome::FunctionError(_)
        ));
        assert!(matches!(
            outcome(Dialect::CargoLambda, 502, b""),
            InvokeOutcome::Retryable { .. }
        ));
    }

    #[test]
    fn delivered_answers_carry_no_function_error() {
        for status in [200, 202, 204] {
            match outcome(Dialect::Aws, status, b"") {
                InvokeOutcome::Delivered(response) => {
                    assert_eq!(response.status, status);
                    assert_eq!(response.function_error, None);
                }
                other => panic!("HTTP {status}: expected delivered, got {other:?}"),
            }
        }
    }

    #[test]
    fn other_statuses_are_permanent() {
        for status in [301, 400, 402, 403, 404, 415, 418] {
            assert!(
                matches!(
                    outcome(Dialect::Aws, status, b""),
                    InvokeOutcome::Permanent { .. }
                ),
                "HTTP {status}"
            );
        }
    }

    #[test]
    fn reasons_name_the_status_the_error_type_and_the_message() {
        let reason = |pairs: &[(&'static str, &'static str)], body: &'static [u8]| {
            let response = Response {
                status: 404,
                request_id: None,
                executed_version: None,
                function_error: None,
                body: Bytes::from_static(body),
            };
            service_reason(&headers(pairs), &response)
        };
        let not_found = [(
            "x-amzn-errortype",
            "ResourceNotFoundException:http://internal.amazon.com/coral/",
        )];

        assert_eq!(
            reason(
                &not_found,
                br#"{"Type":"User","Message":"Function not found"}"#
            ),
            "the function endpoint answered HTTP 404 with ResourceNotFoundException \
             (User error): Function not found"
        );
        assert_eq!(
            reason(&not_found, b"not json"),
            "the function endpoint answered HTTP 404 with ResourceNotFoundException"
        );
        assert_eq!(
            reason(&[], br#"{"Type":"Service","message":"try later"}"#),
            "the function endpoint answered HTTP 404 with a Service error: try later"
        );
        assert_eq!(reason(&[], b""), "the function endpoint answered HTTP 404");
    }

    #[test]
    fn quoted_messages_are_cut_on_a_character_boundary() {
        let long = "é".repeat(MAX_QUOTED_MESSAGE);
        let cut = quoted(&long);
        assert!(cut.len() <= MAX_QUOTED_MESSAGE);
        assert!(cut.len() >= MAX_QUOTED_MESSAGE - 1);
        assert_eq!(quoted("short"), "short");
    }
}
