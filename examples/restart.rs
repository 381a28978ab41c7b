//! A flaky worker, restarted with backoff until its restart budget is
//! spent (OTP's one_for_one, transient).
//!
//! ```text
//! cargo run --example restart
//! ```
//!
//! The first worker recovers on its third run. The second never does: it is
//! restarted four times, with delays that double (with jitter) from 50ms,
//! and then its last failure is the result, with the earlier ones in
//! `related()`. The program ends by itself in about a second.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use taskward::{Scope, Task, supervised};
use tokio::time::Instant;

/// Connects to a service that is down for its first `down_for` runs.
#[supervised]
async fn flaky(scope: &Scope, runs: Arc<AtomicU32>, down_for: u32) -> Result<&'static str, std::io::Error> {
    let run = runs.fetch_add(1, Ordering::SeqCst) + 1;
    tokio::time::sleep(Duration::from_millis(20)).await; // trying to connect
    if run <= down_for {
        println!("  {}: run {run} failed", scope.path());
        return Err(std::io::Error::other(format!("connection refused (run {run})")));
    }
    println!("  {}: run {run} connected", scope.path());
    Ok("connected")
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let start = Instant::now();

    println!("a worker that recovers:");
    let runs = Arc::new(AtomicU32::new(0));
    let recovers = taskward::restart(move || flaky(runs.clone(), 2))
        .backoff(Duration::from_millis(50), Duration::from_millis(400))
        .max_restarts(4, Duration::from_secs(10))
        .named("recovers");
    match taskward::run(recovers).await {
        Ok(status) => println!("=> {status}, after {:?}\n", start.elapsed()),
        Err(err) => println!("=> gave up: {err:#}\n"),
    }

    println!("a worker that never recovers:");
    let runs = Arc::new(AtomicU32::new(0));
    let never = taskward::restart(move || flaky(runs.clone(), u32::MAX))
        .backoff(Duration::from_millis(50), Duration::from_millis(400))
        .max_restarts(4, Duration::from_secs(10))
        .named("never");
    match taskward::run(never).await {
        Ok(status) => println!("=> {status}"),
        // `{:#}` lists the earlier failures (`related()`) too.
        Err(err) => println!("=> gave up after {:?}: {err:#}", start.elapsed()),
    }
}
