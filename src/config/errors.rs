//! Config errors: every problem found in a config file, each with where it is.

use std::fmt;

/// A place in the config file: 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Key path such as `pipelines[1].retry.max_attempts`; empty for the
    /// document as a whole.
    pub path: String,
    /// Where the problem is; `None` when the file could not be read at all.
    pub position: Option<Position>,
    /// The offending value as written. A value that came from an environment
    /// variable is shown as its `${VAR}` text, never expanded.
    pub value: Option<String>,
    /// What is wrong, as a sentence without the path or position.
    pub message: String,
}

impl ConfigError {
    /// An error about the value written at `site`.
    pub(super) fn at(site: &super::document::Site, message: String) -> Self {
        Self {
            path: site.path.clone(),
            position: Some(site.at()),
            value: site.shown.clone(),
            message,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(position) = self.position {
            write!(f, "{position}: ")?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in one config file, ordered by position.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigErrors {
    origin: String,
    errors: Vec<ConfigError>,
}

impl ConfigErrors {
    pub(crate) fn new(origin: &str, mut errors: Vec<ConfigError>) -> Self {
        // Order by position; errors without one (an unreadable file) first.
        // The sort is stable: of two errors at one place, the one found first
        // stays first.
        errors.sort_by_key(|error| error.position);

        // One error per key path: a second one there is most often a
        // consequence of the first (an unset variable, then a wrong type).
        let mut seen = std::collections::HashSet::new();
        errors.retain(|error| match error.path.is_empty() {
            true => seen.insert((String::new(), error.message.clone())),
            false => seen.insert((error.path.clone(), String::new())),
        });
        Self {
            origin: origin.to_owned(),
            errors,
        }
    }

    /// The file name (or other origin) the errors are about.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The problems, ordered by line and column.
    pub fn errors(&self) -> &[ConfigError] {
        &self.errors
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.errors.len();
        let plural = if count == 1 { "" } else { "s" };
        write!(f, "{count} error{plural} in config file {}:", self.origin)?;
        for error in &self.errors {
            let gap = if error.position.is_some() { "" } else { " " };
            write!(f, "\n{}:{gap}{error}", self.origin)?;
        }
        Ok(())
    }
}
