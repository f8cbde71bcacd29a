//! The results as Markdown: one table of medians, then the ratios the
//! targets are stated in.

use crate::{
    Options,
    cases::{Case, Mode, Sample},
};

/// Batch size 1 reaches at least this share of the raw request rate.
const BATCH_1_TARGET: f64 = 0.80;
/// Batch size 100 moves at least this many records a second per core.
const BATCH_100_TARGET: f64 = 200_000.0;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// The median over runs of `metric`.
fn med(samples: &[Sample], metric: impl Fn(&Sample) -> f64) -> f64 {
    median(samples.iter().map(metric).collect())
}

fn records_per_s(s: &Sample) -> f64 {
    s.records as f64 / s.usage.wall.as_secs_f64()
}

fn requests_per_s(s: &Sample) -> f64 {
    s.function.requests as f64 / s.usage.wall.as_secs_f64()
}

fn records_per_request(s: &Sample) -> f64 {
    s.records as f64 / s.function.requests as f64
}

fn records_per_cpu_s(s: &Sample) -> f64 {
    s.records as f64 / s.usage.cpu.as_secs_f64()
}

fn cpu_us_per_request(s: &Sample) -> f64 {
    s.usage.cpu.as_secs_f64() * 1e6 / s.function.requests as f64
}

pub fn print(options: &Options, results: &[(Case, Vec<Sample>)]) {
    if options.smoke {
        println!("\nSmoke run (started without --bench): these numbers measure nothing.");
    }
    println!(
        "\nMedians of {} runs of about {} s each; one thread for the bench, \
         one for the function.\n",
        options.runs, options.seconds
    );
    println!(
        "| mode | concurrency | batch | records/s | requests/s | records/request \
         | bench CPU (cores) | CPU µs/request | records/CPU-s | function CPU (cores) \
         | allocations/record | bytes allocated/record |"
    );
    println!("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    for (case, samples) in results {
        let per_record = |f: fn(&Sample) -> usize| med(samples, |s| f(s) as f64 / s.records as f64);
        println!(
            "| {} | {} | {} | {:.0} | {:.0} | {:.1} | {:.2} | {:.1} | {:.0} | {:.2} \
             | {:.2} | {:.0} |",
            case.mode,
            case.concurrency,
            case.batch,
            med(samples, records_per_s),
            med(samples, requests_per_s),
            med(samples, records_per_request),
            med(samples, |s| s.usage.cpu.as_secs_f64()
                / s.usage.wall.as_secs_f64()),
            med(samples, cpu_us_per_request),
            med(samples, records_per_cpu_s),
            med(samples, |s| s.function_cpu.as_secs_f64()
                / s.usage.wall.as_secs_f64()),
            per_record(|s| s.usage.allocations),
            per_record(|s| s.usage.allocated_bytes),
        );
    }
    println!();
    for &concurrency in &options.concurrency {
        ratios(results, options, concurrency);
    }
}

/// The samples of the case with this mode, batch and concurrency.
fn find(
    results: &[(Case, Vec<Sample>)],
    mode: Mode,
    batch: usize,
    concurrency: usize,
) -> Option<&[Sample]> {
    let wanted = Case {
        mode,
        batch,
        concurrency,
    };
    results
        .iter()
        .find(|(case, _)| *case == wanted)
        .map(|(_, s)| s.as_slice())
}

/// `metric(a) / metric(b)` over runs, pairing each run of `a` with the run
/// of `b` made right beside it: the median, and the spread.
struct Ratio {
    median: f64,
    min: f64,
    max: f64,
}

impl Ratio {
    fn paired(a: &[Sample], b: &[Sample], metric: fn(&Sample) -> f64) -> Self {
        let ratios: Vec<f64> = a
            .iter()
            .zip(b)
            .map(|(a, b)| metric(a) / metric(b))
            .collect();
        Self {
            median: median(ratios.clone()),
            min: ratios.iter().copied().fold(f64::INFINITY, f64::min),
            max: ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        }
    }
}

impl std::fmt::Display for Ratio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.2} ({:.2}–{:.2})", self.median, self.min, self.max)
    }
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

fn ratios(results: &[(Case, Vec<Sample>)], options: &Options, concurrency: usize) {
    println!("Concurrency {concurrency} (median over runs, min–max in brackets):");
    let find = |mode, batch| find(results, mode, batch, concurrency);
    if let (Some(raw), Some(pipeline)) = (find(Mode::Raw, 1), find(Mode::Pipeline, 1)) {
        let rate = Ratio::paired(pipeline, raw, requests_per_s);
        println!(
            "- batch 1, pipeline ÷ raw: requests/s {rate} (target ≥ {BATCH_1_TARGET:.2}: {}), \
             CPU per request {}",
            verdict(rate.median >= BATCH_1_TARGET),
            Ratio::paired(pipeline, raw, cpu_us_per_request),
        );
    }
    if let (Some(raw), Some(bare)) = (find(Mode::Raw, 1), find(Mode::Bare, 1)) {
        println!(
            "- batch 1, bare ÷ raw: requests/s {}, CPU per request {}",
            Ratio::paired(bare, raw, requests_per_s),
            Ratio::paired(bare, raw, cpu_us_per_request),
        );
    }
    if let Some(pipeline) = find(Mode::Pipeline, 100) {
        let wall = med(pipeline, records_per_s);
        let cpu = med(pipeline, records_per_cpu_s);
        println!(
            "- batch 100, pipeline: {wall:.0} records/s on one thread, {cpu:.0} records \
             per CPU-second (target ≥ {BATCH_100_TARGET:.0}: {})",
            verdict(wall >= BATCH_100_TARGET && cpu >= BATCH_100_TARGET)
        );
    }
    for &batch in &options.batches {
        let (Some(bare), Some(pipeline)) = (find(Mode::Bare, batch), find(Mode::Pipeline, batch))
        else {
            continue;
        };
        println!(
            "- batch {batch}, pipeline ÷ bare: records/s {}, records per request {}",
            Ratio::paired(pipeline, bare, records_per_s),
            Ratio::paired(pipeline, bare, records_per_request),
        );
    }
    println!();
}
