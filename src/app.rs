//! `trigger-bridge run`: the engine and the HTTP server, stopped by SIGTERM or
//! SIGINT.
//!
//! The first signal starts a graceful shutdown: the engine stops taking input
//! and lets in-flight work finish within `shutdown_grace`, then the server
//! answers its last requests and stops. A second signal exits at once.

use std::{future::Future, io, task::Poll, time::Duration};

use futures::{Stream, StreamExt};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{
    config::Config,
    engine::{Engine, EngineError},
    metrics::Metrics,
    server::{self, Server, ServerError},
};

/// Exit code after a second signal cut a graceful shutdown short (128 + SIGINT).
pub const FORCED_EXIT_CODE: u8 = 130;

/// The least time the server gets to answer its last requests once the
/// engine has stopped, even when the engine used up the whole grace period.
const SERVER_DRAIN_MIN: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error("signal handlers could not be installed: {0}")]
    Signals(io::Error),
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// A signal asked for a graceful shutdown, and it finished.
    Gracefully,
    /// A second signal came before the graceful shutdown finished.
    Forced,
}

/// Runs every pipeline of `config` and the HTTP server until a signal stops
/// them.
pub async fn run(config: Config) -> Result<Stopped, AppError> {
    let metrics = Metrics::new();
    let engine = Engine::new(&config, &metrics).await?;
    let router = server::router(
        engine.readiness(),
        metrics,
        engine.ingress(),
        config.server.max_body_bytes,
    );
    let server = Server::bind(config.server.listen, router).await?;
    let signals = termination_signals().map_err(AppError::Signals)?;

    let pipelines: Vec<&str> = config.pipelines.iter().map(|p| p.name.as_str()).collect();
    info!(
        listen = %server.local_addr()?,
        pipelines = ?pipelines,
        version = env!("CARGO_PKG_VERSION"),
        "Started"
    );
    let grace = config.shutdown_grace;
    let stopped = supervise(signals, |stop| run_until(engine, server, stop, grace)).await?;
    match stopped {
        Stopped::Gracefully => info!("Stopped"),
        Stopped::Forced => warn!("Stopped before the graceful shutdown finished"),
    }
    Ok(stopped)
}

/// Runs `work` with a stop signal that fires on the first of `signals`.
/// Returns when `work` finishes, or as soon as a second signal comes.
pub async fn supervise<S, F, W, E>(signals: S, work: W) -> Result<Stopped, E>
where
    S: Stream<Item = &'static str> + Unpin,
    W: FnOnce(CancellationToken) -> F,
    F: Future<Output = Result<(), E>>,
{
    let stop = CancellationToken::new();
    let work = work(stop.clone());
    tokio::select! {
        result = work => result.map(|()| Stopped::Gracefully),
        () = watch(signals, stop) => Ok(Stopped::Forced),
    }
}

/// Cancels `stop` on the first signal; returns on the second.
async fn watch(mut signals: impl Stream<Item = &'static str> + Unpin, stop: CancellationToken) {
    let Some(first) = signals.next().await else {
        return std::future::pending().await;
    };
    info!(
        signal = first,
        "Shutting down gracefully; a second signal exits at once"
    );
    stop.cancel();

    let Some(second) = signals.next().await else {
        return std::future::pending().await;
    };
    warn!(signal = second, "Second signal, exiting at once");
}

/// Runs the engine and the server until `stop`, then stops the engine
/// first and the server after it, so ingress routes keep answering while
/// in-flight work finishes.
async fn run_until(
    engine: Engine,
    server: Server,
    stop: CancellationToken,
    grace: Duration,
) -> Result<(), AppError> {
    let server_stop = CancellationToken::new();
    let mut serving = tokio::spawn(server.serve(server_stop.clone().cancelled_owned()));

    // The engine and the server share one deadline: `grace` from the signal.
    let stopped_at = std::sync::OnceLock::new();
    let signalled = async {
        stop.cancelled().await;
        let _ = stopped_at.set(tokio::time::Instant::now());
    };
    engine.run(signalled).await?;
    // An engine with nothing left to run (no pipelines) still leaves health
    // and metrics served until the process is told to stop.
    stop.cancelled().await;
    let deadline = *stopped_at.get_or_init(tokio::time::Instant::now) + grace;
    let drain = deadline
        .saturating_duration_since(tokio::time::Instant::now())
        .max(SERVER_DRAIN_MIN);
    server_stop.cancel();
    match tokio::time::timeout(drain, &mut serving).await {
        Ok(Ok(result)) => result?,
        Ok(Err(join_error)) => {
            warn!(error = %join_error, "The HTTP server task ended abnormally");
        }
        Err(_) => {
            warn!(
                drain = ?drain,
                "HTTP requests still open at the end of the grace period; closing them"
            );
            serving.abort();
        }
    }
    Ok(())
}

/// SIGTERM and SIGINT as they arrive, by name. The handlers are installed
/// when this returns, replacing the default of exiting at once.
pub fn termination_signals() -> io::Result<impl Stream<Item = &'static str> + Unpin> {
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(futures::stream::poll_fn(move |cx| {
        if let Poll::Ready(Some(())) = terminate.poll_recv(cx) {
            return Poll::Ready(Some("SIGTERM"));
        }
        if let Poll::Ready(Some(())) = interrupt.poll_recv(cx) {
            return Poll::Ready(Some("SIGINT"));
        }
        Poll::Pending
    }))
}

#[cfg(test)]
mod tests {
    use futures::channel::mpsc;

    use super::*;

    type Signals = mpsc::UnboundedSender<&'static str>;

    fn signals() -> (Signals, mpsc::UnboundedReceiver<&'static str>) {
        mpsc::unbounded()
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_signal_stops_the_work_and_its_end_ends_the_run() {
        let (send, receive) = signals();
        send.unbounded_send("SIGTERM")
            .expect("the receiver is alive");

        let stopped = supervise(receive, |stop| async move {
            stop.cancelled().await;
            // In-flight work takes a while to finish.
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok::<_, ()>(())
        })
        .await;

        assert_eq!(stopped, Ok(Stopped::Gracefully));
    }

    #[tokio::test(start_paused = true)]
    async fn a_second_signal_ends_a_slow_shutdown_at_once() {
        let (send, receive) = signals();
        let work = |stop: CancellationToken| {
            let send = send.clone();
            async move {
                stop.cancelled().await;
                send.unbounded_send("SIGINT")
                    .expect("the receiver is alive");
                // A shutdown that would outlast any patience.
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok::<_, ()>(())
            }
        };
        send.unbounded_send("SIGTERM")
            .expect("the receiver is alive");
        let started = tokio::time::Instant::now();

        let stopped = supervise(receive, work).await;

        assert_eq!(stopped, Ok(Stopped::Forced));
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn work_that_fails_ends_the_run_with_its_error() {
        let (_send, receive) = signals();

        let stopped = supervise(receive, |_stop| async { Err::<(), _>("engine failed") }).await;

        assert_eq!(stopped, Err("engine failed"));
    }
}
