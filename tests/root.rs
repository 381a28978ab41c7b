//! `Root`: a token to stop the tree from outside, a grace period after which
//! what still runs is aborted, shutdown on signals; `run` returns only once
//! nothing of the tree is alive.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::{DropFlag, bounded};
use taskward::{CancellationToken, ErrorKind, Policy, Root, Scope, Task, supervised};
use tokio::time::Instant;

/// A task that ignores cancellation for ever; `dropped` is set once its
/// future is gone.
fn stubborn(dropped: &Arc<AtomicBool>) -> impl Task<Output = ()> {
    let flag = DropFlag(dropped.clone());
    async move {
        let _flag = flag;
        std::future::pending::<()>().await;
    }
    .named("stubborn")
}

#[supervised]
async fn cooperative(token: CancellationToken, stopped: Arc<AtomicUsize>) -> std::io::Result<()> {
    token.cancelled().await;
    stopped.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn cancelling_the_root_token_stops_a_cooperative_tree_which_returns_its_result() {
    let stopped = Arc::new(AtomicUsize::new(0));
    let root = Root::new();
    let token = root.token();
    let counter = stopped.clone();
    let tree = tokio::spawn(root.run(taskward::task(|scope: Scope| async move {
        for _ in 0..3 {
            drop(scope.spawn(cooperative(counter.clone())));
        }
        scope.cancelled().await;
        Ok::<_, std::io::Error>("stopped")
    })));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!tree.is_finished());
    token.cancel();
    assert_eq!(bounded(tree).await.unwrap().unwrap(), "stopped");
    assert_eq!(stopped.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn the_grace_period_aborts_what_still_runs_and_names_it() {
    let dropped = Arc::new(AtomicBool::new(false));
    let stopped = Arc::new(AtomicUsize::new(0));
    let root = Root::new().grace(Duration::from_millis(300));
    root.token().cancel();
    let start = Instant::now();
    let (flag, counter) = (dropped.clone(), stopped.clone());
    let err = bounded(
        root.run(
            taskward::task(|scope: Scope| async move {
                drop(scope.spawn(cooperative(counter)));
                drop(scope.spawn(stubborn(&flag)));
            })
            .named("app"),
        ),
    )
    .await
    .unwrap_err();

    assert_eq!(err.kind(), ErrorKind::Cancelled);
    assert_eq!(err.task(), "app/stubborn#0");
    assert!(err.related().is_empty(), "only the stubborn task was aborted: {err:#}");
    assert!(err.to_string().contains("grace period"), "{err}");
    assert_eq!(start.elapsed(), Duration::from_millis(300));
    assert!(
        dropped.load(Ordering::SeqCst),
        "run returned while an aborted task was alive"
    );
    assert_eq!(stopped.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn run_returns_only_once_every_aborted_subtree_is_gone() {
    let flags: Vec<Arc<AtomicBool>> = (0..3).map(|_| Arc::new(AtomicBool::new(false))).collect();
    let root = Root::new().grace(Duration::from_millis(10));
    let token = root.token();
    let inner = flags.clone();
    let tree = tokio::spawn(root.run(taskward::task(|scope: Scope| async move {
        let [a, b, c] = [&inner[0], &inner[1], &inner[2]].map(Arc::clone);
        // A body that ignores cancellation, with a subtree that does too.
        drop(scope.spawn(taskward::task(move |scope: Scope| async move {
            drop(scope.spawn(taskward::task(move |scope: Scope| async move {
                drop(scope.spawn(stubborn(&c)));
                let _flag = DropFlag(b);
                std::future::pending::<()>().await;
            })));
            let _flag = DropFlag(a);
            std::future::pending::<()>().await;
        })));
        scope.cancelled().await;
    })));
    tokio::time::sleep(Duration::from_millis(5)).await;
    token.cancel();
    let err = bounded(tree).await.unwrap().unwrap_err();
    for (i, flag) in flags.iter().enumerate() {
        assert!(
            flag.load(Ordering::SeqCst),
            "task {i} was still alive when run returned"
        );
    }
    // Every aborted task is named: the one at the top, its own children in
    // its `related()`.
    assert_eq!(err.kind(), ErrorKind::Cancelled);
    let mut named = Vec::new();
    collect_tasks(&err, &mut named);
    named.sort();
    assert_eq!(
        named,
        ["task/task#0", "task/task#0/task#0", "task/task#0/task#0/stubborn#0"],
        "{err:#}"
    );
}

fn collect_tasks(err: &taskward::Error, into: &mut Vec<String>) {
    into.push(err.task().to_owned());
    for related in err.related() {
        collect_tasks(related, into);
    }
}

#[tokio::test(start_paused = true)]
async fn a_tree_that_stops_within_the_grace_period_is_not_aborted() {
    let root = Root::new().grace(Duration::from_millis(100));
    root.token().cancel();
    let result = bounded(root.run(taskward::task(|scope: Scope| async move {
        let slow = scope.spawn(taskward::task(|scope: Scope| async move {
            scope.cancelled().await;
            tokio::time::sleep(Duration::from_millis(99)).await; // cleaning up
            Ok::<_, std::io::Error>("cleaned up")
        }));
        slow.await
    })))
    .await;
    assert_eq!(result.unwrap(), "cleaned up");
}

#[tokio::test(start_paused = true)]
async fn without_a_grace_period_a_cancelled_tree_is_waited_for() {
    let root = Root::new();
    root.token().cancel();
    let start = Instant::now();
    let result = bounded(root.run(taskward::task(|scope: Scope| async move {
        scope.cancelled().await;
        tokio::time::sleep(Duration::from_secs(3600)).await; // a very slow stop
        Ok::<_, std::io::Error>("stopped late")
    })))
    .await;
    assert_eq!(result.unwrap(), "stopped late");
    assert_eq!(start.elapsed(), Duration::from_secs(3600));
}

#[tokio::test(start_paused = true)]
async fn the_grace_period_starts_when_a_failing_child_cancels_the_tree() {
    let dropped = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let flag = dropped.clone();
    let err = bounded(
        Root::new()
            .grace(Duration::from_millis(50))
            .run(taskward::task(|scope: Scope| async move {
                drop(scope.spawn(stubborn(&flag)));
                drop(scope.spawn(async {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    Err::<(), _>(std::io::Error::other("disk full"))
                }));
            })),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Failed);
    assert_eq!(err.task(), "task/task#0");
    assert_eq!(err.related().len(), 1, "{err:#}");
    assert_eq!(err.related()[0].kind(), ErrorKind::Cancelled);
    assert_eq!(err.related()[0].task(), "task/stubborn#0");
    assert_eq!(start.elapsed(), Duration::from_millis(70));
    assert!(dropped.load(Ordering::SeqCst));
}

#[tokio::test(start_paused = true)]
async fn a_zero_grace_period_aborts_at_once() {
    let dropped = Arc::new(AtomicBool::new(false));
    let root = Root::new().grace(Duration::ZERO);
    root.token().cancel();
    let start = Instant::now();
    let flag = dropped.clone();
    let err = bounded(root.run(taskward::task(|scope: Scope| async move {
        drop(scope.spawn(stubborn(&flag)));
    })))
    .await
    .unwrap_err();
    assert_eq!(err.task(), "task/stubborn#0");
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert!(dropped.load(Ordering::SeqCst));
}

#[tokio::test(start_paused = true)]
async fn a_huge_grace_period_is_accepted() {
    let root = Root::new().grace(Duration::MAX);
    root.token().cancel();
    let result = bounded(root.run(taskward::task(|scope: Scope| async move {
        scope.cancelled().await;
        Ok::<_, std::io::Error>(1)
    })))
    .await;
    assert_eq!(result.unwrap(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_root_body_itself_is_aborted_when_it_ignores_cancellation() {
    let dropped = Arc::new(AtomicBool::new(false));
    let root = Root::new().grace(Duration::from_millis(10));
    root.token().cancel();
    let flag = DropFlag(dropped.clone());
    let err = bounded(
        root.run(
            async move {
                let _flag = flag;
                std::future::pending::<()>().await;
            }
            .named("server"),
        ),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled);
    assert_eq!(err.task(), "server");
    assert!(dropped.load(Ordering::SeqCst));
}

#[tokio::test]
async fn finishing_the_tree_does_not_cancel_the_roots_token() {
    let root = Root::new();
    let token = root.token();
    let (tx, rx) = tokio::sync::oneshot::channel();
    root.run(taskward::task(|scope: Scope| async move {
        let _ = tx.send(scope.token().clone());
    }))
    .await
    .unwrap();
    // The tree's own token is cancelled once it has finished; the one that
    // was handed out to stop it from outside is not.
    assert!(rx.await.unwrap().is_cancelled());
    assert!(!token.is_cancelled());
}

#[tokio::test(start_paused = true)]
async fn a_supervised_tree_keeps_running_after_a_failure_and_no_grace_starts() {
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = dropped.clone();
    let result = bounded(
        Root::new().grace(Duration::from_millis(10)).run(
            taskward::task(|scope: Scope| async move {
                drop(scope.spawn(async { Err::<(), _>(std::io::Error::other("one job")) }));
                let worker = scope.spawn(async move {
                    let _flag = DropFlag(flag);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    Ok::<_, std::io::Error>("finished")
                });
                let failure = scope.next_error().await.unwrap();
                assert_eq!(failure.task(), "task/task#0");
                worker.await
            })
            .policy(Policy::Supervise),
        ),
    )
    .await;
    assert_eq!(result.unwrap(), "finished");
}

/// Sends `signal` to this test process.
#[cfg(unix)]
fn raise(signal: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(std::process::id().to_string())
        .status()
        .expect("the `kill` command runs");
    assert!(status.success());
}

// Real time: signals need the I/O driver, and paused time would jump over
// the grace period while the runtime waits for the signal. The test is
// bounded by a timeout that fails it, rather than timing anything.
#[cfg(unix)]
#[tokio::test]
async fn a_signal_cancels_the_tree_and_a_second_one_aborts_it() {
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = dropped.clone();
    let root = Root::new().grace(Duration::from_secs(3600)).shutdown_on_signal();
    let token = root.token();
    let tree = root.run(taskward::task(|scope: Scope| async move {
        drop(scope.spawn(stubborn(&flag)));
        raise("TERM");
        scope.cancelled().await;
        raise("INT");
    }));
    let err = tokio::time::timeout(Duration::from_secs(60), tree)
        .await
        .expect("the second signal aborts the tree without waiting for the grace period")
        .unwrap_err();
    assert!(token.is_cancelled(), "a signal cancels the root's token");
    assert_eq!(err.kind(), ErrorKind::Cancelled);
    assert_eq!(err.task(), "task/stubborn#0");
    assert!(dropped.load(Ordering::SeqCst));
}
