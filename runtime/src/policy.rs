//! How a scope reacts when one of its children fails.

/// How a scope treats the failure of one of its children.
///
/// Chosen per task: `#[supervised(policy = supervise)]`, or
/// [`Task::policy`](crate::Task::policy) on any task.
///
/// Whatever the policy, every failure is delivered exactly once: to the
/// child's [`Child`](crate::Child) handle if it is still held, otherwise to
/// [`Scope::next_error`](crate::Scope::next_error), otherwise as the parent's
/// own failure when its body ends.
///
/// ```
/// use taskward::{Policy, Scope, Task};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let handled = taskward::run(
///     taskward::task(|scope: Scope| async move {
///         scope.spawn(async { Err::<(), _>(std::io::Error::other("one job failed")) });
///         scope.spawn(async { Ok::<_, std::io::Error>(()) });
///         let mut failures = 0;
///         while let Some(_err) = scope.next_error().await {
///             failures += 1; // handled here: it does not escalate
///         }
///         Ok::<_, taskward::Error>(failures)
///     })
///     .policy(Policy::Supervise),
/// )
/// .await
/// .unwrap();
/// assert_eq!(handled, 1);
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Policy {
    /// The first failing child cancels the scope: the task's own token and
    /// so every sibling (like Go's errgroup, Trio's nursery or Kotlin's
    /// `coroutineScope`). The first failure becomes the scope's error and
    /// later ones are in [`Error::related`](crate::Error::related).
    ///
    /// A failure claimed through a held [`Child`](crate::Child) handle has
    /// still cancelled the scope, as in errgroup, Trio and Kotlin: claiming
    /// it only keeps it from escalating. A task that wants to handle the
    /// failures of its children and go on with the others uses
    /// [`Supervise`](Policy::Supervise).
    #[default]
    FailFast,
    /// A failing child does not touch its siblings (like Kotlin's
    /// `supervisorScope` or OTP's `one_for_one`). The parent handles the
    /// failure through the handle or `next_error`, or it escalates.
    Supervise,
}
