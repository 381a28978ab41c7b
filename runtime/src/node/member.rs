//! The tokio task of a `Group`'s member: its `ChildTask`, whose value is
//! posted to the group's `Inbox` instead of coming out of a `JoinHandle`.
//!
//! The handle is dropped at the spawn, as for `scope.spawn(..);` with the
//! `Child` dropped: no `JoinSet` entry per member, and the task takes 128
//! bytes for a small body (the `ChildTask` and the inbox's pointer).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::Node;
use super::driver::ChildTask;
use super::spawn::OfNode;
use crate::group::Inbox;
use crate::task::TaskResult;

pin_project_lite::pin_project! {
    /// The member's task until it posts, then nothing. An enum whose
    /// second variant is empty, so that the inbox's pointer tells them
    /// apart and it takes no byte more.
    #[project = SlotProj]
    #[project_replace = SlotOwned]
    enum Slot<B, T> {
        Running { #[pin] task: ChildTask<B, T>, inbox: Arc<Inbox<T>> },
        Posted,
    }
}

impl<B, T> Slot<B, T> {
    /// Drops the member's task where it stands, then posts `value`, or the
    /// member's node if it has none: an aborted task reports its failure to
    /// its node as it is dropped (see `ChildTask`), so that the group finds
    /// it there when it takes the post, as a `JoinSet` hands out a task's
    /// output only once its future is dropped. Once only.
    ///
    /// With a value, the member marks its node handed out (`TAKEN`) itself,
    /// here where the node is in this worker's cache: the task has ended
    /// with a value, so no failure can come, and the group's owner then
    /// hands the value out without touching the node (a locked write to a
    /// line this worker wrote last, and the drop of an `Arc` clone).
    fn post(self: Pin<&mut Self>, value: Option<T>) {
        let post = match (self.as_ref().get_ref(), value) {
            (Slot::Posted, _) => return,
            (Slot::Running { task, .. }, Some(value)) => {
                let node = task.node();
                if let Some(failure) = node.take_failure() {
                    // Cannot happen: a value comes only from a task whose
                    // result was `Ok`, which offers no failure. Were it to,
                    // the failure goes where a dropped handle's goes.
                    debug_assert!(false, "a task that ended with a value has no failure");
                    if let Some(parent) = node.parent() {
                        parent.route(failure);
                    }
                }
                Ok(value)
            }
            (Slot::Running { task, .. }, None) => Err(Arc::clone(task.node())),
        };
        if let SlotOwned::Running { inbox, .. } = self.project_replace(Slot::Posted) {
            inbox.post(post);
        }
    }
}

pin_project_lite::pin_project! {
    /// A member's tokio task (see the module). Its own output is always
    /// `None`: the value goes to the inbox.
    pub(super) struct Post<B, T> {
        #[pin]
        slot: Slot<B, T>,
    }

    impl<B, T> PinnedDrop for Post<B, T> {
        /// Dropped before it posted (its runtime shut down, or dropped it
        /// unpolled): the group is told, with no value.
        fn drop(this: Pin<&mut Self>) {
            this.project().slot.post(None);
        }
    }
}

impl<B, T> Post<B, T> {
    pub(super) fn new(task: ChildTask<B, T>, inbox: Arc<Inbox<T>>) -> Self {
        Post {
            slot: Slot::Running { task, inbox },
        }
    }
}

impl<B, T> OfNode for Post<B, T> {
    /// The member's node, while its task is there (from its spawn to its
    /// post).
    fn node(&self) -> &Node {
        match &self.slot {
            Slot::Running { task, .. } => task.node(),
            Slot::Posted => unreachable!("a member's node is asked for at its spawn only"),
        }
    }
}

impl<B> Future for Post<B, <B::Output as TaskResult>::Ok>
where
    B: Future<Output: TaskResult>,
{
    type Output = Option<<B::Output as TaskResult>::Ok>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut slot = self.project().slot;
        let SlotProj::Running { task, .. } = slot.as_mut().project() else {
            unreachable!("a member's task is polled until it posts, then never again")
        };
        let value = std::task::ready!(task.poll(cx));
        slot.post(value);
        Poll::Ready(None)
    }
}
