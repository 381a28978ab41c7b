// A generic function whose bounds are in a where-clause, and a method of a
// generic impl, use the value of a child of their own type parameter.
//
// Regression (issue 20): the bound `Result<T, E>: TaskResult` that the
// macro added to the where-clause hid the value type: `let v: T =
// scope.spawn(first(..)).await?` failed with "expected `T`, found `<Result<T,
// Error> as TaskResult>::Ok`".
#![deny(warnings)]

use std::sync::Arc;

use taskward::{Error, Scope, supervised};

#[supervised]
async fn first<T>(scope: &Scope, mut items: Vec<T>) -> Result<T, Error>
where
    T: Clone + Send + 'static,
{
    if items.len() > 1 {
        items.truncate(1);
        let value: T = scope.spawn(first(items)).await?;
        return Ok(value);
    }
    Ok(items.remove(0))
}

#[supervised]
async fn relay<T>(scope: &Scope, items: Vec<T>) -> Result<Vec<T>, Error>
where
    T: Clone + Send + 'static,
{
    let value: T = scope.spawn(first(items)).await?;
    Ok(vec![value])
}

struct Crawler<T> {
    pages: Vec<T>,
}

impl<T> Crawler<T>
where
    T: Clone + Send + Sync + 'static,
{
    #[supervised]
    async fn crawl(self: Arc<Self>, scope: &Scope, depth: usize) -> Result<T, Error> {
        if depth + 1 < self.pages.len() {
            let page: T = scope.spawn(Arc::clone(&self).crawl(depth + 1)).await?;
            return Ok(page);
        }
        Ok(self.pages[depth].clone())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(taskward::run(first(vec![1, 2, 3])).await.unwrap(), 1);
    assert_eq!(taskward::run(relay(vec!["a", "b"])).await.unwrap(), ["a"]);
    let crawler = Arc::new(Crawler { pages: vec!["home", "about", "team"] });
    assert_eq!(taskward::run(crawler.crawl(0)).await.unwrap(), "team");
}
