use std::time::SystemTime;

use bytes::Bytes;

use super::*;
use crate::ack::AckHandle;

fn record(json: &str, group: Option<GroupKey>) -> Record {
    let record = Record::new(
        Bytes::copy_from_slice(json.as_bytes()),
        SystemTime::UNIX_EPOCH,
        AckHandle::detached(),
    );
    match group {
        Some(g) => record.with_group(g),
        None => record,
    }
}

fn sized(envelope: &Envelope, records: &[Record]) -> (usize, Bytes) {
    let mut sizer = BatchSizer::new(envelope);
    for r in records {
        let predicted = sizer.size_with(envelope, r);
        sizer.add(envelope, r);
        assert_eq!(predicted, sizer.bytes());
    }
    (sizer.bytes(), envelope.encode(records, sizer.bytes()))
}

#[test]
fn records_envelope_size_is_exact() {
    let envelope = Envelope::records();
    for n in 0..4 {
        let records: Vec<_> = (0..n)
            .map(|i| record(&format!(r#"{{"i":{i}}}"#), None))
            .collect();
        let (size, bytes) = sized(&envelope, &records);
        assert_eq!(size, bytes.len());
        let value: serde_json::Value = serde_json::from_slice(&bytes).expect("valid JSON");
        assert_eq!(value["Records"].as_array().map(Vec::len), Some(n));
    }
}

#[test]
fn grouped_envelope_files_records_under_their_keys_in_order() {
    let envelope = Envelope::kafka_self_managed("b1:9092,b2:9092");
    let a = GroupKey::kafka("my-topic", 0);
    let b = GroupKey::kafka("my-topic", 1);
    let records = [
        record(r#"{"offset":1}"#, Some(a.clone())),
        record(r#"{"offset":7}"#, Some(b.clone())),
        record(r#"{"offset":2}"#, Some(a)),
    ];

    let (size, bytes) = sized(&envelope, &records);

    assert_eq!(size, bytes.len());
    let value: serde_json::Value = serde_json::from_slice(&bytes).expect("valid JSON");
    assert_eq!(value["eventSource"], "SelfManagedKafka");
    assert_eq!(value["bootstrapServers"], "b1:9092,b2:9092");
    assert_eq!(value["records"]["my-topic-0"][0]["offset"], 1);
    assert_eq!(value["records"]["my-topic-0"][1]["offset"], 2);
    assert_eq!(value["records"]["my-topic-1"][0]["offset"], 7);
}

#[test]
fn group_keys_are_json_escaped_and_sized_escaped() {
    let envelope = Envelope::rabbitmq("arn:aws:mq:x");
    let records = [record("{}", Some(GroupKey::rabbitmq("q\"1", "/")))];
    let (size, bytes) = sized(&envelope, &records);
    assert_eq!(size, bytes.len());
    let value: serde_json::Value = serde_json::from_slice(&bytes).expect("valid JSON");
    assert!(value["rmqMessagesByQueue"]["q\"1::/"].is_array());
}

#[test]
fn single_envelope_is_the_record_itself() {
    let envelope = Envelope::single();
    let records = [record(r#"{"source":"aws.events"}"#, None)];
    let (size, bytes) = sized(&envelope, &records);
    assert_eq!(size, bytes.len());
    assert_eq!(&bytes[..], br#"{"source":"aws.events"}"#);
    assert_eq!(envelope.max_records(), Some(1));
}

// The envelopes must deserialize into the types handlers use. Records here are
// trimmed copies of AWS's published samples (reference, section 1).

#[test]
fn envelopes_deserialize_into_aws_lambda_events_types() {
    use aws_lambda_events::event::{kafka::KafkaEvent, rabbitmq::RabbitMqEvent, sqs::SqsEvent};

    let sqs = Envelope::records().encode(
        &[record(
            r#"{"messageId":"059f36b4-87a3-44ab-83d2-661975830a7d","receiptHandle":"AQEB","body":"Test message.","attributes":{"ApproximateReceiveCount":"1","SentTimestamp":"1545082649183","SenderId":"AIDAIENQZJOLO23YVJ4VO","ApproximateFirstReceiveTimestamp":"1545082649185"},"messageAttributes":{},"md5OfBody":"e4e68fb7bd0e697a0ae8f1bb342846b3","eventSource":"aws:sqs","eventSourceARN":"arn:aws:sqs:us-east-2:123456789012:my-queue","awsRegion":"us-east-2"}"#,
            None,
        )],
        0,
    );
    let sqs: SqsEvent = serde_json::from_slice(&sqs).expect("SQS event");
    assert_eq!(sqs.records[0].body.as_deref(), Some("Test message."));

    let kafka = Envelope::kafka_self_managed("b-1.demo:9092").encode(
        &[record(
            r#"{"topic":"mytopic","partition":0,"offset":15,"timestamp":1545084650987,"timestampType":"CREATE_TIME","key":"cmVjb3JkS2V5","value":"eyJrZXkiOiJ2YWx1ZSJ9","headers":[{"headerKey":[104,101,-97]}]}"#,
            Some(GroupKey::kafka("mytopic", 0)),
        )],
        0,
    );
    let kafka: KafkaEvent = serde_json::from_slice(&kafka).expect("Kafka event");
    assert_eq!(kafka.event_source.as_deref(), Some("SelfManagedKafka"));
    assert_eq!(kafka.records["mytopic-0"][0].offset, 15);

    let rmq = Envelope::rabbitmq("arn:aws:mq:us-west-2:111122223333:broker:b").encode(
        &[record(
            r#"{"basicProperties":{"contentType":"text/plain","contentEncoding":null,"headers":{"header1":{"bytes":[118,97]}},"deliveryMode":1,"priority":34,"correlationId":null,"replyTo":null,"expiration":"60000","messageId":null,"timestamp":"Jan 1, 1970, 12:33:41 AM","type":null,"userId":"AIDACKCEVSQ6C2EXAMPLE","appId":null,"clusterId":null,"bodySize":80},"redelivered":false,"data":"eyJ0aW1lb3V0IjowfQ=="}"#,
            Some(GroupKey::rabbitmq("pizzaQueue", "/")),
        )],
        0,
    );
    let rmq: RabbitMqEvent = serde_json::from_slice(&rmq).expect("RabbitMQ event");
    assert_eq!(rmq.event_source.as_deref(), Some("aws:rmq"));
    assert!(rmq.messages_by_queue.contains_key("pizzaQueue::/"));
}
