//! Logging: text or JSON lines on stderr, filtered by `--log-level` or
//! `RUST_LOG`, with repeated warnings and errors rate-limited per call site and
//! pipeline.
//!
//! The rate limit lets the first warning or error of a call site and pipeline
//! through, drops the repeats for the rest of its window, and then logs one
//! line saying how many it dropped. A pipeline whose function is down thus
//! logs a handful of lines a minute, not thousands.

use std::{
    collections::HashMap,
    io::IsTerminal,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::time::Instant;
use tracing::{
    Event, Level, Metadata, Subscriber,
    callsite::Identifier,
    field::{Field, Visit},
    span,
};
use tracing_subscriber::{
    EnvFilter, Layer,
    layer::{Context, SubscriberExt},
    registry::LookupSpan,
    util::{SubscriberInitExt, TryInitError},
};

/// How long repeats of a warning or error are dropped after the first.
pub const RATE_LIMIT_WINDOW: Duration = Duration::from_secs(10);

/// The target of the lines that report dropped repeats; never rate-limited.
const SUPPRESSED_TARGET: &str = "trigger_bridge::suppressed";

/// The field that tells pipelines apart, on the event or one of its spans.
const PIPELINE_FIELD: &str = "pipeline";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Text on a terminal, JSON lines otherwise.
    Auto,
    /// Human-readable text.
    Text,
    /// One JSON object a line.
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("log level `{directives}` is not valid: {source}")]
    Filter {
        directives: String,
        source: tracing_subscriber::filter::ParseError,
    },
    #[error("logging could not be set up: {0}")]
    Init(#[from] TryInitError),
}

/// Installs the global subscriber: `directives` (a level such as `info`, or
/// directives such as `trigger_bridge=debug,info`) filter what is logged, in
/// `format`, on stderr. Starts the task that reports dropped repeats, so it
/// must be called inside a tokio runtime.
pub fn init(format: LogFormat, directives: &str) -> Result<(), TelemetryError> {
    let filter = EnvFilter::try_new(directives).map_err(|source| TelemetryError::Filter {
        directives: directives.to_owned(),
        source,
    })?;
    let terminal = std::io::stderr().is_terminal();
    let json = match format {
        LogFormat::Auto => !terminal,
        LogFormat::Text => false,
        LogFormat::Json => true,
    };
    let limit = RateLimit::new(RATE_LIMIT_WINDOW);

    let text_layer = (!json).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(terminal)
    });
    let json_layer = json.then(|| {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(limit.clone())
        .with(text_layer)
        .with(json_layer)
        .try_init()?;

    tokio::spawn(limit.report());
    Ok(())
}

/// A [`Layer`] that drops repeated warnings and errors: per call site and
/// pipeline, the first event of a window passes and the rest are counted.
/// [`RateLimit::report`] logs the counts as windows close.
#[derive(Debug, Clone)]
pub struct RateLimit {
    window: Duration,
    state: Arc<Mutex<Windows>>,
}

#[derive(Debug, Default)]
struct Windows {
    open: HashMap<Key, Window>,
    /// Windows that closed because a new one opened in their place, waiting
    /// for the next report.
    closed: Vec<Suppressed>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    callsite: Identifier,
    pipeline: Option<String>,
}

#[derive(Debug)]
struct Window {
    opened: Instant,
    suppressed: u64,
    metadata: &'static Metadata<'static>,
}

/// Repeats of one call site and pipeline dropped in one window.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Suppressed {
    metadata: &'static Metadata<'static>,
    pipeline: Option<String>,
    count: u64,
}

impl RateLimit {
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            state: Arc::default(),
        }
    }

    /// Logs, once a window, how many repeats each closed window dropped.
    /// Runs until the runtime stops.
    pub async fn report(self) {
        let mut ticks = tokio::time::interval(self.window);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            for suppressed in self.close_expired(Instant::now()) {
                suppressed.log();
            }
        }
    }

    /// Whether an event passes: the first of its key in a window does.
    fn admit(
        &self,
        metadata: &'static Metadata<'static>,
        pipeline: Option<String>,
        now: Instant,
    ) -> bool {
        let mut state = self.lock();
        let key = Key {
            callsite: metadata.callsite(),
            pipeline,
        };
        let Some(window) = state.open.get_mut(&key) else {
            state.open.insert(key, Window::new(metadata, now));
            return true;
        };
        if now < window.opened + self.window {
            window.suppressed += 1;
            return false;
        }

        let expired = std::mem::replace(window, Window::new(metadata, now));
        if expired.suppressed > 0 {
            state.closed.push(expired.into_suppressed(key.pipeline));
        }
        true
    }

    /// Closes the windows that have run out, returning those that dropped
    /// something.
    fn close_expired(&self, now: Instant) -> Vec<Suppressed> {
        let mut state = self.lock();
        let mut report = std::mem::take(&mut state.closed);
        state.open.retain(|key, window| {
            if now < window.opened + self.window {
                return true;
            }
            if window.suppressed > 0 {
                report.push(Suppressed {
                    metadata: window.metadata,
                    pipeline: key.pipeline.clone(),
                    count: window.suppressed,
                });
            }
            false
        });
        report
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Windows> {
        // The state stays consistent even if a holder panicked: every update
        // is a single insert, increment or replace.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<S> Layer<S> for RateLimit
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        remember_pipeline(id, &ctx, |visitor| attrs.record(visitor));
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        remember_pipeline(id, &ctx, |visitor| values.record(visitor));
    }

    fn event_enabled(&self, event: &Event<'_>, ctx: Context<'_, S>) -> bool {
        let metadata = event.metadata();
        if *metadata.level() > Level::WARN || metadata.target() == SUPPRESSED_TARGET {
            return true;
        }
        self.admit(metadata, pipeline_of(event, &ctx), Instant::now())
    }
}

// === impl Window ===

impl Window {
    fn new(metadata: &'static Metadata<'static>, now: Instant) -> Self {
        Self {
            opened: now,
            suppressed: 0,
            metadata,
        }
    }

    fn into_suppressed(self, pipeline: Option<String>) -> Suppressed {
        Suppressed {
            metadata: self.metadata,
            pipeline,
            count: self.suppressed,
        }
    }
}

// === impl Suppressed ===

impl Suppressed {
    /// Logs the count at the level of the lines it stands for, so a filter
    /// that shows those lines shows it too.
    fn log(&self) {
        let pipeline = self.pipeline.as_deref();
        let callsite = format!(
            "{}:{}",
            self.metadata.file().unwrap_or(self.metadata.target()),
            self.metadata.line().unwrap_or(0)
        );
        if *self.metadata.level() == Level::ERROR {
            tracing::error!(
                target: SUPPRESSED_TARGET,
                pipeline,
                callsite,
                suppressed = self.count,
                "Suppressed repeated log lines"
            );
        } else {
            tracing::warn!(
                target: SUPPRESSED_TARGET,
                pipeline,
                callsite,
                suppressed = self.count,
                "Suppressed repeated log lines"
            );
        }
    }
}

// === pipeline field ===

/// The `pipeline` a span was created or recorded with, kept in the span's
/// extensions so its events can be keyed by it.
struct SpanPipeline(String);

/// Finds the `pipeline` field among the values `record` visits.
#[derive(Default)]
struct PipelineVisitor(Option<String>);

impl Visit for PipelineVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == PIPELINE_FIELD {
            self.0 = Some(value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == PIPELINE_FIELD {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

fn remember_pipeline<S>(id: &span::Id, ctx: &Context<'_, S>, record: impl FnOnce(&mut dyn Visit))
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let mut visitor = PipelineVisitor::default();
    record(&mut visitor);
    if let (Some(pipeline), Some(span)) = (visitor.0, ctx.span(id)) {
        span.extensions_mut().replace(SpanPipeline(pipeline));
    }
}

/// The event's own `pipeline` field, else the innermost span's.
fn pipeline_of<S>(event: &Event<'_>, ctx: &Context<'_, S>) -> Option<String>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let mut visitor = PipelineVisitor::default();
    event.record(&mut visitor);
    if visitor.0.is_some() {
        return visitor.0;
    }
    ctx.event_scope(event)?
        .find_map(|span| span.extensions().get::<SpanPipeline>().map(|p| p.0.clone()))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    /// Log lines captured in memory.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Captured {
        fn lines(&self) -> Vec<serde_json::Value> {
            let bytes = self.0.lock().expect("not poisoned").clone();
            String::from_utf8(bytes)
                .expect("log lines are UTF-8")
                .lines()
                .map(|line| serde_json::from_str(line).expect("a JSON log line"))
                .collect()
        }
    }

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("not poisoned").extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Self;

        fn make_writer(&'a self) -> Self {
            self.clone()
        }
    }

    fn subscriber(limit: &RateLimit, out: &Captured) -> impl Subscriber + Send + Sync {
        tracing_subscriber::registry().with(limit.clone()).with(
            tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_writer(out.clone()),
        )
    }

    fn messages(lines: &[serde_json::Value]) -> Vec<String> {
        lines
            .iter()
            .map(|line| {
                let pipeline = line["pipeline"].as_str().unwrap_or("-");
                let suppressed = line["suppressed"].as_u64().map(|n| format!(" {n}"));
                format!(
                    "{} {pipeline} {}{}",
                    line["level"].as_str().expect("a level"),
                    line["message"].as_str().expect("a message"),
                    suppressed.unwrap_or_default()
                )
            })
            .collect()
    }

    fn fail(pipeline: &str, times: usize) {
        for attempt in 0..times {
            tracing::error!(pipeline, attempt, "Dead-letter write failed");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn passes_the_first_repeat_per_pipeline_and_reports_the_rest() {
        let limit = RateLimit::new(Duration::from_secs(10));
        let out = Captured::default();
        let _guard = tracing::subscriber::set_default(subscriber(&limit, &out));
        tokio::spawn(limit.clone().report());

        fail("orders", 5);
        fail("invoices", 2);
        tracing::info!(pipeline = "orders", "Connected");
        tracing::info!(pipeline = "orders", "Connected");
        assert_eq!(
            messages(&out.lines()),
            [
                "ERROR orders Dead-letter write failed",
                "ERROR invoices Dead-letter write failed",
                "INFO orders Connected",
                "INFO orders Connected",
            ]
        );

        tokio::time::sleep(Duration::from_secs(11)).await;
        let lines = out.lines();
        let mut reported = messages(&lines[4..]);
        reported.sort();
        assert_eq!(
            reported,
            [
                "ERROR invoices Suppressed repeated log lines 1",
                "ERROR orders Suppressed repeated log lines 4",
            ]
        );
        assert!(
            lines[4]["callsite"]
                .as_str()
                .expect("a call site")
                .starts_with("src/telemetry.rs:")
        );

        // The windows closed: the next repeat passes again.
        fail("orders", 1);
        assert_eq!(
            messages(&out.lines()[6..]),
            ["ERROR orders Dead-letter write failed"]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn keys_by_the_pipeline_of_the_enclosing_span() {
        let limit = RateLimit::new(Duration::from_secs(10));
        let out = Captured::default();
        let _guard = tracing::subscriber::set_default(subscriber(&limit, &out));

        for pipeline in ["orders", "orders", "invoices"] {
            let span = tracing::info_span!("pipeline", pipeline);
            let _entered = span.enter();
            tracing::warn!("Retrying delivery");
        }

        assert_eq!(
            messages(&out.lines()),
            ["WARN - Retrying delivery", "WARN - Retrying delivery"]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_repeat_after_the_window_opens_a_new_one_and_keeps_the_count() {
        let limit = RateLimit::new(Duration::from_secs(10));
        let metadata = tracing::warn_span!("x")
            .metadata()
            .expect("a span has metadata");
        let orders = || Some("orders".to_owned());
        let start = Instant::now();

        assert!(limit.admit(metadata, orders(), start));
        assert!(!limit.admit(metadata, orders(), start + Duration::from_secs(3)));
        assert!(!limit.admit(metadata, orders(), start + Duration::from_secs(9)));
        assert!(limit.admit(metadata, orders(), start + Duration::from_secs(10)));
        assert!(!limit.admit(metadata, orders(), start + Duration::from_secs(12)));

        let report = limit.close_expired(start + Duration::from_secs(12));
        assert_eq!(report.len(), 1);
        assert_eq!(report[0].count, 2);
        let report = limit.close_expired(start + Duration::from_secs(20));
        assert_eq!(report.len(), 1);
        assert_eq!(report[0].count, 1);
        assert!(
            limit
                .close_expired(start + Duration::from_secs(40))
                .is_empty()
        );
    }
}
