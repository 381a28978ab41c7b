//! Values and failures on their way: the end of a body, the join, the
//! task's result, and where a failure goes (its `Child` handle, the
//! parent's `next_error`, or the parent's own result).

use std::any::Any;
use std::future::poll_fn;
use std::sync::{Arc, PoisonError};
use std::task::{Context, Poll};

use tokio::task::AbortHandle;

use super::Node;
use super::children::Children;
use super::driver::drop_quietly;
use super::family::{Family, State, Waiters, wake_all};
use super::state::{ABORTED, CANCELLED, DROPPED, HANDED_UP, HELD, Phase, SHIELDED, STORED, TAKEN, TIMED_OUT};
use crate::cause::CancelCause;
use crate::error::{Error, ErrorKind};
use crate::sync::Ordering;
use crate::task::TaskResult;
use crate::trace;

impl Node {
    /// The end of the task's body: the failures waiting for `next_error`
    /// escalate, the body's own failure (if any) comes after them, and the
    /// join begins, unless the task never had a child: it is closed at once,
    /// under the same lock (see `BodyEnd`).
    ///
    /// `drop_panic` is the panic of the body's drop, if it panicked: the
    /// task's failure, after the body's own if it had one (then in its
    /// `related()`, so that neither is lost), in place of a kill's
    /// `Cancelled` or of a value.
    pub(super) fn end_body<R: TaskResult>(
        &self,
        outcome: Outcome<R>,
        drop_panic: Option<Box<dyn Any + Send>>,
    ) -> BodyEnd<R::Ok> {
        let was_killed = matches!(outcome, Outcome::Killed);
        let killed = was_killed && drop_panic.is_none();
        // Whether the body's failure is another task's, passed on with `?`
        // (reported where it began), rather than one made here.
        let mut passed_on = false;
        let (value, body_error) = match outcome {
            Outcome::Returned(out) => match crate::task::split(out) {
                // The common case: a value, from a task that never had a
                // child; nothing to keep, escalate or wake.
                Ok(value) if drop_panic.is_none() => match self.close_leaf() {
                    Some(timed_out) => {
                        return BodyEnd::Closed {
                            value: Some(value),
                            error: None,
                            timed_out,
                        };
                    }
                    None => (Some(value), None),
                },
                Ok(value) => (Some(value), None),
                Err(err) => {
                    passed_on = err.as_failure().is_some_and(|err| !self.is_origin_of(err));
                    (None, Some(Error::failed(|| self.failure_place(), err)))
                }
            },
            Outcome::Panicked(payload) => (None, Some(Error::panicked(self.failure_place(), payload))),
            // A task killed after its own deadline reports `TimedOut` then.
            Outcome::Killed if self.has(&self.lock(), TIMED_OUT) => (None, None),
            Outcome::Killed => (
                None,
                Some(Error::with_kind(
                    ErrorKind::Cancelled,
                    self.failure_place(),
                    self.with_cause("still running when its grace period ended, so it was aborted"),
                )),
            ),
        };
        let (value, body_error) = match drop_panic {
            None => (value, body_error),
            Some(payload) => {
                let panicked = Error::panicked(self.failure_place(), payload);
                match body_error {
                    // A kill's `Cancelled` says less than the panic.
                    Some(err) if !was_killed => (None, Some(err.with_related([panicked]))),
                    _ => {
                        drop_quietly(value);
                        passed_on = false;
                        (None, Some(panicked))
                    }
                }
            }
        };
        if killed {
            trace::aborted(self);
        } else if let Some(err) = &body_error {
            trace::body_failed(err, passed_on);
        }

        let failed = value.is_none();
        // Its children are cancelled because it ended: they can ask why.
        if failed && self.members() > 0 {
            self.keep_cause(|| CancelCause::ParentEnded {
                task: Arc::clone(self.path()),
            });
        }
        let (mut value, mut body_error) = (value, body_error);
        let mut escalated: Vec<Error> = Vec::new();
        let shielded;
        let (waiters, closed) = {
            let mut state = self.lock();
            // A task that failed has no use for the work of its children.
            if failed {
                self.mark(&mut state, CANCELLED);
            }
            shielded = self.has(&state, SHIELDED);
            let timed_out = self.has(&state, TIMED_OUT);
            let phase = match state.family_ref() {
                // Nothing was ever spawned here: the join is over already.
                None => Phase::Closed,
                Some(_) => Phase::Joining,
            };
            self.set_phase(&mut state, phase);
            match state.family_if_any() {
                None => (Waiters::default(), Some(timed_out)),
                Some(family) => {
                    // Reported once the lock is released (see `Unreported`).
                    escalated = family.pending.iter().filter(|_| trace::wanted()).cloned().collect();
                    family.failures.extend(family.pending.drain(..));
                    family.failures.extend(body_error.take());
                    // Kept here, not in the task's future (see `Driver`).
                    // Boxing a `()` allocates nothing.
                    family.value = value.take().map(|value| Box::new(value) as Box<dyn Any + Send>);
                    // `next_error` callers: nothing more will reach them.
                    (family.waiters.take(), None)
                }
            }
        };
        // Cancelled when it failed, and when it is closed (see
        // `make_token`).
        for err in &escalated {
            trace::escalated(self, err);
        }
        if failed || closed.is_some() {
            self.close_token(shielded);
        }
        if let Some(link) = self.ready_link() {
            link.body_ended();
        }
        wake_all(waiters);
        match closed {
            Some(timed_out) => BodyEnd::Closed {
                value,
                error: body_error,
                timed_out,
            },
            // Kept in the family (see above).
            None => BodyEnd::Joining,
        }
    }

    /// `end_body` for a body that returned a value: if the task never had
    /// a child, it is closed now, and its deadline's passing is given back;
    /// `None` (and nothing done) if it has children to join.
    ///
    /// A task whose children have all ended, with no failure of theirs
    /// waiting (a body that awaited every handle), is closed now too: its
    /// join would find nothing to wait for, under a second and a third
    /// lock, and would box the value to keep it meanwhile.
    #[inline]
    fn close_leaf(&self) -> Option<bool> {
        let (timed_out, shielded, joined) = {
            let mut state = self.lock();
            let joined = match state.family_if_any() {
                None => None,
                Some(family) => Some(self.close_joined(family)?),
            };
            self.set_phase(&mut state, Phase::Closed);
            (self.has(&state, TIMED_OUT), self.has(&state, SHIELDED), joined)
        };
        if let Some((children, waiters)) = joined {
            // As `poll_join` lets go of the list, after the lock.
            drop(children);
            wake_all(waiters);
        }
        self.close_token(shielded);
        if let Some(link) = self.ready_link() {
            link.body_ended();
        }
        Some(timed_out)
    }

    /// For `close_leaf`, under the lock: if no child of `family` is left
    /// and no failure waits in it, its children list (to let go of once
    /// the lock is released) and its waiters (`next_error` callers, to
    /// wake: nothing more will reach them); `None` if the task has a join
    /// to wait for, or failures to report.
    #[cold]
    fn close_joined(&self, family: &mut Family) -> Option<(Children, Waiters)> {
        let settled = self.members() == 0
            && family.pending.is_empty()
            && family.failures.is_empty()
            && family.cancelled_by.is_none();
        settled.then(|| (std::mem::take(&mut family.children), family.waiters.take()))
    }

    /// The join: ready with the task's failures (and its deadline, if it
    /// passed) once no child runs.
    ///
    /// The scope is closed under the lock that sees the last child gone: a
    /// spawn through a clone of the scope kept outside the tree comes
    /// before (and is joined) or after (and is refused).
    pub(super) fn poll_join(&self, cx: &mut Context<'_>) -> Poll<Joined> {
        let shielded;
        let (failures, cancelled_by, timed_out, value, released) = {
            let mut state = self.lock();
            if self.members() > 0 {
                state.family().wait(cx.waker());
                return Poll::Pending;
            }
            self.set_phase(&mut state, Phase::Closed);
            let timed_out = self.has(&state, TIMED_OUT);
            shielded = self.has(&state, SHIELDED);
            match state.family_if_any() {
                Some(family) => (
                    std::mem::take(&mut family.failures),
                    family.cancelled_by,
                    timed_out,
                    family.value.take(),
                    Some(std::mem::take(&mut family.children)),
                ),
                None => (Vec::new(), None, timed_out, None, None),
            }
        };
        // Every child is released: the tokio tasks of those whose handle
        // was dropped (see `keep_task`), and the nodes of those whose handle
        // is gone too, are freed here, after the lock, by the worker that
        // joins (see `Family::children`).
        drop(released);
        self.close_token(shielded);
        Poll::Ready(Joined {
            failures,
            cancelled_by,
            timed_out,
            value,
        })
    }

    /// `result` for a task that never had a child (`BodyEnd::Closed`): no
    /// failures of others to fold in, so its common cases, a value or its
    /// own failure, make and drop no list of them.
    #[inline]
    pub(super) fn own_result<T>(
        &self,
        value: Option<T>,
        own: Option<Error>,
        timed_out: bool,
        killed: bool,
    ) -> Result<T, Error> {
        match (value, own) {
            (Some(value), None) if !timed_out => {
                trace::finished(self, None);
                Ok(value)
            }
            (None, Some(own)) if !timed_out => {
                trace::finished(self, Some(&own));
                Err(own)
            }
            (value, own) => self.result(value, own, Vec::new(), None, timed_out, killed),
        }
    }

    /// The task's result, once body and children are done: `own` is the
    /// body's failure if `end_body` gave it back (it then comes first),
    /// `failures` the others, `cancelled_by` the one that cancelled the
    /// scope under fail-fast (it then comes first).
    pub(super) fn result<T>(
        &self,
        value: Option<T>,
        own: Option<Error>,
        failures: Vec<Error>,
        cancelled_by: Option<u64>,
        timed_out: bool,
        killed: bool,
    ) -> Result<T, Error> {
        // The common case: a value, and nothing failed.
        let value = match value {
            Some(value) if own.is_none() && failures.is_empty() && !timed_out => {
                trace::finished(self, None);
                return Ok(value);
            }
            value => value,
        };
        // The next most common: the task's own failure alone.
        if failures.is_empty()
            && !(timed_out && self.timeout().is_some())
            && let Some(own) = own
        {
            trace::finished(self, Some(&own));
            return Err(own);
        }
        let mut failures: Vec<Error> = match own {
            Some(own) => std::iter::once(own).chain(failures).collect(),
            None => failures,
        };
        // The failure that cancelled a fail-fast scope is its error,
        // whatever order the failures reached it in: one whose handle was
        // held reaches the scope only when the handle is dropped, maybe
        // after the failures of the siblings it cancelled.
        if let Some(at) = cancelled_by.and_then(|order| failures.iter().position(|err| err.order() == order)) {
            failures[..=at].rotate_right(1);
        }
        if let (true, Some(limit)) = (timed_out, self.timeout()) {
            return Err(crate::deadline::timed_out(self, limit, killed, failures));
        }
        let mut failures = failures.into_iter();
        let result = match (failures.next(), value) {
            (Some(first), _) => Err(first.with_related(failures)),
            (None, Some(value)) => Ok(value),
            (None, None) => unreachable!("a body without a value has failed"),
        };
        trace::finished(self, result.as_ref().err());
        result
    }

    /// Offers the task's failure to its `Child` handle: kept for it if the
    /// handle is still held, else given back to be routed to the parent.
    ///
    /// The failure is put in place first, then `STORED` is set only if the
    /// handle is still `HELD`, in one atomic step; the handle sets `DROPPED`
    /// or `TAKEN` in one atomic step too, and looks for the failure (under
    /// the lock) only if `STORED` was set. So the failure goes to exactly
    /// one of them, and a handle dropped with no failure waiting takes no
    /// lock.
    ///
    /// A handle already gone never comes back (the bits are only ever
    /// set): its failure goes to the parent without a place made for it
    /// (the task's `Extra`, most often not made otherwise).
    pub(super) fn offer_failure(&self, err: Error) -> Option<Error> {
        if self.handle.load(Ordering::Acquire) != HELD {
            return Some(err);
        }
        let mut failure = self.extra().failure.lock().unwrap_or_else(PoisonError::into_inner);
        *failure = Some(err);
        match self
            .handle
            .compare_exchange(HELD, STORED, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => None,
            Err(_) => failure.take(),
        }
    }

    /// Whether a `Child` handle is still there to take a failure.
    pub(crate) fn is_held(&self) -> bool {
        self.handle.load(Ordering::Acquire) & (DROPPED | TAKEN) == 0
    }

    /// Whether a failure waits for the handle.
    pub(crate) fn has_failure(&self) -> bool {
        self.handle.load(Ordering::Acquire) & (STORED | DROPPED | TAKEN) == STORED
    }

    /// The handle takes the result: the failure, if one waits.
    pub(crate) fn take_failure(&self) -> Option<Error> {
        self.leave_handle(TAKEN)
    }

    /// The handle is dropped: from now on a failure goes to the parent; the
    /// one already waiting is given back, to be routed there.
    pub(crate) fn release_failure(&self) -> Option<Error> {
        self.leave_handle(DROPPED)
    }

    /// Keeps `task`, the tokio task of `child`, whose handle was dropped
    /// before it finished, in the child's entry until the child is joined,
    /// so that its memory is freed by the worker that joins (the one that
    /// made it, most often) rather than by the one that ran it: glibc's
    /// free of a block made by another thread takes that thread's arena
    /// lock, which the spawning thread takes at each spawn. A scope
    /// already closed, or a child no longer listed, drops it at once.
    pub(crate) fn keep_task(&self, child: &Node, task: AbortHandle) {
        let mut state = self.lock();
        let not_kept = match self.phase(&state) {
            Phase::Closed => Some(task),
            _ => state.family().keep_task(child, task),
        };
        drop(state);
        drop(not_kept);
    }

    pub(super) fn leave_handle(&self, how: u8) -> Option<Error> {
        let before = self.handle.fetch_or(how, Ordering::AcqRel);
        if before & (STORED | DROPPED | TAKEN) == STORED {
            self.extra()
                .failure
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take()
        } else {
            None
        }
    }

    /// Takes the next failure routed to this scope, waiting while children
    /// still run.
    pub(crate) async fn next_error(&self) -> Option<Error> {
        poll_fn(|cx| {
            let mut state = self.lock();
            if let Some(err) = state.family_if_any().and_then(|family| family.pending.pop_front()) {
                return Poll::Ready(Some(err));
            }
            if self.members() == 0 || self.phase(&state) != Phase::Body {
                return Poll::Ready(None);
            }
            state.family().wait(cx.waker());
            Poll::Pending
        })
        .await
    }

    /// `message` of a `Cancelled` error, with why the task was cancelled
    /// if it was.
    ///
    /// A reason's `Display` is user code: if it panics, the message is
    /// given without the cause.
    pub(super) fn with_cause(&self, message: &str) -> String {
        let Some(cause) = self.cancel_cause() else {
            return message.to_owned();
        };
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cause.brief())) {
            Ok(brief) => format!("{message} (cancelled because {brief})"),
            Err(payload) => {
                super::drop_quietly(payload);
                message.to_owned()
            }
        }
    }

    /// Waits until no child of this scope is a member (`Scope::wait`),
    /// without closing the scope. The last child out wakes the waiters
    /// (`child_done`); looking at the count under the lock that the waker is
    /// kept under means that wake-up is never missed.
    pub(crate) async fn wait_idle(&self) {
        poll_fn(|cx| self.poll_idle(cx)).await;
    }

    /// `wait_idle` as a poll: ready once no child of this scope is a member.
    pub(crate) fn poll_idle(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.members() == 0 {
            return Poll::Ready(());
        }
        let mut state = self.lock();
        if self.members() == 0 {
            return Poll::Ready(());
        }
        state.family().wait(cx.waker());
        Poll::Pending
    }

    /// A failure that nobody claimed through a handle, dropped after its
    /// child finished: to this scope, or if this scope has finished (the
    /// handle was moved out of it, and dropped later), to the nearest
    /// ancestor still running, so that it is not lost.
    pub(crate) fn route(&self, err: Error) {
        let mut node = self;
        let (waiters, unreported) = loop {
            let mut state = node.lock();
            if node.phase(&state) == Phase::Closed
                && (!node.has(&state, ABORTED) || node.has(&state, HANDED_UP))
                && let Some(parent) = &node.parent
            {
                drop(state);
                node = parent;
                continue;
            }
            let unreported = node.route_locked(&mut state, err);
            break (state.take_waiters(), unreported);
        };
        unreported.report(node);
        wake_all(waiters);
    }

    /// Routes a child's failure that no handle took: to `next_error` while
    /// the body runs, into the task's result after. Under the lock (`state`);
    /// what it gives back is reported once the lock is released.
    pub(super) fn route_locked(&self, state: &mut State, err: Error) -> Unreported {
        match self.phase(state) {
            Phase::Body => {
                state.family().pending.push_back(err);
                Unreported::Nothing
            }
            Phase::Joining => {
                let report = trace::wanted().then(|| err.clone());
                state.family().failures.push(err);
                report.map_or(Unreported::Nothing, Unreported::Escalated)
            }
            // The scope was torn down (aborted, or its future dropped): the
            // failure waits with it until it hands them all to its parent,
            // once the last of its children is gone (see `hand_up`).
            Phase::Closed if self.has(state, ABORTED) => {
                state.family().failures.push(err);
                Unreported::Nothing
            }
            // A `Child` handle outlived the whole tree and was dropped
            // unawaited while holding a failure: the result is already out,
            // so the failure is reported the only way left.
            Phase::Closed => Unreported::Lost(err),
        }
    }
}

/// A tracing event still to send once the node's lock is released: the
/// event formats the error (its `Display`, user code), which must never run
/// under a lock.
#[must_use = "an event to send once the lock is released"]
pub(super) enum Unreported {
    Nothing,
    /// A failure escalated into the scope's result.
    Escalated(Error),
    /// A failure nobody is left to take.
    Lost(Error),
}

impl Unreported {
    /// Sends the event, for `node`'s scope.
    pub(super) fn report(self, node: &Node) {
        match self {
            Unreported::Nothing => {}
            Unreported::Escalated(err) => trace::escalated(node, &err),
            Unreported::Lost(err) => {
                trace::failure_lost(node, &err);
                drop(err);
            }
        }
    }
}

/// How a body's end leaves its task (see `Node::end_body`).
pub(super) enum BodyEnd<T> {
    /// The task never had a child, so it is closed already: here is its
    /// value or its own failure, and whether its deadline passed.
    Closed {
        value: Option<T>,
        error: Option<Error>,
        timed_out: bool,
    },
    /// The task has children's bookkeeping, which now keeps the body's
    /// value or failure while the children are joined.
    Joining,
}

/// What the join gives back, once no child runs.
pub(super) struct Joined {
    /// The task's failures, first one first.
    pub(super) failures: Vec<Error>,
    /// Which of them cancelled the scope under fail-fast (its `order`).
    pub(super) cancelled_by: Option<u64>,
    /// The task's deadline passed.
    pub(super) timed_out: bool,
    /// The body's value, kept in the family while the children ran.
    pub(super) value: Option<Box<dyn Any + Send>>,
}

/// How a task body ended.
pub(super) enum Outcome<T> {
    Returned(T),
    Panicked(Box<dyn std::any::Any + Send>),
    /// Aborted in place by `Node::kill`.
    Killed,
}
