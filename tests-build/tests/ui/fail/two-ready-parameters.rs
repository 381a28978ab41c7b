use taskward::{Ready, supervised};

#[supervised]
async fn server(ready: Ready<u16>, again: Ready<u16>) -> Result<(), std::io::Error> {
    ready.send(8080);
    again.send(8081);
    Ok(())
}

fn main() {
    let _task = server();
}
