//! The dispatch benchmark: records from an in-process source through the
//! batcher, the dispatcher and the invoker into a local HTTP function that
//! answers at once, beside a plain HTTP client loop posting to the same
//! function. Method and results: docs/BENCHMARKS.md.
//!
//! ```text
//! cargo bench --bench dispatch [-- --runs 7 --seconds 0.7 --concurrency 4,8 \
//!     --batches 1,10,100 --modes raw,bare,pipeline --records N]
//! ```
//!
//! Without `--bench` (as `cargo test --benches` runs it) it makes one short
//! run of every case: a smoke test.

mod cases;
mod function;
mod report;
mod source;
mod usage;

use std::{alloc::System, process::ExitCode, time::Duration};

use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};

use crate::{
    cases::{Case, Mode, Sample},
    function::Function,
};

/// Counts every allocation of the bench process, to show the cost per record.
#[global_allocator]
static ALLOCATOR: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Records of a first, short run that warms a case up and sizes its runs.
const PROBE_REQUESTS: usize = 50;

#[derive(Debug, Clone)]
pub struct Options {
    pub runs: usize,
    /// Length of one run, roughly.
    pub seconds: f64,
    pub concurrency: Vec<usize>,
    pub batches: Vec<usize>,
    pub modes: Vec<Mode>,
    /// Records a run instead of `seconds` of them (for profiling).
    pub records: Option<usize>,
    /// Started without `--bench`: a check that every case works, no more.
    pub smoke: bool,
}

impl Options {
    fn parse(args: &[String]) -> Result<Self, String> {
        let full = args.iter().any(|a| a == "--bench");
        let mut options = Options {
            runs: if full { 7 } else { 1 },
            seconds: if full { 0.7 } else { 0.05 },
            concurrency: if full { vec![4, 8] } else { vec![2] },
            batches: vec![1, 10, 100],
            modes: vec![Mode::Raw, Mode::Bare, Mode::Pipeline],
            records: None,
            smoke: !full,
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut value = || args.next().ok_or(format!("{arg} needs a value"));
            match arg.as_str() {
                "--bench" => {}
                "--runs" => options.runs = number(value()?)?,
                "--seconds" => options.seconds = number(value()?)?,
                "--concurrency" => options.concurrency = list(value()?)?,
                "--batches" => options.batches = list(value()?)?,
                "--modes" => options.modes = modes(value()?)?,
                "--records" => options.records = Some(number(value()?)?),
                other => return Err(format!("unknown argument {other}")),
            }
        }
        Ok(options)
    }

    fn cases(&self) -> Vec<Case> {
        let mut cases = Vec::new();
        for &concurrency in &self.concurrency {
            for &batch in &self.batches {
                for &mode in &self.modes {
                    cases.push(Case {
                        mode,
                        batch,
                        concurrency,
                    });
                }
            }
        }
        cases
    }
}

fn number<T: std::str::FromStr>(text: &str) -> Result<T, String> {
    text.parse().map_err(|_| format!("{text} is not a number"))
}

fn list(text: &str) -> Result<Vec<usize>, String> {
    text.split(',').map(number).collect()
}

fn modes(text: &str) -> Result<Vec<Mode>, String> {
    let mode = |name| match name {
        "raw" => Ok(Mode::Raw),
        "bare" => Ok(Mode::Bare),
        "pipeline" => Ok(Mode::Pipeline),
        other => Err(format!("{other} is not a mode: raw, bare or pipeline")),
    };
    text.split(',').map(mode).collect()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == function::SERVE_ARG) {
        return match function::serve() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("the function failed: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let options = match Options::parse(&args) {
        Ok(options) => options,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(64);
        }
    };

    function::check_the_check();
    let function = Function::start().expect("the function starts");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("the runtime builds");
    let results = runtime.block_on(measure(&function, &options));
    report::print(&options, &results);
    ExitCode::SUCCESS
}

/// Every case, `runs` times, round-robin so that a noisy moment of the
/// machine hits every case alike.
async fn measure(function: &Function, options: &Options) -> Vec<(Case, Vec<Sample>)> {
    let cases = options.cases();
    let mut sizes = Vec::with_capacity(cases.len());
    for case in &cases {
        if let Some(records) = options.records {
            sizes.push(records);
            continue;
        }
        let probe = case.batch * case.concurrency * PROBE_REQUESTS;
        let sample = checked(case, case.run(function, probe).await);
        let rate = sample.records as f64 / sample.usage.wall.as_secs_f64();
        sizes.push(((rate * options.seconds) as usize).max(case.batch));
    }

    let mut samples = vec![Vec::with_capacity(options.runs); cases.len()];
    for run in 0..options.runs {
        eprintln!("run {}/{}", run + 1, options.runs);
        for (i, case) in cases.iter().enumerate() {
            samples[i].push(checked(case, case.run(function, sizes[i]).await));
        }
    }
    cases.into_iter().zip(samples).collect()
}

/// Fails the bench if the function did not get every record, verbatim.
fn checked(case: &Case, sample: Sample) -> Sample {
    assert_eq!(
        sample.function.bad, 0,
        "{case:?}: every envelope holds verbatim records"
    );
    assert_eq!(
        sample.function.records as usize, sample.records,
        "{case:?}: the function got every record once"
    );
    assert!(sample.usage.wall > Duration::ZERO);
    sample
}
