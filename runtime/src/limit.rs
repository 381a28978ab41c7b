//! Bounded concurrency: at most `n` children of a scope run at once.
//!
//! Every scope counts the slots in use: one per child that has started and
//! not yet finished (body and subtree), and one per [`Permit`] held. With a
//! limit set, a child spawned past it waits in line (first in, first out)
//! for a slot; it is a child from the moment it is spawned (joined, counted
//! by `next_error`, cancelled and aborted with its scope), only its body
//! starts later.
//!
//! The count lives in the node's state, under the lock that spawns and
//! finishes children already take, so that a limit set later also counts the
//! children that were started before it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::task::Poll;

use tokio::sync::oneshot;

use crate::child::Child;
use crate::node::{Admission, Node};
use crate::task::Task;

/// The slots of one scope.
#[derive(Debug, Default)]
pub(crate) struct Limit {
    /// At most this many slots in use; `None` is no limit.
    max: Option<usize>,
    /// Slots in use: started children and held permits.
    active: usize,
    /// Children and `reserve` calls waiting for a slot, oldest first.
    queue: VecDeque<Waiter>,
}

#[derive(Debug)]
struct Waiter {
    /// The child's key, or the reservation's (see `Node::key`).
    id: usize,
    start: oneshot::Sender<()>,
}

impl Limit {
    /// The limit comes into use: the `running` children each hold a slot.
    pub(crate) fn count_running(&mut self, running: usize) {
        self.active += running;
    }

    fn has_room(&self) -> bool {
        self.queue.is_empty() && self.max.is_none_or(|max| self.active < max)
    }

    /// Takes a slot for `id` now (`None`), or puts it in line and gives
    /// the receiver that tells it when its slot is granted.
    pub(crate) fn admit(&mut self, id: usize) -> Option<oneshot::Receiver<()>> {
        if self.has_room() {
            self.active += 1;
            return None;
        }
        let (start, wait) = oneshot::channel();
        self.queue.push_back(Waiter { id, start });
        Some(wait)
    }

    /// Whether child `id` is still waiting in line for a slot.
    pub(crate) fn is_waiting(&self, id: usize) -> bool {
        self.queue.iter().any(|waiter| waiter.id == id)
    }

    /// Takes a slot if one is free now, without waiting in line.
    fn try_take(&mut self) -> bool {
        let room = self.has_room();
        if room {
            self.active += 1;
        }
        room
    }

    /// `id` is gone: out of the line if it was waiting, else its slot is
    /// given back.
    pub(crate) fn leave(&mut self, id: usize) {
        if let Some(position) = self.queue.iter().position(|waiter| waiter.id == id) {
            self.queue.remove(position);
        } else {
            self.release();
        }
    }

    /// Gives a slot back, and hands it to the next in line.
    pub(crate) fn release(&mut self) {
        self.active -= 1;
        self.grant();
    }

    fn set(&mut self, max: usize) {
        self.max = Some(max);
        self.grant();
    }

    /// Starts waiters while slots are free. A waiter whose receiver is
    /// already gone still counts as started: the child's `child_done`, or
    /// the reservation's guard, gives its slot back.
    fn grant(&mut self) {
        while self.max.is_none_or(|max| self.active < max) {
            let Some(waiter) = self.queue.pop_front() else {
                return;
            };
            self.active += 1;
            // A closed receiver is handled as said above.
            let _ = waiter.start.send(());
        }
    }
}

impl Node {
    /// Sets the limit; `0` is taken as `1`.
    pub(crate) fn set_limit(&self, max: usize) {
        if max == 0 {
            event!(
                warn,
                scope = &**self.path(),
                "a limit of 0 children would never let a child run; the limit is set to 1"
            );
        }
        let mut state = self.lock();
        self.limit(&mut state).set(max.max(1));
    }

    /// Waits for a free slot, in line with the children that wait for one.
    pub(crate) async fn reserve(self: &Arc<Self>) -> Permit {
        let wait = {
            let mut state = self.lock();
            let id = state.family().reservation_key();
            match self.limit(&mut state).admit(id) {
                None => return Permit::new(Arc::clone(self)),
                Some(wait) => Reservation {
                    node: self,
                    id,
                    wait: Some(wait),
                },
            }
        };
        wait.await
    }

    /// A slot if one is free now.
    pub(crate) fn try_reserve(self: &Arc<Self>) -> Option<Permit> {
        let mut state = self.lock();
        self.limit(&mut state).try_take().then(|| Permit::new(Arc::clone(self)))
    }
}

/// A `reserve` call waiting in line. If it is dropped, it leaves the line,
/// or gives back the slot it was granted but never took.
struct Reservation<'a> {
    node: &'a Arc<Node>,
    id: usize,
    wait: Option<oneshot::Receiver<()>>,
}

impl std::future::Future for Reservation<'_> {
    type Output = Permit;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Permit> {
        let Some(wait) = self.wait.as_mut() else {
            unreachable!("a reservation is not polled after it completed")
        };
        // The sender is only dropped once the grant is sent, or with the
        // node's state, which this reservation keeps alive: either way the
        // slot is ours.
        let _ = std::task::ready!(std::pin::Pin::new(wait).poll(cx));
        self.wait = None;
        Poll::Ready(Permit::new(Arc::clone(self.node)))
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.wait.is_some() {
            let mut state = self.node.lock();
            self.node.limit(&mut state).leave(self.id);
        }
    }
}

/// A slot of a scope's limit, taken ahead with
/// [`Scope::reserve`](crate::Scope::reserve): the next child can start at
/// once with [`Permit::spawn`].
///
/// Dropping an unused permit gives its slot back.
///
/// ```
/// use taskward::Scope;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// taskward::run(taskward::task(|scope: Scope| async move {
///     scope.set_limit(2);
///     for job in 0..10u32 {
///         // Waits here while two jobs run: the producer is slowed down to
///         // the pace of the workers, instead of queueing every job.
///         let permit = scope.reserve().await;
///         permit.spawn(async move { Ok::<_, std::io::Error>(job * 2) });
///     }
/// }))
/// .await
/// .unwrap();
/// # }
/// ```
#[must_use = "an unused permit holds a slot of the scope until it is dropped"]
pub struct Permit {
    node: Arc<Node>,
    armed: bool,
}

impl Permit {
    fn new(node: Arc<Node>) -> Self {
        Permit { node, armed: true }
    }

    /// Starts `task` as a child of the scope the permit was reserved on,
    /// in the permit's slot: it starts at once, without waiting in line.
    ///
    /// As with [`Scope::spawn`](crate::Scope::spawn), if that scope has
    /// already finished the task is not started and its handle reports
    /// [`ErrorKind::ScopeClosed`](crate::ErrorKind::ScopeClosed).
    ///
    /// ```
    /// # use taskward::Scope;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// taskward::run(taskward::task(|scope: Scope| async move {
    ///     scope.set_limit(1);
    ///     let permit = scope.reserve().await;
    ///     let child = permit.spawn(async { Ok::<_, std::io::Error>(7) });
    ///     assert_eq!(child.await.unwrap(), 7);
    /// }))
    /// .await
    /// .unwrap();
    /// # }
    /// ```
    pub fn spawn<T: Task>(mut self, task: T) -> Child<T::Output> {
        self.armed = false;
        self.node.spawn_with(task, Admission::Reserved, None)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.armed {
            let mut state = self.node.lock();
            self.node.limit(&mut state).release();
        }
    }
}

impl std::fmt::Debug for Permit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Permit").field("scope", self.node.path()).finish()
    }
}
