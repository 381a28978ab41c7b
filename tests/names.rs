//! Names formatted from a task's arguments (`#[supervised(name =
//! "chunk-{part}")]`): in paths and errors, without a `#index`, made only
//! when a path is needed.

mod common;

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use common::{bounded, quiet_panics};
use taskward::{Scope, Task, supervised};

#[supervised(name = "chunk-{part}")]
async fn chunk(part: usize, fail: bool) -> Result<usize, std::io::Error> {
    if fail {
        return Err(std::io::Error::other("bad chunk"));
    }
    Ok(part)
}

#[supervised(name = "job-{job}")]
async fn job(scope: &Scope, job: u32, parts: usize, poisoned: usize) -> Result<usize, taskward::Error> {
    let children: Vec<_> = (0..parts)
        .map(|part| scope.spawn(chunk(part, part == poisoned)))
        .collect();
    let mut sum = 0;
    for child in children {
        sum += child.await?;
    }
    Ok(sum)
}

#[tokio::test]
async fn the_path_names_the_arguments_without_an_index() {
    let err = bounded(taskward::run(taskward::task(|scope: Scope| async move {
        scope.spawn(job(3, 4, usize::MAX)).await?;
        scope.spawn(job(7, 4, 2)).await
    })))
    .await
    .unwrap_err();
    assert_eq!(err.task(), "task/job-7/chunk-2");
    assert_eq!(err.to_string(), "task `task/job-7/chunk-2` failed: bad chunk");
}

#[tokio::test]
async fn a_root_and_a_child_see_their_formatted_paths() {
    #[supervised(name = "root-{n}")]
    async fn root(scope: &Scope, n: u8) -> Result<String, taskward::Error> {
        let child = scope.spawn(chunk(5, false));
        let path = child.path().to_owned();
        child.await?;
        Ok(format!("{} {path}", scope.path()))
    }
    let paths = bounded(taskward::run(root(1))).await.unwrap();
    assert_eq!(paths, "root-1 root-1/chunk-5");
}

#[tokio::test]
async fn siblings_of_the_same_formatted_name_share_a_path_and_counted_names_are_unaffected() {
    let paths = bounded(taskward::run(taskward::task(|scope: Scope| async move {
        let first = scope.spawn(chunk(1, false));
        let again = scope.spawn(chunk(1, false));
        let plain = scope.spawn(async { Ok::<_, std::io::Error>(0) });
        let paths = [first.path(), again.path(), plain.path()].map(str::to_owned);
        Ok::<_, std::io::Error>(paths)
    })))
    .await
    .unwrap();
    assert_eq!(paths, ["task/chunk-1", "task/chunk-1", "task/task#0"]);
}

#[tokio::test]
async fn named_overrides_a_formatted_name() {
    let path = bounded(taskward::run(taskward::task(|scope: Scope| async move {
        let child = scope.spawn(chunk(1, false).named("custom"));
        Ok::<_, std::io::Error>(child.path().to_owned())
    })))
    .await
    .unwrap();
    assert_eq!(path, "task/custom#0");
}

/// Counts how many times it is formatted.
#[derive(Clone)]
struct Counted(Arc<AtomicUsize>);

impl fmt::Display for Counted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fetch_add(1, Ordering::SeqCst);
        f.write_str("counted")
    }
}

#[supervised(name = "lazy-{label}")]
async fn lazy(label: Counted, fail: bool) -> Result<(), std::io::Error> {
    if fail {
        return Err(std::io::Error::other("failed"));
    }
    Ok(())
}

// Built with `--cfg tokio_unstable`, every path is built at the spawn (for
// tokio-console's task names), so the name is formatted then.
#[cfg(not(tokio_unstable))]
#[tokio::test]
async fn a_name_is_formatted_only_when_a_path_is_needed_and_once() {
    let formatted = Arc::new(AtomicUsize::new(0));
    let label = Counted(Arc::clone(&formatted));
    bounded(taskward::run(taskward::task(move |scope: Scope| async move {
        scope.spawn(lazy(label.clone(), false)).await?;
        assert_eq!(formatted.load(Ordering::SeqCst), 0, "a success needs no path");
        let err = scope.spawn(lazy(label, true)).await.unwrap_err();
        assert_eq!(err.task(), "task/lazy-counted");
        assert_eq!(err.to_string(), "task `task/lazy-counted` failed: failed");
        assert_eq!(
            formatted.load(Ordering::SeqCst),
            1,
            "formatted once for the failure's path"
        );
        Ok::<_, taskward::Error>(())
    })))
    .await
    .unwrap();
}

/// Panics when formatted.
#[derive(Clone)]
struct Broken;

impl fmt::Display for Broken {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        panic!("broken display");
    }
}

#[supervised(name = "broken-{broken}")]
async fn broken(broken: Broken) -> Result<(), std::io::Error> {
    Err(std::io::Error::other("failed"))
}

#[tokio::test]
async fn a_name_whose_formatting_panics_is_the_function_name() {
    quiet_panics("broken display");
    let err = bounded(taskward::run(taskward::task(|scope: Scope| async move {
        scope.spawn(broken(Broken)).await
    })))
    .await
    .unwrap_err();
    assert_eq!(err.task(), "task/broken");
}

/// Takes the lock of the scope it holds when formatted (`set_limit` does,
/// to a limit too high to matter): formatting under that lock would
/// deadlock.
#[derive(Clone)]
struct Locks(Scope);

impl fmt::Display for Locks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.set_limit(1 << 20);
        f.write_str("locks")
    }
}

#[supervised(name = "{locks}-{n}")]
async fn locking(locks: Locks, n: usize, fail: bool) -> Result<(), std::io::Error> {
    if fail {
        return Err(std::io::Error::other("failed"));
    }
    Ok(())
}

#[test]
fn a_name_is_never_formatted_under_its_parents_lock() {
    // The sweep of a scope's children list (under its lock, every few
    // spawns) forgets the counts of names no live child carries: it must
    // not format the names, which are not counted. A regression deadlocks.
    let err = within_a_minute(|| {
        taskward::run(taskward::task(|scope: Scope| async move {
            // More counted names than a short list holds, so that the sweep
            // looks at the names of the live children.
            for n in 0..24 {
                scope
                    .spawn(async { Ok::<_, std::io::Error>(()) }.named(format!("plain-{n}")))
                    .await?;
            }
            let mut held = Vec::new();
            for n in 0..64 {
                let child = scope.spawn(locking(Locks(scope.clone()), n, false));
                if n % 2 == 0 {
                    child.await?;
                } else {
                    held.push(child);
                }
            }
            for child in held {
                child.await?;
            }
            scope.spawn(locking(Locks(scope.clone()), 99, true)).await
        }))
    })
    .unwrap_err();
    assert_eq!(err.task(), "task/locks-99");
}

/// Runs the tree `tree` makes on a runtime and a thread of its own, and
/// gives its result, failing the test after a minute instead: a deadlocked
/// worker would hang the runtime's shutdown too.
fn within_a_minute<T, F>(tree: impl FnOnce() -> F + Send + 'static) -> T
where
    F: Future<Output = T>,
    T: Send + 'static,
{
    let (sent, result) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let _ = sent.send(runtime.block_on(tree()));
    });
    result
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the tree did not finish: a deadlock")
}

/// Shows the length of the path of the task it is an argument of, once
/// that task put its scope in the cell.
#[derive(Clone)]
struct OwnPath(Arc<OnceLock<Scope>>);

impl fmt::Display for OwnPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.0.get().map(|scope| scope.path().to_owned()).unwrap_or_default();
        write!(f, "at-{}", path.len())
    }
}

#[supervised(name = "{own}")]
async fn reads_its_own_path(scope: &Scope, own: OwnPath) -> Result<String, std::io::Error> {
    let _ = own.0.set(scope.clone());
    Ok(scope.path().to_owned())
}

#[test]
fn a_name_whose_format_reads_its_own_path_gets_the_function_name() {
    // Regression: a name's format that asked for its own task's path
    // waited for itself (the path waits for the name) forever.
    let path = within_a_minute(|| {
        taskward::run(taskward::task(|scope: Scope| async move {
            scope.spawn(reads_its_own_path(OwnPath(Arc::default()))).await
        }))
    })
    .unwrap();
    assert_eq!(path, "task/reads_its_own_path");
}
