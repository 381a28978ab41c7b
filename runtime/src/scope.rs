//! The scope of a task: where it starts its children and learns to stop.

use std::future::Future;
use std::sync::Arc;

use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

use crate::child::Child;
use crate::error::Error;
use crate::node::Node;
use crate::policy::Policy;
use crate::task::Task;
use crate::tree::TaskTree;

/// The scope of a running task: it owns the task's children and its
/// cancellation token.
///
/// A `#[supervised]` function receives its scope as a `&Scope` (or `Scope`)
/// parameter; [`task()`](crate::task()) hands it to a closure. Every child
/// spawned here is joined before the task's result is delivered, is
/// cancelled with the task, and routes its failure back here.
///
/// `Scope` is a cheap handle (`Clone` shares the same scope).
///
/// ```
/// use taskward::{supervised, Scope};
///
/// #[supervised]
/// async fn square(n: u64) -> Result<u64, std::io::Error> {
///     Ok(n * n)
/// }
///
/// #[supervised]
/// async fn sum_of_squares(scope: &Scope, n: u64) -> Result<u64, taskward::Error> {
///     let children: Vec<_> = (1..=n).map(|i| scope.spawn(square(i))).collect();
///     let mut sum = 0;
///     for child in children {
///         sum += child.await?;
///     }
///     Ok(sum)
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// assert_eq!(taskward::run(sum_of_squares(3)).await.unwrap(), 14);
/// # }
/// ```
#[derive(Clone)]
pub struct Scope {
    node: Arc<Node>,
}

impl Scope {
    pub(crate) fn from_node(node: Arc<Node>) -> Self {
        Scope { node }
    }

    /// Starts `task` as a child of this scope and returns its handle.
    ///
    /// The child starts running at once on the tokio runtime of the tree. It
    /// gets its own scope, and a token that is a child of this scope's token.
    /// Dropping the returned [`Child`] does not detach the task.
    ///
    /// A task spawned on a scope whose task has already finished (through a
    /// clone of the scope kept elsewhere) is not started: its handle reports
    /// [`ErrorKind::ScopeClosed`](crate::ErrorKind::ScopeClosed).
    ///
    /// ```
    /// # use taskward::Scope;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// taskward::run(taskward::task(|scope: Scope| async move {
    ///     let child = scope.spawn(async { Ok::<_, std::io::Error>("done") });
    ///     assert_eq!(child.await.unwrap(), "done");
    /// }))
    /// .await
    /// .unwrap();
    /// # }
    /// ```
    pub fn spawn<T: Task>(&self, task: T) -> Child<T::Output> {
        self.node.spawn(task)
    }

    /// The cancellation token of this scope. It is cancelled when the task
    /// is cancelled (by its parent, a failing sibling under
    /// [`Policy::FailFast`], or explicitly), and when the task has finished.
    #[must_use]
    pub fn token(&self) -> &CancellationToken {
        self.node.token()
    }

    /// Cancels this scope: its own body and every descendant are told to stop.
    pub fn cancel(&self) {
        self.node.token().cancel();
    }

    /// Whether this scope has been cancelled.
    #[must_use]
    pub fn is_cancelled(&self) -> bool {
        self.node.token().is_cancelled()
    }

    /// Waits until this scope is cancelled.
    ///
    /// ```
    /// # use taskward::Scope;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// taskward::run(taskward::task(|scope: Scope| async move {
    ///     let child = scope.spawn(taskward::task(|scope: Scope| async move {
    ///         scope.cancelled().await; // a worker waiting to be told to stop
    ///     }));
    ///     child.cancel();
    ///     child.await.unwrap();
    /// }))
    /// .await
    /// .unwrap();
    /// # }
    /// ```
    pub fn cancelled(&self) -> WaitForCancellationFuture<'_> {
        self.node.token().cancelled()
    }

    /// Runs `future` until it completes (`Some(output)`) or this scope is
    /// cancelled (`None`, and `future` is dropped).
    ///
    /// ```
    /// # use taskward::Scope;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// taskward::run(taskward::task(|scope: Scope| async move {
    ///     scope.cancel();
    ///     let never = std::future::pending::<()>();
    ///     assert_eq!(scope.until_cancelled(never).await, None);
    /// }))
    /// .await
    /// .unwrap();
    /// # }
    /// ```
    pub async fn until_cancelled<F: Future>(&self, future: F) -> Option<F::Output> {
        self.node.token().run_until_cancelled(future).await
    }

    /// Takes the next failure of a child of this scope that no [`Child`]
    /// handle claimed. Returns `None` once no child of this scope is running
    /// and no failure is waiting.
    ///
    /// A failure taken here is handled: it does not escalate.
    ///
    /// ```
    /// # use taskward::{Policy, Scope, Task};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// taskward::run(
    ///     taskward::task(|scope: Scope| async move {
    ///         for n in 0..3 {
    ///             scope.spawn(async move {
    ///                 if n == 1 { Err(std::io::Error::other("bad job")) } else { Ok(()) }
    ///             });
    ///         }
    ///         let err = scope.next_error().await.unwrap();
    ///         assert_eq!(err.task(), "task/task#1");
    ///         assert!(scope.next_error().await.is_none());
    ///     })
    ///     .policy(Policy::Supervise),
    /// )
    /// .await
    /// .unwrap();
    /// # }
    /// ```
    pub async fn next_error(&self) -> Option<Error> {
        self.node.next_error().await
    }

    /// The path of this scope's task from the root, such as
    /// `pipeline/worker#3/split#1`: each task is `name#index`, where index
    /// counts from 0 the children of that name spawned by the same parent.
    /// The root is its bare name.
    #[must_use]
    pub fn path(&self) -> &str {
        self.node.path()
    }

    /// A snapshot of this scope's task and its live descendants, whose
    /// `Display` is an indented tree (see [`TaskTree`]). Taking it locks each
    /// task only while listing its children; the tree keeps running.
    #[must_use]
    pub fn tree(&self) -> TaskTree {
        self.node.snapshot()
    }

    /// The policy of this scope.
    #[must_use]
    pub fn policy(&self) -> Policy {
        self.node.policy()
    }
}

impl std::fmt::Debug for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scope")
            .field("path", &self.path())
            .field("policy", &self.policy())
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}
