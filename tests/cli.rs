//! The `trigger-bridge` binary, run as a user runs it.

use std::{
    io::{BufRead, BufReader, Read},
    net::SocketAddr,
    path::PathBuf,
    process::{Command, ExitStatus, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{io::AsyncWriteExt, net::TcpStream};
use trigger_bridge_sdk::testing::poll_until;

const DEADLINE: Duration = Duration::from_secs(30);

/// A config with no pipelines, serving on a free loopback port.
const EMPTY_CONFIG: &str = r#"
server:
  listen: 127.0.0.1:0
shutdown_grace: 30s
functions:
  handler:
    endpoint: http://127.0.0.1:9
"#;

fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_trigger-bridge"));
    command
        .env_remove("RUST_LOG")
        .env_remove("TRIGGER_BRIDGE_CONFIG")
        .stdin(Stdio::null());
    command
}

/// Writes `text` to a config file of its own for one test.
fn config_file(test: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("trigger-bridge-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("creates the temp dir");
    let path = dir.join(format!("{test}.yaml"));
    std::fs::write(&path, text).expect("writes the config");
    path
}

/// A running `trigger-bridge`, its output collected line by line; killed
/// when dropped.
struct Running {
    process: std::process::Child,
    stdout: Lines,
    stderr: Lines,
}

type Lines = Arc<Mutex<Vec<String>>>;

impl Running {
    fn start(args: &[&str]) -> Self {
        let mut process = binary()
            .args(args)
            .args(["--log-format", "json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starts");
        let stdout = collect(process.stdout.take().expect("piped"));
        let stderr = collect(process.stderr.take().expect("piped"));
        Self {
            process,
            stdout,
            stderr,
        }
    }

    /// Waits for a JSON log line with `message`.
    async fn log_line(&self, message: &str) -> serde_json::Value {
        let what = format!("log line `{message}`");
        poll_until(&what, DEADLINE, || {
            let line = self
                .stderr
                .lock()
                .expect("not poisoned")
                .iter()
                .find_map(|line| {
                    let line: serde_json::Value = serde_json::from_str(line).ok()?;
                    (line["message"] == message).then_some(line)
                });
            async move { line }
        })
        .await
    }

    async fn listen_addr(&self, message: &str) -> SocketAddr {
        let line = self.log_line(message).await;
        let listen = line["listen"].as_str().expect("a listen field");
        listen.parse().expect("an address")
    }

    async fn stdout_line(&self) -> String {
        poll_until("a line on stdout", DEADLINE, || {
            let line = self.stdout.lock().expect("not poisoned").first().cloned();
            async move { line }
        })
        .await
    }

    fn signal(&self, name: &str) {
        let sent = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.process.id().to_string())
            .status()
            .expect("runs kill");
        assert!(sent.success(), "kill -{name} failed");
    }

    async fn exit(&mut self) -> ExitStatus {
        let process = &mut self.process;
        poll_until("the process to exit", DEADLINE, || {
            let status = process.try_wait().expect("waits");
            async move { status }
        })
        .await
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

fn collect(output: impl Read + Send + 'static) -> Lines {
    let lines = Lines::default();
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines().map_while(Result::ok) {
            sink.lock().expect("not poisoned").push(line);
        }
    });
    lines
}

#[test]
fn validate_accepts_a_good_config() {
    let path = config_file("validate-good", EMPTY_CONFIG);

    let output = binary()
        .arg("validate")
        .arg("-c")
        .arg(&path)
        .output()
        .expect("runs");

    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).expect("UTF-8");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.contains("OK"), "{stdout}");
}

#[test]
fn validate_lists_every_error_and_exits_64() {
    let path = config_file(
        "validate-bad",
        "servr:\n  listen: 127.0.0.1:0\nshutdown_grace: soon\n",
    );

    let output = binary()
        .arg("validate")
        .env("TRIGGER_BRIDGE_CONFIG", &path)
        .output()
        .expect("runs");

    assert_eq!(output.status.code(), Some(64), "{output:?}");
    let stderr = String::from_utf8(output.stderr).expect("UTF-8");
    assert!(stderr.contains("servr"), "{stderr}");
    assert!(stderr.contains("shutdown_grace"), "{stderr}");
}

#[test]
fn run_with_a_bad_config_exits_64_before_starting() {
    let path = config_file("run-bad", "servr: {}\nshutdown_grace: soon\n");

    let output = binary()
        .arg("run")
        .arg("-c")
        .arg(&path)
        .output()
        .expect("runs");

    assert_eq!(output.status.code(), Some(64), "{output:?}");
    let stderr = String::from_utf8(output.stderr).expect("UTF-8");
    assert!(
        stderr.contains("servr") && stderr.contains("shutdown_grace"),
        "{stderr}"
    );
    assert!(!stderr.contains("Started"), "{stderr}");
}

#[test]
fn schema_prints_a_json_schema() {
    let output = binary().arg("schema").output().expect("runs");

    assert!(output.status.success(), "{output:?}");
    let schema: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert!(schema["properties"]["pipelines"].is_object(), "{schema}");
}

#[tokio::test]
async fn echo_function_prints_each_event_and_answers_like_lambda() {
    let mut echo = Running::start(&["echo-function", "--listen", "127.0.0.1:0"]);
    let addr = echo.listen_addr("Echo function listening").await;
    let url = format!("http://{addr}/2015-03-31/functions/handler/invocations");
    let client = reqwest::Client::new();

    let event = "{\n  \"Records\": [ { \"body\": \"a  b\", \"size\": 1.50 } ]\n}";
    let response = client.post(&url).body(event).send().await.expect("answers");

    assert_eq!(response.status(), 200);
    let headers = response.headers();
    assert_eq!(headers["x-amz-executed-version"], "$LATEST");
    assert_eq!(headers["x-amzn-requestid"].len(), 36);
    assert_eq!(response.text().await.expect("a body"), "{}");
    assert_eq!(
        echo.stdout_line().await,
        r#"{"Records":[{"body":"a  b","size":1.50}]}"#
    );

    let response = client
        .post(&url)
        .body("not json")
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.headers()["x-amzn-errortype"],
        "InvalidRequestContentException"
    );

    echo.signal("TERM");
    assert!(echo.exit().await.success());
    assert_eq!(echo.stdout.lock().expect("not poisoned").len(), 1);
}

#[tokio::test]
async fn run_serves_health_and_stops_on_sigterm() {
    let path = config_file("run-sigterm", EMPTY_CONFIG);
    let mut bridge = Running::start(&["run", "-c", path.to_str().expect("UTF-8")]);
    let addr = bridge.listen_addr("Started").await;

    let health = reqwest::get(format!("http://{addr}/healthz")).await;
    assert_eq!(health.expect("answers").status(), 200);

    bridge.signal("TERM");
    let status = bridge.exit().await;
    assert_eq!(status.code(), Some(0));
    bridge.log_line("Stopped").await;
}

#[tokio::test]
async fn a_second_signal_cuts_a_slow_shutdown_short() {
    let path = config_file("run-second-signal", EMPTY_CONFIG);
    let mut bridge = Running::start(&["run", "-c", path.to_str().expect("UTF-8")]);
    let addr = bridge.listen_addr("Started").await;
    // A connection in the middle of its first request keeps the server
    // draining until the grace period (30 s) ends. The server accepts
    // connections in order, so once a later one is answered, this one is
    // being served.
    let mut stalled = TcpStream::connect(addr).await.expect("connects");
    stalled
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: te")
        .await
        .expect("sends");
    let health = reqwest::get(format!("http://{addr}/healthz")).await;
    assert_eq!(health.expect("answers").status(), 200);

    bridge.signal("TERM");
    bridge
        .log_line("Shutting down gracefully; a second signal exits at once")
        .await;
    bridge.signal("INT");

    assert_eq!(bridge.exit().await.code(), Some(130));
}
