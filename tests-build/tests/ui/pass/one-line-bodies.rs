// A crate that denies every warning and clippy's pedantic lints compiles
// supervised functions with one-line bodies, `#[must_use]` of their own and
// chains of task modifiers.
//
// Regression (issue 16): a one-line body `{ Ok(n) }` triggered
// `unused_braces`, with a broken suggested fix.
#![deny(warnings, clippy::pedantic)]

use std::time::Duration;

use taskward::{Policy, Scope, Task, supervised};

#[supervised]
async fn double(n: u32) -> Result<u32, std::io::Error> { Ok(n * 2) }

#[supervised]
async fn nothing() {}

#[supervised]
async fn unit_result() -> Result<(), std::io::Error> { Ok(()) }

/// Documented, and `#[must_use]` with its own message.
#[must_use = "spawn it"]
#[supervised]
pub async fn documented(scope: &Scope) -> Result<String, taskward::Error> { Ok(scope.path().to_owned()) }

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let chained = double(2).named("twice").policy(Policy::Supervise).timeout(Duration::from_secs(5));
    assert_eq!(taskward::run(chained).await.unwrap(), 4);
    taskward::run(nothing()).await.unwrap();
    taskward::run(unit_result()).await.unwrap();
    assert_eq!(taskward::run(documented()).await.unwrap(), "documented");
}
