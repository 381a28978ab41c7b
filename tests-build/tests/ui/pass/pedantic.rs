// A user crate that denies every warning, and the stricter lints that are
// allowed by default, compiles clean: the generated code carries the
// `#[allow]`s it needs. (`tests/pedantic.rs` checks supervised functions
// under clippy, which trybuild does not run.)
#![deny(warnings, clippy::pedantic)]
#![deny(
    rust_2018_idioms,
    let_underscore_drop,
    missing_debug_implementations,
    single_use_lifetimes,
    trivial_casts,
    trivial_numeric_casts,
    unit_bindings,
    unreachable_pub,
    unused_lifetimes,
    unused_qualifications,
    unused_results
)]

use taskward::{CancellationToken, Scope, supervised};

#[supervised]
async fn leaf(token: CancellationToken, id: u64) -> Result<u64, std::io::Error> {
    if token.is_cancelled() {
        return Ok(0);
    }
    Ok(id)
}

#[supervised(policy = supervise)]
async fn tree(scope: &Scope, width: u64) -> Result<u64, taskward::Error> {
    let children: Vec<_> = (0..width).map(|id| scope.spawn(leaf(id))).collect();
    let mut total = 0;
    for child in children {
        total += child.await?;
    }
    Ok(total)
}

#[supervised]
async fn nothing() {}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(taskward::run(tree(4)).await.unwrap(), 6);
    taskward::run(nothing()).await.unwrap();
}
