use taskward::{Ready, supervised};

#[supervised(local)]
async fn server(ready: Ready<u16>) -> Result<(), std::io::Error> {
    ready.send(8080);
    Ok(())
}

fn main() {
    let _task = server();
}
