//! Plain futures and `taskward::task` closures are tasks too.

use std::time::Duration;

use taskward::{Error, ErrorKind, Scope, Task};

#[tokio::test(start_paused = true)]
async fn async_blocks_returning_result_or_unit_can_be_spawned() {
    let total = taskward::run(taskward::task(|scope: Scope| async move {
        let unit = scope.spawn(async { tokio::time::sleep(Duration::from_millis(5)).await });
        let value = scope.spawn(async { Ok::<_, std::io::Error>(41) });
        unit.await?;
        Ok::<_, Error>(value.await? + 1)
    }))
    .await
    .unwrap();
    assert_eq!(total, 42);
}

#[tokio::test(start_paused = true)]
async fn a_plain_future_can_be_the_root() {
    assert_eq!(
        taskward::run(async { Ok::<_, std::io::Error>("root") }).await.unwrap(),
        "root"
    );
    taskward::run(async {}).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn named_plain_futures_show_their_name_in_paths() {
    let err = taskward::run(
        taskward::task(|scope: Scope| async move {
            scope.spawn(async { Ok::<(), std::io::Error>(()) }.named("fetch"));
            scope.spawn(async { Err::<(), _>(std::io::Error::other("timeout")) }.named("fetch"));
        })
        .named("crawler"),
    )
    .await
    .unwrap_err();
    assert_eq!(err.task(), "crawler/fetch#1");
    assert_eq!(err.kind(), ErrorKind::Failed);
}

#[tokio::test(start_paused = true)]
async fn boxed_errors_and_custom_error_types_are_accepted() {
    let err = taskward::run(async { Err::<(), taskward::BoxError>("plain message".into()) })
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "task `task` failed: plain message");
}
