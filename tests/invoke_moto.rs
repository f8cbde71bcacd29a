//! SigV4 (`auth: aws`) invocations end to end against moto, which echoes an
//! invoke's payload once it is routed, and routes only invokes that carry an
//! `Authorization` header scoped to `lambda`.
//!
//! Run through `tests/run.sh`, which starts moto and exports `MOTO_ENDPOINT`
//! and test credentials (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`).

use base64::Engine as _;
use bytes::Bytes;
use serde_json::{Value, json};
use trigger_bridge::{
    config::FunctionConfig,
    invoke::{InvokeOutcome, Invoker},
};

/// An empty zip archive (only the end-of-central-directory record): moto
/// stores the code of a function it does not run without looking inside.
const EMPTY_ZIP: [u8; 22] = [
    0x50, 0x4b, 0x05, 0x06, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

/// moto routes a request to a service by the credential scope of its
/// `Authorization` header; it does not check set-up requests' signatures.
fn scoped_authorization(service: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential=test/20240101/us-east-1/{service}/aws4_request, \
         SignedHeaders=host, Signature=0"
    )
}

fn moto_endpoint() -> String {
    let run_sh = "run it through tests/run.sh, which starts moto and exports MOTO_ENDPOINT \
                  and test AWS credentials";
    let endpoint = std::env::var("MOTO_ENDPOINT")
        .unwrap_or_else(|_| panic!("MOTO_ENDPOINT is not set: {run_sh}"));
    // Without them the credential chain would go on to instance metadata.
    for variable in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
        assert!(
            std::env::var_os(variable).is_some(),
            "{variable} is not set: {run_sh}"
        );
    }
    endpoint.trim_end_matches('/').to_owned()
}

/// A role and a function with names unique to this run; returns the
/// function's ARN.
async fn create_function(http: &reqwest::Client, moto: &str, name: &str) -> String {
    let response = http
        .post(format!("{moto}/moto-api/config"))
        .body(json!({ "lambda": { "use_docker": false } }).to_string())
        .send()
        .await
        .expect("moto answers /moto-api/config");
    assert!(
        response.status().is_success(),
        "moto config: {}",
        response.status()
    );

    let role = format!("{name}-role");
    let form = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("Action", "CreateRole")
        .append_pair("Version", "2010-05-08")
        .append_pair("RoleName", &role)
        .append_pair(
            "AssumeRolePolicyDocument",
            r#"{"Version":"2012-10-17","Statement":[]}"#,
        )
        .finish();
    let response = http
        .post(format!("{moto}/"))
        .header("authorization", scoped_authorization("iam"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .expect("moto answers CreateRole");
    let status = response.status();
    let text = response.text().await.expect("CreateRole answer is read");
    assert!(status.is_success(), "CreateRole: {status}: {text}");
    let role_arn = text
        .split_once("<Arn>")
        .and_then(|(_, rest)| rest.split_once("</Arn>"))
        .map(|(arn, _)| arn.to_owned())
        .expect("CreateRole answer names the role's ARN");

    let zip = base64::engine::general_purpose::STANDARD.encode(EMPTY_ZIP);
    let response = http
        .post(format!("{moto}/2015-03-31/functions"))
        .header("authorization", scoped_authorization("lambda"))
        .header("content-type", "application/json")
        .body(
            json!({
                "FunctionName": name,
                "Runtime": "python3.12",
                "Role": role_arn,
                "Handler": "index.handler",
                "Code": { "ZipFile": zip },
            })
            .to_string(),
        )
        .send()
        .await
        .expect("moto answers CreateFunction");
    let status = response.status();
    let body = response
        .bytes()
        .await
        .expect("CreateFunction answer is read");
    let created: Value = serde_json::from_slice(&body).expect("CreateFunction answers JSON");
    assert!(status.is_success(), "CreateFunction: {status}: {created}");
    created["FunctionArn"]
        .as_str()
        .expect("CreateFunction answer has a FunctionArn")
        .to_owned()
}

fn function(moto: &str, name: &str, auth: &str) -> FunctionConfig {
    serde_json::from_value(json!({
        "endpoint": moto,
        "name": name,
        "auth": auth,
        "region": "us-east-1",
        "timeout": "10s",
    }))
    .expect("test function config is valid")
}

#[tokio::test]
async fn signed_invocations_reach_moto_and_unsigned_ones_do_not() {
    let moto = moto_endpoint();
    let http = reqwest::Client::new();
    let name = format!("tb-echo-{}", uuid::Uuid::new_v4().simple());
    let arn = create_function(&http, &moto, &name).await;
    let event = Bytes::from(json!({ "hello": "moto", "function": name }).to_string());

    // By name, and by ARN (its `:` percent-encoded in the path).
    for target in [name.as_str(), arn.as_str()] {
        let invoker = Invoker::new("echo", &function(&moto, target, "aws"))
            .await
            .expect("invoker with auth: aws builds");
        match invoker.invoke(event.clone()).await {
            InvokeOutcome::Delivered(response) => {
                assert_eq!(response.status, 200);
                assert_eq!(response.body, event, "moto echoes the payload");
                assert!(response.request_id.is_some());
            }
            other => panic!("signed invoke of {target} was not delivered: {other:?}"),
        }
    }

    let unsigned = Invoker::new("echo", &function(&moto, &name, "none"))
        .await
        .expect("invoker with auth: none builds");
    let outcome = unsigned.invoke(event.clone()).await;
    assert!(
        !matches!(outcome, InvokeOutcome::Delivered(_)),
        "an unsigned invoke must not reach the function: {outcome:?}"
    );
}
