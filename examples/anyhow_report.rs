//! anyhow in `main`: a failure deep in the tree comes back through
//! `run(...).await?`, and anyhow's report prints each task's path and each
//! message once.
//!
//! ```text
//! cargo run --example anyhow_report --features anyhow
//! ```

use anyhow::Context as _;
use taskward::{Scope, Task, supervised};

#[derive(Debug)]
struct ParseError(String);

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "parsing {:?}", self.0)
    }
}

impl std::error::Error for ParseError {}

#[supervised]
async fn parse(input: &'static str) -> Result<u32, ParseError> {
    input.parse().map_err(|_| ParseError(input.to_owned()))
}

/// A parent whose error type is anyhow's: the child's failure goes through
/// it with context and keeps its origin.
#[supervised]
async fn load(scope: &Scope) -> anyhow::Result<u32> {
    let value = scope.spawn(parse("oops")).await.context("loading the settings")?;
    Ok(value)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let result = taskward::run(load().named("app")).await;
    if let Err(err) = &result {
        // Where it started, and its original type, both survive.
        println!("failed in `{}`: {:?}", err.task(), err.downcast_ref::<ParseError>());
        println!("the report `main` returns:");
    }
    result?;
    Ok(())
}
