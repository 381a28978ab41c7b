// `#[tracing::instrument]` on either side of `#[supervised]` instruments the
// body, knows the supplied parameters (`skip(scope)`), and works on methods
// and with `err`.
#![deny(warnings)]

use std::sync::Arc;

use taskward::{CancellationToken, Scope, supervised};

#[supervised]
#[tracing::instrument(skip(scope, token))]
async fn below(scope: &Scope, token: CancellationToken, id: u32) -> Result<u32, std::io::Error> {
    tracing::info!(path = scope.path(), cancelled = token.is_cancelled());
    Ok(id)
}

#[tracing::instrument(skip(scope), err)]
#[supervised(name = "renamed")]
async fn above(scope: &Scope, id: u32) -> Result<u32, std::io::Error> {
    tracing::info!(path = scope.path());
    Ok(id)
}

#[derive(Debug)]
struct Service;

impl Service {
    #[supervised]
    #[tracing::instrument(skip(self, scope))]
    async fn handle(self: Arc<Self>, scope: Scope, id: u32) {
        tracing::info!(path = scope.path(), id);
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(taskward::run(below(1)).await.unwrap(), 1);
    assert_eq!(taskward::run(above(2)).await.unwrap(), 2);
    taskward::run(Arc::new(Service).handle(3)).await.unwrap();
}
