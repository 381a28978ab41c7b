use taskward::{CancellationToken, supervised};

#[supervised]
async fn worker(token: CancellationToken, stop: CancellationToken) -> Result<bool, std::io::Error> {
    Ok(token.is_cancelled() || stop.is_cancelled())
}

fn main() {
    let _task = worker();
}
