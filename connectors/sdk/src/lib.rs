//! The contract between trigger-bridge's engine and its connectors.
//!
//! A connector reads a source and yields [`Record`]s, each already serialized in
//! the Lambda record shape of its source. The engine batches records, wraps each
//! batch in the source's [`Envelope`], invokes the function, and reports every
//! record's final [`Outcome`] back through the record's [`AckHandle`]. Only then
//! does the connector acknowledge the record at its source.
//!
//! The pieces:
//! - [`record`]: what a connector yields.
//! - [`ack`]: how the connector learns each record's outcome.
//! - [`envelope`]: the Lambda event containers, with exact size accounting.
//! - [`connector`]: the trait a connector implements and what it is handed.
//! - [`shutdown`]: the two-phase shutdown signal.
//! - [`dead_letter`]: the dead-letter sink interface and Lambda's on-failure
//!   record shapes.
//! - [`ordered`]: a helper for sources that checkpoint a contiguous position.

pub mod ack;
pub mod connector;
pub mod dead_letter;
pub mod envelope;
pub mod ordered;
pub mod record;
pub mod shutdown;
pub mod time;

#[cfg(feature = "testing")]
pub mod testing;

pub use ack::{Ack, AckHandle, Acknowledgements, Outcome};
pub use connector::{
    Connector, ConnectorError, Family, SourceContext, SourceDescriptor, SourceStatus,
};
pub use dead_letter::{Condition, DeadLetterError, DeadLetterSink, FailedBatch};
pub use envelope::{BatchSizer, Envelope, GroupKey};
pub use record::{ItemId, OrderingKey, Record, RecordSender};
pub use shutdown::Shutdown;
