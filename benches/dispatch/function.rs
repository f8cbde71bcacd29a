//! The function under the benchmark: a minimal HTTP/1.1 server in its own
//! process that reads each request body in full and answers `200 {}` at once.
//!
//! It parses nothing, but it checks every invocation body byte for byte: an
//! envelope must be `{"Records":[` followed by copies of [`RECORD`] joined by
//! commas, then `]}`. A record that had been re-serialized on its way (keys
//! reordered, the space in it dropped) shows up as a bad body. `GET /stats`
//! answers the counts as `requests records bad_bodies`.

use std::{
    io::{BufRead, BufReader},
    process::{Child, ChildStdin, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{
    Method, Request, Response, body::Incoming, header::CONTENT_TYPE, server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::usage;

/// The argument that makes the bench binary run as the function.
pub const SERVE_ARG: &str = "--serve-function";

/// One SQS-like record, as an SQS connector would have serialized it. Its one
/// insignificant space (after `"messageId":`) and its key order, which is not
/// alphabetical, are the canary: serializing it again would change its bytes.
pub const RECORD: &[u8] = concat!(
    r#"{"messageId": "059f36b4-87a3-44ab-83d2-661975830a7d","#,
    r#""receiptHandle":"AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a","#,
    r#""body":"{\"orderId\":1042}","#,
    r#""attributes":{"ApproximateReceiveCount":"1","SentTimestamp":"1545082649183"},"#,
    r#""messageAttributes":{},"md5OfBody":"e4e68fb7bd0e697a0ae8f1bb342846b3","#,
    r#""eventSource":"aws:sqs","eventSourceARN":"arn:aws:sqs:us-east-1:111122223333:orders","#,
    r#""awsRegion":"us-east-1"}"#,
)
.as_bytes();

const PREFIX: &[u8] = br#"{"Records":["#;
const SUFFIX: &[u8] = b"]}";

/// The envelope of `records` copies of [`RECORD`], as the raw client loop
/// posts it.
pub fn envelope(records: usize) -> Bytes {
    let mut out = Vec::with_capacity(PREFIX.len() + records * (RECORD.len() + 1) + SUFFIX.len());
    out.extend_from_slice(PREFIX);
    for i in 0..records {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(RECORD);
    }
    out.extend_from_slice(SUFFIX);
    out.into()
}

/// Checks the body check itself: envelopes of verbatim records are counted,
/// and one whose record went through `serde_json` again is rejected.
pub fn check_the_check() {
    assert_eq!(records_in(&envelope(1)), Some(1));
    assert_eq!(records_in(&envelope(3)), Some(3));
    assert_eq!(records_in(br#"{"Records":[]}"#), None);
    let value: serde_json::Value = serde_json::from_slice(RECORD).expect("RECORD is JSON");
    let again = format!(r#"{{"Records":[{value}]}}"#);
    assert_eq!(
        records_in(again.as_bytes()),
        None,
        "a re-serialized record is caught"
    );
}

/// The number of records in `body`, or `None` when it is not an envelope of
/// verbatim copies of [`RECORD`].
fn records_in(body: &[u8]) -> Option<u64> {
    let mut rest = body.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    let mut records = 0;
    loop {
        rest = rest.strip_prefix(RECORD)?;
        records += 1;
        match rest.split_first() {
            None => return Some(records),
            Some((b',', tail)) => rest = tail,
            Some(_) => return None,
        }
    }
}

#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    records: AtomicU64,
    bad: AtomicU64,
}

/// What the function has seen so far.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stats {
    pub requests: u64,
    pub records: u64,
    pub bad: u64,
}

impl std::ops::Sub for Stats {
    type Output = Stats;

    fn sub(self, earlier: Stats) -> Stats {
        Stats {
            requests: self.requests - earlier.requests,
            records: self.records - earlier.records,
            bad: self.bad - earlier.bad,
        }
    }
}

/// Runs the function until its standard input closes, which happens when the
/// bench that started it exits. Prints the port it listens on first.
pub fn serve() -> std::io::Result<()> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    println!("{}", listener.local_addr()?.port());
    // The bench closed our standard input: it is done, and so are we.
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        std::process::exit(0);
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(accept(listener))
}

async fn accept(listener: std::net::TcpListener) -> std::io::Result<()> {
    let listener = TcpListener::from_std(listener)?;
    let counts = Arc::new(Counts::default());
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let counts = counts.clone();
        let service = service_fn(move |request| answer(request, counts.clone()));
        tokio::spawn(async move {
            let io = TokioIo::new(stream);
            // A connection the client closes ends here; nothing to do.
            let _ = http1::Builder::new().serve_connection(io, service).await;
        });
    }
}

async fn answer(
    request: Request<Incoming>,
    counts: Arc<Counts>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    if request.method() == Method::GET && request.uri().path() == "/stats" {
        let text = format!(
            "{} {} {}",
            counts.requests.load(Ordering::Relaxed),
            counts.records.load(Ordering::Relaxed),
            counts.bad.load(Ordering::Relaxed),
        );
        return Ok(Response::new(Full::new(text.into())));
    }

    let body = request.into_body().collect().await?.to_bytes();
    counts.requests.fetch_add(1, Ordering::Relaxed);
    match records_in(&body) {
        Some(n) => counts.records.fetch_add(n, Ordering::Relaxed),
        None => counts.bad.fetch_add(1, Ordering::Relaxed),
    };
    let mut response = Response::new(Full::new(Bytes::from_static(b"{}")));
    response.headers_mut().insert(
        CONTENT_TYPE,
        "application/json".parse().expect("a valid header value"),
    );
    Ok(response)
}

/// The function, running as a child process of the bench.
pub struct Function {
    child: Child,
    /// Closing it tells the child to exit.
    stdin: Option<ChildStdin>,
    pub endpoint: String,
    stats: reqwest::Client,
}

impl Function {
    /// Starts this binary again as the function and waits for its port.
    pub fn start() -> std::io::Result<Self> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg(SERVE_ARG)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("no stdout"))?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let port: u16 = line
            .trim()
            .parse()
            .map_err(|_| std::io::Error::other(format!("the function printed {line:?}")))?;
        Ok(Self {
            child,
            stdin,
            endpoint: format!("http://127.0.0.1:{port}"),
            stats: reqwest::Client::new(),
        })
    }

    pub async fn stats(&self) -> Stats {
        let url = format!("{}/stats", self.endpoint);
        let text = async { self.stats.get(&url).send().await?.text().await };
        let text = text.await.expect("the function answers /stats");
        let mut numbers = text.split(' ').map(|n| n.parse::<u64>().unwrap_or(0));
        let mut next = || numbers.next().unwrap_or(0);
        Stats {
            requests: next(),
            records: next(),
            bad: next(),
        }
    }

    /// CPU time the function's process has used so far.
    pub fn cpu(&self) -> Duration {
        usage::of_process(&self.child.id().to_string())
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        drop(self.stdin.take());
        if self.child.wait().is_err() {
            let _ = self.child.kill();
        }
    }
}
