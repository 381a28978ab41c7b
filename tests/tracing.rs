//! With the `tracing` feature (on by default), every task runs in a `task`
//! span carrying its path, and failures and escalations are events.

#![cfg(feature = "tracing")]

#[path = "common/recorder.rs"]
mod recorder;

use std::sync::Arc;

use recorder::Recorder;
use taskward::{Scope, Task};
use tracing::Level;

#[tokio::test(flavor = "current_thread")]
async fn tasks_run_in_spans_with_their_paths_and_failures_are_events() {
    let recorder = Arc::new(Recorder::default());
    let _guard = tracing::subscriber::set_default(Arc::clone(&recorder));

    let err = taskward::run(
        taskward::task(|scope: Scope| async move {
            scope.spawn(async { Ok::<_, std::io::Error>(()) }.named("fine"));
            scope.spawn(async { Err::<(), _>(std::io::Error::other("disk full")) }.named("broken"));
        })
        .named("app")
        .policy(taskward::Policy::Supervise),
    )
    .await
    .unwrap_err();
    assert_eq!(err.task(), "app/broken#0");

    let task_paths = recorder.task_paths();
    assert_eq!(
        task_paths,
        [
            Some("app".to_owned()),
            Some("app/fine#0".to_owned()),
            Some("app/broken#0".to_owned())
        ]
    );

    let events = recorder.events();
    let started: Vec<_> = events
        .iter()
        .filter(|event| event.message() == "task started")
        .map(|event| (event.level, event.in_task().unwrap()))
        .collect();
    assert_eq!(started.len(), 3);
    assert!(started.iter().all(|(level, _)| *level == Level::DEBUG));

    let failed = events
        .iter()
        .find(|event| event.message() == "task failed")
        .expect("a warning for the failing task");
    assert_eq!(failed.level, Level::WARN);
    assert_eq!(failed.in_task().as_deref(), Some("app/broken#0"));
    assert_eq!(failed.field("error"), Some("task `app/broken#0` failed: disk full"));

    let escalated = events
        .iter()
        .find(|event| event.message() == "unhandled failure escalates")
        .expect("an error event for the escalation");
    assert_eq!(escalated.level, Level::ERROR);
    // Emitted where the failure arrives (the child's span), naming the scope
    // it escalates in.
    assert_eq!(escalated.field("scope"), Some("app"));
    assert_eq!(escalated.field("error"), Some("task `app/broken#0` failed: disk full"));
}
