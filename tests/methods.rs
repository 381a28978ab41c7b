//! `#[supervised]` on associated functions: `self` by value and
//! `self: Arc<Self>`, generic functions, and the scope and token parameters
//! at any position.

use std::sync::Arc;

use taskward::{CancellationToken, Error, Scope, supervised};

struct Crawler {
    max_depth: u32,
}

impl Crawler {
    #[supervised]
    async fn crawl(self: Arc<Self>, depth: u32, scope: &Scope) -> Result<u32, Error> {
        if depth == self.max_depth {
            return Ok(1);
        }
        let a = scope.spawn(Arc::clone(&self).crawl(depth + 1));
        let b = scope.spawn(self.crawl(depth + 1));
        Ok(a.await? + b.await?)
    }

    #[supervised(name = "new-crawler")]
    async fn build(max_depth: u32) -> Result<Crawler, std::io::Error> {
        Ok(Crawler { max_depth })
    }
}

struct Counter(u32);

impl Counter {
    #[supervised]
    async fn into_total(mut self, token: CancellationToken, extra: u32) -> Result<u32, std::io::Error> {
        assert!(!token.is_cancelled());
        self.0 += extra;
        Ok(self.0)
    }
}

#[supervised]
async fn describe<T>(value: T, token: CancellationToken, scope: Scope) -> Result<String, Error>
where
    T: std::fmt::Debug + Send + 'static,
{
    let _ = token;
    Ok(format!("{value:?} in {}", scope.path()))
}

#[tokio::test]
async fn a_method_taking_arc_self_spawns_itself() {
    let crawler = Arc::new(Crawler { max_depth: 4 });
    assert_eq!(taskward::run(crawler.crawl(0)).await.unwrap(), 16);
}

#[tokio::test]
async fn associated_functions_and_self_by_value() {
    let crawler = taskward::run(Crawler::build(2)).await.unwrap();
    assert_eq!(crawler.max_depth, 2);
    assert_eq!(taskward::run(Counter(40).into_total(2)).await.unwrap(), 42);
}

#[tokio::test]
async fn a_generic_function_with_scope_and_token_after_other_parameters() {
    assert_eq!(taskward::run(describe(vec![1, 2])).await.unwrap(), "[1, 2] in describe");
}
