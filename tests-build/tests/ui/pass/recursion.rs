// A supervised function spawns itself: its task type is a named type, so the
// compiler can check that it is `Send` inside its own definition.
#![deny(warnings)]

use taskward::{Scope, supervised};

#[supervised]
async fn total(scope: &Scope, items: Vec<u64>) -> Result<u64, taskward::Error> {
    if items.len() <= 1 {
        return Ok(items.iter().sum());
    }
    let (left, right) = items.split_at(items.len() / 2);
    let left = scope.spawn(total(left.to_vec()));
    let right = scope.spawn(total(right.to_vec()));
    Ok(left.await? + right.await?)
}

#[supervised]
async fn countdown(scope: &Scope, n: u32) {
    if n > 0 {
        let _ = scope.spawn(countdown(n - 1));
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(taskward::run(total((1..=100).collect())).await.unwrap(), 5050);
    taskward::run(countdown(10)).await.unwrap();
}
