use taskward::{Error, Scope, supervised};

#[supervised]
async fn find(n: u32) -> Option<u32> {
    Some(n)
}

#[supervised]
async fn caller(scope: &Scope) -> Result<u32, Error> {
    let found = scope.spawn(find(1)).await?;
    Ok(found.unwrap_or_default())
}

fn main() {}
