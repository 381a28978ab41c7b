//! `Scope::spawn_on`: a child on another tokio runtime is still joined,
//! cancelled, limited and aborted by its scope, and its own children run
//! on that runtime too.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{DropFlag, Gauge, bounded_for, flag, quiet_panics};
use taskward::{CancellationToken, ErrorKind, Root, Scope, supervised};
use tokio::runtime::{Builder, Handle, Runtime};

const MS: Duration = Duration::from_millis(1);
const BOUND: Duration = Duration::from_secs(30);
const OTHER: &str = "other-runtime";

/// A second runtime, kept alive beyond the test's tree (a runtime cannot
/// be dropped in async code: the tests end with `shutdown_background`).
fn other_runtime() -> Runtime {
    Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(OTHER)
        .enable_all()
        .build()
        .unwrap()
}

fn thread_name() -> Option<String> {
    std::thread::current().name().map(str::to_owned)
}

#[supervised]
async fn where_am_i() -> std::io::Result<Option<String>> {
    Ok(thread_name())
}

#[supervised]
async fn parent_of_one(scope: &Scope) -> Result<(Option<String>, Option<String>), taskward::Error> {
    let own = thread_name();
    let child = scope.spawn(where_am_i()).await?;
    Ok((own, child))
}

#[tokio::test]
async fn a_child_runs_on_the_given_runtime_and_gives_its_value() {
    let other = other_runtime();
    let handle = other.handle().clone();
    let (own, child) = bounded_for(
        BOUND,
        taskward::run(taskward::task(move |scope: Scope| async move {
            let child = scope.spawn_on(parent_of_one(), &handle);
            assert_eq!(child.path(), "task/parent_of_one#0");
            child.await
        })),
    )
    .await
    .unwrap();
    assert_eq!(own.as_deref(), Some(OTHER));
    assert_eq!(child.as_deref(), Some(OTHER), "its children run on its runtime too");
    other.shutdown_background();
}

#[tokio::test]
async fn a_failure_and_a_panic_on_the_other_runtime_come_back_to_the_scope() {
    quiet_panics("spawn_on boom");
    let other = other_runtime();
    let handle = other.handle().clone();
    let err = bounded_for(
        BOUND,
        taskward::run(taskward::task(move |scope: Scope| async move {
            let failed = scope.spawn_on(async { Err::<(), _>(std::io::Error::other("far away")) }, &handle);
            let err = failed.await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Failed);
            assert_eq!(err.to_string(), "task `task/task#0` failed: far away");
            scope.spawn_on(
                async {
                    if thread_name().as_deref() == Some(OTHER) {
                        panic!("spawn_on boom");
                    }
                },
                &handle,
            );
        })),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Panicked);
    assert_eq!(err.task(), "task/task#1");
    other.shutdown_background();
}

#[supervised]
async fn until_cancelled(token: CancellationToken) -> std::io::Result<()> {
    token.cancelled().await;
    Ok(())
}

#[tokio::test]
async fn cancelling_the_scope_reaches_a_child_on_the_other_runtime() {
    let other = other_runtime();
    let handle = other.handle().clone();
    bounded_for(
        BOUND,
        taskward::run(taskward::task(move |scope: Scope| async move {
            scope.spawn_on(until_cancelled(), &handle);
            scope.spawn_on(until_cancelled(), &handle);
            tokio::time::sleep(5 * MS).await;
            scope.cancel();
        })),
    )
    .await
    .unwrap();
    other.shutdown_background();
}

#[supervised]
async fn counted(gauge: Gauge) -> std::io::Result<()> {
    let _running = gauge.enter();
    tokio::time::sleep(5 * MS).await;
    Ok(())
}

#[tokio::test]
async fn children_on_the_other_runtime_count_in_the_limit() {
    let other = other_runtime();
    let handle = other.handle().clone();
    let gauge = Gauge::default();
    let pool = gauge.clone();
    bounded_for(
        BOUND,
        taskward::run(taskward::task(move |scope: Scope| async move {
            scope.set_limit(2);
            for _ in 0..8 {
                scope.spawn_on(counted(pool.clone()), &handle);
            }
        })),
    )
    .await
    .unwrap();
    assert_eq!(gauge.peak(), 2);
    other.shutdown_background();
}

#[tokio::test]
async fn the_grace_period_aborts_a_child_on_the_other_runtime_before_run_returns() {
    let other = other_runtime();
    let handle = other.handle().clone();
    let dropped = flag();
    let guard = DropFlag(Arc::clone(&dropped));
    let err = bounded_for(
        BOUND,
        Root::new()
            .grace(10 * MS)
            .run(taskward::task(move |scope: Scope| async move {
                scope.spawn_on(
                    async move {
                        let _guard = guard;
                        std::future::pending::<()>().await; // ignores cancellation
                    },
                    &handle,
                );
                tokio::time::sleep(5 * MS).await;
                scope.cancel();
            })),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled);
    assert_eq!(err.task(), "task/task#0");
    assert!(
        dropped.load(Ordering::SeqCst),
        "run returned before the child's future was dropped"
    );
    other.shutdown_background();
}

#[tokio::test]
async fn a_runtime_shut_down_under_its_child_reports_cancelled() {
    let other = other_runtime();
    let handle = other.handle().clone();
    let err = bounded_for(
        BOUND,
        taskward::run(taskward::task(move |scope: Scope| async move {
            let child = scope.spawn_on(until_cancelled(), &handle);
            tokio::time::sleep(5 * MS).await;
            other.shutdown_background();
            child.await
        })),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled);
    assert_eq!(err.task(), "task/until_cancelled#0");
}

#[tokio::test]
async fn spawn_on_a_handle_of_the_current_runtime_works_too() {
    let value = bounded_for(
        BOUND,
        taskward::run(taskward::task(|scope: Scope| async move {
            scope
                .spawn_on(async { Ok::<_, std::io::Error>(7) }, &Handle::current())
                .await
        })),
    )
    .await
    .unwrap();
    assert_eq!(value, 7);
}
