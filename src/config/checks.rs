//! Checks that span several parts of the config, or that its schema cannot
//! express: pipeline names, function references, URLs, addresses, delays.
//!
//! They run on the document rather than on a deserialized `Config`, so they
//! still run, and report, when another part of the file is wrong.

use std::{collections::HashMap, net::SocketAddr, time::Duration};

use serde_json::Value;

use super::{
    defaults::{MIN_INITIAL_DELAY, MIN_MAX_DELAY},
    document::{Document, Site, escape_pointer},
    errors::ConfigError,
    validate::{quoted_list, shown, suggest, with_value},
};

/// Adds every problem found to `errors`.
pub(super) fn check(document: &Document, errors: &mut Vec<ConfigError>) {
    let mut checks = Checks { document, errors };
    checks.listen();
    checks.endpoints();
    checks.pipelines();
}

struct Checks<'a> {
    document: &'a Document,
    errors: &'a mut Vec<ConfigError>,
}

impl<'a> Checks<'a> {
    /// The string at `pointer` and where it was written, if there is one.
    fn text(&self, pointer: &str) -> Option<(&'a str, &'a Site)> {
        let document: &'a Document = self.document;
        let text = document.value.pointer(pointer)?.as_str()?;
        Some((text, document.site(pointer)?))
    }

    fn push(&mut self, site: &Site, message: String) {
        self.errors.push(ConfigError::at(site, message));
    }

    fn listen(&mut self) {
        let Some((text, site)) = self.text("/server/listen") else {
            return;
        };
        if text.parse::<SocketAddr>().is_err() {
            let rule = "not a socket address; write one such as `0.0.0.0:9090`";
            self.push(site, with_value(site, rule));
        }
    }

    fn endpoints(&mut self) {
        let Some(functions) = self.document.value["functions"].as_object() else {
            return;
        };
        for name in functions.keys() {
            let pointer = format!("/functions/{}/endpoint", escape_pointer(name));
            let Some((text, site)) = self.text(&pointer) else {
                continue;
            };
            // The same rules the invoker applies, so `validate` and `run` agree.
            let rule = match url::Url::parse(text) {
                Ok(url) if !matches!(url.scheme(), "http" | "https") => {
                    "not an `http://` or `https://` URL".to_owned()
                }
                Ok(url) if !url.has_host() => "a URL without a host".to_owned(),
                Ok(url) if url.query().is_some() || url.fragment().is_some() => {
                    "a URL with a query or a fragment; give the base URL only, the invoke \
                     path and `?Qualifier=` are added to it"
                        .to_owned()
                }
                Ok(_) => continue,
                Err(error) => format!("not a URL ({error})"),
            };
            self.push(site, with_value(site, &rule));
        }
        for name in functions.keys() {
            let pointer = format!("/functions/{}/timeout", escape_pointer(name));
            self.at_least(
                &pointer,
                Duration::from_millis(1),
                "an invocation could never finish",
            );
        }
    }

    /// A duration at `pointer`, when there is one, is `min` or more.
    fn at_least(&mut self, pointer: &str, min: Duration, why: &str) {
        let Some((text, site)) = self.text(pointer) else {
            return;
        };
        if humantime::parse_duration(text).is_ok_and(|d| d < min) {
            let rule = format!("shorter than {}: {why}", humantime::format_duration(min));
            self.push(site, with_value(site, &rule));
        }
    }

    fn pipelines(&mut self) {
        let Some(pipelines) = self.document.value["pipelines"].as_array() else {
            return;
        };
        let mut names = HashMap::new();
        for (index, pipeline) in pipelines.iter().enumerate() {
            let pointer = format!("/pipelines/{index}");
            self.name(&pointer, &mut names);
            self.function(&pointer, pipeline);
            self.delays(&pointer);
        }
    }

    /// Names are unique, and safe as one segment of a URL path.
    fn name(&mut self, pipeline: &str, names: &mut HashMap<&'a str, &'a Site>) {
        let Some((name, site)) = self.text(&format!("{pipeline}/name")) else {
            return;
        };
        if !name.is_empty() && name.chars().all(|c| c == '.') {
            let rule = "not a valid pipeline name; `.` and `..` have a meaning in URL paths";
            return self.push(site, with_value(site, rule));
        }
        let Some(first) = names.get(name) else {
            names.insert(name, site);
            return;
        };
        let other = format!("{} on line {}", first.path, first.value.line);
        let message = match site.expanded {
            true => format!(
                "`{}` expands to a pipeline name that {other} already has",
                shown(site.shown.as_deref().unwrap_or_default())
            ),
            false => format!(
                "duplicate pipeline name `{}`; {other} has it too",
                shown(name)
            ),
        };
        self.push(site, message);
    }

    /// `function` names a key of `functions`, one that can report batch item
    /// failures when the pipeline asks for them.
    fn function(&mut self, pipeline: &str, value: &Value) {
        let Some((name, site)) = self.text(&format!("{pipeline}/function")) else {
            return;
        };
        let Some(functions) = self.document.value["functions"].as_object() else {
            return;
        };
        let Some(function) = functions.get(name) else {
            let keys = functions.keys().map(String::as_str);
            let message = unknown_function(site, name, keys);
            return self.push(site, message);
        };

        let asks_for_failures = value["report_batch_item_failures"] == true;
        if asks_for_failures && function["invocation_type"] == "Event" {
            let pointer = format!("{pipeline}/report_batch_item_failures");
            let Some(flag) = self.document.site(&pointer) else {
                return;
            };
            let message = format!(
                "function `{name}` is invoked with `invocation_type: Event`, which returns no \
                 answer to read failures from; use `RequestResponse` or turn this off"
            );
            self.push(&flag.clone(), message);
        }
    }

    /// Delays are long enough not to hammer a down function, and
    /// `initial_delay` is no longer than `max_delay`.
    fn delays(&mut self, pipeline: &str) {
        let why = "retries that fast would hammer a function that is down";
        for (key, min) in [
            ("initial_delay", MIN_INITIAL_DELAY),
            ("max_delay", MIN_MAX_DELAY),
        ] {
            self.at_least(&format!("{pipeline}/retry/{key}"), min, why);
        }
        let delay = |key: &str| {
            let (text, site) = self.text(&format!("{pipeline}/retry/{key}"))?;
            Some((humantime::parse_duration(text).ok()?, site))
        };
        let (Some((initial, initial_site)), Some((max, max_site))) =
            (delay("initial_delay"), delay("max_delay"))
        else {
            return;
        };
        if initial > max {
            let max_text = shown(max_site.shown.as_deref().unwrap_or_default());
            let rule = format!("longer than `max_delay` (`{max_text}`)");
            self.push(initial_site, with_value(initial_site, &rule));
        }
    }
}

fn unknown_function<'k>(site: &Site, name: &str, keys: impl Iterator<Item = &'k str>) -> String {
    let keys: Vec<&str> = keys.collect();
    let head = match site.expanded {
        true => format!(
            "`{}` expands to a function that `functions` does not define",
            shown(site.shown.as_deref().unwrap_or_default())
        ),
        false => format!("unknown function `{}`", shown(name)),
    };
    // A suggestion would hint at a value that may be secret.
    let near = suggest(name, keys.iter().copied()).filter(|_| !site.expanded);
    match near {
        Some(near) => format!("{head}; did you mean `{near}`?"),
        None if keys.is_empty() => format!("{head}; `functions` defines none"),
        None => format!("{head}; `functions` defines {}", quoted_list(keys)),
    }
}
