//! `race`: the first of several tasks to succeed.

use std::sync::Arc;

use crate::error::{Error, ErrorKind};
use crate::policy::Policy;
use crate::scope::Scope;
use crate::task::Task;

/// A task whose value is the first success among `tasks` (Java's
/// `anySuccessfulResultOrThrow`, happy eyeballs): they run at once as
/// children of a task named `race`; when one succeeds, the others are
/// cancelled (their [`cancel_cause`](Scope::cancel_cause) says another task
/// of the race won) and joined before the race returns; their results and
/// failures are dropped. If every task fails, the error is the first
/// failure, with the others in [`related`](Error::related). A failing task
/// does not stop the others (the race's policy is
/// [`Policy::Supervise`]). A race of no tasks fails at once.
///
/// ```
/// use std::time::Duration;
/// use taskward::{supervised, CancellationToken};
///
/// /// A mirror that answers after `ms`, unless it is told to stop first.
/// #[supervised]
/// async fn fetch(token: CancellationToken, mirror: String, ms: u64) -> std::io::Result<String> {
///     tokio::select! {
///         _ = tokio::time::sleep(Duration::from_millis(ms)) => Ok(mirror),
///         _ = token.cancelled() => Err(std::io::Error::other("stopped")),
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let mirrors = [("eu", 30), ("us", 10), ("asia", 20)];
/// let fastest = taskward::run(taskward::race(mirrors.map(|(name, ms)| fetch(name.to_owned(), ms)))).await;
/// assert_eq!(fastest.unwrap(), "us");
/// # }
/// ```
#[must_use = "a task does nothing until it is spawned on a scope or run with `taskward::run`"]
pub fn race<I>(tasks: I) -> impl Task<Output = <I::Item as Task>::Output>
where
    I: IntoIterator,
    I::Item: Task,
{
    let tasks: Vec<I::Item> = tasks.into_iter().collect();
    crate::task::task(move |scope: Scope| async move {
        let mut group = scope.group::<<I::Item as Task>::Output>();
        for task in tasks {
            group.spawn(task);
        }
        let mut failures = Vec::new();
        while let Some(result) = group.next().await {
            match result {
                Ok(value) => {
                    scope.cancel_with("another task of the race won");
                    // Joined before the race returns; what they give is dropped.
                    while group.next().await.is_some() {}
                    return Ok(value);
                }
                Err(err) => failures.push(err),
            }
        }
        let mut failures = failures.into_iter();
        Err(match failures.next() {
            Some(first) => first.with_related(failures),
            None => Error::with_kind(
                ErrorKind::Failed,
                Arc::clone(scope.node().path()),
                "a race of no tasks has no winner",
            ),
        })
    })
    .named("race")
    .policy(Policy::Supervise)
}
