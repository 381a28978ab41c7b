use taskward::supervised;

#[supervised]
async fn greet(name: &str) -> Result<String, std::io::Error> {
    Ok(format!("hello, {name}"))
}

fn main() {
    let _task = greet("world");
}
