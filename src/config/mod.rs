//! The config file: its types, defaults, loading and validation.

pub mod defaults;
mod model;

pub use model::*;
