//! The parameters of a `#[supervised]` function live as long as its body,
//! as those of an `async fn` do, even the ones the body never names.
//!
//! Regression (issue 20): a parameter the body did not use (`_permit`,
//! `_guard`, `_`) was dropped when the function was called, not when its
//! body ended, so a pool limited by semaphore permits ran unlimited.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Gauge, bounded, quiet_panics};
use taskward::{CancellationToken, Scope, supervised};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[supervised]
async fn limited(_permit: OwnedSemaphorePermit, gauge: Gauge) -> std::io::Result<()> {
    let _running = gauge.enter();
    tokio::time::sleep(Duration::from_millis(10)).await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_semaphore_permit_limits_a_pool_until_each_body_ends() {
    let gauge = Gauge::default();
    let seen = gauge.clone();
    bounded(taskward::run(taskward::task(|scope: Scope| async move {
        let permits = Arc::new(Semaphore::new(2));
        for _ in 0..8 {
            let permit = Arc::clone(&permits).acquire_owned().await.unwrap();
            scope.spawn(limited(permit, gauge.clone()));
        }
        Ok::<_, taskward::Error>(())
    })))
    .await
    .unwrap();
    assert_eq!(seen.peak(), 2, "the permits bound the pool");
}

/// Writes its name to a shared log when dropped.
struct Noisy(&'static str, Arc<Mutex<Vec<&'static str>>>);

impl Drop for Noisy {
    fn drop(&mut self) {
        self.1.lock().unwrap().push(self.0);
    }
}

type Log = Arc<Mutex<Vec<&'static str>>>;

async fn native(_guard: Noisy, _: Noisy, (_left, _right): (Noisy, Noisy), named: Noisy, log: Log) {
    tokio::task::yield_now().await;
    let _local = Noisy("local", Arc::clone(&log));
    log.lock().unwrap().push(named.0);
    log.lock().unwrap().push("body ends");
}

#[supervised]
async fn supervised(_guard: Noisy, _: Noisy, (_left, _right): (Noisy, Noisy), named: Noisy, log: Log) {
    tokio::task::yield_now().await;
    let _local = Noisy("local", Arc::clone(&log));
    log.lock().unwrap().push(named.0);
    log.lock().unwrap().push("body ends");
}

fn noisy(log: &Log) -> [Noisy; 5] {
    ["guard", "underscore", "left", "right", "named"].map(|name| Noisy(name, Arc::clone(log)))
}

#[tokio::test]
async fn parameters_drop_when_the_body_ends_in_the_order_of_an_async_fn() {
    let native_log = Log::default();
    let [guard, underscore, left, right, named] = noisy(&native_log);
    let call = native(guard, underscore, (left, right), named, Arc::clone(&native_log));
    assert!(
        native_log.lock().unwrap().is_empty(),
        "an async fn keeps its parameters"
    );
    call.await;

    let log = Log::default();
    let [guard, underscore, left, right, named] = noisy(&log);
    let task = supervised(guard, underscore, (left, right), named, Arc::clone(&log));
    assert!(log.lock().unwrap().is_empty(), "nothing is dropped at the call");
    taskward::run(task).await.unwrap();

    let log = log.lock().unwrap().clone();
    assert_eq!(log, *native_log.lock().unwrap());
    assert_eq!(log[..3], ["named", "body ends", "local"], "{log:?}");
    assert_eq!(log.len(), 8, "every parameter is dropped once: {log:?}");
}

struct Owner(Log);

impl Owner {
    #[supervised]
    async fn unused_self(self: Arc<Self>, log: Log) {
        tokio::task::yield_now().await;
        log.lock().unwrap().push("body ends");
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.0.lock().unwrap().push("self");
    }
}

#[tokio::test]
async fn an_unused_self_lives_until_the_body_ends() {
    let log = Log::default();
    let task = Arc::new(Owner(Arc::clone(&log))).unused_self(Arc::clone(&log));
    assert!(log.lock().unwrap().is_empty(), "`self` is kept by the task");
    taskward::run(task).await.unwrap();
    assert_eq!(*log.lock().unwrap(), ["body ends", "self"]);
}

/// Whether the runtime handed this body its scope, which only the code
/// `#[supervised]` generates may take (`__private::scope`, which panics
/// when there is none to take).
fn handed_a_scope() -> bool {
    std::panic::catch_unwind(taskward::__private::scope).is_ok()
}

/// Names neither its scope nor its token.
#[supervised]
async fn unscoped(log: Arc<Mutex<Vec<bool>>>) -> Result<(), taskward::Error> {
    log.lock().unwrap().push(handed_a_scope());
    Ok(())
}

/// A body that names neither its scope nor its token is not handed the
/// scope, whether it is spawned, a member of a group, or run as a root: its
/// task keeps no second reference to its node for as long as it runs. One
/// that names its token still gets its scope, which the generated code
/// takes (so none is left to take after it).
#[tokio::test]
async fn a_body_that_names_neither_scope_nor_token_is_not_handed_one() {
    #[supervised]
    async fn with_token(token: CancellationToken, log: Arc<Mutex<Vec<bool>>>) -> Result<(), taskward::Error> {
        assert!(!token.is_cancelled());
        log.lock().unwrap().push(handed_a_scope());
        Ok(())
    }

    quiet_panics("`__private::scope`");
    let log = Arc::new(Mutex::new(Vec::new()));
    taskward::run(unscoped(Arc::clone(&log))).await.unwrap();
    let seen = Arc::clone(&log);
    taskward::run(taskward::task(move |scope: Scope| async move {
        scope.spawn(unscoped(Arc::clone(&seen))).await?;
        scope.spawn(with_token(Arc::clone(&seen))).await?;
        let mut group = scope.group();
        group.spawn(unscoped(Arc::clone(&seen)));
        group.next().await.expect("one member")?;
        Ok::<_, taskward::Error>(())
    }))
    .await
    .unwrap();
    assert_eq!(*log.lock().unwrap(), [false; 4]);
}
