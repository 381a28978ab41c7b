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

use std::any::Any;
use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::future::{Future, poll_fn};
use std::marker::PhantomData;
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
use crate::sync::{AtomicU8, AtomicU32, Mutex, MutexGuard, Ordering};
use crate::task::{Name, Parts, Start, Task, TaskResult};
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
    /// When the tree started: a node keeps its own start as an offset from
    /// it (8 bytes, where an `Instant` takes 16).
    pub(crate) epoch: Instant,
}

impl Tree {
    pub(crate) fn new(runtime: Handle, grace: Option<Duration>) -> Tree {
        Tree {
            runtime,
            grace,
            epoch: Instant::now(),
        }
    }

    /// Now, as an offset from the tree's start.
    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
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
/// it must give its slot back. (2^31 children alive at once would take
/// hundreds of gigabytes: the count never reaches it.)
const LIMITED: u32 = 1 << 31;

/// `Node::flags`, changed and read under the node's lock only: the
/// `Phase` in the low bits, then the flags below.
const PHASE: u8 = 0b11;
/// `Node::flags`: the node's future was dropped before it finished.
const ABORTED: u8 = 4;
/// `Node::flags`: the task was cancelled before its token was made: the
/// token is made cancelled.
const CANCELLED: u8 = 8;
/// `Node::flags`: the task's deadline passed.
const TIMED_OUT: u8 = 16;

/// One task of the tree.
///
/// Every spawn allocates one, beside its tokio task, so it is kept small:
/// 96 bytes, 112 with the `Arc` counts, which glibc serves from its fast
/// bins (`mod size` below holds it there; benches/PROFILE-NOTES.md has the
/// measurements). What few tasks use is in `Extra`, made on first use.
pub(crate) struct Node {
    parent: Option<Arc<Node>>,
    /// The task's name, unless it was given at run time (then in `Extra`):
    /// one word, where a `&str` takes two.
    name: Option<&'static &'static str>,
    /// What few tasks have: made at the spawn for those, else on first use
    /// (the path, a failure waiting for the handle).
    extra: OnceLock<Box<Extra>>,
    /// Made on first use, as a child of the parent's token (see `token`).
    token: OnceLock<CancellationToken>,
    /// When the task was spawned, in nanoseconds since its tree started: the
    /// age shown in a tree snapshot.
    started: u64,
    /// Position among the siblings of the same name, from 0. Given under
    /// the parent's lock when the node is registered; the node is made
    /// before, outside that lock. Everything that reads it comes after (the
    /// parent's lock, the spawn of the task, the handle returned), so
    /// `Relaxed` is enough.
    index: AtomicU32,
    /// Children registered and not yet released (in line for a slot
    /// included), and the `LIMITED` bit. Incremented under the lock, when a
    /// child is registered; decremented by a child that finishes, under the
    /// lock only if it brings a failure (so that a join, which looks under
    /// the lock, never misses one).
    running: AtomicU32,
    /// `KILL` and `ABORT`, looked at every time the task is polled, and
    /// `RELEASED`.
    alarm: AtomicU8,
    /// Where the task's failure goes: `HELD`, or `STORED` for the handle,
    /// then `DROPPED` or `TAKEN` (see `offer_failure`).
    handle: AtomicU8,
    /// The `Phase` and the `ABORTED`, `CANCELLED` and `TIMED_OUT` flags,
    /// under the lock (an atomic only so that they fit beside the bytes
    /// above, out of the lock's data).
    flags: AtomicU8,
    /// Where the task's `Driver` stands (see `Stage`): touched only by the
    /// task itself.
    step: AtomicU8,
    policy: Policy,
    state: Mutex<State>,
}

/// The part of a node that few tasks have.
struct Extra {
    /// The tree, on the root (and on the detached node of a refused spawn).
    tree: Option<Arc<Tree>>,
    /// The task's deadline, counted from the start of its body.
    timeout: Option<Duration>,
    /// Set when the task was started with `Scope::start`.
    ready: Option<Arc<ReadyLink>>,
    /// A name given at run time (`Task::named`).
    name: Option<Cow<'static, str>>,
    /// Built on first use: most tasks never need their path.
    path: OnceLock<Arc<str>>,
    /// The failure waiting for the task's `Child` handle (see
    /// `Node::offer_failure`).
    failure: Mutex<Option<Error>>,
    /// What only a task in line or with a timeout needs.
    slow: Mutex<Slow>,
    /// The task's tracing span, once its path is known (see `trace`).
    #[cfg(feature = "tracing")]
    span: OnceLock<tracing::Span>,
}

impl Extra {
    fn new(
        tree: Option<Arc<Tree>>,
        timeout: Option<Duration>,
        ready: Option<Arc<ReadyLink>>,
        name: Option<Cow<'static, str>>,
    ) -> Self {
        Extra {
            tree,
            timeout,
            ready,
            name,
            path: OnceLock::new(),
            failure: Mutex::new(None),
            slow: Mutex::new(Slow::default()),
            #[cfg(feature = "tracing")]
            span: OnceLock::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Phase {
    /// The body runs; failures wait in `pending` for `next_error`.
    Body = 0,
    /// The body has ended; failures escalate into `failures`.
    Joining = 1,
    /// Body and children are done: nothing can be spawned any more.
    Closed = 2,
}

/// What a node keeps under its lock: the waker of the task's last pending
/// poll (so that an alarm can wake it), and the children's bookkeeping,
/// made by the first spawn (or `set_limit`, `reserve`), which then holds
/// the waker. A leaf never pays for a `Family`, nor for a second word.
pub(crate) enum State {
    Leaf(Waker),
    Parent(Box<Family>),
}

/// The bookkeeping of a task that has children.
pub(crate) struct Family {
    /// The task's waker (see `State`).
    waker: Waker,
    /// The next key of a reservation of the limit: odd, where a child's
    /// key is the address of its node, even (see `Node::key`).
    next_key: usize,
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
    /// The body's value while the children are joined (see `Driver`).
    value: Option<Box<dyn Any + Send>>,
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

    fn new(waker: Waker) -> Self {
        Family {
            waker,
            next_key: 1,
            children: Vec::new(),
            names: Names::default(),
            pending: VecDeque::new(),
            failures: Vec::new(),
            waiters: Vec::new(),
            release: None,
            value: None,
            limit: Limit::default(),
        }
    }

    /// A fresh key for a reservation of the limit.
    pub(crate) fn reservation_key(&mut self) -> usize {
        let key = self.next_key;
        self.next_key += 2;
        key
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
    fn next(&mut self, name: &Name) -> u32 {
        // A new name is kept as it is: a constant is not copied.
        let key = || match name {
            Name::Fixed(name) => Cow::Borrowed(**name),
            Name::Given(name) => name.clone(),
        };
        let text = name.as_str();
        match self {
            Names::Short(list) => {
                let same = |known: &str| std::ptr::eq(known, text) || known == text;
                if let Some((_, count)) = list.iter_mut().find(|(known, _)| same(known)) {
                    *count += 1;
                    return *count - 1;
                }
                if list.len() < Self::SHORT {
                    list.push((key(), 1));
                    return 0;
                }
                let mut map: HashMap<_, _> = list.drain(..).collect();
                map.insert(key(), 1);
                *self = Names::Many(map);
                0
            }
            Names::Many(map) => {
                if let Some(count) = map.get_mut(text) {
                    *count += 1;
                    return *count - 1;
                }
                map.insert(key(), 1);
                0
            }
        }
    }
}

impl State {
    fn new() -> Self {
        State::Leaf(Waker::noop().clone())
    }

    /// The children's bookkeeping, made if this is the first use.
    pub(crate) fn family(&mut self) -> &mut Family {
        if let State::Leaf(waker) = self {
            let waker = std::mem::replace(waker, Waker::noop().clone());
            *self = State::Parent(Box::new(Family::new(waker)));
        }
        match self {
            State::Parent(family) => family,
            State::Leaf(_) => unreachable!("made above"),
        }
    }

    /// The children's bookkeeping, if any.
    fn family_if_any(&mut self) -> Option<&mut Family> {
        match self {
            State::Parent(family) => Some(family),
            State::Leaf(_) => None,
        }
    }

    /// The children's bookkeeping, if any.
    fn family_ref(&self) -> Option<&Family> {
        match self {
            State::Parent(family) => Some(family),
            State::Leaf(_) => None,
        }
    }

    /// The waker of the task's last pending poll (a no-op waker before).
    fn waker(&mut self) -> &mut Waker {
        match self {
            State::Leaf(waker) => waker,
            State::Parent(family) => &mut family.waker,
        }
    }

    /// Takes the wakers to wake once the lock is released.
    fn take_waiters(&mut self) -> Vec<Waker> {
        self.family_if_any()
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
        started: u64,
        name: Name,
        policy: Policy,
        timeout: Option<Duration>,
        ready: Option<Arc<ReadyLink>>,
    ) -> Node {
        let (name, given) = match name {
            Name::Fixed(name) => (Some(name), None),
            Name::Given(name) => (None, Some(name)),
        };
        let extra = OnceLock::new();
        if tree.is_some() || timeout.is_some() || ready.is_some() || given.is_some() || trace::spans_wanted() {
            let _ = extra.set(Box::new(Extra::new(tree, timeout, ready, given)));
        }
        Node {
            parent,
            name,
            extra,
            token: OnceLock::new(),
            started,
            index: AtomicU32::new(0),
            running: AtomicU32::new(0),
            alarm: AtomicU8::new(0),
            handle: AtomicU8::new(HELD),
            flags: AtomicU8::new(Phase::Body as u8),
            step: AtomicU8::new(Stage::Start as u8),
            policy,
            state: Mutex::new(State::new()),
        }
    }

    pub(crate) fn root(
        tree: Arc<Tree>,
        name: Name,
        policy: Policy,
        token: CancellationToken,
        timeout: Option<Duration>,
    ) -> Arc<Node> {
        let started = tree.now();
        let node = Node::new(None, Some(tree), started, name, policy, timeout, None);
        let _ = node.token.set(token);
        Arc::new(node)
    }

    fn index(&self) -> u32 {
        self.index.load(Ordering::Relaxed)
    }

    /// The task's name.
    fn name(&self) -> &str {
        match (self.name, self.extra.get().and_then(|extra| extra.name.as_deref())) {
            (Some(name), _) => name,
            (None, Some(name)) => name,
            (None, None) => unreachable!("a name not fixed is kept in `Extra`"),
        }
    }

    /// What few tasks have, made if this is the first use.
    fn extra(&self) -> &Extra {
        self.extra.get_or_init(|| Box::new(Extra::new(None, None, None, None)))
    }

    /// The key of this child in its parent's limit: its address, which is
    /// even (reservations take odd keys, see `Family::reservation_key`).
    fn key(&self) -> usize {
        std::ptr::from_ref(self).addr()
    }

    /// The task's phase. Under the node's lock (`_locked`).
    fn phase(&self, _locked: &State) -> Phase {
        match self.flags.load(Ordering::Relaxed) & PHASE {
            0 => Phase::Body,
            1 => Phase::Joining,
            _ => Phase::Closed,
        }
    }

    /// Moves the task to `phase`. Under the node's lock (`_locked`).
    fn set_phase(&self, _locked: &mut State, phase: Phase) {
        let flags = self.flags.load(Ordering::Relaxed);
        self.flags.store((flags & !PHASE) | phase as u8, Ordering::Relaxed);
    }

    /// Whether `flag` is set. Under the node's lock (`_locked`).
    fn has(&self, _locked: &State, flag: u8) -> bool {
        self.flags.load(Ordering::Relaxed) & flag != 0
    }

    /// Sets `flag`. Under the node's lock (`_locked`).
    fn mark(&self, _locked: &mut State, flag: u8) {
        self.flags.fetch_or(flag, Ordering::Relaxed);
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
        // Most often the parent has its token: no list of ancestors.
        if self.parent.as_ref().is_none_or(|parent| parent.token.get().is_some()) {
            return self.make_own_token();
        }
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
            node.make_own_token();
        }
        self.token.get().unwrap_or_else(|| unreachable!("made above"))
    }

    /// Makes this node's token, its parent's being made (see `make_token`).
    fn make_own_token(&self) -> &CancellationToken {
        let state = self.lock();
        let token = self.token.get_or_init(|| match &self.parent {
            Some(parent) => parent
                .token
                .get()
                .map_or_else(CancellationToken::new, CancellationToken::child_token),
            None => CancellationToken::new(),
        });
        let cancelled = self.has(&state, CANCELLED) || self.phase(&state) == Phase::Closed;
        drop(state);
        if cancelled {
            token.cancel();
        }
        token
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
            self.mark(&mut state, CANCELLED);
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
            if let Some(tree) = node.extra.get().and_then(|extra| extra.tree.as_ref()) {
                return tree;
            }
            match &node.parent {
                Some(parent) => node = parent,
                None => unreachable!("the root holds the tree"),
            }
        }
    }

    pub(crate) fn ready_link(&self) -> Option<&Arc<ReadyLink>> {
        self.extra.get()?.ready.as_ref()
    }

    /// The task's deadline, if it has one.
    pub(crate) fn timeout(&self) -> Option<Duration> {
        self.extra.get()?.timeout
    }

    /// Where the task's tracing span is kept, if spans may be wanted.
    #[cfg(feature = "tracing")]
    pub(crate) fn span_cell(&self) -> Option<&OnceLock<tracing::Span>> {
        self.extra.get().map(|extra| &extra.span)
    }

    /// Sets `bits` of the alarm and wakes the task, so that its next poll
    /// sees them.
    fn raise(&self, bits: u8) {
        self.alarm.fetch_or(bits, Ordering::SeqCst);
        let waker = std::mem::replace(self.lock().waker(), Waker::noop().clone());
        waker.wake();
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
        match self.lock().family_ref() {
            Some(family) => family.live_children().collect(),
            None => Vec::new(),
        }
    }

    /// The children registered and not yet released.
    pub(crate) fn running(&self) -> usize {
        (self.running.load(Ordering::Acquire) & !LIMITED) as usize
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
            limit.count_running(before as usize);
        }
        limit
    }

    /// Marks the task as past its deadline (its result will be `TimedOut`)
    /// and cancels it.
    pub(crate) fn time_out(&self) {
        self.mark(&mut self.lock(), TIMED_OUT);
        self.cancel();
    }

    /// The task's path from the root, such as `pipeline/worker#3`.
    ///
    /// Built in a loop up to the nearest ancestor whose path is known (or
    /// the root), not by recursion: a chain of tasks thousands deep must
    /// not overflow the stack. The ancestors' own paths are not built on
    /// the way, so a failure at the bottom of a deep chain costs one string.
    pub(crate) fn path(&self) -> &Arc<str> {
        self.extra().path.get_or_init(|| {
            // Most often the parent's path is known: one `format!`.
            match &self.parent {
                None => return Arc::from(self.name()),
                Some(parent) => {
                    if let Some(known) = parent.known_path() {
                        return Arc::from(format!("{known}/{}#{}", self.name(), self.index()));
                    }
                }
            }
            // `self` and its ancestors whose path is not built, bottom up.
            let mut chain = vec![self];
            let mut known: &str = "";
            let mut node = self;
            while let Some(parent) = &node.parent {
                if let Some(path) = parent.known_path() {
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
                    None => path.push_str(node.name()),
                    Some(_) => {
                        use std::fmt::Write as _;
                        let _ = write!(path, "/{}#{}", node.name(), node.index());
                    }
                }
            }
            Arc::from(path)
        })
    }

    /// The task's path, if it was built already.
    fn known_path(&self) -> Option<&Arc<str>> {
        self.extra.get()?.path.get()
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
        let tree = self.tree();
        let Some((node, wait)) = self.register(tree, &parts, admission, ready) else {
            return self.refuse(parts.name);
        };
        trace::open_span(&node);
        // An abort reaches the task through the node's alarm; its handle
        // only carries its value.
        let task = match parts.start {
            Start::Ready(body) => tree.runtime.spawn(drive_child(Arc::clone(&node), body, false, wait)),
            Start::Lazy(body) => body.spawn(Spawn {
                node: Arc::clone(&node),
                wait,
                runtime: &tree.runtime,
            }),
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
                tree.runtime.spawn(drive_child(Arc::clone(&node), body, false, wait))
            }
        };
        crate::Child::new(node, Some(task))
    }

    /// The bookkeeping of a spawn, under the scope's lock: counts a new
    /// child as running and makes its node, with a slot of the scope's
    /// limit or a place in line (`wait`); `None` if the scope is closed
    /// (giving back the slot a reserved child held).
    fn register<B>(
        self: &Arc<Self>,
        tree: &Tree,
        parts: &Parts<B>,
        admission: Admission,
        ready: Option<Arc<ReadyLink>>,
    ) -> Option<(Arc<Node>, Option<oneshot::Receiver<()>>)> {
        // Made before the lock, which the children that finish take too.
        let node = Arc::new(Node::new(
            Some(Arc::clone(self)),
            None,
            tree.now(),
            parts.name.clone(),
            parts.policy,
            parts.timeout,
            ready,
        ));
        let mut state = self.lock();
        if self.phase(&state) == Phase::Closed {
            if admission == Admission::Reserved {
                self.limit(&mut state).release();
            }
            return None;
        }
        let before = self.running.fetch_add(1, Ordering::AcqRel);
        let limited = before & LIMITED != 0;
        let family = state.family();
        node.index.store(family.names.next(&parts.name), Ordering::Relaxed);
        // A child spawned into a killed subtree is killed too (see `kill`).
        node.alarm
            .store(self.alarm.load(Ordering::Acquire) & KILL, Ordering::Relaxed);
        family.push_child(&node, ((before & !LIMITED) + 1) as usize);
        // Without a limit no slot is counted; a reserved child holds one.
        let wait = match admission {
            Admission::Queue if limited => family.limit.admit(node.key()),
            Admission::Queue | Admission::Reserved => None,
        };
        Some((node, wait))
    }

    /// The answer to a spawn on a finished scope: a handle that reports it.
    fn refuse<T>(self: &Arc<Self>, name: Name) -> crate::Child<T> {
        let tree = Arc::new(Tree::new(self.tree().runtime.clone(), None));
        let name = Name::Given(Cow::Owned(format!("{}/{}", self.path(), name.as_str())));
        let node = Node::root(tree, name, Policy::FailFast, CancellationToken::new(), None);
        node.cancel();
        node.set_phase(&mut node.lock(), Phase::Closed);
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
    /// join begins. Returns the body's value, or its failure, when the task
    /// has no children's bookkeeping to keep them in; and, for a task that
    /// never had a child, whether it timed out: such a task is closed at
    /// once, under the same lock.
    fn end_body<R: TaskResult>(&self, outcome: Outcome<R>) -> (Option<R::Ok>, Option<Error>, Option<bool>) {
        let killed = matches!(outcome, Outcome::Killed);
        let (value, body_error) = match outcome {
            Outcome::Returned(out) => match out.into_task_result() {
                Ok(value) => (Some(value), None),
                Err(err) => (None, Some(Error::failed(Arc::clone(self.path()), err))),
            },
            Outcome::Panicked(payload) => (None, Some(Error::panicked(Arc::clone(self.path()), payload))),
            // A task killed after its own deadline reports `TimedOut` then.
            Outcome::Killed if self.has(&self.lock(), TIMED_OUT) => (None, None),
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

        let failed = value.is_none();
        let (mut value, mut body_error) = (value, body_error);
        let (waiters, closed) = {
            let mut state = self.lock();
            // A task that failed has no use for the work of its children.
            if failed {
                self.mark(&mut state, CANCELLED);
            }
            let timed_out = self.has(&state, TIMED_OUT);
            let phase = match state.family_ref() {
                // Nothing was ever spawned here: the join is over already.
                None => Phase::Closed,
                Some(_) => Phase::Joining,
            };
            self.set_phase(&mut state, phase);
            match state.family_if_any() {
                None => (Vec::new(), Some(timed_out)),
                Some(family) => {
                    let pending: Vec<Error> = family.pending.drain(..).collect();
                    for err in &pending {
                        trace::escalated(self, err);
                    }
                    family.failures.extend(pending);
                    family.failures.extend(body_error.take());
                    // Kept here, not in the task's future (see `Driver`).
                    // Boxing a `()` allocates nothing.
                    family.value = value.take().map(|value| Box::new(value) as Box<dyn Any + Send>);
                    // `next_error` callers: nothing more will reach them.
                    (std::mem::take(&mut family.waiters), None)
                }
            }
        };
        // Cancelled when it failed, and when it is closed (see
        // `make_token`).
        if (failed || closed.is_some())
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
    fn poll_join(&self, cx: &mut Context<'_>) -> Poll<Joined> {
        let (failures, timed_out, value) = {
            let mut state = self.lock();
            if self.running() > 0 {
                state.family().wait(cx.waker());
                return Poll::Pending;
            }
            self.set_phase(&mut state, Phase::Closed);
            let timed_out = self.has(&state, TIMED_OUT);
            match state.family_if_any() {
                Some(family) => (std::mem::take(&mut family.failures), timed_out, family.value.take()),
                None => (Vec::new(), timed_out, None),
            }
        };
        // A token made from now on is made cancelled (see `make_token`).
        if let Some(token) = self.token.get() {
            token.cancel();
        }
        Poll::Ready(Joined {
            failures,
            timed_out,
            value,
        })
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
            self.extra()
                .failure
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take()
        } else {
            None
        }
    }

    /// Keeps `waker` for `raise`; `seen` is the alarm as the poll began.
    fn keep_waker(&self, waker: &Waker, seen: u8) {
        {
            let mut state = self.lock();
            let kept = state.waker();
            if !kept.will_wake(waker) {
                kept.clone_from(waker);
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
        let tree_epoch = self.tree().epoch;
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
                // In spawn order: the list is kept in it.
                let children: Vec<(Arc<Node>, bool)> = match state.family_ref() {
                    None => Vec::new(),
                    Some(family) => family
                        .live_children()
                        .map(|child| {
                            let queued = family.limit.is_waiting(child.key());
                            (child, queued)
                        })
                        .collect(),
                };
                let task_state = match node.phase(&state) {
                    _ if queued => TaskState::Queued,
                    Phase::Body if cancelled => TaskState::Cancelling,
                    Phase::Body => TaskState::Running,
                    Phase::Joining => TaskState::Joining,
                    Phase::Closed => TaskState::Aborting,
                };
                (task_state, children)
            };
            let label = match &node.parent {
                Some(_) => format!("{}#{}", node.name(), node.index()),
                None => node.name().to_owned(),
            };
            let started = tree_epoch + Duration::from_nanos(node.started);
            let age = now.saturating_duration_since(started);
            let at = tree.push(parent, label, Arc::clone(node.path()), state, age);
            // Spawn order, so that the snapshot reads like the code: the
            // stack pops the first child first.
            children.reverse();
            stack.extend(children.into_iter().map(|(child, queued)| (child, Some(at), queued)));
        }
        tree
    }

    /// Whether the task has delivered its result (or was torn down).
    pub(crate) fn is_closed(&self) -> bool {
        self.phase(&self.lock()) == Phase::Closed
    }

    /// Takes the next failure routed to this scope, waiting while children
    /// still run.
    pub(crate) async fn next_error(&self) -> Option<Error> {
        poll_fn(|cx| {
            let mut state = self.lock();
            if let Some(err) = state.family_if_any().and_then(|family| family.pending.pop_front()) {
                return Poll::Ready(Some(err));
            }
            if self.running() == 0 || self.phase(&state) != Phase::Body {
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
            self.route_locked(&mut state, err);
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
                        state.family().limit.leave(child.key());
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
                    node.route_locked(&mut state, err);
                    let before = node.running.fetch_sub(1, Ordering::AcqRel);
                    if before & LIMITED != 0 {
                        state.family().limit.leave(child.key());
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
            self.mark(&mut state, ABORTED);
            self.set_phase(&mut state, Phase::Closed);
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

impl Node {
    /// Routes a child's failure that no handle took: to `next_error` while
    /// the body runs, into the task's result after. Under the lock (`state`).
    fn route_locked(&self, state: &mut State, err: Error) {
        match self.phase(state) {
            Phase::Body => state.family().pending.push_back(err),
            Phase::Joining => {
                trace::escalated(self, &err);
                state.family().failures.push(err);
            }
            // The scope was torn down: its own future was dropped, and the
            // failures of its aborted children have nowhere to go.
            Phase::Closed if self.has(state, ABORTED) => {}
            // A `Child` handle outlived its scope and was dropped unawaited
            // while holding a failure: the scope's result is already out, so
            // the failure is reported the only way left.
            Phase::Closed => trace::failure_lost(self, &err),
        }
    }
}

/// What the join gives back, once no child runs.
struct Joined {
    /// The task's failures, first one first.
    failures: Vec<Error>,
    /// The task's deadline passed.
    timed_out: bool,
    /// The body's value, kept in the family while the children ran.
    value: Option<Box<dyn Any + Send>>,
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

/// `Node::step`: where the task's `Driver` stands. Only the task itself
/// reads and writes it, from its polls and its drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Stage {
    /// Waiting in line for a slot of the parent's limit.
    Queued = 0,
    /// About to run the body for the first time.
    Start = 1,
    Body = 2,
    Joining = 3,
    Done = 4,
}

/// `Node::step`: the stage, in the low bits.
const STAGE: u8 = 0b111;
/// `Node::step`: the body takes its scope at its first poll (see
/// `first_poll_scope`).
const LAZY: u8 = 8;
/// `Node::step`: the body was dropped by a kill.
const KILLED: u8 = 16;
/// `Node::step`: the child's result was delivered (see `ChildTask`).
const DELIVERED: u8 = 32;

impl Node {
    fn stage(&self) -> Stage {
        match self.step.load(Ordering::Relaxed) & STAGE {
            0 => Stage::Queued,
            1 => Stage::Start,
            2 => Stage::Body,
            3 => Stage::Joining,
            _ => Stage::Done,
        }
    }

    fn set_stage(&self, stage: Stage) {
        let step = self.step.load(Ordering::Relaxed);
        self.step.store((step & !STAGE) | stage as u8, Ordering::Relaxed);
    }

    fn step_has(&self, bit: u8) -> bool {
        self.step.load(Ordering::Relaxed) & bit != 0
    }

    fn step_set(&self, bit: u8, on: bool) {
        let step = self.step.load(Ordering::Relaxed);
        self.step
            .store(if on { step | bit } else { step & !bit }, Ordering::Relaxed);
    }

    /// The task's future is done: its stage says so, and what `slow` held
    /// is dropped.
    fn done(&self) {
        self.set_stage(Stage::Done);
        self.drop_slow();
    }

    /// What only a task in line or with a timeout needs (see `Slow`).
    fn slow(&self) -> MutexGuard<'_, Slow> {
        self.extra().slow.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Drops what `slow` holds, if the node has any: the watchdog holds
    /// the node.
    fn drop_slow(&self) {
        if let Some(extra) = self.extra.get() {
            let slow = std::mem::take(&mut *extra.slow.lock().unwrap_or_else(PoisonError::into_inner));
            drop(slow);
        }
    }
}

/// What only a task in line or with a timeout needs, in its node's
/// `Extra`, so that it takes no room in every tokio task.
#[derive(Default)]
pub(crate) struct Slow {
    /// Tells a child in line that its slot is granted.
    wait: Option<oneshot::Receiver<()>>,
    /// The deadline of a task with a timeout, from the start of its body.
    watchdog: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

pin_project_lite::pin_project! {
    /// A task's node, with its body until the body completes.
    ///
    /// An enum, not the node beside an `Option` of the body: an `async`
    /// block offers no niche, so that `Option` would take 8 bytes more,
    /// where here the node's pointer tells the variant for free.
    #[project = HeldProj]
    #[project_replace = HeldOwned]
    enum Held<B> {
        Running { node: Arc<Node>, #[pin] body: B },
        Spent { node: Arc<Node> },
    }
}

impl<B> Held<B> {
    fn node(&self) -> &Arc<Node> {
        match self {
            Held::Running { node, .. } | Held::Spent { node } => node,
        }
    }

    /// Drops the body where it stands, if it is still there; gives the
    /// node back, to use while `self` is borrowed no more.
    fn spend(self: Pin<&mut Self>) -> Arc<Node> {
        let node = Arc::clone(self.as_ref().get_ref().node());
        match self.project_replace(Held::Spent { node }) {
            HeldOwned::Running { node, .. } | HeldOwned::Spent { node } => node,
        }
    }
}

pin_project_lite::pin_project! {
    /// A task from start to result, as one state machine: its body (which
    /// it holds once, and drops as soon as it completes), then the join
    /// of its children. It returns `None`, at once, when its alarm says
    /// `ABORT`, and keeps the waker of its last pending poll so that
    /// `raise` can wake it.
    ///
    /// It is the node and the body, nothing more (where it stands is in
    /// the node's `step`, the value it keeps while its children are joined
    /// in their `Family`), so that the tokio task of a small body fits in
    /// 128 bytes, as a plain `tokio::spawn` of it does.
    ///
    /// Dropped before it is done (aborted, or its `select!` lost), it
    /// cancels its token and aborts every child, and so the subtree.
    pub(crate) struct Driver<B, T> {
        #[pin]
        held: Held<B>,
        value: PhantomData<fn() -> T>,
    }

    impl<B, T> PinnedDrop for Driver<B, T> {
        fn drop(this: Pin<&mut Self>) {
            let node = this.held.node();
            if node.stage() != Stage::Done {
                node.drop_slow();
                node.abort();
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
        let stage = match wait {
            Some(wait) => {
                node.slow().wait = Some(wait);
                Stage::Queued
            }
            None => Stage::Start,
        };
        node.step
            .store(stage as u8 | if lazy { LAZY } else { 0 }, Ordering::Relaxed);
        Driver {
            held: Held::Running { node, body },
            value: PhantomData,
        }
    }

    fn node(&self) -> &Arc<Node> {
        self.held.node()
    }
}

impl<B, T> Future for Driver<B, T>
where
    B: Future<Output: TaskResult<Ok = T>>,
    T: 'static,
{
    type Output = Option<Result<T, Error>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut held = self.project().held;
        let seen = held.node().alarm.load(Ordering::Acquire);
        if seen & ABORT != 0 {
            return Poll::Ready(None);
        }
        let _span = trace::enter(held.node());
        loop {
            match held.node().stage() {
                Stage::Queued => {
                    let node = held.node();
                    // The grant is looked at first: a child granted a slot
                    // runs, and its body sees the kill at once.
                    let granted = {
                        let mut slow = node.slow();
                        let Some(wait) = slow.wait.as_mut() else {
                            unreachable!("a queued task has its receiver")
                        };
                        let granted = Pin::new(wait).poll(cx).is_ready();
                        if granted {
                            slow.wait = None;
                        }
                        granted
                    };
                    if granted {
                        node.set_stage(Stage::Start);
                        continue;
                    }
                    if seen & KILL == 0 {
                        break;
                    }
                    let node = held.as_mut().spend();
                    node.cancel();
                    node.done();
                    return Poll::Ready(Some(Err(Error::with_kind(
                        ErrorKind::Cancelled,
                        Arc::clone(node.path()),
                        "aborted while it waited for a free slot of its scope's limit",
                    ))));
                }
                Stage::Start => {
                    let node = held.node();
                    trace::started(node);
                    if let Some(limit) = node.timeout() {
                        let watchdog = Box::pin(crate::deadline::watchdog(Arc::clone(node), limit));
                        node.slow().watchdog = Some(watchdog);
                    }
                    node.set_stage(Stage::Body);
                }
                Stage::Body => {
                    let outcome = if seen & KILL != 0 {
                        Outcome::Killed
                    } else {
                        let HeldProj::Running { node, body } = held.as_mut().project() else {
                            unreachable!("the body is polled until it completes, then never again")
                        };
                        let node: &Arc<Node> = node;
                        let ready = node.ready_link().map(|link| &**link);
                        if let Some(link) = ready {
                            link.enter();
                        }
                        let polled = if node.step_has(LAZY) {
                            node.step_set(LAZY, false);
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
                    let killed = matches!(outcome, Outcome::Killed);
                    // The body is dropped as soon as it completes, before
                    // the children are joined: whatever it captured
                    // (channel senders) is released now, so consumers see
                    // their channels close. A kill drops it where it stands.
                    let link = held.node().ready_link().cloned();
                    if let Some(link) = &link {
                        link.enter();
                    }
                    let node = held.as_mut().spend();
                    if let Some(link) = &link {
                        link.leave(false);
                    }
                    node.step_set(KILLED, killed);
                    let (value, error, closed) = node.end_body(outcome);
                    if let Some(timed_out) = closed {
                        node.done();
                        let result = node.result(value, error, Vec::new(), timed_out, killed);
                        return Poll::Ready(Some(result));
                    }
                    // A task with children keeps its body's value and
                    // failure in their `Family` (see `end_body`).
                    debug_assert!(value.is_none() && error.is_none(), "kept in the family");
                    node.set_stage(Stage::Joining);
                }
                Stage::Joining => {
                    let node = held.node();
                    match node.poll_join(cx) {
                        Poll::Pending => break,
                        Poll::Ready(Joined {
                            failures,
                            timed_out,
                            value,
                        }) => {
                            node.done();
                            let value = value.map(|value| match value.downcast::<T>() {
                                Ok(value) => *value,
                                Err(_) => unreachable!("the value kept is the body's"),
                            });
                            let killed = node.step_has(KILLED);
                            let result = node.result(value, None, failures, timed_out, killed);
                            return Poll::Ready(Some(result));
                        }
                    }
                }
                Stage::Done => panic!("a task's future was polled after it completed"),
            }
        }
        let node = held.node();
        // As `tokio::time::timeout`: the task first, then its deadline.
        if node.timeout().is_some() {
            let mut slow = node.slow();
            if let Some(watchdog) = slow.watchdog.as_mut()
                && watchdog.as_mut().poll(cx).is_ready()
            {
                slow.watchdog = None;
            }
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
    }

    impl<B, T> PinnedDrop for ChildTask<B, T> {
        fn drop(this: Pin<&mut Self>) {
            let driver = this.project().driver.project();
            if driver.held.node().step_has(DELIVERED) {
                return;
            }
            // Torn down before the result: the body first (what it owns
            // is released before the parent hears of it), then the
            // children are aborted, and the parent is released once they
            // are gone. The failure is only made if someone can take it:
            // the handle, or a parent that is not torn down itself. In an
            // aborted tree nobody can, and making the path of every task
            // of a deep chain would take memory quadratic in its depth.
            let node = driver.held.spend();
            node.drop_slow();
            node.abort();
            let readable = node.is_held() || node.parent.as_ref().is_some_and(|parent| !parent.has(&parent.lock(), ABORTED));
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
    T: 'static,
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
        let node = &**this.driver.as_ref().get_ref().node();
        node.step_set(DELIVERED, true);
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
/// The sizes that keep a spawn cheap (see `Node` and `Driver`), on 64-bit
/// targets, where they were measured.
#[cfg(all(test, not(loom), target_pointer_width = "64"))]
mod size {
    use std::sync::Arc;

    use super::{Name, Node, Tree, drive_child};
    use crate::Policy;

    /// With its `Arc` counts, a node must stay within 120 bytes, the
    /// largest request glibc serves from its fast bins.
    #[test]
    fn a_node_fits_in_a_fast_bin() {
        assert!(
            std::mem::size_of::<Node>() + 16 <= 120,
            "{}",
            std::mem::size_of::<Node>()
        );
    }

    /// A child's future is its body and one pointer: a tokio task of a
    /// 16-byte body then takes 128 bytes, as a `tokio::spawn` of the body
    /// alone does.
    #[tokio::test]
    async fn a_child_future_is_its_body_and_a_pointer() {
        let tree = Arc::new(Tree::new(tokio::runtime::Handle::current(), None));
        let node = Node::root(tree, Name::Fixed(&"root"), Policy::FailFast, Default::default(), None);
        let i = 7_usize;
        let body = async move { Ok::<_, std::convert::Infallible>(std::hint::black_box(i)) };
        let body_size = std::mem::size_of_val(&body);
        let future = drive_child(node, body, false, None);
        assert_eq!(std::mem::size_of_val(&future), body_size + std::mem::size_of::<usize>());
    }
}
