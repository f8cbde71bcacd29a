//! Dead-letter sinks built into the engine.
