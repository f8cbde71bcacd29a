//! Every config default, in one place. Defaults that mirror AWS say so.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

pub fn listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 9090))
}

/// SNS messages are at most 256 KiB and S3 notifications 64 KiB; 1 MiB leaves
/// room for batched webhook deliveries.
pub fn max_body_bytes() -> usize {
    1024 * 1024
}

pub fn state_dir() -> PathBuf {
    PathBuf::from("/var/lib/trigger-bridge")
}

pub fn global_max_concurrency() -> u32 {
    256
}

/// Under Kubernetes' default 30 s termination grace period.
pub fn shutdown_grace() -> Duration {
    Duration::from_secs(25)
}

pub fn function_timeout() -> Duration {
    Duration::from_secs(60)
}

/// Lambda's synchronous request limit.
pub const SYNC_PAYLOAD_BYTES: usize = 6_291_456;

/// Lambda's asynchronous (`Event`) request limit since October 2025.
pub const ASYNC_PAYLOAD_BYTES: usize = 1_048_576;

/// A pipeline's concurrency when the config does not set `max_concurrency`.
pub const PIPELINE_MAX_CONCURRENCY: u32 = 10;

/// Delivery defaults of a source family (DESIGN.md, "Failure policy by source
/// family").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FamilyDefaults {
    pub max_records: usize,
    pub window: Duration,
    pub max_attempts: u32,
    pub max_record_age: Option<Duration>,
}

/// Backoff before the first retry.
pub const INITIAL_DELAY: Duration = Duration::from_secs(1);

/// Shortest `initial_delay` accepted.
pub const MIN_INITIAL_DELAY: Duration = Duration::from_millis(10);

/// Shortest `max_delay` accepted: with it, retries of a down function settle
/// at no more than about twenty a second per batch.
pub const MIN_MAX_DELAY: Duration = Duration::from_millis(100);

/// Longest backoff between attempts.
pub const MAX_DELAY: Duration = Duration::from_secs(60);

pub fn family(family: trigger_bridge_sdk::Family) -> FamilyDefaults {
    use trigger_bridge_sdk::Family;
    match family {
        // Lambda's Kafka and MQ mappings: batch size 100, a 500 ms window.
        // Lambda retries streams until records expire, and caps Kafka at 10
        // retries when an on-failure destination is set: 10 attempts here.
        Family::Stream => FamilyDefaults {
            max_records: 100,
            window: Duration::from_millis(500),
            max_attempts: 10,
            max_record_age: None,
        },
        Family::Queue => FamilyDefaults {
            max_records: 100,
            window: Duration::from_millis(500),
            max_attempts: 5,
            max_record_age: None,
        },
        // Lambda's asynchronous invoke: one event an invocation, 2 retries,
        // a maximum event age of 6 hours.
        Family::Notification => FamilyDefaults {
            max_records: 1,
            window: Duration::ZERO,
            max_attempts: 3,
            max_record_age: Some(Duration::from_secs(6 * 3600)),
        },
    }
}
