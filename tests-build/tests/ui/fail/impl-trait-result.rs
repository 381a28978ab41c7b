use std::fmt::Display;

use taskward::supervised;

#[supervised]
async fn show(id: u32) -> Result<impl Display, std::io::Error> {
    Ok(id)
}

fn main() {
    let _task = show(1);
}
