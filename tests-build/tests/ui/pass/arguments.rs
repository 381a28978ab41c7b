// `name` and `policy` reach the runtime; the default name is the function's,
// without `r#`.
#![deny(warnings)]

use taskward::{Policy, Scope, supervised};

#[supervised(name = "fetcher")]
async fn named(scope: &Scope) -> Result<String, std::io::Error> {
    Ok(scope.path().to_owned())
}

#[supervised(policy = supervise)]
async fn supervising(scope: &Scope) -> Result<Policy, std::io::Error> {
    Ok(scope.policy())
}

#[supervised(policy = fail_fast, name = "strict",)]
async fn failing_fast(scope: &Scope) -> Result<(Policy, String), std::io::Error> {
    Ok((scope.policy(), scope.path().to_owned()))
}

#[supervised]
async fn r#type(scope: &Scope) -> Result<String, std::io::Error> {
    Ok(scope.path().to_owned())
}

#[supervised()]
async fn defaults(scope: &Scope) -> Result<Policy, std::io::Error> {
    Ok(scope.policy())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(taskward::run(named()).await.unwrap(), "fetcher");
    assert_eq!(taskward::run(supervising()).await.unwrap(), Policy::Supervise);
    assert_eq!(
        taskward::run(failing_fast()).await.unwrap(),
        (Policy::FailFast, "strict".to_owned())
    );
    assert_eq!(taskward::run(r#type()).await.unwrap(), "type");
    assert_eq!(taskward::run(defaults()).await.unwrap(), Policy::FailFast);
}
