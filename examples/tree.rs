//! Watching a task tree live: a crawler with a worker per site and a fetcher
//! per page prints its tree every 200 ms, until one fetch fails and the tree
//! stops; then the full failure report.
//!
//! ```text
//! cargo run --example tree
//! ```

use std::time::Duration;

use taskward::{CancellationToken, Error, Root, Scope, Task, supervised};

#[derive(Debug)]
struct FetchError {
    url: String,
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} answered 503", self.url)
    }
}

impl std::error::Error for FetchError {}

/// One page: takes a while, stops early when told to.
#[supervised(name = "fetch")]
async fn fetch(token: CancellationToken, url: String, millis: u64) -> Result<usize, FetchError> {
    if url.ends_with("/broken") {
        tokio::time::sleep(Duration::from_millis(millis)).await;
        return Err(FetchError { url });
    }
    let done = token
        .run_until_cancelled(tokio::time::sleep(Duration::from_millis(millis)))
        .await;
    Ok(if done.is_some() { url.len() } else { 0 })
}

/// One site: a fetcher per page, then a short pause before the next batch.
#[supervised(name = "site")]
async fn site(scope: &Scope, host: &'static str, pages: u64) -> Result<usize, Error> {
    let mut bytes = 0;
    for batch in 0..2 {
        let fetches: Vec<_> = (0..pages)
            .map(|page| {
                let path = if host == "c.example" && batch == 1 && page == 1 {
                    "broken".to_owned()
                } else {
                    format!("page{page}")
                };
                scope.spawn(fetch(format!("https://{host}/{path}"), 150 + 120 * page))
            })
            .collect();
        for fetch in fetches {
            bytes += fetch.await?;
        }
    }
    Ok(bytes)
}

#[supervised(name = "crawler")]
async fn crawler(scope: &Scope) -> Result<usize, Error> {
    let sites: Vec<_> = [("a.example", 2), ("b.example", 3), ("c.example", 2)]
        .into_iter()
        .map(|(host, pages)| scope.spawn(site(host, pages).named(host)))
        .collect();
    let mut total = 0;
    for site in sites {
        total += site.await?;
    }
    Ok(total)
}

#[tokio::main]
async fn main() {
    let root = Root::new().grace(Duration::from_secs(1));
    let monitor = root.monitor();
    let run = root.run(crawler());
    tokio::pin!(run);

    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let result = loop {
        tokio::select! {
            result = &mut run => break result,
            _ = tick.tick() => {
                let tree = monitor.snapshot();
                if !tree.is_empty() {
                    println!("{tree}\n");
                }
            }
        }
    };

    match result {
        Ok(bytes) => println!("crawled {bytes} bytes"),
        Err(err) => println!("the crawl stopped:\n{err:#}"),
    }
}
