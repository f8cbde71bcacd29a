//! SigV4 signing of invocations (`auth: aws`), with credentials from the
//! standard AWS chain: environment, profile, web identity (Kubernetes service
//! accounts), container and instance metadata.

use std::time::{Duration, SystemTime};

use aws_config::{BehaviorVersion, Region};
use aws_credential_types::{
    Credentials,
    provider::{ProvideCredentials, SharedCredentialsProvider, error::CredentialsError},
};
use aws_sigv4::{
    http_request::{SignableBody, SignableRequest, SigningError, SigningSettings, sign},
    sign::v4,
};
use reqwest::header::{HeaderName, HeaderValue};
use tokio::sync::RwLock;

/// Lambda's signing name.
const SERVICE: &str = "lambda";

/// Credentials closer than this to their expiry are refreshed before use, so
/// a request signed now is still valid when the service checks it.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);

/// Signs requests for one region. The credential provider is resolved once;
/// the credentials it yields are cached until they near their expiry.
#[derive(Debug)]
pub(super) struct Signer {
    region: String,
    provider: SharedCredentialsProvider,
    cached: RwLock<Option<Credentials>>,
}

#[derive(Debug, thiserror::Error)]
pub(super) enum SignError {
    #[error("no AWS credentials could be loaded: {0}")]
    Credentials(#[from] CredentialsError),
    #[error("signing parameters are incomplete: {0}")]
    Params(#[from] v4::signing_params::BuildError),
    #[error("the request could not be signed: {0}")]
    Signing(#[from] SigningError),
    #[error("the signature produced an invalid `{name}` header")]
    Header { name: &'static str },
}

/// The region and credential provider of the standard AWS chain.
pub(super) struct AwsChain {
    pub region: Option<String>,
    pub provider: Option<SharedCredentialsProvider>,
}

/// Loads the standard chain once. A known `region` is handed to it so the
/// chain does not go looking for one (the instance metadata lookup is slow off
/// EC2).
pub(super) async fn load_chain(region: Option<&str>) -> AwsChain {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(region) = region {
        loader = loader.region(Region::new(region.to_owned()));
    }
    let config = loader.load().await;
    AwsChain {
        region: config.region().map(|r| r.as_ref().to_owned()),
        provider: config.credentials_provider(),
    }
}

impl Signer {
    pub(super) fn new(region: String, provider: SharedCredentialsProvider) -> Self {
        Self {
            region,
            provider,
            cached: RwLock::new(None),
        }
    }

    pub(super) fn region(&self) -> &str {
        &self.region
    }

    /// Adds `Authorization`, `X-Amz-Date` and, with temporary credentials,
    /// `X-Amz-Security-Token` to `request`, signing its method, URL, headers
    /// and `body`.
    pub(super) async fn sign(
        &self,
        request: &mut reqwest::Request,
        body: &[u8],
    ) -> Result<(), SignError> {
        let identity = self.credentials().await?.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(SERVICE)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()?
            .into();

        let headers = request
            .headers()
            .iter()
            .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)));
        let signable = SignableRequest::new(
            request.method().as_str(),
            request.url().as_str(),
            headers,
            SignableBody::Bytes(body),
        )?;
        let (instructions, _signature) = sign(signable, &params)?.into_parts();

        let (signed_headers, _params) = instructions.into_parts();
        for signed in signed_headers {
            let name = signed.name();
            let mut value =
                HeaderValue::try_from(signed.value()).map_err(|_| SignError::Header { name })?;
            value.set_sensitive(signed.sensitive());
            request
                .headers_mut()
                .insert(HeaderName::from_static(name), value);
        }
        Ok(())
    }

    /// Cached credentials, refreshed when they near their expiry. When a
    /// refresh fails, credentials that have not yet expired are still used.
    async fn credentials(&self) -> Result<Credentials, SignError> {
        let now = SystemTime::now();
        if let Some(credentials) = self.cached.read().await.as_ref() {
            if is_fresh(credentials, now) {
                return Ok(credentials.clone());
            }
        }

        // One refresh at a time; the others wait and take its result.
        let mut cached = self.cached.write().await;
        if let Some(credentials) = cached.as_ref() {
            if is_fresh(credentials, now) {
                return Ok(credentials.clone());
            }
        }
        match self.provider.provide_credentials().await {
            Ok(credentials) => {
                *cached = Some(credentials.clone());
                Ok(credentials)
            }
            Err(error) => match cached.as_ref().filter(|c| !is_expired(c, now)) {
                Some(credentials) => {
                    tracing::warn!(%error, "Refreshing AWS credentials failed; using current ones");
                    Ok(credentials.clone())
                }
                None => Err(error.into()),
            },
        }
    }
}

fn is_fresh(credentials: &Credentials, now: SystemTime) -> bool {
    credentials
        .expiry()
        .is_none_or(|expiry| expiry > now + REFRESH_BEFORE_EXPIRY)
}

fn is_expired(credentials: &Credentials, now: SystemTime) -> bool {
    credentials.expiry().is_some_and(|expiry| expiry <= now)
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };

    use aws_credential_types::provider::future;

    use super::*;

    /// Counts calls and hands out credentials that expire `lifetime` after
    /// each call, or fails once `failing` is set.
    #[derive(Debug, Clone)]
    struct Counting {
        calls: Arc<AtomicUsize>,
        lifetime: Option<Duration>,
        failing: bool,
    }

    impl ProvideCredentials for Counting {
        fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.failing {
                return future::ProvideCredentials::ready(Err(CredentialsError::not_loaded(
                    "test provider is failing",
                )));
            }
            let expiry = self.lifetime.map(|l| SystemTime::now() + l);
            future::ProvideCredentials::ready(Ok(Credentials::new(
                "AKIDEXAMPLE",
                "secret",
                Some("token".into()),
                expiry,
                "test",
            )))
        }
    }

    fn signer(lifetime: Option<Duration>, failing: bool) -> (Signer, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let provider = Counting {
            calls: calls.clone(),
            lifetime,
            failing,
        };
        let signer = Signer::new("eu-west-1".into(), SharedCredentialsProvider::new(provider));
        (signer, calls)
    }

    fn request() -> reqwest::Request {
        let url = "https://lambda.eu-west-1.amazonaws.com/2015-03-31/functions/f/invocations";
        let mut request =
            reqwest::Request::new(reqwest::Method::POST, url.parse().expect("test URL parses"));
        request.headers_mut().insert(
            reqwest::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        request
    }

    #[tokio::test]
    async fn signs_with_a_lambda_scoped_authorization() {
        let (signer, _) = signer(None, false);
        let mut request = request();

        signer
            .sign(&mut request, b"{}")
            .await
            .expect("signing succeeds");

        let headers = request.headers();
        let authorization = headers["authorization"].to_str().expect("ASCII header");
        assert!(authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"));
        assert!(authorization.contains("/eu-west-1/lambda/aws4_request"));
        assert!(authorization.contains("SignedHeaders=content-type;host;x-amz-date"));
        assert!(headers.contains_key("x-amz-date"));
        assert!(headers["x-amz-security-token"].is_sensitive());
    }

    #[tokio::test]
    async fn long_lived_credentials_are_loaded_once() {
        let (signer, calls) = signer(Some(Duration::from_secs(3600)), false);
        for _ in 0..3 {
            signer
                .sign(&mut request(), b"{}")
                .await
                .expect("signing succeeds");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn credentials_near_expiry_are_refreshed() {
        let (signer, calls) = signer(Some(Duration::from_secs(60)), false);
        for _ in 0..3 {
            signer
                .sign(&mut request(), b"{}")
                .await
                .expect("signing succeeds");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn missing_credentials_fail_the_signature() {
        let (signer, _) = signer(None, true);
        let error = signer
            .sign(&mut request(), b"{}")
            .await
            .expect_err("no credentials, no signature");
        assert!(matches!(error, SignError::Credentials(_)), "{error}");
    }
}
