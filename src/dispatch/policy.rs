//! A pipeline's delivery policy: its config resolved against its source
//! family's defaults and its function's payload cap.

use std::time::Duration;

use trigger_bridge_sdk::{BatchSizer, Envelope, Family};

use super::backoff::Backoff;
use crate::config::{PipelineSpec, defaults};

#[derive(Debug, Clone)]
pub struct Policy {
    /// Most records in one batch.
    pub max_records: usize,
    /// Most envelope bytes in one batch: the function's payload cap.
    pub max_bytes: usize,
    /// How long an open batch waits for more records. Zero: a batch goes out
    /// as soon as its key may have one in flight, with whatever has arrived.
    pub window: Duration,
    /// Invocations a record may fail before it is dead-lettered.
    pub max_attempts: u32,
    pub max_record_age: Option<Duration>,
    pub backoff: Backoff,
    pub bisect_on_error: bool,
    pub report_batch_item_failures: bool,
}

impl Policy {
    /// The policy of `pipeline`, a source of `family` delivering in `envelope`
    /// to a function accepting `max_bytes`.
    pub fn resolve(
        pipeline: &PipelineSpec,
        family: Family,
        envelope: &Envelope,
        max_bytes: usize,
    ) -> Self {
        let family = defaults::family(family);
        let retry = &pipeline.retry;
        let mut max_records = pipeline.batching.max_records.unwrap_or(family.max_records);
        if let Some(cap) = envelope.max_records() {
            max_records = max_records.min(cap);
        }
        Self {
            max_records: max_records.max(1),
            max_bytes,
            window: pipeline.batching.window.unwrap_or(family.window),
            max_attempts: retry.max_attempts.unwrap_or(family.max_attempts).max(1),
            max_record_age: retry.max_record_age.or(family.max_record_age),
            // Config validation refuses shorter delays; embedders get the same
            // floor, so a down function is never hammered.
            backoff: Backoff {
                initial: retry
                    .initial_delay
                    .unwrap_or(defaults::INITIAL_DELAY)
                    .max(defaults::MIN_INITIAL_DELAY),
                max: retry
                    .max_delay
                    .unwrap_or(defaults::MAX_DELAY)
                    .max(defaults::MIN_MAX_DELAY),
            },
            bisect_on_error: retry.bisect_on_error,
            report_batch_item_failures: pipeline.report_batch_item_failures,
        }
    }

    /// A policy for tests and benchmarks: `max_records` a batch, no window,
    /// three attempts, short delays.
    pub fn immediate(max_records: usize) -> Self {
        Self {
            max_records,
            max_bytes: defaults::SYNC_PAYLOAD_BYTES,
            window: Duration::ZERO,
            max_attempts: 3,
            max_record_age: None,
            backoff: Backoff {
                initial: Duration::from_millis(10),
                max: Duration::from_millis(100),
            },
            bisect_on_error: false,
            report_batch_item_failures: false,
        }
    }

    /// Whether the record can never be invoked: over the payload cap, or
    /// empty (no JSON value at all). Such a record travels alone, in its
    /// place in the order, and is dead-lettered without an invocation.
    pub fn undeliverable(
        &self,
        envelope: &Envelope,
        record: &trigger_bridge_sdk::Record,
    ) -> Option<trigger_bridge_sdk::Condition> {
        if record.size() == 0 {
            Some(trigger_bridge_sdk::Condition::RetriesExhausted)
        } else if BatchSizer::new(envelope).size_with(envelope, record) > self.max_bytes {
            Some(trigger_bridge_sdk::Condition::PayloadTooLarge)
        } else {
            None
        }
    }
}
