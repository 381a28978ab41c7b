//! Deadlines: `Task::timeout` cancels a task at its deadline, aborts it
//! after the grace period if it does not stop, and reports `TimedOut`.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::{DropFlag, bounded, flag};
use taskward::{CancellationToken, ErrorKind, Policy, Root, Scope, Task, supervised};
use tokio::time::Instant;

const MS: Duration = Duration::from_millis(1);

#[supervised]
async fn cooperative(token: CancellationToken, cleaned_up: Arc<AtomicBool>) -> std::io::Result<()> {
    token.cancelled().await;
    cleaned_up.store(true, Ordering::SeqCst);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_cooperative_task_stops_at_its_deadline_and_is_timed_out() {
    let cleaned_up = flag();
    let start = Instant::now();
    let err = bounded(taskward::run(cooperative(cleaned_up.clone()).timeout(100 * MS)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert_eq!(err.task(), "cooperative");
    assert_eq!(
        err.to_string(),
        "task `cooperative` timed out: did not finish within 100ms"
    );
    assert!(cleaned_up.load(Ordering::SeqCst), "it stopped by itself");
    assert_eq!(start.elapsed(), 100 * MS, "it was not left to the grace period");
}

#[tokio::test(start_paused = true)]
async fn a_task_that_ignores_cancellation_is_aborted_after_the_roots_grace_period() {
    let dropped = flag();
    let guard = DropFlag(dropped.clone());
    let start = Instant::now();
    let stubborn = async move {
        let _guard = guard;
        std::future::pending::<()>().await;
    };
    let err = bounded(
        Root::new()
            .grace(300 * MS)
            .run(stubborn.named("stubborn").timeout(100 * MS)),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert_eq!(err.task(), "stubborn");
    assert!(err.related().is_empty(), "{err:#}");
    assert_eq!(
        err.to_string(),
        "task `stubborn` timed out: did not finish within 100ms, and was aborted when its grace period of 300ms ended"
    );
    assert_eq!(start.elapsed(), 400 * MS);
    assert!(dropped.load(Ordering::SeqCst));
}

#[tokio::test(start_paused = true)]
async fn without_a_root_grace_period_a_timed_out_task_gets_one_second() {
    let start = Instant::now();
    let err = bounded(taskward::run(std::future::pending::<()>().timeout(100 * MS)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert_eq!(start.elapsed(), 100 * MS + Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn a_timeout_cancels_the_whole_subtree_and_the_parent_gets_timed_out() {
    let stopped = Arc::new(AtomicUsize::new(0));
    let counter = stopped.clone();
    let result = bounded(taskward::run(
        taskward::task(|scope: Scope| async move {
            let child = scope.spawn(
                taskward::task(move |scope: Scope| async move {
                    for _ in 0..3 {
                        let counter = counter.clone();
                        drop(scope.spawn(taskward::task(move |scope: Scope| async move {
                            scope.cancelled().await;
                            counter.fetch_add(1, Ordering::SeqCst);
                        })));
                    }
                    scope.cancelled().await;
                })
                .named("batch")
                .timeout(50 * MS),
            );
            let err = child.await.unwrap_err();
            // Under `Supervise`, the parent is untouched: only the timed-out
            // subtree was cancelled. (Under `FailFast` the failure would
            // cancel the parent, as any failure does.)
            assert!(!scope.is_cancelled());
            Ok::<_, taskward::Error>(err)
        })
        .policy(Policy::Supervise),
    ))
    .await
    .unwrap();
    assert_eq!(result.kind(), ErrorKind::TimedOut);
    assert_eq!(result.task(), "task/batch#0");
    assert_eq!(stopped.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn the_deadline_covers_the_join_of_the_children() {
    let start = Instant::now();
    let err = bounded(taskward::run(
        taskward::task(|scope: Scope| async move {
            drop(scope.spawn(async {
                tokio::time::sleep(Duration::from_secs(10)).await; // ignores cancellation
                Ok::<_, std::io::Error>(())
            }));
            Ok::<_, std::io::Error>("body done early")
        })
        .timeout(100 * MS),
    ))
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    // Aborted after the default grace period of one second.
    assert_eq!(start.elapsed(), 100 * MS + Duration::from_secs(1));
    assert_eq!(err.related().len(), 1, "{err:#}");
    assert_eq!(err.related()[0].kind(), ErrorKind::Cancelled);
    assert_eq!(err.related()[0].task(), "task/task#0");
}

#[tokio::test(start_paused = true)]
async fn a_task_that_finishes_in_time_is_unaffected() {
    let value = bounded(taskward::run(
        async {
            tokio::time::sleep(99 * MS).await;
            Ok::<_, std::io::Error>(7)
        }
        .timeout(100 * MS),
    ))
    .await;
    assert_eq!(value.unwrap(), 7);
}

#[tokio::test(start_paused = true)]
async fn a_failure_before_the_deadline_is_reported_as_it_is() {
    let err = bounded(taskward::run(
        async { Err::<(), _>(std::io::Error::other("bad input")) }.timeout(100 * MS),
    ))
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Failed);
}

#[tokio::test(start_paused = true)]
async fn what_a_timed_out_task_returns_is_kept_in_related() {
    let err = bounded(taskward::run(
        taskward::task(|scope: Scope| async move {
            scope.cancelled().await;
            Err::<(), _>(std::io::Error::other("interrupted"))
        })
        .timeout(10 * MS),
    ))
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert_eq!(err.related().len(), 1);
    assert_eq!(err.related()[0].to_string(), "task `task` failed: interrupted");
}

#[tokio::test(start_paused = true)]
async fn an_unclaimed_timeout_escalates_like_any_failure() {
    let err = bounded(taskward::run(
        taskward::task(|scope: Scope| async move {
            drop(scope.spawn(std::future::pending::<()>().named("slow").timeout(10 * MS)));
        })
        .named("app"),
    ))
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert_eq!(err.task(), "app/slow#0");
}

#[tokio::test(start_paused = true)]
async fn a_supervising_parent_handles_a_childs_timeout_with_next_error() {
    let result = bounded(taskward::run(
        taskward::task(|scope: Scope| async move {
            drop(scope.spawn(std::future::pending::<()>().timeout(10 * MS)));
            let ok = scope.spawn(async { Ok::<_, std::io::Error>("sibling untouched") });
            let err = scope.next_error().await.unwrap();
            assert_eq!(err.kind(), ErrorKind::TimedOut);
            ok.await
        })
        .policy(Policy::Supervise),
    ))
    .await;
    assert_eq!(result.unwrap(), "sibling untouched");
}

#[tokio::test(start_paused = true)]
async fn every_kind_of_task_takes_a_timeout() {
    #[supervised]
    async fn never(token: CancellationToken) {
        token.cancelled().await;
    }
    let kinds = [
        taskward::run(never().timeout(MS)).await.map(drop),
        taskward::run(std::future::pending::<()>().timeout(MS)).await,
        taskward::run(taskward::task(|scope: Scope| async move { scope.cancelled().await }).timeout(MS)).await,
        taskward::run(taskward::restart(std::future::pending::<()>).timeout(MS)).await,
        taskward::run(never().named("renamed").policy(Policy::Supervise).timeout(MS)).await,
    ];
    for result in kinds {
        assert_eq!(result.unwrap_err().kind(), ErrorKind::TimedOut);
    }
}

#[tokio::test(start_paused = true)]
async fn the_last_timeout_given_wins() {
    let start = Instant::now();
    let err = bounded(taskward::run(
        taskward::task(|scope: Scope| async move { scope.cancelled().await })
            .timeout(Duration::from_secs(100))
            .timeout(5 * MS),
    ))
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert_eq!(start.elapsed(), 5 * MS);
}

#[tokio::test(start_paused = true)]
async fn a_zero_timeout_lets_only_a_task_that_finishes_in_its_first_poll_succeed() {
    let at_once = taskward::run(async { Ok::<_, std::io::Error>(1) }.timeout(Duration::ZERO)).await;
    assert_eq!(at_once.unwrap(), 1);

    let later = bounded(taskward::run(
        async {
            tokio::task::yield_now().await;
            Ok::<_, std::io::Error>(2)
        }
        .timeout(Duration::ZERO),
    ))
    .await;
    assert_eq!(later.unwrap_err().kind(), ErrorKind::TimedOut);
}

#[tokio::test(start_paused = true)]
async fn a_huge_timeout_does_not_overflow() {
    let value = taskward::run(
        async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok::<_, std::io::Error>(3)
        }
        .timeout(Duration::MAX),
    )
    .await;
    assert_eq!(value.unwrap(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_deadline_starts_when_a_child_waiting_for_a_slot_starts() {
    let start = Instant::now();
    let result = bounded(taskward::run(taskward::task(|scope: Scope| async move {
        scope.set_limit(1);
        let first = scope.spawn(async {
            tokio::time::sleep(100 * MS).await;
            Ok::<_, std::io::Error>(())
        });
        // Waits 100ms in line; its 50ms deadline counts from its start.
        let second = scope.spawn(
            async {
                tokio::time::sleep(40 * MS).await;
                Ok::<_, std::io::Error>("in time")
            }
            .timeout(50 * MS),
        );
        first.await?;
        second.await
    })))
    .await;
    assert_eq!(result.unwrap(), "in time");
    assert_eq!(start.elapsed(), 140 * MS);
}
