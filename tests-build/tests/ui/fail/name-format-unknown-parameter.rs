use taskward::{Scope, supervised};

#[supervised(name = "chunk-{chunk}")]
async fn chunk(scope: &Scope, job: u32, part: usize) -> Result<(), std::io::Error> {
    let _ = (scope, job, part);
    Ok(())
}

fn main() {
    let _task = chunk(1, 2);
}
