//! The handle to a spawned task.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, PoisonError};
use std::task::{Context, Poll, Waker};

use crate::error::{Error, ErrorKind};
use crate::node::Node;
use crate::sync::{Mutex, MutexGuard};

/// A handle to a task spawned with [`Scope::spawn`](crate::Scope::spawn).
///
/// Awaiting it gives the task's result once the task *and all of its
/// children* have finished. A failure is delivered here if the handle is
/// still held when the task fails; it is then yours, and does not escalate.
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
    slot: Arc<Slot<T>>,
}

impl<T> Child<T> {
    pub(crate) fn new(node: Arc<Node>, slot: Arc<Slot<T>>) -> Self {
        Child { node, slot }
    }

    /// Cancels the child's token, and so its whole subtree. Cancellation is
    /// cooperative: the child sees it through its token or scope.
    pub fn cancel(&self) {
        self.node.cancel();
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
        self.slot.lock().result.is_some()
    }
}

impl<T> Future for Child<T> {
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut slot = self.slot.lock();
        if let Some(result) = slot.result.take() {
            slot.holder = Holder::Taken;
            return Poll::Ready(result);
        }
        if slot.holder == Holder::Taken {
            return Poll::Ready(Err(Error::with_kind(
                ErrorKind::AlreadyTaken,
                self.node.path().clone(),
                "its result was already taken by an earlier `.await` of this handle",
            )));
        }
        match &mut slot.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            waker => *waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl<T> Drop for Child<T> {
    fn drop(&mut self) {
        let unclaimed = {
            let mut slot = self.slot.lock();
            slot.holder = Holder::Dropped;
            slot.waker = None;
            match slot.result.take() {
                Some(Err(err)) => Some(err),
                _ => None,
            }
        };
        if let (Some(err), Some(parent)) = (unclaimed, self.node.parent()) {
            parent.route(err);
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Holder {
    /// A `Child` handle exists: the result goes to it.
    Held,
    /// The handle was dropped: a failure goes to the scope.
    Dropped,
    /// The handle has taken the result.
    Taken,
}

/// Where a child's result waits for its handle.
pub(crate) struct Slot<T> {
    inner: Mutex<SlotInner<T>>,
}

struct SlotInner<T> {
    result: Option<Result<T, Error>>,
    waker: Option<Waker>,
    holder: Holder,
}

impl<T> Slot<T> {
    pub(crate) fn new() -> Self {
        Slot {
            inner: Mutex::new(SlotInner {
                result: None,
                waker: None,
                holder: Holder::Held,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SlotInner<T>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether a handle is still there to take the result.
    pub(crate) fn is_held(&self) -> bool {
        self.lock().holder == Holder::Held
    }

    /// Stores the result for the handle, or gives the failure back when no
    /// handle is there to take it.
    pub(crate) fn complete(&self, result: Result<T, Error>) -> Option<Error> {
        let waker = {
            let mut slot = self.lock();
            if slot.holder != Holder::Held {
                return result.err();
            }
            slot.result = Some(result);
            slot.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        None
    }
}
