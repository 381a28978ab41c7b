//! Bounded concurrency: `set_limit`, children waiting in line, `reserve`
//! and `Permit`, `try_spawn`; a full pool does not deadlock on its
//! workers' sub-workers.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{DropFlag, Gauge, bounded, flag};
use taskward::{CancellationToken, ErrorKind, Policy, Root, Scope, Task, supervised};
use tokio::sync::oneshot;
use tokio::time::Instant;

const MS: Duration = Duration::from_millis(1);

#[supervised]
async fn job(gauge: Gauge, work: Duration) -> std::io::Result<()> {
    let _running = gauge.enter();
    tokio::time::sleep(work).await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn children_never_exceed_the_limit() {
    let gauge = Gauge::default();
    let pool = gauge.clone();
    bounded(taskward::run(taskward::task(|scope: Scope| async move {
        scope.set_limit(3);
        for i in 0..30u32 {
            drop(scope.spawn(job(pool.clone(), (i % 7 + 1) * MS)));
        }
    })))
    .await
    .unwrap();
    assert_eq!(gauge.peak(), 3, "the limit is never exceeded, and is used");
}

#[test]
fn the_limit_holds_on_a_multi_threaded_runtime() {
    let gauge = Gauge::default();
    let pool = gauge.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    runtime
        .block_on(bounded(taskward::run(taskward::task(|scope: Scope| async move {
            scope.set_limit(2);
            for _ in 0..200 {
                let pool = pool.clone();
                drop(scope.spawn(async move {
                    let _running = pool.enter();
                    for _ in 0..3 {
                        tokio::task::yield_now().await;
                    }
                }));
            }
        }))))
        .unwrap();
    assert!(gauge.peak() <= 2, "peak {}", gauge.peak());
    assert_eq!(gauge.now(), 0);
}

#[tokio::test(start_paused = true)]
async fn waiting_children_start_first_come_first_served() {
    let order = Arc::new(Mutex::new(Vec::new()));
    let record = order.clone();
    bounded(taskward::run(taskward::task(|scope: Scope| async move {
        scope.set_limit(1);
        for i in 0..10 {
            let order = record.clone();
            drop(scope.spawn(async move {
                order.lock().unwrap().push(i);
                tokio::time::sleep(MS).await;
            }));
        }
    })))
    .await
    .unwrap();
    assert_eq!(*order.lock().unwrap(), (0..10).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn spawn_never_waits_and_waiting_children_are_joined() {
    let done = Arc::new(AtomicUsize::new(0));
    let counter = done.clone();
    let start = Instant::now();
    bounded(taskward::run(taskward::task(move |scope: Scope| async move {
        scope.set_limit(2);
        for _ in 0..6 {
            let counter = counter.clone();
            drop(scope.spawn(async move {
                tokio::time::sleep(10 * MS).await;
                counter.fetch_add(1, Ordering::SeqCst);
            }));
        }
        // All six were spawned without waiting.
        assert_eq!(start.elapsed(), Duration::ZERO);
    })))
    .await
    .unwrap();
    assert_eq!(done.load(Ordering::SeqCst), 6);
    assert_eq!(start.elapsed(), 30 * MS, "three rounds of two");
}

#[tokio::test(start_paused = true)]
async fn failures_of_waiting_children_reach_next_error() {
    let failures = bounded(taskward::run(
        taskward::task(|scope: Scope| async move {
            scope.set_limit(1);
            for i in 0..4 {
                drop(scope.spawn(async move {
                    tokio::time::sleep(MS).await;
                    Err::<(), _>(std::io::Error::other(format!("job {i}")))
                }));
            }
            let mut failures = Vec::new();
            while let Some(err) = scope.next_error().await {
                failures.push(err.to_string());
            }
            Ok::<_, taskward::Error>(failures)
        })
        .policy(Policy::Supervise),
    ))
    .await
    .unwrap();
    assert_eq!(
        failures.len(),
        4,
        "next_error waited for the children in line: {failures:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn waiting_children_are_cancelled_with_their_scope_and_start_to_see_it() {
    let saw_cancelled = Arc::new(AtomicUsize::new(0));
    let counter = saw_cancelled.clone();
    let root = Root::new();
    let token = root.token();
    let tree = tokio::spawn(root.run(taskward::task(|scope: Scope| async move {
        scope.set_limit(1);
        for _ in 0..5 {
            let counter = counter.clone();
            drop(scope.spawn(taskward::task(move |scope: Scope| async move {
                scope.cancelled().await;
                counter.fetch_add(1, Ordering::SeqCst);
            })));
        }
    })));
    tokio::time::sleep(MS).await;
    token.cancel();
    bounded(tree).await.unwrap().unwrap();
    assert_eq!(saw_cancelled.load(Ordering::SeqCst), 5);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_tree_aborts_children_waiting_in_line() {
    let started = Arc::new(AtomicUsize::new(0));
    let dropped: Vec<Arc<AtomicBool>> = (0..4).map(|_| flag()).collect();
    let (counter, flags) = (started.clone(), dropped.clone());
    let tree = taskward::run(taskward::task(|scope: Scope| async move {
        scope.set_limit(1);
        for flag in flags {
            let (counter, guard) = (counter.clone(), DropFlag(flag));
            drop(scope.spawn(async move {
                let _guard = guard;
                counter.fetch_add(1, Ordering::SeqCst);
                std::future::pending::<()>().await;
            }));
        }
    }));
    assert!(tokio::time::timeout(10 * MS, tree).await.is_err());
    // The aborted tasks are dropped on the runtime: let it run them.
    bounded(async {
        while !dropped.iter().all(|flag| flag.load(Ordering::SeqCst)) {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(started.load(Ordering::SeqCst), 1, "only the first one ever started");
}

#[tokio::test(start_paused = true)]
async fn a_grace_abort_reaches_children_waiting_in_line() {
    let root = Root::new().grace(10 * MS);
    root.token().cancel();
    let err = bounded(root.run(taskward::task(|scope: Scope| async move {
        scope.set_limit(1);
        drop(scope.spawn(std::future::pending::<()>().named("busy")));
        drop(scope.spawn(async { Ok::<_, std::io::Error>(()) }.named("waiting")));
    })))
    .await
    .unwrap_err();
    let mut aborted: Vec<&str> = std::iter::once(err.task())
        .chain(err.related().iter().map(taskward::Error::task))
        .collect();
    aborted.sort_unstable();
    assert_eq!(aborted, ["task/busy#0", "task/waiting#0"], "{err:#}");
    assert!(err.related().iter().all(taskward::Error::is_cancelled));
}

/// A worker that splits its job among sub-workers on its own scope, which
/// is also limited.
#[supervised]
async fn worker(scope: &Scope, id: usize, done: Arc<AtomicUsize>) -> std::io::Result<usize> {
    scope.set_limit(1);
    let subs: Vec<_> = (0..3)
        .map(|_| {
            let done = done.clone();
            scope.spawn(async move {
                tokio::time::sleep(MS).await;
                done.fetch_add(1, Ordering::SeqCst);
                Ok::<_, std::io::Error>(())
            })
        })
        .collect();
    for sub in subs {
        sub.await.map_err(std::io::Error::other)?;
    }
    Ok(id)
}

#[tokio::test(start_paused = true)]
async fn a_full_pool_does_not_deadlock_on_its_workers_sub_workers() {
    let done = Arc::new(AtomicUsize::new(0));
    let counter = done.clone();
    let ids = bounded(taskward::run(taskward::task(|scope: Scope| async move {
        scope.set_limit(2);
        let workers: Vec<_> = (0..6).map(|id| scope.spawn(worker(id, counter.clone()))).collect();
        let mut ids = Vec::new();
        for worker in workers {
            ids.push(worker.await?);
        }
        Ok::<_, taskward::Error>(ids)
    })))
    .await
    .unwrap();
    assert_eq!(ids, (0..6).collect::<Vec<_>>());
    assert_eq!(done.load(Ordering::SeqCst), 18);
}

#[tokio::test(start_paused = true)]
async fn reserve_waits_for_a_free_slot() {
    bounded(taskward::run(taskward::task(|scope: Scope| async move {
        scope.set_limit(1);
        let (release, hold) = oneshot::channel::<()>();
        let busy = scope.spawn(async move { hold.await.map_err(std::io::Error::other) });
        assert!(
            tokio::time::timeout(Duration::from_secs(60), scope.reserve())
                .await
                .is_err(),
            "reserved a slot of a full scope"
        );
        release.send(()).unwrap();
        busy.await?;
        let permit = bounded(scope.reserve()).await;
        let child = permit.spawn(async { Ok::<_, std::io::Error>(5) });
        assert_eq!(child.await?, 5);
        Ok::<_, taskward::Error>(())
    })))
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn reserve_gives_backpressure_to_a_producer() {
    let gauge = Gauge::default();
    let pool = gauge.clone();
    let start = Instant::now();
    bounded(taskward::run(taskward::task(move |scope: Scope| async move {
        scope.set_limit(2);
        for _ in 0..6 {
            drop(scope.reserve().await.spawn(job(pool.clone(), 10 * MS)));
        }
        // The producer itself was held back until the last two could start.
        assert_eq!(start.elapsed(), 20 * MS);
    })))
    .await
    .unwrap();
    assert_eq!(gauge.peak(), 2);
}

#[tokio::test(start_paused = true)]
async fn an_unused_permit_gives_its_slot_back() {
    bounded(taskward::run(taskward::task(|scope: Scope| async move {
        scope.set_limit(1);
        let permit = scope.reserve().await;
        assert!(scope.try_spawn(async { Ok::<_, std::io::Error>(()) }).is_err());
        drop(permit);
        assert!(scope.try_spawn(async { Ok::<_, std::io::Error>(()) }).is_ok());
    })))
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_dropped_reserve_leaves_the_line() {
    bounded(taskward::run(taskward::task(|scope: Scope| async move {
        scope.set_limit(1);
        let busy = scope.spawn(async {
            tokio::time::sleep(10 * MS).await;
            Ok::<_, std::io::Error>(())
        });
        // Gives up waiting before the slot frees.
        assert!(tokio::time::timeout(MS, scope.reserve()).await.is_err());
        busy.await?;
        // The slot was not kept for the reservation that left.
        assert!(scope.try_spawn(async { Ok::<_, std::io::Error>(()) }).is_ok());
        Ok::<_, taskward::Error>(())
    })))
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn try_spawn_hands_the_task_back_when_full() {
    bounded(taskward::run(taskward::task(|scope: Scope| async move {
        scope.set_limit(1);
        let (release, hold) = oneshot::channel::<()>();
        let busy = scope.try_spawn(async move { hold.await.map_err(std::io::Error::other) });
        let busy = busy.unwrap_or_else(|_| panic!("an empty scope takes a child"));
        let Err(task) = scope.try_spawn(async { Ok::<_, std::io::Error>("handed back") }) else {
            panic!("a full scope took a child");
        };
        release.send(()).unwrap();
        busy.await?;
        // The very task handed back runs once there is room.
        let child = scope.try_spawn(task).unwrap_or_else(|_| panic!("there is room now"));
        assert_eq!(child.await?, "handed back");
        Ok::<_, taskward::Error>(())
    })))
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn try_spawn_does_not_jump_the_line() {
    bounded(taskward::run(taskward::task(|scope: Scope| async move {
        scope.set_limit(1);
        let first = scope.spawn(async {
            tokio::time::sleep(MS).await;
            Ok::<_, std::io::Error>(())
        });
        let _waiting = scope.spawn(async { Ok::<_, std::io::Error>(()) });
        assert!(scope.try_spawn(async { Ok::<_, std::io::Error>(()) }).is_err());
        first.await
    })))
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn without_a_limit_try_spawn_and_reserve_always_succeed() {
    bounded(taskward::run(taskward::task(|scope: Scope| async move {
        let _permits = [scope.reserve().await, scope.reserve().await];
        for _ in 0..100 {
            assert!(scope.try_spawn(std::future::ready(())).is_ok());
        }
    })))
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn raising_the_limit_starts_waiting_children_at_once() {
    let gauge = Gauge::default();
    let pool = gauge.clone();
    let start = Instant::now();
    bounded(taskward::run(taskward::task(|scope: Scope| async move {
        scope.set_limit(1);
        for _ in 0..4 {
            drop(scope.spawn(job(pool.clone(), 10 * MS)));
        }
        tokio::task::yield_now().await;
        scope.set_limit(4);
    })))
    .await
    .unwrap();
    assert_eq!(gauge.peak(), 4);
    assert_eq!(start.elapsed(), 10 * MS);
}

#[tokio::test(start_paused = true)]
async fn lowering_the_limit_lets_running_children_finish_and_holds_new_ones() {
    let gauge = Gauge::default();
    let pool = gauge.clone();
    let observed = Gauge::default();
    let after = observed.clone();
    bounded(taskward::run(taskward::task(|scope: Scope| async move {
        scope.set_limit(4);
        for _ in 0..4 {
            drop(scope.spawn(job(pool.clone(), 10 * MS)));
        }
        scope.set_limit(1);
        for _ in 0..4 {
            drop(scope.spawn(job(after.clone(), 10 * MS)));
        }
    })))
    .await
    .unwrap();
    assert_eq!(gauge.peak(), 4, "the first four were already running");
    assert_eq!(observed.peak(), 1, "later ones ran one at a time");
}

#[tokio::test(start_paused = true)]
async fn children_started_before_the_limit_count_against_it() {
    let start = Instant::now();
    let late_start = bounded(taskward::run(taskward::task(|scope: Scope| async move {
        for _ in 0..3 {
            drop(scope.spawn(async {
                tokio::time::sleep(10 * MS).await;
                Ok::<_, std::io::Error>(())
            }));
        }
        scope.set_limit(2);
        let late = scope.spawn(async move { Ok::<_, std::io::Error>(Instant::now()) });
        late.await
    })))
    .await
    .unwrap();
    assert_eq!(late_start - start, 10 * MS);
}

#[tokio::test(start_paused = true)]
async fn a_limit_of_zero_is_taken_as_one() {
    let gauge = Gauge::default();
    let pool = gauge.clone();
    bounded(taskward::run(taskward::task(|scope: Scope| async move {
        scope.set_limit(0);
        for _ in 0..5 {
            drop(scope.spawn(job(pool.clone(), MS)));
        }
    })))
    .await
    .unwrap();
    assert_eq!(gauge.peak(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_permit_of_a_finished_scope_reports_scope_closed() {
    let (tx, rx) = oneshot::channel();
    bounded(taskward::run(taskward::task(|scope: Scope| async move {
        scope.set_limit(1);
        let inner = scope.spawn(taskward::task(|scope: Scope| async move {
            scope.set_limit(1);
            let _ = tx.send(scope.reserve().await);
        }));
        inner.await
    })))
    .await
    .unwrap();
    let permit = rx.await.unwrap();
    let child = permit.spawn(async { Ok::<_, std::io::Error>(()) });
    assert_eq!(child.await.unwrap_err().kind(), ErrorKind::ScopeClosed);
}

#[tokio::test(start_paused = true)]
async fn a_waiting_child_with_a_handle_delivers_its_result_there() {
    let value = bounded(taskward::run(taskward::task(|scope: Scope| async move {
        scope.set_limit(1);
        let token = CancellationToken::new();
        let hold = token.clone();
        let first = scope.spawn(async move {
            hold.cancelled().await;
            Ok::<_, std::io::Error>(1)
        });
        let second = scope.spawn(async { Ok::<_, std::io::Error>(2) });
        assert!(!second.is_finished());
        token.cancel();
        Ok::<_, taskward::Error>(first.await? + second.await?)
    })))
    .await;
    assert_eq!(value.unwrap(), 3);
}

/// The first `set_limit` counts the children running at that moment as
/// holding slots, while children finish on other workers: each gives its
/// slot back exactly once, so once they are gone exactly `limit` children
/// run again (three that wait for each other all start).
#[test]
fn a_limit_set_while_children_finish_on_other_workers_keeps_every_slot() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        for _ in 0..50 {
            let tree = taskward::run(taskward::task(|scope: Scope| async move {
                for _ in 0..64 {
                    drop(scope.spawn(async {
                        tokio::task::yield_now().await;
                    }));
                }
                scope.set_limit(3);
                let all_three = Arc::new(tokio::sync::Barrier::new(3));
                for _ in 0..3 {
                    let all_three = Arc::clone(&all_three);
                    drop(scope.spawn(async move {
                        all_three.wait().await;
                    }));
                }
            }));
            // Real time: the runtime is not paused. A lost slot hangs.
            tokio::time::timeout(Duration::from_secs(20), tree)
                .await
                .expect("a slot was lost: the last three children could not all start")
                .unwrap();
        }
    });
}
