//! The bookkeeping behind a scope: one `Node` per task of the tree.
//!
//! A node counts its running children, keeps their abort handles (so that
//! dropping the task aborts its subtree), and holds the failures routed to it
//! until they are taken by `next_error` or escalate when the body ends.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::sync::{Arc, OnceLock, PoisonError};
use std::task::Poll;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::{Notify, oneshot};
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::child::Slot;
use crate::error::{Error, ErrorKind};
use crate::limit::Limit;
use crate::policy::Policy;
use crate::ready::ReadyLink;
use crate::scope::Scope;
use crate::sync::{Mutex, MutexGuard};
use crate::task::{Parts, Task, TaskResult};
use crate::trace;
use crate::tree::{TaskState, TaskTree};

#[cfg(all(test, loom))]
mod loom_model;

/// What every node of one tree shares.
#[derive(Debug)]
pub(crate) struct Tree {
    pub(crate) runtime: Handle,
    /// How long a cancelled task may take to stop before it is aborted:
    /// the `Root`'s grace period, if one was set.
    pub(crate) grace: Option<Duration>,
}

pub(crate) struct Node {
    tree: Arc<Tree>,
    parent: Option<Arc<Node>>,
    name: Cow<'static, str>,
    /// Position among the siblings of the same name, from 0.
    index: u32,
    /// Key of this node in its parent's `children`.
    id: u64,
    /// Built on first use: most tasks never need their path.
    path: OnceLock<Arc<str>>,
    policy: Policy,
    token: CancellationToken,
    /// Cancelled to abort the task's body and its whole subtree in place,
    /// keeping the bookkeeping: a child of the parent's `kill`.
    kill: CancellationToken,
    /// The task's deadline, counted from the start of its body.
    timeout: Option<Duration>,
    /// Set when the task was started with `Scope::start`.
    ready: Option<Arc<ReadyLink>>,
    state: Mutex<State>,
    /// Signalled when a child finishes or a failure is routed here.
    changed: Notify,
    /// When the task was spawned, for the age shown in a tree snapshot.
    started: Instant,
}

/// A running child, as its parent sees it.
struct ChildEntry {
    node: Arc<Node>,
    /// Known once the child's tokio task is spawned.
    abort: Option<AbortHandle>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The body runs; failures wait in `pending` for `next_error`.
    Body,
    /// The body has ended; failures escalate into `failures`.
    Joining,
    /// Body and children are done: nothing can be spawned any more.
    Closed,
}

pub(crate) struct State {
    phase: Phase,
    /// Set when the node's future was dropped before it finished.
    aborted: bool,
    /// For an aborted node whose children are still being dropped: what to
    /// hand the parent once the last of them is gone (its unclaimed failure).
    release: Option<Option<Error>>,
    running: usize,
    next_id: u64,
    /// Running children (and aborted ones not yet gone).
    children: HashMap<u64, ChildEntry>,
    /// How many children of each name were spawned, for `name#index`.
    names: HashMap<Cow<'static, str>, u32>,
    pending: VecDeque<Error>,
    failures: Vec<Error>,
    /// Set when the task's deadline passed.
    timed_out: Option<Duration>,
    /// Which children may run now, and which wait for a slot.
    pub(crate) limit: Limit,
}

impl State {
    fn new() -> Self {
        State {
            phase: Phase::Body,
            aborted: false,
            release: None,
            running: 0,
            next_id: 0,
            children: HashMap::new(),
            names: HashMap::new(),
            pending: VecDeque::new(),
            failures: Vec::new(),
            timed_out: None,
            limit: Limit::new(),
        }
    }
}

impl Node {
    pub(crate) fn root(
        tree: Arc<Tree>,
        name: Cow<'static, str>,
        policy: Policy,
        token: CancellationToken,
        timeout: Option<Duration>,
    ) -> Arc<Node> {
        Arc::new(Node {
            tree,
            parent: None,
            name,
            index: 0,
            id: 0,
            path: OnceLock::new(),
            policy,
            token,
            kill: CancellationToken::new(),
            timeout,
            ready: None,
            state: Mutex::new(State::new()),
            changed: Notify::new(),
            started: Instant::now(),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // No user code runs while the lock is held, so a poisoned lock can
        // only come from a bug in this module; its data is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn token(&self) -> &CancellationToken {
        &self.token
    }

    pub(crate) fn parent(&self) -> Option<&Arc<Node>> {
        self.parent.as_ref()
    }

    pub(crate) fn policy(&self) -> Policy {
        self.policy
    }

    pub(crate) fn tree(&self) -> &Tree {
        &self.tree
    }

    pub(crate) fn ready_link(&self) -> Option<&Arc<ReadyLink>> {
        self.ready.as_ref()
    }

    /// Aborts the task's body and every body of its subtree where they
    /// stand: each is dropped at once and reported `Cancelled`, while the
    /// joins go on, so that every task is awaited and delivers its result.
    pub(crate) fn kill(&self) {
        self.kill.cancel();
    }

    /// Marks the task as past its deadline (its result will be `TimedOut`)
    /// and cancels it.
    pub(crate) fn time_out(&self, limit: Duration) {
        self.lock().timed_out = Some(limit);
        self.token.cancel();
    }

    /// The task's path from the root, such as `pipeline/worker#3`.
    ///
    /// Built in a loop up to the nearest ancestor whose path is known (or
    /// the root), not by recursion: a chain of tasks thousands deep must
    /// not overflow the stack. The ancestors' own paths are not built on
    /// the way, so a failure at the bottom of a deep chain costs one string.
    pub(crate) fn path(&self) -> &Arc<str> {
        self.path.get_or_init(|| {
            // Most often the parent's path is known: one `format!`.
            match &self.parent {
                None => return Arc::from(&*self.name),
                Some(parent) => {
                    if let Some(known) = parent.path.get() {
                        return Arc::from(format!("{known}/{}#{}", self.name, self.index));
                    }
                }
            }
            // `self` and its ancestors whose path is not built, bottom up.
            let mut chain = vec![self];
            let mut known: &str = "";
            let mut node = self;
            while let Some(parent) = &node.parent {
                if let Some(path) = parent.path.get() {
                    known = path;
                    break;
                }
                chain.push(parent);
                node = parent;
            }
            let mut path = String::from(known);
            for node in chain.into_iter().rev() {
                match &node.parent {
                    // The root is its bare name.
                    None => path.push_str(&node.name),
                    Some(_) => {
                        use std::fmt::Write as _;
                        let _ = write!(path, "/{}#{}", node.name, node.index);
                    }
                }
            }
            Arc::from(path)
        })
    }

    /// Starts `task` as a child of this node, waiting in line if the
    /// scope's limit is reached.
    pub(crate) fn spawn<T: Task>(self: &Arc<Self>, task: T) -> crate::Child<T::Output> {
        self.spawn_with(task, Admission::Queue, None)
    }

    /// Starts `task` as a child of this node: `admission` tells whether it
    /// already holds a slot of the scope's limit, `ready` links it to a
    /// `Scope::start` call.
    pub(crate) fn spawn_with<T: Task>(
        self: &Arc<Self>,
        task: T,
        admission: Admission,
        ready: Option<Arc<ReadyLink>>,
    ) -> crate::Child<T::Output> {
        let parts = task.into_parts();
        let slot = Arc::new(Slot::new());
        let Some((node, wait)) = self.register(&parts, admission, ready) else {
            return self.refuse(parts.name, slot);
        };

        // User code (a `task(...)` closure) runs here, outside the lock. If
        // it panics, the child is unregistered again, so that the parent's
        // join does not wait for a task that never started.
        let unregister = Unregister {
            parent: self,
            id: node.id,
        };
        let scope = Scope::from_node(Arc::clone(&node));
        let body = parts.into_body(&scope);
        drop(scope);
        std::mem::forget(unregister);

        let future = trace::instrument(&node, drive_child(Arc::clone(&node), body, Arc::clone(&slot), wait));
        let handle = self.tree.runtime.spawn(future);

        let mut state = self.lock();
        if state.aborted {
            drop(state);
            handle.abort();
        } else if let Some(entry) = state.children.get_mut(&node.id) {
            entry.abort = Some(handle.abort_handle());
        }
        crate::Child::new(node, slot)
    }

    /// The bookkeeping of a spawn, under the scope's lock: counts a new
    /// child as running and makes its node, with a slot of the scope's
    /// limit or a place in line (`wait`); `None` if the scope is closed
    /// (giving back the slot a reserved child held).
    fn register<B>(
        self: &Arc<Self>,
        parts: &Parts<B>,
        admission: Admission,
        ready: Option<Arc<ReadyLink>>,
    ) -> Option<(Arc<Node>, Option<oneshot::Receiver<()>>)> {
        let mut state = self.lock();
        if state.phase == Phase::Closed {
            if admission == Admission::Reserved {
                state.limit.release();
            }
            return None;
        }
        let index = {
            let count = state.names.entry(parts.name.clone()).or_insert(0);
            let index = *count;
            *count += 1;
            index
        };
        let id = state.next_id();
        state.running += 1;
        let node = Arc::new(Node {
            tree: Arc::clone(&self.tree),
            parent: Some(Arc::clone(self)),
            name: parts.name.clone(),
            index,
            id,
            path: OnceLock::new(),
            policy: parts.policy,
            token: self.token.child_token(),
            kill: self.kill.child_token(),
            timeout: parts.timeout,
            ready,
            state: Mutex::new(State::new()),
            changed: Notify::new(),
            started: Instant::now(),
        });
        state.children.insert(
            id,
            ChildEntry {
                node: Arc::clone(&node),
                abort: None,
            },
        );
        let wait = match admission {
            Admission::Queue => state.limit.admit(id),
            Admission::Reserved => None,
        };
        Some((node, wait))
    }

    /// The answer to a spawn on a finished scope: a handle that reports it.
    fn refuse<T>(self: &Arc<Self>, name: Cow<'static, str>, slot: Arc<Slot<T>>) -> crate::Child<T> {
        let node = Arc::new(Node {
            tree: Arc::clone(&self.tree),
            parent: None,
            name: Cow::Owned(format!("{}/{}", self.path(), name)),
            index: 0,
            id: 0,
            path: OnceLock::new(),
            policy: Policy::FailFast,
            token: CancellationToken::new(),
            kill: CancellationToken::new(),
            timeout: None,
            ready: None,
            state: Mutex::new(State::new()),
            changed: Notify::new(),
            started: Instant::now(),
        });
        node.token.cancel();
        node.lock().phase = Phase::Closed;
        let err = Error::with_kind(
            ErrorKind::ScopeClosed,
            Arc::clone(node.path()),
            format!(
                "the scope of `{}` has already finished; spawn children while the task that owns the scope is still running",
                self.path()
            ),
        );
        slot.complete(Err(err));
        crate::Child::new(node, slot)
    }

    /// Runs a task body, then joins every child, and gives the task's result.
    ///
    /// If the future of this call is dropped before it finishes, the token is
    /// cancelled and every child is aborted (and so, recursively, the subtree).
    /// A task with a timeout runs under its deadline (see `deadline`).
    pub(crate) async fn run<B>(self: &Arc<Self>, body: B) -> Result<<B::Output as TaskResult>::Ok, Error>
    where
        B: Future<Output: TaskResult>,
    {
        match self.timeout {
            None => self.run_to_end(body).await,
            Some(limit) => crate::deadline::enforce(self, limit, self.run_to_end(body)).await,
        }
    }

    async fn run_to_end<B>(self: &Arc<Self>, body: B) -> Result<<B::Output as TaskResult>::Ok, Error>
    where
        B: Future<Output: TaskResult>,
    {
        let mut guard = AbortOnDrop {
            node: self,
            armed: true,
        };
        trace::started(self);

        // The body future is dropped as soon as it completes, before the
        // children are joined: whatever it captured (channel senders) is
        // released now, so consumers see their channels close. A kill drops
        // it where it stands.
        let outcome = {
            let ready = self.ready.as_deref();
            let mut body = pin!(Some(body));
            let mut killed = pin!(self.kill.cancelled());
            let outcome = poll_fn(|cx| {
                if killed.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Outcome::Killed);
                }
                let Some(running) = body.as_mut().as_pin_mut() else {
                    unreachable!("the body is polled until it completes, then never again")
                };
                if let Some(link) = ready {
                    link.enter();
                }
                let polled = catch_unwind(AssertUnwindSafe(|| running.poll(cx)));
                if let Some(link) = ready {
                    link.leave(polled.as_ref().is_ok_and(Poll::is_pending));
                }
                match polled {
                    Ok(Poll::Pending) => Poll::Pending,
                    Ok(Poll::Ready(out)) => Poll::Ready(Outcome::Returned(out)),
                    Err(payload) => Poll::Ready(Outcome::Panicked(payload)),
                }
            })
            .await;
            if let Some(link) = ready {
                link.enter();
            }
            body.set(None);
            if let Some(link) = ready {
                link.leave(false);
            }
            outcome
        };
        let killed = matches!(outcome, Outcome::Killed);
        let (value, body_error) = match outcome {
            Outcome::Returned(out) => match out.into_task_result() {
                Ok(value) => (Some(value), None),
                Err(err) => (None, Some(Error::failed(Arc::clone(self.path()), err))),
            },
            Outcome::Panicked(payload) => (None, Some(Error::panicked(Arc::clone(self.path()), &*payload))),
            // A task killed after its own deadline reports `TimedOut` below.
            Outcome::Killed if self.lock().timed_out.is_some() => (None, None),
            Outcome::Killed => (
                None,
                Some(Error::with_kind(
                    ErrorKind::Cancelled,
                    Arc::clone(self.path()),
                    "still running when its grace period ended, so it was aborted",
                )),
            ),
        };
        if killed {
            trace::aborted(self);
        } else if let Some(err) = &body_error {
            trace::body_failed(self, err);
        }
        if value.is_none() {
            // A task that failed has no use for the work of its children.
            self.token.cancel();
        }

        {
            let mut state = self.lock();
            state.phase = Phase::Joining;
            let pending: Vec<Error> = state.pending.drain(..).collect();
            for err in &pending {
                trace::escalated(self, err);
            }
            state.failures.extend(pending);
            state.failures.extend(body_error);
        }
        if let Some(link) = &self.ready {
            link.body_ended();
        }
        // Wake `next_error` callers: nothing more will reach them.
        self.changed.notify_waiters();

        let (failures, timed_out) = loop {
            let notified = self.changed.notified();
            let mut notified = pin!(notified);
            notified.as_mut().enable();
            {
                // Closed under the lock that sees the last child gone: a
                // spawn through a clone of the scope kept outside the tree
                // comes before (and is joined) or after (and is refused).
                let mut state = self.lock();
                if state.running == 0 {
                    state.phase = Phase::Closed;
                    break (std::mem::take(&mut state.failures), state.timed_out);
                }
            }
            notified.await;
        };
        guard.armed = false;
        self.token.cancel();

        if let Some(limit) = timed_out {
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

    /// A snapshot of the live subtree rooted here. Each node's lock is held
    /// only while its children are listed; nothing global is locked.
    pub(crate) fn snapshot(self: &Arc<Self>) -> TaskTree {
        let now = Instant::now();
        let mut tree = TaskTree::default();
        // (node, index of its parent in `tree`), visited depth first with an
        // explicit stack so that a deep chain cannot overflow the call stack.
        let mut stack: Vec<(Arc<Node>, Option<usize>, bool)> = vec![(Arc::clone(self), None, false)];
        while let Some((node, parent, queued)) = stack.pop() {
            let (state, mut children) = {
                let state = node.lock();
                let children: Vec<(u64, Arc<Node>, bool)> = state
                    .children
                    .iter()
                    .map(|(id, entry)| (*id, Arc::clone(&entry.node), state.limit.is_waiting(*id)))
                    .collect();
                let task_state = if queued {
                    TaskState::Queued
                } else {
                    node.task_state(&state)
                };
                (task_state, children)
            };
            let label = match &node.parent {
                Some(_) => format!("{}#{}", node.name, node.index),
                None => node.name.to_string(),
            };
            let at = tree.push(parent, label, Arc::clone(node.path()), state, now - node.started);
            // Spawn order, so that the snapshot reads like the code.
            children.sort_unstable_by_key(|(id, _, _)| std::cmp::Reverse(*id));
            stack.extend(children.into_iter().map(|(_, child, queued)| (child, Some(at), queued)));
        }
        tree
    }

    /// Whether the task has delivered its result (or was torn down).
    pub(crate) fn is_closed(&self) -> bool {
        self.lock().phase == Phase::Closed
    }

    fn task_state(&self, state: &State) -> TaskState {
        match state.phase {
            Phase::Body if self.token.is_cancelled() => TaskState::Cancelling,
            Phase::Body => TaskState::Running,
            Phase::Joining => TaskState::Joining,
            Phase::Closed => TaskState::Aborting,
        }
    }

    /// Takes the next failure routed to this scope, waiting while children
    /// still run.
    pub(crate) async fn next_error(&self) -> Option<Error> {
        loop {
            let notified = self.changed.notified();
            let mut notified = pin!(notified);
            notified.as_mut().enable();
            {
                let mut state = self.lock();
                if let Some(err) = state.pending.pop_front() {
                    return Some(err);
                }
                if state.running == 0 || state.phase != Phase::Body {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// A failure that nobody claimed through a handle.
    pub(crate) fn route(&self, err: Error) {
        {
            let mut state = self.lock();
            state.route(err, self);
        }
        self.changed.notify_waiters();
    }

    /// Bookkeeping when child `id` is gone; `unclaimed` is its failure if no
    /// handle took it.
    ///
    /// An aborted node tells its own parent only once its last child is gone
    /// too, so that a parent never counts a subtree as finished while part
    /// of it is still alive.
    fn child_done(&self, id: u64, unclaimed: Option<Error>) {
        let mut node = self;
        let mut id = id;
        let mut unclaimed = unclaimed;
        loop {
            let (notify, release) = {
                let mut state = node.lock();
                if state.children.remove(&id).is_some() {
                    state.running -= 1;
                    state.limit.leave(id);
                }
                let routed = unclaimed.is_some();
                if let Some(err) = unclaimed.take() {
                    state.route(err, node);
                }
                let release = if state.running == 0 { state.release.take() } else { None };
                (routed || state.running == 0, release)
            };
            if notify {
                node.changed.notify_waiters();
            }
            match (release, &node.parent) {
                (Some(failure), Some(parent)) => {
                    id = node.id;
                    unclaimed = failure;
                    node = parent;
                }
                _ => return,
            }
        }
    }

    /// Cancels the token and aborts every running child; their bookkeeping
    /// stays until each is gone.
    fn abort(&self) {
        self.token.cancel();
        let handles: Vec<AbortHandle> = {
            let mut state = self.lock();
            state.aborted = true;
            state.phase = Phase::Closed;
            state
                .children
                .values_mut()
                .filter_map(|entry| entry.abort.take())
                .collect()
        };
        for handle in handles {
            handle.abort();
        }
    }

    /// The last step of an aborted task: release the parent now, or once the
    /// last child is gone.
    fn abandon(&self, unclaimed: Option<Error>) {
        let Some(parent) = &self.parent else {
            return;
        };
        {
            let mut state = self.lock();
            if state.running > 0 {
                state.release = Some(unclaimed);
                return;
            }
        }
        parent.child_done(self.id, unclaimed);
    }
}

impl State {
    /// A fresh id for a child or a reservation.
    pub(crate) fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn route(&mut self, err: Error, node: &Node) {
        match self.phase {
            Phase::Body => self.pending.push_back(err),
            Phase::Joining => {
                trace::escalated(node, &err);
                self.failures.push(err);
            }
            // The scope was torn down: its own future was dropped, and the
            // failures of its aborted children have nowhere to go.
            Phase::Closed if self.aborted => {}
            // A `Child` handle outlived its scope and was dropped unawaited
            // while holding a failure: the scope's result is already out, so
            // the failure is reported the only way left.
            Phase::Closed => trace::failure_lost(node, &err),
        }
    }
}

/// How a task body ended.
enum Outcome<T> {
    Returned(T),
    Panicked(Box<dyn std::any::Any + Send>),
    /// Aborted in place by `Node::kill`.
    Killed,
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
    id: u64,
}

impl Drop for Unregister<'_> {
    fn drop(&mut self) {
        self.parent.child_done(self.id, None);
    }
}

struct AbortOnDrop<'a> {
    node: &'a Node,
    armed: bool,
}

impl Drop for AbortOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.node.abort();
        }
    }
}

/// The tokio task of a child: wait for a slot if told to, run it, then
/// deliver its result exactly once.
///
/// The `Finish` guard is made here, before the future is first polled: a
/// task aborted before it ever ran (its tree dropped right after spawning
/// it) is dropped unpolled, and must still report to its parent.
fn drive_child<B>(
    node: Arc<Node>,
    body: B,
    slot: Arc<Slot<<B::Output as TaskResult>::Ok>>,
    wait: Option<oneshot::Receiver<()>>,
) -> impl Future<Output = ()>
where
    B: Future<Output: TaskResult>,
{
    let finish = Finish {
        node,
        slot,
        done: false,
    };
    async move {
        let mut finish = finish;
        if let Some(wait) = wait
            && !crate::limit::wait_for_slot(wait, &finish.node.kill).await
        {
            drop(body);
            finish.node.token.cancel();
            let path = Arc::clone(finish.node.path());
            finish.deliver(Err(Error::with_kind(
                ErrorKind::Cancelled,
                path,
                "aborted while it waited for a free slot of its scope's limit",
            )));
            return;
        }
        let result = finish.node.run(body).await;
        finish.deliver(result);
    }
}

/// Delivers a child's result; if the child is dropped (aborted) first, it
/// delivers `Cancelled` instead, so no handle waits forever.
struct Finish<T> {
    node: Arc<Node>,
    slot: Arc<Slot<T>>,
    done: bool,
}

impl<T> Finish<T> {
    fn deliver(&mut self, result: Result<T, Error>) {
        self.done = true;
        let Some(parent) = &self.node.parent else {
            return;
        };
        let failed = result.is_err();
        let unclaimed = self.slot.complete(result);
        if failed && parent.policy == Policy::FailFast {
            parent.token.cancel();
        }
        parent.child_done(self.node.id, unclaimed);
    }
}

impl<T> Drop for Finish<T> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // The task's future was dropped: `run`'s guard has already aborted
        // its children, or the task never ran and is torn down here (its
        // token cancelled, and children its `task(..)` closure may have
        // spawned aborted). The failure is only made if someone can take it:
        // the handle, or a parent that is not torn down itself. In an
        // aborted tree nobody can, and making the path of every task of a
        // deep chain would take memory quadratic in its depth.
        self.node.abort();
        let readable = self.slot.is_held() || self.node.parent.as_ref().is_some_and(|parent| !parent.lock().aborted);
        let unclaimed = if readable {
            let err = Error::with_kind(
                ErrorKind::Cancelled,
                Arc::clone(self.node.path()),
                "aborted before it finished",
            );
            self.slot.complete(Err(err))
        } else {
            None
        };
        self.node.abandon(unclaimed);
    }
}

impl Drop for Node {
    /// Each node holds its parent, so dropping the last reference to the
    /// bottom of a chain whose ancestors are otherwise unreferenced (a
    /// `Scope` kept after its tree finished, the last task of an aborted
    /// tree) would drop the ancestors one inside the other, a stack frame
    /// per level. They are unlinked in a loop instead.
    fn drop(&mut self) {
        let mut parent = self.parent.take();
        while let Some(node) = parent {
            parent = Arc::into_inner(node).and_then(|mut node| node.parent.take());
        }
    }
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("path", self.path())
            .field("policy", &self.policy)
            .field("cancelled", &self.token.is_cancelled())
            .finish_non_exhaustive()
    }
}
