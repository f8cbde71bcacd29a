//! Reading a config file: YAML, variables, schema, types, then cross-checks.

use std::path::Path;

use super::{
    Config, checks,
    document::{Document, escape_pointer},
    errors::{ConfigError, ConfigErrors},
    validate::{self, shown},
    yaml,
};

/// Reads, expands and checks the config file at `path`, taking `${VAR}`
/// values from the process environment.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    load_with_env(path, |name| std::env::var(name).ok())
}

/// Like [`load`], with `${VAR}` values looked up by `env`.
pub fn load_with_env(
    path: &Path,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    let origin = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => parse_with_env(&text, &origin, env),
        Err(error) => {
            let unreadable = ConfigError {
                path: String::new(),
                position: None,
                value: None,
                message: format!("cannot read the config file: {error}"),
            };
            Err(ConfigErrors::new(&origin, vec![unreadable]))
        }
    }
}

/// Parses and checks config text; `origin` names it in error messages.
/// `${VAR}` values come from the process environment.
pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigErrors> {
    parse_with_env(text, origin, |name| std::env::var(name).ok())
}

/// Like [`parse`], with `${VAR}` values looked up by `env`.
pub fn parse_with_env(
    text: &str,
    origin: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    // A syntax error leaves nothing to check further.
    let root = yaml::parse(text).map_err(|error| ConfigErrors::new(origin, vec![error]))?;

    let mut errors = Vec::new();
    let document = Document::build(root, &env, &mut errors);
    validate::check(&document, &mut errors);
    checks::check(&document, &mut errors);

    // Types catch what the schema cannot (a number too large for its field),
    // but stop at the first problem, which is then most often one already
    // reported.
    match serde_path_to_error::deserialize::<_, Config>(&document.value) {
        Ok(config) if errors.is_empty() => return Ok(config),
        Ok(_) => {}
        Err(error) => {
            let error = type_error(&document, &error);
            if !errors
                .iter()
                .any(|known| overlaps(&known.path, &error.path))
            {
                errors.push(error);
            }
        }
    }
    Err(ConfigErrors::new(origin, errors))
}

fn type_error(
    document: &Document,
    error: &serde_path_to_error::Error<serde_json::Error>,
) -> ConfigError {
    use serde_path_to_error::Segment;

    let mut pointer = String::new();
    for segment in error.path().iter() {
        match segment {
            Segment::Seq { index } => pointer.push_str(&format!("/{index}")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                pointer.push('/');
                pointer.push_str(&escape_pointer(key));
            }
            Segment::Unknown => break,
        }
    }
    let site = document.nearest(&pointer);
    // serde's messages quote the value, which may have come from a variable.
    let message = match site.expanded {
        true => format!(
            "`{}` expands to a value that does not fit here",
            shown(site.shown.as_deref().unwrap_or_default())
        ),
        false => error.inner().to_string(),
    };
    ConfigError {
        path: site.path.clone(),
        position: Some(site.at()),
        value: site.shown.clone(),
        message,
    }
}

/// One path is the other or lies inside it.
fn overlaps(a: &str, b: &str) -> bool {
    let inside = |outer: &str, inner: &str| {
        outer.is_empty()
            || inner == outer
            || inner
                .strip_prefix(outer)
                .is_some_and(|rest| rest.starts_with(['.', '[']))
    };
    inside(a, b) || inside(b, a)
}
