//! Prometheus metrics, per pipeline and function.
//!
//! Label values are bounded: pipeline and function names come from the config,
//! the rest from fixed sets (`outcome`, `reason`). Never a record key, an error
//! message or a payload.
//!
//! Each pipeline resolves its handles once ([`Metrics::pipeline`]), so the hot
//! path bumps atomics and never looks a label set up.

use std::sync::{Arc, Mutex};

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{
        counter::Counter,
        family::{Family, MetricConstructor},
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::{Registry, Unit},
};
use std::sync::atomic::AtomicU64;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PipelineLabels {
    pipeline: String,
    function: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    pipeline: String,
    function: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    pipeline: String,
    function: String,
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    pipeline: String,
}

#[derive(Debug, Clone)]
struct Buckets(fn() -> Histogram);

impl MetricConstructor<Histogram> for Buckets {
    fn new_metric(&self) -> Histogram {
        (self.0)()
    }
}

type Counters<L> = Family<L, Counter>;
type Histograms = Family<PipelineLabels, Histogram, Buckets>;

/// Every metric the engine exports. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    records_received: Counters<PipelineLabels>,
    invocations: Counters<OutcomeLabels>,
    invoke_duration: Histograms,
    batch_records: Histograms,
    batch_bytes: Histograms,
    retries: Counters<PipelineLabels>,
    throttles: Counters<PipelineLabels>,
    dead_lettered: Counters<ReasonLabels>,
    failed: Counters<ReasonLabels>,
    dead_letter_errors: Counters<PipelineLabels>,
    in_flight: Family<PipelineLabels, Gauge>,
    oldest_record_age: Family<PipelineLabels, Gauge<f64, AtomicU64>>,
    source_connected: Family<SourceLabels, Gauge>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let metrics = Self {
            registry: Arc::default(),
            records_received: Family::default(),
            invocations: Family::default(),
            invoke_duration: Family::new_with_constructor(Buckets(|| {
                Histogram::new(exponential_buckets(0.001, 2.0, 16))
            })),
            batch_records: Family::new_with_constructor(Buckets(|| {
                Histogram::new(exponential_buckets(1.0, 2.0, 14))
            })),
            batch_bytes: Family::new_with_constructor(Buckets(|| {
                Histogram::new(exponential_buckets(256.0, 4.0, 10))
            })),
            retries: Family::default(),
            throttles: Family::default(),
            dead_lettered: Family::default(),
            failed: Family::default(),
            dead_letter_errors: Family::default(),
            in_flight: Family::default(),
            oldest_record_age: Family::default(),
            source_connected: Family::default(),
        };
        metrics.register();
        metrics
    }

    fn register(&self) {
        let mut registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        let r = registry.sub_registry_with_prefix("trigger_bridge");
        r.register(
            "records_received",
            "Records taken from a pipeline's source",
            self.records_received.clone(),
        );
        r.register(
            "invocations",
            "Invocations by outcome: delivered, function_error, throttled, retryable, \
             permanent, too_large, invalid_event",
            self.invocations.clone(),
        );
        r.register_with_unit(
            "invoke_duration",
            "Time from sending an invocation to its answer",
            Unit::Seconds,
            self.invoke_duration.clone(),
        );
        r.register(
            "batch_records",
            "Records per invocation",
            self.batch_records.clone(),
        );
        r.register_with_unit(
            "batch_size",
            "Serialized event size per invocation",
            Unit::Bytes,
            self.batch_bytes.clone(),
        );
        r.register(
            "retries",
            "Invocations that were retries",
            self.retries.clone(),
        );
        r.register(
            "throttles",
            "Invocations the function throttled",
            self.throttles.clone(),
        );
        r.register(
            "records_dead_lettered",
            "Records written to the dead-letter sink, by reason",
            self.dead_lettered.clone(),
        );
        r.register(
            "records_failed",
            "Records that failed for good with no dead-letter sink, by reason",
            self.failed.clone(),
        );
        r.register(
            "dead_letter_write_errors",
            "Dead-letter writes that failed and will be tried again",
            self.dead_letter_errors.clone(),
        );
        r.register(
            "invocations_in_flight",
            "Invocations waiting for their answer",
            self.in_flight.clone(),
        );
        r.register_with_unit(
            "oldest_record_age",
            "Age of the oldest record the pipeline holds without a final outcome",
            Unit::Seconds,
            self.oldest_record_age.clone(),
        );
        r.register(
            "source_connected",
            "1 when the pipeline's source is connected",
            self.source_connected.clone(),
        );
    }

    /// The handles of one pipeline targeting one function.
    pub fn pipeline(&self, pipeline: &str, function: &str) -> PipelineMetrics {
        let labels = PipelineLabels {
            pipeline: pipeline.to_owned(),
            function: function.to_owned(),
        };
        let outcome = |outcome| {
            self.invocations.get_or_create_owned(&OutcomeLabels {
                pipeline: pipeline.to_owned(),
                function: function.to_owned(),
                outcome,
            })
        };
        let reason = |family: &Counters<ReasonLabels>, reason| {
            family.get_or_create_owned(&ReasonLabels {
                pipeline: pipeline.to_owned(),
                function: function.to_owned(),
                reason,
            })
        };
        let reasons = |family: &Counters<ReasonLabels>| ReasonCounters {
            retries_exhausted: reason(family, "retries_exhausted"),
            record_age_exceeded: reason(family, "record_age_exceeded"),
            payload_too_large: reason(family, "payload_too_large"),
            zero_reserved_concurrency: reason(family, "zero_reserved_concurrency"),
        };
        PipelineMetrics {
            records_received: self.records_received.get_or_create_owned(&labels),
            delivered: outcome("delivered"),
            function_error: outcome("function_error"),
            throttled: outcome("throttled"),
            retryable: outcome("retryable"),
            permanent: outcome("permanent"),
            too_large: outcome("too_large"),
            invalid_event: outcome("invalid_event"),
            invoke_duration: self.invoke_duration.get_or_create_owned(&labels),
            batch_records: self.batch_records.get_or_create_owned(&labels),
            batch_bytes: self.batch_bytes.get_or_create_owned(&labels),
            retries: self.retries.get_or_create_owned(&labels),
            throttles: self.throttles.get_or_create_owned(&labels),
            dead_lettered: reasons(&self.dead_lettered),
            failed: reasons(&self.failed),
            dead_letter_errors: self.dead_letter_errors.get_or_create_owned(&labels),
            in_flight: self.in_flight.get_or_create_owned(&labels),
            oldest_record_age: self.oldest_record_age.get_or_create_owned(&labels),
            source_connected: self.source_connected.get_or_create_owned(&SourceLabels {
                pipeline: pipeline.to_owned(),
            }),
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &registry);
        out
    }
}

#[derive(Debug, Clone)]
pub struct ReasonCounters {
    retries_exhausted: Counter,
    record_age_exceeded: Counter,
    payload_too_large: Counter,
    zero_reserved_concurrency: Counter,
}

impl ReasonCounters {
    pub fn get(&self, condition: trigger_bridge_sdk::Condition) -> &Counter {
        use trigger_bridge_sdk::Condition;
        match condition {
            Condition::RetriesExhausted => &self.retries_exhausted,
            Condition::RecordAgeExceeded => &self.record_age_exceeded,
            Condition::PayloadTooLarge => &self.payload_too_large,
            Condition::ZeroReservedConcurrency => &self.zero_reserved_concurrency,
        }
    }
}

/// One pipeline's metric handles.
#[derive(Debug, Clone)]
pub struct PipelineMetrics {
    pub records_received: Counter,
    pub delivered: Counter,
    pub function_error: Counter,
    pub throttled: Counter,
    pub retryable: Counter,
    pub permanent: Counter,
    pub too_large: Counter,
    pub invalid_event: Counter,
    pub invoke_duration: Histogram,
    pub batch_records: Histogram,
    pub batch_bytes: Histogram,
    pub retries: Counter,
    pub throttles: Counter,
    pub dead_lettered: ReasonCounters,
    pub failed: ReasonCounters,
    pub dead_letter_errors: Counter,
    pub in_flight: Gauge,
    pub oldest_record_age: Gauge<f64, AtomicU64>,
    pub source_connected: Gauge,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipeline_handles_show_in_the_exposition() {
        let metrics = Metrics::new();
        let p = metrics.pipeline("orders", "handler");
        p.records_received.inc_by(3);
        p.dead_lettered
            .get(trigger_bridge_sdk::Condition::RecordAgeExceeded)
            .inc();

        let text = metrics.encode();

        assert!(text.contains(
            r#"trigger_bridge_records_received_total{pipeline="orders",function="handler"} 3"#
        ));
        assert!(text.contains(concat!(
            "trigger_bridge_records_dead_lettered_total",
            r#"{pipeline="orders",function="handler",reason="record_age_exceeded"} 1"#
        )));
    }
}
