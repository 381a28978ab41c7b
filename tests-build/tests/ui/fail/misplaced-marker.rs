use taskward::{CancellationToken, supervised};

#[supervised]
async fn worker(#[scope] #[token] stop: CancellationToken, #[ready(u16)] id: u32) -> Result<u32, std::io::Error> {
    let _ = stop;
    Ok(id)
}

fn main() {}
