//! A scripted Lambda-compatible function: a real HTTP/1.1 server on loopback
//! serving `POST /2015-03-31/functions/{name}/invocations`.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode, body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::{net::TcpListener, task::JoinHandle};

/// One request the function received.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub path: String,
    pub query: Option<String>,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
    /// The body parsed as JSON (`Null` when it is not JSON).
    pub event: Value,
}

impl Invocation {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// How the function answers one invocation.
#[derive(Debug, Clone)]
pub enum Reply {
    /// 200 with this JSON body.
    Ok(Value),
    /// 200, `X-Amz-Function-Error: Unhandled`, an `errorType`/`errorMessage` body.
    FunctionError { error_type: String, message: String },
    /// 429 `TooManyRequestsException`, with `Retry-After` when given.
    Throttle { retry_after_secs: Option<u64> },
    /// Any status, headers and body.
    Raw {
        status: u16,
        headers: Vec<(String, String)>,
        body: Bytes,
    },
    /// Waits, then answers.
    Delay(Duration, Box<Reply>),
    /// Closes the connection without answering.
    Drop,
}

type Script = dyn Fn(&Invocation) -> Reply + Send + Sync;

struct State {
    script: Mutex<Arc<Script>>,
    invocations: Mutex<Vec<Invocation>>,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
    connections: AtomicUsize,
}

/// The server. Dropping it stops it.
pub struct FunctionServer {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for FunctionServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FunctionServer")
            .field("addr", &self.addr)
            .finish()
    }
}

impl FunctionServer {
    /// Starts a function that answers `{}` to everything.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("test function server binds a loopback port");
        let addr = listener.local_addr().expect("bound socket has an address");
        let state = Arc::new(State {
            script: Mutex::new(Arc::new(|_: &Invocation| {
                Reply::Ok(Value::Object(Default::default()))
            })),
            invocations: Mutex::new(Vec::new()),
            in_flight: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
        });
        let task = tokio::spawn(accept_loop(listener, state.clone()));
        Self { addr, state, task }
    }

    /// Base URL, for a function's `endpoint`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Decides every later reply.
    pub fn script(&self, script: impl Fn(&Invocation) -> Reply + Send + Sync + 'static) {
        *lock(&self.state.script) = Arc::new(script);
    }

    /// Answers the n-th later invocation with `replies[n]`, and every one
    /// after the last with the last.
    pub fn script_in_turn(&self, replies: Vec<Reply>) {
        let turn = AtomicUsize::new(0);
        let last = replies.len().saturating_sub(1);
        self.script(move |_| {
            let n = turn.fetch_add(1, Ordering::SeqCst).min(last);
            replies
                .get(n)
                .cloned()
                .unwrap_or_else(|| Reply::Ok(Value::Object(Default::default())))
        });
    }

    /// Every invocation received so far, in arrival order.
    pub fn invocations(&self) -> Vec<Invocation> {
        lock(&self.state.invocations).clone()
    }

    pub fn invocation_count(&self) -> usize {
        lock(&self.state.invocations).len()
    }

    /// The most invocations it was answering at once.
    pub fn peak_concurrency(&self) -> usize {
        self.state.peak.load(Ordering::SeqCst)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }
}

impl Drop for FunctionServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    while let Ok((stream, _)) = listener.accept().await {
        let state = state.clone();
        state.connections.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(req, state.clone()));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Answering `Err` makes hyper close the connection without a response.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by script")
    }
}

impl std::error::Error for Dropped {}

async fn handle(
    req: Request<Incoming>,
    state: Arc<State>,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let invocation = Invocation {
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        event: serde_json::from_slice(&body).unwrap_or(Value::Null),
        body,
    };
    let script = lock(&state.script).clone();
    // Scripted and recorded under one lock: the n-th recorded invocation is
    // the n-th the script answered.
    let reply = {
        let mut invocations = lock(&state.invocations);
        let reply = script(&invocation);
        invocations.push(invocation);
        reply
    };
    let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    state.peak.fetch_max(now, Ordering::SeqCst);
    let response = respond(reply).await;
    state.in_flight.fetch_sub(1, Ordering::SeqCst);
    response
}

async fn respond(mut reply: Reply) -> Result<Response<Full<Bytes>>, Dropped> {
    while let Reply::Delay(delay, next) = reply {
        tokio::time::sleep(delay).await;
        reply = *next;
    }
    let response = match reply {
        Reply::Ok(value) => json(StatusCode::OK, &value, &[]),
        Reply::FunctionError {
            error_type,
            message,
        } => json(
            StatusCode::OK,
            &serde_json::json!({ "errorType": error_type, "errorMessage": message }),
            &[("X-Amz-Function-Error", "Unhandled")],
        ),
        Reply::Throttle { retry_after_secs } => {
            let retry_after = retry_after_secs.map(|s| s.to_string());
            let mut headers = vec![("x-amzn-ErrorType", "TooManyRequestsException")];
            if let Some(value) = retry_after.as_deref() {
                headers.push(("Retry-After", value));
            }
            json(
                StatusCode::TOO_MANY_REQUESTS,
                &serde_json::json!({
                    "Type": "User",
                    "message": "Rate Exceeded.",
                    "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded",
                }),
                &headers,
            )
        }
        Reply::Raw {
            status,
            headers,
            body,
        } => {
            let mut builder = Response::builder().status(status);
            for (name, value) in &headers {
                builder = builder.header(name, value);
            }
            builder
                .body(Full::new(body))
                .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
        }
        Reply::Drop => return Err(Dropped),
        Reply::Delay(..) => unreachable!("delays were unwrapped above"),
    };
    Ok(response)
}

fn json(status: StatusCode, value: &Value, headers: &[(&str, &str)]) -> Response<Full<Bytes>> {
    let mut builder = Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("x-amzn-RequestId", uuid::Uuid::new_v4().to_string())
        .header("X-Amz-Executed-Version", "$LATEST");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder
        .body(Full::new(Bytes::from(value.to_string())))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}
