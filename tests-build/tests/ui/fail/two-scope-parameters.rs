use taskward::{Scope, supervised};

#[supervised]
async fn worker(scope: &Scope, id: u32, other: &Scope) -> Result<u32, std::io::Error> {
    let _ = (scope, other);
    Ok(id)
}

fn main() {
    let _task = worker(1);
}
