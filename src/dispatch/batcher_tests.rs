use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use trigger_bridge_sdk::Outcome;

use super::*;
use crate::dispatch::{Policy, test_support::*};

const ROOMY: Capacity = Capacity {
    records: 10_000,
    bytes: usize::MAX,
    deliveries: 1_000,
};

fn start<I: Invoke>(
    shared: Arc<Shared<I>>,
    capacity: Capacity,
) -> (mpsc::Sender<Record>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(16);
    let task = tokio::spawn(Batcher::new(shared, capacity).run(rx, Duration::from_secs(10)));
    (tx, task)
}

async fn settle_all(records: &mut Records, n: usize) -> Vec<(u64, Outcome)> {
    let mut out = Vec::new();
    while out.len() < n {
        match records.rx.recv().await {
            Some(ack) => out.push((ack.token, ack.outcome)),
            None => break,
        }
    }
    out
}

#[tokio::test(start_paused = true)]
async fn batches_close_at_max_records_then_at_the_window() {
    let function = Scripted::new(|_, _| ok());
    let mut policy = Policy::immediate(10);
    policy.window = Duration::from_secs(2);
    let shared = shared(function.clone(), policy, None);
    let (tx, _task) = start(shared, ROOMY);
    let mut records = Records::new();
    let started = tokio::time::Instant::now();

    for n in 0..25 {
        tx.send(records.make(n)).await.expect("batcher running");
    }
    settle_all(&mut records, 25).await;

    let calls = function.calls();
    let sizes: Vec<usize> = calls.iter().map(|c| c.ns().len()).collect();
    assert_eq!(sizes, vec![10, 10, 5]);
    assert!(
        calls[1].at - started < Duration::from_secs(2),
        "full batches go at once"
    );
    assert_eq!(
        calls[2].at - started,
        Duration::from_secs(2),
        "the rest waits for its window"
    );
}

#[tokio::test(start_paused = true)]
async fn batches_close_before_the_payload_cap() {
    let function = Scripted::new(|_, _| ok());
    let mut policy = Policy::immediate(100);
    policy.window = Duration::from_secs(1);
    // `{"Records":[` + 3 × `{"n":N}` + 2 commas + `]}` = 14 + 21 + 2 = 37 bytes.
    policy.max_bytes = 37;
    let shared = shared(function.clone(), policy, None);
    let (tx, _task) = start(shared, ROOMY);
    let mut records = Records::new();

    for n in 0..7 {
        tx.send(records.make(n)).await.expect("batcher running");
    }
    settle_all(&mut records, 7).await;

    let sizes: Vec<usize> = function.calls().iter().map(|c| c.ns().len()).collect();
    assert_eq!(sizes, vec![3, 3, 1]);
}

#[tokio::test(start_paused = true)]
async fn an_ordered_key_has_one_batch_in_flight_and_keys_run_in_parallel() {
    let function = Slow::new(Scripted::new(|_, _| ok()), Duration::from_secs(1));
    let mut policy = Policy::immediate(2);
    policy.window = Duration::from_millis(100);
    let shared = shared(function.clone(), policy, None);
    let (tx, _task) = start(shared, ROOMY);
    let mut records = Records::new();

    for n in 0..8 {
        let key = if n % 2 == 0 { "a" } else { "b" };
        tx.send(records.made(n, SystemTime::now(), Some(key)))
            .await
            .expect("batcher running");
    }
    let acks = settle_all(&mut records, 8).await;

    assert_eq!(function.peak(), 2, "one per key, two keys");
    let order_a: Vec<u64> = acks.iter().map(|a| a.0).filter(|n| n % 2 == 0).collect();
    assert_eq!(order_a, vec![0, 2, 4, 6], "settled in source order per key");
    let calls = function.inner.calls();
    let batches_a: Vec<Vec<u64>> = calls
        .iter()
        .map(Call::ns)
        .filter(|ns| ns[0] % 2 == 0)
        .collect();
    assert_eq!(batches_a, vec![vec![0, 2], vec![4, 6]]);
}

#[tokio::test(start_paused = true)]
async fn without_a_window_waiting_records_share_a_batch() {
    let function = Slow::new(Scripted::new(|_, _| ok()), Duration::from_secs(1));
    let shared = shared(function.clone(), Policy::immediate(10), None);
    let (tx, _task) = start(shared, ROOMY);
    let mut records = Records::new();

    // While the first batch is in flight for the key, the rest accumulates.
    tx.send(records.made(0, SystemTime::now(), Some("k")))
        .await
        .expect("batcher running");
    tokio::time::sleep(Duration::from_millis(10)).await;
    for n in 1..6 {
        tx.send(records.made(n, SystemTime::now(), Some("k")))
            .await
            .expect("batcher running");
    }
    settle_all(&mut records, 6).await;

    let batches: Vec<Vec<u64>> = function.inner.calls().iter().map(Call::ns).collect();
    assert_eq!(batches, vec![vec![0], vec![1, 2, 3, 4, 5]]);
}

#[tokio::test(start_paused = true)]
async fn a_stalled_function_stops_the_batcher_taking_records() {
    let function = Slow::new(Scripted::new(|_, _| ok()), Duration::from_secs(3600));
    let shared = shared(function, Policy::immediate(5), None);
    let received = shared.metrics.records_received.clone();
    let capacity = Capacity {
        records: 10,
        bytes: usize::MAX,
        deliveries: 1_000,
    };
    let (tx, _task) = start(shared, capacity);
    let records = Records::new();

    let producer = tokio::spawn(async move {
        for n in 0..1000 {
            if tx.send(records.make(n)).await.is_err() {
                break;
            }
        }
    });
    tokio::time::sleep(Duration::from_secs(60)).await;

    assert_eq!(received.get(), 10, "held records stop at the capacity");
    assert!(
        !producer.is_finished(),
        "the source waits instead of the bridge buffering"
    );
}

#[tokio::test(start_paused = true)]
async fn records_taken_are_delivered_when_the_source_ends() {
    let function = Scripted::new(|_, _| ok());
    let mut policy = Policy::immediate(10);
    policy.window = Duration::from_secs(3600);
    let shared = shared(function.clone(), policy, None);
    let (tx, task) = start(shared, ROOMY);
    let mut records = Records::new();

    for n in 0..3 {
        tx.send(records.make(n)).await.expect("batcher running");
    }
    drop(tx);
    task.await.expect("batcher ends with its source");

    let acks = settle_all(&mut records, 3).await;
    assert!(acks.iter().all(|(_, o)| *o == Outcome::Delivered));
}

#[tokio::test(start_paused = true)]
async fn shutdown_lets_in_flight_batches_finish_and_leaves_the_rest() {
    let function = Slow::new(Scripted::new(|_, _| ok()), Duration::from_secs(5));
    let mut policy = Policy::immediate(2);
    policy.window = Duration::from_secs(3600);
    let shared = shared(function, policy, None);
    let stopping = shared.stopping.clone();
    let (tx, task) = start(shared, ROOMY);
    let mut records = Records::new();

    for n in 0..3 {
        tx.send(records.make(n)).await.expect("batcher running");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stopping.cancel();
    task.await.expect("batcher stops");

    let mut acks = records.drain();
    acks.sort_by_key(|a| a.token);
    let outcomes: Vec<_> = acks.into_iter().map(|a| a.outcome).collect();
    assert_eq!(
        outcomes,
        vec![Outcome::Delivered, Outcome::Delivered, Outcome::Redeliver]
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_aborts_deliveries_that_overrun_the_grace() {
    let function = Slow::new(Scripted::new(|_, _| ok()), Duration::from_secs(3600));
    let shared = shared(function, Policy::immediate(2), None);
    let stopping = shared.stopping.clone();
    let (tx, task) = start(shared, ROOMY);
    let mut records = Records::new();

    for n in 0..2 {
        tx.send(records.make(n)).await.expect("batcher running");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stopped_at = tokio::time::Instant::now();
    stopping.cancel();
    task.await.expect("batcher stops");

    assert_eq!(
        stopped_at.elapsed(),
        Duration::from_secs(10),
        "the grace, no more"
    );
    let outcomes: Vec<_> = records.drain().into_iter().map(|a| a.outcome).collect();
    assert_eq!(outcomes, vec![Outcome::Redeliver, Outcome::Redeliver]);
}

#[tokio::test(start_paused = true)]
async fn without_a_window_unordered_batches_fill_while_deliveries_are_busy() {
    let function = Slow::new(Scripted::new(|_, _| ok()), Duration::from_secs(1));
    let shared = shared(function.clone(), Policy::immediate(10), None);
    let capacity = Capacity {
        deliveries: 2,
        ..ROOMY
    };
    let (tx, _task) = start(shared, capacity);
    let mut records = Records::new();

    // Two deliveries start at once; what arrives while they run waits in
    // one open batch instead of queueing for a permit one record at a time.
    for n in 0..10 {
        tx.send(records.make(n)).await.expect("batcher running");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    settle_all(&mut records, 10).await;

    let batches: Vec<Vec<u64>> = function.inner.calls().iter().map(Call::ns).collect();
    assert_eq!(batches, vec![vec![0], vec![1], (2..10).collect()]);
    assert_eq!(function.peak(), 2);
}

#[tokio::test(start_paused = true)]
async fn window_deadlines_of_batches_closed_early_do_not_pile_up() {
    let function = Scripted::new(|_, _| ok());
    let mut policy = Policy::immediate(1);
    policy.window = Duration::from_secs(300);
    let mut batcher = Batcher::new(shared(function, policy, None), ROOMY);
    let records = Records::new();

    // Every record fills its batch at once, long before its window ends.
    for n in 0..10_000 {
        batcher.take(records.make(n));
    }

    assert!(
        batcher.windows.len() <= 2 * batcher.keys.len() + 17,
        "{} deadlines for {} keys",
        batcher.windows.len(),
        batcher.keys.len()
    );
}
