//! An in-process source for engine tests: a queue that survives connector
//! restarts, so "unacknowledged records come again" can be shown without a
//! broker. Connector tests use their real broker instead.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::SystemTime,
};

use bytes::Bytes;
use futures::{FutureExt, future::BoxFuture};
use serde_json::Value;
use tokio::sync::Notify;

use crate::{
    Ack, Acknowledgements, Connector, ConnectorError, ItemId, OrderingKey, Outcome, Record,
    SourceContext, SourceDescriptor,
};

/// One message of the queue.
#[derive(Debug, Clone)]
pub struct Message {
    pub id: u64,
    /// The record's JSON, as the connector would serialize it.
    pub record: Value,
    pub ordering_key: Option<String>,
    pub item_id: Option<String>,
    pub entered_at: SystemTime,
    /// Times it was handed to a connector.
    pub deliveries: u32,
}

#[derive(Default)]
struct State {
    next_id: u64,
    waiting: VecDeque<Message>,
    unacked: HashMap<u64, Message>,
    /// Final outcomes in the order the connector applied them.
    settled: Vec<(u64, Outcome)>,
}

/// A queue shared by every connector made from it.
#[derive(Clone, Default)]
pub struct MemoryQueue {
    state: Arc<Mutex<State>>,
    arrived: Arc<Notify>,
}

impl std::fmt::Debug for MemoryQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryQueue").finish_non_exhaustive()
    }
}

impl MemoryQueue {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Enqueues a record; returns its id.
    pub fn push(&self, record: Value) -> u64 {
        self.push_message(record, None, None, SystemTime::now())
    }

    /// Enqueues a record with an ordering key, a partial-batch identifier and
    /// an arrival time.
    pub fn push_message(
        &self,
        record: Value,
        ordering_key: Option<&str>,
        item_id: Option<&str>,
        entered_at: SystemTime,
    ) -> u64 {
        let mut state = self.lock();
        let id = state.next_id;
        state.next_id += 1;
        state.waiting.push_back(Message {
            id,
            record,
            ordering_key: ordering_key.map(str::to_owned),
            item_id: item_id.map(str::to_owned),
            entered_at,
            deliveries: 0,
        });
        drop(state);
        self.arrived.notify_one();
        id
    }

    /// A connector reading this queue, delivering in `descriptor`'s shape.
    pub fn connector(&self, descriptor: SourceDescriptor) -> MemorySource {
        MemorySource {
            queue: self.clone(),
            descriptor,
        }
    }

    /// Final outcomes in the order they were applied.
    pub fn settled(&self) -> Vec<(u64, Outcome)> {
        self.lock().settled.clone()
    }

    /// Messages without a final outcome: waiting or handed out.
    pub fn pending(&self) -> usize {
        let state = self.lock();
        state.waiting.len() + state.unacked.len()
    }

    /// Messages handed to a connector and not yet settled.
    pub fn unacked(&self) -> usize {
        self.lock().unacked.len()
    }

    /// How often message `id` was handed to a connector.
    pub fn deliveries(&self, id: u64) -> u32 {
        let state = self.lock();
        state
            .unacked
            .get(&id)
            .or_else(|| state.waiting.iter().find(|m| m.id == id))
            .map_or(0, |m| m.deliveries)
    }

    fn next(&self) -> Option<Message> {
        let mut state = self.lock();
        let mut message = state.waiting.pop_front()?;
        message.deliveries += 1;
        state.unacked.insert(message.id, message.clone());
        Some(message)
    }

    fn apply(&self, ack: Ack) {
        let mut state = self.lock();
        let Some(message) = state.unacked.remove(&ack.token) else {
            return;
        };
        if ack.outcome.is_final() {
            state.settled.push((ack.token, ack.outcome));
        } else {
            // Redelivery comes first, as a broker requeues at the head.
            state.waiting.push_front(message);
            drop(state);
            self.arrived.notify_one();
        }
    }

    /// What a crash leaves behind: everything handed out comes again.
    pub fn requeue_unacked(&self) {
        let mut state = self.lock();
        let mut unacked: Vec<Message> = state.unacked.drain().map(|(_, m)| m).collect();
        unacked.sort_by_key(|m| std::cmp::Reverse(m.id));
        for message in unacked {
            state.waiting.push_front(message);
        }
    }
}

/// The connector of a [`MemoryQueue`].
pub struct MemorySource {
    queue: MemoryQueue,
    descriptor: SourceDescriptor,
}

impl Connector for MemorySource {
    fn descriptor(&self) -> SourceDescriptor {
        self.descriptor.clone()
    }

    fn run(
        self: Box<Self>,
        context: SourceContext,
    ) -> BoxFuture<'static, Result<(), ConnectorError>> {
        async move { self.consume(context).await }.boxed()
    }
}

impl MemorySource {
    async fn consume(self, context: SourceContext) -> Result<(), ConnectorError> {
        let (acks, mut ack_rx) = Acknowledgements::channel();
        context.status.set_connected(true);
        loop {
            let message = tokio::select! {
                biased;
                Some(ack) = ack_rx.recv() => {
                    self.queue.apply(ack);
                    continue;
                }
                () = context.shutdown.stopping() => break,
                message = self.wait_next() => message,
            };
            let record = self.record(&message, &acks);
            tokio::select! {
                sent = context.records.send(record) => {
                    if sent.is_err() {
                        break;
                    }
                }
                () = context.shutdown.stopping() => break,
            }
        }

        // Keep applying acks until every record handed out is settled.
        drop(acks);
        loop {
            tokio::select! {
                biased;
                Some(ack) = ack_rx.recv() => self.queue.apply(ack),
                () = context.shutdown.drained() => break,
            }
        }
        while let Ok(ack) = ack_rx.try_recv() {
            self.queue.apply(ack);
        }
        context.status.set_connected(false);
        Ok(())
    }

    async fn wait_next(&self) -> Message {
        loop {
            let arrived = self.queue.arrived.notified();
            if let Some(message) = self.queue.next() {
                return message;
            }
            arrived.await;
        }
    }

    fn record(&self, message: &Message, acks: &Acknowledgements) -> Record {
        let payload = Bytes::from(message.record.to_string());
        let mut record = Record::new(payload, message.entered_at, acks.handle(message.id));
        if let Some(key) = &message.ordering_key {
            record = record.with_ordering_key(OrderingKey::new(key.as_str()));
        }
        if let Some(id) = &message.item_id {
            record = record.with_item_id(ItemId::Text(id.as_str().into()));
        }
        record
    }
}
