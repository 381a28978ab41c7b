//! Promises kept under hostile user code: errors whose `Display` panics,
//! values that panic when dropped, panic payloads that panic when dropped,
//! task closures that panic, handles moved to siblings, and trees dropped
//! in the middle of their work.

mod common;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{DropFlag, bounded, flag, quiet_panics};
use taskward::{Error, ErrorKind, Root, Scope, Task, supervised};

/// Every panic these tests inject starts with this marker.
const HOSTILE: &str = "hostile:";

/// An error whose `Display` panics.
#[cfg(feature = "tracing")]
#[derive(Debug)]
struct LoudDisplay;

#[cfg(feature = "tracing")]
impl fmt::Display for LoudDisplay {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        panic!("hostile: display")
    }
}

#[cfg(feature = "tracing")]
impl std::error::Error for LoudDisplay {}

/// A value whose `Drop` panics.
struct LoudDrop;

impl Drop for LoudDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("hostile: drop")
        }
    }
}

/// Runs `test` on a paused current-thread runtime (so that a hang fails at
/// once, through `bounded`) with a subscriber taking events up to `level`.
#[cfg(feature = "tracing")]
fn with_subscriber<F: Future>(level: tracing::Level, test: F) -> F::Output {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let _guard = tracing::subscriber::set_default(common::Formatting { level });
    runtime.block_on(test)
}

// Regression: the escalation event formatted the error while the parent's
// lock was held; the panic came before the parent's count of running
// children went down, and `run` waited forever.
#[cfg(feature = "tracing")]
#[test]
fn an_escalated_error_whose_display_panics_is_delivered_under_an_error_only_subscriber() {
    quiet_panics(HOSTILE);
    let err = with_subscriber(tracing::Level::ERROR, async {
        bounded(taskward::run(taskward::task(|scope: Scope| async move {
            scope.spawn(async { Err::<(), _>(LoudDisplay) });
            Ok::<_, Error>(())
        })))
        .await
        .unwrap_err()
    });
    assert_eq!(err.kind(), ErrorKind::Failed);
    assert!(err.downcast_ref::<LoudDisplay>().is_some());
    assert_eq!(err.task(), "task/task#0");
}

// Regression: with every level taken, the `task failed` event panicked
// inside the child's task, and its handle got `Cancelled` instead of the
// error.
#[cfg(feature = "tracing")]
#[test]
fn a_claimed_error_whose_display_panics_reaches_its_handle_under_a_verbose_subscriber() {
    quiet_panics(HOSTILE);
    let err = with_subscriber(tracing::Level::TRACE, async {
        bounded(taskward::run(taskward::task(|scope: Scope| async move {
            let err = scope.spawn(async { Err::<(), _>(LoudDisplay) }).await.unwrap_err();
            Ok::<_, Error>(err)
        })))
        .await
        .unwrap()
    });
    assert_eq!(err.kind(), ErrorKind::Failed);
    assert!(err.downcast_ref::<LoudDisplay>().is_some());
}

#[cfg(feature = "tracing")]
#[test]
fn an_escalated_error_whose_display_panics_is_delivered_under_a_verbose_subscriber() {
    quiet_panics(HOSTILE);
    let err = with_subscriber(tracing::Level::TRACE, async {
        bounded(taskward::run(taskward::task(|scope: Scope| async move {
            scope.spawn(async { Err::<(), _>(LoudDisplay) });
            Ok::<_, Error>(())
        })))
        .await
        .unwrap_err()
    });
    assert!(err.downcast_ref::<LoudDisplay>().is_some());
}

/// The panic message an error carries, through its `Display`.
fn says_panicked(err: &Error, message: &str) {
    assert_eq!(err.kind(), ErrorKind::Panicked, "{err}");
    assert!(err.to_string().contains(message), "{err}");
}

// Regression: a value panicking in `Drop` while the grace period dropped
// the root's body escaped `Root::run`.
#[tokio::test(start_paused = true)]
async fn a_root_body_whose_local_panics_when_killed_is_a_panicked_error() {
    quiet_panics(HOSTILE);
    let root = Root::new().grace(Duration::from_secs(1));
    root.token().cancel();
    let err = bounded(root.run(async {
        let _local = LoudDrop;
        std::future::pending::<()>().await;
    }))
    .await
    .unwrap_err();
    says_panicked(&err, "hostile: drop");
}

#[tokio::test(start_paused = true)]
async fn a_child_whose_local_panics_when_killed_is_a_panicked_error() {
    quiet_panics(HOSTILE);
    let root = Root::new().grace(Duration::from_secs(1));
    root.token().cancel();
    let err = bounded(root.run(taskward::task(|scope: Scope| async move {
        let stuck = scope.spawn(async {
            let _local = LoudDrop;
            std::future::pending::<()>().await;
        });
        stuck.await
    })))
    .await
    .unwrap_err();
    says_panicked(&err, "hostile: drop");
}

/// A future that is ready at once and panics when dropped afterwards.
struct ReadyThenLoud(#[allow(dead_code, reason = "only dropped")] LoudDrop);

impl Future for ReadyThenLoud {
    type Output = Result<u32, std::io::Error>;

    fn poll(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        std::task::Poll::Ready(Ok(7))
    }
}

// Regression: the panic escaped `run`.
#[tokio::test(start_paused = true)]
async fn a_root_future_that_panics_when_dropped_after_its_value_is_a_panicked_error() {
    quiet_panics(HOSTILE);
    let err = bounded(taskward::run(ReadyThenLoud(LoudDrop))).await.unwrap_err();
    says_panicked(&err, "hostile: drop");
}

// Regression: the child came back `Cancelled: aborted before it finished`.
#[tokio::test(start_paused = true)]
async fn a_child_future_that_panics_when_dropped_after_its_value_is_a_panicked_error() {
    quiet_panics(HOSTILE);
    let err = bounded(taskward::run(taskward::task(|scope: Scope| async move {
        let err = scope.spawn(ReadyThenLoud(LoudDrop)).await.unwrap_err();
        Ok::<_, Error>(err)
    })))
    .await
    .unwrap();
    says_panicked(&err, "hostile: drop");
}

/// A panic payload whose own `Drop` panics.
struct LoudPayload;

impl Drop for LoudPayload {
    fn drop(&mut self) {
        panic!("hostile: payload drop")
    }
}

#[supervised]
async fn panics_with_a_loud_payload() {
    std::panic::panic_any(LoudPayload);
}

// Regression: dropping the payload panicked out of `run`.
#[tokio::test(start_paused = true)]
async fn a_root_panic_whose_payload_panics_when_dropped_is_a_panicked_error() {
    quiet_panics(HOSTILE);
    let err = bounded(taskward::run(panics_with_a_loud_payload())).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Panicked);
    drop(err);
}

#[tokio::test(start_paused = true)]
async fn a_child_panic_whose_payload_panics_when_dropped_is_a_panicked_error() {
    quiet_panics(HOSTILE);
    let err = bounded(taskward::run(taskward::task(|scope: Scope| async move {
        let err = scope.spawn(panics_with_a_loud_payload()).await.unwrap_err();
        Ok::<_, Error>(err)
    })))
    .await
    .unwrap();
    assert_eq!(err.kind(), ErrorKind::Panicked);
    assert_eq!(err.task(), "task/panics_with_a_loud_payload#0");
    drop(err);
}

// Regression: the closure's panic escaped `run`.
#[tokio::test(start_paused = true)]
async fn a_root_task_closure_that_panics_is_a_panicked_error() {
    quiet_panics(HOSTILE);
    let root =
        taskward::task(|_: Scope| -> std::future::Ready<Result<(), std::io::Error>> { panic!("hostile: closure") });
    let err = bounded(taskward::run(root)).await.unwrap_err();
    says_panicked(&err, "hostile: closure");
}

// Regression: a handle moved to a sibling and dropped there after the scope
// that spawned it had finished had nowhere to deliver its failure, and `run`
// returned `Ok(())`.
#[tokio::test(start_paused = true)]
async fn a_failure_in_a_handle_dropped_after_its_scope_ended_reaches_a_running_scope() {
    #[derive(Debug)]
    struct Lost;
    impl fmt::Display for Lost {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("lost")
        }
    }
    impl std::error::Error for Lost {}

    let result = bounded(taskward::run(
        taskward::task(|scope: Scope| async move {
            let (give, take) = tokio::sync::oneshot::channel();
            // X: spawns A, which fails, and hands A's handle to Y.
            scope.spawn(
                taskward::task(move |x: Scope| async move {
                    let a = x.spawn(async { Err::<(), _>(Lost) }.named("a"));
                    while !a.is_finished() {
                        tokio::task::yield_now().await;
                    }
                    give.send(a).ok();
                    Ok::<_, Error>(())
                })
                .named("x"),
            );
            // Y: holds A's handle until X is over, then drops it.
            scope.spawn(
                async move {
                    let a = take.await.expect("A's handle");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    drop(a);
                    Ok::<_, Error>(())
                }
                .named("y"),
            );
            Ok::<_, Error>(())
        })
        .named("root")
        .policy(taskward::Policy::Supervise),
    ))
    .await;
    let err = result.expect_err("the failure of A must reach a scope");
    assert!(err.downcast_ref::<Lost>().is_some(), "{err}");
    assert_eq!(err.task(), "root/x#0/a#0");
}

#[supervised]
async fn hold_forever(scope: &Scope, gone: Arc<AtomicBool>) {
    let inner = gone.clone();
    scope.spawn(async move {
        let _gone = DropFlag(inner);
        std::future::pending::<()>().await;
    });
    let _gone = DropFlag(gone);
    std::future::pending::<()>().await;
}

// The documented guarantee of dropping a `run` future: every task of the
// tree is asked to abort at once, and each is dropped at its next
// scheduling point, without waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_run_drops_every_task_at_its_next_scheduling_point() {
    let grandchild = flag();
    let gone = grandchild.clone();
    let timed_out = tokio::time::timeout(
        Duration::from_millis(50),
        taskward::run(taskward::task(move |scope: Scope| async move {
            scope.spawn(hold_forever(gone));
            std::future::pending::<()>().await;
            Ok::<_, Error>(())
        })),
    )
    .await;
    assert!(timed_out.is_err());
    for _ in 0..1000 {
        if grandchild.load(Ordering::SeqCst) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("a grandchild of a dropped `run` was never dropped");
}

/// A body that fails, holding a value that panics when dropped.
struct FailsAndHoldsLoudDrop(#[allow(dead_code, reason = "only dropped")] LoudDrop);

impl Future for FailsAndHoldsLoudDrop {
    type Output = Result<(), std::io::Error>;

    fn poll(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        std::task::Poll::Ready(Err(std::io::Error::other("its own failure")))
    }
}

// Neither failure may be lost: the body's own comes first, the panic of its
// drop is related to it.
#[tokio::test(start_paused = true)]
async fn a_failing_body_that_panics_when_dropped_loses_neither_failure() {
    quiet_panics(HOSTILE);
    let err = bounded(taskward::run(FailsAndHoldsLoudDrop(LoudDrop)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Failed);
    assert!(err.to_string().contains("its own failure"), "{err}");
    assert_eq!(err.related().len(), 1);
    says_panicked(&err.related()[0], "hostile: drop");
}

// Regression: the panic of the body's drop escaped into the code that
// dropped the `run` future (here, tokio's `timeout`).
#[tokio::test(start_paused = true)]
async fn a_root_body_that_panics_when_its_dropped_run_drops_it_does_not_panic_there() {
    quiet_panics(HOSTILE);
    let outcome = tokio::time::timeout(
        Duration::from_millis(10),
        taskward::run(async {
            let _local = LoudDrop;
            std::future::pending::<()>().await;
        }),
    )
    .await;
    assert!(outcome.is_err(), "the run ends only by its timeout");
}

/// A future that never completes, holding a value that panics when dropped.
struct PendingHoldingLoudDrop(#[allow(dead_code, reason = "only dropped")] LoudDrop);

impl Future for PendingHoldingLoudDrop {
    type Output = Result<(), std::io::Error>;

    fn poll(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        std::task::Poll::Pending
    }
}

// Regression (found by the chaos suite): a child killed while it waited in
// line for a slot had its body dropped outside `catch_unwind`; the panic
// escaped into tokio, and the child reported `Cancelled`.
#[tokio::test(start_paused = true)]
async fn a_child_killed_in_line_whose_body_panics_when_dropped_is_a_panicked_error() {
    quiet_panics(HOSTILE);
    let root = Root::new().grace(Duration::from_secs(1));
    root.token().cancel();
    let err = bounded(root.run(taskward::task(|scope: Scope| async move {
        scope.set_limit(1);
        scope.spawn(std::future::pending::<Result<(), std::io::Error>>());
        let queued = scope.spawn(PendingHoldingLoudDrop(LoudDrop));
        Ok::<_, Error>(queued.await.unwrap_err())
    })))
    .await;
    // The root's own body was killed too; what its queued child reported is
    // in the root's failures.
    let err = err.unwrap_err();
    let mut all = vec![&err];
    all.extend(err.related());
    assert!(
        all.iter()
            .any(|failure| failure.kind() == ErrorKind::Panicked && failure.to_string().contains("hostile: drop")),
        "{err:#}"
    );
}

/// An error whose `Display` takes a snapshot of the scope it failed in,
/// which locks that scope's node.
#[cfg(feature = "tracing")]
#[derive(Debug)]
struct LooksAtItsScope(Scope);

#[cfg(feature = "tracing")]
impl fmt::Display for LooksAtItsScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "failed among {} tasks", self.0.tree().len())
    }
}

#[cfg(feature = "tracing")]
impl std::error::Error for LooksAtItsScope {}

// Regression: the escalation event formatted the error while the scope's
// lock was held, so a `Display` that locks the scope (here through a
// snapshot) deadlocked the thread.
#[cfg(feature = "tracing")]
#[test]
fn an_escalated_error_is_formatted_outside_the_scopes_lock() {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let err = with_subscriber(tracing::Level::ERROR, async {
            bounded(taskward::run(taskward::task(|scope: Scope| async move {
                let parent = scope.clone();
                scope.spawn(async move {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    Err::<(), _>(LooksAtItsScope(parent))
                });
                // The body ends first: the failure escalates while the
                // scope joins.
                Ok::<_, Error>(())
            })))
            .await
            .unwrap_err()
        });
        let _ = done.send(err.downcast_ref::<LooksAtItsScope>().is_some());
    });
    let delivered = finished
        .recv_timeout(Duration::from_secs(60))
        .expect("the run did not end: the error was formatted under a lock");
    assert!(delivered);
}
