//! `${VAR}` and `${VAR:-default}` in scalar values, taken from the environment.
//!
//! Expansion runs on each scalar after the YAML is parsed, so a variable can
//! never change the document's structure. `$${` stands for a literal `${`.

/// A scalar after expansion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Expansion {
    pub text: String,
    /// Whether any `${…}` was replaced. The text may then hold a secret and
    /// must never be shown.
    pub substituted: bool,
}

/// Why a scalar could not be expanded. Neither variant holds a variable's
/// value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ExpandError {
    /// `${NAME}` without a default, and `NAME` is not set.
    Unset { name: String },
    /// A `${` that is not a well-formed reference, such as `${}` or `${A`.
    Malformed { reference: String },
}

impl ExpandError {
    /// The sentence an operator reads.
    pub fn message(&self) -> String {
        match self {
            ExpandError::Unset { name } => format!(
                "environment variable `{name}` is not set; set it, or give a default \
                 with `${{{name}:-default}}`"
            ),
            ExpandError::Malformed { reference } => format!(
                "`{reference}` is not a variable reference; write `${{NAME}}` or \
                 `${{NAME:-default}}`, or `$${{` for a literal `${{`"
            ),
        }
    }
}

/// Replaces every `${NAME}` and `${NAME:-default}` in `text`, looking names up
/// with `env`. A default applies when the variable is unset or empty, as in a
/// POSIX shell; it is taken literally (no nested references).
pub(super) fn expand(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Expansion, ExpandError> {
    let mut out = String::with_capacity(text.len());
    let mut substituted = false;
    let mut rest = text;

    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let (value, after) = reference(after, env)?;
            out.push_str(&value);
            substituted = true;
            rest = after;
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);

    Ok(Expansion {
        text: out,
        substituted,
    })
}

/// Resolves one reference; `text` starts right after its `${`. Returns the
/// value and what follows the closing `}`.
fn reference<'t>(
    text: &'t str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(String, &'t str), ExpandError> {
    let malformed = |end: usize| ExpandError::Malformed {
        reference: format!("${{{}", &text[..end]),
    };
    let Some(close) = text.find('}') else {
        return Err(malformed(text.len()));
    };
    let inner = &text[..close];
    let (name, default) = match inner.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (inner, None),
    };
    if !is_name(name) {
        return Err(malformed(close + 1));
    }

    let value = match (env(name), default) {
        (Some(value), Some(default)) if value.is_empty() => default.to_owned(),
        (Some(value), _) => value,
        (None, Some(default)) => default.to_owned(),
        (None, None) => {
            return Err(ExpandError::Unset {
                name: name.to_owned(),
            });
        }
    };
    Ok((value, &text[close + 1..]))
}

/// A POSIX-style variable name: a letter or `_`, then letters, digits or `_`.
fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "PORT" => Some("8080".to_owned()),
            "SECRET" => Some("hunter2".to_owned()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn expanded(text: &str) -> String {
        expand(text, &env).expect("the text expands").text
    }

    #[test]
    fn replaces_set_variables() {
        assert_eq!(expanded("${PORT}"), "8080");
        assert_eq!(expanded("http://h:${PORT}/x"), "http://h:8080/x");
        assert_eq!(expanded("${PORT}${PORT}"), "80808080");
    }

    #[test]
    fn uses_the_default_when_unset_or_empty() {
        assert_eq!(expanded("${NOPE:-9000}"), "9000");
        assert_eq!(expanded("${EMPTY:-x}"), "x");
        assert_eq!(expanded("${PORT:-1}"), "8080");
        assert_eq!(expanded("${NOPE:-}"), "");
        assert_eq!(expanded("${NOPE:-a:-b}"), "a:-b");
    }

    #[test]
    fn an_empty_variable_without_default_is_empty() {
        assert_eq!(expanded("[${EMPTY}]"), "[]");
    }

    #[test]
    fn double_dollar_escapes_a_reference() {
        assert_eq!(expanded("$${PORT}"), "${PORT}");
        assert_eq!(expanded("a$${b}c"), "a${b}c");
        let escaped = expand("$${PORT}", &env).expect("the text expands");
        assert!(!escaped.substituted);
    }

    #[test]
    fn other_dollars_are_kept() {
        assert_eq!(expanded("$PORT"), "$PORT");
        assert_eq!(expanded("a$$b$"), "a$$b$");
        assert_eq!(expanded("$LATEST"), "$LATEST");
    }

    #[test]
    fn marks_substitution() {
        assert!(expand("${PORT}", &env).expect("expands").substituted);
        assert!(expand("${NOPE:-1}", &env).expect("expands").substituted);
        assert!(!expand("plain", &env).expect("expands").substituted);
    }

    #[test]
    fn an_unset_variable_without_default_is_an_error() {
        assert_eq!(
            expand("x${NOPE}y", &env),
            Err(ExpandError::Unset {
                name: "NOPE".to_owned()
            })
        );
    }

    #[test]
    fn malformed_references_are_errors() {
        for (text, reference) in [
            ("${}", "${}"),
            ("${1A}", "${1A}"),
            ("${A", "${A"),
            ("x ${A B} y", "${A B}"),
            ("${A-b}", "${A-b}"),
        ] {
            assert_eq!(
                expand(text, &env),
                Err(ExpandError::Malformed {
                    reference: reference.to_owned()
                }),
                "{text}"
            );
        }
    }

    #[test]
    fn error_messages_never_hold_a_value() {
        let unset = expand("${SECRET}${NOPE}", &env).expect_err("NOPE is unset");
        assert!(!unset.message().contains("hunter2"), "{}", unset.message());
        assert!(unset.message().contains("`NOPE`"), "{}", unset.message());
    }
}
