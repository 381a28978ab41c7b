use taskward::{Scope, supervised};

#[supervised]
async fn worker(id: u32) -> Result<u32, std::io::Error> {
    Ok(id)
}

#[supervised]
async fn app(scope: &Scope) -> Result<(), taskward::Error> {
    let id = scope.start(worker(1)).await?;
    assert_eq!(id, 1);
    Ok(())
}

fn main() {}
