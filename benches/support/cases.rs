//! The comparisons: each case does one piece of work with taskward and with
//! its baselines. `compare` (criterion) and `report` (interleaved rounds) run
//! the same cases.

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use taskward::{Policy, Scope, Task};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::tasks::{FANOUT, idle_parent, tree, tree_size, trivial, wait_started};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Worker threads of the runtime every case runs on: 2 (the issue's
/// setting), or `TASKWARD_BENCH_WORKERS` for profiling (with 1 worker, no
/// thread steals or spins, so callgrind's counts repeat from run to run).
pub(crate) fn worker_threads() -> usize {
    std::env::var("TASKWARD_BENCH_WORKERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2)
}

/// The runtime of every measurement: multi-threaded, 2 workers.
pub(crate) fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(worker_threads())
        .build()
        .expect("a tokio runtime")
}

/// One way of doing a case's work.
pub(crate) struct Variant {
    /// Short name, for filters and criterion ids (`raw`, `taskward-fn`, ...).
    pub(crate) id: &'static str,
    /// What the table shows.
    pub(crate) name: &'static str,
    /// Does the work once with the case's parameter and gives the time of
    /// the measured part (set-up such as starting idle tasks is excluded).
    run: fn(usize) -> BoxFuture<Duration>,
}

/// One comparison; its first variant is the baseline the others are
/// divided by.
pub(crate) struct Case {
    pub(crate) group: &'static str,
    /// The parameter as shown (`100000`, `depth 4`).
    pub(crate) label: String,
    param: usize,
    /// Tasks started per run, for per-task figures.
    pub(crate) tasks: usize,
    pub(crate) variants: Vec<Variant>,
}

impl Case {
    /// `group/label`, the name of the case in filters and tables.
    pub(crate) fn name(&self) -> String {
        format!("{}/{}", self.group, self.label)
    }

    /// Runs `variant` `iters` times on `rt`, driven from a task on a worker
    /// thread (as a real parent would be), and gives the summed measured time.
    pub(crate) fn time(&self, rt: &Runtime, variant: &Variant, iters: u64) -> Duration {
        let (run, param) = (variant.run, self.param);
        rt.block_on(async move {
            tokio::spawn(async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += run(param).await;
                }
                total
            })
            .await
            .expect("a benchmark panicked")
        })
    }
}

/// Every case, in the order of the tables.
pub(crate) fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for n in [1_000, 10_000, 100_000] {
        cases.push(Case {
            group: "spawn_join",
            label: n.to_string(),
            param: n,
            tasks: n,
            variants: vec![
                Variant {
                    id: "raw",
                    name: "raw tokio::spawn + JoinHandle",
                    run: |n| Box::pin(raw_spawn_join(n)),
                },
                Variant {
                    id: "joinset",
                    name: "tokio JoinSet",
                    run: |n| Box::pin(joinset_spawn_join(n)),
                },
                Variant {
                    id: "tracker",
                    name: "TaskTracker + child token",
                    run: |n| Box::pin(tracker_spawn_join(n)),
                },
                Variant {
                    id: "taskward-fn",
                    name: "taskward, #[supervised] fn",
                    run: |n| Box::pin(taskward_spawn_join_fn(n)),
                },
                Variant {
                    id: "taskward-block",
                    name: "taskward, async block",
                    run: |n| Box::pin(taskward_spawn_join_block(n)),
                },
                Variant {
                    id: "raw-dropped",
                    name: "raw tokio::spawn, handles dropped (a count and a Notify)",
                    run: |n| Box::pin(raw_spawn_dropped(n)),
                },
                Variant {
                    id: "tracker-dropped",
                    name: "TaskTracker + child token, handles dropped",
                    run: |n| Box::pin(tracker_spawn_dropped(n)),
                },
                Variant {
                    id: "taskward-dropped",
                    name: "taskward, #[supervised] fn, handles dropped",
                    run: |n| Box::pin(taskward_spawn_dropped(n)),
                },
            ],
        });
    }
    let n = 100_000;
    cases.push(Case {
        group: "group",
        label: n.to_string(),
        param: n,
        tasks: n,
        variants: vec![
            Variant {
                id: "joinset",
                name: "tokio JoinSet",
                run: |n| Box::pin(joinset_spawn_join(n)),
            },
            Variant {
                id: "taskward-fn",
                name: "taskward group, #[supervised] fn",
                run: |n| Box::pin(taskward_group_fn(n)),
            },
            Variant {
                id: "taskward-block",
                name: "taskward group, async block",
                run: |n| Box::pin(taskward_group_block(n)),
            },
        ],
    });
    let depth = 4;
    cases.push(Case {
        group: "nested_tree",
        label: format!("depth{depth}_fanout{FANOUT}"),
        param: depth,
        tasks: tree_size(depth as u32),
        variants: vec![
            Variant {
                id: "raw",
                name: "raw tokio::spawn + JoinHandle",
                run: |depth| Box::pin(raw_tree_root(depth)),
            },
            Variant {
                id: "joinset",
                name: "tokio JoinSet",
                run: |depth| Box::pin(joinset_tree_root(depth)),
            },
            Variant {
                id: "tracker",
                name: "TaskTracker + child token",
                run: |depth| Box::pin(tracker_tree_root(depth)),
            },
            Variant {
                id: "taskward-fn",
                name: "taskward, #[supervised] fn",
                run: |depth| Box::pin(taskward_tree(depth)),
            },
        ],
    });
    for n in [10_000, 50_000] {
        cases.push(Case {
            group: "cancel_idle",
            label: n.to_string(),
            param: n,
            tasks: n,
            variants: vec![
                Variant {
                    id: "tracker",
                    name: "TaskTracker + child token",
                    run: |n| Box::pin(tracker_cancel(n)),
                },
                Variant {
                    id: "taskward-fn",
                    name: "taskward, #[supervised] fn",
                    run: |n| Box::pin(taskward_cancel(n)),
                },
            ],
        });
    }
    for n in [1_000, 10_000] {
        cases.push(Case {
            group: "error_routing",
            label: n.to_string(),
            param: n,
            tasks: n,
            variants: vec![
                Variant {
                    id: "mpsc",
                    name: "raw tokio + mpsc channel",
                    run: |n| Box::pin(mpsc_errors(n)),
                },
                Variant {
                    id: "taskward-next-error",
                    name: "taskward, supervise + next_error",
                    run: |n| Box::pin(taskward_errors(n)),
                },
            ],
        });
    }
    cases
}

// (a) spawn + join of `n` trivial children.

async fn raw_spawn_join(n: usize) -> Duration {
    let start = Instant::now();
    let handles: Vec<_> = (0..n).map(|i| tokio::spawn(async move { black_box(i) })).collect();
    for handle in handles {
        black_box(handle.await.expect("a trivial task panicked"));
    }
    start.elapsed()
}

async fn joinset_spawn_join(n: usize) -> Duration {
    let start = Instant::now();
    let mut set = JoinSet::new();
    for i in 0..n {
        set.spawn(async move { black_box(i) });
    }
    while let Some(result) = set.join_next().await {
        black_box(result.expect("a trivial task panicked"));
    }
    start.elapsed()
}

/// The hand-made structured version: a tracker to wait for the tasks, a child
/// token per task to cancel them, and the handles for their results.
async fn tracker_spawn_join(n: usize) -> Duration {
    let start = Instant::now();
    let tracker = TaskTracker::new();
    let token = CancellationToken::new();
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let token = token.child_token();
            tracker.spawn(async move { (!token.is_cancelled()).then(|| black_box(i)) })
        })
        .collect();
    tracker.close();
    for handle in handles {
        black_box(handle.await.expect("a trivial task panicked"));
    }
    tracker.wait().await;
    start.elapsed()
}

/// Raw tasks whose handles are dropped at once: the last one to finish
/// wakes the spawner. What tokio alone pays for not keeping the handles
/// (each task's memory is freed by the worker that ran it).
async fn raw_spawn_dropped(n: usize) -> Duration {
    struct Left {
        count: AtomicUsize,
        done: tokio::sync::Notify,
    }
    let start = Instant::now();
    let left = Arc::new(Left {
        count: AtomicUsize::new(n + 1),
        done: tokio::sync::Notify::new(),
    });
    for i in 0..n {
        let left = Arc::clone(&left);
        tokio::spawn(async move {
            black_box(i);
            if left.count.fetch_sub(1, Ordering::AcqRel) == 1 {
                left.done.notify_one();
            }
        });
    }
    if left.count.fetch_sub(1, Ordering::AcqRel) != 1 {
        left.done.notified().await;
    }
    start.elapsed()
}

/// The hand-made structured version of the idiomatic form: no handle kept,
/// the tracker waits.
async fn tracker_spawn_dropped(n: usize) -> Duration {
    let start = Instant::now();
    let tracker = TaskTracker::new();
    let token = CancellationToken::new();
    for i in 0..n {
        let token = token.child_token();
        tracker.spawn(async move { (!token.is_cancelled()).then(|| black_box(i)) });
    }
    tracker.close();
    tracker.wait().await;
    start.elapsed()
}

async fn taskward_spawn_join_fn(n: usize) -> Duration {
    let start = Instant::now();
    taskward::run(taskward::task(move |scope: Scope| async move {
        let children: Vec<_> = (0..n).map(|i| scope.spawn(trivial(i))).collect();
        for child in children {
            black_box(child.await?);
        }
        Ok::<_, taskward::Error>(())
    }))
    .await
    .expect("taskward spawn_join failed");
    start.elapsed()
}

async fn taskward_spawn_join_block(n: usize) -> Duration {
    let start = Instant::now();
    taskward::run(taskward::task(move |scope: Scope| async move {
        let children: Vec<_> = (0..n)
            .map(|i| scope.spawn(async move { Ok::<_, Infallible>(black_box(i)) }))
            .collect();
        for child in children {
            black_box(child.await?);
        }
        Ok::<_, taskward::Error>(())
    }))
    .await
    .expect("taskward spawn_join failed");
    start.elapsed()
}

/// The idiomatic form when results are not needed: the scope joins.
async fn taskward_spawn_dropped(n: usize) -> Duration {
    let start = Instant::now();
    taskward::run(taskward::task(move |scope: Scope| async move {
        for i in 0..n {
            scope.spawn(trivial(i));
        }
    }))
    .await
    .expect("taskward spawn_join failed");
    start.elapsed()
}

// (a') a group: spawn `n` trivial children and take every result in
// completion order (the baseline is `JoinSet`).

async fn taskward_group_fn(n: usize) -> Duration {
    let start = Instant::now();
    taskward::run(taskward::task(move |scope: Scope| async move {
        let mut group = scope.group();
        for i in 0..n {
            group.spawn(trivial(i));
        }
        while let Some(result) = group.next().await {
            black_box(result?);
        }
        Ok::<_, taskward::Error>(())
    }))
    .await
    .expect("taskward group failed");
    start.elapsed()
}

async fn taskward_group_block(n: usize) -> Duration {
    let start = Instant::now();
    taskward::run(taskward::task(move |scope: Scope| async move {
        let mut group = scope.group();
        for i in 0..n {
            group.spawn(async move { Ok::<_, Infallible>(black_box(i)) });
        }
        while let Some(result) = group.next().await {
            black_box(result?);
        }
        Ok::<_, taskward::Error>(())
    }))
    .await
    .expect("taskward group failed");
    start.elapsed()
}

// (b) nested trees: every node spawns `FANOUT` children down to `depth`.

fn raw_tree(depth: usize) -> BoxFuture<usize> {
    Box::pin(async move {
        if depth == 0 {
            return 1;
        }
        let handles: Vec<_> = (0..FANOUT).map(|_| tokio::spawn(raw_tree(depth - 1))).collect();
        let mut total = 1;
        for handle in handles {
            total += handle.await.expect("a tree node panicked");
        }
        total
    })
}

async fn raw_tree_root(depth: usize) -> Duration {
    let start = Instant::now();
    let total = raw_tree(depth).await;
    let elapsed = start.elapsed();
    assert_eq!(total, tree_size(depth as u32) + 1);
    elapsed
}

fn joinset_tree(depth: usize) -> BoxFuture<usize> {
    Box::pin(async move {
        if depth == 0 {
            return 1;
        }
        let mut set = JoinSet::new();
        for _ in 0..FANOUT {
            set.spawn(joinset_tree(depth - 1));
        }
        let mut total = 1;
        while let Some(result) = set.join_next().await {
            total += result.expect("a tree node panicked");
        }
        total
    })
}

async fn joinset_tree_root(depth: usize) -> Duration {
    let start = Instant::now();
    let total = joinset_tree(depth).await;
    let elapsed = start.elapsed();
    assert_eq!(total, tree_size(depth as u32) + 1);
    elapsed
}

fn tracker_tree(depth: usize, token: CancellationToken) -> BoxFuture<usize> {
    Box::pin(async move {
        if depth == 0 || token.is_cancelled() {
            return 1;
        }
        let tracker = TaskTracker::new();
        let handles: Vec<_> = (0..FANOUT)
            .map(|_| tracker.spawn(tracker_tree(depth - 1, token.child_token())))
            .collect();
        tracker.close();
        let mut total = 1;
        for handle in handles {
            total += handle.await.expect("a tree node panicked");
        }
        tracker.wait().await;
        total
    })
}

async fn tracker_tree_root(depth: usize) -> Duration {
    let start = Instant::now();
    let total = tracker_tree(depth, CancellationToken::new()).await;
    let elapsed = start.elapsed();
    assert_eq!(total, tree_size(depth as u32) + 1);
    elapsed
}

async fn taskward_tree(depth: usize) -> Duration {
    let start = Instant::now();
    let total = taskward::run(tree(depth as u32)).await.expect("taskward tree failed");
    let elapsed = start.elapsed();
    assert_eq!(total, tree_size(depth as u32) + 1);
    elapsed
}

// (c) cancellation of `n` idle children, timed from the cancel until every
// child has finished.

async fn tracker_cancel(n: usize) -> Duration {
    let tracker = TaskTracker::new();
    let parent = CancellationToken::new();
    let started = Arc::new(AtomicUsize::new(0));
    for _ in 0..n {
        let token = parent.child_token();
        let started = Arc::clone(&started);
        tracker.spawn(async move {
            started.fetch_add(1, Ordering::Release);
            token.cancelled().await;
        });
    }
    tracker.close();
    wait_started(&started, n).await;

    let start = Instant::now();
    parent.cancel();
    tracker.wait().await;
    start.elapsed()
}

async fn taskward_cancel(n: usize) -> Duration {
    taskward::run(taskward::task(move |scope: Scope| async move {
        let started = Arc::new(AtomicUsize::new(0));
        let parent = scope.spawn(idle_parent(n, Arc::clone(&started)));
        wait_started(&started, n).await;

        let start = Instant::now();
        parent.cancel();
        parent.await?;
        Ok::<_, taskward::Error>(start.elapsed())
    }))
    .await
    .expect("taskward cancel failed")
}

// (d) error routing: `n` children fail; the parent takes every failure.

/// The baseline: each task sends its failure, with its index, to the parent.
async fn mpsc_errors(n: usize) -> Duration {
    let start = Instant::now();
    let (tx, mut rx) = mpsc::unbounded_channel();
    for i in 0..n {
        let tx = tx.clone();
        tokio::spawn(async move {
            let failure: Result<(), _> = Err(std::io::Error::other("job failed"));
            if let Err(err) = failure {
                let _ = tx.send((i, err));
            }
        });
    }
    drop(tx);
    let mut failures = 0;
    while let Some(failure) = rx.recv().await {
        black_box(failure);
        failures += 1;
    }
    let elapsed = start.elapsed();
    assert_eq!(failures, n);
    elapsed
}

async fn taskward_errors(n: usize) -> Duration {
    let start = Instant::now();
    let failures = taskward::run(
        taskward::task(move |scope: Scope| async move {
            for _ in 0..n {
                scope.spawn(async { Err::<(), _>(std::io::Error::other("job failed")) });
            }
            let mut failures = 0;
            while let Some(err) = scope.next_error().await {
                black_box(err);
                failures += 1;
            }
            Ok::<_, Infallible>(failures)
        })
        .policy(Policy::Supervise),
    )
    .await
    .expect("taskward error routing failed");
    let elapsed = start.elapsed();
    assert_eq!(failures, n);
    elapsed
}
