//! The HTTP client side of the invoker.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use reqwest::{
    Method, Url,
    header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue},
};

use super::{
    InvokeOutcome, classify,
    sigv4::{self, Signer},
    target,
};
use crate::config::{Auth, Dialect, FunctionConfig, InvocationType};

/// The largest answer read from a function: Lambda's synchronous response
/// limit, as its `Function.ResponseSizeTooLarge` error quotes it.
pub const MAX_RESPONSE_BYTES: usize = 6_291_556;

/// Lambda's limit on the base64-encoded `X-Amz-Client-Context`.
pub const MAX_CLIENT_CONTEXT_BYTES: usize = 3_583;

const INVOCATION_TYPE: HeaderName = HeaderName::from_static("x-amz-invocation-type");
const CLIENT_CONTEXT: HeaderName = HeaderName::from_static("x-amz-client-context");
const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");

/// Invokes one configured function. Cheap to clone; connections are reused.
#[derive(Debug, Clone)]
pub struct Invoker {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    url: Url,
    /// Sent with every invocation: content type, invocation type and client
    /// context.
    headers: HeaderMap,
    client: reqwest::Client,
    /// Present for `auth: aws`.
    signer: Option<Signer>,
    dialect: Dialect,
    timeout: Duration,
    function_arn: String,
    max_payload: usize,
    invocation_type: InvocationType,
}

#[derive(Debug, thiserror::Error)]
pub enum InvokerError {
    // The endpoint is not quoted: it may carry a secret from the environment.
    #[error(
        "function `{function}`: `endpoint` must be an http:// or https:// URL with a host and \
         no query or fragment"
    )]
    Endpoint { function: String },
    #[error("function `{function}`: invoke URL `{url}` is not valid: {source}")]
    Url {
        function: String,
        url: String,
        source: url::ParseError,
    },
    #[error(
        "function `{function}`: `client_context` is {encoded_bytes} bytes once base64-encoded, \
         over Lambda's limit of {MAX_CLIENT_CONTEXT_BYTES}"
    )]
    ClientContextTooLarge {
        function: String,
        encoded_bytes: usize,
    },
    #[error(
        "function `{function}`: `auth: aws` needs a region: set `region`, use a \
         `lambda.<region>.amazonaws.com` endpoint, or set AWS_REGION"
    )]
    NoRegion { function: String },
    #[error("function `{function}`: `auth: aws` found no AWS credentials provider")]
    NoCredentialsProvider { function: String },
    #[error("function `{function}`: the HTTP client could not be built: {source}")]
    Client {
        function: String,
        source: reqwest::Error,
    },
}

/// Why an answer's body was not read.
enum BodyError {
    TooLarge,
    Read(reqwest::Error),
}

impl Invoker {
    /// An invoker for the function configured under `key`. With `auth: aws`
    /// it resolves the region and the AWS credential chain once, here.
    pub async fn new(key: &str, config: &FunctionConfig) -> Result<Self, InvokerError> {
        let name = config.name.as_deref().unwrap_or(key);
        let url = invoke_url(key, config, name)?;
        let headers = headers(key, config)?;

        let known_region = config
            .region
            .as_deref()
            .or_else(|| url.host_str().and_then(target::endpoint_region));
        let signer = match config.auth {
            Auth::None => None,
            Auth::Aws => Some(signer(key, known_region).await?),
        };
        let arn_region = signer.as_ref().map(Signer::region).or(known_region);
        let function_arn = target::function_arn(name, config.qualifier.as_deref(), arn_region);

        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            // A signed request must not be replayed elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("trigger-bridge/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| InvokerError::Client {
                function: key.to_owned(),
                source,
            })?;

        Ok(Self {
            inner: Arc::new(Inner {
                url,
                headers,
                client,
                signer,
                dialect: config.dialect,
                timeout: config.timeout,
                function_arn,
                max_payload: super::max_payload(config),
                invocation_type: config.invocation_type,
            }),
        })
    }

    /// Sends `event` and classifies the answer. Never fails: every fault is an
    /// outcome.
    pub async fn invoke(&self, event: Bytes) -> InvokeOutcome {
        let inner = &*self.inner;
        let request = match inner.request(event).await {
            Ok(request) => request,
            Err(outcome) => return outcome,
        };
        let mut response = match inner.client.execute(request).await {
            Ok(response) => response,
            Err(error) => return classify::transport_failure(&error, inner.timeout),
        };

        let status = response.status().as_u16();
        let headers = std::mem::take(response.headers_mut());
        match read_body(&mut response, MAX_RESPONSE_BYTES).await {
            Ok(body) => {
                classify::classify(inner.dialect, status, &headers, body, SystemTime::now())
            }
            Err(BodyError::Read(error)) => classify::transport_failure(&error, inner.timeout),
            Err(BodyError::TooLarge) => {
                classify::response_too_large(status, &headers, MAX_RESPONSE_BYTES)
            }
        }
    }

    /// The qualified ARN on-failure records name.
    ///
    /// A `name` that is a full ARN is used as written, with `:{qualifier}`
    /// appended when one is configured and the ARN has none. Otherwise the ARN
    /// is synthesized as
    /// `arn:aws:lambda:{region}:{account}:function:{name}:{qualifier}`, where
    /// the parts nothing configures are placeholders: the account is
    /// `000000000000` unless `name` is a partial ARN
    /// (`{account}:function:{name}`), the region is `us-east-1` unless
    /// configured, implied by the endpoint or found by the AWS chain, and the
    /// qualifier is `$LATEST` unless `name` or `qualifier` gives one.
    pub fn function_arn(&self) -> &str {
        &self.inner.function_arn
    }

    pub fn max_payload(&self) -> usize {
        self.inner.max_payload
    }

    pub fn invocation_type(&self) -> InvocationType {
        self.inner.invocation_type
    }
}

// === impl Inner ===

impl Inner {
    /// The request for `event`, signed when `auth: aws`. A signing failure is
    /// an outcome: credentials may become available later.
    async fn request(&self, event: Bytes) -> Result<reqwest::Request, InvokeOutcome> {
        let mut request = reqwest::Request::new(Method::POST, self.url.clone());
        *request.headers_mut() = self.headers.clone();
        if let Some(signer) = &self.signer {
            signer
                .sign(&mut request, &event)
                .await
                .map_err(|error| InvokeOutcome::Retryable {
                    reason: format!("signing the invocation failed: {error}"),
                    response: None,
                })?;
        }
        *request.body_mut() = Some(event.into());
        Ok(request)
    }
}

/// The invoke URL, checked once.
fn invoke_url(key: &str, config: &FunctionConfig, name: &str) -> Result<Url, InvokerError> {
    let endpoint = config.endpoint.trim();
    let is_http = Url::parse(endpoint).is_ok_and(|url| {
        matches!(url.scheme(), "http" | "https")
            && url.has_host()
            && url.query().is_none()
            && url.fragment().is_none()
    });
    if !is_http {
        return Err(InvokerError::Endpoint {
            function: key.to_owned(),
        });
    }

    let text = target::invoke_url(endpoint, name, config.qualifier.as_deref());
    Url::parse(&text).map_err(|source| InvokerError::Url {
        function: key.to_owned(),
        url: text,
        source,
    })
}

/// The headers every invocation carries. The client context goes only with
/// `RequestResponse`: Lambda passes it to synchronous invocations alone.
fn headers(key: &str, config: &FunctionConfig) -> Result<HeaderMap, InvokerError> {
    // Room for the headers reqwest adds to each request's copy, too.
    let mut headers = HeaderMap::with_capacity(8);
    headers.insert(CONTENT_TYPE, APPLICATION_JSON);
    let invocation_type = match config.invocation_type {
        InvocationType::RequestResponse => "RequestResponse",
        InvocationType::Event => "Event",
    };
    headers.insert(INVOCATION_TYPE, HeaderValue::from_static(invocation_type));

    let Some(context) = &config.client_context else {
        return Ok(headers);
    };
    if config.invocation_type == InvocationType::Event {
        tracing::warn!(
            function = key,
            "Ignoring `client_context`: Lambda passes it to RequestResponse invocations only"
        );
        return Ok(headers);
    }
    let json = serde_json::Value::Object(context.clone()).to_string();
    let encoded = base64::engine::general_purpose::STANDARD.encode(json);
    if encoded.len() > MAX_CLIENT_CONTEXT_BYTES {
        return Err(InvokerError::ClientContextTooLarge {
            function: key.to_owned(),
            encoded_bytes: encoded.len(),
        });
    }
    let value = HeaderValue::try_from(encoded).expect("base64 text is always a valid header value");
    headers.insert(CLIENT_CONTEXT, value);
    Ok(headers)
}

/// The signer of `auth: aws`: the region as configured or implied, else the
/// AWS chain's, and the chain's credentials.
async fn signer(key: &str, known_region: Option<&str>) -> Result<Signer, InvokerError> {
    let chain = sigv4::load_chain(known_region).await;
    let region = chain.region.ok_or_else(|| InvokerError::NoRegion {
        function: key.to_owned(),
    })?;
    let provider = chain
        .provider
        .ok_or_else(|| InvokerError::NoCredentialsProvider {
            function: key.to_owned(),
        })?;
    Ok(Signer::new(region, provider))
}

/// Reads at most `limit` bytes of the body. A body sent in one piece is kept
/// as it came, without a copy.
async fn read_body(response: &mut reqwest::Response, limit: usize) -> Result<Bytes, BodyError> {
    let announced = response
        .content_length()
        .map(|length| usize::try_from(length).unwrap_or(usize::MAX));
    if announced.is_some_and(|length| length > limit) {
        return Err(BodyError::TooLarge);
    }

    let Some(first) = response.chunk().await.map_err(BodyError::Read)? else {
        return Ok(Bytes::new());
    };
    let Some(second) = response.chunk().await.map_err(BodyError::Read)? else {
        return if first.len() > limit {
            Err(BodyError::TooLarge)
        } else {
            Ok(first)
        };
    };

    let capacity = announced.unwrap_or(first.len() + second.len()).min(limit);
    let mut body = BytesMut::with_capacity(capacity);
    let mut next = Some(second);
    body.extend_from_slice(&first);
    while let Some(chunk) = next {
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
        next = response.chunk().await.map_err(BodyError::Read)?;
    }
    Ok(body.freeze())
}
