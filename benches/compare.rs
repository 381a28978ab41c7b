//! Criterion benchmarks: every group measures taskward beside its baselines
//! on a 2-worker tokio runtime, then prints each variant's median time per
//! task and its ratio to the group's baseline.
//!
//! ```sh
//! cargo bench -p taskward-benches --bench compare                # everything (a few minutes)
//! cargo bench -p taskward-benches --bench compare -- spawn_join  # one group
//! ```
//!
//! The ratios printed here come from variants measured one after the other;
//! the interleaved ones in BENCHMARKS.md (`--bench report`) are the ones to
//! quote.

#[path = "support/cases.rs"]
mod cases;
#[path = "support/tasks.rs"]
mod tasks;

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};

use cases::{cases, runtime};

/// Nanoseconds per task of every sample criterion took, by case and variant.
type Samples = HashMap<(String, &'static str), Vec<f64>>;

fn bench(c: &mut Criterion, samples: &Mutex<Samples>) {
    let rt = runtime();
    for case in cases() {
        let name = case.name();
        let mut group = c.benchmark_group(case.group);
        group.throughput(Throughput::Elements(case.tasks as u64));
        if case.tasks >= 10_000 {
            group.sampling_mode(SamplingMode::Flat).sample_size(10);
        } else {
            group.sample_size(30);
        }
        group.warm_up_time(Duration::from_secs(1));
        group.measurement_time(Duration::from_secs(3));
        for variant in &case.variants {
            group.bench_function(BenchmarkId::new(variant.id, &case.label), |b| {
                b.iter_custom(|iters| {
                    let elapsed = case.time(&rt, variant, iters);
                    let per_task = elapsed.as_nanos() as f64 / (iters as f64 * case.tasks as f64);
                    samples
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .entry((name.clone(), variant.id))
                        .or_default()
                        .push(per_task);
                    elapsed
                });
            });
        }
        group.finish();
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn print_ratios(samples: &mut Samples) {
    println!("\nmedian ns per task, and ratio to the first variant of each case:");
    for case in cases() {
        let name = case.name();
        let baseline = samples.get_mut(&(name.clone(), case.variants[0].id)).map(|v| median(v));
        for variant in &case.variants {
            let Some(values) = samples.get_mut(&(name.clone(), variant.id)) else {
                continue;
            };
            let ns = median(values);
            let ratio = baseline.map_or_else(|| "-".to_owned(), |base| format!("{:.2}x", ns / base));
            println!("{name:<28} {:<44} {ns:>10.1} ns  {ratio:>7}", variant.name);
        }
    }
}

fn main() {
    let samples = Mutex::new(Samples::new());
    let mut criterion = Criterion::default().configure_from_args();
    bench(&mut criterion, &samples);
    criterion.final_summary();
    print_ratios(&mut samples.into_inner().unwrap_or_else(PoisonError::into_inner));
}
