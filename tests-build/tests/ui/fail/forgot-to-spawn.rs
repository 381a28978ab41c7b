#![deny(unused_must_use)]

use taskward::supervised;

#[supervised]
async fn work(n: u32) -> Result<u32, std::io::Error> {
    Ok(n)
}

fn main() {
    work(1);
}
