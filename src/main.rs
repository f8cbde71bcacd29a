//! The `trigger-bridge` binary.

fn main() -> std::process::ExitCode {
    trigger_bridge::cli::main()
}
