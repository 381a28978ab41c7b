use taskward::{Ready, supervised};

#[supervised]
async fn server(ready: &Ready<u16>) -> Result<(), std::io::Error> {
    let _ = ready;
    Ok(())
}

fn main() {
    let _task = server();
}
