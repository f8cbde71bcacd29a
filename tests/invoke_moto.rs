//! SigV4 (`auth: aws`) invocations end to end against moto, which echoes an
//! invoke's payload once it is routed, and routes only invokes that carry an
//! `Authorization` header scoped to `lambda`.
//!
//! Run through `tests/run.sh`, which starts moto and exports `MOTO_ENDPOINT`
//! and test credentials (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`).

use bytes::Bytes;
use serde_json::json;
mod common;

use common::moto::create_function;
use trigger_bridge::{
    config::FunctionConfig,
    invoke::{InvokeOutcome, Invoker},
};

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
