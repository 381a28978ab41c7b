//! Semantic 2: cancellation reaches a scope's body and every descendant; a
//! finished task's token is cancelled too.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use taskward::{CancellationToken, Error, Scope, Task, supervised};

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

// A task that ends after its parent's token was cancelled does not cancel
// its own again (its token, a child of the parent's, is cancelled already).
// A shielded task's token is no child of its parent's: it must still be
// cancelled as the task ends. Skipping it for a cancelled parent left the
// token of a finished shielded task uncancelled.
#[tokio::test(start_paused = true)]
async fn a_shielded_child_ending_after_its_parent_was_cancelled_cancels_its_token() {
    let (token_tx, token_rx) = tokio::sync::oneshot::channel();
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    taskward::run(taskward::task(|scope: Scope| async move {
        let child = scope.spawn(
            taskward::task(move |scope: Scope| async move {
                let _ = token_tx.send(scope.token().clone());
                go_rx.await.expect("the parent sends go");
                Ok::<_, Error>(())
            })
            .shielded(),
        );
        let token = token_rx.await.expect("the child sends its token");
        scope.cancel();
        assert!(!token.is_cancelled(), "a shielded token is no child of its parent's");
        go_tx.send(()).expect("the child waits for go");
        child.await?;
        assert!(
            token.is_cancelled(),
            "a finished task's token is cancelled, shielded or not"
        );
        Ok::<_, Error>(())
    }))
    .await
    .unwrap();
}

// The runtime makes a task's token on first use. These pin what a token made
// late must be: cancelled if an ancestor was cancelled before, or if the task
// has already finished.

#[tokio::test(start_paused = true)]
async fn a_token_first_asked_for_after_an_ancestor_was_cancelled_is_cancelled() {
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    taskward::run(taskward::task(|scope: Scope| async move {
        // The middle task never looks at its token; the grandchild looks at
        // its own only after the root was cancelled.
        let middle = scope.spawn(taskward::task(|scope: Scope| async move {
            let grandchild = scope.spawn(async move {
                go_rx.await.expect("the root sends go");
                Ok::<_, Error>(())
            });
            grandchild.await?;
            let late = scope.spawn(taskward::task(|scope: Scope| async move {
                Ok::<_, Error>(scope.is_cancelled())
            }));
            late.await
        }));
        scope.cancel();
        go_tx.send(()).unwrap();
        assert!(middle.await?, "a token made after the root's cancel must be cancelled");
        Ok::<_, Error>(())
    }))
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_token_first_asked_for_after_the_task_finished_is_cancelled() {
    taskward::run(taskward::task(|scope: Scope| async move {
        let child = scope.spawn(taskward::task(|scope: Scope| async move { Ok::<_, Error>(scope) }));
        let kept = child.await?;
        // The child has finished but its parent (this body) still runs.
        assert!(!scope.is_cancelled());
        assert!(
            kept.is_cancelled(),
            "a finished task's token is cancelled, even one made late"
        );
        Ok::<_, Error>(())
    }))
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_child_failing_under_fail_fast_cancels_a_sibling_that_looks_later() {
    let (seen_tx, seen_rx) = tokio::sync::oneshot::channel();
    let err = taskward::run(taskward::task(|scope: Scope| async move {
        scope.spawn(taskward::task(|scope: Scope| async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let _ = seen_tx.send(scope.is_cancelled());
        }));
        scope.spawn(async { Err::<(), _>(std::io::Error::other("boom")) });
        Ok::<_, Error>(())
    }))
    .await
    .unwrap_err();
    assert_eq!(err.to_string(), "task `task/task#1` failed: boom");
    assert!(err.related().is_empty(), "{:?}", err.related());
    assert!(
        seen_rx.await.unwrap(),
        "the failure cancelled the scope, so the sibling's late token is cancelled"
    );
}
