//! The bookkeeping behind a scope: one `Node` per task of the tree.
//!
//! A node counts its children, keeps them (so that dropping the task aborts
//! its subtree, and a snapshot can list it), and holds the failures routed
//! to it until they are taken by `next_error` or escalate when the body
//! ends. What most tasks never use is made on first use: the cancellation
//! token, the path, and the children's bookkeeping (`Family`, boxed, made
//! by the first spawn). A leaf task costs one node and its tokio task.
//!
//! One concern per file, in the order a spawn meets them:
//! - `state`: the node's atomic bytes (alarm, handle, flags, step), every
//!   bit and both lifecycles (`Phase`, `Stage`) side by side;
//! - `spawn`: `Node::spawn`, from a `Task` to a running tokio task;
//! - `membership`: a child's place in its parent (registered, counted,
//!   released), which every kind of task holds;
//! - `family`: what a parent keeps under its lock (children, names,
//!   failures, the limit);
//! - `driver`: the task's future (`Driver`, `ChildTask`);
//! - `member`: the task of a `Group`'s member, which posts its value;
//! - `blocking`: a closure on the blocking pool and its holder (`Blocking`);
//! - `local`: a `!Send` future on the thread's `LocalSet`;
//! - `handoff`: values and failures between child, handle and parent;
//! - `token`: lazy tokens, cancel, kill, abort;
//! - `name`: names and paths.

use std::sync::{Arc, OnceLock, PoisonError};
use std::time::Duration;

use once_cell::race::OnceBox;
use tokio::runtime::Handle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::cause::CancelCause;
use crate::error::Error;
use crate::policy::Policy;
use crate::ready::ReadyLink;
use crate::sync::{AtomicU8, AtomicU32, Mutex, MutexGuard};
use crate::task::Name;

use clock::Stamp;
use state::{HELD, Stage};

mod blocking;
mod children;
mod clock;
mod driver;
mod family;
mod handoff;
mod local;
mod member;
mod membership;
mod name;
mod spawn;
mod state;
mod token;

#[cfg(all(test, loom))]
mod loom_model;

pub(crate) use driver::{Driver, Slow, drop_quietly, first_poll_scope};
pub(crate) use family::State;
pub(crate) use local::InLocalSet;
pub(crate) use membership::Admission;
pub(crate) use name::joined_path;
pub(crate) use spawn::Spawn;
pub(crate) use state::Phase;

/// What every node of one tree shares. Only the root holds it: a count
/// shared by every task of the tree would be written by every spawn, from
/// every worker.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) runtime: Handle,
    /// How long a cancelled task may take to stop before it is aborted:
    /// the `Root`'s grace period, if one was set.
    pub(crate) grace: Option<Duration>,
    /// When the tree started: a node keeps its own start as an offset from
    /// it (8 bytes, where an `Instant` takes 16).
    pub(crate) epoch: Instant,
    /// `Root::token`, which the root task's token is a child of: a root
    /// cancelled with no cause of ours was cancelled through it.
    pub(crate) stop: Option<CancellationToken>,
}

impl Shared {
    pub(crate) fn new(runtime: Handle, grace: Option<Duration>) -> Shared {
        Shared {
            runtime,
            grace,
            epoch: Instant::now(),
            stop: None,
        }
    }

    /// What a subtree running on `runtime` shares: the tree's, on
    /// another runtime (see `Node::spawn_on`).
    pub(crate) fn on(&self, runtime: Handle) -> Shared {
        Shared {
            runtime,
            grace: self.grace,
            epoch: self.epoch,
            stop: self.stop.clone(),
        }
    }

    /// Now, as an offset from the tree's start.
    pub(super) fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// One task of the tree.
///
/// Every spawn allocates one, beside its tokio task, so it is kept small:
/// 88 bytes, 104 with the `Arc` counts, which glibc serves from its fast
/// bins (`mod size` below holds it there; benches/PROFILE-NOTES.md has the
/// measurements). What few tasks use is in `Extra`, made on first use.
pub(crate) struct Node {
    parent: Option<Arc<Node>>,
    /// The task's name, unless it was given at run time (then in `Extra`):
    /// one word, where a `&str` takes two.
    name: Option<&'static &'static str>,
    /// What few tasks have: made at the spawn for those, else on first use
    /// (the path, a failure waiting for the handle). A `OnceBox` is one
    /// word, where a `OnceLock` of the box takes two: two threads making it
    /// at once may each make an empty one, and one is dropped.
    extra: OnceBox<Extra>,
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
    /// Where the node's entry is in its parent's list of children (see
    /// `Family::keep_task`), in the low 31 bits: set when it is added, and
    /// when a sweep moves it, under the parent's lock, which is also where
    /// it is read. The top bit is the node's policy (`SUPERVISE`): set when
    /// the node is made, never changed, read by its children without a
    /// lock. One word for the two, as the node has no room for a byte more
    /// (it is 88 bytes). A std atomic even in the loom model, which needs
    /// no step for a value under a lock or a constant.
    place: std::sync::atomic::AtomicU32,
    /// The members: children registered and not yet released, whether
    /// running, in line for a slot, or aborted with descendants still
    /// alive (see `membership.rs`); and the `LIMITED` bit. Incremented under the lock, when a
    /// child is registered; decremented by a child that finishes, under the
    /// lock if it brings a failure (so that a join, which looks under the
    /// lock, never misses one), else without it.
    members: AtomicU32,
    /// `KILL` and `ABORT`, looked at every time the task is polled, and
    /// `RELEASED`.
    alarm: AtomicU8,
    /// Where the task's failure goes: `HELD`, or `STORED` for the handle,
    /// then `DROPPED` or `TAKEN` (see `offer_failure`).
    handle: AtomicU8,
    /// The `Phase` and the `ABORTED`, `CANCELLED`, `TIMED_OUT` and
    /// `SHIELDED` flags,
    /// under the lock (an atomic only so that they fit beside the bytes
    /// above, out of the lock's data).
    flags: AtomicU8,
    /// Where the task's `Driver` stands (see `Stage`): touched only by the
    /// task itself.
    step: AtomicU8,
    state: Mutex<State>,
}

/// `Node::place`: the policy is `Policy::Supervise` (else `FailFast`).
const SUPERVISE: u32 = 1 << 31;

/// `Node::place`: the slot of a node whose entry is not where a slot can
/// say (past 2^31 - 2 entries, 32 GiB of list): it finds none (see
/// `Family::keep_task`). Also the mask of the slot's bits.
const NO_SLOT: u32 = SUPERVISE - 1;

/// The bits of `Node::place` that say slot `at`.
fn slot_bits(at: usize) -> u32 {
    u32::try_from(at).map_or(NO_SLOT, |at| at.min(NO_SLOT))
}

/// How many ancestors `Node::shared` looks at before a task keeps what the
/// tree shares itself: one task in `SHARED_HOPS + 1` of a deep chain pays
/// an `Extra` and a count of the `Arc`.
const SHARED_HOPS: usize = 8;

/// The part of a node that few tasks have.
pub(super) struct Extra {
    /// What the tree shares: on the root (and on the detached node of a
    /// refused spawn), kept by a task far below it (see `Node::shared`),
    /// and on a child spawned on another runtime (with that runtime).
    pub(super) shared: OnceLock<Arc<Shared>>,
    /// The task's deadline, counted from the start of its body.
    pub(super) timeout: Option<Duration>,
    /// Set when the task was started with `Scope::start`.
    pub(super) ready: Option<Arc<ReadyLink>>,
    /// A name given at run time (`Task::named`) or formatted from the
    /// task's arguments: never `Name::Fixed`.
    pub(super) name: Option<Name>,
    /// Built on first use: most tasks never need their path.
    pub(super) path: OnceLock<Arc<str>>,
    /// The failure waiting for the task's `Child` handle (see
    /// `Node::offer_failure`).
    pub(super) failure: Mutex<Option<Error>>,
    /// What only a task in line or with a timeout needs.
    pub(super) slow: Mutex<Slow>,
    /// Why the task was cancelled, if it was cancelled for a cause of its
    /// own (see `Node::cancel_for`); its descendants look here too.
    pub(super) cause: OnceLock<Box<CancelCause>>,
    /// The task's tracing span, once its path is known (see `trace`).
    #[cfg(feature = "tracing")]
    pub(super) span: OnceLock<tracing::Span>,
}

impl Extra {
    pub(super) fn new(
        shared: Option<Arc<Shared>>,
        timeout: Option<Duration>,
        ready: Option<Arc<ReadyLink>>,
        name: Option<Name>,
    ) -> Self {
        let kept = OnceLock::new();
        if let Some(shared) = shared {
            let _ = kept.set(shared);
        }
        Extra {
            shared: kept,
            timeout,
            ready,
            name,
            path: OnceLock::new(),
            failure: Mutex::new(None),
            slow: Mutex::new(Slow::default()),
            cause: OnceLock::new(),
            #[cfg(feature = "tracing")]
            span: OnceLock::new(),
        }
    }
}

impl Node {
    // Always inlined into `register`, its hot caller: the node is then
    // written into its `Arc` once, not made on the stack and copied.
    #[inline(always)]
    pub(super) fn new(
        parent: Option<Arc<Node>>,
        shared: Option<Arc<Shared>>,
        stamp: Stamp,
        name: Name,
        policy: Policy,
        timeout: Option<Duration>,
        ready: Option<Arc<ReadyLink>>,
    ) -> Node {
        let (name, given) = match name {
            Name::Fixed(name) => (Some(name), None),
            other => (None, Some(other)),
        };
        let extra = if shared.is_some() || timeout.is_some() || ready.is_some() || given.is_some() || stamp.spans {
            OnceBox::with_value(Box::new(Extra::new(shared, timeout, ready, given)))
        } else {
            OnceBox::new()
        };
        Node {
            parent,
            name,
            extra,
            token: OnceLock::new(),
            started: stamp.at,
            index: AtomicU32::new(0),
            place: std::sync::atomic::AtomicU32::new(match policy {
                Policy::FailFast => 0,
                Policy::Supervise => SUPERVISE,
            }),
            members: AtomicU32::new(0),
            alarm: AtomicU8::new(0),
            handle: AtomicU8::new(HELD),
            flags: AtomicU8::new(Phase::Body as u8),
            step: AtomicU8::new(Stage::Start as u8),
            state: Mutex::new(State::new()),
        }
    }

    /// For the unit tests: a node named `child`, under `parent` if given,
    /// made as `register` makes one but registered nowhere.
    #[cfg(test)]
    pub(super) fn for_test(parent: Option<Arc<Node>>, policy: Policy) -> Node {
        let stamp = Stamp { at: 0, spans: false };
        Node::new(parent, None, stamp, Name::Fixed(&"child"), policy, None, None)
    }

    /// For the unit tests: a root named `root`, whose tree runs on
    /// `runtime`.
    #[cfg(all(test, not(loom)))]
    pub(super) fn root_for_test(runtime: &tokio::runtime::Runtime) -> Arc<Node> {
        let shared = Arc::new(Shared::new(runtime.handle().clone(), None));
        Node::root(
            shared,
            Name::Fixed(&"root"),
            Policy::FailFast,
            CancellationToken::new(),
            None,
        )
    }

    pub(crate) fn root(
        shared: Arc<Shared>,
        name: Name,
        policy: Policy,
        token: CancellationToken,
        timeout: Option<Duration>,
    ) -> Arc<Node> {
        let stamp = shared.stamp_now();
        let node = Node::new(None, Some(shared), stamp, name, policy, timeout, None);
        let _ = node.token.set(token);
        Arc::new(node)
    }

    /// What few tasks have, made if this is the first use.
    pub(super) fn extra(&self) -> &Extra {
        self.extra.get_or_init(|| Box::new(Extra::new(None, None, None, None)))
    }

    /// The key of this child in its parent's limit: its address, which is
    /// even (reservations take odd keys, see `Family::reservation_key`).
    pub(crate) fn key(&self) -> usize {
        std::ptr::from_ref(self).addr()
    }

    #[inline]
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // No user code runs while the lock is held, so a poisoned lock can
        // only come from a bug in `node`; its data is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[inline]
    pub(crate) fn parent(&self) -> Option<&Arc<Node>> {
        self.parent.as_ref()
    }

    /// When the task was spawned, as an offset from its tree's start.
    pub(crate) fn started(&self) -> Duration {
        Duration::from_nanos(self.started)
    }

    #[inline]
    pub(crate) fn policy(&self) -> Policy {
        // Set at the making and never changed: no lock needed.
        match self.place.load(std::sync::atomic::Ordering::Relaxed) & SUPERVISE {
            0 => Policy::FailFast,
            _ => Policy::Supervise,
        }
    }

    /// Where the node's entry is in its parent's list of children. Under
    /// the parent's lock.
    #[inline]
    fn slot(&self) -> usize {
        (self.place.load(std::sync::atomic::Ordering::Relaxed) & NO_SLOT) as usize
    }

    /// Notes that the node's entry is at `at` in its parent's list, where
    /// it was just added or where a sweep moved it: under the parent's
    /// lock, the only writer of the slot (the policy's bit is never
    /// written again).
    #[inline]
    fn set_slot(&self, at: usize) {
        use std::sync::atomic::Ordering::Relaxed;
        let place = self.place.load(Relaxed);
        self.place.store((place & !NO_SLOT) | slot_bits(at), Relaxed);
    }

    /// What the whole tree shares, found at most `SHARED_HOPS` ancestors
    /// up: at the root, or at an ancestor that keeps it. A task that finds
    /// it further up keeps it too, so that reaching it costs the same at
    /// any depth: a chain of tasks 100,000 deep walked up to its root at
    /// every spawn, time quadratic in its depth. A shallow tree (most are)
    /// keeps it at its root only, and its spawns touch no shared count.
    #[inline]
    pub(crate) fn shared(&self) -> &Shared {
        let mut node = self;
        for _ in 0..SHARED_HOPS {
            if let Some(shared) = node.kept_shared() {
                return shared;
            }
            match &node.parent {
                Some(parent) => node = parent,
                None => unreachable!("the root holds the tree"),
            }
        }
        self.keep_shared()
    }

    /// Keeps `shared` as what this node and its subtree share (a child
    /// spawned on another runtime), before anything runs in it.
    pub(super) fn keep(&self, shared: Arc<Shared>) {
        let _ = self.extra().shared.set(shared);
    }

    /// What the tree shares, if this node holds it.
    #[inline]
    fn kept_shared(&self) -> Option<&Arc<Shared>> {
        self.extra.get()?.shared.get()
    }

    /// Finds what the tree shares further up than `SHARED_HOPS`, and keeps
    /// it here.
    #[cold]
    fn keep_shared(&self) -> &Shared {
        let mut node = self;
        let shared = loop {
            if let Some(shared) = node.kept_shared() {
                break Arc::clone(shared);
            }
            match &node.parent {
                Some(parent) => node = parent,
                None => unreachable!("the root holds the tree"),
            }
        };
        self.extra().shared.get_or_init(|| shared)
    }

    #[inline]
    pub(crate) fn ready_link(&self) -> Option<&Arc<ReadyLink>> {
        self.extra.get()?.ready.as_ref()
    }

    /// The task's deadline, if it has one.
    #[inline]
    pub(crate) fn timeout(&self) -> Option<Duration> {
        self.extra.get()?.timeout
    }

    /// Where the task's tracing span is kept, if spans may be wanted.
    #[cfg(feature = "tracing")]
    #[inline]
    pub(crate) fn span_cell(&self) -> Option<&OnceLock<tracing::Span>> {
        self.extra.get().map(|extra| &extra.span)
    }

    /// Whether the task has delivered its result (or was torn down).
    pub(crate) fn is_closed(&self) -> bool {
        self.phase(&self.lock()) == Phase::Closed
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
            .field("policy", &self.policy())
            .field("cancelled", &self.is_cancelled())
            .finish_non_exhaustive()
    }
}
/// The sizes that keep a spawn cheap (see `Node` and `Driver`), on 64-bit
/// targets, where they were measured.
#[cfg(all(test, not(loom), target_pointer_width = "64"))]
mod size {
    use std::sync::Arc;

    use super::driver::ChildTask;
    use super::member::Post;
    use super::{Name, Node, Shared};
    use crate::Policy;
    use crate::group::Inbox;

    /// With its `Arc` counts, a node must stay within 120 bytes, the
    /// largest request glibc serves from its fast bins; it takes 104, so
    /// that a child whose handle was dropped, with its task kept by its
    /// parent (`Node::keep_task`), holds no more memory than before that
    /// was done.
    #[test]
    fn a_node_fits_in_a_fast_bin() {
        let size = std::mem::size_of::<Node>();
        assert!(size + 16 <= 120, "{size}");
        assert!(size <= 88, "a node takes {size} bytes, more than 88");
    }

    /// A child's future is its body and one pointer: a tokio task of a
    /// 16-byte body then takes 128 bytes, as a `tokio::spawn` of the body
    /// alone does.
    #[tokio::test]
    async fn a_child_future_is_its_body_and_a_pointer() {
        let tree = Arc::new(Shared::new(tokio::runtime::Handle::current(), None));
        let node = Node::root(tree, Name::Fixed(&"root"), Policy::FailFast, Default::default(), None);
        let i = 7_usize;
        let body = async move { Ok::<_, std::convert::Infallible>(std::hint::black_box(i)) };
        let body_size = std::mem::size_of_val(&body);
        let future = ChildTask::new(node, body, false, None);
        assert_eq!(std::mem::size_of_val(&future), body_size + std::mem::size_of::<usize>());
    }

    /// A group member's future is its child's future and the inbox's
    /// pointer, no byte more: a member of a 16-byte body then takes 128
    /// bytes of tokio task, as a plain `tokio::spawn` of it does.
    #[tokio::test]
    async fn a_member_future_is_its_child_future_and_a_pointer() {
        let tree = Arc::new(Shared::new(tokio::runtime::Handle::current(), None));
        let node = Node::root(tree, Name::Fixed(&"root"), Policy::FailFast, Default::default(), None);
        let i = 7_usize;
        let body = async move { Ok::<_, std::convert::Infallible>(std::hint::black_box(i)) };
        let child = ChildTask::new(node, body, false, None);
        let child_size = std::mem::size_of_val(&child);
        let future = Post::new(child, Arc::new(Inbox::new()));
        assert_eq!(
            std::mem::size_of_val(&future),
            child_size + std::mem::size_of::<usize>()
        );
    }
}
