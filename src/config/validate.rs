//! Checks the document against the config's JSON Schema and words each
//! problem for an operator.
//!
//! Messages are built from the error kind, the schema and the document's own
//! text, never from the validator's messages, which quote values verbatim and
//! could show a secret that came from the environment.

use jsonschema::{ValidationError, error::ValidationErrorKind};
use serde_json::Value;

use super::{
    document::{Document, Site, child_path, escape_pointer},
    errors::ConfigError,
    schema,
};

/// The schema's `$defs` names of externally tagged enums, and what one of
/// their variants is called.
const VARIANT_NOUNS: &[(&str, &str)] = &[
    ("SourceConfig", "connector"),
    ("DeadLetterConfig", "dead-letter sink"),
];

/// The `pattern`s in the schema, and what a value that fails one is.
const PATTERNS: &[(&str, &str)] = &[
    (
        r"^[A-Za-z0-9._-]+$",
        "not a valid pipeline name; use letters, digits, `.`, `_` and `-`",
    ),
    (
        r"^[a-zA-Z0-9$_-]{1,128}$",
        "not a valid qualifier; use 1 to 128 letters, digits, `$`, `_` and `-`",
    ),
    (r"^\s*\d+\s*[a-zµ]+(\s*\d+\s*[a-zµ]+)*\s*$", DURATION),
];

const DURATION: &str = "not a duration; write one such as `500ms`, `30s`, `5m` or `1h 30m`";

/// Adds every schema violation in `document` to `errors`.
pub(super) fn check(document: &Document, errors: &mut Vec<ConfigError>) {
    let schema = schema::schema();
    let validator = schema::validator(&schema);
    let mut words = Words {
        document,
        schema: &schema,
        errors,
    };
    for error in validator.iter_errors(&document.value) {
        words.error(&error);
    }
}

/// Did-you-mean: the candidate closest to `word`, if close enough.
pub(super) fn suggest<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let word = word.to_lowercase();
    candidates
        .into_iter()
        .map(|candidate| {
            let score = strsim::jaro_winkler(&word, &candidate.to_lowercase());
            (score, candidate)
        })
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate)
}

/// `` `a`, `b`, `c` ``
pub(super) fn quoted_list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let items: Vec<String> = items.into_iter().map(|item| format!("`{item}`")).collect();
    items.join(", ")
}

/// A value shortened to one line for a message.
pub(super) fn shown(text: &str) -> String {
    const MAX: usize = 60;
    let line = text.lines().next().unwrap_or("");
    if line.chars().count() > MAX || line.len() < text.trim_end().len() {
        let cut: String = line.chars().take(MAX).collect();
        format!("{cut}…")
    } else {
        line.to_owned()
    }
}

/// What a value is, for "expected X, found Y": `the string `abc``, or for a
/// value from the environment `` `${PORT}`, which expands to a string ``.
fn found(site: &Site, value: &Value) -> String {
    let kind = match value {
        Value::Null => "an empty value",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => return "a list".to_owned(),
        Value::Object(_) => return "a mapping".to_owned(),
    };
    match (&site.shown, site.expanded) {
        (Some(text), true) => format!("`{}`, which expands to {kind}", shown(text)),
        (Some(text), false) if !value.is_null() => format!("{kind} `{}`", shown(text)),
        _ => kind.to_owned(),
    }
}

struct Words<'a> {
    document: &'a Document,
    schema: &'a Value,
    errors: &'a mut Vec<ConfigError>,
}

impl<'a> Words<'a> {
    fn error(&mut self, error: &ValidationError<'_>) {
        let pointer = error.instance_path().as_str();
        let schema_path = error.schema_path().as_str();
        let site = self.document.nearest(pointer).clone();
        let value = error.instance();

        let message = match error.kind() {
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                return self.unknown_keys(pointer, schema_path, unexpected);
            }
            ValidationErrorKind::Required { property } => {
                return self.missing(&site, property.as_str().unwrap_or_default());
            }
            ValidationErrorKind::AnyOf { context } => return self.any_of(value, context),
            ValidationErrorKind::OneOfNotValid { context } => {
                return self.one_of(&site, pointer, schema_path, value, context);
            }
            ValidationErrorKind::Type { .. } => self.wrong_type(&site, schema_path, value),
            ValidationErrorKind::Enum { options } => enum_value(&site, options),
            ValidationErrorKind::Minimum { limit } => bound(&site, "at least", limit),
            ValidationErrorKind::Maximum { limit } => bound(&site, "at most", limit),
            ValidationErrorKind::ExclusiveMinimum { limit } => bound(&site, "more than", limit),
            ValidationErrorKind::ExclusiveMaximum { limit } => bound(&site, "less than", limit),
            ValidationErrorKind::Pattern { pattern } => with_value(&site, &pattern_rule(pattern)),
            ValidationErrorKind::Format { format } if format == "duration" => {
                with_value(&site, DURATION)
            }
            ValidationErrorKind::Format { format } => {
                with_value(&site, &format!("not a valid `{format}`"))
            }
            ValidationErrorKind::Not { .. } => self.nothing_allowed(schema_path),
            kind => format!("not valid here (schema rule `{}`)", kind.keyword()),
        };
        self.push(&site, message);
    }

    fn push(&mut self, site: &Site, message: String) {
        self.errors.push(ConfigError::at(site, message));
    }

    /// The schema node at `pointer`, or `Null` if there is none.
    fn schema_at(&self, pointer: &str) -> &'a Value {
        let schema: &'a Value = self.schema;
        schema.pointer(pointer).unwrap_or(&Value::Null)
    }

    fn unknown_keys(&mut self, object: &str, schema_path: &str, unexpected: &[String]) {
        let properties = &self.schema_at(parent(schema_path))["properties"];
        let allowed: Vec<&str> = match properties.as_object() {
            Some(properties) => properties.keys().map(String::as_str).collect(),
            None => Vec::new(),
        };
        for key in unexpected {
            let pointer = format!("{object}/{}", escape_pointer(key));
            let site = self.document.nearest(&pointer);
            let message = match suggest(key, allowed.iter().copied()) {
                Some(near) => format!("unknown key; did you mean `{near}`?"),
                None if allowed.is_empty() => "unknown key; none is allowed here".to_owned(),
                None => format!(
                    "unknown key; expected one of {}",
                    quoted_list(allowed.clone())
                ),
            };
            self.errors.push(ConfigError {
                path: site.path.clone(),
                position: Some(site.anchor()),
                value: None,
                message,
            });
        }
    }

    fn missing(&mut self, parent: &Site, key: &str) {
        self.errors.push(ConfigError {
            path: child_path(&parent.path, key),
            position: Some(parent.anchor()),
            value: None,
            message: "missing required key".to_owned(),
        });
    }

    fn wrong_type(&self, site: &Site, schema_path: &str, value: &Value) -> String {
        let rule = self.schema_at(parent(schema_path));
        if rule["format"] == "duration" {
            return format!(
                "expected a duration such as `30s`, found {}",
                found(site, value)
            );
        }
        let types = match &rule["type"] {
            Value::String(name) => vec![name.as_str()],
            Value::Array(names) => names.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let expected: Vec<&str> = types
            .into_iter()
            .filter(|name| *name != "null")
            .map(type_noun)
            .collect();
        format!(
            "expected {}, found {}",
            expected.join(" or "),
            found(site, value)
        )
    }

    /// An `Option` field is `anyOf: [T, null]`: explain why the value is not
    /// a `T`. Otherwise explain the branch that got furthest into the value.
    fn any_of(&mut self, value: &Value, context: &[Vec<ValidationError<'static>>]) {
        let null_branch = |errors: &Vec<ValidationError<'_>>| {
            !value.is_null()
                && errors.iter().any(|error| {
                    matches!(error.kind(), ValidationErrorKind::Type { .. })
                        && error.schema_path().as_str().ends_with("/type")
                        && self.schema_at(error.schema_path().as_str()) == "null"
                })
        };
        let depth = |errors: &Vec<ValidationError<'_>>| {
            let deepest = errors
                .iter()
                .map(|error| error.instance_path().as_str().len());
            (deepest.max().unwrap_or(0), usize::MAX - errors.len())
        };
        let best = context
            .iter()
            .filter(|errors| !null_branch(errors))
            .max_by_key(|errors| depth(errors));
        for error in best.into_iter().flatten() {
            self.error(error);
        }
    }

    /// An externally tagged enum: a mapping with exactly one key naming the
    /// variant.
    fn one_of(
        &mut self,
        site: &Site,
        pointer: &str,
        schema_path: &str,
        value: &Value,
        context: &[Vec<ValidationError<'static>>],
    ) {
        let branches = self
            .schema_at(schema_path)
            .as_array()
            .cloned()
            .unwrap_or_default();
        let variants: Vec<&str> = branches.iter().filter_map(variant_name).collect();
        let noun = variant_noun(schema_path);
        let names = quoted_list(variants.iter().copied());

        let keys: Vec<&String> = value
            .as_object()
            .map(|m| m.keys().collect())
            .unwrap_or_default();
        let message = match keys.as_slice() {
            [key] => match variants.iter().position(|variant| variant == key) {
                Some(index) => {
                    for error in context.get(index).into_iter().flatten() {
                        self.error(error);
                    }
                    return;
                }
                None => return self.unknown_variant(pointer, key, noun, &variants),
            },
            [] if value.is_object() => format!("names no {noun}; set one of {names}"),
            [_, ..] => format!(
                "set exactly one {noun}, found {}",
                quoted_list(keys_str(&keys))
            ),
            [] => format!(
                "expected a {noun}: a mapping with one key naming it, found {}",
                found(site, value)
            ),
        };
        self.push(site, message);
    }

    fn unknown_variant(&mut self, pointer: &str, key: &str, noun: &str, variants: &[&str]) {
        let site = self
            .document
            .nearest(&format!("{pointer}/{}", escape_pointer(key)));
        // Connectors and sinks are compiled in by cargo features.
        let head = format!("unknown {noun}, or one not compiled into this build");
        let message = match suggest(key, variants.iter().copied()) {
            Some(near) => format!("{head}; did you mean `{near}`?"),
            None => format!("{head}; expected one of {}", quoted_list(variants.to_vec())),
        };
        self.errors.push(ConfigError {
            path: site.path.clone(),
            position: Some(site.anchor()),
            value: None,
            message,
        });
    }

    /// `not: {}` is how the schema says an enum has no variant at all.
    fn nothing_allowed(&self, schema_path: &str) -> String {
        if defs_name(schema_path) == Some("SourceConfig") {
            return "no connector is compiled in, so no pipeline can run; build trigger-bridge \
                    with the cargo feature of a connector"
                .to_owned();
        }
        match VARIANT_NOUNS
            .iter()
            .find(|(name, _)| Some(*name) == defs_name(schema_path))
        {
            Some((_, noun)) => format!("no {noun} is compiled in"),
            None => "no value is allowed here".to_owned(),
        }
    }
}

fn enum_value(site: &Site, options: &Value) -> String {
    let options: Vec<&str> = options
        .as_array()
        .map(|options| options.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let text = site.shown.as_deref().unwrap_or_default();
    let head = match site.expanded {
        true => format!("`{}` expands to an unknown value", shown(text)),
        false => format!("unknown value `{}`", shown(text)),
    };
    let expected = quoted_list(options.iter().copied());
    // A suggestion would hint at a value that may be secret.
    match suggest(text, options.iter().copied()).filter(|_| !site.expanded) {
        Some(near) => format!("{head}, expected one of {expected}; did you mean `{near}`?"),
        None => format!("{head}, expected one of {expected}"),
    }
}

fn bound(site: &Site, relation: &str, limit: &Value) -> String {
    let text = site.shown.as_deref().unwrap_or_default();
    format!("must be {relation} {limit}, found `{}`", shown(text))
}

/// "`value` is `rule`", without the value when it came from the environment.
pub(super) fn with_value(site: &Site, rule: &str) -> String {
    let text = site.shown.as_deref().unwrap_or_default();
    match (site.expanded, text.is_empty()) {
        (true, _) => format!("`{}` expands to a value that is {rule}", shown(text)),
        (false, true) => format!("an empty string is {rule}"),
        (false, false) => format!("`{}` is {rule}", shown(text)),
    }
}

fn pattern_rule(pattern: &str) -> String {
    match PATTERNS.iter().find(|(known, _)| *known == pattern) {
        Some((_, rule)) => (*rule).to_owned(),
        None => format!("not of the form `{pattern}`"),
    }
}

fn type_noun(name: &str) -> &str {
    match name {
        "integer" => "a whole number",
        "number" => "a number",
        "string" => "a string",
        "boolean" => "`true` or `false`",
        "object" => "a mapping",
        "array" => "a list",
        other => other,
    }
}

/// The variant an externally tagged enum's branch stands for.
fn variant_name(branch: &Value) -> Option<&str> {
    if let Some(name) = branch["const"].as_str() {
        return Some(name);
    }
    let required = branch["required"].as_array()?;
    required.first()?.as_str()
}

fn variant_noun(schema_path: &str) -> &'static str {
    let name = defs_name(schema_path);
    VARIANT_NOUNS
        .iter()
        .find(|(defs, _)| Some(*defs) == name)
        .map_or("variant", |(_, noun)| noun)
}

/// `SourceConfig` in `/$defs/SourceConfig/not`.
fn defs_name(schema_path: &str) -> Option<&str> {
    schema_path.strip_prefix("/$defs/")?.split('/').next()
}

fn parent(pointer: &str) -> &str {
    pointer.rfind('/').map_or("", |at| &pointer[..at])
}

fn keys_str<'a>(keys: &[&'a String]) -> Vec<&'a str> {
    keys.iter().map(|key| key.as_str()).collect()
}

/// Whether a `pattern` in the schema has its own sentence.
#[cfg(test)]
pub(super) fn has_message(pattern: &str) -> bool {
    PATTERNS.iter().any(|(known, _)| *known == pattern)
}
