//! Semantics 3 and 4: every failure is delivered exactly once (handle, then
//! `next_error`, then escalation), under both policies.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

mod common;

use common::bounded;
use taskward::{CancellationToken, Error, ErrorKind, Policy, Scope, Task, supervised};

#[derive(Debug, PartialEq)]
struct JobError(u32);

impl std::fmt::Display for JobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "job {} failed", self.0)
    }
}

impl std::error::Error for JobError {}

#[supervised]
async fn job(id: u32, fail: bool) -> Result<u32, JobError> {
    tokio::time::sleep(Duration::from_millis(u64::from(id))).await;
    if fail { Err(JobError(id)) } else { Ok(id) }
}

#[supervised]
async fn until_cancelled(token: CancellationToken, stopped: Arc<AtomicUsize>) {
    token.cancelled().await;
    stopped.fetch_add(1, Ordering::SeqCst);
}

#[tokio::test(start_paused = true)]
async fn awaited_handle_claims_the_failure() {
    let result = taskward::run(taskward::task(|scope: Scope| async move {
        let err = scope.spawn(job(1, true)).await.unwrap_err();
        assert_eq!(err.downcast_ref::<JobError>(), Some(&JobError(1)));
        // Claimed by the handle: nothing is left for next_error.
        assert!(scope.next_error().await.is_none());
        Ok::<_, Error>("handled")
    }))
    .await;
    assert_eq!(result.unwrap(), "handled");
}

#[tokio::test(start_paused = true)]
async fn dropped_handle_routes_the_failure_to_next_error() {
    let result = taskward::run(
        taskward::task(|scope: Scope| async move {
            scope.spawn(job(1, true));
            scope.spawn(job(2, false));
            let err = scope.next_error().await.expect("the failure of job 1");
            assert_eq!(err.task(), "pool/job#0");
            assert!(scope.next_error().await.is_none());
            Ok::<_, Error>(())
        })
        .named("pool")
        .policy(Policy::Supervise),
    )
    .await;
    assert!(
        result.is_ok(),
        "a failure taken by next_error does not escalate: {result:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn unhandled_failure_escalates_as_the_parent_failure() {
    let err = taskward::run(
        taskward::task(|scope: Scope| async move {
            scope.spawn(job(1, true));
        })
        .named("pool")
        .policy(Policy::Supervise),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Failed);
    assert_eq!(err.task(), "pool/job#0");
    assert_eq!(err.to_string(), "task `pool/job#0` failed: job 1 failed");
    assert!(err.related().is_empty());
}

#[tokio::test(start_paused = true)]
async fn failure_after_the_body_ended_escalates_too() {
    let err = taskward::run(
        taskward::task(|scope: Scope| async move {
            scope.spawn(job(50, true));
            // Body ends at once; the failure comes while the scope joins.
        })
        .policy(Policy::Supervise),
    )
    .await
    .unwrap_err();
    assert_eq!(err.downcast::<JobError>().unwrap(), JobError(50));
}

#[tokio::test(start_paused = true)]
async fn handle_dropped_after_failure_hands_it_to_the_scope() {
    let err = taskward::run(
        taskward::task(|scope: Scope| async move {
            let child = scope.spawn(job(1, true));
            tokio::time::sleep(Duration::from_millis(10)).await;
            assert!(child.is_finished());
            drop(child);
            Ok::<_, Error>(scope.next_error().await)
        })
        .policy(Policy::Supervise),
    )
    .await
    .unwrap();
    assert_eq!(err.unwrap().downcast_ref::<JobError>(), Some(&JobError(1)));
}

#[tokio::test(start_paused = true)]
async fn fail_fast_cancels_every_sibling_and_reports_the_first_failure() {
    let stopped = Arc::new(AtomicUsize::new(0));
    let err = bounded(taskward::run(
        taskward::task({
            let stopped = stopped.clone();
            |scope: Scope| async move {
                for _ in 0..4 {
                    scope.spawn(until_cancelled(stopped.clone()));
                }
                scope.spawn(job(5, true));
                scope.spawn(job(7, true).named("late"));
                // The body is cancelled too.
                scope.cancelled().await;
                Ok::<_, Error>(())
            }
        })
        .named("group"),
    ))
    .await
    .unwrap_err();
    assert_eq!(stopped.load(Ordering::SeqCst), 4, "every sibling saw the cancellation");
    assert_eq!(err.task(), "group/job#0");
    assert_eq!(err.downcast_ref::<JobError>(), Some(&JobError(5)));
    // job 7 ignored the cancellation and failed later: it is related.
    assert_eq!(err.related().len(), 1);
    assert_eq!(err.related()[0].task(), "group/late#0");
}

#[tokio::test(start_paused = true)]
async fn fail_fast_cancels_even_when_the_failure_is_claimed_by_a_handle() {
    // Without the cancellation this would hang: `waiter` only ends when told.
    let stopped = Arc::new(AtomicUsize::new(0));
    let result = bounded(taskward::run(taskward::task({
        let stopped = stopped.clone();
        |scope: Scope| async move {
            let failing = scope.spawn(job(1, true));
            let waiter = scope.spawn(until_cancelled(stopped));
            waiter.await?;
            let err = failing.await.unwrap_err();
            Ok::<_, Error>(err.task().to_owned())
        }
    })))
    .await;
    assert_eq!(result.unwrap(), "task/job#0");
    assert_eq!(stopped.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn supervise_leaves_siblings_running() {
    let finished = Arc::new(AtomicUsize::new(0));
    let err = taskward::run(
        taskward::task({
            let finished = finished.clone();
            |scope: Scope| async move {
                for id in 10..15 {
                    let finished = finished.clone();
                    scope.spawn(async move {
                        tokio::time::sleep(Duration::from_millis(id)).await;
                        finished.fetch_add(1, Ordering::SeqCst);
                    });
                }
                scope.spawn(job(1, true));
                let err = scope.next_error().await.unwrap();
                assert!(!scope.is_cancelled());
                Err::<(), _>(err)
            }
        })
        .policy(Policy::Supervise),
    )
    .await
    .unwrap_err();
    // The parent passed the failure on with `Err`; siblings were untouched.
    assert_eq!(finished.load(Ordering::SeqCst), 5);
    assert_eq!(err.task(), "task/job#0");
    assert_eq!(err.kind(), ErrorKind::Failed);
}

#[tokio::test(start_paused = true)]
async fn errors_pass_through_levels_and_keep_their_origin() {
    #[supervised]
    async fn leaf() -> std::io::Result<()> {
        Err(std::io::Error::new(std::io::ErrorKind::NotFound, "missing file"))
    }
    #[supervised]
    async fn mid(scope: &Scope) -> Result<(), Error> {
        scope.spawn(leaf()).await
    }
    #[supervised]
    async fn root(scope: &Scope) -> Result<(), Error> {
        scope.spawn(mid()).await
    }
    let err = taskward::run(root()).await.unwrap_err();
    assert_eq!(err.task(), "root/mid#0/leaf#0");
    assert_eq!(
        err.downcast_ref::<std::io::Error>().unwrap().kind(),
        std::io::ErrorKind::NotFound
    );
    // The cause's message is in `Display`, so `source()` does not repeat it.
    assert_eq!(err.to_string(), "task `root/mid#0/leaf#0` failed: missing file");
    assert!(std::error::Error::source(&err).is_none());
    let io = err.downcast::<std::io::Error>().unwrap();
    assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
}

#[tokio::test(start_paused = true)]
async fn downcast_reaches_a_cause_wrapped_in_another_error() {
    #[derive(Debug)]
    struct Wrapper(std::io::Error);
    impl std::fmt::Display for Wrapper {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("while reading")
        }
    }
    impl std::error::Error for Wrapper {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }
    let err = taskward::run(async { Err::<(), _>(Wrapper(std::io::Error::other("eof"))) })
        .await
        .unwrap_err();
    assert!(err.downcast_ref::<Wrapper>().is_some());
    assert_eq!(err.downcast_ref::<std::io::Error>().unwrap().to_string(), "eof");
    assert!(err.downcast_ref::<JobError>().is_none());
    assert_eq!(
        format!("{err:#}"),
        "task `task` failed: while reading\n  caused by: eof"
    );
}

#[tokio::test(start_paused = true)]
async fn each_failure_is_delivered_exactly_once_across_many_children() {
    // 100 children, every third fails; half of the handles are kept and
    // awaited, the rest dropped. Each failure must show up exactly once.
    let (handled, escalated) = {
        let handled = Arc::new(AtomicUsize::new(0));
        let result = taskward::run(
            taskward::task({
                let handled = handled.clone();
                |scope: Scope| async move {
                    let mut kept = Vec::new();
                    for id in 0..100u32 {
                        let child = scope.spawn(job(id % 7, id % 3 == 0));
                        if id % 2 == 0 {
                            kept.push(child);
                        }
                    }
                    for child in kept {
                        if child.await.is_err() {
                            handled.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    for _ in 0..5 {
                        if scope.next_error().await.is_some() {
                            handled.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
            })
            .policy(Policy::Supervise),
        )
        .await;
        let escalated = match result {
            Ok(()) => 0,
            Err(err) => 1 + err.related().len(),
        };
        (handled.load(Ordering::SeqCst), escalated)
    };
    let failures = (0..100).filter(|id| id % 3 == 0).count();
    assert_eq!(handled + escalated, failures);
    assert!(escalated > 0, "some failures were left to escalate");
}

#[derive(Debug)]
struct Doom;

impl std::fmt::Display for Doom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("doom")
    }
}

impl std::error::Error for Doom {}

// Regression: the failing child cancelled its parent before it recorded its
// failure there, so siblings woken on the other worker recorded their own
// (`Cancelled`-caused) failures first: 38 to 89 runs in 100 returned a
// sibling's error, with `Doom` buried in `related()`.
/// Under load, on two workers, the failure that cancelled a `fail_fast`
/// scope is its error on every run, and the failures it caused follow it.
#[test]
fn the_failure_that_cancelled_the_scope_is_its_error_on_every_run() {
    const SIBLINGS: usize = 1000;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    for run in 0..100 {
        let err = runtime
            .block_on(taskward::run(taskward::task(|scope: Scope| async move {
                for i in 0..SIBLINGS {
                    scope.spawn(taskward::task(move |sibling: Scope| async move {
                        sibling.cancelled().await;
                        Err::<(), _>(JobError(u32::try_from(i).unwrap()))
                    }));
                }
                scope.spawn(async { Err::<(), _>(Doom) });
                Ok::<_, Error>(())
            })))
            .unwrap_err();
        assert!(
            err.downcast_ref::<Doom>().is_some(),
            "run {run}: the scope's error is {err}"
        );
        assert_eq!(err.related().len(), SIBLINGS, "run {run}");
        assert!(
            err.related()
                .iter()
                .all(|other| other.downcast_ref::<JobError>().is_some())
        );
    }
}
