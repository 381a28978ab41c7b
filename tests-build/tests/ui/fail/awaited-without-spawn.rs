use taskward::{Error, Scope, supervised};

#[supervised]
async fn work(n: u32) -> Result<u32, Error> {
    Ok(n)
}

#[supervised]
async fn caller(_scope: &Scope) -> Result<u32, Error> {
    let n = work(1).await?;
    Ok(n + 1)
}

fn main() {}
