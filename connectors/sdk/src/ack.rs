//! How a connector learns the final outcome of every record it yielded.
//!
//! The connector makes one [`AckHandle`] per record from its [`Acknowledgements`]
//! and reads [`Ack`]s from the receiver it got alongside. Every handle reports
//! exactly once: explicitly when the engine settles the record, or as
//! [`Outcome::Redeliver`] when it is dropped unsettled (shutdown, an aborted
//! delivery). A record can therefore never vanish without its connector knowing.
//!
//! The ack channel is unbounded, yet its length is bounded: it never holds more
//! acks than the connector has records outstanding, and the pipeline's channel
//! and in-flight cap bound those.

use tokio::sync::mpsc;

use crate::dead_letter::Condition;

/// A record's final outcome, as its connector must act on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The function processed the record. Acknowledge it.
    Delivered,
    /// The record failed for good and its dead-letter write was confirmed.
    /// Acknowledge it.
    DeadLettered,
    /// The record failed for good and the pipeline has no dead-letter sink.
    /// Apply the source's own failure handling: reject it to the broker's
    /// dead-letter exchange, leave it to the queue's redrive policy, or skip
    /// past it on a stream, as Lambda does without an on-failure destination.
    Failed(Condition),
    /// The record's outcome is not final (shutdown came first). Do not
    /// acknowledge it; the source must deliver it again.
    Redeliver,
}

impl Outcome {
    /// Whether the record may be acknowledged at its source.
    pub fn is_final(&self) -> bool {
        !matches!(self, Outcome::Redeliver)
    }
}

/// One record's outcome, tagged with the connector's own token for it
/// (a delivery tag, an offset, a sequence position).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub token: u64,
    pub outcome: Outcome,
}

/// Makes [`AckHandle`]s that all report to one receiver.
#[derive(Debug, Clone)]
pub struct Acknowledgements {
    tx: mpsc::UnboundedSender<Ack>,
}

impl Acknowledgements {
    pub fn channel() -> (Self, mpsc::UnboundedReceiver<Ack>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx }, rx)
    }

    /// A handle for the record the connector knows as `token`.
    pub fn handle(&self, token: u64) -> AckHandle {
        AckHandle {
            token,
            tx: Some(self.tx.clone()),
        }
    }
}

/// Reports one record's outcome, once. Dropping it unsettled reports
/// [`Outcome::Redeliver`].
#[derive(Debug)]
pub struct AckHandle {
    token: u64,
    tx: Option<mpsc::UnboundedSender<Ack>>,
}

impl AckHandle {
    /// A handle that reports nowhere, for records whose source needs no
    /// acknowledgement (benchmarks, one-shot sources).
    pub fn detached() -> Self {
        Self { token: 0, tx: None }
    }

    pub fn token(&self) -> u64 {
        self.token
    }

    pub fn settle(mut self, outcome: Outcome) {
        self.report(outcome);
    }

    fn report(&mut self, outcome: Outcome) {
        if let Some(tx) = self.tx.take() {
            // A closed receiver means the connector has already returned; the
            // record stays unacknowledged at its source and comes again.
            let _ = tx.send(Ack {
                token: self.token,
                outcome,
            });
        }
    }
}

impl Drop for AckHandle {
    fn drop(&mut self) {
        self.report(Outcome::Redeliver);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settle_reports_once_and_drop_reports_redeliver() {
        let (acks, mut rx) = Acknowledgements::channel();
        acks.handle(1).settle(Outcome::Delivered);
        drop(acks.handle(2));

        assert_eq!(
            rx.try_recv().ok(),
            Some(Ack {
                token: 1,
                outcome: Outcome::Delivered
            })
        );
        assert_eq!(
            rx.try_recv().ok(),
            Some(Ack {
                token: 2,
                outcome: Outcome::Redeliver
            })
        );
        assert!(rx.try_recv().is_err());
    }
}
