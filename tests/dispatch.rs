//! The dispatcher against a real HTTP function on loopback: every rule of
//! delivery as it shows on the wire. Timing rules are shown on paused time in
//! the unit tests; here retries are fast and waits are polls with deadlines.

mod common;

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde_json::{Value, json};
use trigger_bridge_sdk::{
    Outcome,
    testing::{FunctionServer, MemoryQueue, Reply, poll_until},
};

const DEADLINE: Duration = Duration::from_secs(20);

fn push(queue: &MemoryQueue, range: std::ops::Range<u64>) {
    for n in range {
        queue.push_message(
            json!({ "n": n }),
            None,
            Some(&n.to_string()),
            SystemTime::now(),
        );
    }
}

async fn settled(queue: &MemoryQueue, n: usize) -> Vec<(u64, Outcome)> {
    poll_until("every record settled", DEADLINE, || async {
        let settled = queue.settled();
        (settled.len() >= n).then_some(settled)
    })
    .await
}

fn delivered_ns(server: &FunctionServer) -> Vec<u64> {
    let mut ns: Vec<u64> = server
        .invocations()
        .iter()
        .flat_map(|i| common::ns(&i.event))
        .collect();
    ns.sort_unstable();
    ns
}

#[tokio::test]
async fn every_record_reaches_the_function_in_its_envelope() {
    let server = FunctionServer::start().await;
    let queue = MemoryQueue::new();
    push(&queue, 0..50);
    let config = common::config(&server.endpoint(), json!({}));
    // One invocation at a time, so each can reuse the last one's connection.
    let mut spec = common::spec("all");
    spec.max_concurrency = Some(1);

    let running = common::run(&config, vec![(spec, common::memory(&queue))]).await;
    let settled = settled(&queue, 50).await;
    running.stop().await.expect("clean stop");

    assert!(settled.iter().all(|(_, o)| *o == Outcome::Delivered));
    assert_eq!(delivered_ns(&server), (0..50).collect::<Vec<_>>());
    let first = &server.invocations()[0];
    assert_eq!(first.path, "/2015-03-31/functions/f/invocations");
    assert!(first.event["Records"].is_array());
    assert!(server.invocation_count() >= 5);
    assert_eq!(server.connections(), 1, "one connection, reused");
}

#[tokio::test]
async fn poison_records_are_isolated_and_dead_lettered_to_the_file() {
    let server = FunctionServer::start().await;
    server.script(|inv| {
        if common::ns(&inv.event).iter().any(|n| n % 10 == 7) {
            Reply::FunctionError {
                error_type: "Poison".into(),
                message: "record 7".into(),
            }
        } else {
            Reply::Ok(json!({}))
        }
    });
    let queue = MemoryQueue::new();
    push(&queue, 0..30);
    let dead_letter = common::temp_path("poison.jsonl");
    let mut spec = common::spec("poison");
    spec.retry.bisect_on_error = true;
    spec.retry.max_attempts = Some(2);
    spec.dead_letter = common::file_sink(&dead_letter);
    let config = common::config(&server.endpoint(), json!({}));

    let running = common::run(&config, vec![(spec, common::memory(&queue))]).await;
    let settled = settled(&queue, 30).await;
    let metrics = running.metrics.clone();
    running.stop().await.expect("clean stop");

    assert!(metrics.encode().contains(concat!(
        "trigger_bridge_records_dead_lettered_total",
        r#"{pipeline="poison",function="f",reason="retries_exhausted"} 3"#
    )));

    // Batches of an unordered source finish in any order.
    let mut dead: Vec<u64> = settled
        .iter()
        .filter(|(_, o)| *o == Outcome::DeadLettered)
        .map(|(n, _)| *n)
        .collect();
    dead.sort_unstable();
    assert_eq!(dead, vec![7, 17, 27]);
    let lines: Vec<Value> = std::fs::read_to_string(&dead_letter)
        .expect("dead-letter file written")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 3, "one line per isolated record");
    for line in &lines {
        assert_eq!(line["requestContext"]["condition"], "RetriesExhausted");
        assert_eq!(line["responseContext"]["functionError"], "Unhandled");
        assert_eq!(line["responsePayload"]["errorType"], "Poison");
        assert_eq!(
            line["requestPayload"]["Records"].as_array().map(Vec::len),
            Some(1)
        );
    }
    let _ = std::fs::remove_file(dead_letter);
}

#[tokio::test]
async fn a_throttle_with_retry_after_is_waited_out_without_using_attempts() {
    let server = FunctionServer::start().await;
    server.script_in_turn(vec![
        Reply::Throttle {
            retry_after_secs: Some(1),
        },
        Reply::Ok(json!({})),
    ]);
    let queue = MemoryQueue::new();
    push(&queue, 0..1);
    let mut spec = common::spec("throttle");
    spec.retry.max_attempts = Some(1);
    let config = common::config(&server.endpoint(), json!({}));

    let running = common::run(&config, vec![(spec, common::memory(&queue))]).await;
    let settled = settled(&queue, 1).await;
    let metrics = running.metrics.clone();
    running.stop().await.expect("clean stop");

    assert_eq!(settled, vec![(0, Outcome::Delivered)]);
    let invocations = server.invocations();
    assert_eq!(invocations.len(), 2);
    let text = metrics.encode();
    let labels = r#"{pipeline="throttle",function="f"}"#;
    assert!(
        text.contains(&format!("trigger_bridge_throttles_total{labels} 1")),
        "{text}"
    );
    assert!(
        text.contains(&format!("trigger_bridge_retries_total{labels} 1")),
        "{text}"
    );
    assert!(text.contains(concat!(
        "trigger_bridge_invocations_total",
        r#"{pipeline="throttle",function="f",outcome="throttled"} 1"#
    )));
}

#[tokio::test]
async fn partial_batch_responses_retry_only_the_named_records() {
    let server = FunctionServer::start().await;
    server.script(|inv| {
        let ns = common::ns(&inv.event);
        if ns.len() > 1 && ns.contains(&3) {
            Reply::Ok(json!({ "batchItemFailures": [{ "itemIdentifier": "3" }] }))
        } else {
            Reply::Ok(json!({ "batchItemFailures": [] }))
        }
    });
    let queue = MemoryQueue::new();
    push(&queue, 0..5);
    let mut spec = common::spec("partial");
    spec.report_batch_item_failures = true;
    spec.batching.window = Some(Duration::from_millis(200));
    let config = common::config(&server.endpoint(), json!({}));

    let running = common::run(&config, vec![(spec, common::memory(&queue))]).await;
    let settled = settled(&queue, 5).await;
    running.stop().await.expect("clean stop");

    assert!(settled.iter().all(|(_, o)| *o == Outcome::Delivered));
    let batches: Vec<Vec<u64>> = server
        .invocations()
        .iter()
        .map(|i| common::ns(&i.event))
        .collect();
    assert_eq!(batches, vec![vec![0, 1, 2, 3, 4], vec![3]]);
}

#[tokio::test]
async fn malformed_answers_fail_the_whole_batch_when_partial_responses_are_on() {
    let server = FunctionServer::start().await;
    let answer = |body: &'static [u8]| Reply::Raw {
        status: 200,
        headers: vec![],
        body: Bytes::from_static(body),
    };
    server.script_in_turn(vec![
        answer(b"<html>not json</html>"),
        answer(br#"{"batchItemFailures":[{"itemIdentifier":null}]}"#),
        answer(b""),
    ]);
    let queue = MemoryQueue::new();
    push(&queue, 0..3);
    let mut spec = common::spec("malformed");
    spec.report_batch_item_failures = true;
    spec.batching.window = Some(Duration::from_millis(200));
    let config = common::config(&server.endpoint(), json!({}));

    let running = common::run(&config, vec![(spec, common::memory(&queue))]).await;
    let settled = settled(&queue, 3).await;
    running.stop().await.expect("clean stop");

    assert!(settled.iter().all(|(_, o)| *o == Outcome::Delivered));
    let batches: Vec<Vec<u64>> = server
        .invocations()
        .iter()
        .map(|i| common::ns(&i.event))
        .collect();
    assert_eq!(batches, vec![vec![0, 1, 2]; 3]);
}

#[tokio::test]
async fn a_413_splits_the_batch() {
    let server = FunctionServer::start().await;
    server.script(|inv| {
        if common::ns(&inv.event).len() > 2 {
            Reply::Raw {
                status: 413,
                headers: vec![(
                    "x-amzn-ErrorType".into(),
                    "RequestEntityTooLargeException".into(),
                )],
                body: Bytes::from_static(br#"{"Type":"User","message":"Request must be smaller"}"#),
            }
        } else {
            Reply::Ok(json!({}))
        }
    });
    let queue = MemoryQueue::new();
    push(&queue, 0..8);
    let mut spec = common::spec("split");
    spec.batching.window = Some(Duration::from_millis(200));
    let config = common::config(&server.endpoint(), json!({}));

    let running = common::run(&config, vec![(spec, common::memory(&queue))]).await;
    let settled = settled(&queue, 8).await;
    running.stop().await.expect("clean stop");

    assert!(settled.iter().all(|(_, o)| *o == Outcome::Delivered));
    let accepted: Vec<usize> = server
        .invocations()
        .iter()
        .map(|i| common::ns(&i.event).len())
        .filter(|n| *n <= 2)
        .collect();
    assert_eq!(accepted.iter().sum::<usize>(), 8);
}

#[tokio::test]
async fn timeouts_dropped_connections_and_server_errors_are_retried() {
    let server = FunctionServer::start().await;
    server.script_in_turn(vec![
        Reply::Delay(Duration::from_secs(5), Box::new(Reply::Ok(json!({})))),
        Reply::Drop,
        Reply::Raw {
            status: 502,
            headers: vec![],
            body: Bytes::from_static(b"<html>bad gateway</html>"),
        },
        Reply::Ok(json!({})),
    ]);
    let queue = MemoryQueue::new();
    push(&queue, 0..2);
    let mut spec = common::spec("flaky");
    // The timeout uses the first attempt; the dropped connection and the 502
    // use none.
    spec.retry.max_attempts = Some(2);
    spec.batching.window = Some(Duration::from_millis(200));
    let config = common::config(&server.endpoint(), json!({ "timeout": "300ms" }));

    let running = common::run(&config, vec![(spec, common::memory(&queue))]).await;
    let settled = settled(&queue, 2).await;
    running.stop().await.expect("clean stop");

    assert!(settled.iter().all(|(_, o)| *o == Outcome::Delivered));
    assert_eq!(server.invocation_count(), 4);
}

#[tokio::test]
async fn an_unreachable_function_holds_records_and_loses_none() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        listener.local_addr().expect("address").port()
    };
    let queue = MemoryQueue::new();
    push(&queue, 0..5);
    let config = common::config(&format!("http://127.0.0.1:{port}"), json!({}));

    let running = common::run(
        &config,
        vec![(common::spec("down"), common::memory(&queue))],
    )
    .await;
    poll_until("records taken by the pipeline", DEADLINE, || async {
        (queue.unacked() == 5).then_some(())
    })
    .await;
    running.stop().await.expect("clean stop");

    assert!(queue.settled().is_empty(), "nothing was acknowledged");
    assert_eq!(queue.pending(), 5, "every record is left for redelivery");
    assert_eq!(queue.unacked(), 0, "and handed back to the source");
}

#[tokio::test]
async fn reserved_concurrency_caps_a_function_across_pipelines() {
    let server = FunctionServer::start().await;
    server.script(|_| Reply::Delay(Duration::from_millis(100), Box::new(Reply::Ok(json!({})))));
    let a = MemoryQueue::new();
    let b = MemoryQueue::new();
    push(&a, 0..20);
    push(&b, 100..120);
    let mut spec_a = common::spec("a");
    let mut spec_b = common::spec("b");
    for spec in [&mut spec_a, &mut spec_b] {
        spec.batching.max_records = Some(1);
        spec.max_concurrency = Some(10);
    }
    let config = common::config(&server.endpoint(), json!({ "reserved_concurrency": 3 }));

    let running = common::run(
        &config,
        vec![(spec_a, common::memory(&a)), (spec_b, common::memory(&b))],
    )
    .await;
    settled(&a, 20).await;
    settled(&b, 20).await;
    running.stop().await.expect("clean stop");

    assert_eq!(server.peak_concurrency(), 3);
}

#[tokio::test]
async fn zero_reserved_concurrency_sends_records_straight_to_the_dead_letter_sink() {
    let server = FunctionServer::start().await;
    let queue = MemoryQueue::new();
    push(&queue, 0..3);
    let dead_letter = common::temp_path("zero.jsonl");
    let mut spec = common::spec("zero");
    spec.dead_letter = common::file_sink(&dead_letter);
    let config = common::config(&server.endpoint(), json!({ "reserved_concurrency": 0 }));

    let running = common::run(&config, vec![(spec, common::memory(&queue))]).await;
    let settled = settled(&queue, 3).await;
    running.stop().await.expect("clean stop");

    assert!(settled.iter().all(|(_, o)| *o == Outcome::DeadLettered));
    assert_eq!(server.invocation_count(), 0);
    let text = std::fs::read_to_string(&dead_letter).expect("dead-letter file written");
    assert!(text.contains("ZeroReservedConcurrency"));
    let _ = std::fs::remove_file(dead_letter);
}
