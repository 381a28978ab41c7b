//! How errors read: `Display` is one line, `{:#}` the full report (cause
//! chain and related failures), `Debug` the fields.

use std::time::Duration;

use taskward::{Error, Scope, Task};

#[derive(Debug)]
struct Outer(std::io::Error);

impl std::fmt::Display for Outer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("could not save the report")
    }
}

impl std::error::Error for Outer {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

async fn failing_tree() -> Error {
    taskward::run(
        taskward::task(|scope: Scope| async move {
            scope.spawn(async { Err::<(), _>(Outer(std::io::Error::other("disk full"))) }.named("writer"));
            // These ignore the cancellation and fail later.
            scope.spawn(
                async {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    Err::<(), _>(std::io::Error::other("connection reset"))
                }
                .named("uploader"),
            );
            scope.spawn(
                async {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    if std::hint::black_box(true) {
                        panic!("index out of range");
                    }
                }
                .named("indexer"),
            );
        })
        .named("job"),
    )
    .await
    .unwrap_err()
}

#[tokio::test(start_paused = true)]
async fn display_is_one_line_naming_the_task_and_the_cause() {
    let err = failing_tree().await;
    assert_eq!(err.to_string(), "task `job/writer#0` failed: could not save the report");
}

#[tokio::test(start_paused = true)]
async fn alternate_display_is_the_full_report() {
    let err = failing_tree().await;
    assert_eq!(
        format!("{err:#}"),
        "task `job/writer#0` failed: could not save the report\n  caused by: disk full\n  2 related failures:\n    \
         - task `job/uploader#0` failed: connection reset\n    - task `job/indexer#0` panicked: index out of range"
    );
}

#[tokio::test(start_paused = true)]
async fn debug_shows_kind_task_cause_and_related() {
    let err = failing_tree().await;
    let debug = format!("{err:?}");
    assert!(
        debug.starts_with("Error { kind: Failed, task: \"job/writer#0\", cause: Outer("),
        "{debug}"
    );
    assert!(
        debug.contains("related: [Error { kind: Failed, task: \"job/uploader#0\""),
        "{debug}"
    );
    assert!(
        debug.contains("kind: Panicked, task: \"job/indexer#0\", message: \"index out of range\""),
        "{debug}"
    );
}
