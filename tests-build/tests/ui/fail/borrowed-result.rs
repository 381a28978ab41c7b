use taskward::supervised;

#[supervised]
async fn label(id: u32) -> Result<&str, std::io::Error> {
    let _ = id;
    Ok("label")
}

fn main() {
    let _task = label(1);
}
