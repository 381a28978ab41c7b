// A user crate that denies every warning compiles clean: the generated code
// carries the `#[allow]`s it needs. (`tests/pedantic.rs` checks the same
// functions under clippy.)
#![deny(warnings, clippy::pedantic)]

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
