//! Nothing a tree allocates outlives it: live heap bytes, counted by a
//! counting global allocator, come back to where they were after trees are
//! dropped in the middle of their work. (The resident-set checks of
//! `stress.rs` see leaks too, but through the allocator's own slack; this
//! count is exact.)

mod common;

use std::alloc::System;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Waker};

use common::{alive_tasks, settle_tasks};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use taskward::{Scope, supervised};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Bytes allocated and not freed since `region` began.
fn live(region: &Region<'_, System>) -> isize {
    let change = region.change();
    // A realloc counts its growth in `bytes_allocated` (and its shrinking
    // in `bytes_deallocated`) already.
    change.bytes_allocated as isize - change.bytes_deallocated as isize
}

#[supervised]
async fn spawner(scope: &Scope, children: usize) {
    for _ in 0..children {
        scope.spawn(async { Ok::<_, std::io::Error>(()) });
    }
    std::future::pending::<()>().await;
}

/// Taken for each measurement: the allocator's counts are the whole
/// process's, and the test harness runs tests on parallel threads.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The runtime of a measurement: two workers, as in the benchmarks.
fn two_workers() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap()
}

/// Runs `round` twice to warm up tokio and the allocator, then five times,
/// and returns the bytes still allocated after those five.
fn bytes_left_after<F, Fut>(round: F) -> isize
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    let runtime = two_workers();
    runtime.block_on(async {
        tokio::spawn(async move {
            let before = alive_tasks();
            for _ in 0..2 {
                round().await;
                settle_tasks(before).await;
            }
            let region = Region::new(GLOBAL);
            for _ in 0..5 {
                round().await;
                settle_tasks(before).await;
            }
            live(&region)
        })
        .await
        .unwrap()
    })
}

/// 5 rounds of 25 000 children: a leak of one byte per child would show;
/// what is allowed is for tokio's own buffers.
const SLACK: isize = 64 * 1024;

// Regression (found by loom, first checked through the resident set in
// `stress.rs`): a child whose task was aborted before it ever ran never
// told its parent it was gone, and the aborted tree leaked.
/// Trees dropped right after their body spawned 500 children (some run on
/// the other worker meanwhile, most are aborted before their first poll).
#[test]
fn trees_dropped_in_the_middle_of_their_work_leave_nothing_allocated() {
    let left = bytes_left_after(|| async {
        for _ in 0..50 {
            let mut run = Box::pin(taskward::run(spawner(500)));
            let mut cx = Context::from_waker(Waker::noop());
            assert!(Pin::new(&mut run).poll(&mut cx).is_pending());
            drop(run);
        }
    });
    assert!(left < SLACK, "{left} bytes still allocated after 5 rounds");
}

#[supervised]
async fn finisher(scope: &Scope, children: usize) {
    for _ in 0..children {
        scope.spawn(async { Ok::<_, std::io::Error>(()) });
    }
}

#[test]
fn trees_that_finish_leave_nothing_allocated() {
    let left = bytes_left_after(|| async {
        for _ in 0..50 {
            taskward::run(finisher(500)).await.unwrap();
        }
    });
    assert!(left < SLACK, "{left} bytes still allocated after 5 rounds");
}

// Regression: a scope kept a counter for every distinct child name it had
// ever seen, so a long-lived scope spawning `job-{i}` children grew without
// bound (8 MiB to 105 MiB over a million children).
/// A scope that lives on while 20 000 children named `job-{i}`, each name
/// new, come and go: what it keeps for names must not grow with them.
#[test]
fn a_long_lived_scope_forgets_the_names_of_children_that_are_gone() {
    use taskward::Task;

    const CHILDREN: usize = 20_000;
    async fn round(scope: &Scope, first: usize) {
        for i in first..first + CHILDREN {
            let job = async { Ok::<_, std::io::Error>(()) }.named(format!("job-{i}"));
            scope.spawn(job).await.unwrap();
        }
    }

    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    let runtime = two_workers();
    let left = runtime.block_on(taskward::run(taskward::task(|scope: Scope| async move {
        round(&scope, 0).await;
        let region = Region::new(GLOBAL);
        round(&scope, CHILDREN).await;
        round(&scope, 2 * CHILDREN).await;
        Ok::<_, std::io::Error>(live(&region))
    })));
    let left = left.unwrap();
    assert!(
        left < SLACK,
        "{left} bytes kept for 40 000 names of children that are gone"
    );
}
