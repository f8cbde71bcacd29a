//! The parsed YAML as a JSON value, with a map from each JSON pointer back to
//! where it was written.
//!
//! Scalars are expanded here (`${VAR}`), then typed as YAML 1.2's core schema
//! types them: a plain scalar may become null, a boolean or a number; a quoted
//! or block scalar stays a string.

use std::collections::HashMap;

use serde_json::{Map, Number, Value};

use super::{
    errors::{ConfigError, Position},
    expand::{self, ExpandError},
    yaml::{Node, NodeKind, Scalar},
};

/// The config as a JSON value, and where each part of it was written.
#[derive(Debug)]
pub(super) struct Document {
    pub value: Value,
    sites: HashMap<String, Site>,
}

/// Where a value was written.
#[derive(Debug, Clone)]
pub(super) struct Site {
    /// The key path an operator reads, such as `pipelines[1].retry`.
    pub path: String,
    /// The key's position, for a value in a mapping.
    pub key: Option<Position>,
    /// The value's position.
    pub value: Position,
    /// A scalar's text as it may be shown: after expansion when nothing was
    /// substituted, otherwise as written (`${VAR}`). `None` for mappings and
    /// lists.
    pub shown: Option<String>,
    /// The scalar was expanded from the environment.
    pub expanded: bool,
}

impl Site {
    /// Where to point for a problem with this value as a whole, such as a
    /// missing key: its key when it has one.
    pub fn anchor(&self) -> Position {
        self.key.unwrap_or(self.value)
    }

    /// Where to point for a problem with this value: a scalar itself, a
    /// mapping or list at its key.
    pub fn at(&self) -> Position {
        match self.shown {
            Some(_) => self.value,
            None => self.anchor(),
        }
    }
}

impl Document {
    /// Builds the document, expanding variables with `env`; problems with
    /// scalars and keys go to `errors`.
    pub fn build(
        root: Option<Node>,
        env: &dyn Fn(&str) -> Option<String>,
        errors: &mut Vec<ConfigError>,
    ) -> Self {
        let mut builder = Builder {
            env,
            errors,
            sites: HashMap::new(),
        };
        let value = match root {
            Some(root) if !is_empty(&root) => builder.value(&root, Place::root(root.position)),
            // An empty file is an empty config, which is valid.
            _ => {
                let start = Position { line: 1, column: 1 };
                builder.site(&Place::root(start), None, false);
                Value::Object(Map::new())
            }
        };
        Document {
            value,
            sites: builder.sites,
        }
    }

    /// The site at a JSON pointer (`/pipelines/0/name`), if that value exists.
    pub fn site(&self, pointer: &str) -> Option<&Site> {
        self.sites.get(pointer)
    }

    /// The site of the nearest existing value at or above `pointer`.
    pub fn nearest(&self, pointer: &str) -> &Site {
        let mut pointer = pointer;
        loop {
            if let Some(site) = self.sites.get(pointer) {
                return site;
            }
            match pointer.rfind('/') {
                Some(at) => pointer = &pointer[..at],
                // Every document has a site for its root.
                None => unreachable!("the document has no site for its root"),
            }
        }
    }
}

/// A document with nothing in it but `---`.
fn is_empty(root: &Node) -> bool {
    matches!(&root.kind, NodeKind::Scalar(scalar) if scalar.plain && scalar.text.is_empty())
}

/// A JSON pointer and the matching key path, built together while walking.
#[derive(Debug, Clone)]
pub(super) struct Place {
    pub pointer: String,
    pub path: String,
    pub key: Option<Position>,
    pub value: Position,
}

impl Place {
    fn root(value: Position) -> Self {
        Place {
            pointer: String::new(),
            path: String::new(),
            key: None,
            value,
        }
    }

    fn key(&self, key: &str, key_at: Position, value: Position) -> Self {
        Place {
            pointer: format!("{}/{}", self.pointer, escape_pointer(key)),
            path: child_path(&self.path, key),
            key: Some(key_at),
            value,
        }
    }

    fn index(&self, index: usize, value: Position) -> Self {
        Place {
            pointer: format!("{}/{index}", self.pointer),
            path: format!("{}[{index}]", self.path),
            key: None,
            value,
        }
    }
}

/// The key path of `key` inside `parent`: `parent.key`, or `parent["a.b"]`
/// when the key is not a plain word.
pub(super) fn child_path(parent: &str, key: &str) -> String {
    let word = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (parent.is_empty(), word) {
        (true, true) => key.to_owned(),
        (false, true) => format!("{parent}.{key}"),
        (_, false) => format!("{parent}[{key:?}]"),
    }
}

/// Escapes a key for a JSON pointer (RFC 6901).
pub(super) fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

struct Builder<'a> {
    env: &'a dyn Fn(&str) -> Option<String>,
    errors: &'a mut Vec<ConfigError>,
    sites: HashMap<String, Site>,
}

impl Builder<'_> {
    fn value(&mut self, node: &Node, place: Place) -> Value {
        match &node.kind {
            NodeKind::Scalar(scalar) => self.scalar(scalar, &place),
            NodeKind::Sequence(items) => {
                self.site(&place, None, false);
                let items = items.iter().enumerate();
                let items = items.map(|(i, item)| self.value(item, place.index(i, item.position)));
                Value::Array(items.collect())
            }
            NodeKind::Mapping(entries) => {
                self.site(&place, None, false);
                Value::Object(self.mapping(entries, &place))
            }
        }
    }

    fn mapping(&mut self, entries: &[(Node, Node)], place: &Place) -> Map<String, Value> {
        let mut map = Map::new();
        let mut first_lines = HashMap::new();
        for (key, value) in entries {
            let NodeKind::Scalar(Scalar { text: name, .. }) = &key.kind else {
                let message = "a key must be a plain text, not a list or a mapping";
                self.error(&place.path, key.position, None, message.to_owned());
                continue;
            };
            let child = place.key(name, key.position, value.position);
            if let Some(line) = first_lines.get(name) {
                let message = format!("duplicate key; it is already set on line {line}");
                self.error(&child.path, key.position, None, message);
                continue;
            }
            first_lines.insert(name.clone(), key.position.line);
            let value = self.value(value, child);
            map.insert(name.clone(), value);
        }
        map
    }

    fn scalar(&mut self, scalar: &Scalar, place: &Place) -> Value {
        let expansion = match expand::expand(&scalar.text, self.env) {
            Ok(expansion) => expansion,
            Err(problem) => return self.unexpanded(scalar, place, &problem),
        };
        let value = match core_tag(scalar) {
            Ok(CoreTag::Str) => Value::String(expansion.text.clone()),
            Ok(CoreTag::Resolve) if scalar.plain => resolve(&expansion.text),
            Ok(CoreTag::Resolve) => Value::String(expansion.text.clone()),
            Err(tag) => {
                let message = format!("unsupported tag `{tag}`; only YAML's core tags are allowed");
                self.error(&place.path, place.value, None, message);
                Value::String(expansion.text.clone())
            }
        };
        let shown = match expansion.substituted {
            true => scalar.text.clone(),
            false => expansion.text,
        };
        self.site(place, Some(shown), expansion.substituted);
        value
    }

    /// Keeps a scalar that could not be expanded as written, so that checks
    /// further on still see a value there.
    fn unexpanded(&mut self, scalar: &Scalar, place: &Place, problem: &ExpandError) -> Value {
        self.error(&place.path, place.value, None, problem.message());
        self.site(place, Some(scalar.text.clone()), true);
        Value::String(scalar.text.clone())
    }

    fn site(&mut self, place: &Place, shown: Option<String>, expanded: bool) {
        let site = Site {
            path: place.path.clone(),
            key: place.key,
            value: place.value,
            shown,
            expanded,
        };
        self.sites.insert(place.pointer.clone(), site);
    }

    fn error(&mut self, path: &str, position: Position, value: Option<String>, message: String) {
        self.errors.push(ConfigError {
            path: path.to_owned(),
            position: Some(position),
            value,
            message,
        });
    }
}

enum CoreTag {
    /// `!!str`: a string whatever it looks like.
    Str,
    /// No tag, or a core tag whose type the text decides.
    Resolve,
}

/// The scalar's tag, or the text of a tag that is not one of YAML's core tags.
fn core_tag(scalar: &Scalar) -> Result<CoreTag, String> {
    let Some(tag) = &scalar.tag else {
        return Ok(CoreTag::Resolve);
    };
    match tag.suffix.as_str() {
        _ if !tag.is_yaml_core_schema() => Err(format!("{}{}", tag.handle, tag.suffix)),
        "str" => Ok(CoreTag::Str),
        "int" | "float" | "bool" | "null" => Ok(CoreTag::Resolve),
        _ => Err(format!("!!{}", tag.suffix)),
    }
}

/// Types a plain scalar as YAML 1.2's core schema does.
pub(super) fn resolve(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => Value::Null,
        "true" | "True" | "TRUE" => Value::Bool(true),
        "false" | "False" | "FALSE" => Value::Bool(false),
        _ => number(text).unwrap_or_else(|| Value::String(text.to_owned())),
    }
}

fn number(text: &str) -> Option<Value> {
    if let Some(digits) = text.strip_prefix("0x") {
        return u64::from_str_radix(digits, 16).ok().map(Value::from);
    }
    if let Some(digits) = text.strip_prefix("0o") {
        return u64::from_str_radix(digits, 8).ok().map(Value::from);
    }
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !unsigned.is_empty() && unsigned.bytes().all(|b| b.is_ascii_digit()) {
        return match text.parse::<i64>() {
            Ok(int) => Some(Value::from(int)),
            Err(_) => match text.strip_prefix('+').unwrap_or(text).parse::<u64>() {
                Ok(int) => Some(Value::from(int)),
                Err(_) => float(text),
            },
        };
    }
    if is_float(unsigned) {
        return float(text);
    }
    None
}

/// `1.5`, `.5`, `1.`, `1e3`, `1.5E-3`: YAML's float syntax without the sign.
/// Infinities and NaN have no JSON form and stay strings.
fn is_float(text: &str) -> bool {
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(at) => (&text[..at], Some(&text[at + 1..])),
        None => (text, None),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = digits(whole)
        && digits(fraction)
        && (!whole.is_empty() || !fraction.is_empty())
        && (mantissa.contains('.') || exponent.is_some());
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok
}

fn float(text: &str) -> Option<Value> {
    let parsed = text.parse::<f64>().ok()?;
    Number::from_f64(parsed).map(Value::Number)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn resolves_the_core_schema() {
        for (text, value) in [
            ("", json!(null)),
            ("~", json!(null)),
            ("null", json!(null)),
            ("true", json!(true)),
            ("False", json!(false)),
            ("8080", json!(8080)),
            ("-3", json!(-3)),
            ("+3", json!(3)),
            ("0x1f", json!(31)),
            ("0o17", json!(15)),
            ("1.5", json!(1.5)),
            ("1e3", json!(1000.0)),
            (".5", json!(0.5)),
            (
                "18446744073709551615",
                json!(18_446_744_073_709_551_615_u64),
            ),
            ("yes", json!("yes")),
            ("on", json!("on")),
            ("1h", json!("1h")),
            ("0.0.0.0:9090", json!("0.0.0.0:9090")),
            ("1.2.3", json!("1.2.3")),
            (".", json!(".")),
            ("e3", json!("e3")),
            ("1e", json!("1e")),
            (".inf", json!(".inf")),
            ("-", json!("-")),
        ] {
            assert_eq!(resolve(text), value, "{text:?}");
        }
    }

    #[test]
    fn child_paths_quote_unusual_keys() {
        assert_eq!(child_path("", "server"), "server");
        assert_eq!(
            child_path("functions", "order-handler"),
            "functions.order-handler"
        );
        assert_eq!(child_path("functions", "a.b"), "functions[\"a.b\"]");
        assert_eq!(child_path("functions", ""), "functions[\"\"]");
    }
}
