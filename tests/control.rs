//! Control over running children: `Child::abort`, `Scope::wait`,
//! `Task::shielded`, cancellation with a cause.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::{DropFlag, bounded, bounded_for, flag};
use taskward::{CancelCause, Error, ErrorKind, Policy, Scope, Task};

/// A child that never looks at its token, with a grandchild that does not
/// either; each sets its flag when its future is dropped.
fn stuck_subtree(child_gone: Arc<AtomicBool>, grandchild_gone: Arc<AtomicBool>) -> impl Task<Output = ()> {
    taskward::task(move |scope: Scope| async move {
        let _guard = DropFlag(child_gone);
        scope.spawn(async move {
            let _guard = DropFlag(grandchild_gone);
            std::future::pending::<()>().await;
        });
        std::future::pending::<()>().await;
    })
}

#[tokio::test(start_paused = true)]
async fn abort_stops_a_child_and_its_subtree_and_awaiting_it_gives_cancelled() {
    let (child_gone, grandchild_gone) = (flag(), flag());
    let result = bounded(taskward::run(taskward::task({
        let (child_gone, grandchild_gone) = (child_gone.clone(), grandchild_gone.clone());
        |scope: Scope| async move {
            let child = scope.spawn(stuck_subtree(child_gone.clone(), grandchild_gone.clone()));
            tokio::time::sleep(Duration::from_millis(5)).await;
            child.abort();
            let err = child.await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Cancelled);
            assert_eq!(err.task(), "task/task#0");
            assert_eq!(
                err.to_string(),
                "task `task/task#0` was cancelled: aborted by its owner"
            );
            // The handle gives its result once the whole subtree is gone.
            assert!(child_gone.load(Ordering::SeqCst) && grandchild_gone.load(Ordering::SeqCst));
            assert!(!scope.is_cancelled(), "the owner's scope was cancelled");
            Ok::<_, Error>("owner went on")
        }
    })))
    .await;
    assert_eq!(result.unwrap(), "owner went on");
}

/// A chain of `depth` tasks below the caller, none looking at its token;
/// the last one sets `started` when it runs, and `gone` when its future is
/// dropped.
fn stuck_chain(depth: usize, started: Arc<AtomicBool>, gone: Arc<AtomicBool>) -> impl Task<Output = ()> {
    taskward::task(
        move |scope: Scope| -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> {
            Box::pin(async move {
                let _guard = (depth == 1).then(|| DropFlag(Arc::clone(&gone)));
                if depth > 1 {
                    scope.spawn(stuck_chain(depth - 1, started, gone));
                } else {
                    started.store(true, Ordering::SeqCst);
                }
                std::future::pending::<()>().await;
            })
        },
    )
}

/// Waits until `flag` is set.
async fn until(flag: &AtomicBool) {
    while !flag.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awaiting_an_aborted_child_returns_once_its_deepest_descendant_is_gone() {
    // Regression: the handle gave its result as soon as the child's own
    // task ended, while the tasks three levels down were still waiting to
    // be dropped at their next poll (found by the chaos suite).
    for depth in (1..=5).cycle().take(200) {
        let (started, gone) = (flag(), flag());
        let (start, seen) = (Arc::clone(&started), Arc::clone(&gone));
        bounded(taskward::run(taskward::task(move |scope: Scope| async move {
            let child = scope.spawn(stuck_chain(depth, start, seen));
            until(&started).await;
            child.abort();
            let err = child.await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Cancelled);
            assert!(gone.load(Ordering::SeqCst), "a chain {depth} deep was not gone");
        })))
        .await
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_group_member_comes_out_once_its_deepest_descendant_is_gone() {
    // Regression: as for `Child::abort`, `next()` handed out an aborted
    // member while its deeper descendants were still waiting to be dropped.
    for depth in (1..=5).cycle().take(200) {
        let (started, gone) = (flag(), flag());
        let (start, seen) = (Arc::clone(&started), Arc::clone(&gone));
        bounded(taskward::run(taskward::task(move |scope: Scope| async move {
            let mut group = scope.group::<()>();
            group.spawn(stuck_chain(depth, start, seen));
            until(&started).await;
            group.abort_all();
            let err = group.next().await.unwrap().unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Cancelled);
            assert!(gone.load(Ordering::SeqCst), "a chain {depth} deep was not gone");
        })))
        .await
        .unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn an_aborted_child_never_escalates_nor_cancels_a_fail_fast_owner_even_with_its_handle_dropped() {
    let (child_gone, grandchild_gone) = (flag(), flag());
    let sibling_done = flag();
    let result = bounded(taskward::run(
        taskward::task({
            let (child_gone, grandchild_gone, sibling_done) =
                (child_gone.clone(), grandchild_gone.clone(), sibling_done.clone());
            |scope: Scope| async move {
                let sibling = scope.spawn(async move {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    sibling_done.store(true, Ordering::SeqCst);
                });
                let child = scope.spawn(stuck_subtree(child_gone, grandchild_gone));
                tokio::time::sleep(Duration::from_millis(5)).await;
                child.abort();
                drop(child); // right after the abort, before the child is gone
                assert!(scope.next_error().await.is_none(), "the abort reached next_error");
                assert!(!scope.is_cancelled(), "the abort cancelled a fail-fast owner");
                sibling.await?;
                Ok::<_, Error>(())
            }
        })
        .policy(Policy::FailFast),
    ))
    .await;
    result.unwrap();
    assert!(sibling_done.load(Ordering::SeqCst), "the sibling was stopped");
    assert!(child_gone.load(Ordering::SeqCst) && grandchild_gone.load(Ordering::SeqCst));
}

#[tokio::test(start_paused = true)]
async fn an_abort_dropped_with_the_body_ending_does_not_escalate() {
    // The owner's body ends at once after the abort: the aborted child is
    // joined while the scope escalates whatever it receives.
    let gone = flag();
    bounded(taskward::run(taskward::task({
        let gone = gone.clone();
        |scope: Scope| async move {
            // Made before the spawn: the child may be aborted before it
            // ever ran.
            let guard = DropFlag(gone);
            let child = scope.spawn(async move {
                let _guard = guard;
                std::future::pending::<()>().await;
            });
            child.abort();
        }
    })))
    .await
    .unwrap();
    assert!(gone.load(Ordering::SeqCst));
}

#[tokio::test(start_paused = true)]
async fn abort_after_the_child_finished_keeps_its_result() {
    bounded(taskward::run(
        taskward::task(|scope: Scope| async move {
            let value = scope.spawn(async { Ok::<_, std::io::Error>(7) });
            let failure = scope.spawn(async { Err::<u32, _>(std::io::Error::other("own failure")) });
            while !(value.is_finished() && failure.is_finished()) {
                tokio::task::yield_now().await;
            }
            value.abort();
            failure.abort();
            assert_eq!(value.await.unwrap(), 7);
            let err = failure.await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Failed);
            assert_eq!(err.to_string(), "task `task/task#1` failed: own failure");
        })
        .policy(Policy::Supervise),
    ))
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_child_in_line_for_a_slot_can_be_aborted() {
    bounded(taskward::run(taskward::task(|scope: Scope| async move {
        scope.set_limit(1);
        let busy = scope.spawn(taskward::task(|scope: Scope| async move { scope.cancelled().await }));
        let queued = scope.spawn(async { Ok::<_, std::io::Error>(1) });
        queued.abort();
        assert_eq!(queued.await.unwrap_err().kind(), ErrorKind::Cancelled);
        busy.cancel();
        busy.await.unwrap();
    })))
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn wait_returns_once_every_child_has_finished_and_the_scope_goes_on() {
    let total = bounded(taskward::run(taskward::task(|scope: Scope| async move {
        // Nothing to wait for: at once.
        scope.wait().await;
        let finished = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for ms in [30, 10, 20] {
            let finished = finished.clone();
            scope.spawn(taskward::task(move |scope: Scope| async move {
                // A grandchild outliving its parent's body is waited for too.
                scope.spawn(async move {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    finished.fetch_add(1, Ordering::SeqCst);
                });
            }));
        }
        scope.wait().await;
        assert_eq!(finished.load(Ordering::SeqCst), 3);
        // The scope is still open: it spawns again and gets values.
        let late = scope.spawn(async { Ok::<_, std::io::Error>(4) });
        scope.wait().await;
        assert!(late.is_finished());
        Ok::<_, Error>(late.await? + finished.load(Ordering::SeqCst))
    })))
    .await;
    assert_eq!(total.unwrap(), 7);
}

#[tokio::test(start_paused = true)]
async fn wait_leaves_failures_to_next_error_under_supervise() {
    bounded(taskward::run(
        taskward::task(|scope: Scope| async move {
            scope.spawn(async { Err::<(), _>(std::io::Error::other("bad")) });
            scope.spawn(async { Ok::<_, std::io::Error>(()) });
            scope.wait().await;
            assert!(!scope.is_cancelled());
            let err = scope.next_error().await.expect("the failure waits for next_error");
            assert_eq!(err.to_string(), "task `task/task#0` failed: bad");
            assert!(scope.next_error().await.is_none());
        })
        .policy(Policy::Supervise),
    ))
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn wait_under_fail_fast_sees_the_scope_cancelled_and_the_failure_escalates() {
    let err = bounded(taskward::run(taskward::task(|scope: Scope| async move {
        scope.spawn(async { Err::<(), _>(std::io::Error::other("bad")) });
        scope.spawn(taskward::task(|scope: Scope| async move { scope.cancelled().await }));
        // The failure cancels the scope, which stops the other child.
        scope.wait().await;
        assert!(scope.is_cancelled());
    })))
    .await
    .unwrap_err();
    assert_eq!(err.to_string(), "task `task/task#0` failed: bad");
    assert!(err.related().is_empty());
}

#[tokio::test(start_paused = true)]
async fn wait_waits_for_an_aborted_subtree_to_be_gone() {
    let (child_gone, grandchild_gone) = (flag(), flag());
    bounded(taskward::run(taskward::task({
        let (child_gone, grandchild_gone) = (child_gone.clone(), grandchild_gone.clone());
        |scope: Scope| async move {
            let child = scope.spawn(stuck_subtree(child_gone.clone(), grandchild_gone.clone()));
            tokio::time::sleep(Duration::from_millis(5)).await;
            child.abort();
            drop(child);
            scope.wait().await;
            assert!(child_gone.load(Ordering::SeqCst) && grandchild_gone.load(Ordering::SeqCst));
        }
    })))
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_shielded_child_and_its_subtree_are_not_cancelled_with_the_parent_and_are_still_joined() {
    let finished = flag();
    let result = bounded(taskward::run(taskward::task({
        let finished = finished.clone();
        |scope: Scope| async move {
            // The parent's token is made first here; the shielded child
            // makes its own after the parent was cancelled.
            assert!(!scope.is_cancelled());
            scope.spawn(
                taskward::task(move |scope: Scope| async move {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    let grandchild = scope.spawn(taskward::task(|scope: Scope| async move {
                        Ok::<_, std::io::Error>(scope.is_cancelled())
                    }));
                    let seen = (scope.is_cancelled(), grandchild.await?);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    finished.store(true, Ordering::SeqCst);
                    assert_eq!(seen, (false, false), "a shielded subtree saw its parent's cancel");
                    Ok::<_, Error>(())
                })
                .shielded(),
            );
            scope.cancel();
        }
    })))
    .await;
    result.unwrap();
    assert!(
        finished.load(Ordering::SeqCst),
        "the run returned before the shielded child finished"
    );
}

#[tokio::test(start_paused = true)]
async fn a_shielded_child_made_before_its_parent_has_a_token_is_shielded_too() {
    bounded(taskward::run(taskward::task(|scope: Scope| async move {
        // Neither token exists yet: the cancel marks the parent, and a
        // child's token made later would be made cancelled, unless shielded.
        let shielded = scope.spawn(
            taskward::task(|scope: Scope| async move {
                tokio::task::yield_now().await;
                Ok::<_, std::io::Error>(scope.is_cancelled())
            })
            .shielded(),
        );
        let plain = scope.spawn(taskward::task(|scope: Scope| async move {
            tokio::task::yield_now().await;
            Ok::<_, std::io::Error>(scope.is_cancelled())
        }));
        scope.cancel();
        assert!(!shielded.await?, "the shielded child was cancelled");
        assert!(plain.await?, "the unshielded sibling was not cancelled");
        Ok::<_, Error>(())
    })))
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_shielded_child_survives_a_failing_sibling_under_fail_fast_and_its_own_cancel_still_works() {
    let err = bounded(taskward::run(taskward::task(|scope: Scope| async move {
        let cleanup = scope.spawn(
            taskward::task(|scope: Scope| async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok::<_, std::io::Error>(scope.is_cancelled())
            })
            .shielded(),
        );
        let waiting = scope.spawn(taskward::task(|scope: Scope| async move { scope.cancelled().await }).shielded());
        scope.spawn(async { Err::<(), _>(std::io::Error::other("sibling failed")) });
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(scope.is_cancelled());
        assert!(!cleanup.await?, "the failing sibling cancelled the shielded child");
        // Shielded from its parent, not from its own handle.
        waiting.cancel();
        waiting.await?;
        Ok::<_, Error>(())
    })))
    .await
    .unwrap_err();
    assert_eq!(err.to_string(), "task `task/task#2` failed: sibling failed");
}

#[tokio::test(start_paused = true)]
async fn a_shielded_child_is_still_aborted_when_the_roots_grace_period_ends() {
    let gone = flag();
    let root = taskward::Root::new().grace(Duration::from_millis(50));
    let token = root.token();
    let err = bounded(root.run(taskward::task({
        let gone = gone.clone();
        move |scope: Scope| async move {
            let guard = DropFlag(gone);
            scope.spawn(
                async move {
                    let _guard = guard;
                    std::future::pending::<()>().await; // ignores every token
                }
                .shielded(),
            );
            token.cancel();
        }
    })))
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled);
    assert_eq!(err.task(), "task/task#0");
    assert!(gone.load(Ordering::SeqCst));
}

/// A child polled `POLLS` times before it waits for good, ignoring every
/// token; counts its polls, and sets `gone` when its future is dropped.
///
/// Regression guard: a child keeps its waker under its lock at its first
/// pending poll only (`keep_driver_waker`). An abort or a kill that comes
/// after its later polls must still find that waker and wake it.
fn polled_often(polls: Arc<AtomicUsize>, gone: Arc<AtomicBool>) -> impl Task<Output = ()> {
    async move {
        let _guard = DropFlag(gone);
        for _ in 0..POLLS {
            polls.fetch_add(1, Ordering::SeqCst);
            tokio::task::yield_now().await;
        }
        std::future::pending::<()>().await;
    }
}

const POLLS: usize = 20;

/// Real time: a hang fails the test after this.
const LIMIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abort_reaches_a_child_after_many_pending_polls() {
    let (polls, gone) = (Arc::new(AtomicUsize::new(0)), flag());
    let owner = taskward::task({
        let (polls, gone) = (Arc::clone(&polls), gone.clone());
        |scope: Scope| async move {
            let child = scope.spawn(polled_often(Arc::clone(&polls), gone));
            while polls.load(Ordering::SeqCst) < POLLS {
                tokio::task::yield_now().await;
            }
            child.abort();
            let err = child.await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Cancelled);
            Ok::<_, Error>(())
        }
    });
    let result = bounded_for(LIMIT, taskward::run(owner)).await;
    assert!(result.is_ok(), "{result:?}");
    assert!(gone.load(Ordering::SeqCst));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grace_period_kill_reaches_children_after_many_pending_polls() {
    let (polls, gone) = (Arc::new(AtomicUsize::new(0)), flag());
    let root = taskward::Root::new().grace(Duration::from_millis(20));
    let token = root.token();
    // A parent polled often too, that ignores its token as its child does.
    let parent = {
        let (polls, gone) = (Arc::clone(&polls), gone.clone());
        taskward::task(move |scope: Scope| async move {
            scope.spawn(polled_often(Arc::clone(&polls), gone));
            while polls.load(Ordering::SeqCst) < POLLS {
                tokio::task::yield_now().await;
            }
            std::future::pending::<()>().await;
        })
    };
    let tree = taskward::task(move |scope: Scope| async move {
        scope.spawn(parent);
        for _ in 0..POLLS {
            tokio::task::yield_now().await;
        }
        token.cancel();
    });
    let err = bounded_for(LIMIT, root.run(tree)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled);
    assert!(gone.load(Ordering::SeqCst));
}

/// A child that waits to be cancelled and returns why.
fn cause_watcher() -> impl Task<Output = Option<CancelCause>> {
    taskward::task(|scope: Scope| async move {
        assert!(scope.cancel_cause().is_none(), "a cause before any cancel");
        scope.cancelled().await;
        Ok::<_, std::io::Error>(scope.cancel_cause())
    })
}

#[tokio::test(start_paused = true)]
async fn a_reason_given_to_cancel_with_reaches_the_whole_subtree_and_the_first_cause_wins() {
    bounded(taskward::run(taskward::task(|scope: Scope| async move {
        assert!(scope.cancel_cause().is_none());
        let watcher = scope.spawn(taskward::task(|scope: Scope| async move {
            let grandchild = scope.spawn(cause_watcher());
            scope.cancelled().await;
            Ok::<_, Error>((scope.cancel_cause(), grandchild.await?))
        }));
        tokio::task::yield_now().await;
        scope.cancel_with(std::io::Error::other("reloading"));
        scope.cancel_with("a second reason");
        watcher.cancel_with("a later reason for the child");
        let (child, grandchild) = watcher.await?;
        for cause in [child.unwrap(), grandchild.unwrap(), scope.cancel_cause().unwrap()] {
            let CancelCause::Requested {
                task,
                reason: Some(reason),
                ..
            } = &cause
            else {
                panic!("{cause:?}");
            };
            assert_eq!((&**task, reason.to_string()), ("task", "reloading".to_owned()));
            assert!(reason.downcast_ref::<std::io::Error>().is_some());
            assert_eq!(cause.to_string(), "`task` was cancelled: reloading");
        }
        Ok::<_, Error>(())
    })))
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn child_cancel_with_and_a_plain_cancel_name_the_task_cancelled() {
    bounded(taskward::run(taskward::task(|scope: Scope| async move {
        let (given, plain) = (scope.spawn(cause_watcher()), scope.spawn(cause_watcher()));
        tokio::task::yield_now().await;
        given.cancel_with("not needed");
        plain.cancel();
        assert_eq!(
            given.await?.unwrap().to_string(),
            "`task/task#0` was cancelled: not needed"
        );
        let plain = plain.await?.unwrap();
        assert!(
            matches!(&plain, CancelCause::Requested { reason: None, .. }),
            "{plain:?}"
        );
        assert_eq!(plain.to_string(), "`task/task#1` was cancelled");
        assert!(scope.cancel_cause().is_none(), "the owner is not cancelled");
        Ok::<_, Error>(())
    })))
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_failing_sibling_under_fail_fast_is_the_cause_with_its_path_and_message() {
    let seen = Arc::new(std::sync::Mutex::new(None));
    let err = bounded(taskward::run(taskward::task({
        let seen = seen.clone();
        |scope: Scope| async move {
            let watcher = scope.spawn(cause_watcher());
            scope.spawn(async { Err::<(), _>(std::io::Error::other("disk full")) }.named("writer"));
            *seen.lock().unwrap() = watcher.await?;
            Ok::<_, Error>(())
        }
    })))
    .await
    .unwrap_err();
    assert_eq!(err.to_string(), "task `task/writer#0` failed: disk full");
    let cause = seen.lock().unwrap().take().unwrap();
    let CancelCause::SiblingFailed { task, message, .. } = &cause else {
        panic!("{cause:?}");
    };
    assert_eq!((&**task, &**message), ("task/writer#0", "failed: disk full"));
    assert_eq!(cause.to_string(), "`task/writer#0` failed: disk full");
}

/// A child that waits to be cancelled and puts why in `slot`.
fn cause_recorder(slot: Arc<std::sync::Mutex<Option<CancelCause>>>) -> impl Task<Output = ()> {
    taskward::task(move |scope: Scope| async move {
        scope.cancelled().await;
        *slot.lock().unwrap() = scope.cancel_cause();
    })
}

#[tokio::test(start_paused = true)]
async fn a_deadline_is_the_cause_below_the_task_that_passed_it() {
    let slot = Arc::new(std::sync::Mutex::new(None));
    let err = bounded(taskward::run(
        taskward::task({
            let slot = slot.clone();
            |scope: Scope| async move {
                scope.spawn(cause_recorder(slot));
                scope.cancelled().await;
            }
        })
        .named("slow")
        .timeout(Duration::from_millis(10)),
    ))
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    let cause = slot.lock().unwrap().take().unwrap();
    assert!(
        matches!(&cause, CancelCause::Deadline { task, limit, .. } if &**task == "slow" && *limit == Duration::from_millis(10)),
        "{cause:?}"
    );
    assert_eq!(cause.to_string(), "`slow` ran past its deadline of 10ms");
}

#[tokio::test(start_paused = true)]
async fn a_parent_whose_body_failed_is_the_cause_for_its_children() {
    let slot = Arc::new(std::sync::Mutex::new(None));
    let err = bounded(taskward::run(
        taskward::task({
            let slot = slot.clone();
            |scope: Scope| async move {
                scope.spawn(cause_recorder(slot));
                tokio::task::yield_now().await;
                Err::<(), _>(std::io::Error::other("gave up"))
            }
        })
        .named("parent"),
    ))
    .await
    .unwrap_err();
    assert_eq!(err.to_string(), "task `parent` failed: gave up");
    let cause = slot.lock().unwrap().take().unwrap();
    assert!(
        matches!(&cause, CancelCause::ParentEnded { task, .. } if &**task == "parent"),
        "{cause:?}"
    );
    assert_eq!(cause.to_string(), "`parent` ended while its children ran");
}

#[tokio::test(start_paused = true)]
async fn a_root_shut_down_through_its_token_is_the_cause_and_a_killed_task_names_it() {
    let slot = Arc::new(std::sync::Mutex::new(None));
    let root = taskward::Root::new().grace(Duration::from_millis(20));
    let token = root.token();
    let err = bounded(root.run(taskward::task({
        let slot = slot.clone();
        move |scope: Scope| async move {
            scope.spawn(cause_recorder(slot));
            scope.spawn(std::future::pending::<()>()); // ignores its token: killed
            tokio::task::yield_now().await;
            token.cancel();
        }
    })))
    .await
    .unwrap_err();
    let cause = slot.lock().unwrap().take().unwrap();
    assert!(
        matches!(cause, CancelCause::Shutdown { signal: false, .. }),
        "{cause:?}"
    );
    assert_eq!(err.kind(), ErrorKind::Cancelled);
    assert_eq!(
        err.to_string(),
        "task `task/task#1` was cancelled: still running when its grace period ended, so it was aborted \
         (cancelled because the tree was shut down through its token)"
    );
}

#[tokio::test(start_paused = true)]
async fn a_killed_task_names_the_reason_its_ancestor_was_cancelled_with() {
    let root = taskward::Root::new().grace(Duration::from_millis(20));
    let err = bounded(root.run(taskward::task(|scope: Scope| async move {
        scope.spawn(taskward::task(|scope: Scope| async move {
            scope.spawn(std::future::pending::<()>());
        }));
        scope.cancel_with("maintenance window");
    })))
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "task `task/task#0/task#0` was cancelled: still running when its grace period ended, so it was aborted \
         (cancelled because `task` was cancelled: maintenance window)"
    );
}

#[tokio::test(start_paused = true)]
async fn a_shielded_child_does_not_see_its_parents_cause_but_its_own() {
    bounded(taskward::run(taskward::task(|scope: Scope| async move {
        let shielded = scope.spawn(
            taskward::task(|scope: Scope| async move {
                tokio::task::yield_now().await;
                let before = scope.cancel_cause();
                scope.cancelled().await;
                Ok::<_, std::io::Error>((before, scope.cancel_cause()))
            })
            .shielded(),
        );
        scope.cancel_with("parent reason");
        tokio::task::yield_now().await;
        tokio::task::yield_now().await;
        shielded.cancel_with("own reason");
        let (before, after) = shielded.await?;
        assert!(before.is_none(), "{before:?}");
        assert_eq!(after.unwrap().to_string(), "`task/task#0` was cancelled: own reason");
        Ok::<_, Error>(())
    })))
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_killed_task_names_a_failing_sibling_by_its_path_only() {
    // The sibling's message is in its own failure: a report shows it once.
    let root = taskward::Root::new().grace(Duration::from_millis(20));
    let err = bounded(root.run(taskward::task(|scope: Scope| async move {
        scope.spawn(std::future::pending::<()>());
        scope.spawn(async { Err::<(), _>(std::io::Error::other("disk full")) });
    })))
    .await
    .unwrap_err();
    assert_eq!(err.to_string(), "task `task/task#1` failed: disk full");
    assert_eq!(
        err.related()[0].to_string(),
        "task `task/task#0` was cancelled: still running when its grace period ended, so it was aborted \
         (cancelled because `task/task#1` failed)"
    );
    assert_eq!(format!("{err:#}").matches("disk full").count(), 1, "{err:#}");
}

#[tokio::test(start_paused = true)]
async fn a_group_gives_values_and_failures_in_completion_order_and_a_taken_failure_does_not_escalate() {
    let out = bounded(taskward::run(
        taskward::task(|scope: Scope| async move {
            let mut group = scope.group::<u64>();
            for ms in [30u64, 10, 20] {
                group.spawn(async move {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    if ms == 20 {
                        return Err(std::io::Error::other("twenty"));
                    }
                    Ok(ms)
                });
            }
            assert_eq!((group.len(), group.is_empty()), (3, false));
            let mut out = Vec::new();
            while let Some(result) = group.next().await {
                out.push(result.map_err(|err| err.to_string()));
            }
            assert!(group.is_empty());
            assert!(
                scope.next_error().await.is_none(),
                "a failure handed out by next reached next_error"
            );
            Ok::<_, Error>(out)
        })
        .policy(Policy::Supervise),
    ))
    .await
    .unwrap();
    assert_eq!(
        out,
        [Ok(10), Err("task `task/task#2` failed: twenty".to_owned()), Ok(30)]
    );
}

#[tokio::test(start_paused = true)]
async fn a_group_is_a_stream() {
    use std::pin::Pin;
    use std::task::Poll;
    let sum = bounded(taskward::run(taskward::task(|scope: Scope| async move {
        let mut group = scope.group::<u32>();
        for n in 1..=4 {
            group.spawn(async move { Ok::<_, std::io::Error>(n) });
        }
        let mut sum = 0;
        while let Some(item) = std::future::poll_fn(|cx| {
            let polled = futures_core::Stream::poll_next(Pin::new(&mut group), cx);
            if let Poll::Ready(None) = polled {
                assert_eq!(futures_core::Stream::size_hint(&group), (0, Some(0)));
            }
            polled
        })
        .await
        {
            sum += item?;
        }
        Ok::<_, Error>(sum)
    })))
    .await;
    assert_eq!(sum.unwrap(), 10);
}

#[tokio::test(start_paused = true)]
async fn abort_all_stops_every_member_each_comes_out_cancelled_and_nothing_escalates() {
    let gone = [flag(), flag()];
    let result = bounded(taskward::run(taskward::task({
        let gone = gone.clone();
        |scope: Scope| async move {
            let mut group = scope.group::<()>();
            for flag in gone {
                group.spawn(stuck_subtree(flag, common::flag()));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
            group.abort_all();
            let mut kinds = Vec::new();
            while let Some(result) = group.next().await {
                kinds.push(result.unwrap_err().kind());
            }
            assert_eq!(kinds, [ErrorKind::Cancelled, ErrorKind::Cancelled]);
            assert!(!scope.is_cancelled(), "abort_all cancelled the scope");
            Ok::<_, Error>(())
        }
    })))
    .await;
    result.unwrap();
    assert!(gone.iter().all(|flag| flag.load(Ordering::SeqCst)));
}

#[tokio::test(start_paused = true)]
async fn dropping_a_group_does_not_detach_its_members_and_their_failures_escalate() {
    let finished = flag();
    let err = bounded(taskward::run(
        taskward::task({
            let finished = finished.clone();
            |scope: Scope| async move {
                let mut group = scope.group::<()>();
                group.spawn(async move {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    finished.store(true, Ordering::SeqCst);
                });
                group.spawn(async { Err::<(), _>(std::io::Error::other("unclaimed")) });
                tokio::time::sleep(Duration::from_millis(5)).await;
                drop(group);
            }
        })
        .policy(Policy::Supervise),
    ))
    .await
    .unwrap_err();
    assert_eq!(err.to_string(), "task `task/task#1` failed: unclaimed");
    assert!(
        finished.load(Ordering::SeqCst),
        "the run returned before a member of a dropped group finished"
    );
}

#[tokio::test(start_paused = true)]
async fn a_group_member_failing_under_fail_fast_cancels_the_scope() {
    bounded(taskward::run(taskward::task(|scope: Scope| async move {
        let mut group = scope.group::<()>();
        group.spawn(taskward::task(|scope: Scope| async move { scope.cancelled().await }));
        group.spawn(async { Err::<(), _>(std::io::Error::other("bad")) });
        let first = group.next().await.unwrap().unwrap_err();
        assert_eq!(first.to_string(), "task `task/task#1` failed: bad");
        assert!(group.next().await.unwrap().is_ok());
        assert!(scope.is_cancelled());
    })))
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_group_kept_past_its_scope_hands_out_scope_closed() {
    let mut group = bounded(taskward::run(taskward::task(|scope: Scope| async move {
        Ok::<_, Error>(scope.group::<u32>())
    })))
    .await
    .unwrap();
    group.spawn(async { Ok::<_, std::io::Error>(1) });
    let err = bounded(group.next()).await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ScopeClosed);
    assert!(group.next().await.is_none());
}

/// A racer that answers `value` after `ms` unless cancelled first, and
/// records whether it saw the race's cause.
fn racer(ms: u64, value: Result<u32, &'static str>, stopped: Arc<AtomicBool>) -> impl Task<Output = u32> {
    taskward::task(move |scope: Scope| async move {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(ms)) => value.map_err(std::io::Error::other),
            () = scope.cancelled() => {
                let cause = scope.cancel_cause().unwrap().to_string();
                assert_eq!(cause, "`race` was cancelled: another task of the race won");
                stopped.store(true, Ordering::SeqCst);
                Err(std::io::Error::other("stopped"))
            }
        }
    })
}

#[tokio::test(start_paused = true)]
async fn race_returns_the_first_success_after_cancelling_and_joining_the_others() {
    let (slow, failing) = (flag(), flag());
    let winner = bounded(taskward::run(taskward::race([
        racer(30, Ok(30), slow.clone()),
        racer(5, Err("fast but broken"), failing.clone()),
        racer(10, Ok(10), flag()),
    ])))
    .await;
    assert_eq!(winner.unwrap(), 10);
    assert!(
        slow.load(Ordering::SeqCst),
        "the slower racer was not cancelled and joined"
    );
    assert!(!failing.load(Ordering::SeqCst));
}

#[tokio::test(start_paused = true)]
async fn a_race_where_everyone_fails_holds_every_failure() {
    let err = bounded(taskward::run(taskward::race([
        racer(20, Err("second"), flag()),
        racer(10, Err("first"), flag()),
    ])))
    .await
    .unwrap_err();
    assert_eq!(err.to_string(), "task `race/task#1` failed: first");
    assert_eq!(err.related().len(), 1);
    assert_eq!(err.related()[0].to_string(), "task `race/task#0` failed: second");
    let err = bounded(taskward::run(taskward::race(Vec::<std::future::Ready<()>>::new())))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "task `race` failed: a race of no tasks has no winner");
}

/// A reason whose `Display` panics.
#[derive(Debug)]
struct Unprintable;

impl std::fmt::Display for Unprintable {
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        panic!("control: unprintable reason")
    }
}

impl std::error::Error for Unprintable {}

// Regression: the message of a killed task's `Cancelled` printed the reason
// where the runtime's bookkeeping runs; a panicking `Display` there would
// have lost the task's result.
#[tokio::test(start_paused = true)]
async fn a_reason_whose_display_panics_leaves_the_cause_out_of_a_killed_tasks_message() {
    common::quiet_panics("control: unprintable reason");
    let root = taskward::Root::new().grace(Duration::from_millis(20));
    let err = bounded(root.run(taskward::task(|scope: Scope| async move {
        scope.spawn(std::future::pending::<()>());
        scope.cancel_with(Unprintable);
    })))
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "task `task/task#0` was cancelled: still running when its grace period ended, so it was aborted"
    );
}

/// A grandchild's failure, made where the abort of its parent finds it.
#[derive(Debug)]
struct GrandchildFailed;

impl std::fmt::Display for GrandchildFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the grandchild failed")
    }
}

impl std::error::Error for GrandchildFailed {}

/// Where the failure of a grandchild waits when its parent is aborted.
#[derive(Debug, Clone, Copy)]
enum Waiting {
    /// In the parent's `next_error` queue, its body still running.
    ForNextError,
    /// In the grandchild's handle, which the parent's body holds.
    InAHeldHandle,
    /// In the parent's join: its body returned, a sibling still runs.
    InTheJoin,
}

/// A child (supervising) whose grandchild fails at once; the failure then
/// waits as `waiting` says, and the child stays until it is aborted.
fn child_with_a_waiting_failure(waiting: Waiting) -> impl Task<Output = ()> {
    taskward::task(move |scope: Scope| async move {
        let failing = scope.spawn(async { Err::<(), _>(GrandchildFailed) });
        match waiting {
            Waiting::ForNextError => drop(failing),
            Waiting::InAHeldHandle => {
                std::future::pending::<()>().await;
                drop(failing);
            }
            Waiting::InTheJoin => {
                drop(failing);
                scope.spawn(std::future::pending::<()>());
                return Ok(());
            }
        }
        std::future::pending::<()>().await;
        Ok::<_, Error>(())
    })
    .policy(Policy::Supervise)
}

#[tokio::test(start_paused = true)]
async fn a_failure_waiting_in_an_aborted_subtree_goes_to_the_owners_scope() {
    // Regression: a failure already waiting in a subtree its owner aborted
    // was dropped with the subtree (the chaos suite counted these as
    // `lost_to_an_abort`); it now goes where a dropped handle's failure goes.
    for waiting in [Waiting::ForNextError, Waiting::InAHeldHandle, Waiting::InTheJoin] {
        let routed = bounded(taskward::run(
            taskward::task(move |scope: Scope| async move {
                let child = scope.spawn(child_with_a_waiting_failure(waiting));
                tokio::time::sleep(Duration::from_millis(10)).await;
                child.abort();
                let err = child.await.unwrap_err();
                assert_eq!(err.kind(), ErrorKind::Cancelled, "{waiting:?}: {err}");
                assert!(err.related().is_empty(), "{waiting:?}: the failure is not the abort's");
                let routed = scope.next_error().await;
                assert!(scope.next_error().await.is_none(), "{waiting:?}: more than one failure");
                Ok::<_, Error>(routed)
            })
            .policy(Policy::Supervise),
        ))
        .await
        .unwrap();
        let routed = routed.unwrap_or_else(|| panic!("{waiting:?}: the failure was lost"));
        assert!(
            routed.downcast_ref::<GrandchildFailed>().is_some(),
            "{waiting:?}: {routed}"
        );
        assert!(routed.task().ends_with("/task#0"), "{waiting:?}: {}", routed.task());
    }
}

/// Panics when it is dropped.
struct PanicsOnDrop;

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("control: a grandchild's local panicked as it was dropped");
    }
}

#[tokio::test(start_paused = true)]
async fn a_panic_as_an_aborted_subtree_is_dropped_goes_to_the_owners_scope() {
    // Regression: the panic of a drop in a task below the aborted child (whose
    // parent was aborted too, so nobody could take its `Cancelled`) was
    // dropped with it (found by the chaos suite).
    common::quiet_panics("control: a grandchild's local");
    let routed = bounded(taskward::run(
        taskward::task(|scope: Scope| async move {
            let child = scope.spawn(taskward::task(|scope: Scope| async move {
                scope.spawn(async {
                    let _local = PanicsOnDrop;
                    std::future::pending::<()>().await;
                });
                std::future::pending::<()>().await;
            }));
            tokio::time::sleep(Duration::from_millis(10)).await;
            child.abort();
            assert_eq!(child.await.unwrap_err().kind(), ErrorKind::Cancelled);
            let routed = scope.next_error().await;
            assert!(scope.next_error().await.is_none(), "more than one failure");
            Ok::<_, Error>(routed)
        })
        .policy(Policy::Supervise),
    ))
    .await
    .unwrap();
    let routed = routed.expect("the panic was lost");
    assert_eq!(routed.kind(), ErrorKind::Panicked, "{routed}");
    assert!(routed.to_string().contains("as it was dropped"), "{routed}");
}
