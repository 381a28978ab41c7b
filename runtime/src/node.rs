//! The bookkeeping behind a scope: one `Node` per task of the tree.
//!
//! A node counts its running children, keeps them (so that dropping the task
//! aborts its subtree, and a snapshot can list it), and holds the failures
//! routed to it until they are taken by `next_error` or escalate when the
//! body ends.
//!
//! What most tasks never use is made on first use: the cancellation token
//! (a child token takes its parent's lock twice), the path, and the
//! children's bookkeeping (`Family`, boxed, made by the first spawn). A
//! leaf task costs one node and its tokio task.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::{Arc, OnceLock, PoisonError, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, ErrorKind};
use crate::limit::Limit;
use crate::policy::Policy;
use crate::ready::ReadyLink;
use crate::scope::Scope;
use crate::sync::{AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Mutex, MutexGuard, Ordering};
use crate::task::{Parts, Start, Task, TaskResult};
use crate::trace;
use crate::tree::{TaskState, TaskTree};

#[cfg(all(test, loom))]
mod loom_model;

/// What every node of one tree shares. Only the root holds it: a count
/// shared by every task of the tree would be written by every spawn, from
/// every worker.
#[derive(Debug)]
pub(crate) struct Tree {
    pub(crate) runtime: Handle,
    /// How long a cancelled task may take to stop before it is aborted:
    /// the `Root`'s grace period, if one was set.
    pub(crate) grace: Option<Duration>,
}

/// `Node::alarm`: the task's body is to be dropped where it stands (its
/// joins go on).
const KILL: u8 = 1;
/// `Node::alarm`: the task's future is to be dropped, bookkeeping and all,
/// as tokio drops an aborted task.
const ABORT: u8 = 2;
/// `Node::alarm`: the task is gone for its parent (`child_done`); its entry
/// in the parent's `children` is dead.
const RELEASED: u8 = 4;

/// `Node::handle`: the `Child` handle is there, and no failure was offered
/// yet.
const HELD: u8 = 0;
/// `Node::handle`: a failure waits in the state for the handle.
const STORED: u8 = 1;
/// `Node::handle`: the handle was dropped; failures go to the parent.
const DROPPED: u8 = 2;
/// `Node::handle`: the handle has taken the result.
const TAKEN: u8 = 4;

/// `Node::running`: a limit is in use (`set_limit`, `reserve`), so that
/// the children's slots are counted; set once, with the count of the
/// children running then, and never cleared. It shares the word of the
/// count so that a child that finishes sees, in the same atomic step, whether
/// it must give its slot back.
const LIMITED: usize = 1 << (usize::BITS - 1);

pub(crate) struct Node {
    parent: Option<Arc<Node>>,
    name: Cow<'static, str>,
    // The two numbers below are given under the parent's lock when the
    // node is registered; the node is made before, outside that lock.
    // Everything that reads them comes after (the parent's lock, the spawn
    // of the task, the handle returned), so `Relaxed` is enough.
    /// Position among the siblings of the same name, from 0.
    index: AtomicU32,
    /// Spawn order among the siblings; reservations of the limit take
    /// numbers from the same count.
    id: AtomicU64,
    /// Built on first use: most tasks never need their path.
    path: OnceLock<Arc<str>>,
    policy: Policy,
    /// Made on first use, as a child of the parent's token (see `token`).
    token: OnceLock<CancellationToken>,
    /// What few tasks have, boxed so that the others do not carry it.
    extra: Option<Box<Extra>>,
    /// `KILL` and `ABORT`, looked at every time the task is polled, and
    /// `RELEASED`.
    alarm: AtomicU8,
    /// Where the task's failure goes: `HELD`, or `STORED` for the handle,
    /// then `DROPPED` or `TAKEN` (see `offer_failure`).
    handle: AtomicU8,
    /// Children registered and not yet released (in line for a slot
    /// included), and the `LIMITED` bit. Incremented under the lock, when a
    /// child is registered; decremented by a child that finishes, under the
    /// lock only if it brings a failure (so that a join, which looks under
    /// the lock, never misses one).
    running: AtomicUsize,
    state: Mutex<State>,
    /// When the task was spawned, for the age shown in a tree snapshot.
    started: Instant,
}

/// The part of a node that few tasks have.
struct Extra {
    /// The tree, on the root (and on the detached node of a refused spawn).
    tree: Option<Arc<Tree>>,
    /// The task's deadline, counted from the start of its body.
    timeout: Option<Duration>,
    /// Set when the task was started with `Scope::start`.
    ready: Option<Arc<ReadyLink>>,
    /// The task's tracing span, once its path is known (see `trace`).
    #[cfg(feature = "tracing")]
    span: OnceLock<tracing::Span>,
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
    /// The task was cancelled before its token was made: the token is
    /// made cancelled.
    cancelled: bool,
    /// Set when the task's deadline passed.
    timed_out: bool,
    /// The waker of the task's last pending poll, so that an alarm can
    /// wake it.
    waker: Option<Waker>,
    /// The failure waiting for the task's `Child` handle (see
    /// `Node::offer_failure`).
    failure: Option<Error>,
    /// Made by the first spawn (or `set_limit`, `reserve`).
    family: Option<Box<Family>>,
}

/// The bookkeeping of a task that has children.
#[derive(Default)]
pub(crate) struct Family {
    next_id: u64,
    /// The children, running or not: weak, and never removed one by one,
    /// so that a child that finishes takes no lock. Dead entries (a child
    /// released, or gone) are swept when the list is full (`push_child`).
    children: Vec<Weak<Node>>,
    /// How many children of each name were spawned, for `name#index`.
    names: Names,
    /// Failures waiting for `next_error`.
    pending: VecDeque<Error>,
    /// Once the body has ended: the failures that make the task's result,
    /// first one first (a leaf keeps its own in its `Driver`).
    failures: Vec<Error>,
    /// Who waits for a child to finish or a failure to be routed: the join,
    /// `next_error`.
    waiters: Vec<Waker>,
    /// For an aborted node whose children are still being dropped: what to
    /// hand the parent once the last of them is gone (its unclaimed failure).
    release: Option<Option<Error>>,
    /// Which children may run now, and which wait for a slot.
    pub(crate) limit: Limit,
}

impl Family {
    /// Adds a child, first sweeping the dead entries out of a full list if
    /// at least half of them are dead (`running` counts the live ones): the
    /// list stays within about twice the children alive, at a constant cost
    /// per spawn.
    fn push_child(&mut self, child: &Arc<Node>, running: usize) {
        let len = self.children.len();
        if len == self.children.capacity() && len >= 8 && running <= len / 2 {
            self.children
                .retain(|child| child.upgrade().is_some_and(|child| !child.is_released()));
        }
        self.children.push(Arc::downgrade(child));
    }

    /// The children not yet released.
    fn live_children(&self) -> impl Iterator<Item = Arc<Node>> {
        self.children
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|child| !child.is_released())
    }

    /// A fresh id for a child or a reservation.
    pub(crate) fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Wakes `waker` at the next change (once).
    fn wait(&mut self, waker: &Waker) {
        if !self.waiters.iter().any(|known| known.will_wake(waker)) {
            self.waiters.push(waker.clone());
        }
    }
}

/// Counts per name. Most scopes spawn children of one or two names: a
/// short list compared by address, then by text, is cheaper than hashing;
/// past `SHORT` names it becomes a map.
enum Names {
    Short(Vec<(Cow<'static, str>, u32)>),
    Many(HashMap<Cow<'static, str>, u32>),
}

impl Default for Names {
    fn default() -> Self {
        Names::Short(Vec::new())
    }
}

impl Names {
    const SHORT: usize = 16;

    /// The next index of `name`.
    #[expect(
        clippy::ptr_arg,
        reason = "a new name is kept as the `Cow` it is: a `&'static str` is not copied"
    )]
    fn next(&mut self, name: &Cow<'static, str>) -> u32 {
        match self {
            Names::Short(list) => {
                let same = |known: &str| std::ptr::eq(known, &**name) || known == &**name;
                if let Some((_, count)) = list.iter_mut().find(|(known, _)| same(known)) {
                    *count += 1;
                    return *count - 1;
                }
                if list.len() < Self::SHORT {
                    list.push((name.clone(), 1));
                    return 0;
                }
                let mut map: HashMap<_, _> = list.drain(..).collect();
                map.insert(name.clone(), 1);
                *self = Names::Many(map);
                0
            }
            Names::Many(map) => {
                if let Some(count) = map.get_mut(&**name) {
                    *count += 1;
                    return *count - 1;
                }
                map.insert(name.clone(), 1);
                0
            }
        }
    }
}

impl State {
    fn new() -> Self {
        State {
            phase: Phase::Body,
            aborted: false,
            cancelled: false,
            timed_out: false,
            waker: None,
            failure: None,
            family: None,
        }
    }

    /// The children's bookkeeping, made if this is the first use.
    pub(crate) fn family(&mut self) -> &mut Family {
        self.family.get_or_insert_with(Box::default)
    }

    /// Takes the wakers to wake once the lock is released.
    fn take_waiters(&mut self) -> Vec<Waker> {
        self.family
            .as_mut()
            .map(|family| std::mem::take(&mut family.waiters))
            .unwrap_or_default()
    }
}

#[inline]
fn wake_all(waiters: Vec<Waker>) {
    if !waiters.is_empty() {
        for waker in waiters {
            waker.wake();
        }
    }
}

impl Node {
    fn new(
        parent: Option<Arc<Node>>,
        tree: Option<Arc<Tree>>,
        name: Cow<'static, str>,
        policy: Policy,
        timeout: Option<Duration>,
        ready: Option<Arc<ReadyLink>>,
    ) -> Node {
        let extra = (tree.is_some() || timeout.is_some() || ready.is_some() || trace::spans_wanted()).then(|| {
            Box::new(Extra {
                tree,
                timeout,
                ready,
                #[cfg(feature = "tracing")]
                span: OnceLock::new(),
            })
        });
        Node {
            parent,
            name,
            index: AtomicU32::new(0),
            id: AtomicU64::new(0),
            path: OnceLock::new(),
            policy,
            token: OnceLock::new(),
            extra,
            alarm: AtomicU8::new(0),
            running: AtomicUsize::new(0),
            handle: AtomicU8::new(HELD),
            state: Mutex::new(State::new()),
            started: Instant::now(),
        }
    }

    pub(crate) fn root(
        tree: Arc<Tree>,
        name: Cow<'static, str>,
        policy: Policy,
        token: CancellationToken,
        timeout: Option<Duration>,
    ) -> Arc<Node> {
        let node = Node::new(None, Some(tree), name, policy, timeout, None);
        let _ = node.token.set(token);
        Arc::new(node)
    }

    fn index(&self) -> u32 {
        self.index.load(Ordering::Relaxed)
    }

    fn id(&self) -> u64 {
        self.id.load(Ordering::Relaxed)
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // No user code runs while the lock is held, so a poisoned lock can
        // only come from a bug in this module; its data is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The task's cancellation token, made on first use.
    pub(crate) fn token(&self) -> &CancellationToken {
        match self.token.get() {
            Some(token) => token,
            None => self.make_token(),
        }
    }

    /// Makes the tokens of this node and of its ancestors that have none,
    /// top down, each a child of its parent's (the root always has one).
    /// In a loop, not by recursion: a chain can be thousands deep.
    ///
    /// A token made late must be what it would have been if made at the
    /// spawn: cancelled if the task was cancelled meanwhile, or has
    /// finished (its token is cancelled then). Both are decided under the
    /// node's lock, which `cancel` and the end of the task take too.
    #[cold]
    fn make_token(&self) -> &CancellationToken {
        let mut chain = vec![self];
        let mut node = self;
        while let Some(parent) = &node.parent {
            if parent.token.get().is_some() {
                break;
            }
            chain.push(parent);
            node = parent;
        }
        for node in chain.into_iter().rev() {
            let state = node.lock();
            let token = node.token.get_or_init(|| match &node.parent {
                Some(parent) => parent
                    .token
                    .get()
                    .map_or_else(CancellationToken::new, CancellationToken::child_token),
                None => CancellationToken::new(),
            });
            let cancelled = state.cancelled || state.phase == Phase::Closed;
            drop(state);
            if cancelled {
                token.cancel();
            }
        }
        self.token.get().unwrap_or_else(|| unreachable!("made above"))
    }

    /// Cancels the task's token, and so its subtree's. Without a token yet,
    /// it is marked for its token to be made cancelled: its descendants'
    /// tokens are made from it, so they will be too.
    pub(crate) fn cancel(&self) {
        if let Some(token) = self.token.get() {
            token.cancel();
            return;
        }
        let made = {
            let mut state = self.lock();
            state.cancelled = true;
            self.token.get().cloned()
        };
        // Made between the two looks.
        if let Some(token) = made {
            token.cancel();
        }
    }

    /// Whether the task's token is cancelled.
    pub(crate) fn is_cancelled(&self) -> bool {
        self.token().is_cancelled()
    }

    pub(crate) fn parent(&self) -> Option<&Arc<Node>> {
        self.parent.as_ref()
    }

    pub(crate) fn policy(&self) -> Policy {
        self.policy
    }

    /// The tree, found at the root.
    pub(crate) fn tree(&self) -> &Tree {
        let mut node = self;
        loop {
            if let Some(tree) = node.extra.as_ref().and_then(|extra| extra.tree.as_ref()) {
                return tree;
            }
            match &node.parent {
                Some(parent) => node = parent,
                None => unreachable!("the root holds the tree"),
            }
        }
    }

    pub(crate) fn ready_link(&self) -> Option<&Arc<ReadyLink>> {
        self.extra.as_ref()?.ready.as_ref()
    }

    /// The task's deadline, if it has one.
    pub(crate) fn timeout(&self) -> Option<Duration> {
        self.extra.as_ref()?.timeout
    }

    /// Where the task's tracing span is kept, if spans may be wanted.
    #[cfg(feature = "tracing")]
    pub(crate) fn span_cell(&self) -> Option<&OnceLock<tracing::Span>> {
        self.extra.as_ref().map(|extra| &extra.span)
    }

    /// Sets `bits` of the alarm and wakes the task, so that its next poll
    /// sees them.
    fn raise(&self, bits: u8) {
        self.alarm.fetch_or(bits, Ordering::SeqCst);
        let waker = self.lock().waker.take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Aborts the task's body and every body of its subtree where they
    /// stand: each is dropped at once and reported `Cancelled`, while the
    /// joins go on, so that every task is awaited and delivers its result.
    ///
    /// A child spawned in the subtree after this is born killed: it reads
    /// its parent's alarm under the parent's lock, which the walk takes
    /// after raising it.
    pub(crate) fn kill(&self) {
        self.raise(KILL);
        let mut stack = self.children();
        while let Some(node) = stack.pop() {
            node.raise(KILL);
            stack.extend(node.children());
        }
    }

    /// The children, listed under the lock.
    fn children(&self) -> Vec<Arc<Node>> {
        match &self.lock().family {
            Some(family) => family.live_children().collect(),
            None => Vec::new(),
        }
    }

    /// The children registered and not yet released.
    pub(crate) fn running(&self) -> usize {
        self.running.load(Ordering::Acquire) & !LIMITED
    }

    fn is_released(&self) -> bool {
        self.alarm.load(Ordering::Acquire) & RELEASED != 0
    }

    /// The scope's limit, which counts slots from now on: the children
    /// running now each hold one. Under the node's lock.
    pub(crate) fn limit<'a>(&self, state: &'a mut State) -> &'a mut Limit {
        let before = self.running.fetch_or(LIMITED, Ordering::AcqRel);
        let limit = &mut state.family().limit;
        if before & LIMITED == 0 {
            limit.count_running(before);
        }
        limit
    }

    /// Marks the task as past its deadline (its result will be `TimedOut`)
    /// and cancels it.
    pub(crate) fn time_out(&self) {
        self.lock().timed_out = true;
        self.cancel();
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
                        return Arc::from(format!("{known}/{}#{}", self.name, self.index()));
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
                        let _ = write!(path, "/{}#{}", node.name, node.index());
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
        let Some((node, wait)) = self.register(&parts, admission, ready) else {
            return self.refuse(parts.name);
        };
        let body = match parts.start {
            Start::Ready(body) => body,
            Start::Lazy(body) => {
                trace::open_span(&node);
                let runtime = &self.tree().runtime;
                let task = body.spawn(Spawn {
                    node: Arc::clone(&node),
                    wait,
                    runtime,
                });
                return crate::Child::new(node, Some(task));
            }
            Start::WithScope(make) => {
                // User code (a `task(...)` closure) runs here, outside the
                // lock. If it panics, the child is unregistered again, so
                // that the parent's join does not wait for a task that
                // never started.
                let unregister = Unregister {
                    parent: self,
                    child: &node,
                };
                let body = make(Scope::from_node(Arc::clone(&node)));
                std::mem::forget(unregister);
                body
            }
        };
        trace::open_span(&node);
        // An abort reaches the task through the node's alarm; its handle
        // only carries its value.
        let task = self
            .tree()
            .runtime
            .spawn(drive_child(Arc::clone(&node), body, false, wait));
        crate::Child::new(node, Some(task))
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
        // Made before the lock, which the children that finish take too.
        let node = Arc::new(Node::new(
            Some(Arc::clone(self)),
            None,
            parts.name.clone(),
            parts.policy,
            parts.timeout,
            ready,
        ));
        let mut state = self.lock();
        if state.phase == Phase::Closed {
            if admission == Admission::Reserved {
                self.limit(&mut state).release();
            }
            return None;
        }
        let before = self.running.fetch_add(1, Ordering::AcqRel);
        let limited = before & LIMITED != 0;
        let family = state.family();
        let id = family.next_id();
        node.index.store(family.names.next(&parts.name), Ordering::Relaxed);
        node.id.store(id, Ordering::Relaxed);
        // A child spawned into a killed subtree is killed too (see `kill`).
        node.alarm
            .store(self.alarm.load(Ordering::Acquire) & KILL, Ordering::Relaxed);
        family.push_child(&node, (before & !LIMITED) + 1);
        // Without a limit no slot is counted; a reserved child holds one.
        let wait = match admission {
            Admission::Queue if limited => family.limit.admit(id),
            Admission::Queue | Admission::Reserved => None,
        };
        Some((node, wait))
    }

    /// The answer to a spawn on a finished scope: a handle that reports it.
    fn refuse<T>(self: &Arc<Self>, name: Cow<'static, str>) -> crate::Child<T> {
        let tree = Arc::new(Tree {
            runtime: self.tree().runtime.clone(),
            grace: None,
        });
        let name = Cow::Owned(format!("{}/{}", self.path(), name));
        let node = Node::root(tree, name, Policy::FailFast, CancellationToken::new(), None);
        node.cancel();
        node.lock().phase = Phase::Closed;
        let err = Error::with_kind(
            ErrorKind::ScopeClosed,
            Arc::clone(node.path()),
            format!(
                "the scope of `{}` has already finished; spawn children while the task that owns the scope is still running",
                self.path()
            ),
        );
        let _ = node.offer_failure(err);
        crate::Child::new(node, None)
    }

    /// The end of the task's body: the failures waiting for `next_error`
    /// escalate, the body's own failure (if any) comes after them, and the
    /// join begins. Returns the body's value, or its failure when the task
    /// has no children's bookkeeping to keep it in; and, for a task that
    /// never had a child, whether it timed out: such a task is closed at
    /// once, under the same lock.
    fn end_body<R: TaskResult>(&self, outcome: Outcome<R>) -> (Option<R::Ok>, Option<Error>, Option<bool>) {
        let killed = matches!(outcome, Outcome::Killed);
        let (value, body_error) = match outcome {
            Outcome::Returned(out) => match out.into_task_result() {
                Ok(value) => (Some(value), None),
                Err(err) => (None, Some(Error::failed(Arc::clone(self.path()), err))),
            },
            Outcome::Panicked(payload) => (None, Some(Error::panicked(Arc::clone(self.path()), &*payload))),
            // A task killed after its own deadline reports `TimedOut` then.
            Outcome::Killed if self.lock().timed_out => (None, None),
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

        let mut body_error = body_error;
        let (waiters, closed) = {
            let mut state = self.lock();
            // A task that failed has no use for the work of its children.
            if value.is_none() {
                state.cancelled = true;
            }
            let timed_out = state.timed_out;
            let state = &mut *state;
            match state.family.as_mut() {
                // Nothing was ever spawned here: the join is over already.
                None => {
                    state.phase = Phase::Closed;
                    (Vec::new(), Some(timed_out))
                }
                Some(family) => {
                    state.phase = Phase::Joining;
                    let pending: Vec<Error> = family.pending.drain(..).collect();
                    for err in &pending {
                        trace::escalated(self, err);
                    }
                    family.failures.extend(pending);
                    family.failures.extend(body_error.take());
                    // `next_error` callers: nothing more will reach them.
                    (std::mem::take(&mut family.waiters), None)
                }
            }
        };
        // Cancelled when it failed, and when it is closed (see
        // `make_token`).
        if (value.is_none() || closed.is_some())
            && let Some(token) = self.token.get()
        {
            token.cancel();
        }
        if let Some(link) = self.ready_link() {
            link.body_ended();
        }
        wake_all(waiters);
        (value, body_error, closed)
    }

    /// The join: ready with the task's failures (and its deadline, if it
    /// passed) once no child runs.
    ///
    /// The scope is closed under the lock that sees the last child gone: a
    /// spawn through a clone of the scope kept outside the tree comes
    /// before (and is joined) or after (and is refused).
    fn poll_join(&self, cx: &mut Context<'_>) -> Poll<(Vec<Error>, bool)> {
        let (failures, timed_out) = {
            let mut state = self.lock();
            if self.running() > 0 {
                state.family().wait(cx.waker());
                return Poll::Pending;
            }
            state.phase = Phase::Closed;
            let failures = state
                .family
                .as_mut()
                .map(|family| std::mem::take(&mut family.failures))
                .unwrap_or_default();
            (failures, state.timed_out)
        };
        // A token made from now on is made cancelled (see `make_token`).
        if let Some(token) = self.token.get() {
            token.cancel();
        }
        Poll::Ready((failures, timed_out))
    }

    /// The task's result, once body and children are done: `own` is the
    /// body's failure if `end_body` gave it back (it then comes first),
    /// `failures` the others.
    fn result<T>(
        &self,
        value: Option<T>,
        own: Option<Error>,
        failures: Vec<Error>,
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
        let failures = match own {
            Some(own) => std::iter::once(own).chain(failures).collect(),
            None => failures,
        };
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
    fn offer_failure(&self, err: Error) -> Option<Error> {
        let mut state = self.lock();
        state.failure = Some(err);
        match self
            .handle
            .compare_exchange(HELD, STORED, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => None,
            Err(_) => state.failure.take(),
        }
    }

    /// Whether a `Child` handle is still there to take a failure.
    fn is_held(&self) -> bool {
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

    fn leave_handle(&self, how: u8) -> Option<Error> {
        let before = self.handle.fetch_or(how, Ordering::AcqRel);
        if before & (STORED | DROPPED | TAKEN) == STORED {
            self.lock().failure.take()
        } else {
            None
        }
    }

    /// Keeps `waker` for `raise`; `seen` is the alarm as the poll began.
    fn keep_waker(&self, waker: &Waker, seen: u8) {
        {
            let mut state = self.lock();
            match &mut state.waker {
                Some(known) if known.will_wake(waker) => {}
                kept => *kept = Some(waker.clone()),
            }
        }
        // Raised meanwhile: `raise` may have found no waker (or the one of
        // an earlier poll), so this poll wakes itself.
        if self.alarm.load(Ordering::Acquire) != seen {
            waker.wake_by_ref();
        }
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
            // Before the lock, which making the token takes.
            let cancelled = node.is_cancelled();
            let (state, mut children) = {
                let state = node.lock();
                let children: Vec<(u64, Arc<Node>, bool)> = match &state.family {
                    None => Vec::new(),
                    Some(family) => family
                        .live_children()
                        .map(|child| (child.id(), family.limit.is_waiting(child.id()), child))
                        .map(|(id, queued, child)| (id, child, queued))
                        .collect(),
                };
                let task_state = match state.phase {
                    _ if queued => TaskState::Queued,
                    Phase::Body if cancelled => TaskState::Cancelling,
                    Phase::Body => TaskState::Running,
                    Phase::Joining => TaskState::Joining,
                    Phase::Closed => TaskState::Aborting,
                };
                (task_state, children)
            };
            let label = match &node.parent {
                Some(_) => format!("{}#{}", node.name, node.index()),
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

    /// Takes the next failure routed to this scope, waiting while children
    /// still run.
    pub(crate) async fn next_error(&self) -> Option<Error> {
        poll_fn(|cx| {
            let mut state = self.lock();
            if let Some(err) = state.family.as_mut().and_then(|family| family.pending.pop_front()) {
                return Poll::Ready(Some(err));
            }
            if self.running() == 0 || state.phase != Phase::Body {
                return Poll::Ready(None);
            }
            state.family().wait(cx.waker());
            Poll::Pending
        })
        .await
    }

    /// A failure that nobody claimed through a handle.
    pub(crate) fn route(&self, err: Error) {
        let waiters = {
            let mut state = self.lock();
            state.route(err, self);
            state.take_waiters()
        };
        wake_all(waiters);
    }

    /// Bookkeeping when `child` is gone; `unclaimed` is its failure if no
    /// handle took it.
    ///
    /// An aborted node tells its own parent only once its last child is gone
    /// too, so that a parent never counts a subtree as finished while part
    /// of it is still alive.
    fn child_done(&self, child: &Node, unclaimed: Option<Error>) {
        let mut node = self;
        let mut child = child;
        let mut unclaimed = unclaimed;
        loop {
            child.alarm.fetch_or(RELEASED, Ordering::AcqRel);
            let (waiters, release) = match unclaimed.take() {
                // The common case: a count, and the lock only for the last
                // child (to wake the join) or to give a slot back.
                None => {
                    let before = node.running.fetch_sub(1, Ordering::AcqRel);
                    let last = before & !LIMITED == 1;
                    if before & LIMITED == 0 && !last {
                        return;
                    }
                    let mut state = node.lock();
                    if before & LIMITED != 0 {
                        state.family().limit.leave(child.id());
                    }
                    let family = state.family();
                    match last {
                        true => (std::mem::take(&mut family.waiters), family.release.take()),
                        false => (Vec::new(), None),
                    }
                }
                // A failure is routed under the lock that also counts the
                // child out: a join looking under it sees both or neither.
                Some(err) => {
                    let mut state = node.lock();
                    state.route(err, node);
                    let before = node.running.fetch_sub(1, Ordering::AcqRel);
                    if before & LIMITED != 0 {
                        state.family().limit.leave(child.id());
                    }
                    let family = state.family();
                    let release = if before & !LIMITED == 1 {
                        family.release.take()
                    } else {
                        None
                    };
                    (std::mem::take(&mut family.waiters), release)
                }
            };
            wake_all(waiters);
            match (release, &node.parent) {
                (Some(failure), Some(parent)) => {
                    child = node;
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
        self.cancel();
        {
            let mut state = self.lock();
            state.aborted = true;
            state.phase = Phase::Closed;
        }
        for child in self.children() {
            child.raise(ABORT);
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
            if self.running() > 0 {
                state.family().release = Some(unclaimed);
                return;
            }
        }
        parent.child_done(self, unclaimed);
    }
}

impl State {
    fn route(&mut self, err: Error, node: &Node) {
        match self.phase {
            Phase::Body => self.family().pending.push_back(err),
            Phase::Joining => {
                trace::escalated(node, &err);
                self.family().failures.push(err);
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

std::thread_local! {
    /// The node of the task whose body is being polled for the first time,
    /// when that body takes its scope then (`Start::Lazy`). Set around that
    /// one poll (and restored after it: a body may run a tree of its own).
    static FIRST_POLL: std::cell::Cell<Option<Arc<Node>>> = const { std::cell::Cell::new(None) };
}

/// The scope of the task whose body is being polled for the first time.
///
/// # Panics
///
/// Outside the first poll of a `Start::Lazy` body, which is the only place
/// the code generated by `#[supervised]` calls it.
pub(crate) fn first_poll_scope() -> Scope {
    match FIRST_POLL.take() {
        Some(node) => Scope::from_node(node),
        None => {
            panic!("`__private::scope` is only for the code generated by `#[supervised]`, at the start of its body")
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Waiting in line for a slot of the parent's limit.
    Queued,
    /// About to run the body for the first time.
    Start,
    Body,
    Joining,
    Done,
}

pin_project_lite::pin_project! {
    /// A task from start to result, as one state machine: its body (which
    /// it holds once, and drops as soon as it completes), then the join
    /// of its children. It returns `None`, at once, when its alarm says
    /// `ABORT`, and keeps the waker of its last pending poll so that
    /// `raise` can wake it.
    ///
    /// Dropped before it is done (aborted, or its `select!` lost), it
    /// cancels its token and aborts every child, and so the subtree.
    pub(crate) struct Driver<B, T> {
        node: Arc<Node>,
        #[pin]
        body: Option<B>,
        // The body's value, or its failure, while the children are joined.
        value: Option<T>,
        error: Option<Error>,
        stage: Stage,
        // The body takes its scope at its first poll (see `first_poll_scope`).
        lazy: bool,
        // The body was dropped by a kill.
        killed: bool,
        // What only a task in line or with a timeout needs, boxed: it
        // would make every tokio task larger.
        slow: Option<Box<Slow>>,
    }

    impl<B, T> PinnedDrop for Driver<B, T> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if *this.stage != Stage::Done {
                this.node.abort();
            }
        }
    }
}

impl<B, T> Driver<B, T>
where
    B: Future<Output: TaskResult<Ok = T>>,
{
    /// Runs `body` as the task of `node`, after waiting for a slot if
    /// `wait` is given; `lazy` if the body takes its scope at its first
    /// poll.
    pub(crate) fn new(node: Arc<Node>, body: B, lazy: bool, wait: Option<oneshot::Receiver<()>>) -> Self {
        Driver {
            node,
            body: Some(body),
            value: None,
            error: None,
            stage: if wait.is_some() { Stage::Queued } else { Stage::Start },
            lazy,
            killed: false,
            slow: wait.map(|wait| {
                Box::new(Slow {
                    wait: Some(wait),
                    watchdog: None,
                })
            }),
        }
    }
}

/// The part of a `Driver` that few tasks need.
struct Slow {
    /// Tells a child in line that its slot is granted.
    wait: Option<oneshot::Receiver<()>>,
    /// The deadline of a task with a timeout, from the start of its body.
    watchdog: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl<B, T> Future for Driver<B, T>
where
    B: Future<Output: TaskResult<Ok = T>>,
{
    type Output = Option<Result<T, Error>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let node: &Arc<Node> = this.node;
        let seen = node.alarm.load(Ordering::Acquire);
        if seen & ABORT != 0 {
            return Poll::Ready(None);
        }
        let _span = trace::enter(node);
        loop {
            match *this.stage {
                Stage::Queued => {
                    let Some(wait) = this.slow.as_mut().and_then(|slow| slow.wait.as_mut()) else {
                        unreachable!("a queued task has its receiver")
                    };
                    // The grant is looked at first: a child granted a slot
                    // runs, and its body sees the kill at once.
                    if Pin::new(wait).poll(cx).is_ready() {
                        *this.slow = None;
                        *this.stage = Stage::Start;
                        continue;
                    }
                    if seen & KILL == 0 {
                        break;
                    }
                    this.body.set(None);
                    node.cancel();
                    *this.stage = Stage::Done;
                    return Poll::Ready(Some(Err(Error::with_kind(
                        ErrorKind::Cancelled,
                        Arc::clone(node.path()),
                        "aborted while it waited for a free slot of its scope's limit",
                    ))));
                }
                Stage::Start => {
                    trace::started(node);
                    if let Some(limit) = node.timeout() {
                        let watchdog = Box::pin(crate::deadline::watchdog(Arc::clone(node), limit));
                        this.slow
                            .get_or_insert_with(|| {
                                Box::new(Slow {
                                    wait: None,
                                    watchdog: None,
                                })
                            })
                            .watchdog = Some(watchdog);
                    }
                    *this.stage = Stage::Body;
                }
                Stage::Body => {
                    let outcome = if seen & KILL != 0 {
                        Outcome::Killed
                    } else {
                        let Some(body) = this.body.as_mut().as_pin_mut() else {
                            unreachable!("the body is polled until it completes, then never again")
                        };
                        let ready = node.ready_link().map(|link| &**link);
                        if let Some(link) = ready {
                            link.enter();
                        }
                        let polled = if *this.lazy {
                            *this.lazy = false;
                            let outer = FIRST_POLL.replace(Some(Arc::clone(node)));
                            let polled = catch_unwind(AssertUnwindSafe(|| body.poll(cx)));
                            drop(FIRST_POLL.replace(outer));
                            polled
                        } else {
                            catch_unwind(AssertUnwindSafe(|| body.poll(cx)))
                        };
                        if let Some(link) = ready {
                            link.leave(polled.as_ref().is_ok_and(Poll::is_pending));
                        }
                        match polled {
                            Ok(Poll::Pending) => break,
                            Ok(Poll::Ready(out)) => Outcome::Returned(out),
                            Err(payload) => Outcome::Panicked(payload),
                        }
                    };
                    *this.killed = matches!(outcome, Outcome::Killed);
                    // The body is dropped as soon as it completes, before
                    // the children are joined: whatever it captured
                    // (channel senders) is released now, so consumers see
                    // their channels close. A kill drops it where it stands.
                    if let Some(link) = node.ready_link() {
                        link.enter();
                    }
                    this.body.set(None);
                    if let Some(link) = node.ready_link() {
                        link.leave(false);
                    }
                    let (value, error, closed) = node.end_body(outcome);
                    if let Some(timed_out) = closed {
                        *this.stage = Stage::Done;
                        *this.slow = None;
                        let result = node.result(value, error, Vec::new(), timed_out, *this.killed);
                        return Poll::Ready(Some(result));
                    }
                    (*this.value, *this.error) = (value, error);
                    *this.stage = Stage::Joining;
                }
                Stage::Joining => match node.poll_join(cx) {
                    Poll::Pending => break,
                    Poll::Ready((failures, timed_out)) => {
                        *this.stage = Stage::Done;
                        *this.slow = None;
                        let result =
                            node.result(this.value.take(), this.error.take(), failures, timed_out, *this.killed);
                        return Poll::Ready(Some(result));
                    }
                },
                Stage::Done => panic!("a task's future was polled after it completed"),
            }
        }
        // As `tokio::time::timeout`: the task first, then its deadline.
        if let Some(slow) = this.slow.as_mut()
            && let Some(watchdog) = slow.watchdog.as_mut()
            && watchdog.as_mut().poll(cx).is_ready()
        {
            slow.watchdog = None;
        }
        node.keep_waker(cx.waker(), seen);
        Poll::Pending
    }
}

pin_project_lite::pin_project! {
    /// The tokio task of a child: its `Driver`, then the delivery of its
    /// result, exactly once: the value as the task's output, a failure to
    /// the node (for the handle) or the parent. If it is dropped before
    /// (aborted, or the runtime shut down; also before it was ever
    /// polled), it delivers `Cancelled` instead.
    struct ChildTask<B, T> {
        #[pin]
        driver: Driver<B, T>,
        done: bool,
    }

    impl<B, T> PinnedDrop for ChildTask<B, T> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if *this.done {
                return;
            }
            // Torn down before the result: the body first (what it owns
            // is released before the parent hears of it), then the
            // children are aborted, and the parent is released once they
            // are gone. The failure is only made if someone can take it:
            // the handle, or a parent that is not torn down itself. In an
            // aborted tree nobody can, and making the path of every task
            // of a deep chain would take memory quadratic in its depth.
            let mut driver = this.driver.project();
            driver.body.set(None);
            let node = &**driver.node;
            node.abort();
            let readable = node.is_held() || node.parent.as_ref().is_some_and(|parent| !parent.lock().aborted);
            let unclaimed = if readable {
                let err = Error::with_kind(ErrorKind::Cancelled, Arc::clone(node.path()), "aborted before it finished");
                node.offer_failure(err)
            } else {
                None
            };
            node.abandon(unclaimed);
        }
    }
}

impl<B, T> Future for ChildTask<B, T>
where
    B: Future<Output: TaskResult<Ok = T>>,
{
    /// The value, or `None` when the task failed.
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut this = self.project();
        let Some(result) = std::task::ready!(this.driver.as_mut().poll(cx)) else {
            // Aborted: reported as the task is dropped, which tokio does
            // before it tells the handle.
            return Poll::Ready(None);
        };
        *this.done = true;
        let node = &**this.driver.project().node;
        let _span = trace::enter(node);
        let (value, unclaimed) = match result {
            Ok(value) => (Some(value), None),
            Err(err) => (None, node.offer_failure(err)),
        };
        if let Some(parent) = &node.parent {
            if value.is_none() && parent.policy == Policy::FailFast {
                parent.cancel();
            }
            parent.child_done(node, unclaimed);
        }
        Poll::Ready(value)
    }
}

/// The tokio task of a child: wait for a slot if told to, run it, then
/// deliver its result exactly once.
fn drive_child<B>(
    node: Arc<Node>,
    body: B,
    lazy: bool,
    wait: Option<oneshot::Receiver<()>>,
) -> impl Future<Output = Option<<B::Output as TaskResult>::Ok>>
where
    B: Future<Output: TaskResult>,
{
    ChildTask {
        driver: Driver::new(node, body, lazy, wait),
        done: false,
    }
}

/// What a boxed `#[supervised]` body needs to spawn itself as a child's
/// task, unboxed (see `task::LazyBody`).
pub(crate) struct Spawn<'a> {
    node: Arc<Node>,
    wait: Option<oneshot::Receiver<()>>,
    runtime: &'a Handle,
}

impl Spawn<'_> {
    /// Spawns `body`, which takes its scope at its first poll.
    pub(crate) fn lazy<B>(self, body: B) -> JoinHandle<Option<<B::Output as TaskResult>::Ok>>
    where
        B: Future<Output: TaskResult> + Send + 'static,
    {
        self.runtime.spawn(drive_child(self.node, body, true, self.wait))
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
            .field("cancelled", &self.is_cancelled())
            .finish_non_exhaustive()
    }
}
