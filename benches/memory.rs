//! Allocations and bytes per task, counted by a global allocator that
//! counts (stats_alloc): raw tokio tasks beside taskward children.
//!
//! Two figures per kind of task, each divided by the number of tasks:
//! - idle: spawn `N` tasks that wait on a token, wait until all have
//!   started, and count the bytes still allocated and the allocations made;
//! - spawn + join: the allocations and bytes allocated (freed or not) to
//!   spawn and await `N` trivial tasks, as in the `spawn_join` timings.
//!
//! ```sh
//! cargo bench -p taskward-benches --bench memory             # print the table
//! cargo bench -p taskward-benches --bench memory -- --write  # regenerate its section of BENCHMARKS.md
//! ```
//!
//! The counting allocator slows every allocation, so this binary only counts;
//! the timings come from `report` and `compare`, which run without it.

#[path = "support/section.rs"]
mod section;
#[path = "support/tasks.rs"]
mod tasks;

use std::alloc::System;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use section::{Args, write_section};
use stats_alloc::{Region, StatsAlloc};
use tasks::{idle_parent, tree, tree_size, trivial, wait_started};
use taskward::{CancellationToken, Scope};
use tokio::task::JoinSet;
use tokio_util::task::TaskTracker;

#[global_allocator]
static GLOBAL: StatsAlloc<System> = StatsAlloc::system();

/// Tasks per measurement.
const N: usize = 10_000;

/// Depth of the nested tree whose allocations per task are counted.
const TREE_DEPTH: u32 = 3;

/// Repetitions when none are asked for; the median is kept.
const ROUNDS: usize = 3;

/// What the allocator saw during one measured part, per task.
#[derive(Clone, Copy, Default)]
struct PerTask {
    allocations: f64,
    /// Allocated during the part: live at its end for `idle`, all of it for
    /// `spawn + join`.
    bytes: f64,
}

impl PerTask {
    /// Counts from `region`'s start, divided by `tasks`.
    fn since(region: &Region<'_, System>, tasks: usize, live: bool) -> PerTask {
        let change = region.change();
        // stats_alloc counts a realloc's growth in `bytes_allocated` (and
        // its shrinking in `bytes_deallocated`) already; `bytes_reallocated`
        // is the same bytes again.
        let allocated = change.bytes_allocated as f64;
        let bytes = if live {
            allocated - change.bytes_deallocated as f64
        } else {
            allocated
        };
        PerTask {
            allocations: (change.allocations + change.reallocations) as f64 / tasks as f64,
            bytes: bytes / tasks as f64,
        }
    }
}

/// One kind of task, measured idle and through a spawn + join.
struct Kind {
    name: &'static str,
    idle: Option<fn() -> PerTask>,
    spawn_join: fn() -> PerTask,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("a tokio runtime")
}

/// Runs `f` in a task on a worker of a fresh 2-worker runtime.
fn on_worker<F: Future<Output = PerTask> + Send + 'static>(f: F) -> PerTask {
    let rt = runtime();
    rt.block_on(async { tokio::spawn(f).await.expect("a measurement panicked") })
}

fn raw_idle() -> PerTask {
    on_worker(async {
        let parent = CancellationToken::new();
        let started = Arc::new(AtomicUsize::new(0));
        let mut handles = Vec::with_capacity(N);
        let region = Region::new(&GLOBAL);
        for _ in 0..N {
            let token = parent.clone();
            let started = Arc::clone(&started);
            handles.push(tokio::spawn(async move {
                started.fetch_add(1, Ordering::Release);
                token.cancelled().await;
            }));
        }
        wait_started(&started, N).await;
        let counted = PerTask::since(&region, N, true);
        parent.cancel();
        for handle in handles {
            handle.await.expect("an idle task panicked");
        }
        counted
    })
}

fn tracker_idle() -> PerTask {
    on_worker(async {
        let parent = CancellationToken::new();
        let tracker = TaskTracker::new();
        let started = Arc::new(AtomicUsize::new(0));
        let mut handles = Vec::with_capacity(N);
        let region = Region::new(&GLOBAL);
        for _ in 0..N {
            let token = parent.child_token();
            let started = Arc::clone(&started);
            handles.push(tracker.spawn(async move {
                started.fetch_add(1, Ordering::Release);
                token.cancelled().await;
            }));
        }
        wait_started(&started, N).await;
        let counted = PerTask::since(&region, N, true);
        parent.cancel();
        for handle in handles {
            handle.await.expect("an idle task panicked");
        }
        tracker.close();
        tracker.wait().await;
        counted
    })
}

fn taskward_idle_block() -> PerTask {
    on_worker(async {
        taskward::run(taskward::task(|scope: Scope| async move {
            let started = Arc::new(AtomicUsize::new(0));
            let mut handles = Vec::with_capacity(N);
            let region = Region::new(&GLOBAL);
            for _ in 0..N {
                let token = scope.token().clone();
                let started = Arc::clone(&started);
                handles.push(scope.spawn(async move {
                    started.fetch_add(1, Ordering::Release);
                    token.cancelled().await;
                }));
            }
            wait_started(&started, N).await;
            let counted = PerTask::since(&region, N, true);
            scope.cancel();
            for handle in handles {
                handle.await?;
            }
            Ok::<_, taskward::Error>(counted)
        }))
        .await
        .expect("taskward idle failed")
    })
}

fn taskward_idle_fn() -> PerTask {
    on_worker(async {
        taskward::run(taskward::task(|scope: Scope| async move {
            let started = Arc::new(AtomicUsize::new(0));
            // The parent's own node is one task among N + 1.
            let region = Region::new(&GLOBAL);
            let parent = scope.spawn(idle_parent(N, Arc::clone(&started)));
            wait_started(&started, N).await;
            let counted = PerTask::since(&region, N, true);
            parent.cancel();
            parent.await?;
            Ok::<_, taskward::Error>(counted)
        }))
        .await
        .expect("taskward idle failed")
    })
}

fn raw_spawn_join() -> PerTask {
    on_worker(async {
        let mut handles = Vec::with_capacity(N);
        let region = Region::new(&GLOBAL);
        for i in 0..N {
            handles.push(tokio::spawn(async move { black_box(i) }));
        }
        for handle in handles.drain(..) {
            black_box(handle.await.expect("a trivial task panicked"));
        }
        PerTask::since(&region, N, false)
    })
}

fn joinset_spawn_join() -> PerTask {
    on_worker(async {
        let region = Region::new(&GLOBAL);
        let mut set = JoinSet::new();
        for i in 0..N {
            set.spawn(async move { black_box(i) });
        }
        while let Some(result) = set.join_next().await {
            black_box(result.expect("a trivial task panicked"));
        }
        PerTask::since(&region, N, false)
    })
}

fn tracker_spawn_join() -> PerTask {
    on_worker(async {
        let mut handles = Vec::with_capacity(N);
        let region = Region::new(&GLOBAL);
        let tracker = TaskTracker::new();
        let token = CancellationToken::new();
        for i in 0..N {
            let token = token.child_token();
            handles.push(tracker.spawn(async move { (!token.is_cancelled()).then(|| black_box(i)) }));
        }
        tracker.close();
        for handle in handles.drain(..) {
            black_box(handle.await.expect("a trivial task panicked"));
        }
        tracker.wait().await;
        PerTask::since(&region, N, false)
    })
}

fn taskward_spawn_join_fn() -> PerTask {
    on_worker(async {
        let mut handles = Vec::with_capacity(N);
        let region = Region::new(&GLOBAL);
        taskward::run(taskward::task(|scope: Scope| async move {
            for i in 0..N {
                handles.push(scope.spawn(trivial(i)));
            }
            for handle in handles.drain(..) {
                black_box(handle.await?);
            }
            Ok::<_, taskward::Error>(())
        }))
        .await
        .expect("taskward spawn_join failed");
        PerTask::since(&region, N, false)
    })
}

fn taskward_spawn_join_block() -> PerTask {
    on_worker(async {
        let mut handles = Vec::with_capacity(N);
        let region = Region::new(&GLOBAL);
        taskward::run(taskward::task(|scope: Scope| async move {
            for i in 0..N {
                handles.push(scope.spawn(async move { Ok::<_, Infallible>(black_box(i)) }));
            }
            for handle in handles.drain(..) {
                black_box(handle.await?);
            }
            Ok::<_, taskward::Error>(())
        }))
        .await
        .expect("taskward spawn_join failed");
        PerTask::since(&region, N, false)
    })
}

fn taskward_tree() -> PerTask {
    on_worker(async {
        let region = Region::new(&GLOBAL);
        let total = taskward::run(tree(TREE_DEPTH)).await.expect("taskward tree failed");
        assert_eq!(total, tree_size(TREE_DEPTH) + 1);
        PerTask::since(&region, tree_size(TREE_DEPTH), false)
    })
}

const KINDS: &[Kind] = &[
    Kind {
        name: "raw tokio::spawn (baseline)",
        idle: Some(raw_idle),
        spawn_join: raw_spawn_join,
    },
    Kind {
        name: "tokio JoinSet",
        idle: None,
        spawn_join: joinset_spawn_join,
    },
    Kind {
        name: "TaskTracker + child token",
        idle: Some(tracker_idle),
        spawn_join: tracker_spawn_join,
    },
    Kind {
        name: "taskward, #[supervised] fn",
        idle: Some(taskward_idle_fn),
        spawn_join: taskward_spawn_join_fn,
    },
    Kind {
        name: "taskward, async block",
        idle: Some(taskward_idle_block),
        spawn_join: taskward_spawn_join_block,
    },
    Kind {
        name: "taskward, nested tree (#[supervised] fn, per task)",
        idle: None,
        spawn_join: taskward_tree,
    },
];

/// The median of `rounds` measurements, field by field.
fn median_of(rounds: usize, f: fn() -> PerTask) -> PerTask {
    let runs: Vec<PerTask> = (0..rounds).map(|_| f()).collect();
    let pick = |field: fn(&PerTask) -> f64| {
        let mut values: Vec<f64> = runs.iter().map(field).collect();
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    PerTask {
        allocations: pick(|p| p.allocations),
        bytes: pick(|p| p.bytes),
    }
}

fn main() {
    let args = Args::parse();
    let rounds = args.rounds.unwrap_or(ROUNDS).max(1);
    let mut table = String::from(
        "| task | idle: live bytes per task | idle: vs raw | idle: allocations per task | \
         spawn + join: allocations per task | spawn + join: bytes allocated per task |\n\
         |---|---:|---:|---:|---:|---:|\n",
    );
    let mut raw_idle_bytes = None;
    let mut verdicts = String::new();
    for kind in KINDS {
        if args.filter.as_deref().is_some_and(|f| !kind.name.contains(f)) {
            continue;
        }
        eprintln!("counting {}", kind.name);
        let idle = kind.idle.map(|f| median_of(rounds, f));
        let spawn_join = median_of(rounds, kind.spawn_join);
        let (idle_bytes, idle_vs_raw, idle_allocs) = match idle {
            Some(idle) => {
                let base = *raw_idle_bytes.get_or_insert(idle.bytes);
                let extra = idle.bytes - base;
                if kind.name.starts_with("taskward") {
                    let met = if extra <= 256.0 { "met" } else { "**not met**" };
                    let _ = writeln!(
                        verdicts,
                        "- {}: an idle child holds {:.0} B, raw + {extra:.0} B; target raw + 256 B: {met}",
                        kind.name, idle.bytes
                    );
                }
                (
                    format!("{:.0} B", idle.bytes),
                    format!("{extra:+.0} B"),
                    format!("{:.2}", idle.allocations),
                )
            }
            None => ("-".to_owned(), "-".to_owned(), "-".to_owned()),
        };
        let _ = writeln!(
            table,
            "| {} | {idle_bytes} | {idle_vs_raw} | {idle_allocs} | {:.2} | {:.0} B |",
            kind.name, spawn_join.allocations, spawn_join.bytes
        );
    }
    let body = format!(
        "Generated by `cargo bench -p taskward-benches --bench memory -- --write` (or the command above): \
         {N} tasks per measurement (nested tree: depth {TREE_DEPTH}, {} tasks), median of {rounds} runs, \
         counted by a counting global allocator (all threads).\n\n{table}\n{verdicts}",
        tree_size(TREE_DEPTH)
    );
    print!("{body}");
    if args.write && args.filter.is_none() {
        match write_section("memory", &body) {
            Ok(path) => eprintln!("wrote the memory table into {}", path.display()),
            Err(err) => {
                eprintln!("{err}");
                std::process::exit(1);
            }
        }
    } else if args.write {
        eprintln!("--write ignored: a filtered run does not replace the full table");
    }
}
