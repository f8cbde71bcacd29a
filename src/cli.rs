//! The command line.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

use clap::{Args, Parser, Subcommand};

use crate::{
    app::{self, Stopped},
    config, echo,
    telemetry::{self, LogFormat},
};

/// Exit code of a config that is not valid (EX_USAGE).
pub const CONFIG_ERROR_EXIT_CODE: u8 = 64;

/// How long tasks still running at exit get to notice the runtime stopping.
const RUNTIME_SHUTDOWN: Duration = Duration::from_secs(1);

/// Runs event sources into Lambda-compatible functions with the semantics of
/// Lambda's event source mappings.
#[derive(Debug, Parser)]
#[command(name = "trigger-bridge", version)]
pub struct Cli {
    /// How log lines are written on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Auto)]
    pub log_format: LogFormat,
    /// What is logged: a level (`error`, `warn`, `info`, `debug`, `trace`) or
    /// directives such as `trigger_bridge=debug,info`.
    #[arg(long, global = true, env = "RUST_LOG", default_value = "info")]
    pub log_level: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs every pipeline in the config file.
    Run(ConfigFile),
    /// Checks the config file: exits 0, or 64 with every error listed.
    Validate(ConfigFile),
    /// Prints the config file's JSON Schema.
    Schema,
    /// A Lambda-compatible endpoint that prints every event it receives as one
    /// JSON line on stdout and answers success; for local trials.
    EchoFunction {
        /// Address to serve the Invoke API on.
        #[arg(long, default_value = "127.0.0.1:9000")]
        listen: SocketAddr,
    },
}

#[derive(Debug, Args)]
pub struct ConfigFile {
    /// The config file.
    #[arg(
        short,
        long = "config",
        value_name = "FILE",
        env = "TRIGGER_BRIDGE_CONFIG",
        default_value = "config/trigger-bridge.yaml"
    )]
    pub config: PathBuf,
}

/// Parses the command line and runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(ConfigFile { ref config }) => run(&cli, config),
        Command::Validate(ConfigFile { ref config }) => validate(config),
        Command::Schema => schema(),
        Command::EchoFunction { listen } => echo_function(&cli, listen),
    }
}

fn run(cli: &Cli, path: &std::path::Path) -> ExitCode {
    // A bad config stops the process before anything starts.
    let config = match config::load(path) {
        Ok(config) => config,
        Err(errors) => return config_errors(&errors),
    };

    let stopped = with_runtime(cli, async {
        let result = app::run(config).await;
        if let Err(error) = &result {
            tracing::error!(%error, "Stopped on an error");
        }
        result
    });
    match stopped {
        Some(Ok(Stopped::Gracefully)) => ExitCode::SUCCESS,
        // Leave at once: tasks still running must not hold the exit up.
        Some(Ok(Stopped::Forced)) => std::process::exit(app::FORCED_EXIT_CODE.into()),
        Some(Err(_)) | None => ExitCode::FAILURE,
    }
}

fn counted(n: usize, noun: &str) -> String {
    match n {
        1 => format!("1 {noun}"),
        n => format!("{n} {noun}s"),
    }
}

fn validate(path: &std::path::Path) -> ExitCode {
    match config::load(path) {
        Ok(config) => {
            println!(
                "{}: OK ({}, {})",
                path.display(),
                counted(config.pipelines.len(), "pipeline"),
                counted(config.functions.len(), "function")
            );
            ExitCode::SUCCESS
        }
        Err(errors) => config_errors(&errors),
    }
}

/// Lists every error of the config (the file is named in the list).
fn config_errors(errors: &config::ConfigErrors) -> ExitCode {
    eprintln!("{errors}");
    ExitCode::from(CONFIG_ERROR_EXIT_CODE)
}

fn schema() -> ExitCode {
    match serde_json::to_string_pretty(&config::schema()) {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("The schema could not be written: {error}");
            ExitCode::FAILURE
        }
    }
}

fn echo_function(cli: &Cli, listen: SocketAddr) -> ExitCode {
    let served = with_runtime(cli, async move {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let signals = app::termination_signals()?;
        tracing::info!(listen = %listener.local_addr()?, "Echo function listening");
        // As with `run`: the first signal stops gracefully, a second at once.
        app::supervise(signals, |stop| {
            echo::serve(listener, stop.cancelled_owned())
        })
        .await
    });
    match served {
        Some(Ok(app::Stopped::Gracefully)) => ExitCode::SUCCESS,
        Some(Ok(app::Stopped::Forced)) => ExitCode::from(app::FORCED_EXIT_CODE),
        Some(Err(error)) => {
            tracing::error!(%error, listen = %listen, "Echo function failed");
            ExitCode::FAILURE
        }
        None => ExitCode::FAILURE,
    }
}

/// Runs `task` on a multi-threaded runtime with logging set up; `None` when
/// either could not be set up (the reason is on stderr).
fn with_runtime<T>(cli: &Cli, task: impl Future<Output = T>) -> Option<T> {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("The async runtime could not be started: {error}");
            return None;
        }
    };
    let output = runtime.block_on(async {
        if let Err(error) = telemetry::init(cli.log_format, &cli.log_level) {
            eprintln!("{error}");
            return None;
        }
        Some(task.await)
    });
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
    output
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn commands_take_their_defaults() {
        let cli = Cli::try_parse_from(["trigger-bridge", "echo-function"]).expect("parses");
        assert_eq!(cli.log_format, LogFormat::Auto);
        let Command::EchoFunction { listen } = cli.command else {
            panic!("parsed {:?}", cli.command);
        };
        assert_eq!(listen, "127.0.0.1:9000".parse().expect("an address"));
    }

    #[test]
    fn global_options_go_after_the_command_too() {
        let cli = Cli::try_parse_from([
            "trigger-bridge",
            "validate",
            "-c",
            "x.yaml",
            "--log-format",
            "json",
            "--log-level",
            "debug",
        ])
        .expect("parses");
        assert_eq!(cli.log_format, LogFormat::Json);
        assert_eq!(cli.log_level, "debug");
        let Command::Validate(file) = cli.command else {
            panic!("parsed {:?}", cli.command);
        };
        assert_eq!(file.config, PathBuf::from("x.yaml"));
    }
}
