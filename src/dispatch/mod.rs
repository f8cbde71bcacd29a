//! Batching and delivery.
