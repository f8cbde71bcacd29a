//! Delivery of one batch, from its first invocation to every record's final
//! outcome: retries with backoff, throttles, bisection, partial batch
//! responses, record age, and the dead-letter sink.
//!
//! A batch is worked on as a stack of parts. A part is a run of the batch's
//! records that share one retry history; bisection and partial failures make
//! new parts. The left part is always finished before the right one, so on an
//! ordered pipeline records are settled in source order.

use std::{future::Future, sync::Arc, time::Duration};

use bytes::Bytes;
use chrono::Utc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, warn};
use trigger_bridge_sdk::{
    Condition, DeadLetterSink, FailedBatch, Outcome, Record, SourceDescriptor, SourceStatus,
    time::Clock,
};

use super::{
    concurrency::Limits,
    partial::{self, ItemFailures},
    policy::Policy,
};
use crate::{
    invoke::{InvokeOutcome, Invoker, Response},
    metrics::PipelineMetrics,
};

/// Something that invokes a function: the HTTP [`Invoker`], or an in-process
/// double in tests that need paused time.
pub trait Invoke: Send + Sync + 'static {
    fn invoke(&self, event: Bytes) -> impl Future<Output = InvokeOutcome> + Send;

    /// The qualified ARN on-failure records name.
    fn function_arn(&self) -> &str;
}

impl Invoke for Invoker {
    fn invoke(&self, event: Bytes) -> impl Future<Output = InvokeOutcome> + Send {
        Invoker::invoke(self, event)
    }

    fn function_arn(&self) -> &str {
        Invoker::function_arn(self)
    }
}

/// What every delivery of one pipeline shares.
pub struct Shared<I> {
    pub pipeline: Arc<str>,
    pub function: Arc<str>,
    pub invoker: I,
    pub policy: Policy,
    pub limits: Limits,
    /// The function's reserved concurrency is 0: nothing may be invoked.
    pub disabled: bool,
    pub source: SourceDescriptor,
    /// Whether the source is connected, as its connector reports it.
    pub status: SourceStatus,
    pub dead_letter: Option<Arc<dyn DeadLetterSink>>,
    pub metrics: PipelineMetrics,
    pub clock: Clock,
    /// Set when shutdown begins: no new invocation starts after it.
    pub stopping: CancellationToken,
}

/// Records sharing one retry history.
struct Part {
    records: Vec<Record>,
    /// Failed invocations that used up attempts.
    failures: u32,
    /// Invocations made, for `approximateInvokeCount`.
    invokes: u32,
    /// Consecutive unsuccessful invocations: the backoff exponent.
    waits: u32,
    /// The last answer, boxed to keep parts small as they move around.
    last: Option<Box<Response>>,
    /// The envelope, encoded once and reused by retries.
    event: Option<Bytes>,
}

impl Part {
    fn new(records: Vec<Record>) -> Self {
        Self {
            records,
            failures: 0,
            invokes: 0,
            waits: 0,
            last: None,
            event: None,
        }
    }

    /// A part of other records with this part's history.
    fn sibling(&self, records: Vec<Record>) -> Self {
        Self {
            records,
            failures: self.failures,
            invokes: self.invokes,
            waits: 0,
            last: self.last.clone(),
            event: None,
        }
    }

    fn halves(mut self) -> (Part, Part) {
        let right = self.records.split_off(self.records.len() / 2);
        let right = self.sibling(right);
        self.event = None;
        self.waits = 0;
        (self, right)
    }

    fn settle(self, outcome: &Outcome) {
        for record in self.records {
            record.settle(outcome.clone());
        }
    }
}

/// How working on a part ended.
enum Flow {
    Done,
    Split(Part, Part),
    /// Shutdown began; the part's records are left for redelivery.
    Stopped,
}

/// Delivers `records` (one batch) and settles each of them, unless shutdown
/// comes first: then unsettled records are dropped, which reports them for
/// redelivery.
pub async fn deliver<I: Invoke>(shared: &Shared<I>, records: Vec<Record>) {
    let ordered = records.first().is_some_and(|r| r.ordering_key().is_some());
    // Parts still to do, the next on top; allocated only when a batch splits.
    let mut stack = Vec::new();
    let mut next = Some(Part::new(records));
    while let Some(part) = next.take().or_else(|| stack.pop()) {
        let flow = if shared.disabled {
            dead_letter(shared, part, Condition::ZeroReservedConcurrency).await
        } else if let Some(condition) = undeliverable(shared, &part) {
            dead_letter(shared, part, condition).await
        } else {
            run(shared, part, ordered).await
        };
        match flow {
            Flow::Done => {}
            Flow::Split(left, right) => {
                stack.push(right);
                stack.push(left);
            }
            Flow::Stopped => return,
        }
    }
}

/// A lone record that can never be invoked, and why.
fn undeliverable<I: Invoke>(shared: &Shared<I>, part: &Part) -> Option<Condition> {
    match part.records.as_slice() {
        [record] => shared.policy.undeliverable(&shared.source.envelope, record),
        _ => None,
    }
}

/// Invokes `part` until it is delivered, dead-lettered or split.
async fn run<I: Invoke>(shared: &Shared<I>, mut part: Part, ordered: bool) -> Flow {
    loop {
        if shared.stopping.is_cancelled() {
            return Flow::Stopped;
        }
        part = match expire(shared, part).await {
            Ok(part) => part,
            Err(flow) => return flow,
        };
        if part.records.is_empty() {
            return Flow::Done;
        }
        let Some(outcome) = invoke(shared, &mut part).await else {
            return Flow::Stopped;
        };

        let retry_after = match outcome {
            InvokeOutcome::Delivered(response) => {
                match item_failures(shared, part, response, ordered) {
                    Ok(()) => return Flow::Done,
                    Err(failed) => part = failed,
                }
                // The records the function named are retried whole: Lambda
                // bisects only on function errors.
                part = match function_failed(shared, part, false).await {
                    Ok(p) => p,
                    Err(flow) => return flow,
                };
                continue;
            }
            InvokeOutcome::FunctionError(response) => {
                log_function_error(shared, &part, &response);
                part.last = Some(Box::new(response));
                part = match function_failed(shared, part, shared.policy.bisect_on_error).await {
                    Ok(p) => p,
                    Err(flow) => return flow,
                };
                continue;
            }
            InvokeOutcome::Throttled {
                retry_after,
                response,
            } => {
                shared.metrics.throttles.inc();
                part.last = Some(Box::new(response));
                retry_after
            }
            InvokeOutcome::Retryable { reason, response } => {
                warn!(
                    pipeline = %shared.pipeline,
                    function = %shared.function,
                    %reason,
                    records = part.records.len(),
                    "Function unavailable; retrying"
                );
                if let Some(response) = response {
                    part.last = Some(Box::new(response));
                }
                None
            }
            InvokeOutcome::Permanent { reason, response } => {
                error!(
                    pipeline = %shared.pipeline,
                    function = %shared.function,
                    status = response.status,
                    %reason,
                    "Invocation rejected"
                );
                part.last = Some(Box::new(response));
                part.failures += 1;
                if part.failures >= shared.policy.max_attempts {
                    return dead_letter(shared, part, Condition::RetriesExhausted).await;
                }
                None
            }
            InvokeOutcome::InvalidEvent(response) => {
                part.last = Some(Box::new(response));
                if part.records.len() > 1 {
                    // One malformed record spoils its envelope: isolate it.
                    let (left, right) = part.halves();
                    return Flow::Split(left, right);
                }
                warn!(
                    pipeline = %shared.pipeline,
                    function = %shared.function,
                    "The function cannot read a record as JSON"
                );
                return dead_letter(shared, part, Condition::RetriesExhausted).await;
            }
            InvokeOutcome::TooLarge(response) => {
                part.last = Some(Box::new(response));
                if part.records.len() > 1 {
                    // Too large is not the records' fault: no attempt is used up.
                    let (left, right) = part.halves();
                    return Flow::Split(left, right);
                }
                return dead_letter(shared, part, Condition::PayloadTooLarge).await;
            }
        };
        if let Err(flow) = back_off(shared, &mut part, retry_after).await {
            return flow;
        }
    }
}

/// Settles what the function processed. `Err` holds the records it reported
/// failed (all of them when its answer is malformed), to retry.
fn item_failures<I: Invoke>(
    shared: &Shared<I>,
    mut part: Part,
    response: Response,
    ordered: bool,
) -> Result<(), Part> {
    if !shared.policy.report_batch_item_failures {
        part.settle(&Outcome::Delivered);
        return Ok(());
    }
    let failed = match partial::parse(&response.body, &part.records) {
        ItemFailures::None => {
            part.settle(&Outcome::Delivered);
            return Ok(());
        }
        ItemFailures::Some(failed) => failed,
        ItemFailures::Invalid(reason) => {
            warn!(
                pipeline = %shared.pipeline,
                function = %shared.function,
                reason,
                "Malformed partial batch response; failing the whole batch"
            );
            part.last = Some(Box::new(response));
            return Err(part);
        }
    };
    debug!(
        pipeline = %shared.pipeline,
        failed = failed.len(),
        records = part.records.len(),
        "Function reported failed records"
    );
    part.last = Some(Box::new(response));
    let records = std::mem::take(&mut part.records);
    let (done, retry) = split_failed(records, &failed, ordered);
    for record in done {
        record.settle(Outcome::Delivered);
    }
    part.records = retry;
    part.event = None;
    Err(part)
}

/// Splits a batch by the indices the function reported failed. On an ordered
/// source everything from the first failure on is retried, as Lambda resumes
/// a stream from its lowest failed sequence number.
fn split_failed(
    records: Vec<Record>,
    failed: &[usize],
    ordered: bool,
) -> (Vec<Record>, Vec<Record>) {
    if ordered {
        let mut records = records;
        let first = failed.first().copied().unwrap_or(records.len());
        let retry = records.split_off(first.min(records.len()));
        return (records, retry);
    }
    let mut done = Vec::with_capacity(records.len() - failed.len());
    let mut retry = Vec::with_capacity(failed.len());
    let mut failed = failed.iter().peekable();
    for (i, record) in records.into_iter().enumerate() {
        if failed.next_if_eq(&&i).is_some() {
            retry.push(record);
        } else {
            done.push(record);
        }
    }
    (done, retry)
}

/// A function error on `part`: split it when bisecting, else use up an
/// attempt and back off, or dead-letter it once attempts run out.
async fn function_failed<I: Invoke>(
    shared: &Shared<I>,
    mut part: Part,
    bisect: bool,
) -> Result<Part, Flow> {
    if bisect && part.records.len() > 1 {
        // Splits do not use attempts up, as with Lambda's BisectBatchOnFunctionError.
        let (left, right) = part.halves();
        return Err(Flow::Split(left, right));
    }
    part.failures += 1;
    if part.failures >= shared.policy.max_attempts {
        return Err(dead_letter(shared, part, Condition::RetriesExhausted).await);
    }
    back_off(shared, &mut part, None).await?;
    Ok(part)
}

/// Waits before the next attempt, unless shutdown begins first.
async fn back_off<I: Invoke>(
    shared: &Shared<I>,
    part: &mut Part,
    retry_after: Option<Duration>,
) -> Result<(), Flow> {
    let delay = shared
        .policy
        .backoff
        .wait(part.waits, retry_after, &mut rand::rng());
    part.waits = part.waits.saturating_add(1);
    debug!(
        pipeline = %shared.pipeline,
        delay_ms = delay.as_millis() as u64,
        records = part.records.len(),
        "Backing off before the next attempt"
    );
    tokio::select! {
        () = tokio::time::sleep(delay) => Ok(()),
        () = shared.stopping.cancelled() => Err(Flow::Stopped),
    }
}

/// Dead-letters the records of `part` that outlived `max_record_age` and
/// returns the rest.
async fn expire<I: Invoke>(shared: &Shared<I>, mut part: Part) -> Result<Part, Flow> {
    let Some(max_age) = shared.policy.max_record_age else {
        return Ok(part);
    };
    let too_old = |r: &Record| shared.clock.age(r.entered_at()) > max_age;
    if !part.records.iter().any(too_old) {
        return Ok(part);
    }
    let (expired, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut part.records)
        .into_iter()
        .partition(|r| too_old(r));
    let expired_part = part.sibling(expired);
    part.records = kept;
    part.event = None;
    match dead_letter(shared, expired_part, Condition::RecordAgeExceeded).await {
        Flow::Stopped => Err(Flow::Stopped),
        _ => Ok(part),
    }
}

/// Decrements the in-flight gauge even when a delivery is aborted mid-call.
struct InFlight<'a>(&'a prometheus_client::metrics::gauge::Gauge);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// One invocation of `part`, permits held only while it is in flight.
/// `None` when shutdown began before a permit was free.
async fn invoke<I: Invoke>(shared: &Shared<I>, part: &mut Part) -> Option<InvokeOutcome> {
    let permits = tokio::select! {
        biased;
        () = shared.stopping.cancelled() => return None,
        permits = shared.limits.acquire() => permits,
    };
    let envelope = &shared.source.envelope;
    let event = part
        .event
        .get_or_insert_with(|| {
            let size = part.records.iter().map(|r| r.size() + 1).sum::<usize>() + 64;
            envelope.encode(&part.records, size)
        })
        .clone();

    let metrics = &shared.metrics;
    if part.invokes > 0 {
        metrics.retries.inc();
    }
    part.invokes += 1;
    metrics.batch_records.observe(part.records.len() as f64);
    metrics.batch_bytes.observe(event.len() as f64);
    metrics.in_flight.inc();
    let in_flight = InFlight(&metrics.in_flight);
    let started = Instant::now();

    let outcome = shared.invoker.invoke(event).await;

    metrics
        .invoke_duration
        .observe(started.elapsed().as_secs_f64());
    drop(in_flight);
    drop(permits);
    outcome_counter(metrics, &outcome).inc();
    Some(outcome)
}

fn outcome_counter<'a>(
    metrics: &'a PipelineMetrics,
    outcome: &InvokeOutcome,
) -> &'a prometheus_client::metrics::counter::Counter {
    match outcome {
        InvokeOutcome::Delivered(_) => &metrics.delivered,
        InvokeOutcome::FunctionError(_) => &metrics.function_error,
        InvokeOutcome::Throttled { .. } => &metrics.throttled,
        InvokeOutcome::Retryable { .. } => &metrics.retryable,
        InvokeOutcome::Permanent { .. } => &metrics.permanent,
        InvokeOutcome::TooLarge(_) => &metrics.too_large,
        InvokeOutcome::InvalidEvent(_) => &metrics.invalid_event,
    }
}

fn log_function_error<I: Invoke>(shared: &Shared<I>, part: &Part, response: &Response) {
    let info = response.error_info();
    warn!(
        pipeline = %shared.pipeline,
        function = %shared.function,
        error_type = info.error_type.as_deref().unwrap_or("unknown"),
        records = part.records.len(),
        attempt = part.failures + 1,
        "Function error"
    );
    // The message may quote the payload: debug only.
    debug!(
        pipeline = %shared.pipeline,
        error_message = info.message.as_deref().unwrap_or(""),
        "Function error message"
    );
}

/// Writes `part` to the dead-letter sink and settles its records, or settles
/// them as failed when the pipeline has no sink. A sink that fails is tried
/// again until it succeeds or shutdown begins: the records stay unsettled,
/// so nothing is acknowledged before it is safe.
async fn dead_letter<I: Invoke>(shared: &Shared<I>, mut part: Part, condition: Condition) -> Flow {
    let records = part.records.len();
    let Some(sink) = &shared.dead_letter else {
        error!(
            pipeline = %shared.pipeline,
            function = %shared.function,
            %condition,
            records,
            "Records failed and the pipeline has no dead-letter sink"
        );
        shared.metrics.failed.get(condition).inc_by(records as u64);
        part.settle(&Outcome::Failed(condition));
        return Flow::Done;
    };

    let response = part.last.as_ref().map(|r| r.context());
    let batch = FailedBatch {
        pipeline: &shared.pipeline,
        function_arn: shared.invoker.function_arn(),
        family: shared.source.family,
        condition,
        invoke_count: part.invokes,
        request_id: part.last.as_ref().and_then(|r| r.request_id.as_deref()),
        response: response.as_ref(),
        envelope: &shared.source.envelope,
        records: &part.records,
        batch_info: shared.source.batch_info.as_deref(),
        timestamp: Utc::now(),
    };
    loop {
        match sink.write(&batch).await {
            Ok(()) => break,
            Err(e) => {
                shared.metrics.dead_letter_errors.inc();
                error!(
                    pipeline = %shared.pipeline,
                    error = %e,
                    "Dead-letter write failed; retrying"
                );
                let delay = shared
                    .policy
                    .backoff
                    .wait(part.waits, None, &mut rand::rng());
                part.waits = part.waits.saturating_add(1);
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = shared.stopping.cancelled() => return Flow::Stopped,
                }
            }
        }
    }

    error!(
        pipeline = %shared.pipeline,
        function = %shared.function,
        %condition,
        records,
        sink = sink.kind(),
        "Records dead-lettered"
    );
    shared
        .metrics
        .dead_lettered
        .get(condition)
        .inc_by(records as u64);
    part.settle(&Outcome::DeadLettered);
    Flow::Done
}

#[cfg(test)]
#[path = "delivery_tests.rs"]
mod tests;
