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
