// `crate = path` for a crate that re-exports taskward: generated code goes
// through the given path, and the attribute may be reached through it too.
#![deny(warnings)]

mod facade {
    pub(crate) use ::taskward::*;
}

mod renamed {
    pub(crate) use ::taskward as tw;
}

#[facade::supervised(crate = crate::facade)]
async fn through_module(scope: &facade::Scope) -> Result<String, std::io::Error> {
    Ok(scope.path().to_owned())
}

#[renamed::tw::supervised(crate = renamed::tw, name = "renamed")]
async fn through_renamed(token: renamed::tw::CancellationToken) -> Result<bool, std::io::Error> {
    Ok(token.is_cancelled())
}

#[::taskward::supervised(crate = ::taskward)]
async fn absolute() {}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(facade::run(through_module()).await.unwrap(), "through_module");
    assert!(!taskward::run(through_renamed()).await.unwrap());
    taskward::run(absolute()).await.unwrap();
}
