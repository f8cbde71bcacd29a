//! The config loader against the example configs in `config/` and the broken
//! configs in `tests/config/broken/`, each of which has a sibling `.expected`
//! file holding the exact error report.
//!
//! Run with `BLESS=1` to rewrite the `.expected` files from the current
//! output; review the diff before committing it.

use std::{
    fs,
    path::{Path, PathBuf},
};

use trigger_bridge::config::{self, ConfigError, ConfigErrors};

/// The environment the broken configs are read with.
fn env(name: &str) -> Option<String> {
    match name {
        "TB_TEST_SECRET" => Some(SECRET.to_owned()),
        "TB_TEST_PORT" => Some("9000".to_owned()),
        _ => None,
    }
}

const SECRET: &str = "hunter2-s3cr3t";

fn files(dir: &str, extension: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("{dir} cannot be listed: {error}"))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == extension))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .{extension} file in {dir}");
    files
}

fn broken(path: &Path) -> ConfigErrors {
    match config::load_with_env(path, env) {
        Ok(_) => panic!("{} loaded without an error", path.display()),
        Err(errors) => errors,
    }
}

/// Every example loads, but for the sources of connectors this build was
/// compiled without (each connector is a cargo feature).
#[test]
fn every_example_config_loads() {
    let schema = config::schema();
    let compiled: Vec<&str> = schema["$defs"]["SourceConfig"]["oneOf"]
        .as_array()
        .map(|variants| {
            let names = variants.iter().filter_map(|v| v["required"][0].as_str());
            names.collect()
        })
        .unwrap_or_default();
    let missing_connector = |error: &ConfigError| {
        let Some((_, rest)) = error.path.split_once("].source") else {
            return false;
        };
        match rest.strip_prefix('.') {
            Some(connector) => !compiled.contains(&connector),
            None => rest.is_empty() && compiled.is_empty(),
        }
    };

    for path in files("config", "yaml") {
        // Examples may read variables, each with a default.
        let Err(errors) = config::load_with_env(&path, |_| None) else {
            continue;
        };
        let real: Vec<String> = errors
            .errors()
            .iter()
            .filter(|error| !missing_connector(error))
            .map(ToString::to_string)
            .collect();
        assert!(real.is_empty(), "{}:\n{}", path.display(), real.join("\n"));
    }
}

#[test]
fn the_skeleton_config_has_an_echo_function_and_no_pipeline() {
    let config = config::load(Path::new("config/trigger-bridge.yaml")).expect("the config loads");
    let echo = &config.functions["echo"];
    assert_eq!(echo.endpoint, "http://127.0.0.1:9000");
    assert_eq!(echo.auth, config::Auth::None);
    assert!(config.pipelines.is_empty());
}

/// The fixtures write `source: {}` where a pipeline needs a source. What is
/// said about it depends on the connectors compiled in, so the `.expected`
/// files leave it out.
fn about_the_placeholder_source(error: &ConfigError) -> bool {
    error.message.starts_with("no connector is compiled in")
        || error.message.starts_with("names no connector")
}

/// One `file:line:column: path: message` line an error, as `ConfigErrors`
/// prints them after its header.
fn report(errors: &ConfigErrors) -> String {
    let lines = errors
        .errors()
        .iter()
        .filter(|error| !about_the_placeholder_source(error));
    lines
        .map(|error| format!("{}:{error}\n", errors.origin()))
        .collect()
}

#[test]
fn broken_configs_report_exactly_the_expected_errors() {
    let bless = std::env::var_os("BLESS").is_some();
    let mut mismatches = Vec::new();
    for path in files("tests/config/broken", "yaml") {
        let errors = broken(&path);
        let report = report(&errors);
        let printed = errors.to_string();
        for line in report.lines() {
            assert!(printed.lines().any(|printed| printed == line), "{printed}");
        }
        let expected_path = path.with_extension("expected");
        if bless {
            fs::write(&expected_path, &report).expect("the .expected file is written");
            continue;
        }
        let expected = fs::read_to_string(&expected_path)
            .unwrap_or_else(|error| panic!("{}: {error}", expected_path.display()));
        assert!(
            !expected.trim().is_empty(),
            "{} expects no error",
            path.display()
        );
        if report != expected {
            mismatches.push(format!(
                "{}\n--- expected\n{expected}--- actual\n{report}",
                path.display()
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn every_broken_config_has_an_expected_report() {
    let inputs = files("tests/config/broken", "yaml");
    let reports = files("tests/config/broken", "expected");
    let stem = |path: &PathBuf| path.with_extension("");
    assert_eq!(
        inputs.iter().map(stem).collect::<Vec<_>>(),
        reports.iter().map(stem).collect::<Vec<_>>()
    );
}

#[test]
fn no_report_shows_a_value_from_the_environment() {
    for path in files("tests/config/broken", "yaml") {
        let errors = broken(&path);
        let report = format!("{errors:?}\n{errors}");
        assert!(!report.contains(SECRET), "{}: {report}", path.display());
    }
}

#[test]
fn every_error_has_a_position_inside_the_file() {
    for path in files("tests/config/broken", "yaml") {
        let lines = fs::read_to_string(&path)
            .expect("the fixture is read")
            .lines()
            .count();
        for error in broken(&path).errors() {
            let position = error
                .position
                .expect("every error in a file has a position");
            assert!(
                (1..=lines).contains(&position.line),
                "{}: {error}",
                path.display()
            );
            assert!(position.column >= 1, "{}: {error}", path.display());
        }
    }
}

#[test]
fn errors_are_ordered_by_position() {
    for path in files("tests/config/broken", "yaml") {
        let errors = broken(&path);
        let positions: Vec<_> = errors.errors().iter().map(|error| error.position).collect();
        assert!(positions.is_sorted(), "{}: {errors}", path.display());
    }
}

#[test]
fn a_missing_file_is_an_error_that_names_it() {
    let errors = config::load(Path::new("config/no-such-file.yaml")).expect_err("no file");
    assert_eq!(errors.errors().len(), 1);
    assert!(
        errors
            .to_string()
            .contains("config/no-such-file.yaml: cannot read"),
        "{errors}"
    );
}
