// `#[supervised(name = "...")]` formats the task's name from its parameters
// (captured by name, with format specs, `{{` for a brace), generic ones
// included, on free functions and methods; a parameter used only by the
// name is not reported unused.
#![deny(warnings)]

use std::fmt::Display;

use taskward::{Scope, supervised};

#[supervised(name = "chunk-{part:02}-of-{job}")]
async fn chunk(scope: &Scope, job: String, part: usize) -> Result<String, std::io::Error> {
    Ok(scope.path().to_owned())
}

#[supervised(name = "{{item {id}}}")]
async fn item<T: Display + Clone + Send + 'static>(scope: &Scope, id: T) -> Result<String, std::io::Error> {
    Ok(format!("{} {id}", scope.path()))
}

struct Shard {
    index: u32,
}

impl Shard {
    #[supervised(name = "shard-{copy}")]
    async fn run(self, copy: u8) -> Result<u32, std::io::Error> {
        Ok(self.index)
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(taskward::run(chunk("a".to_owned(), 7)).await.unwrap(), "chunk-07-of-a");
    assert_eq!(taskward::run(item("x")).await.unwrap(), "{item x} x");
    assert_eq!(taskward::run(Shard { index: 3 }.run(1)).await.unwrap(), 3);
}
