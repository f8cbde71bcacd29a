//! SigV4 (`auth: aws`) invocations against a moto that verifies signatures.
//!
//! moto checks signatures only after its first `INITIAL_NO_AUTH_ACTION_COUNT`
//! requests: from then on it looks the access key up among the IAM users
//! created in it, recomputes the signature with that key's secret and
//! evaluates the user's policies. This test starts its own moto with that
//! count set to the number of set-up requests it makes, creates a user, an
//! access key, a policy and a function, then invokes the function with the
//! right secret and with a wrong one.
//!
//! The invoker takes its credentials from the standard AWS chain, which reads
//! the environment; a test cannot change its own environment without
//! `unsafe`. So each invocation runs in a child process: this test binary run
//! again for this one test, with the credentials and [`CHILD_REQUEST`] in its
//! environment. The child prints its outcome for this test to read.
//!
//! `moto_server` must be on PATH: run through `tests/run.sh`, which puts
//! `.venv/bin` there.

use std::{
    net::{Ipv4Addr, TcpListener},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use bytes::Bytes;
use serde_json::{Value, json};
use trigger_bridge::{
    config::FunctionConfig,
    invoke::{InvokeOutcome, Invoker},
};
use trigger_bridge_sdk::testing::poll_until;

mod common;

use common::moto::{create_function, iam, xml_field};

/// This test's name, as the child process selects it with `--exact`.
const TEST_NAME: &str = "moto_verifies_the_signature_of_an_aws_invocation";

/// Set in a child's environment to the JSON of an [`Invocation`]: the child
/// invokes instead of setting up.
const CHILD_REQUEST: &str = "TRIGGER_BRIDGE_SIGV4_CHILD";

/// Precedes the outcome a child prints, as JSON, on the rest of its line.
const OUTCOME_PREFIX: &str = "sigv4-child-outcome: ";

/// The requests moto serves without checking their signature: create user,
/// create access key, put user policy, create role, create function. Calls to
/// `/moto-api/` do not count.
const SET_UP_REQUESTS: u32 = 5;

const REGION: &str = "us-east-1";

/// moto answers in under a second; a loaded machine may take longer.
const MOTO_DEADLINE: Duration = Duration::from_secs(30);

/// A moto server of this test's own, stopped when dropped.
struct Moto {
    child: Child,
    endpoint: String,
    log: PathBuf,
}

/// What a child invokes; the credentials go in its environment.
#[derive(serde::Serialize, serde::Deserialize)]
struct Invocation {
    endpoint: String,
    function: String,
    event: String,
}

// === impl Moto ===

impl Moto {
    /// Starts moto on a free loopback port, verifying signatures after
    /// [`SET_UP_REQUESTS`] requests, and waits until it answers.
    async fn start() -> Self {
        let port = free_port();
        let log = std::env::temp_dir().join(format!(
            "trigger-bridge-sigv4-moto-{}.log",
            uuid::Uuid::new_v4().simple()
        ));
        let log_file = std::fs::File::create(&log).expect("moto's log file is created");
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("INITIAL_NO_AUTH_ACTION_COUNT", SET_UP_REQUESTS.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "moto_server could not be started ({error}): run the tests through \
                     tests/run.sh, which puts .venv/bin with moto_server on PATH"
                )
            });
        let mut moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            log,
        };
        moto.wait_until_it_answers().await;
        moto
    }

    /// Any HTTP answer from `/moto-api/`, which moto does not count as a
    /// request, means it is up.
    async fn wait_until_it_answers(&mut self) {
        let http = reqwest::Client::new();
        let url = format!("{}/moto-api/data.json", self.endpoint);
        poll_until("moto_server to answer", MOTO_DEADLINE, || {
            if let Some(status) = self.child.try_wait().expect("moto_server's status is read") {
                panic!("moto_server exited with {status}: {}", self.log());
            }
            let answer = http.get(&url).send();
            async move { answer.await.ok().map(drop) }
        })
        .await;
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// A port nothing listens on now; moto binds it a moment later.
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("a loopback port is free")
        .port()
}

// === set-up, before moto checks signatures ===

/// A user allowed to invoke functions, and its access key id and secret.
async fn create_user(http: &reqwest::Client, moto: &str, name: &str) -> (String, String) {
    iam(http, moto, &[("Action", "CreateUser"), ("UserName", name)]).await;
    let key = iam(
        http,
        moto,
        &[("Action", "CreateAccessKey"), ("UserName", name)],
    )
    .await;

    // moto names the action after the API operation (`lambda:Invoke`), AWS
    // after the permission (`lambda:InvokeFunction`): the wildcard covers both.
    let policy = json!({
        "Version": "2012-10-17",
        "Statement": [{ "Effect": "Allow", "Action": "lambda:Invoke*", "Resource": "*" }],
    })
    .to_string();
    let params = [
        ("Action", "PutUserPolicy"),
        ("UserName", name),
        ("PolicyName", "invoke"),
        ("PolicyDocument", policy.as_str()),
    ];
    iam(http, moto, &params).await;

    (
        xml_field(&key, "AccessKeyId"),
        xml_field(&key, "SecretAccessKey"),
    )
}

// === invocations, in a child process ===

/// Runs `invocation` in a child process whose environment holds only these
/// credentials, and returns the outcome it printed.
async fn invoke_in_child(invocation: &Invocation, key_id: &str, secret: &str) -> Value {
    let mut command = Command::new(std::env::current_exe().expect("test binary path is known"));
    command
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(
            CHILD_REQUEST,
            serde_json::to_string(invocation).expect("request serializes"),
        )
        .env("AWS_ACCESS_KEY_ID", key_id)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        // moto refuses a user's long-term key sent with a session token.
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_SECURITY_TOKEN")
        .stdin(Stdio::null());
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("the child's runner does not panic")
        .expect("the test binary runs again as a child");

    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "child failed: {stdout}\n{stderr}");
    let line = stdout
        .lines()
        // libtest prints the test's name on the same line, before the outcome.
        .find_map(|line| line.split_once(OUTCOME_PREFIX).map(|(_, outcome)| outcome))
        .unwrap_or_else(|| {
            panic!("child printed no outcome (is TEST_NAME this test's name?): {stdout}")
        });
    serde_json::from_str(line).expect("child's outcome is JSON")
}

/// The child's side: invoke once with the credentials of the environment,
/// and print the outcome.
async fn invoke_as_child(request: &str) {
    let invocation: Invocation = serde_json::from_str(request).expect("child request is JSON");
    let config: FunctionConfig = serde_json::from_value(json!({
        "endpoint": invocation.endpoint,
        "name": invocation.function,
        "auth": "aws",
        "region": REGION,
        "timeout": "10s",
    }))
    .expect("test function config is valid");
    let invoker = Invoker::new("echo", &config)
        .await
        .expect("invoker with auth: aws builds");

    let outcome = invoker.invoke(Bytes::from(invocation.event)).await;
    let reason = match &outcome {
        InvokeOutcome::Permanent { reason, .. } | InvokeOutcome::Retryable { reason, .. } => {
            Some(reason.clone())
        }
        _ => None,
    };
    let response = outcome.response();
    let summary = json!({
        "outcome": outcome.label(),
        "status": response.map(|r| r.status),
        "body": response.map(|r| String::from_utf8_lossy(&r.body).into_owned()),
        "reason": reason,
    });
    println!("{OUTCOME_PREFIX}{summary}");
}

#[tokio::test]
async fn moto_verifies_the_signature_of_an_aws_invocation() {
    if let Ok(request) = std::env::var(CHILD_REQUEST) {
        return invoke_as_child(&request).await;
    }

    let moto = Moto::start().await;
    let http = reqwest::Client::new();
    let name = format!("tb-sigv4-{}", uuid::Uuid::new_v4().simple());
    let (key_id, secret) = create_user(&http, &moto.endpoint, &name).await;
    create_function(&http, &moto.endpoint, &name).await;
    let event = json!({ "hello": "sigv4", "function": name }).to_string();
    let invocation = Invocation {
        endpoint: moto.endpoint.clone(),
        function: name,
        event: event.clone(),
    };

    // The forged invocation goes first: once moto has refused it, it checks
    // every later request too, so the next delivery proves a verified
    // signature rather than a request still inside the unchecked count.
    let wrong_secret = format!("{secret}x");
    let forged = invoke_in_child(&invocation, &key_id, &wrong_secret).await;
    assert_eq!(forged["outcome"], "permanent", "wrong secret: {forged}");
    assert_eq!(forged["status"], 403, "wrong secret: {forged}");
    let body = forged["body"].as_str().unwrap_or_default();
    assert!(
        body.contains("SignatureDoesNotMatch"),
        "wrong secret: {forged}"
    );

    let signed = invoke_in_child(&invocation, &key_id, &secret).await;
    assert_eq!(signed["outcome"], "delivered", "right secret: {signed}");
    assert_eq!(signed["status"], 200, "right secret: {signed}");
    assert_eq!(signed["body"], event.as_str(), "moto echoes the payload");
}
