//! A subscriber installed while a tree runs: the tasks spawned after it, from
//! a later poll of their parent's body, run in spans. The runtime reads
//! tracing's level once per poll of a spawning body, not at every spawn.
//!
//! A test binary of its own: tracing's level is global, so a subscriber of
//! another test running meanwhile would give the first child a span too.

#![cfg(feature = "tracing")]

#[path = "common/recorder.rs"]
mod recorder;

use std::convert::Infallible;
use std::sync::Arc;

use recorder::Recorder;
use taskward::{Error, Scope, Task};
use tokio::sync::oneshot;

#[tokio::test(flavor = "current_thread")]
async fn a_subscriber_installed_while_a_tree_runs_sees_the_tasks_spawned_after_it() {
    let recorder = Arc::new(Recorder::default());
    let (spawned_tx, spawned_rx) = oneshot::channel();
    let (installed_tx, installed_rx) = oneshot::channel::<()>();

    // On the current-thread runtime, the tree runs on this thread, where the
    // subscriber is installed below.
    let tree = tokio::spawn(taskward::run(
        taskward::task(|scope: Scope| async move {
            // Unnamed: a named task keeps its name apart, and with it its
            // span whatever the level said at its spawn.
            scope.spawn(async { Ok::<_, Infallible>(()) }).await?;
            let _ = spawned_tx.send(());
            let _ = installed_rx.await;
            scope.spawn(async { Ok::<_, Infallible>(()) }).await?;
            Ok::<_, Error>(())
        })
        .named("app"),
    ));
    spawned_rx.await.unwrap();
    let _guard = tracing::subscriber::set_default(Arc::clone(&recorder));
    installed_tx.send(()).unwrap();
    tree.await.unwrap().unwrap();

    let task_paths = recorder.task_paths();
    assert_eq!(task_paths, [Some("app/task#1".to_owned())]);
}
