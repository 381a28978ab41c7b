//! `Group`: children of a scope whose results come out in completion order.
//!
//! Each member is a child registered as any other (`Node::spawn_member`),
//! whose task runs in a tokio `JoinSet` instead of behind a `Child` each.
//! The group takes a member's failure through its node as a `Child` does
//! (`take_failure`), and gives back what it did not take when it is dropped
//! (`release_failure`); dropping it detaches the tokio tasks from the set,
//! never the children from their scope.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::task::JoinSet;

use crate::error::{Error, ErrorKind};
use crate::node::{Member, Node};
use crate::task::Task;

/// Children of a scope whose results come out in the order they finish
/// (tokio's `JoinSet`, with structured ownership), from
/// [`Scope::group`](crate::Scope::group).
///
/// Its members are children of the scope like any other: joined before the
/// scope's task delivers its result, cancelled with it, and under
/// [`Policy::FailFast`](crate::Policy::FailFast) a member's failure cancels
/// the scope. A failure that [`next`](Group::next) hands out is yours and
/// does not escalate. Dropping the group does not detach its members: the
/// scope still joins them, and a failure the group did not hand out goes to
/// [`Scope::next_error`](crate::Scope::next_error) or escalates, as for a
/// dropped [`Child`](crate::Child).
///
/// It implements `futures_core::Stream`, with the items of `next`.
///
/// ```
/// use std::time::Duration;
/// use taskward::Scope;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let order = taskward::run(taskward::task(|scope: Scope| async move {
///     let mut group = scope.group::<u64>();
///     for ms in [30, 10, 20] {
///         group.spawn(async move {
///             tokio::time::sleep(Duration::from_millis(ms)).await;
///             Ok::<_, std::io::Error>(ms)
///         });
///     }
///     let mut order = Vec::new();
///     while let Some(result) = group.next().await {
///         order.push(result?);
///     }
///     Ok::<_, taskward::Error>(order)
/// }))
/// .await
/// .unwrap();
/// assert_eq!(order, [10, 20, 30]);
/// # }
/// ```
pub struct Group<T: 'static> {
    scope: Arc<Node>,
    /// The members' tokio tasks, each giving back its node with its value
    /// (`None` when it failed or was aborted).
    set: JoinSet<(Arc<Node>, Option<T>)>,
    /// The members not yet handed out by `next`, by their node's key: to
    /// abort them, and to give back their failures when the group is
    /// dropped.
    members: HashMap<usize, Arc<Node>>,
}

impl<T: Send + 'static> Group<T> {
    pub(crate) fn new(scope: Arc<Node>) -> Self {
        Group {
            scope,
            set: JoinSet::new(),
            members: HashMap::new(),
        }
    }

    /// Starts `task` as a child of the group's scope (waiting in line if
    /// the scope's limit is reached, as [`Scope::spawn`](crate::Scope::spawn)
    /// does). Its result comes out of [`next`](Group::next). A task spawned
    /// after the scope has finished comes out as
    /// [`ErrorKind::ScopeClosed`].
    pub fn spawn<U: Task<Output = T>>(&mut self, task: U) {
        let runtime = self.scope.shared().runtime.clone();
        match self.scope.spawn_member(task) {
            Ok(Member { node, task: future }) => {
                self.members.insert(node.key(), Arc::clone(&node));
                self.set.spawn_on(
                    async move {
                        let value = future.await;
                        // An aborted member's subtree goes one level at a
                        // time after it: it comes out once all of it is gone.
                        if value.is_none() && node.is_abort_asked() {
                            node.wait_idle().await;
                        }
                        (node, value)
                    },
                    &runtime,
                );
            }
            Err(refused) => {
                self.set.spawn_on(async move { (refused, None) }, &runtime);
            }
        }
    }

    /// The result of the next member to finish (it and its children), in
    /// completion order; `None` once every member has come out.
    ///
    /// # Errors
    ///
    /// The member's failure, which is then yours and does not escalate;
    /// [`ErrorKind::Cancelled`] for a member aborted by
    /// [`abort_all`](Group::abort_all).
    pub async fn next(&mut self) -> Option<Result<T, Error>> {
        std::future::poll_fn(|cx| self.poll_next_member(cx)).await
    }

    /// How many members have not come out of [`next`](Group::next) yet.
    #[must_use]
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// Whether every member has come out of [`next`](Group::next).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// Aborts every member still running, and its subtree, as
    /// [`Child::abort`](crate::Child::abort) does: each still comes out of
    /// [`next`](Group::next), as [`ErrorKind::Cancelled`] (or with its
    /// result, if it had finished). The aborts never escalate and do not
    /// cancel the scope.
    pub fn abort_all(&self) {
        for node in self.members.values() {
            node.abort_asked();
        }
    }

    fn poll_next_member(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T, Error>>> {
        let joined = match std::task::ready!(self.set.poll_join_next(cx)) {
            None => return Poll::Ready(None),
            Some(joined) => joined,
        };
        let (node, value) = match joined {
            Ok(output) => output,
            // The member's tokio task was dropped by its runtime shutting
            // down: its node is not known here.
            Err(_) => {
                return Poll::Ready(Some(Err(Error::with_kind(
                    ErrorKind::Cancelled,
                    Arc::clone(self.scope.path()),
                    "a member of a group was dropped by its runtime before it finished",
                ))));
            }
        };
        self.members.remove(&node.key());
        let failure = node.take_failure();
        Poll::Ready(Some(match value {
            Some(value) => Ok(value),
            None => Err(failure.unwrap_or_else(|| {
                let message = if node.is_abort_asked() {
                    "aborted by its owner"
                } else {
                    "aborted before it finished"
                };
                Error::with_kind(ErrorKind::Cancelled, Arc::clone(node.path()), message)
            })),
        }))
    }
}

impl<T: Send + 'static> futures_core::Stream for Group<T> {
    type Item = Result<T, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_next_member(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.len(), Some(self.len()))
    }
}

impl<T: 'static> Drop for Group<T> {
    /// The members go on as children of the scope: their tokio tasks are
    /// detached from the set, and a failure the group holds goes to the
    /// scope (see `Child`'s drop).
    fn drop(&mut self) {
        self.set.detach_all();
        for (_, node) in self.members.drain() {
            if let (Some(err), Some(parent)) = (node.release_failure(), node.parent()) {
                parent.route(err);
            }
        }
    }
}

impl<T: 'static> std::fmt::Debug for Group<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group")
            .field("scope", &self.scope.path())
            .field("len", &self.set.len())
            .finish()
    }
}
