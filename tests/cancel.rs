//! Semantic 2: cancellation reaches a scope's body and every descendant; a
//! finished task's token is cancelled too.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use taskward::{CancellationToken, Error, Scope, supervised};

#[supervised]
async fn wait_for_cancel(token: CancellationToken, stopped: Arc<AtomicUsize>) {
    token.cancelled().await;
    stopped.fetch_add(1, Ordering::SeqCst);
}

#[supervised]
async fn subtree(scope: &Scope, stopped: Arc<AtomicUsize>, depth: u32) {
    if depth > 0 {
        scope.spawn(subtree(stopped.clone(), depth - 1));
        scope.spawn(subtree(stopped.clone(), depth - 1));
    }
    scope.cancelled().await;
    stopped.fetch_add(1, Ordering::SeqCst);
}

#[tokio::test(start_paused = true)]
async fn cancelling_a_child_reaches_its_whole_subtree_only() {
    let stopped = Arc::new(AtomicUsize::new(0));
    let other = Arc::new(AtomicUsize::new(0));
    taskward::run(taskward::task({
        let (stopped, other) = (stopped.clone(), other.clone());
        |scope: Scope| async move {
            let sibling = scope.spawn(wait_for_cancel(other.clone()));
            let tree = scope.spawn(subtree(stopped.clone(), 3));
            tokio::time::sleep(Duration::from_millis(10)).await;
            tree.cancel();
            tree.await?;
            // 1 + 2 + 4 + 8 tasks in the cancelled subtree.
            assert_eq!(stopped.load(Ordering::SeqCst), 15);
            assert_eq!(other.load(Ordering::SeqCst), 0, "the sibling was not cancelled");
            sibling.cancel();
            sibling.await?;
            Ok::<_, Error>(())
        }
    }))
    .await
    .unwrap();
    assert_eq!(other.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn scope_cancel_reaches_body_and_children() {
    let stopped = Arc::new(AtomicUsize::new(0));
    taskward::run(taskward::task({
        let stopped = stopped.clone();
        |scope: Scope| async move {
            for _ in 0..5 {
                scope.spawn(wait_for_cancel(stopped.clone()));
            }
            assert!(!scope.is_cancelled());
            scope.cancel();
            assert!(scope.is_cancelled());
            scope.cancelled().await;
        }
    }))
    .await
    .unwrap();
    assert_eq!(stopped.load(Ordering::SeqCst), 5);
}

#[tokio::test(start_paused = true)]
async fn until_cancelled_gives_none_once_cancelled_and_some_otherwise() {
    taskward::run(taskward::task(|scope: Scope| async move {
        assert_eq!(scope.until_cancelled(async { 7 }).await, Some(7));
        let child = scope.spawn(taskward::task(|scope: Scope| async move {
            let slept = scope
                .until_cancelled(tokio::time::sleep(Duration::from_secs(3600)))
                .await;
            assert!(slept.is_none());
        }));
        tokio::time::sleep(Duration::from_millis(1)).await;
        child.cancel();
        child.await
    }))
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn token_is_cancelled_once_the_task_has_finished() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    taskward::run(taskward::task(|scope: Scope| async move {
        let child = scope.spawn(taskward::task(move |scope: Scope| async move {
            // Hand the token to something that outlives the task body, as a
            // blocking thread or a raw tokio task would.
            let _ = tx.send(scope.token().clone());
        }));
        child.await
    }))
    .await
    .unwrap();
    let token = rx.await.unwrap();
    assert!(token.is_cancelled());
}

#[tokio::test(start_paused = true)]
async fn token_parameter_is_the_scope_token() {
    #[supervised]
    async fn same(scope: &Scope, token: CancellationToken) -> Result<bool, Error> {
        scope.cancel();
        Ok(token.is_cancelled())
    }
    assert!(taskward::run(same()).await.unwrap());
}
