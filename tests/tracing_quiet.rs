//! With a subscriber that takes warnings and errors only, no task gets a
//! span, so none keeps its path: a task's own failure is still told from
//! a failure it passes on.

#![cfg(feature = "tracing")]

#[path = "common/recorder.rs"]
mod recorder;

use std::sync::Arc;

use recorder::Recorder;
use taskward::{Error, Scope, Task};
use tracing::Level;

// Regression: a failing task told its own failure from one passed on by
// comparing the failure's path with the one it keeps; a child that keeps
// no path (built for the failure alone, for speed) then sent no warning.
#[tokio::test(flavor = "current_thread")]
async fn without_spans_a_failure_warns_once_where_it_began() {
    let recorder = Arc::new(Recorder::up_to(Level::WARN));
    let _guard = tracing::subscriber::set_default(Arc::clone(&recorder));

    let err = taskward::run(
        taskward::task(|scope: Scope| async move {
            scope
                .spawn(async { Err::<(), _>(std::io::Error::other("disk full")) })
                .await?;
            Ok::<_, Error>(())
        })
        .named("app"),
    )
    .await
    .unwrap_err();
    assert_eq!(err.task(), "app/task#0");

    assert!(recorder.spans().is_empty(), "{:?}", recorder.spans());
    let warned: Vec<_> = recorder
        .events()
        .into_iter()
        .filter(|event| event.message() == "task failed")
        .map(|event| (event.level, event.field("error").map(str::to_owned)))
        .collect();
    assert_eq!(
        warned,
        [(Level::WARN, Some("task `app/task#0` failed: disk full".to_owned()))]
    );
}
