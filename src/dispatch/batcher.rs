//! The batcher: one task per pipeline that groups records into batches per
//! ordering key and dispatches each batch to a delivery task.
//!
//! A batch closes at `max_records`, before the record that would take its
//! envelope over the payload cap, or when its window ends. With no window, an
//! open batch goes out as soon as its key may have a batch in flight, holding
//! whatever arrived meanwhile: batches grow with load, not with waiting.
//!
//! On an ordered source (records carry an ordering key) a key has at most one
//! batch in flight, so its records are delivered and settled in source order;
//! keys proceed in parallel. Records without a key have no such limit.
//!
//! Memory is bounded by design: the batcher stops receiving from its source
//! while it holds `capacity` records or bytes (open, queued and in-flight
//! batches together). The source's channel is bounded too, so a slow or down
//! function makes the connector wait instead of the bridge buffering.

use std::{
    collections::VecDeque,
    sync::Arc,
    time::{Duration, SystemTime},
};

use rustc_hash::FxHashMap;
use tokio::{
    sync::mpsc,
    task::{self, JoinSet},
    time::Instant,
};
use tracing::{debug, error, warn};
use trigger_bridge_sdk::{BatchSizer, OrderingKey, Record};

use super::delivery::{self, Invoke, Shared};

/// How much a pipeline may hold before it stops taking records, and how many
/// batches it hands to deliveries at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    pub records: usize,
    pub bytes: usize,
    /// Deliveries running at once: the pipeline's concurrency and one more,
    /// ready to go the moment a permit frees. Beyond that, batches stay open
    /// and keep filling instead of queueing for permits half empty.
    pub deliveries: usize,
}

type Key = Option<OrderingKey>;

#[derive(Default)]
struct KeyState {
    open: Option<Open>,
    ready: VecDeque<Closed>,
    in_flight: usize,
    /// Listed in `Batcher::touched`, awaiting a dispatch check.
    touched: bool,
    /// Listed in `Batcher::blocked`, waiting for a delivery to end.
    blocked: bool,
}

impl KeyState {
    fn is_idle(&self) -> bool {
        self.open.is_none() && self.ready.is_empty() && self.in_flight == 0
    }

    fn oldest(&self) -> Option<SystemTime> {
        let open = self.open.iter().flat_map(|o| o.records.first());
        let ready = self.ready.iter().flat_map(|c| c.records.first());
        open.chain(ready).map(Record::entered_at).min()
    }
}

struct Open {
    records: Vec<Record>,
    sizer: BatchSizer,
    generation: u64,
    /// Its window has ended (or there is none): dispatch when the key allows.
    due: bool,
}

impl Open {
    fn close(self) -> Closed {
        Closed {
            bytes: self.sizer.bytes(),
            records: self.records,
        }
    }
}

struct Closed {
    records: Vec<Record>,
    bytes: usize,
}

/// What the batcher remembers of a batch in flight, also when its delivery
/// task panics.
struct Dispatched {
    key: Key,
    records: usize,
    bytes: usize,
    oldest: SystemTime,
}

pub struct Batcher<I> {
    shared: Arc<Shared<I>>,
    capacity: Capacity,
    /// Looked up for every record: a fast hasher, as keys come from our own
    /// connectors, not from whoever writes to the source.
    keys: FxHashMap<Key, KeyState>,
    /// Window deadlines in the order batches opened; as every window has the
    /// same length, that is also deadline order.
    windows: VecDeque<(Instant, Key, u64)>,
    next_generation: u64,
    touched: Vec<Key>,
    /// Keys with a batch to send while `capacity.deliveries` are running, in
    /// the order they became ready.
    blocked: VecDeque<Key>,
    deliveries: JoinSet<()>,
    /// At most `capacity.deliveries` entries.
    dispatched: FxHashMap<task::Id, Dispatched>,
    held_records: usize,
    held_bytes: usize,
}

impl<I: Invoke> Batcher<I> {
    pub fn new(shared: Arc<Shared<I>>, capacity: Capacity) -> Self {
        Self {
            shared,
            capacity,
            keys: FxHashMap::default(),
            windows: VecDeque::new(),
            next_generation: 0,
            touched: Vec::new(),
            blocked: VecDeque::new(),
            deliveries: JoinSet::new(),
            dispatched: FxHashMap::default(),
            held_records: 0,
            held_bytes: 0,
        }
    }

    /// Batches and dispatches records from `source` until the pipeline stops
    /// (then in-flight batches get `grace` to finish) or the source ends (then
    /// everything taken is delivered first).
    pub async fn run(mut self, mut source: mpsc::Receiver<Record>, grace: Duration) {
        let stopping = self.shared.stopping.clone();
        // Made once: building the future anew on every pass costs more than
        // the rest of a pass.
        let stopped = stopping.cancelled();
        tokio::pin!(stopped);
        let mut source_open = true;
        let mut report = tokio::time::interval(Duration::from_secs(1));
        report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

        loop {
            if !source_open && self.keys.is_empty() && self.deliveries.is_empty() {
                break;
            }
            let window = self.windows.front().map(|(deadline, ..)| *deadline);
            tokio::select! {
                biased;
                // A delivery finished: release its key and what it held.
                Some(done) = self.deliveries.join_next_with_id() => self.finished(done),
                // Shutdown: stop taking records.
                () = &mut stopped => break,
                // The oldest open window ended.
                () = sleep_until(window), if window.is_some() => self.end_windows(),
                // New records, while there is room for them.
                record = source.recv(), if source_open && self.has_room() => match record {
                    Some(record) => self.receive(record, &mut source),
                    None => {
                        source_open = false;
                        self.flush();
                    }
                },
                _ = report.tick() => self.report(),
            }
        }

        if stopping.is_cancelled() {
            self.stop(source, grace).await;
        }
    }

    fn has_room(&self) -> bool {
        self.held_records < self.capacity.records && self.held_bytes < self.capacity.bytes
    }

    /// Takes `record` and whatever else is waiting, then dispatches.
    fn receive(&mut self, record: Record, source: &mut mpsc::Receiver<Record>) {
        self.take(record);
        // Batch what is already waiting rather than dispatching one by one.
        let mut budget = self.shared.policy.max_records;
        while budget > 0 && self.has_room() {
            match source.try_recv() {
                Ok(record) => self.take(record),
                Err(_) => break,
            }
            budget -= 1;
        }
        self.dispatch_touched();
    }

    fn take(&mut self, record: Record) {
        self.compact_windows();
        let shared = &self.shared;
        let policy = &shared.policy;
        let envelope = &shared.source.envelope;
        shared.metrics.records_received.inc();
        self.held_records += 1;
        self.held_bytes += record.size();

        let key = record.ordering_key().cloned();
        let state = self.keys.entry(key.clone()).or_default();
        if !state.touched {
            state.touched = true;
            self.touched.push(key.clone());
        }

        // A record that can never be invoked goes out alone, in its place in
        // the order, to be dead-lettered by its delivery.
        if policy.undeliverable(envelope, &record).is_some() {
            if let Some(open) = state.open.take() {
                state.ready.push_back(open.close());
            }
            let bytes = record.size();
            state.ready.push_back(Closed {
                records: vec![record],
                bytes,
            });
            return;
        }
        if let Some(open) = &state.open
            && open.sizer.size_with(envelope, &record) > policy.max_bytes
        {
            let full = state.open.take().map(Open::close);
            state.ready.extend(full);
        }
        let open = state.open.get_or_insert_with(|| {
            let generation = self.next_generation;
            self.next_generation += 1;
            let due = policy.window.is_zero();
            if !due {
                let deadline = after(policy.window);
                self.windows.push_back((deadline, key.clone(), generation));
            }
            Open {
                records: Vec::with_capacity(policy.max_records.min(1024)),
                sizer: BatchSizer::new(envelope),
                generation,
                due,
            }
        });
        open.sizer.add(envelope, &record);
        open.records.push(record);
        if open.records.len() >= policy.max_records {
            let full = state.open.take().map(Open::close);
            state.ready.extend(full);
        }
    }

    /// Drops the deadlines of batches that closed before their window ended.
    /// Without this, full batches of a busy source would leave one entry each
    /// for a whole window: memory growing with throughput × window. Run when
    /// the queue outgrows twice the keys (each has at most one open batch), it
    /// costs O(1) per record amortized and keeps the queue O(keys).
    fn compact_windows(&mut self) {
        if self.windows.len() <= 2 * self.keys.len() + 16 {
            return;
        }
        let keys = &self.keys;
        self.windows.retain(|(_, key, generation)| {
            let open = keys.get(key).and_then(|state| state.open.as_ref());
            open.is_some_and(|open| open.generation == *generation)
        });
    }

    /// Marks every open batch whose window has ended as due.
    fn end_windows(&mut self) {
        let now = Instant::now();
        while let Some((deadline, ..)) = self.windows.front() {
            if *deadline > now {
                break;
            }
            let Some((_, key, generation)) = self.windows.pop_front() else {
                break;
            };
            if let Some(state) = self.keys.get_mut(&key)
                && let Some(open) = &mut state.open
                && open.generation == generation
            {
                open.due = true;
                self.dispatch(&key);
            }
        }
    }

    /// The source ended: every open batch is due.
    fn flush(&mut self) {
        let keys: Vec<Key> = self.keys.keys().cloned().collect();
        for key in keys {
            if let Some(open) = self.keys.get_mut(&key).and_then(|s| s.open.as_mut()) {
                open.due = true;
            }
            self.dispatch(&key);
        }
    }

    fn dispatch_touched(&mut self) {
        for key in std::mem::take(&mut self.touched) {
            if let Some(state) = self.keys.get_mut(&key) {
                state.touched = false;
            }
            self.dispatch(&key);
        }
    }

    /// Starts deliveries of `key`'s batches as far as its ordering and the
    /// pipeline's delivery limit allow.
    fn dispatch(&mut self, key: &Key) {
        loop {
            let room = self.deliveries.len() < self.capacity.deliveries;
            let Some(state) = self.keys.get_mut(key) else {
                return;
            };
            if key.is_some() && state.in_flight > 0 {
                break;
            }
            let due = state.open.as_ref().is_some_and(|o| o.due);
            if state.ready.is_empty() && !due {
                break;
            }
            if !room {
                if !state.blocked {
                    state.blocked = true;
                    self.blocked.push_back(key.clone());
                }
                return;
            }
            let batch = match state.ready.pop_front() {
                Some(batch) => batch,
                None => match state.open.take() {
                    Some(open) => open.close(),
                    None => break,
                },
            };
            state.in_flight += 1;
            self.spawn(key, batch);
        }
        if self.keys.get(key).is_some_and(KeyState::is_idle) {
            self.keys.remove(key);
        }
    }

    /// Hands `batch` of `key` to a new delivery task.
    fn spawn(&mut self, key: &Key, batch: Closed) {
        let oldest = batch
            .records
            .iter()
            .map(Record::entered_at)
            .min()
            .unwrap_or_else(SystemTime::now);
        let dispatched = Dispatched {
            key: key.clone(),
            records: batch.records.len(),
            bytes: batch.records.iter().map(Record::size).sum(),
            oldest,
        };
        debug!(
            pipeline = %self.shared.pipeline,
            key = key.as_ref().map(OrderingKey::as_str),
            records = dispatched.records,
            bytes = batch.bytes,
            "Dispatching batch"
        );
        let shared = self.shared.clone();
        let handle = self
            .deliveries
            .spawn(async move { delivery::deliver(&shared, batch.records).await });
        self.dispatched.insert(handle.id(), dispatched);
    }

    /// Dispatches keys that waited for a delivery to end, oldest first.
    fn unblock(&mut self) {
        while self.deliveries.len() < self.capacity.deliveries {
            let Some(key) = self.blocked.pop_front() else {
                return;
            };
            if let Some(state) = self.keys.get_mut(&key) {
                state.blocked = false;
            }
            self.dispatch(&key);
        }
    }

    /// A delivery task ended: its records are settled (or were dropped for
    /// redelivery if it panicked).
    fn finished(&mut self, done: Result<(task::Id, ()), task::JoinError>) {
        let id = match done {
            Ok((id, ())) => id,
            Err(e) => {
                if e.is_panic() {
                    error!(
                        pipeline = %self.shared.pipeline,
                        "Delivery task panicked; its unsettled records will be redelivered"
                    );
                }
                e.id()
            }
        };
        let Some(batch) = self.dispatched.remove(&id) else {
            return;
        };
        self.held_records -= batch.records;
        self.held_bytes -= batch.bytes;
        if let Some(state) = self.keys.get_mut(&batch.key) {
            state.in_flight -= 1;
        }
        self.dispatch(&batch.key);
        self.unblock();
    }

    /// Publishes the source's connection state and the age of the oldest
    /// record without a final outcome.
    fn report(&self) {
        let metrics = &self.shared.metrics;
        metrics
            .source_connected
            .set(i64::from(self.shared.status.is_connected()));
        let waiting = self.keys.values().filter_map(KeyState::oldest).min();
        let in_flight = self.dispatched.values().map(|d| d.oldest).min();
        let oldest = waiting.into_iter().chain(in_flight).min();
        let age = oldest.map_or(0.0, |t| self.shared.clock.age(t).as_secs_f64());
        metrics.oldest_record_age.set(age);
    }

    /// Phase two of shutdown for this pipeline: what was not dispatched is
    /// dropped (its records come again from the source); deliveries in flight
    /// get `grace` to finish, then are aborted.
    async fn stop(mut self, source: mpsc::Receiver<Record>, grace: Duration) {
        drop(source);
        self.keys.clear();
        self.windows.clear();
        self.blocked.clear();
        let deadline = after(grace);
        while !self.deliveries.is_empty() {
            tokio::select! {
                done = self.deliveries.join_next_with_id() => {
                    if let Some(done) = done {
                        self.finished(done);
                    }
                }
                () = tokio::time::sleep_until(deadline) => {
                    warn!(
                        pipeline = %self.shared.pipeline,
                        in_flight = self.deliveries.len(),
                        "Shutdown grace ran out; unfinished batches will be redelivered"
                    );
                    self.deliveries.shutdown().await;
                    self.dispatched.clear();
                }
            }
        }
    }
}

/// The instant `delay` from now, or a far one when that is beyond the clock.
fn after(delay: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(delay)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 86_400))
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
#[path = "batcher_tests.rs"]
mod tests;
