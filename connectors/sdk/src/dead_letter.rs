//! The dead-letter sink interface, and Lambda's on-failure record shapes.
//!
//! Shapes follow the reference: section 4 for the asynchronous invoke's record
//! (`requestPayload`, `responsePayload`), section 3.10 for stream event source
//! mappings (`DDBStreamBatchInfo`, `KafkaBatchInfo`, with `payload` as an S3
//! destination carries it).

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use futures::future::BoxFuture;
use serde::Serialize;
use serde_json::{Map, Value, value::RawValue};

use crate::{connector::Family, envelope::Envelope, record::Record};

/// Why a record failed for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Condition {
    /// Every attempt allowed by `max_attempts` failed.
    RetriesExhausted,
    /// The record outlived `max_record_age`.
    RecordAgeExceeded,
    /// The record alone is over the function's payload cap.
    PayloadTooLarge,
    /// The function's reserved concurrency is 0: it may never be invoked.
    ZeroReservedConcurrency,
}

impl Condition {
    /// The `condition` value Lambda writes for a source of `family`.
    pub fn aws_name(self, family: Family) -> &'static str {
        match (self, family) {
            (Condition::RetriesExhausted, Family::Stream) => "RetryAttemptsExhausted",
            (Condition::RetriesExhausted, _) => "RetriesExhausted",
            (Condition::RecordAgeExceeded, Family::Stream) => "RecordAgeExceeded",
            (Condition::RecordAgeExceeded, _) => "EventAgeExceeded",
            (Condition::PayloadTooLarge, _) => "MaximumPayloadSizeExceeded",
            (Condition::ZeroReservedConcurrency, _) => "ZeroReservedConcurrency",
        }
    }

    /// A bounded metric label value.
    pub fn label(self) -> &'static str {
        match self {
            Condition::RetriesExhausted => "retries_exhausted",
            Condition::RecordAgeExceeded => "record_age_exceeded",
            Condition::PayloadTooLarge => "payload_too_large",
            Condition::ZeroReservedConcurrency => "zero_reserved_concurrency",
        }
    }
}

impl std::fmt::Display for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// What the function (or the Invoke API) answered to the last attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseContext {
    pub status_code: u16,
    pub executed_version: Option<String>,
    /// `X-Amz-Function-Error`'s value (`Unhandled`, `Handled`) for a function
    /// error; `None` when the function did not fail.
    pub function_error: Option<String>,
    /// The response body, verbatim.
    pub payload: Bytes,
}

/// Describes a failed batch for a stream source's on-failure record.
pub trait BatchInfo: Send + Sync {
    /// The record's key for the description: `DDBStreamBatchInfo`,
    /// `KinesisBatchInfo`, `KafkaBatchInfo`.
    fn field_name(&self) -> &'static str;

    /// The description of `records`, whose envelope is `payload_size` bytes.
    fn describe(&self, records: &[Record], payload_size: usize) -> Value;
}

/// A batch that failed for good, as a dead-letter sink receives it.
#[derive(Clone, Copy)]
pub struct FailedBatch<'a> {
    pub pipeline: &'a str,
    /// The qualified function ARN (`…:function:name:qualifier`).
    pub function_arn: &'a str,
    pub family: Family,
    pub condition: Condition,
    /// Invocations made, the first included (`approximateInvokeCount`).
    pub invoke_count: u32,
    /// The last invocation's request id, when the function answered one.
    pub request_id: Option<&'a str>,
    /// The last answer; `None` when no invocation reached the function.
    pub response: Option<&'a ResponseContext>,
    pub envelope: &'a Envelope,
    pub records: &'a [Record],
    pub batch_info: Option<&'a dyn BatchInfo>,
    pub timestamp: DateTime<Utc>,
}

impl std::fmt::Debug for FailedBatch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FailedBatch")
            .field("pipeline", &self.pipeline)
            .field("condition", &self.condition)
            .field("records", &self.records.len())
            .finish_non_exhaustive()
    }
}

impl FailedBatch<'_> {
    /// The event the batch was (or would have been) delivered as.
    pub fn event(&self) -> Bytes {
        self.envelope.encode(self.records, 0)
    }

    /// Lambda's on-failure record for this batch's source family, as JSON
    /// text. The event and the function's answer are embedded byte for byte,
    /// never re-parsed: keys keep their order and numbers their digits.
    ///
    /// Stream sources with a [`BatchInfo`] get the event source mapping shape,
    /// with the event under `payload` when `include_payload` is set (as an S3
    /// destination has it); every other source gets the asynchronous invoke's
    /// shape, whose `requestPayload` always carries the event.
    pub fn on_failure_record(&self, include_payload: bool) -> String {
        let event_bytes = self.event();
        let event = Embedded::new(&event_bytes);
        let response = self.response;
        let mut record = OnFailureRecord {
            version: "1.0",
            timestamp: self.timestamp.to_rfc3339_opts(SecondsFormat::Millis, true),
            request_context: RequestContext {
                request_id: self
                    .request_id
                    .map(str::to_owned)
                    .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
                function_arn: self.function_arn,
                condition: self.condition.aws_name(self.family),
                approximate_invoke_count: self.invoke_count,
            },
            response_context: response.map(|r| ResponseContextOut {
                status_code: r.status_code,
                executed_version: r.executed_version.as_deref().unwrap_or("$LATEST"),
                function_error: r.function_error.as_deref(),
            }),
            batch_info: Map::new(),
            request_payload: None,
            response_payload: None,
            payload: None,
        };
        match self.batch_info {
            Some(info) => {
                let description = info.describe(self.records, event_bytes.len());
                record
                    .batch_info
                    .insert(info.field_name().into(), description);
                if include_payload {
                    record.payload = Some(event);
                }
            }
            None => {
                record.request_payload = Some(event);
                record.response_payload = response.map(|r| Embedded::new(&r.payload));
            }
        }
        serde_json::to_string(&record).expect("invariant: an on-failure record always serializes")
    }
}

/// <https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html>
/// and, for stream sources,
/// <https://docs.aws.amazon.com/lambda/latest/dg/kinesis-on-failure-destination.html>.
#[derive(Serialize)]
struct OnFailureRecord<'a> {
    version: &'static str,
    timestamp: String,
    #[serde(rename = "requestContext")]
    request_context: RequestContext<'a>,
    #[serde(rename = "responseContext", skip_serializing_if = "Option::is_none")]
    response_context: Option<ResponseContextOut<'a>>,
    /// `DDBStreamBatchInfo`, `KafkaBatchInfo`: the key depends on the source.
    #[serde(flatten)]
    batch_info: Map<String, Value>,
    #[serde(rename = "requestPayload", skip_serializing_if = "Option::is_none")]
    request_payload: Option<Embedded>,
    #[serde(rename = "responsePayload", skip_serializing_if = "Option::is_none")]
    response_payload: Option<Embedded>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<Embedded>,
}

#[derive(Serialize)]
struct RequestContext<'a> {
    #[serde(rename = "requestId")]
    request_id: String,
    #[serde(rename = "functionArn")]
    function_arn: &'a str,
    condition: &'static str,
    #[serde(rename = "approximateInvokeCount")]
    approximate_invoke_count: u32,
}

#[derive(Serialize)]
struct ResponseContextOut<'a> {
    #[serde(rename = "statusCode")]
    status_code: u16,
    #[serde(rename = "executedVersion")]
    executed_version: &'a str,
    #[serde(rename = "functionError", skip_serializing_if = "Option::is_none")]
    function_error: Option<&'a str>,
}

/// Bytes embedded in an on-failure record: JSON as it is, anything else (an
/// empty or non-JSON answer, an envelope holding a malformed record, JSON
/// nested deeper than common parsers read) as a string, lossily decoded.
#[derive(Serialize)]
#[serde(untagged)]
enum Embedded {
    Json(Box<RawValue>),
    Text(String),
    Null,
}

impl Embedded {
    fn new(bytes: &Bytes) -> Self {
        if bytes.is_empty() {
            return Embedded::Null;
        }
        let text = String::from_utf8_lossy(bytes).into_owned();
        // A full parse applies serde_json's nesting limit, which `RawValue`
        // alone does not check. This runs only when dead-lettering.
        if serde_json::from_str::<Value>(&text).is_err() {
            return Embedded::Text(text);
        }
        match RawValue::from_string(text) {
            Ok(raw) => Embedded::Json(raw),
            Err(_) => Embedded::Text(String::from_utf8_lossy(bytes).into_owned()),
        }
    }
}

/// Where records that failed for good are written. A sink returns only once
/// the write is durable (fsynced, confirmed by the broker): the engine then
/// acknowledges the records at their source.
pub trait DeadLetterSink: Send + Sync + 'static {
    /// The sink's kind for logs and metrics: `file`, `kafka`, `amqp`, `sqs`.
    fn kind(&self) -> &'static str;

    fn write<'a>(
        &'a self,
        batch: &'a FailedBatch<'a>,
    ) -> BoxFuture<'a, Result<(), DeadLetterError>>;
}

#[derive(Debug, thiserror::Error)]
#[error("{kind} dead-letter sink failed to write {records} record(s): {message}")]
pub struct DeadLetterError {
    pub kind: &'static str,
    pub records: usize,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::ack::AckHandle;

    fn record(json: &str) -> Record {
        Record::new(
            Bytes::copy_from_slice(json.as_bytes()),
            SystemTime::UNIX_EPOCH,
            AckHandle::detached(),
        )
    }

    #[test]
    fn async_shape_carries_request_and_response_payloads() {
        let records = [record(r#"{"a":1}"#)];
        let envelope = Envelope::records();
        let response = ResponseContext {
            status_code: 200,
            executed_version: None,
            function_error: Some("Unhandled".into()),
            payload: Bytes::from_static(br#"{"errorMessage":"boom"}"#),
        };
        let batch = FailedBatch {
            pipeline: "p",
            function_arn: "arn:aws:lambda:us-east-1:123456789012:function:f:$LATEST",
            family: Family::Notification,
            condition: Condition::RetriesExhausted,
            invoke_count: 3,
            request_id: Some("req-1"),
            response: Some(&response),
            envelope: &envelope,
            records: &records,
            batch_info: None,
            timestamp: DateTime::UNIX_EPOCH,
        };

        let value: Value = serde_json::from_str(&batch.on_failure_record(true)).expect("JSON");

        assert_eq!(value["version"], "1.0");
        assert_eq!(value["timestamp"], "1970-01-01T00:00:00.000Z");
        assert_eq!(value["requestContext"]["condition"], "RetriesExhausted");
        assert_eq!(value["requestContext"]["approximateInvokeCount"], 3);
        assert_eq!(value["requestContext"]["requestId"], "req-1");
        assert_eq!(value["requestPayload"]["Records"][0]["a"], 1);
        assert_eq!(value["responseContext"]["statusCode"], 200);
        assert_eq!(value["responseContext"]["executedVersion"], "$LATEST");
        assert_eq!(value["responseContext"]["functionError"], "Unhandled");
        assert_eq!(value["responsePayload"]["errorMessage"], "boom");
    }

    struct Info;

    impl BatchInfo for Info {
        fn field_name(&self) -> &'static str {
            "DDBStreamBatchInfo"
        }

        fn describe(&self, records: &[Record], _: usize) -> Value {
            serde_json::json!({ "batchSize": records.len() })
        }
    }

    #[test]
    fn stream_shape_describes_the_batch_and_omits_response_when_never_invoked() {
        let records = [record("{}"), record("{}")];
        let envelope = Envelope::records();
        let batch = FailedBatch {
            pipeline: "p",
            function_arn: "arn",
            family: Family::Stream,
            condition: Condition::RecordAgeExceeded,
            invoke_count: 0,
            request_id: None,
            response: None,
            envelope: &envelope,
            records: &records,
            batch_info: Some(&Info),
            timestamp: DateTime::UNIX_EPOCH,
        };

        let with: Value = serde_json::from_str(&batch.on_failure_record(true)).expect("JSON");
        let without: Value = serde_json::from_str(&batch.on_failure_record(false)).expect("JSON");

        assert_eq!(with["requestContext"]["condition"], "RecordAgeExceeded");
        assert_eq!(with["DDBStreamBatchInfo"]["batchSize"], 2);
        assert!(with.get("responseContext").is_none());
        assert_eq!(with["payload"]["Records"].as_array().map(Vec::len), Some(2));
        assert!(without.get("payload").is_none());
        assert!(without.get("requestPayload").is_none());
    }

    #[test]
    fn embedded_bytes_keep_their_text() {
        let raw = Bytes::from_static(br#"{"z":1,"a":123456789012345678901234567890,"f":0.10}"#);
        let embedded = serde_json::to_string(&Embedded::new(&raw)).expect("serializes");
        assert_eq!(embedded.as_bytes(), &raw[..]);

        let text = serde_json::to_string(&Embedded::new(&Bytes::from_static(b"Task timed out")));
        assert_eq!(text.expect("serializes"), r#""Task timed out""#);
        let empty = serde_json::to_string(&Embedded::new(&Bytes::new()));
        assert_eq!(empty.expect("serializes"), "null");

        let deep = Bytes::from(format!("{}{}", "[".repeat(500), "]".repeat(500)));
        let deep = serde_json::to_string(&Embedded::new(&deep)).expect("serializes");
        assert!(deep.starts_with("\"[[["), "deep nesting is kept as text");
    }
}
