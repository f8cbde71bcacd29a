//! The three ways records reach the function, each run on the bench's single
//! thread:
//!
//! - `raw`: a plain HTTP client loop posting ready-made envelopes, with the
//!   invoker's client settings. The ceiling.
//! - `bare`: records from the bench source, taken from its channel, wrapped
//!   in their envelope and posted, one envelope per batch, no batcher, no
//!   dispatcher. What the source contract costs on its own.
//! - `pipeline`: the engine: source, batcher, dispatcher, invoker.

use std::{fmt, sync::Arc, time::Duration};

use bytes::Bytes;
use reqwest::{
    Method, Url,
    header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue},
};
use serde_json::json;
use tokio::{
    sync::{Semaphore, mpsc},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;
use trigger_bridge::{
    config::{Config, PipelineSpec},
    engine::EngineBuilder,
    metrics::Metrics,
};
use trigger_bridge_sdk::{
    Envelope, Outcome, Record, RecordSender, Shutdown, SourceContext, SourceStatus,
};

use crate::{
    function::{self, Function, Stats},
    source::{BenchSource, Settled},
    usage::{Mark, Usage},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Raw,
    Bare,
    Pipeline,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Raw => "raw",
            Mode::Bare => "bare",
            Mode::Pipeline => "pipeline",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Case {
    pub mode: Mode,
    /// Records per invocation.
    pub batch: usize,
    /// Invocations in flight at once.
    pub concurrency: usize,
}

/// One run of a case.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub records: usize,
    /// The bench process, from the first record sent to the last answer.
    pub usage: Usage,
    /// What the function saw.
    pub function: Stats,
    pub function_cpu: Duration,
}

impl Case {
    /// Moves `records` records (rounded up to whole batches) to `function`.
    pub async fn run(&self, function: &Function, records: usize) -> Sample {
        let records = records.div_ceil(self.batch) * self.batch;
        let stats = function.stats().await;
        let cpu = function.cpu();
        let usage = match self.mode {
            Mode::Raw => raw(&function.endpoint, *self, records).await,
            Mode::Bare => settled(bare(&function.endpoint, *self, records).await, records),
            Mode::Pipeline => settled(pipeline(&function.endpoint, *self, records).await, records),
        };
        Sample {
            records,
            usage,
            function: function.stats().await - stats,
            function_cpu: function.cpu().saturating_sub(cpu),
        }
    }
}

fn settled(settled: Settled, records: usize) -> Usage {
    assert_eq!(
        (settled.delivered, settled.not_delivered),
        (records, 0),
        "every record is delivered"
    );
    settled.usage
}

/// The invoke URL and headers of function `f`, as the invoker sends them.
struct Target {
    url: Url,
    headers: HeaderMap,
}

impl Target {
    fn new(endpoint: &str) -> Self {
        let url = format!("{endpoint}/2015-03-31/functions/f/invocations");
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(
            HeaderName::from_static("x-amz-invocation-type"),
            HeaderValue::from_static("RequestResponse"),
        );
        Self {
            url: Url::parse(&url).expect("the function's URL is valid"),
            headers,
        }
    }

    /// Posts `body` and reads the answer in full, as the invoker does.
    async fn post(&self, client: &reqwest::Client, body: Bytes) {
        let mut request = reqwest::Request::new(Method::POST, self.url.clone());
        *request.headers_mut() = self.headers.clone();
        *request.body_mut() = Some(body.into());
        let response = client.execute(request).await.expect("the function answers");
        assert_eq!(response.status(), 200, "the function accepts the event");
        response.bytes().await.expect("the answer is read");
    }
}

/// The invoker's client settings (src/invoke/client.rs), with Lambda's
/// default function timeout.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("trigger-bridge/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the HTTP client builds")
}

/// `concurrency` tasks posting the same envelope of `batch` records in a loop.
async fn raw(endpoint: &str, case: Case, records: usize) -> Usage {
    let target = Arc::new(Target::new(endpoint));
    let client = client();
    let body = function::envelope(case.batch);
    // One permit per request: a task takes one before each post.
    let requests = Arc::new(Semaphore::new(records / case.batch));

    let start = Mark::now();
    let mut workers = JoinSet::new();
    for _ in 0..case.concurrency {
        let (target, client, body, requests) = (
            target.clone(),
            client.clone(),
            body.clone(),
            requests.clone(),
        );
        workers.spawn(async move {
            while let Ok(permit) = requests.try_acquire() {
                permit.forget();
                target.post(&client, body.clone()).await;
            }
        });
    }
    while let Some(done) = workers.join_next().await {
        done.expect("a client task does not panic");
    }
    start.usage()
}

/// The bench source's records, taken from its channel a batch at a time,
/// posted in their envelope and settled, `concurrency` at once.
async fn bare(endpoint: &str, case: Case, records: usize) -> Settled {
    let (tx, mut rx) = mpsc::channel(case.batch.clamp(16, 1024));
    let shutdown = Shutdown::new();
    let context = SourceContext {
        pipeline: "bare".into(),
        records: RecordSender::new(tx),
        shutdown: shutdown.clone(),
        status: SourceStatus::default(),
    };
    let (source, settled) = BenchSource::new(Bytes::copy_from_slice(function::RECORD), records);
    let source = tokio::spawn(source.produce(context));

    let target = Arc::new(Target::new(endpoint));
    let client = client();
    let mut in_flight = JoinSet::new();
    let mut settled = std::pin::pin!(settled);
    let settled = loop {
        tokio::select! {
            biased;
            Some(done) = in_flight.join_next() => done.expect("a post does not panic"),
            settled = &mut settled => break settled.expect("the source reports"),
            first = rx.recv(), if in_flight.len() < case.concurrency => {
                let Some(first) = first else { continue };
                let batch = take_batch(first, &mut rx, case.batch);
                let (target, client) = (target.clone(), client.clone());
                in_flight.spawn(async move {
                    let size = batch.iter().map(|r| r.size() + 1).sum::<usize>() + 64;
                    let event = Envelope::records().encode(&batch, size);
                    target.post(&client, event).await;
                    for record in batch {
                        record.settle(Outcome::Delivered);
                    }
                });
            }
        }
    };
    shutdown.finish();
    source
        .await
        .expect("the source does not panic")
        .expect("the source ends well");
    settled
}

fn take_batch(first: Record, rx: &mut mpsc::Receiver<Record>, max: usize) -> Vec<Record> {
    let mut batch = Vec::with_capacity(max);
    batch.push(first);
    while batch.len() < max {
        match rx.try_recv() {
            Ok(record) => batch.push(record),
            Err(_) => break,
        }
    }
    batch
}

/// The engine with one pipeline from the bench source to the function.
async fn pipeline(endpoint: &str, case: Case, records: usize) -> Settled {
    let config: Config = serde_json::from_value(json!({
        "functions": { "f": { "endpoint": endpoint, "auth": "none" } },
        "shutdown_grace": "5s",
    }))
    .expect("the bench config is valid");
    let mut spec = PipelineSpec {
        name: "bench".into(),
        function: "f".into(),
        ..PipelineSpec::default()
    };
    spec.batching.max_records = Some(case.batch);
    // Batches go out as soon as a permit is free, with what has arrived.
    spec.batching.window = Some(Duration::ZERO);
    spec.max_concurrency = Some(case.concurrency as u32);

    let (source, settled) = BenchSource::new(Bytes::copy_from_slice(function::RECORD), records);
    let mut builder = EngineBuilder::new(&config, &Metrics::new())
        .await
        .expect("the engine builds");
    builder
        .add_pipeline(&spec, Box::new(source))
        .expect("the pipeline builds");
    let stop = CancellationToken::new();
    let engine = tokio::spawn(builder.build().run(stop.clone().cancelled_owned()));

    let settled = settled.await.expect("the source reports");
    stop.cancel();
    engine
        .await
        .expect("the engine does not panic")
        .expect("the engine stops well");
    settled
}
