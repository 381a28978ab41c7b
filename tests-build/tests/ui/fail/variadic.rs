use taskward::supervised;

#[supervised]
async fn worker(id: u32, rest: ...) -> Result<u32, std::io::Error> {
    Ok(id)
}

fn main() {
    let _task = worker(1);
}
