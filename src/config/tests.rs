//! The loader end to end on small texts: expansion and typing, positions,
//! secrets, the schema.

use std::time::Duration;

use serde_json::Value;

use super::*;

const SECRET: &str = "s3cr3t-Value";

fn env(name: &str) -> Option<String> {
    match name {
        "PORT" => Some("9000".to_owned()),
        "COUNT" => Some("12".to_owned()),
        "FLAG" => Some("true".to_owned()),
        "SECRET" => Some(SECRET.to_owned()),
        "URL" => Some("http://127.0.0.1:9000".to_owned()),
        _ => None,
    }
}

fn load(text: &str) -> Result<Config, ConfigErrors> {
    parse_with_env(text, "test.yaml", env)
}

fn errors(text: &str) -> Vec<ConfigError> {
    match load(text) {
        Ok(_) => panic!("the config loaded:\n{text}"),
        Err(errors) => errors.errors().to_vec(),
    }
}

/// `line:column: path: message` for each error.
fn lines(text: &str) -> Vec<String> {
    errors(text).iter().map(ToString::to_string).collect()
}

const ECHO: &str = "functions:\n  echo:\n    endpoint: http://127.0.0.1:9000\n";

#[test]
fn an_empty_file_is_the_default_config() {
    for text in ["", "# only a comment\n", "---\n"] {
        let config = load(text).expect("an empty config is valid");
        assert_eq!(config.server.listen, defaults::listen());
        assert_eq!(config.max_concurrency, defaults::global_max_concurrency());
        assert!(config.functions.is_empty() && config.pipelines.is_empty());
    }
}

#[test]
fn reads_a_full_function() {
    let text = "\
server: { listen: 127.0.0.1:8080, max_body_bytes: 2048 }
state: { dir: /tmp/tb }
functions:
  order-handler:
    endpoint: https://lambda.eu-west-1.amazonaws.com
    name: orders-fn
    qualifier: $LATEST
    auth: aws
    region: eu-west-1
    invocation_type: Event
    dialect: cargo-lambda
    reserved_concurrency: 0
    timeout: 1m 30s
    max_payload_bytes: 1024
    client_context: { custom: { tenant: a } }
max_concurrency: 3
shutdown_grace: 5s
pipelines: []
";
    let config = load(text).expect("the config is valid");
    let function = &config.functions["order-handler"];
    assert_eq!(function.name.as_deref(), Some("orders-fn"));
    assert_eq!(function.qualifier.as_deref(), Some("$LATEST"));
    assert_eq!(function.auth, Auth::Aws);
    assert_eq!(function.invocation_type, InvocationType::Event);
    assert_eq!(function.dialect, Dialect::CargoLambda);
    assert_eq!(function.reserved_concurrency, Some(0));
    assert_eq!(function.timeout, Duration::from_secs(90));
    assert_eq!(function.max_payload_bytes, Some(1024));
    assert_eq!(config.server.listen.port(), 8080);
    assert_eq!(config.shutdown_grace, Duration::from_secs(5));
    assert_eq!(config.max_concurrency, 3);
}

#[test]
fn an_expanded_plain_scalar_is_typed_as_yaml_would() {
    let text = format!("{ECHO}    reserved_concurrency: ${{COUNT}}\nmax_concurrency: ${{PORT}}\n");
    let config = load(&text).expect("the numbers come from the environment");
    assert_eq!(config.max_concurrency, 9000);
    assert_eq!(config.functions["echo"].reserved_concurrency, Some(12));
}

#[test]
fn a_quoted_expanded_scalar_stays_a_string() {
    assert_eq!(
        lines("max_concurrency: \"${PORT}\"\n"),
        [
            "1:18: max_concurrency: expected a whole number, found `${PORT}`, which expands to a \
          string"
        ]
    );
    let config = load("functions:\n  echo:\n    endpoint: http://h\n    name: '${COUNT}'\n")
        .expect("a quoted number is a name");
    assert_eq!(config.functions["echo"].name.as_deref(), Some("12"));
}

#[test]
fn defaults_and_escapes_expand_inside_values() {
    let text = "functions:\n  echo:\n    endpoint: ${URL}\n    name: a$${b}\n    \
                region: ${NO_SUCH_VAR:-eu-west-1}\n";
    let config = load(text).expect("the config is valid");
    let echo = &config.functions["echo"];
    assert_eq!(echo.endpoint, "http://127.0.0.1:9000");
    assert_eq!(echo.name.as_deref(), Some("a${b}"));
    assert_eq!(echo.region.as_deref(), Some("eu-west-1"));
}

#[test]
fn a_value_cannot_change_the_structure() {
    let env = |_: &str| Some("{ endpoint: http://h }\nextra: 1".to_owned());
    let errors = parse_with_env("functions:\n  echo: ${X}\n", "t.yaml", env)
        .expect_err("a string is not a function");
    assert_eq!(errors.errors().len(), 1, "{errors}");
    assert_eq!(errors.errors()[0].path, "functions.echo");
}

#[test]
fn keys_are_not_expanded() {
    assert_eq!(
        lines("${PORT}: 1\n"),
        [
            "1:1: [\"${PORT}\"]: unknown key; expected one of `functions`, `max_concurrency`, \
          `pipelines`, `server`, `shutdown_grace`, `state`"
        ]
    );
}

#[test]
fn an_unset_variable_is_reported_once_at_its_value() {
    assert_eq!(
        lines("max_concurrency: ${NO_SUCH_VAR}\n"),
        [
            "1:18: max_concurrency: environment variable `NO_SUCH_VAR` is not set; set it, or give \
          a default with `${NO_SUCH_VAR:-default}`"
        ]
    );
}

#[test]
fn no_error_shows_an_expanded_value() {
    let text = "\
server:
  listen: '${SECRET}'
  max_body_bytes: ${SECRET}
functions:
  echo:
    endpoint: ${SECRET}
    auth: ${SECRET}
    qualifier: x${SECRET}!
    timeout: ${SECRET}
    max_payload_bytes: 99999999999999999999${COUNT}
    reserved_concurrency: 1${PORT}00000000
state: { dir: [ '${SECRET}' ] }
max_concurrency:
  - ${SECRET}
shutdown_grace: ${SECRET}
";
    let errors = load(text).expect_err("every value is wrong");
    let report = format!("{errors}\n{errors:?}");
    assert!(!report.contains(SECRET), "{report}");
    assert!(!report.contains("9000"), "{report}");
    assert!(errors.errors().len() >= 9, "{report}");
}

#[test]
fn a_number_too_large_for_its_field_is_reported() {
    let text = format!("{ECHO}    reserved_concurrency: 4294967296\n");
    assert_eq!(
        lines(&text),
        [
            "4:27: functions.echo.reserved_concurrency: must be at most 4294967295, found \
          `4294967296`"
        ]
    );
    let text = format!("{ECHO}    reserved_concurrency: 9${{PORT}}000000\n");
    assert_eq!(
        lines(&text),
        [
            "4:27: functions.echo.reserved_concurrency: must be at most 4294967295, found \
          `9${PORT}000000`"
        ]
    );
}

/// `1.0` is an integer to JSON Schema but not to serde: the one check left to
/// deserialization.
#[test]
fn what_only_deserialization_catches_is_reported() {
    assert_eq!(
        lines("max_concurrency: 1.0\n"),
        ["1:18: max_concurrency: invalid type: floating point `1.0`, expected u32"]
    );
    let env = |_: &str| Some("1.0".to_owned());
    let errors = parse_with_env("max_concurrency: ${ONE}\n", "t.yaml", env).expect_err("a float");
    assert_eq!(
        errors.errors()[0].to_string(),
        "1:18: max_concurrency: `${ONE}` expands to a value that does not fit here"
    );
}

#[test]
fn syntax_errors_have_a_position() {
    let cases = [
        ("a: [1, 2\n", 2),
        ("functions:\n\techo: {}\n", 2),
        ("a: 'open\n", 1),
        ("max_concurrency: 1\nmax_concurrency: 2\n", 2),
        ("a: 1\n---\nb: 2\n", 2),
    ];
    for (text, line) in cases {
        let errors = errors(text);
        assert_eq!(errors.len(), 1, "{text:?}: {errors:?}");
        let position = errors[0].position.expect("a syntax error has a position");
        assert_eq!(position.line, line, "{text:?}: {errors:?}");
    }
}

#[test]
fn a_duplicate_key_names_the_first() {
    assert_eq!(
        lines("max_concurrency: 1\nmax_concurrency: 2\n"),
        ["2:1: max_concurrency: duplicate key; it is already set on line 1"]
    );
}

#[test]
fn aliases_are_expanded_and_tags_respected() {
    let text = "\
functions:
  a: &fn { endpoint: http://h, timeout: 5s }
  b: *fn
  c: { endpoint: http://h, name: !!str 123 }
";
    let config = load(text).expect("the config is valid");
    assert_eq!(config.functions["b"].timeout, Duration::from_secs(5));
    assert_eq!(config.functions["c"].name.as_deref(), Some("123"));

    assert_eq!(
        lines("max_concurrency: !custom 1\n"),
        ["1:18: max_concurrency: unsupported tag `!custom`; only YAML's core tags are allowed"]
    );
}

#[test]
fn an_alias_bomb_is_refused() {
    let mut text = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n".to_owned();
    for level in 1..8 {
        let previous = level - 1;
        let items = vec![format!("*a{previous}"); 10].join(", ");
        text.push_str(&format!("a{level}: &a{level} [{items}]\n"));
    }
    let errors = lines(&text);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("more than 100000 YAML nodes"),
        "{errors:?}"
    );
}

/// Connectors are cargo features: which message comes depends on the build.
#[test]
fn a_source_names_the_missing_connectors() {
    let pipeline = "pipelines:\n  - name: a\n    function: echo\n    source:\n      nope: {}\n";
    let text = format!("{ECHO}{pipeline}");
    let errors = lines(&text);
    let connectors = schema()["$defs"]["SourceConfig"]["oneOf"]
        .as_array()
        .map(Vec::len);
    let expected = match connectors {
        None => {
            "7:5: pipelines[0].source: no connector is compiled in, so no pipeline can run; \
                 build trigger-bridge with the cargo feature of a connector"
        }
        Some(_) => {
            "8:7: pipelines[0].source.nope: unknown connector, or one not compiled into \
                    this build; expected one of"
        }
    };
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].starts_with(expected), "{errors:?}");
}

#[test]
fn a_root_that_is_not_a_mapping_is_reported() {
    assert_eq!(lines("- a\n"), ["1:1: expected a mapping, found a list"]);
    assert_eq!(
        lines("hello\n"),
        ["1:1: expected a mapping, found a string `hello`"]
    );
}

#[test]
fn display_has_a_header_and_one_line_an_error() {
    let errors = parse_with_env("max_concurrency: 0\nsever: {}\n", "config/x.yaml", env)
        .expect_err("two errors");
    assert_eq!(
        errors.to_string(),
        "2 errors in config file config/x.yaml:\n\
         config/x.yaml:1:18: max_concurrency: must be at least 1, found `0`\n\
         config/x.yaml:2:1: sever: unknown key; did you mean `server`?"
    );
    let error = &errors.errors()[0];
    assert_eq!(error.value.as_deref(), Some("0"));
    assert_eq!(
        error.position,
        Some(Position {
            line: 1,
            column: 18
        })
    );
}

// === the schema ===

#[test]
fn the_schema_describes_fields_for_operators() {
    let schema = schema();
    let pipeline = &schema["$defs"]["PipelineConfig"]["properties"];
    for key in [
        "name",
        "source",
        "function",
        "batching",
        "retry",
        "dead_letter",
    ] {
        let description = pipeline[key]["description"].as_str().unwrap_or_default();
        assert!(
            !description.is_empty(),
            "pipelines[].{key} has no description"
        );
    }
    assert_eq!(schema["$defs"]["DurationText"]["format"], "duration");
    assert_eq!(schema["properties"]["max_concurrency"]["minimum"], 1);
    assert!(schema["$defs"].get("SourceConfig").is_some());
}

#[test]
fn every_schema_pattern_has_a_message() {
    fn patterns(value: &Value, found: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(pattern)) = map.get("pattern") {
                    found.push(pattern.clone());
                }
                map.values().for_each(|value| patterns(value, found));
            }
            Value::Array(items) => items.iter().for_each(|value| patterns(value, found)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    patterns(&schema(), &mut found);
    assert!(!found.is_empty());
    for pattern in found {
        assert!(
            validate::has_message(&pattern),
            "no message for the pattern {pattern}"
        );
    }
}

#[test]
fn durations_the_schema_accepts_are_the_ones_serde_reads() {
    for text in ["500ms", "30s", "1h 30m", "2days", "1m30s"] {
        assert!(schema::is_duration(text), "{text}");
        let config = format!("shutdown_grace: {text}\n");
        load(&config).unwrap_or_else(|errors| panic!("{errors}"));
    }
    for text in ["5 parsecs", "soon", "30", "-1s"] {
        assert!(!schema::is_duration(text), "{text}");
    }
}

// === properties ===

mod properties {
    use proptest::prelude::*;

    use super::super::{expand, parse_with_env};

    /// Text made of what YAML and references are made of, to reach many
    /// parser states.
    fn yamlish() -> impl Strategy<Value = String> {
        "([a-z_]{1,8}|[:{}\\[\\],#&*!|>'\"-]|\\$\\{|\\}|\\$|:-| {1,4}|\n|\t|[0-9.]{1,4}){0,60}"
    }

    proptest! {
        #[test]
        fn loading_never_panics_and_points_inside_the_text(text in yamlish()) {
            let env = |name: &str| (name.len() % 2 == 0).then(|| "v".to_owned());
            if let Err(errors) = parse_with_env(&text, "p.yaml", env) {
                prop_assert!(!errors.errors().is_empty());
                let lines = text.split('\n').count();
                for error in errors.errors() {
                    let position = error.position.expect("a text error has a position");
                    prop_assert!((1..=lines).contains(&position.line), "{error}");
                    prop_assert!(position.column >= 1, "{error}");
                }
            }
        }

        #[test]
        fn text_without_a_dollar_is_unchanged(text in "[^$]{0,40}") {
            let expansion = expand::expand(&text, &|_| Some("x".to_owned()));
            let expansion = expansion.expect("text without `$` expands");
            prop_assert_eq!(expansion.text, text);
            prop_assert!(!expansion.substituted);
        }

        #[test]
        fn escaping_every_reference_gives_the_text_back(text in "[a-z${}:-]{0,40}") {
            let escaped = text.replace("${", "$${");
            let expansion = expand::expand(&escaped, &|_| Some("x".to_owned()));
            prop_assert_eq!(expansion.expect("escaped text expands").text, text);
        }

        #[test]
        fn a_secret_never_shows_in_an_error(
            secret in "[A-Za-z0-9:/. -]{6,20}",
            key in prop::sample::select(vec![
                "max_concurrency", "shutdown_grace", "state", "nosuchkey",
                "server.listen", "server.max_body_bytes",
                "functions.f.endpoint", "functions.f.auth", "functions.f.qualifier",
                "functions.f.timeout", "functions.f.reserved_concurrency",
                "functions.f.invocation_type", "functions.f.client_context",
            ]),
            quoted in any::<bool>(),
        ) {
            // A secret of a letter or two would be found in any sentence.
            prop_assume!(secret.trim().len() >= 6);
            let reference = if quoted { "'${S}'" } else { "${S}" };
            let text = match key.split_once('.') {
                None => format!("{key}: {reference}\n"),
                Some((section, rest)) => match rest.split_once('.') {
                    None => format!("{section}:\n  {rest}: {reference}\n"),
                    Some((name, field)) => format!(
                        "{section}:\n  {name}:\n    endpoint: http://h\n    {field}: {reference}\n"
                    ),
                },
            };
            let env = |_: &str| Some(secret.clone());
            if let Err(errors) = parse_with_env(&text, "p.yaml", env) {
                let report = format!("{errors}\n{errors:?}");
                prop_assert!(!report.contains(secret.trim()), "{}", report);
            }
        }
    }
}
