//! The connectors compiled into this binary, built from their config.
//!
//! Each connector crate is behind the cargo feature of its name and adds a
//! variant to [`SourceConfig`](crate::config::SourceConfig) and, where it has
//! one, to [`DeadLetterConfig`](crate::config::DeadLetterConfig).

use trigger_bridge_sdk::Connector;

use crate::config::SourceConfig;

/// The connector a pipeline's `source` names.
pub fn connector(source: &SourceConfig) -> Result<Box<dyn Connector>, String> {
    match *source {}
}
