// Parameters the runtime supplies, marked explicitly (`#[scope]`, `#[token]`,
// `#[ready]`) under names the macro cannot know; `#[cfg]` on them is
// honoured; a `Scope` type of another crate, written with its path, is an
// ordinary parameter.
//
// Regression (issue 20): `#[cfg(any())] scope: &Scope` was still bound, two
// token parameters under exclusive cfgs were rejected, and a renamed import
// (`use taskward::Scope as S`) could not be injected.
#![deny(warnings)]

use taskward::{CancellationToken, Ready, Scope as S, supervised};

type Token = CancellationToken;
type Port = Ready<u16>;

mod oauth {
    #[derive(Debug)]
    pub(crate) struct Scope(pub(crate) &'static str);
}

#[supervised]
async fn renamed(#[scope] scope: &S, #[token] stop: Token, id: u32) -> Result<String, std::io::Error> {
    assert!(!stop.is_cancelled());
    Ok(format!("{}#{id}", scope.path()))
}

#[supervised]
async fn owned(#[scope] scope: S) -> Result<String, std::io::Error> {
    Ok(scope.path().to_owned())
}

#[supervised]
async fn server(#[ready] up: Port) -> Result<(), std::io::Error> {
    up.send(8080);
    Ok(())
}

#[supervised]
async fn fetch(grant: oauth::Scope, scope: &taskward::Scope) -> Result<String, std::io::Error> {
    Ok(format!("{} {}", scope.path(), grant.0))
}

mod compiled_out {
    use taskward::supervised;

    // Were the parameter bound, `let scope` would match this constant and
    // fail to compile.
    #[allow(non_upper_case_globals)]
    const scope: &str = "not bound";

    #[supervised]
    pub(crate) async fn compiled_out(
        #[cfg(any())] scope: &taskward::Scope,
        id: u32,
    ) -> Result<String, std::io::Error> {
        Ok(format!("{scope} {id}"))
    }
}

#[supervised]
async fn one_of_two(
    #[cfg(unix)] token: CancellationToken,
    #[cfg(not(unix))] token: CancellationToken,
) -> Result<bool, std::io::Error> {
    Ok(token.is_cancelled())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(taskward::run(renamed(3)).await.unwrap(), "renamed#3");
    assert_eq!(taskward::run(owned()).await.unwrap(), "owned");
    let port = taskward::run(taskward::task(|scope: S| async move {
        scope.start::<u16, _>(server()).await
    }))
    .await
    .unwrap();
    assert_eq!(port, 8080);
    assert_eq!(taskward::run(fetch(oauth::Scope("read"))).await.unwrap(), "fetch read");
    assert_eq!(taskward::run(compiled_out::compiled_out(1)).await.unwrap(), "not bound 1");
    assert!(!taskward::run(one_of_two()).await.unwrap());
}
