// `#[supervised(local)]`: a body that holds an `Rc` across an `.await` is
// not `Send`; its task is spawned with `scope.spawn_local` on the tree's
// `LocalSet`, with a scope of its own.
#![deny(warnings)]

use std::cell::RefCell;
use std::rc::Rc;

use taskward::{Root, Scope, supervised};

#[supervised(local, name = "counter-{id}", policy = supervise)]
async fn counter(scope: &Scope, id: u32) -> Result<String, std::io::Error> {
    let seen = Rc::new(RefCell::new(Vec::new()));
    for n in 0..3 {
        seen.borrow_mut().push(n);
        tokio::task::yield_now().await;
    }
    Ok(format!("{} {}", scope.path(), seen.borrow().len()))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let out = Root::new()
        .run_local(taskward::task(|scope: Scope| async move { scope.spawn_local(counter(7)).await }))
        .await
        .unwrap();
    assert_eq!(out, "task/counter-7 3");
}
