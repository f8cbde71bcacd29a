//! Scenarios every connector runs against its real source, written once.
//!
//! A connector's test implements [`ScenarioSource`] (how to put messages in
//! its source, how to start the bridge on it, how to read payloads back out of
//! its envelope) and calls each scenario. Messages are JSON objects
//! `{"seq": n, "fail": bool}`; the scenario's function fails every event that
//! holds a message marked `fail`.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::Duration,
};

use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::{FunctionServer, Invocation, Reply, poll_until};

/// How long a scenario waits for deliveries before it fails.
const DEADLINE: Duration = Duration::from_secs(60);

/// A bridge started by a scenario.
pub trait RunningBridge: Send {
    /// Graceful stop (SIGTERM): in-flight batches finish, the rest is left.
    fn stop(self: Box<Self>) -> BoxFuture<'static, ()>;
    /// A crash (SIGKILL): nothing more is acknowledged.
    fn kill(self: Box<Self>) -> BoxFuture<'static, ()>;
}

/// A connector under test, with its real source.
pub trait ScenarioSource: Send {
    /// Puts messages into the source, in order.
    fn produce<'a>(&'a mut self, messages: &'a [Value]) -> BoxFuture<'a, ()>;

    /// Starts the bridge with one pipeline from the source to the function at
    /// `endpoint` (`auth: none`, `dialect: aws`), dead-lettering to a `file`
    /// sink at `dead_letter`, with `retry: {max_attempts: 2, bisect_on_error:
    /// true, initial_delay: 10ms, max_delay: 50ms}` and
    /// `batching: {max_records: 10, window: 50ms}`.
    fn start<'a>(
        &'a mut self,
        endpoint: &'a str,
        dead_letter: &'a Path,
    ) -> BoxFuture<'a, Box<dyn RunningBridge>>;

    /// The messages one event delivered, decoded from the source's envelope.
    fn messages_of(&self) -> fn(&Value) -> Vec<Value>;
}

/// Messages `0..n`, marked `fail` where `fails(seq)`.
pub fn messages(n: u64, fails: impl Fn(u64) -> bool) -> Vec<Value> {
    (0..n)
        .map(|seq| json!({ "seq": seq, "fail": fails(seq) }))
        .collect()
}

fn seqs(messages: &[Value]) -> Vec<u64> {
    messages.iter().filter_map(|m| m["seq"].as_u64()).collect()
}

/// How often the function received each message, from events it accepted.
fn received(server: &FunctionServer, decode: fn(&Value) -> Vec<Value>) -> BTreeMap<u64, usize> {
    received_in(&server.invocations(), decode)
}

fn received_in(
    invocations: &[Invocation],
    decode: fn(&Value) -> Vec<Value>,
) -> BTreeMap<u64, usize> {
    let mut counts = BTreeMap::new();
    for invocation in invocations {
        let messages = decode(&invocation.event);
        if messages.iter().any(|m| m["fail"] == true) {
            continue;
        }
        for seq in seqs(&messages) {
            *counts.entry(seq).or_default() += 1;
        }
    }
    counts
}

/// The messages in a `file` dead-letter sink's on-failure records.
pub fn dead_lettered(path: &Path, decode: fn(&Value) -> Vec<Value>) -> Vec<u64> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut out = Vec::new();
    for line in text.lines() {
        let record: Value = serde_json::from_str(line).expect("dead-letter lines are JSON");
        let event = record
            .get("requestPayload")
            .or_else(|| record.get("payload"))
            .expect("an on-failure record carries its event");
        out.extend(seqs(&decode(event)));
    }
    out.sort_unstable();
    out
}

fn failing_function(server: &FunctionServer, decode: fn(&Value) -> Vec<Value>) {
    server.script(move |invocation| {
        if decode(&invocation.event).iter().any(|m| m["fail"] == true) {
            Reply::FunctionError {
                error_type: "ScenarioFailure".into(),
                message: "a message is marked fail".into(),
            }
        } else {
            Reply::Ok(json!({}))
        }
    });
}

fn dead_letter_path() -> PathBuf {
    std::env::temp_dir().join(format!(
        "trigger-bridge-scenario-{}.jsonl",
        uuid::Uuid::new_v4()
    ))
}

/// Every message reaches the function exactly once when nothing fails, and
/// nothing is dead-lettered.
pub async fn all_delivered(source: &mut dyn ScenarioSource, n: u64) {
    let server = FunctionServer::start().await;
    let decode = source.messages_of();
    failing_function(&server, decode);
    let dead_letter = dead_letter_path();
    source.produce(&messages(n, |_| false)).await;

    let bridge = source.start(&server.endpoint(), &dead_letter).await;
    poll_until("every message delivered", DEADLINE, || async {
        (received(&server, decode).len() as u64 == n).then_some(())
    })
    .await;
    bridge.stop().await;

    let counts = received(&server, decode);
    let repeated: Vec<_> = counts.iter().filter(|(_, c)| **c != 1).collect();
    assert!(
        repeated.is_empty(),
        "delivered more than once: {repeated:?}"
    );
    assert!(dead_lettered(&dead_letter, decode).is_empty());
    let _ = std::fs::remove_file(dead_letter);
}

/// Messages marked `fail` end in the dead-letter sink, each alone after
/// bisection; every other message is delivered; none is in both places.
pub async fn failures_dead_lettered(source: &mut dyn ScenarioSource, n: u64) {
    let fails = |seq: u64| seq % 7 == 3;
    let server = FunctionServer::start().await;
    let decode = source.messages_of();
    failing_function(&server, decode);
    let dead_letter = dead_letter_path();
    source.produce(&messages(n, fails)).await;

    let bridge = source.start(&server.endpoint(), &dead_letter).await;
    let expected: Vec<u64> = (0..n).filter(|s| fails(*s)).collect();
    poll_until("failing messages dead-lettered", DEADLINE, || async {
        (dead_lettered(&dead_letter, decode) == expected).then_some(())
    })
    .await;
    poll_until("every other message delivered", DEADLINE, || async {
        let counts = received(&server, decode);
        (0..n)
            .filter(|s| !fails(*s))
            .all(|s| counts.contains_key(&s))
            .then_some(())
    })
    .await;
    bridge.stop().await;

    let counts = received(&server, decode);
    assert!(
        expected.iter().all(|s| !counts.contains_key(s)),
        "a failing message was delivered"
    );
    assert_eq!(
        dead_lettered(&dead_letter, decode),
        expected,
        "dead-lettered once each"
    );
    let _ = std::fs::remove_file(dead_letter);
}

/// A crash loses nothing: messages not acknowledged before it come again
/// after a restart, and every message is delivered at least once.
pub async fn redelivered_after_restart(source: &mut dyn ScenarioSource, n: u64) {
    let server = FunctionServer::start().await;
    let decode = source.messages_of();
    let dead_letter = dead_letter_path();
    source.produce(&messages(n, |_| false)).await;

    // The function accepts a few events, then hangs: the rest stays in flight.
    server.script_in_turn(vec![
        Reply::Ok(json!({})),
        Reply::Ok(json!({})),
        Reply::Delay(Duration::from_secs(3600), Box::new(Reply::Ok(json!({})))),
    ]);
    let bridge = source.start(&server.endpoint(), &dead_letter).await;
    poll_until("the function hanging on an event", DEADLINE, || async {
        (server.invocation_count() > 2).then_some(())
    })
    .await;
    bridge.kill().await;

    // Count only events the function answered: the two accepted before the
    // crash and everything after the restart.
    failing_function(&server, decode);
    let restart = server.invocation_count();
    let bridge = source.start(&server.endpoint(), &dead_letter).await;
    poll_until(
        "every message delivered after the restart",
        DEADLINE,
        || async {
            let invocations = server.invocations();
            let answered: Vec<Invocation> = invocations
                .iter()
                .enumerate()
                .filter(|(i, _)| *i < 2 || *i >= restart)
                .map(|(_, inv)| inv.clone())
                .collect();
            let counts = received_in(&answered, decode);
            (0..n).all(|s| counts.contains_key(&s)).then_some(())
        },
    )
    .await;
    bridge.stop().await;
    assert!(dead_lettered(&dead_letter, decode).is_empty());
    let _ = std::fs::remove_file(dead_letter);
}
