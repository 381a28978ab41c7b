use taskward::supervised;

#[supervised]
async fn keep<'a, T: Send + 'a>(value: T) -> Result<usize, std::io::Error> {
    let _ = value;
    Ok(0)
}

fn main() {
    let _task = keep(1);
}
