//! The Lambda event containers that wrap a batch of records, with exact size
//! accounting so batches are cut on the serialized bytes the function receives.
//!
//! Records arrive already serialized; an envelope is written by copying their
//! bytes between a fixed prefix and suffix, never by re-serializing them. The
//! [`BatchSizer`] predicts the written length byte for byte, so the batcher can
//! close a batch before it crosses the payload cap without writing anything.
//!
//! Shapes (reference, section 1.0):
//! - `{"Records":[...]}`: S3, SNS, SQS, DynamoDB Streams, Kinesis.
//! - an object with fixed fields and a map of record arrays: Kafka's `records`
//!   keyed `topic-partition`, RabbitMQ's `rmqMessagesByQueue` keyed `queue::vhost`.
//! - a single object: EventBridge's scheduled event, one record an invocation.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::record::Record;

/// The container a source's records are delivered in.
#[derive(Debug, Clone)]
pub struct Envelope {
    kind: Kind,
    /// Everything before the first record.
    prefix: Bytes,
    /// Everything after the last record.
    suffix: &'static [u8],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    List,
    Grouped,
    Single,
}

impl Envelope {
    /// `{"Records":[...]}` for S3, SNS, SQS, DynamoDB Streams and Kinesis.
    ///
    /// <https://docs.aws.amazon.com/lambda/latest/dg/with-s3.html>
    pub fn records() -> Self {
        Self {
            kind: Kind::List,
            prefix: Bytes::from_static(br#"{"Records":["#),
            suffix: b"]}",
        }
    }

    /// Self-managed Apache Kafka: `eventSource` `SelfManagedKafka`,
    /// `bootstrapServers`, and `records` keyed `topic-partition`.
    ///
    /// <https://docs.aws.amazon.com/lambda/latest/dg/with-kafka.html>
    pub fn kafka_self_managed(bootstrap_servers: &str) -> Self {
        let mut head = Map::new();
        head.insert("eventSource".into(), "SelfManagedKafka".into());
        head.insert("bootstrapServers".into(), bootstrap_servers.into());
        Self::grouped(head, "records")
    }

    /// Amazon MSK: `eventSource` `aws:kafka` with the cluster's `eventSourceArn`.
    ///
    /// <https://docs.aws.amazon.com/lambda/latest/dg/with-msk.html>
    pub fn kafka_msk(event_source_arn: &str, bootstrap_servers: &str) -> Self {
        let mut head = Map::new();
        head.insert("eventSource".into(), "aws:kafka".into());
        head.insert("eventSourceArn".into(), event_source_arn.into());
        head.insert("bootstrapServers".into(), bootstrap_servers.into());
        Self::grouped(head, "records")
    }

    /// Amazon MQ for RabbitMQ: `eventSource` `aws:rmq`, `eventSourceArn`, and
    /// `rmqMessagesByQueue` keyed `queue::vhost`.
    ///
    /// <https://docs.aws.amazon.com/lambda/latest/dg/with-mq.html>
    pub fn rabbitmq(event_source_arn: &str) -> Self {
        let mut head = Map::new();
        head.insert("eventSource".into(), "aws:rmq".into());
        head.insert("eventSourceArn".into(), event_source_arn.into());
        Self::grouped(head, "rmqMessagesByQueue")
    }

    /// The record is the whole event, as EventBridge's scheduled event is.
    /// Batches of such a source hold one record.
    ///
    /// <https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-run-lambda-schedule.html>
    pub fn single() -> Self {
        Self {
            kind: Kind::Single,
            prefix: Bytes::new(),
            suffix: b"",
        }
    }

    /// An object holding `head`'s fields, in their order, then `map_field`: an
    /// object of record arrays keyed by each record's [`GroupKey`].
    pub fn grouped(head: Map<String, Value>, map_field: &str) -> Self {
        let mut prefix = serde_json::to_vec(&Value::Object(head))
            .expect("invariant: a JSON map always serializes");
        // Reopen the object `{...}` to append the map field.
        prefix.pop();
        if prefix.len() > 1 {
            prefix.push(b',');
        }
        let key = serde_json::to_vec(map_field).expect("invariant: a string always serializes");
        prefix.extend_from_slice(&key);
        prefix.extend_from_slice(b":{");
        Self {
            kind: Kind::Grouped,
            prefix: prefix.into(),
            suffix: b"}}",
        }
    }

    /// The most records one envelope can hold, if the shape limits it.
    pub fn max_records(&self) -> Option<usize> {
        (self.kind == Kind::Single).then_some(1)
    }

    /// Writes the envelope of `records` into `out`, in the records' order
    /// (grouped shapes: groups in order of first appearance).
    pub fn write<'a, I>(&self, records: I, out: &mut Vec<u8>)
    where
        I: IntoIterator<Item = &'a Record>,
        I::IntoIter: Clone,
    {
        let records = records.into_iter();
        out.extend_from_slice(&self.prefix);
        match self.kind {
            Kind::List | Kind::Single => write_joined(records, out),
            Kind::Grouped => write_groups(records, out),
        }
        out.extend_from_slice(self.suffix);
    }

    /// The envelope of `records` as one buffer of `size` bytes (from a
    /// [`BatchSizer`]; a wrong size only costs a reallocation).
    pub fn encode<'a, I>(&self, records: I, size: usize) -> Bytes
    where
        I: IntoIterator<Item = &'a Record>,
        I::IntoIter: Clone,
    {
        let mut out = Vec::with_capacity(size);
        self.write(records, &mut out);
        out.into()
    }
}

fn write_joined<'a>(records: impl Iterator<Item = &'a Record>, out: &mut Vec<u8>) {
    for (i, record) in records.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(record.payload());
    }
}

fn write_groups<'a>(records: impl Iterator<Item = &'a Record> + Clone, out: &mut Vec<u8>) {
    let mut groups: Vec<&GroupKey> = Vec::new();
    for record in records.clone() {
        let group = group_of(record);
        if !groups.contains(&group) {
            groups.push(group);
        }
    }
    for (i, group) in groups.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&group.json);
        out.extend_from_slice(b":[");
        write_joined(records.clone().filter(|r| group_of(r) == group), out);
        out.push(b']');
    }
}

static NO_GROUP: std::sync::LazyLock<GroupKey> = std::sync::LazyLock::new(|| GroupKey::new(""));

/// A record without a group in a grouped envelope is filed under `""`; the
/// sizer and the writer agree on that, so sizes stay exact.
fn group_of(record: &Record) -> &GroupKey {
    record.group().unwrap_or(&NO_GROUP)
}

/// The key of the map a grouped envelope files a record under.
#[derive(Debug, Clone)]
pub struct GroupKey {
    text: Arc<str>,
    /// The key as a JSON string literal, quotes included.
    json: Bytes,
}

impl GroupKey {
    pub fn new(text: &str) -> Self {
        let json = serde_json::to_vec(text).expect("invariant: a string always serializes");
        Self {
            text: text.into(),
            json: json.into(),
        }
    }

    /// Kafka's `<topic>-<partition>`.
    pub fn kafka(topic: &str, partition: i32) -> Self {
        Self::new(&format!("{topic}-{partition}"))
    }

    /// RabbitMQ's `<queue>::<virtual host>`.
    pub fn rabbitmq(queue: &str, vhost: &str) -> Self {
        Self::new(&format!("{queue}::{vhost}"))
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl PartialEq for GroupKey {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.text, &other.text) || self.text == other.text
    }
}

impl Eq for GroupKey {}

/// Tracks the exact serialized size of an envelope as records are added.
#[derive(Debug, Clone)]
pub struct BatchSizer {
    bytes: usize,
    records: usize,
    groups: Vec<GroupKey>,
}

impl BatchSizer {
    /// The size of `envelope` holding no records.
    pub fn new(envelope: &Envelope) -> Self {
        Self {
            bytes: envelope.prefix.len() + envelope.suffix.len(),
            records: 0,
            groups: Vec::new(),
        }
    }

    /// Envelope bytes so far.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn records(&self) -> usize {
        self.records
    }

    /// The envelope's size if `record` were added.
    pub fn size_with(&self, envelope: &Envelope, record: &Record) -> usize {
        self.bytes + self.growth(envelope, record)
    }

    pub fn add(&mut self, envelope: &Envelope, record: &Record) {
        self.bytes += self.growth(envelope, record);
        self.records += 1;
        if envelope.kind == Kind::Grouped {
            let group = group_of(record);
            if !self.groups.contains(group) {
                self.groups.push(group.clone());
            }
        }
    }

    fn growth(&self, envelope: &Envelope, record: &Record) -> usize {
        let separator = usize::from(self.records > 0);
        match envelope.kind {
            Kind::List | Kind::Single => separator + record.size(),
            Kind::Grouped => {
                let group = group_of(record);
                if self.groups.contains(group) {
                    1 + record.size()
                } else {
                    // `"key":[` + record + `]`, after a comma unless first.
                    usize::from(!self.groups.is_empty()) + group.json.len() + 3 + record.size()
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
