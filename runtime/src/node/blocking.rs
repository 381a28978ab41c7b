//! A child that is a closure on tokio's blocking pool (`Node::spawn_blocking`),
//! and `Blocking`, the holder of its membership (see `membership.rs`).
//!
//! A thread cannot be stopped from outside, so a kill (the end of a grace
//! period) only raises the alarm: the closure is waited for until it
//! returns, a warning names it when the alarm is raised (the waker it keeps
//! in its node while it runs is the one `raise` wakes), and its result says
//! it ran past the grace. A closure waiting in line for a slot of its
//! scope's limit waits in a small tokio task, not on a thread of the pool.

use std::future::poll_fn;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Poll, Wake, Waker};

use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::Node;
use super::driver::drop_quietly;
use super::handoff::{BodyEnd, Outcome};
use super::membership::Admission;
use super::state::{ABORT, KILL, Stage};
use crate::error::{Error, ErrorKind};
use crate::policy::Policy;
use crate::sync::Ordering;
use crate::task::{Name, Parts, Start, TaskResult};
use crate::trace;

impl Node {
    /// Runs `f` on the blocking pool as a child of this node, waiting in
    /// line (in a tokio task, not on a thread) if the scope's limit is
    /// reached.
    pub(crate) fn spawn_blocking<F, R>(self: &Arc<Self>, f: F) -> crate::Child<R::Ok>
    where
        F: FnOnce(CancellationToken) -> R + Send + 'static,
        R: TaskResult,
    {
        // A closure has no scope of its own: no policy or deadline to set.
        let parts: Parts<()> = Parts {
            name: Name::Fixed(&"blocking"),
            policy: Policy::FailFast,
            timeout: None,
            shielded: false,
            start: Start::Made(()),
        };
        let shared = self.shared();
        let Some(membership) = self.register(shared, &parts, Admission::Queue, None) else {
            return self.refuse(parts.name);
        };
        let node = Arc::clone(membership.node());
        trace::open_span(&node);
        let (holder, wait) = membership.hold_blocking();
        let task = spawn(holder, wait, &shared.runtime, f);
        crate::Child::new(node, Some(task))
    }
}

/// Puts the closure on the blocking pool, after its turn in line if it
/// has to wait for one (`wait`).
fn spawn<F, R>(
    holder: Blocking,
    wait: Option<oneshot::Receiver<()>>,
    runtime: &Handle,
    f: F,
) -> JoinHandle<Option<R::Ok>>
where
    F: FnOnce(CancellationToken) -> R + Send + 'static,
    R: TaskResult,
{
    let Some(wait) = wait else {
        return runtime.spawn_blocking(move || holder.run(f));
    };
    holder.node().set_stage(Stage::Queued);
    let pool = runtime.clone();
    runtime.spawn(async move {
        let holder = holder.wait_for_slot(wait).await?;
        // `None` only if the runtime shut down before the closure ran:
        // its holder was dropped then, and reported it.
        pool.spawn_blocking(move || holder.run(f)).await.ok().flatten()
    })
}

/// The holder of a blocking child's membership: it delivers the closure's
/// result exactly once, or tears the membership down if it is dropped first
/// (the closure dropped unrun, when its runtime shuts down; a queued child
/// aborted with its parent).
pub(super) struct Blocking {
    /// `None` once the result is delivered.
    node: Option<Arc<Node>>,
}

impl Blocking {
    pub(super) fn new(node: Arc<Node>) -> Self {
        Blocking { node: Some(node) }
    }

    fn node(&self) -> &Arc<Node> {
        match &self.node {
            Some(node) => node,
            None => unreachable!("only delivering takes the node"),
        }
    }

    fn deliver<T>(mut self, result: Result<T, Error>) -> Option<T> {
        let node = self.node.take()?;
        let _span = trace::enter(&node);
        node.deliver(result)
    }

    /// Waits for a slot of the scope's limit, as a `Driver` does: `Some`
    /// when the turn came; `None` when the child was killed (it delivered
    /// `Cancelled`) or aborted (its holder is dropped, which reports it).
    async fn wait_for_slot(self, mut wait: oneshot::Receiver<()>) -> Option<Self> {
        let killed = poll_fn(|cx| {
            let node = self.node();
            let seen = node.alarm.load(Ordering::Acquire);
            if seen & ABORT != 0 {
                return Poll::Ready(None);
            }
            // The grant first: a closure granted its slot runs.
            if Pin::new(&mut wait).poll(cx).is_ready() {
                return Poll::Ready(Some(false));
            }
            if seen & KILL != 0 {
                return Poll::Ready(Some(true));
            }
            node.keep_waker(cx.waker(), seen);
            Poll::Pending
        })
        .await?;
        if !killed {
            return Some(self);
        }
        let node = Arc::clone(self.node());
        node.cancel();
        node.done();
        self.deliver::<()>(Err(Error::with_kind(
            ErrorKind::Cancelled,
            Arc::clone(node.path()),
            "aborted while it waited for a free slot of its scope's limit",
        )));
        None
    }

    /// Runs the closure on this thread with the child's token, and
    /// delivers its result.
    fn run<F, R>(mut self, f: F) -> Option<R::Ok>
    where
        F: FnOnce(CancellationToken) -> R,
        R: TaskResult,
    {
        let node = Arc::clone(self.node());
        let _span = trace::enter(&node);
        let seen = node.alarm.load(Ordering::Acquire);
        if seen & ABORT != 0 {
            // Dropping the holder reports it.
            return None;
        }
        node.set_stage(Stage::Body);
        let outcome = if seen & KILL != 0 {
            Outcome::Killed
        } else {
            trace::started(&node);
            let token = node.token().clone();
            watch(&node, seen);
            let outcome = match catch_unwind(AssertUnwindSafe(|| f(token))) {
                Ok(out) => Outcome::Returned(out),
                Err(payload) => Outcome::Panicked(payload),
            };
            let waker = std::mem::replace(node.lock().waker(), Waker::noop().clone());
            drop(waker);
            let alarm = node.alarm.load(Ordering::Acquire);
            if alarm & ABORT != 0 {
                // Its parent's future is gone: torn down as any child is,
                // with the closure's failure if it had one.
                let failure = own_failure(&node, outcome);
                if let Some(node) = self.node.take() {
                    node.tear_down_with(failure);
                }
                return None;
            }
            if alarm & KILL != 0 {
                Outcome::Returned(Err(overran(&node, outcome).into()))
            } else {
                outcome.map(|out| out.into_task_result())
            }
        };
        let killed = matches!(outcome, Outcome::Killed);
        let BodyEnd::Closed {
            value,
            error,
            timed_out,
        } = node.end_body(outcome, None)
        else {
            unreachable!("a blocking closure has no scope, so no children to join")
        };
        node.done();
        let result = node.own_result(value, error, timed_out, killed);
        self.deliver(result)
    }
}

impl Drop for Blocking {
    fn drop(&mut self) {
        if let Some(node) = self.node.take() {
            node.tear_down(None);
        }
    }
}

impl<R> Outcome<R> {
    fn map<S>(self, f: impl FnOnce(R) -> S) -> Outcome<S> {
        match self {
            Outcome::Returned(out) => Outcome::Returned(f(out)),
            Outcome::Panicked(payload) => Outcome::Panicked(payload),
            Outcome::Killed => Outcome::Killed,
        }
    }
}

/// The failure of a closure that was still running when its grace period
/// ended: `Cancelled`, saying so, with the closure's own failure, if it
/// had one, in `related()`.
fn overran<R: TaskResult>(node: &Node, outcome: Outcome<R>) -> Error {
    let own = own_failure(node, outcome);
    Error::with_kind(
        ErrorKind::Cancelled,
        Arc::clone(node.path()),
        "ran past its grace period: a blocking closure cannot be aborted, so it was waited for until it returned",
    )
    .with_related(own)
}

/// The closure's own failure, if it had one: its `Err`, or its panic. A
/// value it returned is dropped quietly (its `Drop` is user code).
fn own_failure<R: TaskResult>(node: &Node, outcome: Outcome<R>) -> Option<Error> {
    match outcome {
        Outcome::Returned(out) => match out.into_task_result() {
            Ok(value) => {
                drop_quietly(value);
                None
            }
            Err(err) => Some(Error::failed(|| Arc::clone(node.path()), err)),
        },
        Outcome::Panicked(payload) => Some(Error::panicked(Arc::clone(node.path()), payload)),
        Outcome::Killed => None,
    }
}

/// Keeps in the node, while the closure runs, a waker that warns when the
/// alarm is raised (`raise` wakes it): a kill cannot stop the thread, so
/// the warning says the tree waits for it. `seen` is the alarm before.
fn watch(node: &Arc<Node>, seen: u8) {
    let waker = Waker::from(Arc::new(Overrun {
        node: Arc::downgrade(node),
    }));
    let kept = std::mem::replace(node.lock().waker(), waker);
    drop(kept);
    // Raised before the waker was in place.
    if node.alarm.load(Ordering::Acquire) & !seen & (KILL | ABORT) != 0 {
        trace::blocking_overran(node);
    }
}

/// The waker of a running blocking closure (see `watch`). It holds its
/// node weakly: the node holds it.
struct Overrun {
    node: Weak<Node>,
}

impl Wake for Overrun {
    fn wake(self: Arc<Self>) {
        if let Some(node) = self.node.upgrade() {
            trace::blocking_overran(&node);
        }
    }
}
