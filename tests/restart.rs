//! Restart (OTP one_for_one): a failed child is re-created and re-run, with
//! backoff, within a budget; past it the last failure escalates.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::bounded;
use taskward::{CancellationToken, ErrorKind, Policy, Scope, Task, supervised};
use tokio::time::Instant;

const MS: Duration = Duration::from_millis(1);

/// Fails its first `failures` runs, then returns the run's number.
#[supervised]
async fn flaky(runs: Arc<AtomicU32>, failures: u32) -> Result<u32, std::io::Error> {
    let run = runs.fetch_add(1, Ordering::SeqCst) + 1;
    if run <= failures {
        return Err(std::io::Error::other(format!("run {run} failed")));
    }
    Ok(run)
}

#[tokio::test(start_paused = true)]
async fn a_failing_task_is_restarted_until_it_succeeds() {
    let runs = Arc::new(AtomicU32::new(0));
    let counter = runs.clone();
    let value = bounded(taskward::run(taskward::restart(move || flaky(counter.clone(), 3))))
        .await
        .unwrap();
    assert_eq!(value, 4);
    assert_eq!(runs.load(Ordering::SeqCst), 4);
}

#[tokio::test(start_paused = true)]
async fn past_the_budget_the_last_failure_escalates_with_the_earlier_ones_related() {
    let runs = Arc::new(AtomicU32::new(0));
    let counter = runs.clone();
    let err = bounded(taskward::run(
        taskward::task(|scope: Scope| async move {
            drop(
                scope.spawn(
                    taskward::restart(move || flaky(counter.clone(), u32::MAX))
                        .max_restarts(2, Duration::from_secs(10))
                        .named("worker"),
                ),
            );
        })
        .named("app"),
    ))
    .await
    .unwrap_err();
    assert_eq!(runs.load(Ordering::SeqCst), 3, "the first run and two restarts");
    assert_eq!(err.kind(), ErrorKind::Failed);
    assert_eq!(err.task(), "app/worker#0/flaky#2");
    assert_eq!(err.to_string(), "task `app/worker#0/flaky#2` failed: run 3 failed");
    let related: Vec<String> = err.related().iter().map(ToString::to_string).collect();
    assert_eq!(
        related,
        [
            "task `app/worker#0/flaky#0` failed: run 1 failed",
            "task `app/worker#0/flaky#1` failed: run 2 failed",
        ]
    );
    assert!(err.downcast_ref::<std::io::Error>().is_some());
}

#[tokio::test(start_paused = true)]
async fn failures_that_are_restarted_do_not_escalate() {
    let runs = Arc::new(AtomicU32::new(0));
    let counter = runs.clone();
    let value = bounded(taskward::run(
        taskward::task(|scope: Scope| async move {
            let worker = scope.spawn(taskward::restart(move || flaky(counter.clone(), 2)));
            let value = worker.await?;
            // Nothing reached the parent while the worker was restarted.
            assert!(scope.next_error().await.is_none());
            Ok::<_, taskward::Error>(value)
        })
        .policy(Policy::Supervise),
    ))
    .await;
    assert_eq!(value.unwrap(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_panic_counts_as_a_failure() {
    let runs = Arc::new(AtomicU32::new(0));
    let counter = runs.clone();
    let value = bounded(taskward::run(taskward::restart(move || {
        let runs = counter.clone();
        async move {
            if runs.fetch_add(1, Ordering::SeqCst) == 0 {
                panic!("first run panics");
            }
            Ok::<_, std::io::Error>("recovered")
        }
    })))
    .await;
    assert_eq!(value.unwrap(), "recovered");
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn a_panic_past_the_budget_escalates_as_a_panic() {
    #[supervised]
    async fn always_panics() -> std::io::Result<()> {
        panic!("always");
    }
    let err = bounded(taskward::run(
        taskward::restart(always_panics).max_restarts(1, Duration::from_secs(1)),
    ))
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Panicked);
    assert_eq!(err.message(), Some("always"));
    assert_eq!(err.related().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_transient_task_that_succeeds_is_not_restarted() {
    let runs = Arc::new(AtomicU32::new(0));
    let counter = runs.clone();
    let value = bounded(taskward::run(taskward::restart(move || flaky(counter.clone(), 0)))).await;
    assert_eq!(value.unwrap(), 1);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_permanent_task_is_restarted_after_ok_until_cancelled() {
    let runs = Arc::new(AtomicU32::new(0));
    let counter = runs.clone();
    let value = bounded(taskward::run(taskward::task(|scope: Scope| async move {
        let worker = scope.spawn(
            taskward::restart(move || flaky(counter.clone(), 0))
                .permanent()
                .backoff(10 * MS, 10 * MS)
                .max_restarts(1000, Duration::from_secs(1)),
        );
        tokio::time::sleep(100 * MS).await;
        worker.cancel();
        worker.await
    })))
    .await
    .unwrap();
    // Runs every 5..=10ms for 100ms, then cancellation stops the restarts.
    let runs = runs.load(Ordering::SeqCst);
    assert!((11..=21).contains(&runs), "{runs} runs");
    assert_eq!(value, runs);
}

#[tokio::test(start_paused = true)]
async fn a_permanent_task_past_its_budget_fails_even_after_ok() {
    let err = bounded(taskward::run(
        taskward::restart(|| async { Ok::<_, std::io::Error>(()) })
            .permanent()
            .max_restarts(2, Duration::from_secs(60)),
    ))
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Failed);
    assert_eq!(err.task(), "restart");
    assert_eq!(
        err.to_string(),
        "task `restart` failed: ended 3 times within 60s, which is past its restart budget"
    );
}

#[tokio::test(start_paused = true)]
async fn backoff_doubles_from_min_to_max_with_jitter() {
    let starts = Arc::new(Mutex::new(Vec::new()));
    let record = starts.clone();
    let err = bounded(taskward::run(
        taskward::restart(move || {
            let starts = record.clone();
            async move {
                starts.lock().unwrap().push(Instant::now());
                Err::<(), _>(std::io::Error::other("down"))
            }
        })
        .backoff(100 * MS, 500 * MS)
        .max_restarts(6, Duration::from_secs(3600)),
    ))
    .await
    .unwrap_err();
    assert_eq!(err.related().len(), 6);
    let starts = starts.lock().unwrap();
    let delays: Vec<Duration> = starts.windows(2).map(|pair| pair[1] - pair[0]).collect();
    let bases = [100, 200, 400, 500, 500, 500].map(|ms| ms * MS);
    assert_eq!(delays.len(), bases.len());
    for (delay, base) in delays.iter().zip(bases) {
        assert!(
            *delay >= base / 2 && *delay <= base,
            "delay {delay:?} outside [{:?}, {base:?}]",
            base / 2
        );
    }
}

#[tokio::test(start_paused = true)]
async fn backoff_is_jittered() {
    // Many workers failing at the same instant do not all restart at the
    // same instant.
    let starts = Arc::new(Mutex::new(Vec::new()));
    let record = starts.clone();
    let result = bounded(taskward::run(taskward::task(move |scope: Scope| {
        let starts = record.clone();
        async move {
            for _ in 0..20 {
                let runs = Arc::new(AtomicU32::new(0));
                let starts = starts.clone();
                drop(
                    scope.spawn(
                        taskward::restart(move || {
                            let (runs, starts) = (runs.clone(), starts.clone());
                            async move {
                                if runs.fetch_add(1, Ordering::SeqCst) == 0 {
                                    return Err(std::io::Error::other("first run fails"));
                                }
                                starts.lock().unwrap().push(Instant::now());
                                Ok(())
                            }
                        })
                        .backoff(Duration::from_secs(1), Duration::from_secs(1)),
                    ),
                );
            }
        }
    })))
    .await;
    result.unwrap();
    let mut starts = starts.lock().unwrap().clone();
    starts.sort();
    starts.dedup();
    assert!(starts.len() > 1, "all 20 restarts happened at the same instant");
}

#[tokio::test(start_paused = true)]
async fn a_long_run_resets_the_backoff() {
    let starts = Arc::new(Mutex::new(Vec::new()));
    let record = starts.clone();
    let runs = Arc::new(AtomicU32::new(0));
    let err = bounded(taskward::run(
        taskward::restart(move || {
            let (starts, runs) = (record.clone(), runs.clone());
            async move {
                starts.lock().unwrap().push(Instant::now());
                // The third run lasts longer than the longest backoff.
                if runs.fetch_add(1, Ordering::SeqCst) == 2 {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
                Err::<(), _>(std::io::Error::other("down"))
            }
        })
        .backoff(Duration::from_millis(400), Duration::from_secs(1))
        .max_restarts(3, Duration::from_secs(3600)),
    ))
    .await
    .unwrap_err();
    assert_eq!(err.related().len(), 3);
    let starts = starts.lock().unwrap();
    // Delays before restarts 1 and 2 grow (400ms, then 800ms bases); the
    // long third run resets it to the 400ms base.
    let third_to_fourth = starts[3] - starts[2] - Duration::from_secs(2);
    assert!(
        third_to_fourth >= 200 * MS && third_to_fourth <= 400 * MS,
        "{third_to_fourth:?}"
    );
    let second_to_third = starts[2] - starts[1];
    assert!(
        second_to_third >= 400 * MS && second_to_third <= 800 * MS,
        "{second_to_third:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn restarts_older_than_the_window_no_longer_count() {
    // Each run lasts 6s, the window is 5s: the budget of one restart is
    // never spent.
    let runs = Arc::new(AtomicU32::new(0));
    let counter = runs.clone();
    let value = bounded(taskward::run(
        taskward::restart(move || {
            let runs = counter.clone();
            async move {
                tokio::time::sleep(Duration::from_secs(6)).await;
                let run = runs.fetch_add(1, Ordering::SeqCst) + 1;
                if run < 5 {
                    return Err(std::io::Error::other("down"));
                }
                Ok(run)
            }
        })
        .max_restarts(1, Duration::from_secs(5)),
    ))
    .await;
    assert_eq!(value.unwrap(), 5);
}

#[tokio::test(start_paused = true)]
async fn restarts_within_the_window_spend_the_budget() {
    // The same task, with runs shorter than the window: the budget runs out.
    let runs = Arc::new(AtomicU32::new(0));
    let counter = runs.clone();
    let err = bounded(taskward::run(
        taskward::restart(move || {
            let runs = counter.clone();
            async move {
                tokio::time::sleep(Duration::from_secs(2)).await;
                runs.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(std::io::Error::other("down"))
            }
        })
        .max_restarts(1, Duration::from_secs(5)),
    ))
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Failed);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn max_restarts_zero_never_restarts() {
    let runs = Arc::new(AtomicU32::new(0));
    let counter = runs.clone();
    let err = bounded(taskward::run(
        taskward::restart(move || flaky(counter.clone(), 1)).max_restarts(0, Duration::from_secs(60)),
    ))
    .await
    .unwrap_err();
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(err.to_string(), "task `restart/flaky#0` failed: run 1 failed");
    assert!(err.related().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_zero_window_never_runs_out() {
    let runs = Arc::new(AtomicU32::new(0));
    let counter = runs.clone();
    let value = bounded(taskward::run(
        taskward::restart(move || flaky(counter.clone(), 50)).max_restarts(1, Duration::ZERO),
    ))
    .await;
    assert_eq!(value.unwrap(), 51);
}

#[tokio::test(start_paused = true)]
async fn a_huge_window_and_backoff_are_accepted() {
    let runs = Arc::new(AtomicU32::new(0));
    let counter = runs.clone();
    let err = bounded(taskward::run(
        taskward::restart(move || flaky(counter.clone(), u32::MAX))
            .backoff(Duration::ZERO, Duration::MAX)
            .max_restarts(3, Duration::MAX),
    ))
    .await
    .unwrap_err();
    assert_eq!(err.related().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn the_default_budget_is_three_restarts_within_five_seconds() {
    let runs = Arc::new(AtomicU32::new(0));
    let counter = runs.clone();
    let err = bounded(taskward::run(taskward::restart(move || {
        flaky(counter.clone(), u32::MAX)
    })))
    .await
    .unwrap_err();
    assert_eq!(runs.load(Ordering::SeqCst), 4);
    assert_eq!(err.related().len(), 3);
}

/// A run that fails at once but leaves a child that takes a second to stop.
#[supervised]
async fn leaves_a_slow_child(scope: &Scope, alive: Arc<AtomicUsize>, overlap: Arc<AtomicBool>) -> std::io::Result<()> {
    if alive.load(Ordering::SeqCst) > 0 {
        overlap.store(true, Ordering::SeqCst);
    }
    let alive = alive.clone();
    drop(scope.spawn(async move {
        alive.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(1)).await; // ignores cancellation
        alive.fetch_sub(1, Ordering::SeqCst);
        Ok::<_, std::io::Error>(())
    }));
    tokio::task::yield_now().await;
    Err(std::io::Error::other("failed, child still running"))
}

#[tokio::test(start_paused = true)]
async fn a_restart_never_starts_while_the_previous_run_or_its_children_still_run() {
    let alive = Arc::new(AtomicUsize::new(0));
    let overlap = Arc::new(AtomicBool::new(false));
    let (a, o) = (alive.clone(), overlap.clone());
    let start = Instant::now();
    let err = bounded(taskward::run(
        taskward::restart(move || leaves_a_slow_child(a.clone(), o.clone())).max_restarts(2, Duration::from_secs(60)),
    ))
    .await
    .unwrap_err();
    assert_eq!(err.related().len(), 2);
    assert!(
        !overlap.load(Ordering::SeqCst),
        "a run started while an earlier one's child was alive"
    );
    assert_eq!(start.elapsed(), Duration::from_secs(3), "each run waited for its child");
}

#[tokio::test(start_paused = true)]
async fn cancelling_during_a_backoff_stops_restarting_with_the_last_failure() {
    let runs = Arc::new(AtomicU32::new(0));
    let counter = runs.clone();
    let start = Instant::now();
    let err = bounded(taskward::run(taskward::task(|scope: Scope| async move {
        let worker = scope.spawn(
            taskward::restart(move || flaky(counter.clone(), u32::MAX))
                .backoff(Duration::from_secs(10), Duration::from_secs(10)),
        );
        tokio::time::sleep(Duration::from_secs(1)).await; // the worker is in its backoff
        worker.cancel();
        Ok::<_, taskward::Error>(worker.await.unwrap_err())
    })))
    .await
    .unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(err.to_string(), "task `task/restart#0/flaky#0` failed: run 1 failed");
    assert_eq!(start.elapsed(), Duration::from_secs(1));
}

#[supervised]
async fn fails_when_cancelled(token: CancellationToken, runs: Arc<AtomicU32>) -> std::io::Result<()> {
    runs.fetch_add(1, Ordering::SeqCst);
    token.cancelled().await;
    Err(std::io::Error::other("interrupted"))
}

#[tokio::test(start_paused = true)]
async fn a_run_that_fails_because_it_was_cancelled_is_not_restarted() {
    let runs = Arc::new(AtomicU32::new(0));
    let counter = runs.clone();
    let root = taskward::Root::new();
    let token = root.token();
    let tree = tokio::spawn(root.run(taskward::restart(move || fails_when_cancelled(counter.clone()))));
    tokio::time::sleep(Duration::from_secs(1)).await;
    token.cancel();
    let err = bounded(tree).await.unwrap().unwrap_err();
    assert_eq!(
        err.to_string(),
        "task `restart/fails_when_cancelled#0` failed: interrupted"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn each_run_can_have_its_own_timeout() {
    let runs = Arc::new(AtomicU32::new(0));
    let counter = runs.clone();
    let err = bounded(taskward::run(
        taskward::restart(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            std::future::pending::<()>().timeout(10 * MS)
        })
        .max_restarts(2, Duration::from_secs(60)),
    ))
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert_eq!(runs.load(Ordering::SeqCst), 3);
}

// Regression: during a backoff the restart held the last failure in its
// body; a kill at that moment (a zero grace period, here, aborts the tree
// before the restart sees its token cancelled) dropped the body and the
// failure with it, and the restart reported only that it was aborted. The
// chaos suite found it (1 round in 2500). The failure now escalates as the
// restart's own, with the abort in `related()`.
#[tokio::test(start_paused = true)]
async fn a_restart_killed_during_a_backoff_still_reports_the_last_failure() {
    let runs = Arc::new(AtomicU32::new(0));
    let counter = runs.clone();
    let root = taskward::Root::new().grace(Duration::ZERO);
    let err = bounded(root.run(taskward::task(|scope: Scope| async move {
        scope.spawn(
            taskward::restart(move || flaky(counter.clone(), u32::MAX))
                .backoff(Duration::from_secs(10), Duration::from_secs(10)),
        );
        tokio::time::sleep(Duration::from_secs(1)).await; // the worker is in its backoff
        scope.cancel(); // and the tree is killed at once
    })))
    .await
    .unwrap_err();
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(err.to_string(), "task `task/restart#0/flaky#0` failed: run 1 failed");
    assert_eq!(err.related().len(), 1, "{err:#}");
    assert_eq!(err.related()[0].kind(), ErrorKind::Cancelled);
    assert_eq!(err.related()[0].task(), "task/restart#0");
}
