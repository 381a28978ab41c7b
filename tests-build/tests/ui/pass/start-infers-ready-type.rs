// `scope.start(task)` takes the type of its value from the task's `Ready<T>`:
// no annotation, through `#[supervised]` parameters (plain or marked),
// modifiers and `task_with_ready` closures.
#![deny(warnings)]

use std::net::SocketAddr;
use std::time::Duration;

use taskward::{Ready, Scope, Task, supervised};

type Up = Ready<&'static str>;

#[supervised]
async fn server(scope: &Scope, ready: Ready<SocketAddr>) -> Result<(), std::io::Error> {
    ready.send(SocketAddr::from(([127, 0, 0, 1], 8080)));
    scope.cancelled().await;
    Ok(())
}

#[supervised]
async fn marked(#[ready] up: Up) {
    up.send("up");
}

#[supervised]
async fn app(scope: &Scope) -> Result<(), taskward::Error> {
    // A method call needs the type known here: it comes from `server`.
    let addr = scope.start(server()).await?;
    assert!(addr.ip().is_loopback());
    let port = scope.start(server().named("api").timeout(Duration::from_secs(5))).await?.port();
    assert_eq!(port, 8080);
    assert_eq!(scope.start(marked()).await?.len(), 2);
    let id = scope
        .start(taskward::task_with_ready(|scope, ready| async move {
            ready.send(7u64);
            scope.cancelled().await;
        }))
        .await?;
    assert_eq!(id.leading_zeros(), 61);
    scope.cancel();
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    taskward::run(app()).await.unwrap();
}
