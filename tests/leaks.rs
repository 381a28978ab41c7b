//! Semantic 6: dropping a running task's future cancels its token and aborts
//! its whole subtree; nothing outlives `run`.

mod common;

use std::time::Duration;

use common::{Gauge, alive_tasks, settle_gauge, settle_tasks};
use taskward::{Scope, supervised};

/// A subtree of tasks that never finish on their own and ignore their token.
#[supervised]
async fn stubborn(scope: &Scope, live: Gauge, depth: u32) {
    let _guard = live.enter();
    if depth > 0 {
        for _ in 0..3 {
            scope.spawn(stubborn(live.clone(), depth - 1));
        }
    }
    std::future::pending::<()>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_run_in_a_timeout_aborts_the_whole_tree() {
    let live = Gauge::default();
    let before = alive_tasks();

    let outcome = tokio::time::timeout(Duration::from_millis(100), taskward::run(stubborn(live.clone(), 3))).await;
    assert!(outcome.is_err(), "the tree never finishes by itself");

    // 1 + 3 + 9 + 27 guards were created; none survives.
    settle_gauge(&live).await;
    settle_tasks(before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_a_select_aborts_the_subtree_and_cancels_the_token() {
    let live = Gauge::default();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let tree = taskward::run(taskward::task({
        let live = live.clone();
        move |scope: Scope| async move {
            let _ = tx.send(scope.token().clone());
            scope.spawn(stubborn(live.clone(), 2));
            std::future::pending::<()>().await;
        }
    }));
    tokio::select! {
        _ = tree => unreachable!("the tree never finishes"),
        () = tokio::time::sleep(Duration::from_millis(50)) => {}
    }
    let token = rx.await.unwrap();
    assert!(token.is_cancelled());
    settle_gauge(&live).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_child_handle_reports_cancelled() {
    // A handle moved out of the tree (here into a raw tokio task) sees
    // `Cancelled` when the tree is dropped, instead of waiting forever.
    let (tx, rx) = tokio::sync::oneshot::channel();
    let tree = taskward::run(taskward::task(move |scope: Scope| async move {
        let child = scope.spawn(std::future::pending::<()>());
        let _ = tx.send(child);
        std::future::pending::<()>().await;
    }));
    let _ = tokio::time::timeout(Duration::from_millis(20), tree).await;
    let child = rx.await.unwrap();
    let err = tokio::time::timeout(Duration::from_secs(5), child)
        .await
        .unwrap()
        .unwrap_err();
    assert!(err.is_cancelled());
    assert_eq!(err.task(), "task/task#0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_tasks_leave_no_tokio_task_alive() {
    #[supervised]
    async fn fan(scope: &Scope, width: usize, depth: u32) {
        if depth > 0 {
            for _ in 0..width {
                scope.spawn(fan(width, depth - 1));
            }
        }
    }
    let before = alive_tasks();
    // 1 + 141 + 141^2 = 20_023 tasks.
    taskward::run(fan(141, 2)).await.unwrap();
    // `run` returns after the last child task's body finished; tokio may
    // take a moment to release a task after its future completed.
    settle_tasks(before).await;
}
