use std::rc::Rc;

use taskward::{Scope, supervised};

#[supervised(local)]
async fn counter(n: u32) -> Result<u32, std::io::Error> {
    let shared = Rc::new(n);
    tokio::task::yield_now().await;
    Ok(*shared)
}

#[supervised]
async fn app(scope: &Scope) -> Result<u32, taskward::Error> {
    scope.spawn(counter(1)).await
}

fn main() {}
