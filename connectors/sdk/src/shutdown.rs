//! The two-phase shutdown signal a connector is handed.
//!
//! 1. [`Shutdown::stopping`]: stop taking input. Records already yielded are
//!    still being delivered; keep handling their acks.
//! 2. [`Shutdown::drained`]: every record the connector yielded has been settled
//!    or given up (its ack is already in the channel). Apply the remaining acks,
//!    release the source cleanly and return.

use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    stopping: CancellationToken,
    drained: CancellationToken,
}

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    /// Completes once the connector must stop taking input.
    pub async fn stopping(&self) {
        self.stopping.cancelled().await;
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.is_cancelled()
    }

    /// Completes once the pipeline holds none of the connector's records.
    pub async fn drained(&self) {
        self.drained.cancelled().await;
    }

    pub fn is_drained(&self) -> bool {
        self.drained.is_cancelled()
    }

    /// Starts phase one. Engine side.
    pub fn begin(&self) {
        self.stopping.cancel();
    }

    /// Starts phase two; implies phase one. Engine side.
    pub fn finish(&self) {
        self.stopping.cancel();
        self.drained.cancel();
    }
}
