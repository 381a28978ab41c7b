//! `Scope::spawn_local` and `Root::run_local`: `!Send` futures as children,
//! on the tree's `LocalSet`; outside one, a typed error, not a panic.

mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{DropFlag, Gauge, bounded_for, flag, quiet_panics};
use taskward::{ErrorKind, Policy, Root, Scope, Task};

const MS: Duration = Duration::from_millis(1);
const BOUND: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_local_child_holds_an_rc_across_awaits_and_gives_its_value() {
    let value = bounded_for(
        BOUND,
        Root::new().run_local(taskward::task(|scope: Scope| async move {
            let shared = Rc::new(RefCell::new(0));
            let child = scope.spawn_local(async move {
                for _ in 0..3 {
                    *shared.borrow_mut() += 1;
                    tokio::task::yield_now().await;
                }
                Ok::<_, std::io::Error>(*shared.borrow())
            });
            assert_eq!(child.path(), "task/local#0");
            child.await
        })),
    )
    .await
    .unwrap();
    assert_eq!(value, 3);
}

#[tokio::test]
async fn a_local_failure_and_panic_are_routed_like_any_child() {
    quiet_panics("local boom");
    let err = bounded_for(
        BOUND,
        Root::new().run_local(
            taskward::task(|scope: Scope| async move {
                let rc = Rc::new(());
                let failed = scope.spawn_local(async move {
                    let _rc = rc;
                    Err::<(), _>(std::io::Error::other("local trouble"))
                });
                let err = failed.await.unwrap_err();
                assert_eq!(err.kind(), ErrorKind::Failed);
                assert_eq!(err.to_string(), "task `task/local#0` failed: local trouble");
                let rc = Rc::new(1);
                scope.spawn_local(async move {
                    if *rc == 1 {
                        panic!("local boom");
                    }
                });
                let late = scope.next_error().await.expect("the panic");
                assert_eq!(late.kind(), ErrorKind::Panicked);
                assert_eq!(late.message(), Some("local boom"));
                Err::<(), _>(late)
            })
            .policy(Policy::Supervise),
        ),
    )
    .await
    .unwrap_err();
    assert_eq!(err.task(), "task/local#1");
}

#[tokio::test]
async fn cancelling_the_scope_reaches_a_local_child() {
    bounded_for(
        BOUND,
        Root::new().run_local(taskward::task(|scope: Scope| async move {
            let token = scope.token().clone();
            let rc = Rc::new(());
            scope.spawn_local(async move {
                let _rc = rc;
                token.cancelled().await;
            });
            tokio::time::sleep(5 * MS).await;
            scope.cancel();
        })),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn the_grace_period_aborts_a_local_child_before_run_local_returns() {
    let dropped = flag();
    let guard = DropFlag(Arc::clone(&dropped));
    let err = bounded_for(
        BOUND,
        Root::new()
            .grace(10 * MS)
            .run_local(taskward::task(move |scope: Scope| async move {
                scope.spawn_local(async move {
                    let _guard = Rc::new(guard);
                    std::future::pending::<()>().await; // ignores cancellation
                });
                tokio::time::sleep(5 * MS).await;
                scope.cancel();
            })),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled);
    assert_eq!(err.task(), "task/local#0");
    assert!(
        dropped.load(Ordering::SeqCst),
        "run_local returned before the local child was dropped"
    );
}

#[tokio::test]
async fn local_children_count_in_the_limit() {
    let gauge = Gauge::default();
    let pool = gauge.clone();
    bounded_for(
        BOUND,
        Root::new().run_local(taskward::task(move |scope: Scope| async move {
            scope.set_limit(2);
            for _ in 0..6 {
                let pool = pool.clone();
                scope.spawn_local(async move {
                    let _running = Rc::new(pool.enter());
                    tokio::time::sleep(2 * MS).await;
                });
            }
        })),
    )
    .await
    .unwrap();
    assert_eq!(gauge.peak(), 2);
}

#[tokio::test]
async fn a_local_child_may_start_local_and_send_tasks_on_a_scope_it_holds() {
    let (local, sent) = bounded_for(
        BOUND,
        Root::new().run_local(taskward::task(|scope: Scope| async move {
            let inner = scope.clone();
            scope
                .spawn_local(async move {
                    let rc = Rc::new(20);
                    let local = inner.spawn_local(async move { Ok::<_, std::io::Error>(*rc + 1) });
                    let sent = inner.spawn(async { Ok::<_, std::io::Error>(21) });
                    Ok::<_, taskward::Error>((local.await?, sent.await?))
                })
                .await
        })),
    )
    .await
    .unwrap();
    assert_eq!((local, sent), (21, 21));
}

#[tokio::test]
async fn spawn_local_outside_run_local_is_an_error_not_a_panic() {
    let err = bounded_for(
        BOUND,
        taskward::run(taskward::task(|scope: Scope| async move {
            scope.spawn_local(async { Ok::<_, std::io::Error>(()) }).await
        })),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NoRuntime);
    assert!(err.to_string().contains("Root::run_local"), "{err}");
}

#[tokio::test]
async fn spawn_local_from_a_send_child_of_run_local_is_an_error_not_a_panic() {
    let err = bounded_for(
        BOUND,
        Root::new().run_local(taskward::task(|scope: Scope| async move {
            scope
                .spawn(taskward::task(|scope: Scope| async move {
                    scope.spawn_local(async { Ok::<_, std::io::Error>(()) }).await
                }))
                .await
        })),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NoRuntime);
    assert_eq!(err.task(), "task/task#0/local");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_local_works_on_a_multi_thread_runtime_too() {
    let value = bounded_for(
        BOUND,
        Root::new().run_local(taskward::task(|scope: Scope| async move {
            let sent = scope.spawn(async { Ok::<_, std::io::Error>(1) });
            let rc = Rc::new(2);
            let local = scope.spawn_local(async move {
                tokio::time::sleep(MS).await;
                Ok::<_, std::io::Error>(*rc)
            });
            Ok::<_, taskward::Error>(sent.await? + local.await?)
        })),
    )
    .await
    .unwrap();
    assert_eq!(value, 3);
}

/// Holds an `Rc` across `.await`s, so its body is not `Send`; spawns a
/// local child and a `Send` one on its own scope.
#[taskward::supervised(local, name = "tally-{rounds}")]
async fn tally(scope: &Scope, rounds: u32) -> Result<u32, taskward::Error> {
    let count = Rc::new(RefCell::new(0));
    for _ in 0..rounds {
        *count.borrow_mut() += 1;
        tokio::task::yield_now().await; // the Rc is held across it
    }
    let counted = Rc::clone(&count);
    let local = scope.spawn_local(async move { Ok::<_, std::io::Error>(*counted.borrow()) });
    let sent = scope.spawn(async { Ok::<_, std::io::Error>(1) });
    let (local, sent) = (local.await?, sent.await?);
    assert_eq!(local, rounds);
    Ok(*count.borrow() + sent)
}

#[tokio::test]
async fn a_supervised_local_task_holds_an_rc_across_awaits_and_has_its_own_scope() {
    let (value, path) = bounded_for(
        BOUND,
        Root::new().run_local(taskward::task(|scope: Scope| async move {
            let child = scope.spawn_local(tally(3));
            let path = child.path().to_owned();
            Ok::<_, taskward::Error>((child.await?, path))
        })),
    )
    .await
    .unwrap();
    assert_eq!(value, 4);
    assert_eq!(path, "task/tally-3");
}

/// Names neither its scope nor its token: its body does not take the
/// scope, which a local task is handed all the same, and drops unused.
#[taskward::supervised(local)]
async fn counts_locally(rounds: u32) -> Result<u32, std::io::Error> {
    let count = Rc::new(RefCell::new(0));
    for _ in 0..rounds {
        *count.borrow_mut() += 1;
        tokio::task::yield_now().await; // the Rc is held across it
    }
    let counted = *count.borrow();
    Ok(counted)
}

#[tokio::test]
async fn a_supervised_local_task_that_names_no_scope_runs() {
    let value = bounded_for(
        BOUND,
        Root::new().run_local(taskward::task(|scope: Scope| async move {
            let first = scope.spawn_local(counts_locally(2)).await?;
            let second = scope.spawn_local(counts_locally(3)).await?;
            Ok::<_, taskward::Error>(first + second)
        })),
    )
    .await
    .unwrap();
    assert_eq!(value, 5);
}

#[taskward::supervised(local, policy = supervise)]
async fn fails_locally(scope: &Scope) -> Result<(), std::io::Error> {
    let rc = Rc::new(());
    scope.spawn(async { Err::<(), _>(std::io::Error::other("child trouble")) });
    tokio::task::yield_now().await;
    let _rc = rc;
    Err(std::io::Error::other("local trouble"))
}

#[tokio::test]
async fn a_supervised_local_task_fails_and_is_outside_a_local_set_refused() {
    let err = bounded_for(
        BOUND,
        Root::new().run_local(taskward::task(|scope: Scope| async move {
            scope.spawn_local(fails_locally()).await
        })),
    )
    .await
    .unwrap_err();
    // Its own failure, and its child's (under `supervise`, unclaimed),
    // which escalated with it: the local task has a scope of its own.
    let mut failures: Vec<String> = std::iter::once(&err)
        .chain(err.related())
        .map(ToString::to_string)
        .collect();
    failures.sort();
    assert_eq!(
        failures,
        [
            "task `task/fails_locally#0/task#0` failed: child trouble",
            "task `task/fails_locally#0` failed: local trouble"
        ]
    );

    // Outside a `LocalSet` taskward knows of: a typed error, not a panic.
    let err = bounded_for(
        BOUND,
        taskward::run(taskward::task(|scope: Scope| async move {
            scope.spawn_local(fails_locally()).await
        })),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NoRuntime);
}
