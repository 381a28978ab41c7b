//! Happy eyeballs: ask several mirrors at once, keep the first answer.
//!
//! ```text
//! cargo run --example mirrors
//! ```
//!
//! `taskward::race` runs one task per mirror. The first to answer wins; the
//! others are cancelled, learn why from `cancel_cause()`, and are joined
//! before `race` returns, so nothing is left downloading. A second race in
//! which every mirror fails returns every failure. It ends by itself in
//! well under a second.

use std::time::Duration;

use taskward::{Scope, supervised};

/// Fetches from `mirror`, which answers after `delay` (or fails if
/// `broken`), unless the race is decided first.
#[supervised]
async fn fetch(scope: &Scope, mirror: String, delay: Duration, broken: bool) -> std::io::Result<String> {
    tokio::select! {
        () = tokio::time::sleep(delay) => {
            if broken {
                println!("  {mirror}: failed after {delay:?}");
                return Err(std::io::Error::other(format!("{mirror} is down")));
            }
            println!("  {mirror}: answered after {delay:?}");
            Ok(format!("release notes from {mirror}"))
        }
        () = scope.cancelled() => {
            let why = scope.cancel_cause().map(|cause| cause.to_string()).unwrap_or_default();
            println!("  {mirror}: stopped ({why})");
            Err(std::io::Error::other("stopped"))
        }
    }
}

fn mirrors(all_broken: bool) -> Vec<taskward::Supervised<std::io::Result<String>>> {
    [("eu", 120, false), ("us", 40, all_broken), ("asia", 80, all_broken)]
        .into_iter()
        .map(|(name, ms, broken)| fetch(name.to_owned(), Duration::from_millis(ms), broken || name == "eu"))
        .collect()
}

#[tokio::main]
async fn main() {
    println!("race of three mirrors (eu is down):");
    match taskward::run(taskward::race(mirrors(false))).await {
        Ok(body) => println!("=> {body}"),
        Err(err) => println!("=> {err:#}"),
    }

    println!("race where every mirror is down:");
    match taskward::run(taskward::race(mirrors(true))).await {
        Ok(body) => println!("=> {body}"),
        Err(err) => println!("=> {err:#}"),
    }
}
