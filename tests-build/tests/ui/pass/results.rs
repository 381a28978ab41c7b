// Every accepted result: `std::io::Result`, `anyhow::Result`, a custom error,
// a boxed error, a `Result` alias with a custom error, an uninhabited one
// (a server that only ever fails), and `()`.
#![deny(warnings)]

use std::convert::Infallible;
use std::fmt;

use taskward::supervised;

#[derive(Debug)]
struct DiskFull;

impl fmt::Display for DiskFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("disk full")
    }
}

impl std::error::Error for DiskFull {}

type StoreResult<T> = Result<T, DiskFull>;

#[supervised]
async fn io_result(fail: bool) -> std::io::Result<u32> {
    if fail {
        return Err(std::io::Error::other("broken pipe"));
    }
    Ok(1)
}

#[supervised]
async fn anyhow_result(input: String) -> anyhow::Result<u32> {
    let parsed: u32 = input.parse()?;
    anyhow::ensure!(parsed > 0, "zero");
    Ok(parsed)
}

#[supervised]
async fn custom_error(fail: bool) -> Result<(), DiskFull> {
    if fail { Err(DiskFull) } else { Ok(()) }
}

#[supervised]
async fn alias(fail: bool) -> StoreResult<&'static str> {
    if fail { Err(DiskFull) } else { Ok("stored") }
}

#[supervised]
async fn boxed(input: String) -> Result<u8, Box<dyn std::error::Error + Send + Sync>> {
    Ok(input.parse()?)
}

#[supervised]
async fn serve_until_cancelled(token: taskward::CancellationToken) -> Result<Infallible, Infallible> {
    loop {
        token.cancelled().await;
    }
}

#[supervised]
async fn unit(values: Vec<u32>) {
    assert_eq!(values.len(), 2);
}

#[supervised]
async fn explicit_unit() -> () {}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(taskward::run(io_result(false)).await.unwrap(), 1);
    let failed = taskward::run(io_result(true)).await.unwrap_err();
    assert_eq!(failed.downcast_ref::<std::io::Error>().unwrap().to_string(), "broken pipe");
    assert_eq!(taskward::run(anyhow_result("12".to_owned())).await.unwrap(), 12);
    assert!(taskward::run(anyhow_result("x".to_owned())).await.is_err());
    taskward::run(custom_error(false)).await.unwrap();
    assert!(taskward::run(custom_error(true)).await.unwrap_err().downcast_ref::<DiskFull>().is_some());
    assert_eq!(taskward::run(alias(false)).await.unwrap(), "stored");
    assert!(taskward::run(alias(true)).await.is_err());
    assert_eq!(taskward::run(boxed("8".to_owned())).await.unwrap(), 8);
    taskward::run(unit(vec![1, 2])).await.unwrap();
    taskward::run(explicit_unit()).await.unwrap();
    let _server = serve_until_cancelled();
}
