use taskward::{Scope, supervised};

#[supervised]
async fn leaf() {}

#[supervised]
async fn serve(scope: &Scope) {
    tokio::spawn(async move {
        scope.spawn(leaf());
    });
}

fn main() {}
