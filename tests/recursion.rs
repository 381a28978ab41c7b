//! A supervised function may spawn itself: a worker splitting its job into
//! sub-jobs of the same kind.

use taskward::{Error, Scope, supervised};

#[supervised]
async fn sum(scope: &Scope, items: Vec<u64>) -> Result<u64, Error> {
    if items.len() <= 2 {
        return Ok(items.iter().sum());
    }
    let (left, right) = items.split_at(items.len() / 2);
    let left = scope.spawn(sum(left.to_vec()));
    let right = scope.spawn(sum(right.to_vec()));
    Ok(left.await? + right.await?)
}

#[supervised(name = "split")]
async fn paths(scope: &Scope, depth: u32) -> Result<Vec<String>, Error> {
    if depth == 0 {
        return Ok(vec![scope.path().to_owned()]);
    }
    let a = scope.spawn(paths(depth - 1));
    let b = scope.spawn(paths(depth - 1));
    let mut all = a.await?;
    all.extend(b.await?);
    Ok(all)
}

#[tokio::test]
async fn a_recursive_split_computes_the_sum() {
    let items: Vec<u64> = (1..=1000).collect();
    assert_eq!(taskward::run(sum(items)).await.unwrap(), 500_500);
}

#[tokio::test]
async fn recursive_tasks_get_numbered_paths() {
    let all = taskward::run(paths(2)).await.unwrap();
    assert_eq!(
        all,
        [
            "split/split#0/split#0",
            "split/split#0/split#1",
            "split/split#1/split#0",
            "split/split#1/split#1"
        ]
    );
}

#[tokio::test]
async fn a_failure_deep_in_recursion_names_its_path() {
    #[supervised]
    async fn dig(scope: &Scope, depth: u32) -> Result<(), taskward::BoxError> {
        if depth == 0 {
            return Err(std::io::Error::other("bottom").into());
        }
        // `?` turns any error into a `BoxError`; a taskward `Error` passed on
        // this way keeps its origin.
        scope.spawn(dig(depth - 1)).await?;
        Ok(())
    }
    let err = taskward::run(dig(3)).await.unwrap_err();
    assert_eq!(err.task(), "dig/dig#0/dig#0/dig#0");
    assert_eq!(err.to_string(), "task `dig/dig#0/dig#0/dig#0` failed: bottom");
}

#[supervised(name = "inner")]
async fn inner_path(scope: &Scope) -> Result<String, Error> {
    Ok(scope.path().to_owned())
}

#[supervised(name = "outer")]
async fn runs_a_tree_of_its_own(scope: Scope) -> Result<(String, String, String), Error> {
    // In the body's first poll, before it has awaited anything: a
    // `#[supervised]` body takes its scope from the runtime at its first
    // poll, and the tree run here must neither take the outer scope nor
    // leave its own behind.
    let before = scope.path().to_owned();
    let nested = taskward::run(inner_path()).await?;
    let child = scope.spawn(inner_path()).await?;
    assert_eq!(scope.path(), "outer");
    Ok((before, nested, child))
}

#[tokio::test]
async fn a_tree_run_inside_a_supervised_body_keeps_each_scope_apart() {
    let (before, nested, child) = taskward::run(runs_a_tree_of_its_own()).await.unwrap();
    assert_eq!(before, "outer");
    assert_eq!(nested, "inner");
    assert_eq!(child, "outer/inner#0");
}
