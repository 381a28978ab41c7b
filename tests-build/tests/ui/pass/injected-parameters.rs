// The scope and the token may be at any position, by any path, with any
// pattern; they disappear from the signature the caller sees.
#![deny(warnings)]

use taskward::{CancellationToken, Scope, supervised};

#[supervised]
async fn first(scope: &Scope, token: CancellationToken, id: u32) -> Result<u32, std::io::Error> {
    assert!(!token.is_cancelled());
    assert_eq!(scope.path(), "first");
    Ok(id)
}

#[supervised]
async fn last(id: u32, name: String, token: CancellationToken, scope: &Scope) -> Result<String, std::io::Error> {
    let _ = (token, scope);
    Ok(format!("{name}{id}"))
}

#[supervised]
async fn owned_scope(scope: Scope, mut token: CancellationToken) -> Result<bool, std::io::Error> {
    token = token.child_token();
    let child = scope.spawn(async { Ok::<_, std::io::Error>(()) });
    drop(scope);
    child.await.unwrap();
    Ok(token.is_cancelled())
}

#[supervised]
async fn full_paths(scope: &taskward::Scope, _: taskward::CancellationToken) -> Result<String, std::io::Error> {
    Ok(scope.path().to_owned())
}

#[supervised]
async fn unused(_scope: &Scope, _token: CancellationToken) {}

#[supervised]
async fn patterns((a, b): (u32, u32), mut scope: Scope, [c, ..]: [u32; 2]) -> Result<u32, std::io::Error> {
    scope = scope.clone();
    let _ = scope;
    Ok(a + b + c)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(taskward::run(first(1)).await.unwrap(), 1);
    assert_eq!(taskward::run(last(2, "id".to_owned())).await.unwrap(), "id2");
    assert!(!taskward::run(owned_scope()).await.unwrap());
    assert_eq!(taskward::run(full_paths()).await.unwrap(), "full_paths");
    taskward::run(unused()).await.unwrap();
    assert_eq!(taskward::run(patterns((1, 2), [3, 4])).await.unwrap(), 6);
}
