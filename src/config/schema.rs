//! The config file's JSON Schema, and the validator built from it.

use serde_json::Value;

use super::Config;

/// The JSON Schema (draft 2020-12) of the config file, with the operator docs
/// of every field as descriptions. Durations carry `"format": "duration"`.
pub fn schema() -> Value {
    let mut schema = schemars::schema_for!(Config).to_value();
    add_integer_maximums(&mut schema);
    schema
}

/// A validator for `schema`, checking formats, durations included.
pub(super) fn validator(schema: &Value) -> jsonschema::Validator {
    jsonschema::options()
        .should_validate_formats(true)
        .with_format("duration", is_duration)
        .build(schema)
        .expect("the schema generated for `Config` is a valid JSON Schema")
}

/// What `humantime_serde` accepts for a `Duration` field.
pub(super) fn is_duration(text: &str) -> bool {
    humantime::parse_duration(text).is_ok()
}

/// Gives unsigned integer fields the maximum of their Rust type, which schemars
/// only names as a `format`, so that a number too large is reported with the
/// other errors.
fn add_integer_maximums(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            let maximum = match map.get("format").and_then(Value::as_str) {
                Some("uint32") => Some(u64::from(u32::MAX)),
                Some("uint" | "uint64") => u64::try_from(usize::MAX).ok(),
                _ => None,
            };
            if let Some(maximum) = maximum {
                map.entry("maximum").or_insert(Value::from(maximum));
            }
            map.values_mut().for_each(add_integer_maximums);
        }
        Value::Array(items) => items.iter_mut().for_each(add_integer_maximums),
        _ => {}
    }
}
