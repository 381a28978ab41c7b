//! Misusing the runtime gives a typed error, never a panic, a hang or a lost
//! error.

use std::time::Duration;

use taskward::{Error, ErrorKind, Scope};

#[test]
fn run_outside_a_tokio_runtime_is_a_typed_error() {
    // Any executor other than tokio: a minimal one that polls once.
    let future = std::pin::pin!(taskward::run(async { Ok::<_, std::io::Error>(()) }));
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    match future.poll(&mut cx) {
        std::task::Poll::Ready(Err(err)) => {
            assert_eq!(err.kind(), ErrorKind::NoRuntime);
            assert!(err.to_string().contains("outside a tokio runtime"), "{err}");
        }
        other => panic!("expected a NoRuntime error, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn spawning_on_a_finished_scope_reports_scope_closed() {
    let kept: Scope = taskward::run(taskward::task(
        |scope: Scope| async move { Ok::<_, Error>(scope.clone()) },
    ))
    .await
    .unwrap();
    let child = kept.spawn(async { Ok::<_, std::io::Error>(1) });
    let err = child.await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ScopeClosed);
    assert!(err.to_string().contains("has already finished"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_child_handle_outliving_its_scope_still_gives_its_result() {
    let child = taskward::run(taskward::task(|scope: Scope| async move {
        let child = scope.spawn(async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            Ok::<_, std::io::Error>(7)
        });
        Ok::<_, Error>(child)
    }))
    .await
    .unwrap();
    assert!(child.is_finished());
    assert_eq!(child.await.unwrap(), 7);
}

#[tokio::test(start_paused = true)]
async fn polling_a_child_again_after_its_result_is_a_typed_error() {
    taskward::run(taskward::task(|scope: Scope| async move {
        let mut child = scope.spawn(async { Ok::<_, std::io::Error>(1) });
        assert_eq!((&mut child).await.unwrap(), 1);
        let err = (&mut child).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyTaken);
    }))
    .await
    .unwrap();
}
