// Type and const parameters, bounds inline and in where-clauses, and a
// generic error type: all pass through the rewrite.
#![deny(warnings)]

use std::fmt::Debug;

use taskward::{Scope, supervised};

#[supervised]
async fn echo<T: Send + 'static>(value: T) -> Result<T, std::io::Error> {
    Ok(value)
}

#[supervised]
async fn describe<T, E>(scope: &Scope, value: T) -> Result<String, E>
where
    T: Debug + Send + 'static,
    E: std::error::Error + Send + Sync + 'static,
{
    Ok(format!("{} got {value:?}", scope.path()))
}

#[supervised]
async fn sum<const N: usize>(values: [u32; N]) -> Result<u32, std::io::Error> {
    Ok(values.iter().sum())
}

#[supervised]
async fn pair<A, B>(a: A, b: B) -> Result<(A, B), std::io::Error>
where
    A: Send + 'static,
    B: Send + 'static,
{
    Ok((a, b))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(taskward::run(echo(7_u8)).await.unwrap(), 7);
    assert_eq!(taskward::run(echo(String::from("x"))).await.unwrap(), "x");
    let described = taskward::run(describe::<_, std::io::Error>(vec![1, 2])).await.unwrap();
    assert_eq!(described, "describe got [1, 2]");
    assert_eq!(taskward::run(sum([1, 2, 3])).await.unwrap(), 6);
    assert_eq!(taskward::run(pair(1, "b")).await.unwrap(), (1, "b"));
}
