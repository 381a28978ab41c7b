//! Stress: very large, very deep and churning trees complete, and their
//! memory stays bounded. Nothing here measures speed.
//!
//! CI runs scaled-down sizes; `TASKWARD_STRESS_FULL=1` runs the full ones
//! (a million tasks, 100k idle children, a minute of churn, the deepest
//! killed chain). Memory is read from `/proc/self/status` (the resident set
//! and its peak), so the memory checks only run on Linux. Each test runs in
//! a process of its own (the test binary runs itself again for that one
//! test), so that what one test allocates does not hide another's peak.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{alive_tasks, settle_tasks};
use taskward::{Error, ErrorKind, Root, Scope, Task, supervised};

/// Runs `test` (an async test body) on a fresh 2-worker runtime in a
/// process of its own: the test binary is run again with `name` as the
/// exact filter, and does the work there.
fn isolated<F: Future<Output = ()>>(name: &str, test: impl FnOnce() -> F) {
    const CHILD: &str = "TASKWARD_STRESS_CHILD";
    if std::env::var(CHILD).is_ok_and(|running| running == name) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(test());
        return;
    }
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, name)
        // One malloc arena (glibc): memory freed by one thread is reused by
        // the others, so that the resident set measures what is live.
        .env("MALLOC_ARENA_MAX", "1")
        .output()
        .unwrap();
    // Shown by the test harness when the test fails, or with --nocapture.
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        output.status.success(),
        "`{name}` failed in its own process: {}",
        output.status
    );
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("1 passed"),
        "`{name}` did not run in its own process"
    );
}

/// Whether to run the full sizes.
fn full() -> bool {
    std::env::var_os("TASKWARD_STRESS_FULL").is_some_and(|value| value != "0")
}

/// `ci` in CI, `full` with `TASKWARD_STRESS_FULL=1`.
fn size(ci: usize, full_size: usize) -> usize {
    if full() { full_size } else { ci }
}

/// The process's memory, from `/proc/self/status` (Linux only).
mod memory {
    /// A field of `/proc/self/status` in KiB, such as `VmRSS`.
    fn status_kib(field: &str) -> Option<u64> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|line| line.starts_with(field))?;
        line[field.len() + 1..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    }

    /// The resident set now, in MiB.
    pub(crate) fn resident_mib() -> Option<u64> {
        status_kib("VmRSS").map(|kib| kib / 1024)
    }

    /// Starts measuring the peak of the resident set from now (resets the
    /// kernel's high-water mark) and gives the resident set now.
    pub(crate) fn start_peak() -> Option<u64> {
        std::fs::write("/proc/self/clear_refs", "5").ok()?;
        resident_mib()
    }

    /// The highest resident set since `start_peak`, in MiB.
    pub(crate) fn peak_mib() -> Option<u64> {
        status_kib("VmHWM").map(|kib| kib / 1024)
    }
}

/// Checks that the peak of the resident set during `work` stayed within
/// `bound_mib` above where it started. Returns `work`'s output.
async fn within_peak<F: Future>(what: &str, bound_mib: u64, work: F) -> F::Output {
    let start = memory::start_peak();
    let output = work.await;
    if let (Some(start), Some(peak)) = (start, memory::peak_mib()) {
        let grew = peak.saturating_sub(start);
        eprintln!("{what}: resident set {start} MiB, peak {peak} MiB (+{grew} MiB; bound +{bound_mib} MiB)");
        assert!(
            grew <= bound_mib,
            "{what}: memory grew by {grew} MiB, more than {bound_mib} MiB"
        );
    } else {
        eprintln!("{what}: memory check skipped: /proc/self/status or clear_refs cannot be read here");
    }
    output
}

/// Runs `work` five times and checks that the resident set after the last
/// runs is within `slack_mib` of where it was after the first: whatever a
/// run leaks accumulates, while freed memory is reused by the allocator
/// (which may hold a few MiB more for a while, hence the lower of the last
/// two readings).
async fn no_growth_over_runs<F, Fut>(what: &str, slack_mib: u64, mut work: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    work().await;
    let first = memory::resident_mib();
    let mut readings = Vec::new();
    for _ in 0..4 {
        work().await;
        readings.extend(memory::resident_mib());
    }
    if let (Some(first), [.., before_last, last]) = (first, readings.as_slice()) {
        let later = (*before_last).min(*last);
        eprintln!("{what}: resident set after the first run {first} MiB, then {readings:?} MiB");
        assert!(
            later <= first + slack_mib,
            "{what}: the resident set grew from {first} MiB to {later} MiB over four more runs: a leak"
        );
    } else {
        eprintln!("{what}: memory check skipped: /proc/self/status cannot be read here");
    }
}

// ---------------------------------------------------------------------------
// A million trivial tasks in one tree.

/// Spawns `per_worker` trivial children and counts them when they run.
#[supervised]
async fn worker(scope: &Scope, per_worker: usize, ran: Arc<AtomicUsize>) {
    for _ in 0..per_worker {
        let ran = Arc::clone(&ran);
        scope.spawn(async move {
            ran.fetch_add(1, Ordering::Relaxed);
        });
    }
}

/// `workers` workers, at most `limit` at a time (with `reserve`, so that
/// the tree, not the queue, holds the backlog).
#[supervised]
async fn pool(scope: &Scope, workers: usize, per_worker: usize, limit: usize, ran: Arc<AtomicUsize>) {
    scope.set_limit(limit);
    for _ in 0..workers {
        scope.reserve().await.spawn(worker(per_worker, Arc::clone(&ran)));
    }
}

#[test]
fn a_million_trivial_tasks_complete_in_memory_bounded_by_the_limit() {
    isolated(
        "a_million_trivial_tasks_complete_in_memory_bounded_by_the_limit",
        || async {
            let total = size(100_000, 1_000_000);
            let per_worker = 100;
            let workers = total / per_worker;
            let before = alive_tasks();
            let ran = Arc::new(AtomicUsize::new(0));
            // At most 32 workers and their 100 children are alive at once: the
            // peak does not depend on the total.
            within_peak("1M trivial tasks", 64, async {
                common::bounded(taskward::run(pool(workers, per_worker, 32, Arc::clone(&ran))))
                    .await
                    .unwrap();
            })
            .await;
            assert_eq!(ran.load(Ordering::Relaxed), total);
            settle_tasks(before).await;
        },
    );
}

// ---------------------------------------------------------------------------
// A chain of tasks 10k deep: nothing along it may recurse once per level.

const DEPTH: u32 = 10_000;

/// What the bottom task of a chain does.
#[derive(Clone, Copy, Debug)]
enum Bottom {
    /// Returns `Err`.
    Fail,
    /// Sends its scope out of the tree, then returns.
    Escape,
    /// Sends its scope out (so the test knows the chain is built), then
    /// waits until cancelled.
    WaitForCancel,
    /// Sends its scope out, then never ends, ignoring cancellation.
    Hang,
}

/// A task at `depth` above the bottom of a chain: spawns the next link
/// (awaiting it if `awaits`), or does what `bottom` says.
#[supervised]
async fn link(
    scope: &Scope,
    depth: u32,
    awaits: bool,
    bottom: Bottom,
    escape: tokio::sync::mpsc::UnboundedSender<Scope>,
) -> Result<(), taskward::BoxError> {
    if depth > 0 {
        let next = scope.spawn(link(depth - 1, awaits, bottom, escape));
        if awaits {
            next.await?;
        }
        return Ok(());
    }
    match bottom {
        Bottom::Fail => Err(std::io::Error::other("bottom").into()),
        Bottom::Escape => {
            let _ = escape.send(scope.clone());
            Ok(())
        }
        Bottom::WaitForCancel => {
            let _ = escape.send(scope.clone());
            scope.cancelled().await;
            Ok(())
        }
        Bottom::Hang => {
            let _ = escape.send(scope.clone());
            std::future::pending().await
        }
    }
}

/// A chain `depth` deep whose bottom does `bottom`, and the receiver of
/// the scope an escaping bottom sends.
fn chain(
    depth: u32,
    awaits: bool,
    bottom: Bottom,
) -> (impl Task<Output = ()>, tokio::sync::mpsc::UnboundedReceiver<Scope>) {
    let (escape, escaped) = tokio::sync::mpsc::unbounded_channel();
    (link(depth, awaits, bottom, escape), escaped)
}

// Regression: the path of the bottom task was built by recursion over its
// ancestors, one stack frame (several in a debug build) per level: a
// failure at the bottom of a chain a few thousand deep overflowed a tokio
// worker's stack and aborted the process.
#[test]
fn a_failure_at_the_bottom_of_a_deep_chain_escalates_with_its_path() {
    isolated(
        "a_failure_at_the_bottom_of_a_deep_chain_escalates_with_its_path",
        || async {
            let (tree, _) = chain(DEPTH, false, Bottom::Fail);
            let err = within_peak("failure 10k deep", 64, common::bounded(taskward::run(tree)))
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Failed);
            assert_eq!(err.task().matches("/link#0").count(), DEPTH as usize);
            assert!(err.to_string().ends_with("failed: bottom"));
        },
    );
}

// Regression: each task holds its parent, so when the last reference to the
// bottom of a finished chain went (here a `Scope` kept after `run`), the
// ancestors were dropped one inside the other, and the stack overflowed.
#[test]
fn a_scope_kept_from_the_bottom_of_a_deep_chain_drops_without_recursion() {
    isolated(
        "a_scope_kept_from_the_bottom_of_a_deep_chain_drops_without_recursion",
        || async {
            let (tree, mut escaped) = chain(DEPTH, false, Bottom::Escape);
            common::bounded(taskward::run(tree)).await.unwrap();
            let bottom = escaped.recv().await.unwrap();
            assert_eq!(bottom.path().matches('/').count(), DEPTH as usize);
            // The chain's last reference: dropping it drops all 10k ancestors.
            drop(bottom);
        },
    );
}

#[test]
fn a_deep_chain_stops_when_its_root_is_cancelled() {
    isolated("a_deep_chain_stops_when_its_root_is_cancelled", || async {
        let before = alive_tasks();
        let root = Root::new();
        let stop = root.token();
        let (tree, mut bottom) = chain(DEPTH, true, Bottom::WaitForCancel);
        let tree = tokio::spawn(root.run(tree));
        drop(bottom.recv().await);
        stop.cancel();
        common::bounded(tree).await.unwrap().unwrap();
        settle_tasks(before).await;
    });
}

// Regression: an aborted task makes a `Cancelled` failure for its handle;
// it was made, with the task's path, even when no handle or parent could
// take it. Aborting a chain 10k deep built every task's path, 10k strings
// of up to 10k segments: 350 MiB (1.4 GiB at 20k deep), quadratic in the
// depth. Now only a failure someone can take is made.
#[test]
fn dropping_the_run_of_a_deep_chain_aborts_it_in_linear_memory() {
    isolated(
        "dropping_the_run_of_a_deep_chain_aborts_it_in_linear_memory",
        || async {
            let before = alive_tasks();
            let (tree, mut bottom) = chain(DEPTH, false, Bottom::Hang);
            within_peak("aborted chain 10k deep", 64, async {
                tokio::select! {
                    _ = taskward::run(tree) => unreachable!("the chain never ends by itself"),
                    // Built to the bottom: the run is dropped here.
                    bottom = bottom.recv() => drop(bottom),
                }
                settle_tasks(before).await;
            })
            .await;
        },
    );
}

// Regression: each task killed at the end of the grace period while it
// awaited the next link reports its own `Cancelled` first and the next
// link's failure in `related()`, so the root's error nests as deep as the
// chain; dropping it recursed once per level and overflowed the stack.
// The paths of the killed tasks are all needed here (each is in the error),
// so memory is quadratic in the depth: CI runs 2k deep, the full run 10k
// (about 0.5 GiB).
#[test]
fn a_deep_awaiting_chain_killed_after_its_grace_reports_every_level() {
    isolated(
        "a_deep_awaiting_chain_killed_after_its_grace_reports_every_level",
        || async {
            let depth = u32::try_from(size(2_000, DEPTH as usize)).unwrap();
            let before = alive_tasks();
            let root = Root::new().grace(Duration::from_millis(20));
            let stop = root.token();
            let (tree, mut bottom) = chain(depth, true, Bottom::Hang);
            let tree = tokio::spawn(root.run(tree));
            drop(bottom.recv().await);
            stop.cancel();
            let err = common::bounded(tree).await.unwrap().unwrap_err();
            // Every failure of the tree, with how deep in `related()` it is.
            let (mut failures, mut lists, mut deepest, mut bottom_seen) = (0, 0, 0, false);
            let mut walk = vec![(&err, 0u32)];
            while let Some((failure, level)) = walk.pop() {
                failures += 1;
                lists += usize::from(!failure.related().is_empty());
                deepest = deepest.max(level);
                bottom_seen |= failure.task().matches('/').count() == depth as usize;
                assert_eq!(failure.kind(), ErrorKind::Cancelled, "{failure}");
                walk.extend(failure.related().iter().map(|related| (related, level + 1)));
            }
            // A task whose link finished before the kill reached it passes the
            // failure on instead of nesting it: nearly every level nests.
            assert!(
                deepest > depth * 9 / 10,
                "nested {deepest} deep, for a chain {depth} deep"
            );
            assert!(bottom_seen, "the bottom task's failure is missing");
            // One line per failure, and a heading per list of related ones.
            let report = format!("{err:#}");
            assert_eq!(report.lines().count(), failures + lists);
            drop(err);
            settle_tasks(before).await;
        },
    );
}

// ---------------------------------------------------------------------------
// Trees dropped right after they spawned their children.
//
// The regression of trees dropped before their children first ran (their
// children kept them alive, and the whole aborted tree leaked) is checked
// in `live_bytes.rs`, by counting live heap bytes exactly: the resident set
// of this file's checks also moves with the allocator's fragmentation under
// load, and crossed its slack once without any byte leaked.

// ---------------------------------------------------------------------------
// Many idle children cancelled at once.

#[supervised]
async fn idle(scope: &Scope, stopped: Arc<AtomicUsize>) {
    scope.cancelled().await;
    stopped.fetch_add(1, Ordering::Relaxed);
}

#[supervised]
async fn crowd(scope: &Scope, children: usize, stopped: Arc<AtomicUsize>) {
    for _ in 0..children {
        scope.spawn(idle(Arc::clone(&stopped)));
    }
    // Every child is idle now (they only wait): stop them all at once.
    tokio::task::yield_now().await;
    scope.cancel();
}

#[test]
fn a_hundred_thousand_idle_children_cancelled_at_once_all_stop() {
    isolated(
        "a_hundred_thousand_idle_children_cancelled_at_once_all_stop",
        || async {
            let children = size(20_000, 100_000);
            let before = alive_tasks();
            no_growth_over_runs("idle children cancelled at once", 16, || async {
                let stopped = Arc::new(AtomicUsize::new(0));
                common::bounded(taskward::run(crowd(children, Arc::clone(&stopped))))
                    .await
                    .unwrap();
                assert_eq!(stopped.load(Ordering::Relaxed), children);
                settle_tasks(before).await;
            })
            .await;
        },
    );
}

// ---------------------------------------------------------------------------
// Constant churn: children spawned, failing and finishing for a while.

/// One unit of churn: spawns a few sub-workers, then fails (an `Err` or a
/// panic), is cancelled, or succeeds, by `roll`.
#[supervised]
async fn churner(scope: &Scope, roll: u64, failed: Arc<AtomicUsize>) -> Result<(), std::io::Error> {
    for sub in 0..roll % 4 {
        scope.spawn(async move {
            tokio::task::yield_now().await;
            Ok::<_, std::io::Error>(sub)
        });
    }
    tokio::task::yield_now().await;
    match roll % 7 {
        0 => {
            failed.fetch_add(1, Ordering::Relaxed);
            Err(std::io::Error::other("churn"))
        }
        1 => {
            failed.fetch_add(1, Ordering::Relaxed);
            panic!("stress: injected panic");
        }
        2 => {
            scope.cancel();
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Spawns churners (at most `limit` at a time) until `until`, taking every
/// failure with `next_error`; returns how many it took.
#[supervised(policy = supervise)]
async fn churn(
    scope: &Scope,
    until: tokio::time::Instant,
    limit: usize,
    failed: Arc<AtomicUsize>,
) -> Result<usize, Error> {
    scope.set_limit(limit);
    let mut roll = 0x9E37_79B9_7F4A_7C15_u64;
    let mut taken = 0;
    while tokio::time::Instant::now() < until {
        tokio::select! {
            permit = scope.reserve() => {
                roll ^= roll << 13;
                roll ^= roll >> 7;
                roll ^= roll << 17;
                permit.spawn(churner(roll, Arc::clone(&failed)));
            }
            Some(_) = scope.next_error() => taken += 1,
        }
    }
    while scope.next_error().await.is_some() {
        taken += 1;
    }
    Ok(taken)
}

#[test]
fn a_tree_under_constant_churn_delivers_every_failure_in_bounded_memory() {
    isolated(
        "a_tree_under_constant_churn_delivers_every_failure_in_bounded_memory",
        || async {
            common::quiet_panics("stress: injected panic");
            let seconds = size(2, 60) as u64;
            let before = alive_tasks();
            let failed = Arc::new(AtomicUsize::new(0));
            // Warm up for a quarter of the time, then the memory must stay level:
            // a leak per spawned task would grow with the number of tasks.
            let warm_up = tokio::time::Instant::now() + Duration::from_millis(seconds * 250);
            let taken_warm = common::bounded(taskward::run(churn(warm_up, 64, Arc::clone(&failed))))
                .await
                .unwrap();
            let until = tokio::time::Instant::now() + Duration::from_millis(seconds * 750);
            let taken = within_peak(
                "constant churn",
                32,
                common::bounded(taskward::run(churn(until, 64, Arc::clone(&failed)))),
            )
            .await
            .unwrap();
            // Exactly once: every failure reached `next_error`, none twice.
            assert_eq!(taken_warm + taken, failed.load(Ordering::Relaxed));
            assert!(taken > 100, "only {taken} failures in the churn");
            settle_tasks(before).await;
        },
    );
}
