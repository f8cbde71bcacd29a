//! In-process doubles for the dispatcher's paused-time tests. Real HTTP
//! cannot run on paused time (tokio would jump its timers while a socket
//! waits), so timing rules are shown here and wire behaviour in
//! `tests/dispatch.rs` against a real function server.

use std::{
    sync::{Arc, Mutex},
    time::SystemTime,
};

use bytes::Bytes;
use futures::{FutureExt, future::BoxFuture};
use serde_json::Value;
use tokio::{sync::mpsc, time::Instant};
use tokio_util::sync::CancellationToken;
use trigger_bridge_sdk::{
    Ack, Acknowledgements, DeadLetterError, DeadLetterSink, Envelope, FailedBatch, Family, ItemId,
    OrderingKey, Record, SourceDescriptor, time::Clock,
};

use super::{Invoke, Limits, Policy, Shared};
use crate::{
    invoke::{InvokeOutcome, Response},
    metrics::Metrics,
};

/// One call the scripted function received.
#[derive(Debug, Clone)]
pub struct Call {
    pub at: Instant,
    pub event: Value,
}

impl Call {
    /// The `n` field of each record of the event.
    pub fn ns(&self) -> Vec<u64> {
        self.event["Records"]
            .as_array()
            .map(|rs| rs.iter().filter_map(|r| r["n"].as_u64()).collect())
            .unwrap_or_default()
    }
}

type Script = dyn Fn(&Call, usize) -> InvokeOutcome + Send + Sync;

/// A function answering by script: given the call and its index.
#[derive(Clone)]
pub struct Scripted {
    script: Arc<Script>,
    pub calls: Arc<Mutex<Vec<Call>>>,
}

impl Scripted {
    pub fn new(script: impl Fn(&Call, usize) -> InvokeOutcome + Send + Sync + 'static) -> Self {
        Self {
            script: Arc::new(script),
            calls: Arc::default(),
        }
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Invoke for Scripted {
    fn invoke(&self, event: Bytes) -> impl std::future::Future<Output = InvokeOutcome> + Send {
        let call = Call {
            at: Instant::now(),
            event: serde_json::from_slice(&event).unwrap_or(Value::Null),
        };
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        let outcome = (self.script)(&call, calls.len());
        calls.push(call);
        std::future::ready(outcome)
    }

    fn function_arn(&self) -> &str {
        "arn:aws:lambda:us-east-1:000000000000:function:scripted:$LATEST"
    }
}

pub fn response(status: u16, body: &str) -> Response {
    Response {
        status,
        request_id: Some("req".into()),
        executed_version: Some("$LATEST".into()),
        function_error: None,
        body: Bytes::copy_from_slice(body.as_bytes()),
    }
}

pub fn ok() -> InvokeOutcome {
    InvokeOutcome::Delivered(response(200, "{}"))
}

pub fn ok_with(body: &str) -> InvokeOutcome {
    InvokeOutcome::Delivered(response(200, body))
}

pub fn function_error() -> InvokeOutcome {
    let mut r = response(200, r#"{"errorType":"Boom","errorMessage":"no"}"#);
    r.function_error = Some("Unhandled".into());
    InvokeOutcome::FunctionError(r)
}

/// Dead-letter writes kept in memory; fails the first `failures` writes.
#[derive(Clone, Default)]
pub struct MemorySink {
    pub lines: Arc<Mutex<Vec<Value>>>,
    failures: Arc<Mutex<usize>>,
}

impl MemorySink {
    pub fn failing(failures: usize) -> Self {
        Self {
            lines: Arc::default(),
            failures: Arc::new(Mutex::new(failures)),
        }
    }

    pub fn lines(&self) -> Vec<Value> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl DeadLetterSink for MemorySink {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn write<'a>(
        &'a self,
        batch: &'a FailedBatch<'a>,
    ) -> BoxFuture<'a, Result<(), DeadLetterError>> {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let result = if *failures > 0 {
            *failures -= 1;
            Err(DeadLetterError {
                kind: "memory",
                records: batch.records.len(),
                message: "scripted failure".into(),
            })
        } else {
            let line: Value =
                serde_json::from_str(&batch.on_failure_record(true)).expect("JSON record");
            self.lines
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(line);
            Ok(())
        };
        std::future::ready(result).boxed()
    }
}

/// A pipeline's shared state around `invoker`, with a queue-family source
/// and a memory dead-letter sink.
pub fn shared<I: Invoke>(invoker: I, policy: Policy, sink: Option<MemorySink>) -> Arc<Shared<I>> {
    Arc::new(Shared {
        pipeline: "test".into(),
        function: "fn".into(),
        invoker,
        policy,
        limits: Limits::unlimited(),
        disabled: false,
        source: SourceDescriptor {
            family: Family::Queue,
            envelope: Envelope::records(),
            batch_info: None,
        },
        status: Default::default(),
        dead_letter: sink.map(|s| Arc::new(s) as Arc<dyn DeadLetterSink>),
        metrics: Metrics::new().pipeline("test", "fn"),
        clock: Clock::new(),
        stopping: CancellationToken::new(),
    })
}

/// Makes records `{"n": i}` whose acks land in one receiver.
pub struct Records {
    acks: Acknowledgements,
    pub rx: mpsc::UnboundedReceiver<Ack>,
}

impl Records {
    pub fn new() -> Self {
        let (acks, rx) = Acknowledgements::channel();
        Self { acks, rx }
    }

    pub fn make(&self, n: u64) -> Record {
        self.made(n, SystemTime::now(), None)
    }

    pub fn made(&self, n: u64, entered_at: SystemTime, key: Option<&str>) -> Record {
        let payload = Bytes::from(format!(r#"{{"n":{n}}}"#));
        let record = Record::new(payload, entered_at, self.acks.handle(n))
            .with_item_id(ItemId::Text(n.to_string().into()));
        match key {
            Some(k) => record.with_ordering_key(OrderingKey::new(k)),
            None => record,
        }
    }

    pub fn batch(&self, ns: std::ops::Range<u64>) -> Vec<Record> {
        ns.map(|n| self.make(n)).collect()
    }

    /// Every ack received so far.
    pub fn drain(&mut self) -> Vec<Ack> {
        let mut out = Vec::new();
        while let Ok(ack) = self.rx.try_recv() {
            out.push(ack);
        }
        out
    }
}

/// Wraps a function so each call takes `delay` and the most calls in flight
/// at once are counted.
#[derive(Clone)]
pub struct Slow<I> {
    pub inner: I,
    pub delay: std::time::Duration,
    pub in_flight: Arc<std::sync::atomic::AtomicUsize>,
    pub peak: Arc<std::sync::atomic::AtomicUsize>,
}

impl<I> Slow<I> {
    pub fn new(inner: I, delay: std::time::Duration) -> Self {
        Self {
            inner,
            delay,
            in_flight: Arc::default(),
            peak: Arc::default(),
        }
    }

    pub fn peak(&self) -> usize {
        self.peak.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl<I: Invoke> Invoke for Slow<I> {
    fn invoke(&self, event: Bytes) -> impl std::future::Future<Output = InvokeOutcome> + Send {
        use std::sync::atomic::Ordering::SeqCst;
        let now = self.in_flight.fetch_add(1, SeqCst) + 1;
        self.peak.fetch_max(now, SeqCst);
        let delay = self.delay;
        let in_flight = self.in_flight.clone();
        let outcome = self.inner.invoke(event);
        async move {
            tokio::time::sleep(delay).await;
            in_flight.fetch_sub(1, SeqCst);
            outcome.await
        }
    }

    fn function_arn(&self) -> &str {
        self.inner.function_arn()
    }
}
