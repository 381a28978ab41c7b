//! Semantic 5: panics become `ErrorKind::Panicked` errors with the task's
//! path and message; they never take down a sibling.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

mod common;

use common::bounded;
use taskward::{Error, ErrorKind, Policy, Scope, Task, supervised};

#[supervised]
async fn explode(id: u32) {
    tokio::time::sleep(Duration::from_millis(1)).await;
    panic!("worker {id} exploded");
}

#[tokio::test(start_paused = true)]
async fn a_panicking_root_body_is_an_error() {
    #[supervised(name = "main-task")]
    async fn boom() -> Result<(), std::io::Error> {
        let items: Vec<u32> = Vec::new();
        let _ = items[3];
        Ok(())
    }
    let err = taskward::run(boom()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Panicked);
    assert!(err.is_panic());
    assert_eq!(err.task(), "main-task");
    assert!(err.message().unwrap().contains("index out of bounds"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_child_panic_carries_its_path_and_message() {
    let err = taskward::run(
        taskward::task(|scope: Scope| async move {
            scope.spawn(explode(3));
        })
        .named("pool"),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Panicked);
    assert_eq!(err.task(), "pool/explode#0");
    assert_eq!(err.message(), Some("worker 3 exploded"));
    assert_eq!(err.to_string(), "task `pool/explode#0` panicked: worker 3 exploded");
}

#[tokio::test(start_paused = true)]
async fn a_panic_does_not_touch_siblings_under_supervise() {
    let finished = Arc::new(AtomicUsize::new(0));
    let result = taskward::run(
        taskward::task({
            let finished = finished.clone();
            |scope: Scope| async move {
                scope.spawn(explode(1));
                for _ in 0..3 {
                    let finished = finished.clone();
                    scope.spawn(async move {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        finished.fetch_add(1, Ordering::SeqCst);
                    });
                }
                let err = scope.next_error().await.unwrap();
                assert!(err.is_panic());
                Ok::<_, Error>(())
            }
        })
        .policy(Policy::Supervise),
    )
    .await;
    assert!(result.is_ok());
    assert_eq!(finished.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_is_delivered_to_an_awaiting_handle() {
    let err = taskward::run(taskward::task(|scope: Scope| async move {
        let child = scope.spawn(taskward::task(|_scope: Scope| async move {
            if std::hint::black_box(true) {
                panic!("{}", String::from("owned message"));
            }
        }));
        Ok::<_, Error>(child.await.unwrap_err())
    }))
    .await
    .unwrap();
    assert_eq!(err.kind(), ErrorKind::Panicked);
    assert_eq!(err.message(), Some("owned message"));
}

#[tokio::test(start_paused = true)]
async fn a_task_closure_panicking_at_spawn_fails_the_parent_without_hanging() {
    // Regression: the child was counted before its closure ran, so a panic
    // there left the parent's join waiting forever for a task that never
    // started.
    let err = bounded(taskward::run(taskward::task(|scope: Scope| async move {
        scope.spawn(taskward::task(|_scope: Scope| -> std::future::Ready<()> {
            panic!("cannot even start");
        }));
    })))
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Panicked);
    assert_eq!(err.task(), "task");
    assert_eq!(err.message(), Some("cannot even start"));
}
