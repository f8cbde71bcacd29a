//! End to end against `cargo lambda watch`, a Lambda-compatible endpoint we did
//! not write: the invoker with the `cargo-lambda` dialect must tell a delivered
//! event from a function error, and read the error's type and message.
//!
//! The function is the project in `tests/functions`. `cargo-lambda` must be on
//! PATH: `tests/run.sh` installs it into `.venv` and puts that on PATH.

use std::{
    fs::File,
    net::{Ipv4Addr, TcpListener},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Mutex,
    time::Duration,
};

use bytes::Bytes;
use nix::{sys::signal, unistd::Pid};
use serde_json::{Value, json};
use trigger_bridge::{
    config::FunctionConfig,
    invoke::{FunctionErrorInfo, InvokeOutcome, Invoker},
};
use trigger_bridge_sdk::testing::poll_until;

/// The binary `tests/functions` builds.
const BINARY: &str = "bridge-test-function";
/// What the function answers an event with `"fail": true` (see its source).
const ERROR_TYPE: &str = "RequestedFailure";
const ERROR_MESSAGE: &str = "the event asked this function to fail";

/// From spawning `cargo lambda watch` to its Invoke API accepting connections.
const LISTEN_DEADLINE: Duration = Duration::from_secs(60);
/// From the first invoke to the function's answer: `cargo lambda watch` starts
/// the function on the first invoke (with `cargo run`, compiling if needed).
const FIRST_ANSWER_DEADLINE: Duration = Duration::from_secs(5 * 60);

#[tokio::test(flavor = "multi_thread")]
async fn cargo_lambda_watch_delivers_events_and_reports_function_errors() {
    let project = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/functions");
    let target_dir = function_target_dir();
    build_function(&project, &target_dir).await;
    let watch = Watch::start(&project, &target_dir);
    watch.wait_until_listening().await;

    // `_` names the project's only binary.
    let invoker = watch.invoker("_").await;
    let event = json!({ "Records": [{ "body": "hello", "fail": true }], "n": 1 });
    let outcome = watch.first_answer(&invoker, &event).await;
    let InvokeOutcome::Delivered(response) = &outcome else {
        panic!(
            "expected the event to be delivered, got {outcome:?}{}",
            watch.log_tail()
        );
    };
    assert_eq!(response.status, 200);
    assert_eq!(json_body(&response.body), json!({ "received": event }));

    // The binary's own name works too.
    let by_name = watch.invoker(BINARY).await;
    let outcome = by_name.invoke(to_bytes(&json!({ "n": 2 }))).await;
    let InvokeOutcome::Delivered(response) = &outcome else {
        panic!(
            "expected delivery to `{BINARY}`, got {outcome:?}{}",
            watch.log_tail()
        );
    };
    assert_eq!(json_body(&response.body), json!({ "received": { "n": 2 } }));

    // cargo-lambda answers a handler error with HTTP 500 and no
    // X-Amz-Function-Error: the dialect must still call it a function error.
    let outcome = invoker.invoke(to_bytes(&json!({ "fail": true }))).await;
    let InvokeOutcome::FunctionError(response) = &outcome else {
        panic!(
            "expected a function error, got {outcome:?}{}",
            watch.log_tail()
        );
    };
    assert_eq!(response.function_error.as_deref(), Some("Unhandled"));
    assert_eq!(
        response.error_info(),
        FunctionErrorInfo {
            error_type: Some(ERROR_TYPE.to_owned()),
            message: Some(ERROR_MESSAGE.to_owned()),
        }
    );

    // A function the project does not have: 404, which no retry can fix.
    let missing = watch.invoker("no-such-function").await;
    let outcome = missing.invoke(to_bytes(&json!({ "n": 3 }))).await;
    assert!(
        matches!(outcome, InvokeOutcome::Permanent { ref response, .. } if response.status == 404),
        "expected a permanent failure for a missing function, got {outcome:?}"
    );
}

/// A `cargo lambda watch` serving `tests/functions`, stopped on drop.
struct Watch {
    child: Mutex<Child>,
    port: u16,
    log: PathBuf,
}

impl Watch {
    /// Spawns the server on a free loopback port. It stays in this process's
    /// group, so an interrupt from the terminal reaches it too; it stops the
    /// function instances it started when it gets SIGINT or SIGTERM.
    fn start(project: &Path, target_dir: &Path) -> Self {
        let port = free_port();
        let log = target_dir.join(format!("cargo-lambda-watch-{port}.log"));
        let log_file = File::create(&log).expect("create the cargo lambda watch log");
        let child = Command::new("cargo")
            .args([
                "lambda",
                "watch",
                "--ignore-changes",
                "-A",
                "127.0.0.1",
                "-P",
            ])
            .arg(port.to_string())
            .current_dir(project)
            .env("CARGO_TARGET_DIR", target_dir)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("clone the log file handle"))
            .stderr(log_file)
            .spawn()
            .expect("spawn `cargo lambda watch`");
        Self {
            child: Mutex::new(child),
            port,
            log,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn wait_until_listening(&self) {
        let address = (Ipv4Addr::LOCALHOST, self.port);
        poll_until(
            "cargo lambda watch to listen",
            LISTEN_DEADLINE,
            || async move {
                self.assert_running();
                tokio::net::TcpStream::connect(address).await.ok()
            },
        )
        .await;
    }

    fn assert_running(&self) {
        let status = self
            .child
            .lock()
            .expect("the child lock is never held across a panic")
            .try_wait();
        if let Ok(Some(status)) = status {
            panic!("cargo lambda watch exited with {status}{}", self.log_tail());
        }
    }

    async fn invoker(&self, name: &str) -> Invoker {
        let config: FunctionConfig = serde_json::from_value(json!({
            "endpoint": self.endpoint(),
            "name": name,
            "auth": "none",
            "dialect": "cargo-lambda",
            "timeout": "5m",
        }))
        .expect("a valid function config");
        Invoker::new("test-function", &config)
            .await
            .expect("an invoker for cargo lambda watch")
    }

    /// Invokes until the answer is something other than "not ready yet".
    async fn first_answer(&self, invoker: &Invoker, event: &Value) -> InvokeOutcome {
        let event = to_bytes(event);
        poll_until("the function's first answer", FIRST_ANSWER_DEADLINE, || {
            let event = event.clone();
            async move {
                let outcome = invoker.invoke(event).await;
                (!matches!(outcome, InvokeOutcome::Retryable { .. })).then_some(outcome)
            }
        })
        .await
    }

    /// The end of the server's log, for a failure message.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(30)..].join("\n");
        format!("\n--- end of {} ---\n{tail}", self.log.display())
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let child = match self.child.get_mut() {
            Ok(child) => child,
            Err(poisoned) => poisoned.into_inner(),
        };
        stop(child);
        // A failed test keeps the server's log for the reader.
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// SIGTERM lets cargo-lambda stop the function instances it started; SIGKILL,
/// the fallback, would leave them running.
fn stop(child: &mut Child) {
    let pid = Pid::from_raw(i32::try_from(child.id()).expect("pids fit in i32"));
    let _ = signal::kill(pid, signal::Signal::SIGTERM);
    // Ten seconds to exit, checked every 50ms.
    for _ in 0..200 {
        if !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Builds the function before `cargo lambda watch` runs it, so a build error
/// fails the test with the compiler's output rather than as a timeout.
async fn build_function(project: &Path, target_dir: &Path) {
    ensure_cargo_lambda();
    let mut build = Command::new("cargo");
    build
        .args(["build", "--quiet", "--bin", BINARY])
        .current_dir(project)
        .env("CARGO_TARGET_DIR", target_dir);
    let output = tokio::task::spawn_blocking(move || build.output())
        .await
        .expect("the build task does not panic")
        .expect("run cargo build for the test function");
    assert!(
        output.status.success(),
        "building tests/functions failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn ensure_cargo_lambda() {
    let found = Command::new("cargo-lambda")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    assert!(
        found,
        "`cargo-lambda` is not on PATH: run the suite with tests/run.sh, which installs it \
         into .venv and puts .venv/bin on PATH"
    );
}

/// Under the workspace's target directory, so repeated runs reuse the build.
fn function_target_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("test-functions");
    std::fs::create_dir_all(&dir).expect("create the test function's target directory");
    dir
}

fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a loopback port");
    listener
        .local_addr()
        .expect("a bound listener's address")
        .port()
}

fn to_bytes(value: &Value) -> Bytes {
    Bytes::from(serde_json::to_vec(value).expect("JSON values serialise"))
}

fn json_body(body: &Bytes) -> Value {
    serde_json::from_slice(body).expect("the function answers JSON")
}
