use taskward::{Ready, Scope, supervised};

#[supervised]
async fn listener(ready: Ready<u16>) -> Result<(), std::io::Error> {
    ready.send(8080);
    Ok(())
}

#[supervised]
async fn app(scope: &Scope) -> Result<(), taskward::Error> {
    let port: u32 = scope.start(listener()).await?;
    assert_eq!(port, 8080);
    Ok(())
}

fn main() {}
