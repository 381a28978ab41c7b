//! `Scope::tree`: a snapshot of the live subtree with names, nesting, states
//! and ages.

use std::time::Duration;

use taskward::{Scope, Task, TaskState, supervised};
use tokio::sync::oneshot;

#[supervised(name = "leaf")]
async fn leaf(scope: &Scope) {
    scope.cancelled().await;
}

#[supervised(name = "branch")]
async fn branch(scope: &Scope, leaves: usize) {
    for _ in 0..leaves {
        scope.spawn(leaf());
    }
    scope.cancelled().await;
}

#[tokio::test(start_paused = true)]
async fn snapshot_shows_nesting_and_custom_names_in_spawn_order() {
    taskward::run(
        taskward::task(|scope: Scope| async move {
            scope.spawn(branch(2));
            tokio::time::sleep(Duration::from_millis(5)).await;
            scope.spawn(branch(1).named("second"));
            scope.spawn(taskward::task(|scope: Scope| async move { scope.cancelled().await }).named("idle"));
            tokio::time::sleep(Duration::from_millis(5)).await;

            let tree = scope.tree();
            let lines: Vec<(usize, &str)> = tree.tasks().map(|task| (task.depth(), task.path())).collect();
            assert_eq!(
                lines,
                [
                    (0, "app"),
                    (1, "app/branch#0"),
                    (2, "app/branch#0/leaf#0"),
                    (2, "app/branch#0/leaf#1"),
                    (1, "app/second#0"),
                    (2, "app/second#0/leaf#0"),
                    (1, "app/idle#0"),
                ]
            );
            let first = tree.find("app/branch#0").unwrap();
            assert_eq!(first.label(), "branch#0");
            assert_eq!(first.state(), TaskState::Running);
            assert_eq!(first.age(), Duration::from_millis(10));
            assert_eq!(tree.find("app/second#0").unwrap().age(), Duration::from_millis(5));

            // A snapshot of a subtree starts at that scope.
            let text = tree.to_string();
            assert_eq!(
                text,
                "app (running, 10.0ms)\n  branch#0 (running, 10.0ms)\n    leaf#0 (running, 10.0ms)\n    \
                 leaf#1 (running, 10.0ms)\n  second#0 (running, 5.0ms)\n    leaf#0 (running, 5.0ms)\n  idle#0 \
                 (running, 5.0ms)"
            );
            assert!(format!("{tree:#}").contains("    app/second#0/leaf#0 (running, 5.0ms)"));
            scope.cancel();
        })
        .named("app"),
    )
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn snapshot_shows_cancelling_and_joining_tasks() {
    let (release_tx, release_rx) = oneshot::channel::<()>();
    taskward::run(taskward::task(|scope: Scope| async move {
        // `joiner` ends its body at once but has a child that waits.
        let joiner = scope.spawn(
            taskward::task(|scope: Scope| async move {
                scope.spawn(async move {
                    let _ = release_rx.await;
                });
            })
            .named("joiner"),
        );
        // `stubborn` is told to stop but takes its time.
        let stubborn = scope.spawn(
            taskward::task(|scope: Scope| async move {
                scope.cancelled().await;
                tokio::time::sleep(Duration::from_secs(1)).await;
            })
            .named("stubborn"),
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
        stubborn.cancel();
        tokio::time::sleep(Duration::from_millis(1)).await;

        let tree = scope.tree();
        assert_eq!(tree.find("task/joiner#0").unwrap().state(), TaskState::Joining);
        assert_eq!(tree.find("task/joiner#0/task#0").unwrap().state(), TaskState::Running);
        assert_eq!(tree.find("task/stubborn#0").unwrap().state(), TaskState::Cancelling);
        assert!(tree.to_string().contains("joiner#0 (joining children, "), "{tree}");

        let _ = release_tx.send(());
        joiner.await.unwrap();
        stubborn.await.unwrap();
        // Finished tasks are gone from the next snapshot.
        assert_eq!(scope.tree().len(), 1);
    }))
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_taken_while_the_tree_churns_stay_consistent() {
    taskward::run(taskward::task(|scope: Scope| async move {
        let churn = scope.spawn(taskward::task(|scope: Scope| async move {
            for _ in 0..2_000 {
                scope.spawn(async { tokio::task::yield_now().await });
            }
        }));
        for _ in 0..50 {
            let tree = scope.tree();
            // Depth only ever grows by one from a task to the next.
            let depths: Vec<usize> = tree.tasks().map(|task| task.depth()).collect();
            assert_eq!(depths[0], 0);
            assert!(depths.windows(2).all(|pair| pair[1] <= pair[0] + 1));
            tokio::task::yield_now().await;
        }
        churn.await.unwrap();
    }))
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn snapshot_shows_children_waiting_for_a_slot() {
    taskward::run(taskward::task(|scope: Scope| async move {
        scope.set_limit(1);
        scope.spawn(leaf());
        scope.spawn(leaf());
        tokio::time::sleep(Duration::from_millis(1)).await;

        let tree = scope.tree();
        assert_eq!(tree.find("task/leaf#0").unwrap().state(), TaskState::Running);
        assert_eq!(tree.find("task/leaf#1").unwrap().state(), TaskState::Queued);
        assert!(tree.to_string().contains("leaf#1 (waiting for a slot, "), "{tree}");
        scope.cancel();
    }))
    .await
    .unwrap();
}

#[tokio::test]
async fn finished_children_leave_the_snapshot_while_their_handles_are_held() {
    taskward::run(taskward::task(|scope: Scope| async move {
        let held: Vec<_> = (0..100u32)
            .map(|i| scope.spawn(async move { Ok::<_, std::io::Error>(i) }))
            .collect();
        while !held.iter().all(taskward::Child::is_finished) {
            tokio::task::yield_now().await;
        }
        let tree = scope.tree();
        assert_eq!(tree.tasks().count(), 1, "only the scope's own task is live:\n{tree}");
        // Enough short-lived children after them that the scope's list of
        // children fills up and is swept several times.
        for i in 0..1000u32 {
            scope.spawn(async move { Ok::<_, std::io::Error>(i) }).await.unwrap();
        }
        let tree = scope.tree();
        assert_eq!(tree.tasks().count(), 1, "only the scope's own task is live:\n{tree}");
        for (i, child) in (0..).zip(held) {
            assert_eq!(child.await.unwrap(), i);
        }
    }))
    .await
    .unwrap();
}

#[supervised(name = "link")]
async fn chain(scope: &Scope, depth: usize, bottom: tokio::sync::mpsc::Sender<()>) {
    if depth == 0 {
        bottom.send(()).await.unwrap();
    } else {
        scope.spawn(chain(depth - 1, bottom));
    }
    scope.cancelled().await;
}

// Regression: `Display` panicked ("Formatting argument out of range") past
// 32,767 levels, because it indented every line by twice its depth; and a
// snapshot built the path of every task, memory quadratic in the depth.
#[tokio::test(start_paused = true)]
async fn a_deep_snapshot_caps_its_indentation_and_finds_paths_it_has_not_built() {
    taskward::run(
        taskward::task(|scope: Scope| async move {
            let (bottom, mut reached) = tokio::sync::mpsc::channel(1);
            scope.spawn(chain(100, bottom));
            reached.recv().await.unwrap();
            // From a task inside the tree: the first task's path is its own.
            let inner = scope.tree();
            assert_eq!(inner.tasks().next().unwrap().path(), "top");
            let deep = "top/link#0".to_owned() + &"/link#0".repeat(60);
            let found = inner.find(&deep).expect("a task 61 levels down");
            assert_eq!(found.depth(), 61);
            assert_eq!(found.path(), deep);
            assert!(inner.find("top/link#1").is_none());
            assert!(inner.find(&(deep.clone() + "x")).is_none());

            let shown = inner.to_string();
            let lines: Vec<&str> = shown.lines().collect();
            assert_eq!(lines.len(), 102);
            assert_eq!(lines[64], format!("{:128}link#0 (running, 0.0ns)", ""));
            assert_eq!(lines[65], format!("{:128}[depth 65] link#0 (running, 0.0ns)", ""));
            assert_eq!(lines[101], format!("{:128}[depth 101] link#0 (running, 0.0ns)", ""));
            scope.cancel();
            Ok::<_, std::io::Error>(())
        })
        .named("top"),
    )
    .await
    .unwrap();
}
