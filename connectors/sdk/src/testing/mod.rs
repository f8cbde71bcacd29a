//! Test support every connector's integration tests share.
//!
//! - [`FunctionServer`]: a real Lambda-compatible HTTP function on loopback,
//!   scripted per test to succeed, fail chosen records, throttle, answer slowly
//!   or drop the connection.
//! - [`MemoryQueue`]: an in-process source whose unacknowledged records come
//!   again after a connector restart, for engine tests.
//! - [`scenarios`]: all delivered, failures dead-lettered, redelivery after a
//!   crash, written once and run by every connector against its source.
//! - [`poll_until`]: waiting as an assertion with a deadline.

mod function_server;
mod memory;
pub mod scenarios;

use std::{future::Future, time::Duration};

pub use function_server::{FunctionServer, Invocation, Reply};
pub use memory::{MemoryQueue, MemorySource, Message};

/// Polls `check` until it returns `Some`, or panics with `what` after
/// `deadline`. Waiting in a test is an assertion, never a bare sleep.
pub async fn poll_until<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let give_up = std::time::SystemTime::now() + deadline;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            std::time::SystemTime::now() < give_up,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
