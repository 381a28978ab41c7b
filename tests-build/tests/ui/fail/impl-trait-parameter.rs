use std::fmt::Display;

use taskward::supervised;

#[supervised]
async fn show(value: impl Display + Send + 'static) -> Result<String, std::io::Error> {
    Ok(value.to_string())
}

fn main() {
    let _task = show(1);
}
