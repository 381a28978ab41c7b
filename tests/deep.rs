//! A task's cost does not grow with the depth of its tree: chains of
//! 100,000 tasks, each spawning the next, run, fail, are cancelled, are
//! dropped and are shown in a snapshot without overflowing a stack and
//! without work or memory quadratic in their depth. (Their speed against
//! raw tokio is measured by the `scale` benchmark, not here.)

mod common;

use std::sync::Arc;

use common::{alive_tasks, settle_tasks};
use taskward::{Error, Root, Scope, supervised};
use tokio::sync::Notify;

const DEPTH: u32 = 100_000;

#[supervised(name = "link")]
async fn chain(scope: &Scope, depth: u32) -> Result<u32, Error> {
    if depth == 0 {
        return Ok(0);
    }
    Ok(scope.spawn(chain(depth - 1)).await? + 1)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap()
}

#[test]
fn a_chain_of_100_000_tasks_completes() {
    let value = runtime().block_on(taskward::run(chain(DEPTH))).unwrap();
    assert_eq!(value, DEPTH);
}

#[supervised(name = "link")]
async fn failing_chain(scope: &Scope, depth: u32) -> Result<(), taskward::BoxError> {
    if depth == 0 {
        return Err(std::io::Error::other("bottom").into());
    }
    scope.spawn(failing_chain(depth - 1)).await?;
    Ok(())
}

/// The path of the leaf of a chain of `links` below the root `link`.
fn leaf_path(links: u32) -> String {
    let mut path = String::from("link");
    for _ in 0..links {
        path.push_str("/link#0");
    }
    path
}

#[test]
fn a_deep_failure_names_the_leaf_once() {
    let err = runtime().block_on(taskward::run(failing_chain(DEPTH))).unwrap_err();
    let leaf = leaf_path(DEPTH);
    assert_eq!(err.task(), leaf);
    let mut report = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        report.push('\n');
        report.push_str(&cause.to_string());
        source = cause.source();
    }
    assert_eq!(
        report.matches(leaf.as_str()).count(),
        1,
        "the leaf's path is not named once"
    );
    assert!(report.len() < 2 * leaf.len(), "a report of {} bytes", report.len());
}

#[supervised(name = "link")]
async fn waiting_chain(scope: &Scope, depth: u32, bottom: Arc<Notify>) {
    if depth == 0 {
        bottom.notify_one();
        scope.cancelled().await;
        return;
    }
    scope.spawn(waiting_chain(depth - 1, bottom));
}

#[test]
fn a_chain_of_100_000_tasks_is_cancelled_and_snapshot() {
    runtime().block_on(async {
        let before = alive_tasks();
        let root = Root::new();
        let stop = root.token();
        let monitor = root.monitor();
        let bottom = Arc::new(Notify::new());
        let tree = tokio::spawn(root.run(waiting_chain(DEPTH, bottom.clone())));
        bottom.notified().await;

        let snapshot = monitor.snapshot();
        assert_eq!(snapshot.len(), DEPTH as usize + 1);
        let leaf = snapshot.tasks().last().unwrap();
        assert_eq!(leaf.depth(), DEPTH as usize);
        assert_eq!(leaf.path(), leaf_path(DEPTH));
        // One line per task, each of a bounded width: the indentation of
        // deep tasks is elided, not 200,000 spaces wide.
        let shown = snapshot.to_string();
        assert_eq!(shown.lines().count(), DEPTH as usize + 1);
        assert!(shown.lines().all(|line| line.len() < 200), "a line too wide");

        stop.cancel();
        tree.await.unwrap().unwrap();
        settle_tasks(before).await;
    });
}

#[test]
fn a_chain_of_100_000_tasks_is_dropped_in_the_middle_of_its_work() {
    runtime().block_on(async {
        let before = alive_tasks();
        let bottom = Arc::new(Notify::new());
        let tree = tokio::spawn(taskward::run(waiting_chain(DEPTH, bottom.clone())));
        bottom.notified().await;
        tree.abort();
        assert!(tree.await.unwrap_err().is_cancelled());
        settle_tasks(before).await;
    });
}
