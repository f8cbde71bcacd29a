//! The HTTP server, answering real requests on a loopback port.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{Router, body::Bytes, routing::post};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::Notify,
    task::JoinHandle,
};
use tokio_util::sync::CancellationToken;
use trigger_bridge::{
    engine::Readiness,
    metrics::Metrics,
    server::{self, Server, ServerError},
};
use trigger_bridge_sdk::SourceStatus;

const MAX_BODY_BYTES: usize = 1024;

struct Running {
    base: String,
    addr: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<Result<(), ServerError>>,
}

async fn start(readiness: Readiness, metrics: Metrics, ingress: Router) -> Running {
    let router = server::router(readiness, metrics, ingress, MAX_BODY_BYTES);
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let server = Server::bind(loopback, router).await.expect("binds");
    let addr = server.local_addr().expect("has an address");
    let stop = CancellationToken::new();
    let task = tokio::spawn(server.serve(stop.clone().cancelled_owned()));
    Running {
        base: format!("http://{addr}"),
        addr,
        stop,
        task,
    }
}

async fn start_plain() -> Running {
    start(Readiness::default(), Metrics::new(), Router::new()).await
}

/// An ingress route that answers with the length of the body it read.
fn length_route() -> Router {
    Router::new().route(
        "/ingress/length",
        post(|body: Bytes| async move { body.len().to_string() }),
    )
}

#[tokio::test]
async fn healthz_answers_while_the_process_runs() {
    let server = start_plain().await;

    let response = reqwest::get(format!("{}/healthz", server.base))
        .await
        .expect("answers");

    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn readyz_lists_the_pipelines_whose_source_is_not_connected() {
    let orders = SourceStatus::default();
    let invoices = SourceStatus::default();
    orders.set_connected(true);
    let readiness = Readiness::new(vec![
        ("orders".to_owned(), orders),
        ("invoices".to_owned(), invoices.clone()),
    ]);
    let server = start(readiness, Metrics::new(), Router::new()).await;
    let url = format!("{}/readyz", server.base);

    let response = reqwest::get(&url).await.expect("answers");
    assert_eq!(response.status(), 503);
    let body: serde_json::Value =
        serde_json::from_str(&response.text().await.expect("a body")).expect("JSON");
    assert_eq!(body["not_ready"], serde_json::json!(["invoices"]));

    invoices.set_connected(true);
    let response = reqwest::get(&url).await.expect("answers");
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn metrics_are_served_in_the_openmetrics_text_format() {
    let metrics = Metrics::new();
    metrics
        .pipeline("orders", "handler")
        .records_received
        .inc_by(7);
    let server = start(Readiness::default(), metrics, Router::new()).await;

    let response = reqwest::get(format!("{}/metrics", server.base))
        .await
        .expect("answers");

    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().expect("text");
    assert!(
        content_type.starts_with("application/openmetrics-text; version=1.0.0"),
        "{content_type}"
    );
    let body = response.text().await.expect("a body");
    assert!(body.contains(
        r#"trigger_bridge_records_received_total{pipeline="orders",function="handler"} 7"#
    ));
    assert!(body.ends_with("# EOF\n"));
}

#[tokio::test]
async fn ingress_bodies_over_the_limit_get_413() {
    let server = start(Readiness::default(), Metrics::new(), length_route()).await;
    let client = reqwest::Client::new();
    let url = format!("{}/ingress/length", server.base);

    let at_limit = client
        .post(&url)
        .body(vec![b'x'; MAX_BODY_BYTES])
        .send()
        .await;
    let at_limit = at_limit.expect("answers");
    assert_eq!(at_limit.status(), 200);
    assert_eq!(at_limit.text().await.expect("a body"), "1024");

    let over = client
        .post(&url)
        .body(vec![b'x'; MAX_BODY_BYTES + 1])
        .send()
        .await;
    assert_eq!(over.expect("answers").status(), 413);
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_gets_413() {
    let server = start(Readiness::default(), Metrics::new(), length_route()).await;
    let body = vec![b'x'; 2 * MAX_BODY_BYTES];
    let mut request = format!(
        "POST /ingress/length HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    request.extend_from_slice(b"\r\n0\r\n\r\n");

    let mut stream = TcpStream::connect(server.addr).await.expect("connects");
    stream.write_all(&request).await.expect("sends");
    let mut answer = [0; 12];
    stream.read_exact(&mut answer).await.expect("reads");

    assert_eq!(&answer, b"HTTP/1.1 413");
}

#[tokio::test]
async fn a_graceful_stop_answers_the_requests_in_flight() {
    let entered = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let slow = {
        let (entered, release) = (entered.clone(), release.clone());
        Router::new().route(
            "/ingress/slow",
            post(move || async move {
                entered.notify_one();
                release.notified().await;
                "done"
            }),
        )
    };
    let server = start(Readiness::default(), Metrics::new(), slow).await;
    let url = format!("{}/ingress/slow", server.base);
    let in_flight = tokio::spawn(async move { reqwest::Client::new().post(url).send().await });
    entered.notified().await;

    server.stop.cancel();
    release.notify_one();

    let response = in_flight.await.expect("joins").expect("answers");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.expect("a body"), "done");
    let served = tokio::time::timeout(Duration::from_secs(10), server.task).await;
    served
        .expect("stops")
        .expect("joins")
        .expect("stops cleanly");
    let refused = TcpStream::connect(server.addr).await;
    assert!(
        refused.is_err(),
        "still accepting connections after stopping"
    );
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let router = server::router(Readiness::default(), Metrics::new(), Router::new(), 1024);
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let server = Server::bind(loopback, router)
        .await
        .expect("binds")
        .with_header_read_timeout(Duration::from_millis(200));
    let addr = server.local_addr().expect("has an address");
    let stop = CancellationToken::new();
    let task = tokio::spawn(server.serve(stop.clone().cancelled_owned()));

    let mut slow = TcpStream::connect(addr).await.expect("connects");
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("sends part of its headers");
    // The server closes the connection (after a 408 or without a word).
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the connection is still open");

    let healthz = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .expect("a well-behaved client is still served");
    assert_eq!(healthz.status(), 200);
    stop.cancel();
    task.await
        .expect("server task does not panic")
        .expect("server stops cleanly");
}
