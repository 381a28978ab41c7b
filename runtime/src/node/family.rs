//! What a node keeps under its lock: the waker of its task, and, once it
//! has had a child, its `Family` (the children, their names, the failures
//! routed to it, the join's waiters, the limit), with the count of its
//! members beside it.

use std::any::Any;
use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::task::Waker;

use tokio::task::AbortHandle;

use super::Node;
use super::children::{Children, Entry};
use super::membership::Abandoned;
use super::state::{LIMITED, RELEASED};
use crate::error::Error;
use crate::limit::Limit;
use crate::sync::Ordering;
use crate::task::Name;

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
    pub(super) waker: Waker,
    /// The next key of a reservation of the limit: odd, where a child's
    /// key is the address of its node, even (see `Node::key`).
    pub(super) next_key: usize,
    /// The children, running or not, with the tokio tasks of those whose
    /// handle was dropped before they finished (see `Entry`). Never
    /// removed one by one, so that a child that finishes takes no lock:
    /// dead entries (a child released, or gone) are swept when the list is
    /// full (`push_child`), and the join lets go of the list (`poll_join`).
    /// So the nodes and tasks of children that end once the body has ended,
    /// or as their scope is cancelled, are freed by the join, on its
    /// worker, one after the other. Freed by each child's own worker (each
    /// child taking its entry out under this lock, sessions 11 to 19),
    /// the cancel of 50 000 idle children took 1.4x as long on a 2-core
    /// Intel machine, the workers contending for the lock and for glibc's
    /// arena of the spawning one (benches/PROFILE-NOTES.md, session 20).
    pub(super) children: Children,
    /// How many children of each name were spawned, for `name#index`.
    pub(super) names: Names,
    /// Failures waiting for `next_error`.
    pub(super) pending: VecDeque<Error>,
    /// The `order` of the child failure that cancelled this fail-fast
    /// scope, the first in time (see `Node::result`).
    pub(super) cancelled_by: Option<u64>,
    /// Once the body has ended: the failures that make the task's result,
    /// first one first (a leaf keeps its own in its `Driver`).
    pub(super) failures: Vec<Error>,
    /// Who waits for a child to finish or a failure to be routed: the join,
    /// `next_error`.
    pub(super) waiters: Waiters,
    /// For an aborted node whose children are still being dropped: what to
    /// hand the parent once the last of them is gone (its unclaimed failure).
    pub(super) release: Option<Abandoned>,
    /// The body's value while the children are joined (see `Driver`).
    pub(super) value: Option<Box<dyn Any + Send>>,
    /// Which children may run now, and which wait for a slot.
    pub(crate) limit: Limit,
}

/// What a sweep of the children list took out of it (see
/// `Family::push_child`), to be dropped once the lock is released: the
/// nodes it upgraded (the live ones first), and the kept tasks of the
/// entries it removed.
pub(super) type Swept = (Vec<Arc<Node>>, Vec<AbortHandle>);

impl Family {
    /// Adds a child, first sweeping the dead entries out of a full list if
    /// at least half of them are dead (`members` counts the live ones): the
    /// list stays within about twice the children alive (and one block),
    /// at a constant cost per spawn.
    ///
    /// If it swept, gives back the nodes the sweep looked at (the live
    /// ones first) and the kept tasks of the children it took out, for the
    /// caller to drop once the lock is released: the last reference to a
    /// node that has just finished may be one of them, and dropping a node
    /// runs user code (the arguments a formatted name keeps). `None` when
    /// it did not sweep (most spawns), so that the caller drops nothing:
    /// the two empty lists cost an out-of-line drop, about 30 instructions
    /// a spawn.
    ///
    /// Always inlined into the spawn, the sweep kept out of line: a call
    /// here and one to `Children::push` cost about 40 instructions a
    /// spawn. A plain `#[inline]` left both calls in the spawn once
    /// `register` was inlined there (session 16).
    #[inline(always)]
    #[must_use = "what the sweep looked at is dropped once the lock is released"]
    pub(super) fn push_child(&mut self, child: &Arc<Node>, members: usize) -> Option<Swept> {
        let swept = if sweep_due(&self.children, members) {
            Some(self.sweep(child))
        } else {
            None
        };
        child.set_slot(self.children.push(Entry::new(child)));
        swept
    }

    /// `push_child`'s sweep: takes the dead entries out, before `child`
    /// is added.
    #[inline(never)]
    fn sweep(&mut self, child: &Arc<Node>) -> Swept {
        let mut looked_at = Vec::new();
        let mut tasks = Vec::new();
        // The live ones first, the dead ones after: only a map of names
        // forgets, by the names of the live ones. Formatted names are
        // not counted (nor formatted under this lock).
        let mut dead = Vec::new();
        self.children.retain_mut(|entry| {
            match entry.node.upgrade() {
                Some(child) if !child.is_released() => {
                    // Its entry moves to the place of the live ones
                    // before it.
                    child.set_slot(looked_at.len());
                    looked_at.push(child);
                    return true;
                }
                Some(child) => dead.push(child),
                None => {}
            }
            tasks.extend(entry.task.take());
            false
        });
        if matches!(self.names, Names::Many(_)) {
            self.names.forget_unused(
                looked_at
                    .iter()
                    .chain(std::iter::once(child))
                    .filter_map(|child| child.counted_name()),
            );
        }
        looked_at.append(&mut dead);
        (looked_at, tasks)
    }

    /// `child`'s entry, if it is still where the child's `slot` says: not
    /// swept out (the child was released first), nor let go of with the
    /// list by the join.
    fn entry(&mut self, child: &Node) -> Option<&mut Entry> {
        self.children
            .get_mut(child.slot())
            .filter(|entry| std::ptr::eq(entry.node.as_ptr(), child))
    }

    /// Keeps `task`, the tokio task of `child`, in its entry; gives it back
    /// if the entry is not there (see `entry`), to be dropped once the lock
    /// is released.
    #[must_use = "a task not kept is dropped once the lock is released"]
    pub(super) fn keep_task(&mut self, child: &Node, task: AbortHandle) -> Option<AbortHandle> {
        match self.entry(child) {
            Some(entry) => entry.task.replace(task),
            None => Some(task),
        }
    }

    /// The children whose node is still there, released or not, for the
    /// caller to drop once the lock is released (see `push_child`); those
    /// not released yet are the live ones (`Node::is_released`).
    pub(crate) fn upgraded_children(&self) -> impl Iterator<Item = Arc<Node>> {
        self.children.iter().filter_map(|entry| entry.node.upgrade())
    }

    pub(super) fn new(waker: Waker) -> Self {
        Family {
            waker,
            next_key: 1,
            children: Children::default(),
            names: Names::default(),
            pending: VecDeque::new(),
            cancelled_by: None,
            failures: Vec::new(),
            waiters: Waiters::default(),
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
    pub(super) fn wait(&mut self, waker: &Waker) {
        self.waiters.add(waker);
    }
}

/// Whether the children list is due a sweep before it grows: every block
/// it has made is full, and at least half of its entries are children gone
/// (`members` counts the live ones), so that a sweep costs a constant per
/// entry added.
#[inline]
fn sweep_due(children: &Children, members: usize) -> bool {
    children.is_full() && members <= children.len() / 2
}

/// The wakers of a `Family`'s waiters. Most often one task waits (the
/// join, or a `next_error` loop), so the first is kept apart: waking it
/// and waiting again allocate nothing, where a `Vec` taken out of the lock
/// at every wake-up was allocated again at every wait (a `next_error`
/// loop paid one allocation per failure).
#[derive(Default)]
pub(super) struct Waiters {
    first: Option<Waker>,
    more: Vec<Waker>,
}

impl Waiters {
    fn add(&mut self, waker: &Waker) {
        let known = |known: &Waker| known.will_wake(waker);
        if self.first.as_ref().is_some_and(known) || self.more.iter().any(known) {
            return;
        }
        match &mut self.first {
            None => self.first = Some(waker.clone()),
            Some(_) => self.more.push(waker.clone()),
        }
    }

    /// Takes the wakers, to wake once the lock is released (`wake_all`).
    pub(super) fn take(&mut self) -> Waiters {
        std::mem::take(self)
    }
}

/// Counts per name. Most scopes spawn children of one or two names: a
/// short list compared by address, then by text, is cheaper than hashing;
/// past `SHORT` names it becomes a map. The first name is kept apart from
/// the list: a scope spawning one function allocates nothing for its
/// names, and its spawns count with one comparison of addresses.
pub(super) enum Names {
    Short {
        first: Option<(Cow<'static, str>, u32)>,
        others: Vec<(Cow<'static, str>, u32)>,
    },
    Many(HashMap<Cow<'static, str>, u32>),
}

impl Default for Names {
    fn default() -> Self {
        Names::Short {
            first: None,
            others: Vec::new(),
        }
    }
}

impl Names {
    const SHORT: usize = 16;

    /// Forgets the counts of the names no child in `live` carries: a
    /// long-lived scope spawning `job-{i}` children, each name new, would
    /// otherwise keep one count per child it ever had. A name spawned again
    /// later counts from 0 again (no live task has its paths). Called with
    /// the sweep of the children list, so at a constant cost per spawn.
    fn forget_unused<'a>(&mut self, live: impl Iterator<Item = &'a str>) {
        let Names::Many(map) = self else {
            // At most `SHORT` counts: nothing to gain.
            return;
        };
        let live: std::collections::HashSet<&str> = live.collect();
        map.retain(|name, _| live.contains(&**name));
    }

    /// The next index of `name`; 0 for a formatted name, which is not
    /// counted (nor formatted under the scope's lock, where this runs).
    #[inline]
    pub(super) fn next(&mut self, name: &Name) -> u32 {
        // The common case, a loop spawning one function: the first name
        // known, the same constant.
        if let (
            Name::Fixed(fixed),
            Names::Short {
                first: Some((Cow::Borrowed(known), count)),
                ..
            },
        ) = (name, &mut *self)
            && std::ptr::eq(*known, **fixed)
        {
            *count += 1;
            return *count - 1;
        }
        self.next_looked_up(name)
    }

    /// `next`, for any name but the first one's constant.
    #[inline(never)]
    fn next_looked_up(&mut self, name: &Name) -> u32 {
        // A new name is kept as it is: a constant is not copied.
        let key = || match name {
            Name::Fixed(name) => Cow::Borrowed(**name),
            Name::Given(name) => name.clone(),
            Name::Formatted(_) => unreachable!("not counted"),
        };
        if !name.is_counted() {
            return 0;
        }
        let text = name.as_str();
        match self {
            Names::Short { first, others } => {
                let same = |known: &str| std::ptr::eq(known, text) || known == text;
                let Some((known, count)) = first else {
                    *first = Some((key(), 1));
                    return 0;
                };
                if same(known) {
                    *count += 1;
                    return *count - 1;
                }
                if let Some((_, count)) = others.iter_mut().find(|(known, _)| same(known)) {
                    *count += 1;
                    return *count - 1;
                }
                if others.len() + 1 < Self::SHORT {
                    others.push((key(), 1));
                    return 0;
                }
                let mut map: HashMap<_, _> = first.take().into_iter().chain(others.drain(..)).collect();
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
    #[inline]
    pub(super) fn new() -> Self {
        State::Leaf(Waker::noop().clone())
    }

    /// The children's bookkeeping, made if this is the first use.
    #[inline]
    pub(crate) fn family(&mut self) -> &mut Family {
        if let State::Leaf(_) = self {
            self.make_family();
        }
        match self {
            State::Parent(family) => family,
            State::Leaf(_) => unreachable!("made above"),
        }
    }

    /// Makes the children's bookkeeping, once per parent.
    #[cold]
    fn make_family(&mut self) {
        if let State::Leaf(waker) = self {
            let waker = std::mem::replace(waker, Waker::noop().clone());
            *self = State::Parent(Box::new(Family::new(waker)));
        }
    }

    /// The children's bookkeeping, if any.
    #[inline]
    pub(super) fn family_if_any(&mut self) -> Option<&mut Family> {
        match self {
            State::Parent(family) => Some(family),
            State::Leaf(_) => None,
        }
    }

    /// The children's bookkeeping, if any.
    #[inline]
    pub(crate) fn family_ref(&self) -> Option<&Family> {
        match self {
            State::Parent(family) => Some(family),
            State::Leaf(_) => None,
        }
    }

    /// The waker of the task's last pending poll (a no-op waker before).
    #[inline]
    pub(super) fn waker(&mut self) -> &mut Waker {
        match self {
            State::Leaf(waker) => waker,
            State::Parent(family) => &mut family.waker,
        }
    }

    /// Takes the wakers to wake once the lock is released.
    pub(super) fn take_waiters(&mut self) -> Waiters {
        self.family_if_any()
            .map(|family| family.waiters.take())
            .unwrap_or_default()
    }
}

#[inline]
pub(super) fn wake_all(waiters: Waiters) {
    if let Some(first) = waiters.first {
        first.wake();
    }
    for waker in waiters.more {
        waker.wake();
    }
}

impl Node {
    /// The children not yet released, listed under the lock; the released
    /// ones are dropped after it (see `Family::push_child`).
    pub(super) fn children(&self) -> Vec<Arc<Node>> {
        let mut children: Vec<Arc<Node>> = match self.lock().family_ref() {
            Some(family) => family.upgraded_children().collect(),
            None => Vec::new(),
        };
        children.retain(|child| !child.is_released());
        children
    }

    /// How many children are members: registered and not yet released.
    /// More than are running: a child in line for a slot is one, and so is
    /// an aborted child until its own last descendant is gone.
    #[inline]
    pub(crate) fn members(&self) -> usize {
        (self.members.load(Ordering::Acquire) & !LIMITED) as usize
    }

    /// Whether the child is gone for its parent (`child_done`).
    #[inline]
    pub(crate) fn is_released(&self) -> bool {
        self.alarm.load(Ordering::Acquire) & RELEASED != 0
    }

    /// The scope's limit, which counts slots from now on: the children
    /// running now each hold one. Under the node's lock.
    pub(crate) fn limit<'a>(&self, state: &'a mut State) -> &'a mut Limit {
        let before = self.members.fetch_or(LIMITED, Ordering::AcqRel);
        let limit = &mut state.family().limit;
        if before & LIMITED == 0 {
            limit.count_running(before as usize);
        }
        limit
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Wake, Waker};

    use super::{Waiters, wake_all};

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counted() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        (Arc::clone(&count), Waker::from(count))
    }

    /// The first waiter is kept apart from the others: every waiter must
    /// still be woken once, and a waiter that waits twice only once.
    #[test]
    fn every_waiter_is_woken_once() {
        let (a, waker_a) = counted();
        let (b, waker_b) = counted();
        let (c, waker_c) = counted();
        let mut waiters = Waiters::default();
        for waker in [&waker_a, &waker_b, &waker_a, &waker_c, &waker_b] {
            waiters.add(waker);
        }
        wake_all(waiters.take());
        let woken = [&a, &b, &c].map(|count| count.0.load(Ordering::SeqCst));
        assert_eq!(woken, [1, 1, 1]);
        // Taken: nothing is woken twice.
        wake_all(waiters.take());
        assert_eq!(a.0.load(Ordering::SeqCst), 1);
    }

    /// Each name counts from 0, whether it is the first name (kept apart
    /// from the list), one of the list, a constant or a text with the same
    /// letters as a constant, and after the list became a map.
    #[test]
    fn every_name_counts_its_own_siblings() {
        use std::borrow::Cow;

        use super::super::Name;
        use super::Names;

        static WORKER: &str = "worker";
        let worker = || Name::Fixed(&WORKER);
        let given = |text: &str| Name::Given(Cow::Owned(text.to_owned()));
        let mut names = Names::default();
        let counted: Vec<u32> = [
            worker(),
            worker(),
            given("worker"),
            given("other"),
            worker(),
            given("other"),
        ]
        .iter()
        .map(|name| names.next(name))
        .collect();
        assert_eq!(counted, [0, 1, 2, 0, 3, 1]);
        assert!(matches!(names, Names::Short { .. }));
        // Sixteen names in all stay in the list; the seventeenth makes it a
        // map, which keeps every count.
        for i in 0..14 {
            assert_eq!(names.next(&given(&format!("job-{i}"))), 0);
        }
        assert!(matches!(names, Names::Short { .. }));
        assert_eq!(names.next(&given("job-14")), 0);
        assert!(matches!(names, Names::Many(_)));
        assert_eq!(names.next(&worker()), 4);
        assert_eq!(names.next(&given("other")), 2);
        assert_eq!(names.next(&given("job-3")), 1);
    }

    /// Regression: the sweep of a full children list upgraded each entry
    /// under the parent's lock and dropped it there, so a node whose other
    /// references went meanwhile was dropped under the lock, running user
    /// code (the arguments of a formatted name). It now hands every node it
    /// upgraded back to the caller, which drops them after the lock.
    #[test]
    fn the_sweep_hands_back_every_node_it_upgraded() {
        use super::super::Node;
        use super::super::state::RELEASED;
        use crate::Policy;

        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let root = Node::root_for_test(&runtime);
        let child = || Arc::new(Node::for_test(Some(Arc::clone(&root)), Policy::FailFast));
        let mut family = super::Family::new(Waker::noop().clone());
        let full = super::Children::FIRST;
        let children: Vec<Arc<Node>> = (0..full).map(|_| child()).collect();
        for node in &children {
            assert!(family.push_child(node, 1).is_none(), "no sweep before the list is full");
        }
        // All but two are gone for their parent, still referenced
        // (their handles, say): the next spawn sweeps them out.
        for node in &children[2..] {
            node.alarm.fetch_or(RELEASED, Ordering::AcqRel);
        }
        let (looked_at, _) = family.push_child(&child(), 3).expect("the full list is swept");
        assert_eq!(looked_at.len(), full, "every node upgraded is handed back");
        for node in &children {
            assert_eq!(Arc::strong_count(node), 2, "a node was dropped under the lock");
        }
        drop(looked_at);
        assert_eq!(family.children.len(), 3, "the released ones are swept out");
    }

    /// What `count` reads in the family of `scope` (0 without one).
    fn family_count(scope: &crate::Scope, count: impl FnOnce(&super::Family) -> usize) -> usize {
        scope.node().lock().family_ref().map_or(0, count)
    }

    /// How many tokio tasks of children whose handle was dropped the
    /// family of `scope` keeps.
    fn kept(scope: &crate::Scope) -> usize {
        family_count(scope, kept_in)
    }

    /// How many tokio tasks `family` keeps.
    fn kept_in(family: &super::Family) -> usize {
        family.children.iter().filter(|entry| entry.task.is_some()).count()
    }

    /// How many tokio tasks of children still running the family of
    /// `scope` keeps.
    fn kept_live(scope: &crate::Scope) -> usize {
        family_count(scope, |family| {
            family
                .children
                .iter()
                .filter(|entry| entry.task.is_some())
                .filter(|entry| entry.node.upgrade().is_some_and(|child| !child.is_released()))
                .count()
        })
    }

    /// How many entries of the family of `scope` hold a child's memory.
    fn holding(scope: &crate::Scope) -> usize {
        family_count(scope, |family| {
            family
                .children
                .iter()
                .filter(|entry| !std::sync::Weak::ptr_eq(&entry.node, &std::sync::Weak::new()))
                .count()
        })
    }

    /// A child whose handle is dropped before it finished leaves its tokio
    /// task with its parent, which frees it when it joins (see
    /// `Node::keep_task`); one dropped after it finished is freed at once.
    #[tokio::test(flavor = "current_thread")]
    async fn a_dropped_handle_leaves_its_task_with_the_parent_until_the_join() {
        let scope = crate::run(crate::task(|scope: crate::Scope| async move {
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            drop(scope.spawn(async move { rx.await.map_err(std::io::Error::other) }));
            assert_eq!(kept(&scope), 1, "the running child's task is kept");
            tx.send(()).unwrap();
            let done = scope.spawn(async { Ok::<_, std::io::Error>(()) });
            while !done.is_finished() {
                tokio::task::yield_now().await;
            }
            drop(done);
            assert_eq!(kept(&scope), 1, "a finished child's task is not kept");
            Ok::<_, crate::Error>(scope.clone())
        }))
        .await
        .unwrap();
        assert_eq!(kept(&scope), 0, "the join frees the kept tasks");
    }

    /// The join lets go of the children's nodes, so that a finished
    /// subtree's memory is freed by the worker that joined it, not kept
    /// until its parent's node goes.
    #[tokio::test(flavor = "current_thread")]
    async fn the_join_lets_go_of_the_children() {
        fn listed(scope: &crate::Scope) -> usize {
            family_count(scope, |family| family.children.len())
        }
        let scope = crate::run(crate::task(|scope: crate::Scope| async move {
            scope.spawn(async { Ok::<_, std::io::Error>(()) }).await?;
            assert_eq!(listed(&scope), 1, "the child is listed until the join");
            Ok::<_, crate::Error>(scope.clone())
        }))
        .await
        .unwrap();
        assert_eq!(listed(&scope), 0, "the join let go of its children");
    }

    /// A parent that spawns for long, dropping the handles, keeps a short
    /// list: the tasks of finished children are swept out of a full one.
    #[tokio::test(flavor = "current_thread")]
    async fn a_parent_spawning_for_long_keeps_a_short_list_of_tasks() {
        crate::run(crate::task(|scope: crate::Scope| async move {
            let mut most = 0;
            for i in 0..10_000 {
                // On one thread, a child runs only once the parent yields:
                // each handle is dropped before its child finished.
                drop(scope.spawn(async { Ok::<_, std::io::Error>(()) }));
                most = most.max(kept(&scope));
                if i % 10 == 9 {
                    tokio::task::yield_now().await;
                }
            }
            assert!(most >= 10, "the tasks were never kept ({most})");
            assert!(most <= 64, "{most} tasks kept for 10 running children");
            Ok::<_, crate::Error>(())
        }))
        .await
        .unwrap();
    }

    /// A child's task given to a parent that has closed already (its join
    /// ended between the child's last count and the end of its tokio task)
    /// is dropped at once: kept, nothing would free it before the node.
    #[tokio::test(flavor = "current_thread")]
    async fn a_closed_parent_keeps_no_task() {
        use super::super::state::Phase;
        use super::super::{Name, Node, Shared};

        let shared = Arc::new(Shared::new(tokio::runtime::Handle::current(), None));
        let root = Node::root(
            shared,
            Name::Fixed(&"root"),
            crate::Policy::FailFast,
            tokio_util::sync::CancellationToken::new(),
            None,
        );
        // A child listed in the root's family, which closes (as an abort
        // closes it) with the list still there.
        let child = Arc::new(Node::for_test(Some(Arc::clone(&root)), crate::Policy::FailFast));
        let task = tokio::spawn(std::future::pending::<()>());
        {
            let mut state = root.lock();
            drop(state.family().push_child(&child, 1));
            root.set_phase(&mut state, Phase::Closed);
        }
        root.keep_task(&child, task.abort_handle());
        assert_eq!(root.lock().family_ref().map(kept_in), Some(0));
        task.abort();
    }

    /// A child whose handle was dropped and that ends once its parent's
    /// body has ended leaves its entry, with its node and its task, to the
    /// join, which frees them on its own worker (see `Family::children`).
    #[tokio::test(flavor = "current_thread")]
    async fn a_child_ending_after_the_body_leaves_its_entry_to_the_join() {
        let (scope_tx, scope_rx) = tokio::sync::oneshot::channel();
        let (first_tx, first_rx) = tokio::sync::oneshot::channel::<()>();
        let (last_tx, last_rx) = tokio::sync::oneshot::channel::<()>();
        let run = tokio::spawn(crate::run(crate::task(|scope: crate::Scope| async move {
            let first = scope.spawn(async move { first_rx.await.map_err(std::io::Error::other) });
            let last = scope.spawn(async move { last_rx.await.map_err(std::io::Error::other) });
            drop((first, last));
            assert_eq!(kept(&scope), 2, "the running children's tasks are kept");
            scope_tx.send(scope.clone()).unwrap();
            Ok::<_, crate::Error>(())
        })));
        let scope = scope_rx.await.unwrap();
        // The body has ended: its scope is joining.
        tokio::task::yield_now().await;
        first_tx.send(()).unwrap();
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(scope.node().members(), 1, "the first child has ended");
        assert_eq!(holding(&scope), 2, "the first child left its entry");
        assert_eq!(kept(&scope), 2, "and its task in it");
        last_tx.send(()).unwrap();
        run.await.unwrap().unwrap();
        assert_eq!(holding(&scope), 0, "the join let go of the list");
        assert_eq!(kept(&scope), 0);
    }

    /// The slot and the policy share a word: setting the slot keeps the
    /// policy, and a slot past the word's bits finds no entry.
    #[test]
    fn a_slot_keeps_the_policy() {
        for policy in [crate::Policy::Supervise, crate::Policy::FailFast] {
            let node = super::super::Node::for_test(None, policy);
            node.set_slot(40);
            assert_eq!((node.slot(), node.policy()), (40, policy));
            node.set_slot(7);
            assert_eq!((node.slot(), node.policy()), (7, policy));
            node.set_slot(usize::MAX);
            assert_eq!(
                (node.slot(), node.policy()),
                (super::super::NO_SLOT as usize, policy),
                "a slot past the bits finds none"
            );
        }
    }

    /// The children of a cancelled scope whose handles were dropped leave
    /// their entries, with their nodes and tasks, to its join, which lets
    /// go of them all (see `Family::children`).
    #[tokio::test(flavor = "current_thread")]
    async fn a_cancelled_scope_frees_its_children_at_its_join() {
        crate::run(crate::task(|scope: crate::Scope| async move {
            let parent = scope.spawn(crate::task(|scope: crate::Scope| async move {
                for _ in 0..3 {
                    drop(scope.spawn(crate::task(|child: crate::Scope| async move {
                        child.cancelled().await;
                    })));
                }
                assert_eq!(kept(&scope), 3, "the children's tasks are kept");
                scope.cancelled().await;
                while scope.node().members() > 0 {
                    tokio::task::yield_now().await;
                }
                Ok::<_, crate::Error>((holding(&scope), kept(&scope), scope.clone()))
            }));
            // The children start, and wait for the cancel.
            tokio::task::yield_now().await;
            parent.cancel();
            let (held, kept_then, inner) = parent.await?;
            assert_eq!((held, kept_then), (3, 3), "every child left its entry");
            assert_eq!((holding(&inner), kept(&inner)), (0, 0), "the join let go of them");
            Ok::<_, crate::Error>(())
        }))
        .await
        .unwrap();
    }

    /// A sweep moves the live entries to the front of the list: each moved
    /// child is told where its entry went, so that its handle, dropped
    /// after the sweep, still finds it to leave its task there.
    #[tokio::test(flavor = "current_thread")]
    async fn a_dropped_handle_finds_its_entry_after_a_sweep_moved_it() {
        let (scope_tx, scope_rx) = tokio::sync::oneshot::channel();
        let (release_tx, release_rx) = tokio::sync::watch::channel(false);
        let (last_tx, last_rx) = tokio::sync::oneshot::channel::<()>();
        let run = tokio::spawn(crate::run(crate::task(move |scope: crate::Scope| async move {
            scope.spawn(async move { last_rx.await.map_err(std::io::Error::other) });
            let mut waiting = Vec::new();
            for i in 0..100 {
                if i % 3 != 0 {
                    // Ends at once, leaving a dead entry for the sweeps.
                    scope.spawn(async { Ok::<_, std::io::Error>(()) });
                } else {
                    let mut release = release_rx.clone();
                    waiting.push(scope.spawn(async move {
                        release.wait_for(|go| *go).await.map_err(std::io::Error::other)?;
                        Ok::<_, std::io::Error>(())
                    }));
                }
                tokio::task::yield_now().await;
            }
            assert!(
                family_count(&scope, |family| family.children.len()) < 100,
                "the list was never swept"
            );
            assert_eq!(kept_live(&scope), 1, "only the first child's task is kept");
            drop(waiting);
            assert_eq!(kept_live(&scope), 35, "every dropped handle found its entry");
            scope_tx.send(scope.clone()).unwrap();
            Ok::<_, crate::Error>(())
        })));
        let scope = scope_rx.await.unwrap();
        tokio::task::yield_now().await;
        assert_eq!(scope.node().members(), 35, "34 children wait, and the first");
        release_tx.send(true).unwrap();
        last_tx.send(()).unwrap();
        run.await.unwrap().unwrap();
    }
}
