//! The bench's source: a connector yielding `records` copies of one record,
//! serialized once before the run (each copy is a clone of the same `Bytes`),
//! as fast as its pipeline takes them. Every record has a real ack handle;
//! the source counts acks and reports once every record is settled.

use std::time::SystemTime;

use bytes::Bytes;
use futures::{FutureExt, future::BoxFuture};
use tokio::sync::oneshot;
use trigger_bridge_sdk::{
    Acknowledgements, Connector, ConnectorError, Envelope, Family, Outcome, Record, SourceContext,
    SourceDescriptor,
};

use crate::usage::{Mark, Usage};

/// What a run of the source came to.
#[derive(Debug, Clone, Copy, Default)]
pub struct Settled {
    pub delivered: usize,
    /// Records settled any other way, or never settled.
    pub not_delivered: usize,
    /// From the first record sent to the last ack.
    pub usage: Usage,
}

impl Settled {
    fn count(&mut self, outcome: &Outcome) {
        match outcome {
            Outcome::Delivered => self.delivered += 1,
            _ => self.not_delivered += 1,
        }
    }
}

pub struct BenchSource {
    payload: Bytes,
    records: usize,
    report: oneshot::Sender<Settled>,
}

impl BenchSource {
    /// A source of `records` copies of `payload`, and where it reports.
    pub fn new(payload: Bytes, records: usize) -> (Self, oneshot::Receiver<Settled>) {
        let (report, settled) = oneshot::channel();
        let source = Self {
            payload,
            records,
            report,
        };
        (source, settled)
    }

    /// Queue family, `{"Records":[...]}`: an SQS-like source.
    pub fn descriptor() -> SourceDescriptor {
        SourceDescriptor {
            family: Family::Queue,
            envelope: Envelope::records(),
            batch_info: None,
        }
    }

    pub async fn produce(self, context: SourceContext) -> Result<(), ConnectorError> {
        let (acks, mut ack_rx) = Acknowledgements::channel();
        context.status.set_connected(true);
        let entered_at = SystemTime::now();
        let mut settled = Settled::default();
        let start = Mark::now();

        // A send is never cancelled: a dropped record would report Redeliver.
        for token in 0..self.records as u64 {
            while let Ok(ack) = ack_rx.try_recv() {
                settled.count(&ack.outcome);
            }
            let record = Record::new(self.payload.clone(), entered_at, acks.handle(token));
            if context.records.send(record).await.is_err() {
                break;
            }
        }
        let mut outstanding = self.records - (settled.delivered + settled.not_delivered);
        while outstanding > 0 {
            tokio::select! {
                Some(ack) = ack_rx.recv() => settled.count(&ack.outcome),
                () = context.shutdown.stopping() => break,
            }
            outstanding -= 1;
        }

        settled.not_delivered += outstanding;
        settled.usage = start.usage();
        let _ = self.report.send(settled);
        context.shutdown.drained().await;
        context.status.set_connected(false);
        Ok(())
    }
}

impl Connector for BenchSource {
    fn descriptor(&self) -> SourceDescriptor {
        Self::descriptor()
    }

    fn run(
        self: Box<Self>,
        context: SourceContext,
    ) -> BoxFuture<'static, Result<(), ConnectorError>> {
        self.produce(context).boxed()
    }
}
