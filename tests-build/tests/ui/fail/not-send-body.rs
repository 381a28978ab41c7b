use std::rc::Rc;

use taskward::supervised;

#[supervised]
async fn worker(id: u32) -> Result<u32, std::io::Error> {
    let shared = Rc::new(id);
    tokio::task::yield_now().await;
    Ok(*shared)
}

fn main() {
    let _task = worker(1);
}
