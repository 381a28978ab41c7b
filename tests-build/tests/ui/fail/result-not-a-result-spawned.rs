// A result that is not a task result is one error, at the return type,
// however the task is then used (spawned, awaited, run).
use taskward::{Error, Scope, supervised};

#[supervised]
async fn double(n: u32) -> u32 {
    n * 2
}

#[supervised]
async fn caller(scope: &Scope) -> Result<u32, Error> {
    let a = scope.spawn(double(1)).await?;
    let b = taskward::run(double(2)).await?;
    Ok(a + b)
}

fn main() {}
