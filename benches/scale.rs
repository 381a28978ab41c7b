//! Scale: how a task's cost grows with the depth and the width of its tree,
//! against raw tokio in the same process.
//!
//! - **Chains**: each task spawns the next and awaits it, 1,000, 10,000 and
//!   100,000 deep (a recursive worker that goes deep). Each round runs the
//!   raw tokio chain and the taskward chain one after the other (order
//!   alternating); the ratio is the median over the rounds of taskward's
//!   time over raw's. The last column shows how the time grows from one
//!   depth to the next (linear growth is 10x).
//! - **Wide**: 1,000,000 idle children under one scope, each waiting for
//!   cancellation: live heap bytes per child (a counting allocator), then
//!   the time from the cancel to the end of the join, beside raw tokio tasks
//!   that each wait on a child token and are joined through their handles.
//!   Raw and taskward alternate over `WIDE_ROUNDS` rounds, as the chains
//!   do; the ratio is the median of the rounds' ratios.
//!
//! ```sh
//! cargo bench -p taskward-benches --bench scale            # print
//! cargo bench -p taskward-benches --bench scale -- --write # BENCHMARKS.md
//! ```

#[path = "support/section.rs"]
mod section;

use std::alloc::System;
use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use section::{Args, write_section};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use taskward::{Error, Root, Scope, supervised};
use tokio_util::sync::CancellationToken;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Rounds of the chains when none are asked for: odd, for the median.
const ROUNDS: usize = 5;

const DEPTHS: [u32; 3] = [1_000, 10_000, 100_000];

const WIDE: usize = 1_000_000;

/// Rounds of the wide tree: each starts 2,000,000 tasks in all.
const WIDE_ROUNDS: usize = 3;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

#[supervised(name = "link")]
async fn chain(scope: &Scope, depth: u32) -> Result<u32, Error> {
    if depth == 0 {
        return Ok(0);
    }
    Ok(scope.spawn(chain(depth - 1)).await? + 1)
}

/// The same chain with `tokio::spawn`.
fn raw_chain(depth: u32) -> Pin<Box<dyn Future<Output = u32> + Send>> {
    Box::pin(async move {
        if depth == 0 {
            return 0;
        }
        tokio::spawn(raw_chain(depth - 1)).await.expect("a raw link") + 1
    })
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

fn human(seconds: f64) -> String {
    if seconds >= 1.0 {
        format!("{seconds:.2} s")
    } else {
        format!("{:.1} ms", seconds * 1e3)
    }
}

/// Seconds taken by `run` on `runtime`.
fn timed<F: Future>(runtime: &tokio::runtime::Runtime, run: F) -> (f64, F::Output) {
    let start = Instant::now();
    let output = runtime.block_on(run);
    (start.elapsed().as_secs_f64(), output)
}

/// (raw seconds, taskward seconds, ratio), medians over `rounds`.
fn chains(rounds: usize) -> Vec<(u32, f64, f64, f64)> {
    let runtime = runtime();
    DEPTHS
        .iter()
        .map(|&depth| {
            let (mut raw, mut ours, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
            for round in 0..rounds {
                let measure_raw = || {
                    let (seconds, value) = timed(&runtime, raw_chain(depth));
                    assert_eq!(value, depth);
                    seconds
                };
                let measure_ours = || {
                    let (seconds, value) = timed(&runtime, taskward::run(chain(depth)));
                    assert_eq!(value.expect("the chain's value"), depth);
                    seconds
                };
                let (r, o) = if round % 2 == 0 {
                    let r = measure_raw();
                    (r, measure_ours())
                } else {
                    let o = measure_ours();
                    (measure_raw(), o)
                };
                raw.push(r);
                ours.push(o);
                ratios.push(o / r);
            }
            (depth, median(&raw), median(&ours), median(&ratios))
        })
        .collect()
}

/// The wide tree's figures: medians over `WIDE_ROUNDS` rounds.
struct Wide {
    raw_bytes: f64,
    raw_seconds: f64,
    our_bytes: f64,
    our_seconds: f64,
    /// The median of the rounds' ratios of cancel-and-join times.
    ratio: f64,
}

/// Raw and taskward alternating, which goes first changing each round.
fn wide(runtime: &tokio::runtime::Runtime) -> Wide {
    let (mut raw, mut ours, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..WIDE_ROUNDS {
        let (r, o) = if round % 2 == 0 {
            let r = wide_raw(runtime);
            (r, wide_taskward(runtime))
        } else {
            let o = wide_taskward(runtime);
            (wide_raw(runtime), o)
        };
        ratios.push(o.1 / r.1);
        raw.push(r);
        ours.push(o);
    }
    let pick = |of: &[(f64, f64)], at: fn(&(f64, f64)) -> f64| median(&of.iter().map(at).collect::<Vec<_>>());
    Wide {
        raw_bytes: pick(&raw, |r| r.0),
        raw_seconds: pick(&raw, |r| r.1),
        our_bytes: pick(&ours, |o| o.0),
        our_seconds: pick(&ours, |o| o.1),
        ratio: median(&ratios),
    }
}

/// Live heap bytes now (the whole process).
fn live(region: &Region<'_, System>) -> f64 {
    let change = region.change();
    change.bytes_allocated as f64 - change.bytes_deallocated as f64
}

/// Waits until `started` reaches `count`.
async fn all_started(started: &AtomicUsize, count: usize) {
    while started.load(Ordering::Acquire) < count {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// (bytes per child, seconds from the cancel to the end of the join).
fn wide_taskward(runtime: &tokio::runtime::Runtime) -> (f64, f64) {
    runtime.block_on(async {
        let root = Root::new();
        let stop = root.token();
        let started = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&started);
        let region = Region::new(GLOBAL);
        let tree = tokio::spawn(root.run(taskward::task(move |scope: Scope| async move {
            for _ in 0..WIDE {
                let started = Arc::clone(&counted);
                scope.spawn(taskward::task(move |child: Scope| async move {
                    started.fetch_add(1, Ordering::Release);
                    child.cancelled().await;
                }));
            }
            scope.cancelled().await;
            Ok::<_, Error>(())
        })));
        all_started(&started, WIDE).await;
        let bytes = live(&region) / WIDE as f64;
        let start = Instant::now();
        stop.cancel();
        tree.await.expect("the tree's task").expect("the tree's result");
        (bytes, start.elapsed().as_secs_f64())
    })
}

/// The same with raw tokio tasks, each on a child token.
fn wide_raw(runtime: &tokio::runtime::Runtime) -> (f64, f64) {
    runtime.block_on(async {
        let token = CancellationToken::new();
        let started = Arc::new(AtomicUsize::new(0));
        let region = Region::new(GLOBAL);
        let handles: Vec<_> = (0..WIDE)
            .map(|_| {
                let token = token.child_token();
                let started = Arc::clone(&started);
                tokio::spawn(async move {
                    started.fetch_add(1, Ordering::Release);
                    token.cancelled().await;
                })
            })
            .collect();
        all_started(&started, WIDE).await;
        let bytes = live(&region) / WIDE as f64;
        let start = Instant::now();
        token.cancel();
        for handle in handles {
            handle.await.expect("a raw task");
        }
        (bytes, start.elapsed().as_secs_f64())
    })
}

fn main() {
    let args = Args::parse();
    let rounds = args.rounds.unwrap_or(ROUNDS);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Generated by `cargo bench -p taskward-benches --bench scale -- --write`: chains each a median of {rounds} rounds, raw and taskward alternating; 2 workers.\n"
    );
    let _ = writeln!(
        out,
        "| chain depth | raw tokio | taskward `#[supervised]` | ratio | growth from the row above |"
    );
    let _ = writeln!(out, "|---:|---:|---:|---:|---:|");
    let mut previous: Option<f64> = None;
    for (depth, raw, ours, ratio) in chains(rounds) {
        let growth = previous.map_or_else(|| "—".to_owned(), |before| format!("{:.1}x", ours / before));
        let _ = writeln!(
            out,
            "| {depth} | {} | {} | {ratio:.2}x | {growth} |",
            human(raw),
            human(ours)
        );
        previous = Some(ours);
    }
    let wide = wide(&runtime());
    let _ = writeln!(
        out,
        "\n| {WIDE} idle children, median of {WIDE_ROUNDS} rounds | bytes per child | cancel and join | ratio |\n|---|---:|---:|---:|"
    );
    let _ = writeln!(
        out,
        "| raw tokio tasks on child tokens | {:.0} B | {} | |",
        wide.raw_bytes,
        human(wide.raw_seconds)
    );
    let _ = writeln!(
        out,
        "| taskward `task(..)` children waiting on their token | {:.0} B | {} | {:.2}x |",
        wide.our_bytes,
        human(wide.our_seconds),
        wide.ratio
    );
    print!("{out}");
    if args.write {
        match write_section("scale", &out) {
            Ok(path) => eprintln!("wrote {}", path.display()),
            Err(err) => {
                eprintln!("{err}");
                std::process::exit(1);
            }
        }
    }
}
