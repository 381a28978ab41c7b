//! The handle to a spawned task.
//!
//! A child's value comes through its tokio task's `JoinHandle` (the output
//! is `Some(value)`, or `None` when it failed), so that a success costs no
//! more than a tokio task's, and the task's memory is freed by whoever takes
//! the value, as with `tokio::spawn`. A failure waits in the child's node
//! (in a mutex of its own, not the node's lock), and one atomic byte decides
//! which of the handle, `next_error` and the parent's result takes it (see
//! `Node::offer_failure`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::task::JoinHandle;

use crate::cause::CancelCause;
use crate::error::{BoxError, Error, ErrorKind};
use crate::node::Node;

/// A handle to a task spawned with [`Scope::spawn`](crate::Scope::spawn).
///
/// Awaiting it gives the task's result once the task *and all of its
/// children* have finished. A failure is delivered here if the handle is
/// still held when the task fails; it is then yours, and does not escalate.
/// Under [`Policy::FailFast`](crate::Policy::FailFast) (the default) that
/// failure has still cancelled the scope, siblings included, as in errgroup,
/// Trio and Kotlin; a task that wants to handle the failures of its children
/// and go on runs under [`Policy::Supervise`](crate::Policy::Supervise).
///
/// Dropping the handle neither detaches nor aborts the task: the scope still
/// owns it and joins it, and a failure the handle did not take goes to
/// [`Scope::next_error`](crate::Scope::next_error) or escalates to the
/// parent. So a child whose result you do not need is spawned as a plain
/// statement: `scope.spawn(worker(id));`.
///
/// ```
/// use taskward::Scope;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// taskward::run(taskward::task(|scope: Scope| async move {
///     let child = scope.spawn(async { Err::<u32, _>(std::io::Error::other("no")) });
///     let err = child.await.unwrap_err(); // claimed here: it does not escalate
///     assert_eq!(err.to_string(), "task `task/task#0` failed: no");
/// }))
/// .await
/// .unwrap();
/// # }
/// ```
pub struct Child<T> {
    node: Arc<Node>,
    /// The child's tokio task; `None` for a spawn that was refused (its
    /// failure waits in the node), and for the children of the loom model,
    /// which run on threads.
    task: Option<JoinHandle<Option<T>>>,
    /// Where the result stands.
    result: Handed,
}

/// Where a `Child`'s result stands.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Handed {
    /// The task may still run.
    Waiting,
    /// The task ended without a value: its failure is in its node, or it
    /// was aborted. An aborted child's result waits until its subtree is
    /// gone.
    Ended,
    /// The result was taken by an earlier `.await`.
    Taken,
}

impl<T> Child<T> {
    pub(crate) fn new(node: Arc<Node>, task: Option<JoinHandle<Option<T>>>) -> Self {
        Child {
            node,
            task,
            result: Handed::Waiting,
        }
    }

    /// The child's node, for the unit tests.
    #[cfg(all(test, not(loom)))]
    pub(crate) fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// Cancels the child's token, and so its whole subtree. Cancellation is
    /// cooperative: the child sees it through its token or scope.
    pub fn cancel(&self) {
        self.node.cancel();
    }

    /// Cancels the child's token, as [`cancel`](Child::cancel) does, giving
    /// `reason` as why: the child and its descendants see it in
    /// [`Scope::cancel_cause`](crate::Scope::cancel_cause).
    ///
    /// ```
    /// use taskward::Scope;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// taskward::run(taskward::task(|scope: Scope| async move {
    ///     let child = scope.spawn(taskward::task(|scope: Scope| async move {
    ///         scope.cancelled().await;
    ///         Ok::<_, std::io::Error>(scope.cancel_cause().unwrap().to_string())
    ///     }));
    ///     child.cancel_with("no longer needed");
    ///     assert_eq!(child.await?, "`task/task#0` was cancelled: no longer needed");
    ///     Ok::<_, taskward::Error>(())
    /// }))
    /// .await
    /// .unwrap();
    /// # }
    /// ```
    pub fn cancel_with(&self, reason: impl Into<BoxError>) {
        let reason: Arc<dyn std::error::Error + Send + Sync> = Arc::from(reason.into());
        self.node.cancel_for(|| CancelCause::Requested {
            task: Arc::clone(self.node.path()),
            reason: Some(reason),
        });
    }

    /// Stops the child and its whole subtree now, not cooperatively: each
    /// task's future is dropped at its next scheduling point, as tokio's
    /// `JoinHandle::abort` does. Awaiting the handle then gives
    /// [`ErrorKind::Cancelled`], once the whole subtree is gone.
    ///
    /// The abort is yours: its `Cancelled` goes to this handle only, so it
    /// never escalates, never reaches
    /// [`next_error`](crate::Scope::next_error), and does not cancel the
    /// scope, even under [`Policy::FailFast`](crate::Policy::FailFast), also
    /// when the handle is dropped right after. A child that had already
    /// finished keeps its result (a value, or its own failure, which is
    /// routed as usual). The scope still joins the aborted subtree.
    ///
    /// Failures that happened inside the subtree are not the abort's: one
    /// waiting there (a grandchild's `Err` not yet taken), or made while
    /// the subtree goes away (a blocking closure that returns `Err`), goes
    /// to this scope once the subtree is gone, as the failure of a dropped
    /// handle does: to [`next_error`](crate::Scope::next_error), or into
    /// the scope's result.
    ///
    /// ```
    /// use taskward::{ErrorKind, Scope};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// taskward::run(taskward::task(|scope: Scope| async move {
    ///     let stuck = scope.spawn(std::future::pending::<()>()); // ignores its token
    ///     stuck.abort();
    ///     let err = stuck.await.unwrap_err();
    ///     assert_eq!(err.kind(), ErrorKind::Cancelled);
    ///     assert!(!scope.is_cancelled()); // the owner goes on
    /// }))
    /// .await
    /// .unwrap();
    /// # }
    /// ```
    pub fn abort(&self) {
        self.node.abort_asked();
    }

    /// The child's path, such as `pipeline/worker#3`.
    #[must_use]
    pub fn path(&self) -> &str {
        self.node.path()
    }

    /// Whether the child (body and children) has finished and its result is
    /// waiting in this handle.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        match self.result {
            Handed::Waiting => self.task.as_ref().is_some_and(JoinHandle::is_finished) || self.node.has_failure(),
            Handed::Ended => true,
            Handed::Taken => false,
        }
    }
}

impl<T> Future for Child<T> {
    type Output = Result<T, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        match this.result {
            Handed::Taken => {
                return Poll::Ready(Err(Error::with_kind(
                    ErrorKind::AlreadyTaken,
                    this.node.path().clone(),
                    "its result was already taken by an earlier `.await` of this handle",
                )));
            }
            Handed::Waiting => match &mut this.task {
                Some(task) => {
                    // A value needs no look at the node: once the task has
                    // ended with one, no failure can come, and its subtree
                    // was joined before it.
                    if let Ok(Some(value)) = std::task::ready!(Pin::new(task).poll(cx)) {
                        this.result = Handed::Taken;
                        return Poll::Ready(Ok(value));
                    }
                    this.task = None;
                    this.result = Handed::Ended;
                }
                // A refused spawn: its failure is there from the start.
                None if this.node.has_failure() => this.result = Handed::Ended,
                None => return Poll::Pending,
            },
            Handed::Ended => {}
        }
        // An aborted child's task ends at once, and its subtree is dropped
        // one level at a time after it: the result waits until the last
        // descendant is gone (and so does any blocking closure in it).
        if this.node.is_abort_asked() {
            std::task::ready!(this.node.poll_idle(cx));
        }
        this.result = Handed::Taken;
        // The task has ended: a failure, if any, was offered to this handle
        // before it did.
        Poll::Ready(Err(this.node.take_failure().unwrap_or_else(|| {
            // Aborted by this handle's owner, or dropped by tokio before it
            // could report (its runtime shut down).
            let message = if this.node.is_abort_asked() {
                "aborted by its owner"
            } else {
                "aborted before it finished"
            };
            Error::with_kind(ErrorKind::Cancelled, this.node.path().clone(), message)
        })))
    }
}

impl<T> Drop for Child<T> {
    fn drop(&mut self) {
        if self.result == Handed::Taken {
            return;
        }
        if let (Some(err), Some(parent)) = (self.node.release_failure(), self.node.parent()) {
            parent.route(err);
        }
        if let (Some(task), Some(parent)) = (self.task.take(), self.node.parent())
            && !task.is_finished()
        {
            parent.keep_task(&self.node, task.abort_handle());
        }
    }
}

impl<T> std::fmt::Debug for Child<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Child")
            .field("path", &self.path())
            .field("finished", &self.is_finished())
            .finish()
    }
}
