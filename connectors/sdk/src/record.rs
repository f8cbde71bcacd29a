//! What a connector yields: one record, already in its Lambda record shape.

use std::{sync::Arc, time::SystemTime};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::{
    ack::{AckHandle, Outcome},
    envelope::GroupKey,
};

/// One record, serialized once by its connector into the JSON of one element of
/// its source's envelope (an S3 record, a Kafka record, a RabbitMQ message).
///
/// The engine never parses `payload`: it measures it, copies it into envelopes
/// and, on failure, into dead-letter records.
#[derive(Debug)]
pub struct Record {
    payload: Bytes,
    ordering_key: Option<OrderingKey>,
    group: Option<GroupKey>,
    item_id: Option<ItemId>,
    entered_at: SystemTime,
    ack: AckHandle,
}

impl Record {
    /// A record whose `payload` is the serialized JSON of one envelope element.
    ///
    /// `entered_at` is when the record entered its source (broker timestamp,
    /// stream arrival time, scheduled time); record age is measured from it.
    pub fn new(payload: Bytes, entered_at: SystemTime, ack: AckHandle) -> Self {
        Self {
            payload,
            ordering_key: None,
            group: None,
            item_id: None,
            entered_at,
            ack,
        }
    }

    /// Records with the same key are delivered in order, one batch at a time.
    pub fn with_ordering_key(mut self, key: OrderingKey) -> Self {
        self.ordering_key = Some(key);
        self
    }

    /// The key of the envelope map this record is filed under (Kafka's
    /// `topic-partition`, RabbitMQ's `queue::vhost`).
    pub fn with_group(mut self, group: GroupKey) -> Self {
        self.group = Some(group);
        self
    }

    /// The identifier a function names in `batchItemFailures` for this record.
    pub fn with_item_id(mut self, id: ItemId) -> Self {
        self.item_id = Some(id);
        self
    }

    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// Serialized size in bytes, as it counts towards the payload cap.
    pub fn size(&self) -> usize {
        self.payload.len()
    }

    pub fn ordering_key(&self) -> Option<&OrderingKey> {
        self.ordering_key.as_ref()
    }

    pub fn group(&self) -> Option<&GroupKey> {
        self.group.as_ref()
    }

    pub fn item_id(&self) -> Option<&ItemId> {
        self.item_id.as_ref()
    }

    pub fn entered_at(&self) -> SystemTime {
        self.entered_at
    }

    /// Reports this record's final outcome to its connector.
    pub fn settle(self, outcome: Outcome) {
        self.ack.settle(outcome);
    }
}

/// Records sharing an ordering key are delivered in source order with at most
/// one batch in flight: a Kafka partition, a DynamoDB shard (or shard and item
/// key bucket when parallelised).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrderingKey(Arc<str>);

impl OrderingKey {
    pub fn new(key: impl Into<Arc<str>>) -> Self {
        Self(key.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for OrderingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a function names a record in a partial batch response.
///
/// See <https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html>
/// and the Kafka variant in the reference, section 3.5.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ItemId {
    /// SQS `messageId`, Kinesis `sequenceNumber`, DynamoDB `SequenceNumber`.
    Text(Arc<str>),
    /// Kafka: `{"partition": "<topic>-<partition>", "offset": <n>}`.
    KafkaOffset { partition: Arc<str>, offset: i64 },
}

/// The sending half of a pipeline's bounded record channel.
///
/// `send` waits while the pipeline is full: that wait is the backpressure that
/// keeps a connector from reading more than its pipeline can hold.
#[derive(Debug, Clone)]
pub struct RecordSender {
    tx: mpsc::Sender<Record>,
}

/// The pipeline has stopped; the record was not taken and will be redelivered.
#[derive(Debug, thiserror::Error)]
#[error("the pipeline stopped taking records")]
pub struct PipelineClosed(pub Record);

impl RecordSender {
    pub fn new(tx: mpsc::Sender<Record>) -> Self {
        Self { tx }
    }

    pub async fn send(&self, record: Record) -> Result<(), PipelineClosed> {
        self.tx.send(record).await.map_err(|e| PipelineClosed(e.0))
    }
}
