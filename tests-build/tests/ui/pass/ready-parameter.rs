#![deny(warnings)]

use taskward::{Ready, Scope, supervised};

#[supervised]
async fn listener(port: u16, ready: Ready<u16>, scope: &Scope) -> Result<(), std::io::Error> {
    ready.send(port);
    scope.cancelled().await;
    Ok(())
}

#[supervised]
async fn app(scope: &Scope) -> Result<u16, taskward::Error> {
    let port = scope.start(listener(8080)).await?;
    scope.cancel();
    Ok(port)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(taskward::run(app()).await.unwrap(), 8080);
}
