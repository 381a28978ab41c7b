use std::borrow::Cow;

use taskward::supervised;

#[supervised]
async fn greet<'a>(name: Cow<'a, str>) -> Result<String, std::io::Error> {
    Ok(format!("hello, {name}"))
}

fn main() {
    let _task = greet(Cow::Borrowed("world"));
}
