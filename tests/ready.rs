//! Readiness: `scope.start(task)` returns the value the child sends with
//! `Ready::send`, claims a failure before readiness, and reports a task
//! that never became ready.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::bounded;
use taskward::{CancellationToken, ErrorKind, Policy, Ready, Scope, Task, supervised};
use tokio::sync::oneshot;

/// Ready with `port`, then serves until cancelled; reports that it went on
/// after readiness through `served`.
#[supervised]
async fn server(
    token: CancellationToken,
    ready: Ready<u16>,
    port: u16,
    served: Arc<AtomicBool>,
) -> std::io::Result<()> {
    ready.send(port);
    token.cancelled().await;
    served.store(true, Ordering::SeqCst);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn start_returns_the_value_sent_and_the_child_keeps_running() {
    let served = Arc::new(AtomicBool::new(false));
    let flag = served.clone();
    let port = bounded(taskward::run(taskward::task(|scope: Scope| async move {
        let port: u16 = scope.start(server(8080, flag.clone())).await?;
        assert!(
            !flag.load(Ordering::SeqCst),
            "start returned while the child still serves"
        );
        scope.cancel();
        Ok::<_, taskward::Error>(port)
    })))
    .await
    .unwrap();
    assert_eq!(port, 8080);
    assert!(served.load(Ordering::SeqCst), "the scope joined the started child");
}

/// The ready parameter may be anywhere, and its type written with a path.
#[supervised]
async fn anywhere(
    port: u16,
    ready: taskward::Ready<(u16, &'static str)>,
    scope: &Scope,
) -> Result<(), taskward::Error> {
    ready.send((port, "up"));
    drop(scope.spawn(async { Ok::<_, std::io::Error>(()) }));
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn the_ready_parameter_is_recognised_at_any_position() {
    let value = bounded(taskward::run(taskward::task(|scope: Scope| async move {
        scope.start::<(u16, &str), _>(anywhere(7)).await
    })))
    .await
    .unwrap();
    assert_eq!(value, (7, "up"));
}

#[supervised]
async fn fails_early(ready: Ready<u16>) -> std::io::Result<()> {
    drop(ready);
    Err(std::io::Error::other("cannot bind"))
}

#[tokio::test(start_paused = true)]
async fn start_claims_a_failure_before_readiness() {
    let result = bounded(taskward::run(taskward::task(|scope: Scope| async move {
        let err = scope.start::<u16, _>(fails_early()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Failed);
        assert_eq!(err.to_string(), "task `task/fails_early#0` failed: cannot bind");
        Ok::<_, taskward::Error>("handled here")
    })))
    .await;
    // Claimed by `start`: it did not escalate to the scope.
    assert_eq!(result.unwrap(), "handled here");
}

#[supervised]
async fn fails_early_and_holds_ready(scope: &Scope, ready: Ready<u16>) -> std::io::Result<()> {
    let _ready = ready; // dropped as the body returns its error
    // A child that takes a while to stop: the failure reaches `start`
    // only once it is joined, well after the `Ready` was dropped.
    drop(scope.spawn(tokio::time::sleep(Duration::from_secs(1))));
    Err(std::io::Error::other("cannot bind"))
}

#[tokio::test(start_paused = true)]
async fn a_failure_that_drops_ready_on_its_way_out_is_still_claimed() {
    // Regression guard: the `Ready` is dropped while the body returns its
    // error; `start` must see the failure, not "dropped its Ready".
    let result = bounded(taskward::run(
        taskward::task(|scope: Scope| async move {
            let err = scope.start::<u16, _>(fails_early_and_holds_ready()).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Failed);
            assert!(scope.next_error().await.is_none());
            Ok::<_, taskward::Error>(())
        })
        .policy(Policy::Supervise),
    ))
    .await;
    result.unwrap();
}

#[supervised]
async fn panics_early(_ready: Ready<u16>) {
    panic!("config missing");
}

#[tokio::test(start_paused = true)]
async fn start_claims_a_panic_before_readiness() {
    let result = bounded(taskward::run(taskward::task(|scope: Scope| async move {
        let err = scope.start::<u16, _>(panics_early()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Panicked);
        assert_eq!(err.message(), Some("config missing"));
    })))
    .await;
    result.unwrap();
}

#[supervised]
async fn ends_without_sending(_ready: Ready<u16>) {}

#[tokio::test(start_paused = true)]
async fn a_task_that_ends_without_sending_never_became_ready() {
    let err = bounded(taskward::run(taskward::task(|scope: Scope| async move {
        scope.start::<u16, _>(ends_without_sending()).await
    })))
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotReady);
    assert_eq!(err.task(), "task/ends_without_sending#0");
    assert_eq!(
        err.to_string(),
        "task `task/ends_without_sending#0` never became ready: it ended without calling `Ready::send`"
    );
}

#[supervised]
async fn drops_ready_and_goes_on(ready: Ready<u16>, go_on: oneshot::Receiver<()>, went_on: Arc<AtomicBool>) {
    drop(ready);
    let _ = go_on.await;
    went_on.store(true, Ordering::SeqCst);
}

#[tokio::test(start_paused = true)]
async fn dropping_ready_fails_start_at_once_and_the_child_goes_on() {
    let went_on = Arc::new(AtomicBool::new(false));
    let flag = went_on.clone();
    bounded(taskward::run(taskward::task(|scope: Scope| async move {
        let (go_on, wait) = oneshot::channel();
        let err = scope
            .start::<u16, _>(drops_ready_and_goes_on(wait, flag.clone()))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotReady);
        assert!(err.to_string().contains("dropped its `Ready` without sending"), "{err}");
        assert!(!flag.load(Ordering::SeqCst), "start waited for the child to end");
        go_on.send(()).unwrap();
    })))
    .await
    .unwrap();
    assert!(went_on.load(Ordering::SeqCst));
}

#[supervised]
async fn hands_ready_to_a_helper(token: CancellationToken, ready: Ready<u16>) {
    // The `Ready` moves to a plain tokio task, which drops it unsent while
    // this body waits (is not being polled).
    drop(tokio::spawn(async move { drop(ready) }));
    token.cancelled().await;
}

#[tokio::test(start_paused = true)]
async fn a_ready_dropped_outside_the_task_fails_start_too() {
    let err = bounded(taskward::run(taskward::task(|scope: Scope| async move {
        let err = scope.start::<u16, _>(hands_ready_to_a_helper()).await.unwrap_err();
        scope.cancel();
        Ok::<_, std::io::Error>(err)
    })))
    .await
    .unwrap();
    assert_eq!(err.kind(), ErrorKind::NotReady);
    assert!(err.to_string().contains("dropped its `Ready` without sending"), "{err}");
}

#[supervised]
async fn fails_after_ready(ready: Ready<u16>) -> std::io::Result<()> {
    ready.send(1);
    tokio::time::sleep(Duration::from_millis(10)).await;
    Err(std::io::Error::other("crashed later"))
}

#[tokio::test(start_paused = true)]
async fn a_failure_after_readiness_is_not_claimed_by_start() {
    let err = bounded(taskward::run(taskward::task(|scope: Scope| async move {
        let one: u16 = scope.start(fails_after_ready()).await?;
        assert_eq!(one, 1);
        Ok::<_, taskward::Error>(())
    })))
    .await
    .unwrap_err();
    assert_eq!(err.to_string(), "task `task/fails_after_ready#0` failed: crashed later");
}

#[supervised]
async fn sends_then_fails_at_once(ready: Ready<u16>) -> std::io::Result<()> {
    ready.send(1);
    Err(std::io::Error::other("crashed right after"))
}

#[tokio::test(start_paused = true)]
async fn a_value_sent_wins_over_a_failure_that_follows_it() {
    let err = bounded(taskward::run(
        taskward::task(|scope: Scope| async move {
            let one: u16 = scope.start(sends_then_fails_at_once()).await?;
            assert_eq!(one, 1);
            let escalated = scope.next_error().await.expect("the failure reached the scope");
            Ok::<_, taskward::Error>(escalated)
        })
        .policy(Policy::Supervise),
    ))
    .await
    .unwrap();
    assert_eq!(
        err.to_string(),
        "task `task/sends_then_fails_at_once#0` failed: crashed right after"
    );
}

#[tokio::test(start_paused = true)]
async fn a_value_of_another_type_sent_through_the_scope_fails_start() {
    // The type of `Scope::ready` is not checked against the task's (the
    // typed `Ready` is; a mismatch there is a compile error, see
    // tests-build/tests/ui/fail/start-mismatched-type.rs).
    let err = bounded(taskward::run(taskward::task(|scope: Scope| async move {
        scope
            .start(taskward::task_with_ready(|scope, ready: Ready<String>| async move {
                let _unsent = ready;
                scope.ready::<u16>().send(1);
            }))
            .await
    })))
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotReady);
    assert!(err.to_string().contains("sent a `u16`"), "{err}");
    assert!(err.to_string().contains("expected a `alloc::string::String`"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_task_with_ready_may_be_spawned_and_sending_does_nothing() {
    let served = Arc::new(AtomicBool::new(false));
    let flag = served.clone();
    bounded(taskward::run(taskward::task(|scope: Scope| async move {
        drop(scope.spawn(server(1, flag)));
        tokio::task::yield_now().await;
        scope.cancel();
    })))
    .await
    .unwrap();
    assert!(served.load(Ordering::SeqCst));
}

#[tokio::test(start_paused = true)]
async fn a_task_that_never_becomes_ready_is_bounded_by_its_timeout() {
    #[supervised]
    async fn never_ready(token: CancellationToken, _ready: Ready<u16>) {
        token.cancelled().await;
    }
    let err = bounded(taskward::run(taskward::task(|scope: Scope| async move {
        scope
            .start::<u16, _>(never_ready().timeout(Duration::from_secs(5)))
            .await
    })))
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
}

#[tokio::test(start_paused = true)]
async fn a_closure_task_gets_its_ready_as_an_argument() {
    let value = bounded(taskward::run(taskward::task(|scope: Scope| async move {
        scope
            .start(taskward::task_with_ready(|scope, ready| async move {
                ready.send("ready");
                scope.cancelled().await;
            }))
            .await
            .inspect(|_| scope.cancel())
    })))
    .await;
    assert_eq!(value.unwrap(), "ready");
}

#[tokio::test(start_paused = true)]
async fn a_closure_task_that_drops_its_ready_unsent_fails_start() {
    let err = bounded(taskward::run(taskward::task(|scope: Scope| async move {
        scope
            .start(taskward::task_with_ready(|scope, ready: Ready<u16>| {
                drop(ready);
                async move { scope.cancelled().await }
            }))
            .await
            .inspect_err(|_| scope.cancel())
    })))
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotReady);
    assert!(err.to_string().contains("dropped its `Ready` without sending"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn start_infers_the_value_type_through_modifiers() {
    let value = bounded(taskward::run(taskward::task(|scope: Scope| async move {
        let port = scope
            .start(
                server(7, Arc::default())
                    .named("api")
                    .timeout(Duration::from_secs(5))
                    .policy(Policy::Supervise),
            )
            .await?;
        scope.cancel();
        Ok::<_, taskward::Error>(port)
    })))
    .await;
    assert_eq!(value.unwrap(), 7u16);
}

#[tokio::test(start_paused = true)]
async fn start_on_a_finished_scope_reports_scope_closed() {
    let (tx, rx) = oneshot::channel();
    bounded(taskward::run(taskward::task(|scope: Scope| async move {
        let _ = tx.send(scope.clone());
    })))
    .await
    .unwrap();
    let scope = rx.await.unwrap();
    let err = scope.start::<u16, _>(server(1, Arc::default())).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ScopeClosed);
}

#[tokio::test(start_paused = true)]
async fn a_started_child_waits_in_line_under_a_limit() {
    let value = bounded(taskward::run(taskward::task(|scope: Scope| async move {
        scope.set_limit(1);
        let busy = scope.spawn(async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            Ok::<_, std::io::Error>(())
        });
        let port: u16 = scope.start(server(9, Arc::default())).await?;
        assert!(busy.is_finished(), "the started child waited for the slot");
        scope.cancel();
        Ok::<_, taskward::Error>(port)
    })))
    .await;
    assert_eq!(value.unwrap(), 9);
}
