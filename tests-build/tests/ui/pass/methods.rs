// Methods take `self` by value or `self: Arc<Self>`; associated functions
// without a receiver work too, also in generic impl blocks.
#![deny(warnings)]

use std::sync::Arc;

use taskward::{CancellationToken, Scope, supervised};

struct Counter {
    start: u64,
}

impl Counter {
    #[supervised]
    async fn new_counter(start: u64) -> Result<Counter, std::io::Error> {
        Ok(Counter { start })
    }

    #[supervised]
    async fn finish(self, add: u64) -> Result<u64, std::io::Error> {
        Ok(self.start + add)
    }

    #[supervised]
    async fn bump(mut self) -> Result<u64, std::io::Error> {
        self.start += 1;
        Ok(self.start)
    }

    #[supervised]
    async fn shared(self: Arc<Self>, token: CancellationToken) -> Result<u64, std::io::Error> {
        Ok(if token.is_cancelled() { 0 } else { self.start })
    }

    #[supervised]
    async fn fan_out(self: Arc<Self>, scope: &Scope, count: u64) -> Result<u64, taskward::Error> {
        let children: Vec<_> = (0..count).map(|_| scope.spawn(Arc::clone(&self).shared())).collect();
        let mut total = 0;
        for child in children {
            total += child.await?;
        }
        Ok(total)
    }
}

struct Store<T> {
    items: Vec<T>,
}

impl<T> Store<T>
where
    T: Clone + Send + Sync + 'static,
{
    #[supervised]
    async fn first(self: Arc<Self>) -> Result<Option<T>, std::io::Error> {
        Ok(self.items.first().cloned())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let counter = taskward::run(Counter::new_counter(40)).await.unwrap();
    assert_eq!(taskward::run(counter.finish(2)).await.unwrap(), 42);
    assert_eq!(taskward::run(Counter { start: 1 }.bump()).await.unwrap(), 2);
    let shared = Arc::new(Counter { start: 5 });
    assert_eq!(taskward::run(shared.fan_out(3)).await.unwrap(), 15);
    let store = Arc::new(Store { items: vec!["a"] });
    assert_eq!(taskward::run(store.first()).await.unwrap(), Some("a"));
}
