use taskward::{Scope, supervised};

#[supervised]
async fn worker(scope: &mut Scope) -> Result<(), std::io::Error> {
    let _ = scope;
    Ok(())
}

fn main() {
    let _task = worker();
}
