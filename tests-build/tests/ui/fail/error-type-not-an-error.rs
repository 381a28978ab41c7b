use taskward::supervised;

#[derive(Debug)]
struct Failure;

#[supervised]
async fn worker(id: u32) -> Result<u32, Failure> {
    if id == 0 { Err(Failure) } else { Ok(id) }
}

fn main() {}
