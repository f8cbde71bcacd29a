//! Golden fixtures: AWS's published sample events (copied from the reference,
//! section 1) rebuilt through our envelopes from their records must come out
//! equal, field by field, and parse into the `aws_lambda_events` types handlers
//! use.

use std::time::SystemTime;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde_json::Value;
use trigger_bridge_sdk::{AckHandle, Envelope, GroupKey, Record};

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("fixture exists");
    serde_json::from_str(&text).expect("fixture is JSON")
}

fn record(value: &Value, group: Option<&str>) -> Record {
    let record = Record::new(
        Bytes::from(value.to_string()),
        SystemTime::now(),
        AckHandle::detached(),
    );
    match group {
        Some(g) => record.with_group(GroupKey::new(g)),
        None => record,
    }
}

/// Rebuilds `sample` from its records and checks it against the original and
/// against the `aws_lambda_events` type `T`.
fn rebuilt<T: DeserializeOwned>(envelope: &Envelope, records: &[Record], sample: &Value) -> T {
    let bytes = envelope.encode(records, 0);
    let ours: Value = serde_json::from_slice(&bytes).expect("our envelope is JSON");
    assert_eq!(&ours, sample, "rebuilt event equals AWS's sample");
    serde_json::from_slice(&bytes).expect("our envelope parses into the aws_lambda_events type")
}

fn list_records(sample: &Value) -> Vec<Record> {
    sample["Records"]
        .as_array()
        .expect("sample has Records")
        .iter()
        .map(|r| record(r, None))
        .collect()
}

/// The records of a map of record arrays, each filed under its key.
fn grouped_records(map: &Value) -> Vec<Record> {
    map.as_object()
        .expect("a map of record arrays")
        .iter()
        .flat_map(|(key, list)| {
            list.as_array()
                .expect("a record array")
                .iter()
                .map(|r| record(r, Some(key)))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn s3() {
    let sample = fixture("s3");
    let event: aws_lambda_events::event::s3::S3Event =
        rebuilt(&Envelope::records(), &list_records(&sample), &sample);
    assert_eq!(
        event.records[0].s3.object.key.as_deref(),
        Some("photos/red+flower.jpg")
    );
}

#[test]
fn sns() {
    let sample = fixture("sns");
    let event: aws_lambda_events::event::sns::SnsEvent =
        rebuilt(&Envelope::records(), &list_records(&sample), &sample);
    assert_eq!(event.records[0].sns.message, "Hello from SNS!");
}

#[test]
fn dynamodb() {
    let sample = fixture("dynamodb");
    let event: aws_lambda_events::event::dynamodb::Event =
        rebuilt(&Envelope::records(), &list_records(&sample), &sample);
    assert_eq!(event.records[0].event_name, "MODIFY");
}

#[test]
fn sqs() {
    let sample = fixture("sqs");
    let event: aws_lambda_events::event::sqs::SqsEvent =
        rebuilt(&Envelope::records(), &list_records(&sample), &sample);
    assert_eq!(event.records[0].body.as_deref(), Some("Test message."));
}

#[test]
fn kinesis() {
    let sample = fixture("kinesis");
    let event: aws_lambda_events::event::kinesis::KinesisEvent =
        rebuilt(&Envelope::records(), &list_records(&sample), &sample);
    assert_eq!(event.records[0].kinesis.partition_key, "1");
}

#[test]
fn eventbridge_schedule() {
    let sample = fixture("eventbridge");
    let event: aws_lambda_events::event::eventbridge::EventBridgeEvent =
        rebuilt(&Envelope::single(), &[record(&sample, None)], &sample);
    assert_eq!(event.detail_type, "Scheduled Event");
}

#[test]
fn kafka_self_managed() {
    let sample = fixture("kafka");
    let servers = sample["bootstrapServers"].as_str().expect("servers");
    let records = grouped_records(&sample["records"]);
    let event: aws_lambda_events::event::kafka::KafkaEvent =
        rebuilt(&Envelope::kafka_self_managed(servers), &records, &sample);
    assert_eq!(event.records["mytopic-0"][0].offset, 15);
}

#[test]
fn rabbitmq() {
    let sample = fixture("rabbitmq");
    let arn = sample["eventSourceArn"].as_str().expect("arn");
    let records = grouped_records(&sample["rmqMessagesByQueue"]);
    let event: aws_lambda_events::event::rabbitmq::RabbitMqEvent =
        rebuilt(&Envelope::rabbitmq(arn), &records, &sample);
    assert!(event.messages_by_queue.contains_key("pizzaQueue::/"));
}
