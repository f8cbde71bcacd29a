//! Setting moto up for tests of the AWS paths: IAM calls and a function that
//! echoes its payload.

use base64::Engine as _;
use serde_json::{Value, json};

/// An empty zip archive (only the end-of-central-directory record): moto
/// stores the code of a function it does not run without looking inside.
const EMPTY_ZIP: [u8; 22] = [
    0x50, 0x4b, 0x05, 0x06, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

/// An `Authorization` header moto routes by (its credential scope names the
/// service) and does not check while it is not verifying signatures.
pub fn scoped_authorization(service: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential=test/20240101/us-east-1/{service}/aws4_request, \
         SignedHeaders=host, Signature=0"
    )
}

/// An IAM query API call; returns the XML answer.
pub async fn iam(http: &reqwest::Client, moto: &str, params: &[(&str, &str)]) -> String {
    let form = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("Version", "2010-05-08")
        .extend_pairs(params)
        .finish();
    let response = http
        .post(format!("{moto}/"))
        .header("authorization", scoped_authorization("iam"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .expect("moto answers an IAM call");
    let status = response.status();
    let text = response.text().await.expect("IAM answer is read");
    assert!(status.is_success(), "IAM {params:?}: {status}: {text}");
    text
}

/// The text of the first `<tag>` element of `xml`.
pub fn xml_field(xml: &str, tag: &str) -> String {
    xml.split_once(&format!("<{tag}>"))
        .and_then(|(_, rest)| rest.split_once(&format!("</{tag}>")))
        .map(|(value, _)| value.to_owned())
        .unwrap_or_else(|| panic!("no <{tag}> in {xml}"))
}

/// A role and a function named `name` that echoes its payload (moto does not
/// run code without Docker); returns the function's ARN. Three requests count
/// towards moto's `INITIAL_NO_AUTH_ACTION_COUNT`: the config call does not.
pub async fn create_function(http: &reqwest::Client, moto: &str, name: &str) -> String {
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
    let trust = r#"{"Version":"2012-10-17","Statement":[]}"#;
    let params = [
        ("Action", "CreateRole"),
        ("RoleName", role.as_str()),
        ("AssumeRolePolicyDocument", trust),
    ];
    let role_arn = xml_field(&iam(http, moto, &params).await, "Arn");

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
    let text = response
        .text()
        .await
        .expect("CreateFunction answer is read");
    assert!(status.is_success(), "CreateFunction: {status}: {text}");
    let created: Value = serde_json::from_str(&text).expect("CreateFunction answers JSON");
    created["FunctionArn"]
        .as_str()
        .expect("CreateFunction answer has a FunctionArn")
        .to_owned()
}
