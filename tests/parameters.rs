//! The parameters of a `#[supervised]` function live as long as its body,
//! as those of an `async fn` do, even the ones the body never names.
//!
//! Regression (issue 20): a parameter the body did not use (`_permit`,
//! `_guard`, `_`) was dropped when the function was called, not when its
//! body ended, so a pool limited by semaphore permits ran unlimited.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Gauge, bounded};
use taskward::{Scope, supervised};
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
