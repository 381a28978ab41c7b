use taskward::supervised;

#[supervised(name = "fetch", policy = supervise, name = "download")]
async fn worker(id: u32) -> Result<u32, std::io::Error> {
    Ok(id)
}

fn main() {
    let _task = worker(1);
}
