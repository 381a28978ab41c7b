//! Semantic 1: a task's result is delivered only after every descendant has
//! finished.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use taskward::{Error, Scope, supervised};

#[supervised]
async fn sleeper(done: Arc<AtomicUsize>, millis: u64) {
    tokio::time::sleep(Duration::from_millis(millis)).await;
    done.fetch_add(1, Ordering::SeqCst);
}

#[supervised]
async fn middle(scope: &Scope, done: Arc<AtomicUsize>) {
    for i in 0..3 {
        scope.spawn(sleeper(done.clone(), 10 * (i + 1)));
    }
    // The body returns at once; its children still run.
    done.fetch_add(1, Ordering::SeqCst);
}

#[supervised]
async fn top(scope: &Scope, done: Arc<AtomicUsize>) {
    for _ in 0..3 {
        scope.spawn(middle(done.clone()));
    }
}

#[tokio::test(start_paused = true)]
async fn result_waits_for_every_descendant_of_a_nested_tree() {
    let done = Arc::new(AtomicUsize::new(0));
    taskward::run(top(done.clone())).await.unwrap();
    // 3 middles + 9 sleepers, all finished before `run` returned.
    assert_eq!(done.load(Ordering::SeqCst), 12);
}

#[tokio::test(start_paused = true)]
async fn child_handle_resolves_after_grandchildren() {
    let done = Arc::new(AtomicUsize::new(0));
    let seen = taskward::run(taskward::task({
        let done = done.clone();
        |scope: Scope| async move {
            scope.spawn(middle(done.clone())).await?;
            Ok::<_, Error>(done.load(Ordering::SeqCst))
        }
    }))
    .await
    .unwrap();
    assert_eq!(seen, 4);
}

#[tokio::test(start_paused = true)]
async fn early_return_with_error_still_joins_children() {
    let done = Arc::new(AtomicUsize::new(0));
    let err = taskward::run(taskward::task({
        let done = done.clone();
        |scope: Scope| async move {
            scope.spawn(sleeper(done, 50));
            Err::<(), _>(std::io::Error::other("early"))
        }
    }))
    .await
    .unwrap_err();
    assert_eq!(err.to_string(), "task `task` failed: early");
    // The failing body cancels its children, but cancellation is
    // cooperative: the sleeper ignores it and is still joined.
    assert_eq!(done.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_holds_on_a_multi_threaded_runtime() {
    let done = Arc::new(AtomicUsize::new(0));
    for _ in 0..20 {
        done.store(0, Ordering::SeqCst);
        taskward::run(top(done.clone())).await.unwrap();
        assert_eq!(done.load(Ordering::SeqCst), 12);
    }
}
