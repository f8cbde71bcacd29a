use std::time::{Duration, SystemTime};

use trigger_bridge_sdk::{Ack, Condition, Outcome};

use super::*;
use crate::dispatch::test_support::*;

fn outcomes(acks: &[Ack]) -> Vec<(u64, Outcome)> {
    acks.iter().map(|a| (a.token, a.outcome.clone())).collect()
}

fn all(ns: std::ops::Range<u64>, outcome: Outcome) -> Vec<(u64, Outcome)> {
    ns.map(|n| (n, outcome.clone())).collect()
}

#[tokio::test(start_paused = true)]
async fn a_delivered_batch_settles_every_record_in_order() {
    let function = Scripted::new(|_, _| ok());
    let shared = shared(function.clone(), Policy::immediate(10), None);
    let mut records = Records::new();

    deliver(&shared, records.batch(0..5)).await;

    assert_eq!(outcomes(&records.drain()), all(0..5, Outcome::Delivered));
    assert_eq!(function.calls().len(), 1);
    assert_eq!(function.calls()[0].ns(), vec![0, 1, 2, 3, 4]);
}

#[tokio::test(start_paused = true)]
async fn function_errors_use_attempts_then_dead_letter_with_backoff_in_bounds() {
    let function = Scripted::new(|_, _| function_error());
    let sink = MemorySink::default();
    let mut policy = Policy::immediate(10);
    policy.max_attempts = 4;
    let backoff = policy.backoff;
    let shared = shared(function.clone(), policy, Some(sink.clone()));
    let mut records = Records::new();

    deliver(&shared, records.batch(0..3)).await;

    let calls = function.calls();
    assert_eq!(calls.len(), 4);
    for (retry, pair) in calls.windows(2).enumerate() {
        let waited = pair[1].at - pair[0].at;
        assert!(
            waited <= backoff.ceiling(retry as u32),
            "retry {retry} waited {waited:?}"
        );
    }
    assert_eq!(outcomes(&records.drain()), all(0..3, Outcome::DeadLettered));
    let lines = sink.lines();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["requestContext"]["condition"], "RetriesExhausted");
    assert_eq!(lines[0]["requestContext"]["approximateInvokeCount"], 4);
    assert_eq!(lines[0]["responseContext"]["functionError"], "Unhandled");
    assert_eq!(lines[0]["responsePayload"]["errorType"], "Boom");
    assert_eq!(
        lines[0]["requestPayload"]["Records"]
            .as_array()
            .map(Vec::len),
        Some(3)
    );
}

#[tokio::test(start_paused = true)]
async fn throttles_do_not_use_attempts_and_retry_after_is_honoured() {
    let function = Scripted::new(|_, i| {
        if i < 5 {
            InvokeOutcome::Throttled {
                retry_after: Some(Duration::from_secs(7)),
                response: response(429, "{}"),
            }
        } else {
            ok()
        }
    });
    let mut policy = Policy::immediate(10);
    policy.max_attempts = 1;
    let shared = shared(function.clone(), policy, None);
    let mut records = Records::new();

    deliver(&shared, records.batch(0..2)).await;

    let calls = function.calls();
    assert_eq!(calls.len(), 6);
    for pair in calls.windows(2) {
        assert_eq!(pair[1].at - pair[0].at, Duration::from_secs(7));
    }
    assert_eq!(outcomes(&records.drain()), all(0..2, Outcome::Delivered));
}

#[tokio::test(start_paused = true)]
async fn unavailable_functions_do_not_use_attempts() {
    let function = Scripted::new(|_, i| {
        if i < 4 {
            InvokeOutcome::Retryable {
                reason: "connection refused".into(),
                response: None,
            }
        } else {
            ok()
        }
    });
    let mut policy = Policy::immediate(10);
    policy.max_attempts = 1;
    let shared = shared(function.clone(), policy, None);
    let mut records = Records::new();

    deliver(&shared, records.batch(0..1)).await;

    assert_eq!(function.calls().len(), 5);
    assert_eq!(outcomes(&records.drain()), all(0..1, Outcome::Delivered));
}

#[tokio::test(start_paused = true)]
async fn bisection_isolates_the_poison_record() {
    let function = Scripted::new(|call, _| {
        if call.ns().contains(&5) {
            function_error()
        } else {
            ok()
        }
    });
    let sink = MemorySink::default();
    let mut policy = Policy::immediate(10);
    policy.bisect_on_error = true;
    policy.max_attempts = 2;
    let shared = shared(function.clone(), policy, Some(sink.clone()));
    let mut records = Records::new();

    deliver(&shared, records.batch(0..8)).await;

    let mut expected = all(0..5, Outcome::Delivered);
    expected.push((5, Outcome::DeadLettered));
    expected.extend(all(6..8, Outcome::Delivered));
    assert_eq!(
        outcomes(&records.drain()),
        expected,
        "settled in source order"
    );
    // [0..8] fails, [0..4] ok, [4..8] fails, [4,5] fails, [4] ok, [5] twice, [6,7] ok.
    let sizes: Vec<usize> = function.calls().iter().map(|c| c.ns().len()).collect();
    assert_eq!(sizes, vec![8, 4, 4, 2, 1, 1, 1, 2]);
    let lines = sink.lines();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["requestPayload"]["Records"][0]["n"], 5);
    assert_eq!(lines[0]["requestContext"]["approximateInvokeCount"], 5);
}

#[tokio::test(start_paused = true)]
async fn partial_failures_on_an_unordered_source_retry_only_the_named_records() {
    let function = Scripted::new(|_, i| {
        if i == 0 {
            ok_with(r#"{"batchItemFailures":[{"itemIdentifier":"1"},{"itemIdentifier":"3"}]}"#)
        } else {
            ok()
        }
    });
    let mut policy = Policy::immediate(10);
    policy.report_batch_item_failures = true;
    let shared = shared(function.clone(), policy, None);
    let mut records = Records::new();

    deliver(&shared, records.batch(0..5)).await;

    let calls = function.calls();
    assert_eq!(calls[1].ns(), vec![1, 3]);
    let acks = outcomes(&records.drain());
    assert_eq!(acks.len(), 5);
    assert!(acks.iter().all(|(_, o)| *o == Outcome::Delivered));
}

#[tokio::test(start_paused = true)]
async fn partial_failures_on_an_ordered_source_retry_from_the_first_failure() {
    let function = Scripted::new(|_, i| {
        if i == 0 {
            ok_with(r#"{"batchItemFailures":[{"itemIdentifier":"3"},{"itemIdentifier":"2"}]}"#)
        } else {
            ok()
        }
    });
    let mut policy = Policy::immediate(10);
    policy.report_batch_item_failures = true;
    let shared = shared(function.clone(), policy, None);
    let mut records = Records::new();
    let batch = (0..5)
        .map(|n| records.made(n, SystemTime::now(), Some("shard-1")))
        .collect();

    deliver(&shared, batch).await;

    assert_eq!(function.calls()[1].ns(), vec![2, 3, 4]);
    assert_eq!(outcomes(&records.drain()), all(0..5, Outcome::Delivered));
}

#[tokio::test(start_paused = true)]
async fn a_malformed_partial_response_fails_the_whole_batch() {
    let function = Scripted::new(|_, i| {
        if i == 0 {
            ok_with(r#"{"batchItemFailures":[{"itemIdentifier":""}]}"#)
        } else {
            ok()
        }
    });
    let mut policy = Policy::immediate(10);
    policy.report_batch_item_failures = true;
    let shared = shared(function.clone(), policy, None);
    let mut records = Records::new();

    deliver(&shared, records.batch(0..3)).await;

    assert_eq!(function.calls()[1].ns(), vec![0, 1, 2]);
    assert_eq!(outcomes(&records.drain()), all(0..3, Outcome::Delivered));
}

#[tokio::test(start_paused = true)]
async fn partial_responses_are_ignored_unless_enabled() {
    let function =
        Scripted::new(|_, _| ok_with(r#"{"batchItemFailures":[{"itemIdentifier":"0"}]}"#));
    let shared = shared(function.clone(), Policy::immediate(10), None);
    let mut records = Records::new();

    deliver(&shared, records.batch(0..2)).await;

    assert_eq!(function.calls().len(), 1);
    assert_eq!(outcomes(&records.drain()), all(0..2, Outcome::Delivered));
}

#[tokio::test(start_paused = true)]
async fn records_past_their_age_are_dead_lettered_without_invoking() {
    let function = Scripted::new(|_, _| ok());
    let sink = MemorySink::default();
    let mut policy = Policy::immediate(10);
    policy.max_record_age = Some(Duration::from_secs(60));
    let shared = shared(function.clone(), policy, Some(sink.clone()));
    let mut records = Records::new();
    let old = SystemTime::now() - Duration::from_secs(120);
    let batch = vec![
        records.made(0, old, None),
        records.made(1, SystemTime::now(), None),
    ];

    deliver(&shared, batch).await;

    assert_eq!(
        outcomes(&records.drain()),
        vec![(0, Outcome::DeadLettered), (1, Outcome::Delivered)]
    );
    assert_eq!(function.calls()[0].ns(), vec![1]);
    let lines = sink.lines();
    assert_eq!(lines[0]["requestContext"]["condition"], "EventAgeExceeded");
    assert_eq!(lines[0]["requestContext"]["approximateInvokeCount"], 0);
    assert!(lines[0].get("responseContext").is_none());
}

#[tokio::test(start_paused = true)]
async fn records_that_age_out_while_throttled_are_dead_lettered() {
    let function = Scripted::new(|_, _| InvokeOutcome::Throttled {
        retry_after: Some(Duration::from_secs(30)),
        response: response(429, "{}"),
    });
    let sink = MemorySink::default();
    let mut policy = Policy::immediate(10);
    policy.max_record_age = Some(Duration::from_secs(100));
    let shared = shared(function.clone(), policy, Some(sink.clone()));
    let mut records = Records::new();

    deliver(&shared, records.batch(0..2)).await;

    // Invoked at 0, 30, 60 and 90 s; at 120 s the records are too old.
    assert_eq!(function.calls().len(), 4);
    assert_eq!(outcomes(&records.drain()), all(0..2, Outcome::DeadLettered));
    let lines = sink.lines();
    assert_eq!(lines[0]["requestContext"]["condition"], "EventAgeExceeded");
    assert_eq!(lines[0]["requestContext"]["approximateInvokeCount"], 4);
    assert_eq!(lines[0]["responseContext"]["statusCode"], 429);
}

#[tokio::test(start_paused = true)]
async fn too_large_splits_and_a_lone_oversize_record_is_dead_lettered() {
    let function = Scripted::new(|call, _| {
        if call.ns().len() > 1 {
            InvokeOutcome::TooLarge(response(413, "{}"))
        } else {
            ok()
        }
    });
    let mut policy = Policy::immediate(10);
    policy.max_attempts = 1;
    let shared = shared(function.clone(), policy, None);
    let mut records = Records::new();

    deliver(&shared, records.batch(0..4)).await;

    assert_eq!(outcomes(&records.drain()), all(0..4, Outcome::Delivered));
    let sizes: Vec<usize> = function.calls().iter().map(|c| c.ns().len()).collect();
    assert_eq!(sizes, vec![4, 2, 1, 1, 2, 1, 1]);
}

#[tokio::test(start_paused = true)]
async fn a_record_over_the_cap_is_dead_lettered_without_invoking() {
    let function = Scripted::new(|_, _| ok());
    let sink = MemorySink::default();
    let mut policy = Policy::immediate(10);
    policy.max_bytes = 20;
    let shared = shared(function.clone(), policy, Some(sink.clone()));
    let mut records = Records::new();
    let (acks, rx) = trigger_bridge_sdk::Acknowledgements::channel();
    records.rx = rx;
    let big = trigger_bridge_sdk::Record::new(
        bytes::Bytes::from(format!(r#"{{"n":0,"pad":"{}"}}"#, "x".repeat(40))),
        SystemTime::now(),
        acks.handle(0),
    );

    deliver(&shared, vec![big]).await;

    assert!(function.calls().is_empty());
    assert_eq!(outcomes(&records.drain()), vec![(0, Outcome::DeadLettered)]);
    let lines = sink.lines();
    assert_eq!(
        lines[0]["requestContext"]["condition"],
        "MaximumPayloadSizeExceeded"
    );
}

#[tokio::test(start_paused = true)]
async fn permanent_errors_use_attempts() {
    let function = Scripted::new(|_, _| InvokeOutcome::Permanent {
        reason: "function not found".into(),
        response: response(404, r#"{"Type":"User","message":"nope"}"#),
    });
    let sink = MemorySink::default();
    let mut policy = Policy::immediate(10);
    policy.max_attempts = 2;
    let shared = shared(function.clone(), policy, Some(sink.clone()));
    let mut records = Records::new();

    deliver(&shared, records.batch(0..1)).await;

    assert_eq!(function.calls().len(), 2);
    assert_eq!(outcomes(&records.drain()), all(0..1, Outcome::DeadLettered));
    assert_eq!(sink.lines()[0]["responseContext"]["statusCode"], 404);
}

#[tokio::test(start_paused = true)]
async fn zero_reserved_concurrency_dead_letters_without_invoking() {
    let function = Scripted::new(|_, _| ok());
    let sink = MemorySink::default();
    let shared = {
        let mut s = std::sync::Arc::into_inner(shared(
            function.clone(),
            Policy::immediate(10),
            Some(sink.clone()),
        ))
        .expect("only reference");
        s.disabled = true;
        std::sync::Arc::new(s)
    };
    let mut records = Records::new();

    deliver(&shared, records.batch(0..2)).await;

    assert!(function.calls().is_empty());
    assert_eq!(outcomes(&records.drain()), all(0..2, Outcome::DeadLettered));
    assert_eq!(
        sink.lines()[0]["requestContext"]["condition"],
        "ZeroReservedConcurrency"
    );
}

#[tokio::test(start_paused = true)]
async fn without_a_sink_failed_records_are_reported_failed() {
    let function = Scripted::new(|_, _| function_error());
    let mut policy = Policy::immediate(10);
    policy.max_attempts = 1;
    let shared = shared(function, policy, None);
    let mut records = Records::new();

    deliver(&shared, records.batch(0..2)).await;

    assert_eq!(
        outcomes(&records.drain()),
        all(0..2, Outcome::Failed(Condition::RetriesExhausted))
    );
}

#[tokio::test(start_paused = true)]
async fn records_are_settled_only_after_the_dead_letter_write_succeeds() {
    let function = Scripted::new(|_, _| function_error());
    let sink = MemorySink::failing(3);
    let mut policy = Policy::immediate(10);
    policy.max_attempts = 1;
    let shared = shared(function, policy, Some(sink.clone()));
    let mut records = Records::new();

    deliver(&shared, records.batch(0..2)).await;

    assert_eq!(sink.lines().len(), 1);
    assert_eq!(outcomes(&records.drain()), all(0..2, Outcome::DeadLettered));
}

#[tokio::test(start_paused = true)]
async fn shutdown_while_the_sink_fails_leaves_records_for_redelivery() {
    let function = Scripted::new(|_, _| function_error());
    let sink = MemorySink::failing(usize::MAX);
    let mut policy = Policy::immediate(10);
    policy.max_attempts = 1;
    let shared = shared(function, policy, Some(sink));
    let mut records = Records::new();
    let stopping = shared.stopping.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        stopping.cancel();
    });

    deliver(&shared, records.batch(0..2)).await;

    assert_eq!(outcomes(&records.drain()), all(0..2, Outcome::Redeliver));
}

#[tokio::test(start_paused = true)]
async fn shutdown_during_backoff_leaves_records_for_redelivery() {
    let function = Scripted::new(|_, _| InvokeOutcome::Throttled {
        retry_after: Some(Duration::from_secs(60)),
        response: response(429, "{}"),
    });
    let shared = shared(function.clone(), Policy::immediate(10), None);
    let mut records = Records::new();
    let stopping = shared.stopping.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(10)).await;
        stopping.cancel();
    });

    deliver(&shared, records.batch(0..3)).await;

    assert_eq!(function.calls().len(), 1);
    assert_eq!(outcomes(&records.drain()), all(0..3, Outcome::Redeliver));
}
