//! The config file: its types, defaults, loading and validation.
//!
//! [`load`] reads a YAML file, expands `${VAR}` references from the
//! environment, checks it against the JSON Schema of [`Config`] ([`schema`]),
//! deserializes it, and cross-checks what a schema cannot express (function
//! references, unique pipeline names). Every problem is collected into one
//! [`ConfigErrors`], each with its key path, line and column.

mod checks;
pub mod defaults;
mod document;
mod errors;
mod expand;
mod load;
mod model;
mod schema;
#[cfg(test)]
mod tests;
mod validate;
mod yaml;

pub use errors::{ConfigError, ConfigErrors, Position};
pub use load::{load, load_with_env, parse, parse_with_env};
pub use model::*;
pub use schema::schema;
