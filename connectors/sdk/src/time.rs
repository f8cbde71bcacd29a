//! Wall-clock time that follows tokio's clock.
//!
//! Record age compares a source's wall-clock timestamp with "now". Reading
//! `SystemTime::now()` directly would ignore tokio's paused test clock, so the
//! engine reads wall time through a [`Clock`] anchored once and advanced by
//! `tokio::time::Instant`.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

#[derive(Debug, Clone, Copy)]
pub struct Clock {
    wall: SystemTime,
    mono: Instant,
}

impl Clock {
    /// Anchors wall time to tokio's clock of the current runtime.
    pub fn new() -> Self {
        Self {
            wall: SystemTime::now(),
            mono: Instant::now(),
        }
    }

    pub fn now(&self) -> SystemTime {
        self.wall + self.mono.elapsed()
    }

    /// How long ago `then` was; zero for a time in the future.
    pub fn age(&self, then: SystemTime) -> Duration {
        self.now().duration_since(then).unwrap_or_default()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}
