//! A child's membership in its parent: registered (counted in the parent's
//! members, listed among its children, given a slot of its limit or a place
//! in line), then released exactly once, with the failure nobody claimed.
//!
//! This is the seam every kind of task goes through. `register` gives a
//! `Membership`; what runs the task (today the `ChildTask` around a
//! `Driver`, from `Membership::drive`, and `Blocking` for a closure on the
//! blocking pool, from `Membership::hold_blocking`) holds the child's node until either
//! `deliver` (it finished: its result goes to the handle or the parent) or
//! `tear_down` (it was dropped first: its subtree is aborted, `Cancelled` is
//! reported, and the parent is released once the last descendant is gone).
//! Nothing else of the lifecycle needs to be touched to run a task some
//! other way (see ARCHITECTURE.md, "The membership seam" and "How to add a
//! Scope method, a kind of task, a policy").

use std::any::Any;
use std::future::Future;
use std::sync::Arc;

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::blocking::Blocking;
use super::driver::ChildTask;
use super::family::{Waiters, wake_all};
use super::state::{ABORTED, CANCELLED, HANDED_UP, KILL, LIMITED, Phase, RELEASED, SHIELDED};
use super::{Node, Shared, State};
use crate::cause::CancelCause;
use crate::error::{Error, ErrorKind};
use crate::policy::Policy;
use crate::ready::ReadyLink;
use crate::scope::Scope;
use crate::sync::Ordering;
use crate::task::{Parts, TaskResult};

impl Node {
    /// The bookkeeping of a spawn, under the scope's lock: counts a new
    /// child as running and makes its node, with a slot of the scope's
    /// limit or a place in line (`wait`); `None` if the scope is closed
    /// (giving back the slot a reserved child held).
    ///
    /// Always inlined: the spawn of a `#[supervised]` task called it out
    /// of line (the `async` block's spawn inlined it), for 56 instructions
    /// per task (callgrind, `spawn_join/10000` and `group/100000`).
    #[inline(always)]
    pub(super) fn register<B>(
        self: &Arc<Self>,
        shared: &Shared,
        parts: &Parts<B>,
        admission: Admission,
        ready: Option<Arc<ReadyLink>>,
    ) -> Option<Membership> {
        // Made before the lock, which the children that finish take too.
        let node = Arc::new(Node::new(
            Some(Arc::clone(self)),
            None,
            shared.spawn_stamp(),
            parts.name.clone(),
            parts.policy,
            parts.timeout,
            ready,
        ));
        if parts.shielded {
            // Not shared yet: no lock needed to set a flag of its own.
            node.flags.fetch_or(SHIELDED, Ordering::Relaxed);
        }
        let mut state = self.lock();
        if self.phase(&state) == Phase::Closed {
            if admission == Admission::Reserved {
                self.limit(&mut state).release();
            }
            return None;
        }
        let before = self.members.fetch_add(1, Ordering::AcqRel);
        let limited = before & LIMITED != 0;
        let family = state.family();
        node.index.store(family.names.next(&parts.name), Ordering::Relaxed);
        // A child spawned into a killed subtree is killed too (see `kill`).
        node.alarm
            .store(self.alarm.load(Ordering::Acquire) & KILL, Ordering::Relaxed);
        let swept = family.push_child(&node, ((before & !LIMITED) + 1) as usize);
        // Without a limit no slot is counted; a reserved child holds one.
        let wait = match admission {
            Admission::Queue if limited => family.limit.admit(node.key()),
            Admission::Queue | Admission::Reserved => None,
        };
        drop(state);
        // Dropped only when the list was swept: most spawns make no call
        // to drop nothing (see `Family::push_child`).
        if let Some(swept) = swept {
            drop(swept);
        }
        Some(Membership { node, wait })
    }

    /// Makes the body of `child`, just registered here, with `make`: a
    /// `task(..)` closure, user code, run outside the lock. If it panics,
    /// the child is unregistered again, so that this scope's join does not
    /// wait for a task that never started.
    pub(super) fn make_body<B>(&self, child: &Arc<Node>, make: impl FnOnce(Scope) -> B) -> B {
        let unregister = Unregister { parent: self, child };
        let body = make(Scope::from_node(Arc::clone(child)));
        std::mem::forget(unregister);
        body
    }

    /// Bookkeeping when `child` is gone; `unclaimed` is its failure if no
    /// handle took it.
    ///
    /// An aborted node tells its own parent only once its last child is gone
    /// too, so that a parent never counts a subtree as finished while part
    /// of it is still alive.
    pub(super) fn child_done(&self, child: &Node, unclaimed: Option<Error>) {
        let mut node = self;
        let mut child = child;
        let mut unclaimed = unclaimed;
        loop {
            child.alarm.fetch_or(RELEASED, Ordering::AcqRel);
            let (waiters, release) = match unclaimed.take() {
                // The common case: a count, and the lock only for the last
                // child (to wake the join) or to give a slot back. The
                // child's entry stays in the list for the sweep or the join
                // (see `Family::children`).
                None => {
                    let before = node.members.fetch_sub(1, Ordering::AcqRel);
                    let last = before & !LIMITED == 1;
                    if before & LIMITED == 0 && !last {
                        return;
                    }
                    let mut state = node.lock();
                    if before & LIMITED != 0 {
                        state.family().limit.leave(child.key());
                    }
                    match last {
                        true => (state.family().waiters.take(), node.take_release(&mut state)),
                        false => (Waiters::default(), None),
                    }
                }
                // A failure is routed under the lock that also counts the
                // child out: a join looking under it sees both or neither.
                Some(err) => {
                    let mut state = node.lock();
                    let unreported = node.route_locked(&mut state, err);
                    let before = node.members.fetch_sub(1, Ordering::AcqRel);
                    if before & LIMITED != 0 {
                        state.family().limit.leave(child.key());
                    }
                    let release = if before & !LIMITED == 1 {
                        node.take_release(&mut state)
                    } else {
                        None
                    };
                    let waiters = state.family().waiters.take();
                    drop(state);
                    unreported.report(node);
                    (waiters, release)
                }
            };
            wake_all(waiters);
            match (release, &node.parent) {
                (Some(release), Some(parent)) => {
                    child = node;
                    unclaimed = release.into_failure();
                    node = parent;
                }
                _ => return,
            }
        }
    }

    /// The task has its result: a failure goes to the handle if it is
    /// still held, else to the parent, which learns in the same step that
    /// this child is gone (and, under fail-fast, is cancelled by a failure).
    /// Gives back the value, which the caller delivers itself (a tokio
    /// task's output, for a `ChildTask`).
    #[inline]
    pub(super) fn deliver<T>(&self, result: Result<T, Error>) -> Option<T> {
        let (value, unclaimed, failed) = match result {
            Ok(value) => (Some(value), None, None),
            Err(err) => {
                let order = err.order();
                self.keep_sibling_cause(&err);
                (None, self.offer_failure(err), Some(order))
            }
        };
        if let Some(parent) = &self.parent {
            // Under fail-fast the failure is noted as the one that
            // cancelled the scope (unless the scope was cancelled already),
            // and routed, before the scope is cancelled: the siblings the
            // cancellation wakes (on other workers) fail after it, and it
            // stays the scope's error.
            let cancels = failed.filter(|_| parent.policy() == Policy::FailFast);
            if let Some(order) = cancels {
                parent.note_cancelling_failure(order);
            }
            parent.child_done(self, unclaimed);
            if cancels.is_some() {
                parent.cancel();
            }
        }
        value
    }

    /// Under fail-fast, keeps this failure as why the parent is about to be
    /// cancelled, if nothing cancelled it before (see `keep_cause`).
    #[cold]
    fn keep_sibling_cause(&self, err: &Error) {
        if let Some(parent) = self
            .parent
            .as_ref()
            .filter(|parent| parent.policy() == Policy::FailFast)
        {
            parent.keep_cause(|| CancelCause::SiblingFailed {
                task: Arc::from(err.task()),
                message: err.what(),
            });
        }
    }

    /// Notes the failure `order` of a child as the one that cancels this
    /// fail-fast scope, if the scope was not cancelled before (from above,
    /// or by its own failure), or if an earlier one is racing it.
    #[cold]
    fn note_cancelling_failure(&self, order: u64) {
        let mut state = self.lock();
        let before = self.has(&state, CANCELLED) || self.token.get().is_some_and(CancellationToken::is_cancelled);
        let family = state.family();
        if !before || family.cancelled_by.is_some() {
            family.cancelled_by = Some(family.cancelled_by.map_or(order, |first| first.min(order)));
        }
    }

    /// What runs the task was dropped before it delivered (aborted, or the
    /// runtime shut down; also before it was ever polled), its body already
    /// gone: the children are aborted, `Cancelled` is reported, and the
    /// parent is released once the last child is gone.
    ///
    /// The `Cancelled` is only made if someone can take it: the handle, or a
    /// parent that is not torn down itself. In an aborted tree nobody can,
    /// and making the path of every task of a deep chain would take memory
    /// quadratic in its depth.
    /// `panic` is the panic of the body's drop, if it panicked: reported
    /// instead of `Cancelled`, and never dropped (in an aborted tree it is
    /// handed up, see `hand_up`).
    ///
    /// An abort the owner asked for (`Child::abort`) reports nothing here:
    /// its `Cancelled` is the handle's to make when it is awaited, and goes
    /// nowhere if the handle is dropped, so it never escalates (nor, since
    /// `deliver` is not reached, cancels a fail-fast owner). The failures
    /// that were waiting in its subtree are not the abort's: they go to its
    /// parent once the subtree is gone (see `hand_up`).
    pub(super) fn tear_down(&self, panic: Option<Box<dyn Any + Send>>) {
        self.tear_down_with(panic.map(|payload| Error::panicked(Arc::clone(self.path()), payload)));
    }

    /// `tear_down`, with the task's own failure if it had one (a panic as
    /// its body was dropped, a blocking closure's `Err`): reported instead
    /// of `Cancelled`. In an aborted subtree it is handed up with the rest
    /// (see `hand_up`).
    pub(super) fn tear_down_with(&self, failure: Option<Error>) {
        self.drop_slow();
        self.abort();
        let asked = self.is_abort_asked();
        let readable = self.is_held()
            || self
                .parent
                .as_ref()
                .is_some_and(|parent| !parent.has(&parent.lock(), ABORTED));
        let unclaimed = match (readable, failure) {
            (_, None) if asked => None,
            (true, None) => {
                let err = Error::with_kind(
                    ErrorKind::Cancelled,
                    Arc::clone(self.path()),
                    "aborted before it finished",
                );
                self.offer_failure(err)
            }
            (true, Some(err)) => self.offer_failure(err),
            (false, failure) => failure,
        };
        self.abandon(unclaimed);
    }

    /// The last step of an aborted task: release the parent now, or once the
    /// last child is gone.
    pub(super) fn abandon(&self, unclaimed: Option<Error>) {
        let Some(parent) = &self.parent else {
            return;
        };
        let release = {
            let mut state = self.lock();
            if self.members() > 0 {
                state.family().release = Some(Abandoned { unclaimed });
                return;
            }
            self.hand_up(&mut state, unclaimed)
        };
        parent.child_done(self, release.into_failure());
    }

    /// The release an aborted node left for its last child to make (see
    /// `abandon`), now that it is gone, with the failures it holds.
    fn take_release(&self, state: &mut State) -> Option<HandedUp> {
        let Abandoned { unclaimed } = state.family_if_any()?.release.take()?;
        Some(self.hand_up(state, unclaimed))
    }

    /// The last step of an aborted node, under its lock: what it hands its
    /// parent. The failures that were waiting in it (for `next_error` or
    /// its join) and those its subtree sent it since are not the abort's
    /// to drop: they go with its own (`unclaimed`, in its `related()`), or
    /// as one failure if it has none. From now on a failure routed to it
    /// goes on up (see `route`).
    fn hand_up(&self, state: &mut State, unclaimed: Option<Error>) -> HandedUp {
        self.mark(state, HANDED_UP);
        let waiting = match state.family_if_any() {
            Some(family) => family.pending.drain(..).chain(family.failures.drain(..)).collect(),
            None => Vec::new(),
        };
        HandedUp { unclaimed, waiting }
    }
}

/// What an aborted node hands its parent (see `Node::hand_up`).
pub(super) struct HandedUp {
    unclaimed: Option<Error>,
    waiting: Vec<Error>,
}

impl HandedUp {
    /// The one failure the parent is given, made outside every lock.
    pub(super) fn into_failure(self) -> Option<Error> {
        let mut waiting = self.waiting.into_iter();
        match (self.unclaimed, waiting.next()) {
            (unclaimed, None) => unclaimed,
            (Some(own), Some(first)) => Some(own.with_related(std::iter::once(first).chain(waiting))),
            (None, Some(first)) => Some(first.with_related(waiting)),
        }
    }
}

/// A child registered in its parent and not yet running: what every kind
/// of task starts from (`Node::register` makes it).
///
/// From here on the child is one of its parent's members: it is joined,
/// listed in snapshots, sees `next_error`, holds a slot of the limit (or a
/// place in line), and is killed or aborted with its parent's subtree. What
/// runs it must end the membership exactly once: `drive` gives the future
/// that does (put it on any executor); a body that could not be made is
/// unregistered (`Unregister`).
pub(crate) struct Membership {
    node: Arc<Node>,
    /// Tells a child in line for a slot of the limit that its turn came.
    wait: Option<oneshot::Receiver<()>>,
}

impl Membership {
    /// The member's node: its scope, and what its `Child` handle holds.
    pub(super) fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// Whether the child waits in line for a slot of its scope's limit.
    pub(super) fn is_queued(&self) -> bool {
        self.wait.is_some()
    }

    /// The future of the member's task: it waits for its slot if in line,
    /// runs `body` (`lazy` if it takes its scope at its first poll) and
    /// joins its children, then ends the membership: `deliver`, or
    /// `tear_down` if it is dropped first.
    pub(super) fn drive<B>(self, body: B, lazy: bool) -> ChildTask<B, <B::Output as TaskResult>::Ok>
    where
        B: Future<Output: TaskResult>,
    {
        ChildTask::new(self.node, body, lazy, self.wait)
    }

    /// The holder of a blocking member (see `blocking.rs`), and the
    /// receiver that tells it its turn if it waits in line.
    pub(super) fn hold_blocking(self) -> (Blocking, Option<oneshot::Receiver<()>>) {
        (Blocking::new(self.node), self.wait)
    }
}

/// Whether a new child already holds a slot of its scope's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// It takes a slot, or waits in line for one.
    Queue,
    /// It was given a slot beforehand (`Permit`, `try_spawn`).
    Reserved,
}

/// Undoes the registration of a child whose body could not be made.
struct Unregister<'a> {
    parent: &'a Node,
    child: &'a Node,
}

impl Drop for Unregister<'_> {
    fn drop(&mut self) {
        self.parent.child_done(self.child, None);
    }
}

/// What an aborted node whose children are still being dropped hands its
/// parent once the last of them is gone (see `Node::abandon`).
pub(super) struct Abandoned {
    /// Its failure, if no handle took it.
    pub(super) unclaimed: Option<Error>,
}
