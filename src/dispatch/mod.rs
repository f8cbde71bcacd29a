//! Batching and delivery: the engine's core.
//!
//! - [`batcher`]: groups a pipeline's records per ordering key into batches and
//!   dispatches them, one in flight per key on ordered sources.
//! - [`delivery`]: takes one batch to a final outcome for every record.
//! - [`policy`], [`backoff`], [`partial`], [`concurrency`]: the rules it follows.

pub mod backoff;
pub mod batcher;
pub mod concurrency;
pub mod delivery;
pub mod partial;
pub mod policy;
#[cfg(test)]
mod test_support;

pub use concurrency::Limits;
pub use delivery::{Invoke, Shared};
pub use policy::Policy;
