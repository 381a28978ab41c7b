//! `Scope::spawn_blocking`: a closure on tokio's blocking pool is a child
//! like any other (value, failure, panic, cancellation, limits,
//! `next_error`, snapshots), and a tree waits for it even past a grace
//! period, because a thread cannot be aborted.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Gauge, bounded_for, flag, quiet_panics};
use taskward::{ErrorKind, Policy, Root, Scope, Task, TaskState};
use tokio::sync::oneshot;

const MS: Duration = Duration::from_millis(1);
/// Real time: blocking closures run on threads.
const BOUND: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_closure_gives_its_value_to_its_handle() {
    let value = bounded_for(
        BOUND,
        taskward::run(taskward::task(|scope: Scope| async move {
            let child = scope.spawn_blocking(|_token| Ok::<_, std::io::Error>(6 * 7));
            assert_eq!(child.path(), "task/blocking#0");
            child.await
        })),
    )
    .await
    .unwrap();
    assert_eq!(value, 42);
}

#[tokio::test]
async fn a_closure_may_return_nothing_and_is_joined_without_its_handle() {
    let ran = flag();
    let seen = Arc::clone(&ran);
    bounded_for(
        BOUND,
        taskward::run(taskward::task(move |scope: Scope| async move {
            scope.spawn_blocking(move |_token| {
                std::thread::sleep(20 * MS);
                seen.store(true, Ordering::SeqCst);
            });
        })),
    )
    .await
    .unwrap();
    assert!(ran.load(Ordering::SeqCst), "the scope joined the dropped child");
}

#[tokio::test]
async fn an_error_is_a_failure_of_the_blocking_child() {
    let err = bounded_for(
        BOUND,
        taskward::run(taskward::task(|scope: Scope| async move {
            scope
                .spawn_blocking(|_token| Err::<(), _>(std::io::Error::other("disk on fire")))
                .await
        })),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Failed);
    assert_eq!(err.task(), "task/blocking#0");
    assert!(err.downcast_ref::<std::io::Error>().is_some());
    assert_eq!(err.to_string(), "task `task/blocking#0` failed: disk on fire");
}

#[tokio::test]
async fn a_panic_is_panicked_with_its_message_and_path() {
    quiet_panics("blocking boom");
    // Regression: `tokio::task::spawn_blocking` inside a task turned a
    // panic into a plain failure of the enclosing task.
    let err = bounded_for(
        BOUND,
        taskward::run(taskward::task(|scope: Scope| async move {
            scope.spawn_blocking(|_token| -> Result<(), std::io::Error> { panic!("blocking boom") });
        })),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Panicked);
    assert_eq!(err.task(), "task/blocking#0");
    assert_eq!(err.message(), Some("blocking boom"));
}

#[tokio::test]
async fn a_closure_sees_the_cancellation_of_its_scope_on_its_token() {
    let (started, is_started) = oneshot::channel();
    let stopped = bounded_for(
        BOUND,
        taskward::run(taskward::task(|scope: Scope| async move {
            let child = scope.spawn_blocking(move |token| {
                let _ = started.send(());
                let mut polls = 0u64;
                while !token.is_cancelled() {
                    polls += 1;
                    std::thread::sleep(MS);
                }
                Ok::<_, std::io::Error>(polls)
            });
            is_started.await.unwrap();
            scope.cancel();
            child.await
        })),
    )
    .await;
    assert!(stopped.is_ok(), "{stopped:?}");
}

#[tokio::test]
async fn under_fail_fast_a_failing_closure_cancels_its_siblings() {
    let sibling_saw_it = flag();
    let saw = Arc::clone(&sibling_saw_it);
    let err = bounded_for(
        BOUND,
        taskward::run(taskward::task(move |scope: Scope| async move {
            scope.spawn_blocking(move |token| {
                while !token.is_cancelled() {
                    std::thread::sleep(MS);
                }
                saw.store(true, Ordering::SeqCst);
            });
            scope.spawn_blocking(|_token| Err::<(), _>(std::io::Error::other("bad input")));
        })),
    )
    .await
    .unwrap_err();
    assert_eq!(err.to_string(), "task `task/blocking#1` failed: bad input");
    assert!(sibling_saw_it.load(Ordering::SeqCst));
}

#[tokio::test]
async fn next_error_takes_a_closure_failure_under_supervise() {
    bounded_for(
        BOUND,
        taskward::run(
            taskward::task(|scope: Scope| async move {
                for n in 0..3 {
                    scope.spawn_blocking(move |_token| {
                        if n == 1 {
                            Err(std::io::Error::other("bad block"))
                        } else {
                            Ok(())
                        }
                    });
                }
                let err = scope.next_error().await.expect("one failed");
                assert_eq!(err.task(), "task/blocking#1");
                assert_eq!(err.kind(), ErrorKind::Failed);
                assert!(scope.next_error().await.is_none());
            })
            .policy(Policy::Supervise),
        ),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn closures_never_exceed_the_limit_and_all_run() {
    let gauge = Gauge::default();
    let pool = gauge.clone();
    let done = bounded_for(
        BOUND,
        taskward::run(taskward::task(move |scope: Scope| async move {
            scope.set_limit(2);
            let children: Vec<_> = (0..8u32)
                .map(|n| {
                    let pool = pool.clone();
                    scope.spawn_blocking(move |_token| {
                        let _running = pool.enter();
                        std::thread::sleep(10 * MS);
                        Ok::<_, std::io::Error>(n)
                    })
                })
                .collect();
            let mut done = Vec::new();
            for child in children {
                done.push(child.await?);
            }
            Ok::<_, taskward::Error>(done)
        })),
    )
    .await
    .unwrap();
    assert_eq!(done, (0..8).collect::<Vec<_>>());
    assert_eq!(gauge.peak(), 2, "the limit is never exceeded, and is used");
}

#[tokio::test]
async fn a_snapshot_shows_a_running_closure_and_one_waiting_for_its_slot() {
    bounded_for(
        BOUND,
        taskward::run(taskward::task(|scope: Scope| async move {
            scope.set_limit(1);
            let (started, is_started) = oneshot::channel();
            let (release, released) = std::sync::mpsc::channel::<()>();
            scope.spawn_blocking(move |_token| {
                let _ = started.send(());
                let _ = released.recv();
            });
            scope.spawn_blocking(|_token| ());
            is_started.await.unwrap();
            let tree = scope.tree();
            assert_eq!(
                tree.find("task/blocking#0").unwrap().state(),
                TaskState::Running,
                "{tree}"
            );
            assert_eq!(
                tree.find("task/blocking#1").unwrap().state(),
                TaskState::Queued,
                "{tree}"
            );
            release.send(()).unwrap();
        })),
    )
    .await
    .unwrap();
}

/// A closure that ignores its token and outlives the grace period: `run`
/// returns only after it has returned, and says it ran past its grace.
#[tokio::test]
async fn run_waits_for_a_closure_past_the_grace_period() {
    // Regression: with `tokio::task::spawn_blocking` inside a task, `run`
    // returned at the end of the grace period while the closure ran on.
    let finished = flag();
    let done = Arc::clone(&finished);
    let err = bounded_for(
        BOUND,
        Root::new()
            .grace(20 * MS)
            .run(taskward::task(move |scope: Scope| async move {
                let (started, is_started) = oneshot::channel();
                scope.spawn_blocking(move |_token| {
                    let _ = started.send(());
                    std::thread::sleep(300 * MS);
                    done.store(true, Ordering::SeqCst);
                });
                is_started.await.unwrap();
                scope.cancel();
            })),
    )
    .await
    .unwrap_err();
    assert!(finished.load(Ordering::SeqCst), "run returned while its closure ran");
    assert_eq!(err.kind(), ErrorKind::Cancelled);
    assert_eq!(err.task(), "task/blocking#0");
    assert!(err.to_string().contains("ran past its grace period"), "{err}");
}

#[tokio::test]
async fn a_closure_in_line_when_the_grace_period_ends_never_runs() {
    let second_ran = flag();
    let ran = Arc::clone(&second_ran);
    let first_done = Arc::new(AtomicBool::new(false));
    let done = Arc::clone(&first_done);
    let err = bounded_for(
        BOUND,
        Root::new()
            .grace(20 * MS)
            .run(taskward::task(move |scope: Scope| async move {
                scope.set_limit(1);
                let (started, is_started) = oneshot::channel();
                scope.spawn_blocking(move |_token| {
                    let _ = started.send(());
                    std::thread::sleep(200 * MS);
                    done.store(true, Ordering::SeqCst);
                });
                scope.spawn_blocking(move |_token| ran.store(true, Ordering::SeqCst));
                is_started.await.unwrap();
                scope.cancel();
            })),
    )
    .await
    .unwrap_err();
    assert!(first_done.load(Ordering::SeqCst));
    assert!(
        !second_ran.load(Ordering::SeqCst),
        "a closure in line was run after the kill"
    );
    assert_eq!(err.related().len(), 1, "{err:#}");
    let in_line = std::iter::once(&err)
        .chain(err.related())
        .find(|err| err.task() == "task/blocking#1");
    assert!(
        in_line.unwrap().to_string().contains("waited for a free slot"),
        "{err:#}"
    );
    let running = std::iter::once(&err)
        .chain(err.related())
        .find(|err| err.task() == "task/blocking#0");
    assert!(
        running.unwrap().to_string().contains("ran past its grace period"),
        "{err:#}"
    );
}

#[tokio::test]
async fn a_closure_failure_past_the_grace_is_kept_in_related() {
    let err = bounded_for(
        BOUND,
        Root::new()
            .grace(10 * MS)
            .run(taskward::task(move |scope: Scope| async move {
                let (started, is_started) = oneshot::channel();
                scope.spawn_blocking(move |_token| {
                    let _ = started.send(());
                    std::thread::sleep(100 * MS);
                    Err::<(), _>(std::io::Error::other("late and wrong"))
                });
                is_started.await.unwrap();
                scope.cancel();
            })),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled);
    assert_eq!(err.related().len(), 1, "{err:#}");
    assert_eq!(err.related()[0].message(), None);
    assert!(err.related()[0].to_string().contains("late and wrong"));
}

#[tokio::test]
async fn a_spawn_on_a_finished_scope_is_refused() {
    let kept = bounded_for(
        BOUND,
        taskward::run(taskward::task(
            |scope: Scope| async move { Ok::<_, std::io::Error>(scope) },
        )),
    )
    .await
    .unwrap();
    let ran = flag();
    let seen = Arc::clone(&ran);
    let err = kept
        .spawn_blocking(move |_token| seen.store(true, Ordering::SeqCst))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ScopeClosed);
    assert!(!ran.load(Ordering::SeqCst));
}

/// The warning that names a closure still running when its grace period
/// ended. Blocking closures run on other threads, so the recorder is the
/// global subscriber (installed once; it records only that warning).
#[cfg(feature = "tracing")]
mod warning {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex, OnceLock};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Level, Metadata, Subscriber};

    use super::*;

    #[derive(Default)]
    struct Warnings {
        next_span: AtomicU64,
        tasks: Arc<Mutex<Vec<String>>>,
    }

    #[derive(Default)]
    struct Fields {
        task: Option<String>,
        message: String,
    }

    impl Visit for Fields {
        fn record_str(&mut self, field: &Field, value: &str) {
            match field.name() {
                "task" => self.task = Some(value.to_owned()),
                "message" => self.message = value.to_owned(),
                _ => {}
            }
        }

        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            self.record_str(field, &format!("{value:?}"));
        }
    }

    impl Subscriber for Warnings {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(self.next_span.fetch_add(1, Ordering::Relaxed) + 1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            if *event.metadata().level() != Level::WARN {
                return;
            }
            let mut fields = Fields::default();
            event.record(&mut fields);
            if fields.message.starts_with("blocking closure still running")
                && let Some(task) = fields.task
            {
                self.tasks.lock().unwrap().push(task);
            }
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }

    fn warned() -> Arc<Mutex<Vec<String>>> {
        static TASKS: OnceLock<Arc<Mutex<Vec<String>>>> = OnceLock::new();
        Arc::clone(TASKS.get_or_init(|| {
            let warnings = Warnings::default();
            let tasks = Arc::clone(&warnings.tasks);
            tracing::subscriber::set_global_default(warnings).expect("the only global subscriber of this binary");
            tasks
        }))
    }

    #[tokio::test]
    async fn a_warning_names_a_closure_still_running_when_its_grace_ended() {
        let warned = warned();
        let name = "warned-of";
        bounded_for(
            BOUND,
            Root::new().grace(10 * MS).run(
                taskward::task(move |scope: Scope| async move {
                    let (started, is_started) = oneshot::channel();
                    scope.spawn_blocking(move |_token| {
                        let _ = started.send(());
                        std::thread::sleep(100 * MS);
                    });
                    is_started.await.unwrap();
                    scope.cancel();
                })
                .named(name),
            ),
        )
        .await
        .unwrap_err();
        let warned = warned.lock().unwrap();
        assert_eq!(
            warned.iter().filter(|task| *task == "warned-of/blocking#0").count(),
            1,
            "{warned:?}"
        );
    }
}

/// Random sets of closures (values, failures, panics, closures that ignore
/// their token or finish late), some handles awaited and others dropped,
/// under a limit or not, cancelled at a random moment with a short grace:
/// every failure that happened comes out exactly once, and no closure
/// runs when `run` returns.
#[test]
fn random_closures_deliver_each_failure_once_and_never_outlive_run() {
    quiet_panics("inject-");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for seed in 1..=40u64 {
        runtime.block_on(chaos_round(seed));
    }
}

#[derive(Debug)]
struct Injected(u64);

impl std::fmt::Display for Injected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "inject-{}", self.0)
    }
}

impl std::error::Error for Injected {}

/// The injected failure an error stands for, if any.
fn injected(err: &taskward::Error) -> Option<u64> {
    match err.downcast_ref::<Injected>() {
        Some(Injected(id)) => Some(*id),
        None => err.message()?.strip_prefix("inject-")?.parse().ok(),
    }
}

async fn chaos_round(seed: u64) {
    use std::sync::Mutex;
    use std::sync::atomic::AtomicUsize;

    let mut rng = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move |below: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % below
    };
    let running = Arc::new(AtomicUsize::new(0));
    let happened = Arc::new(Mutex::new(Vec::new()));
    let claimed = Arc::new(Mutex::new(Vec::new()));
    let fates: Vec<u64> = (0..8).map(|_| next(6)).collect();
    let awaited: Vec<bool> = (0..8).map(|_| next(2) == 0).collect();
    let limit = next(4);
    let cancel_after = next(30);
    let policy = if next(2) == 0 {
        Policy::FailFast
    } else {
        Policy::Supervise
    };
    let (running2, happened2, claimed2) = (Arc::clone(&running), Arc::clone(&happened), Arc::clone(&claimed));
    let result = bounded_for(
        BOUND,
        Root::new().grace(5 * MS).run(
            taskward::task(move |scope: Scope| async move {
                if limit > 0 {
                    scope.set_limit(limit as usize);
                }
                let mut handles = Vec::new();
                for (id, fate) in fates.into_iter().enumerate() {
                    let (running, happened) = (Arc::clone(&running2), Arc::clone(&happened2));
                    let id = id as u64;
                    let child = scope.spawn_blocking(move |token| {
                        running.fetch_add(1, Ordering::SeqCst);
                        let outcome = match fate {
                            0 => Ok(()),
                            1 => {
                                happened.lock().unwrap().push(id);
                                Err(Injected(id))
                            }
                            2 => {
                                happened.lock().unwrap().push(id);
                                running.fetch_sub(1, Ordering::SeqCst);
                                panic!("inject-{id}");
                            }
                            // Ignores its token and finishes late.
                            3 => {
                                std::thread::sleep(20 * MS);
                                Ok(())
                            }
                            // Stops when told to.
                            _ => {
                                while !token.is_cancelled() {
                                    std::thread::sleep(MS);
                                }
                                Ok(())
                            }
                        };
                        running.fetch_sub(1, Ordering::SeqCst);
                        outcome
                    });
                    handles.push(child);
                }
                tokio::time::sleep(MS * u32::try_from(cancel_after).unwrap()).await;
                scope.cancel();
                for (child, awaited) in handles.into_iter().zip(awaited) {
                    if awaited && let Err(err) = child.await {
                        claimed2.lock().unwrap().extend(all_failures(&err));
                    }
                }
            })
            .policy(policy),
        ),
    )
    .await;
    assert_eq!(
        running.load(Ordering::SeqCst),
        0,
        "seed {seed}: a closure ran after run returned"
    );
    let mut delivered = claimed.lock().unwrap().clone();
    if let Err(err) = &result {
        delivered.extend(all_failures(err));
    }
    delivered.sort_unstable();
    let mut expected = happened.lock().unwrap().clone();
    expected.sort_unstable();
    assert_eq!(delivered, expected, "seed {seed}: {result:?}");
}

/// The injected failures in `err` and everything related to it.
fn all_failures(err: &taskward::Error) -> Vec<u64> {
    let mut found = Vec::new();
    let mut stack = vec![err];
    while let Some(err) = stack.pop() {
        found.extend(injected(err));
        stack.extend(err.related());
    }
    found
}
