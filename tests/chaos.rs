//! Chaos: random task trees under random failures, panics, cancellations,
//! timeouts, restarts and dropped subtrees, with the contract's invariants
//! checked after every run.
//!
//! Each round builds a random tree from one seed: trees at least 5 deep,
//! random fanout, both policies, handles awaited, raced in a `select!`,
//! held or dropped, children started with `scope.start`, `next_error`
//! loops, limits (`spawn`, `reserve`, `try_spawn`), tasks spawning siblings
//! on their parent's scope, `scope.cancel()` and `child.cancel()` of
//! subtrees, `Task::timeout`s (with tasks that ignore cancellation and get
//! aborted when their grace ends), `taskward::restart` of every flavour,
//! nested trees whose `run` is dropped when a `select!` loses, a root
//! cancelled or dropped from outside. Every failure injected (an `Err` or
//! a panic) carries a unique id, and the test counts where each id comes
//! out. After the run:
//!
//! 1. every failure injected is delivered exactly once: to a `Child`
//!    handle, to `next_error`, to `start`, or out of a `run` (escalated to
//!    a root), counting the failures nested in `related()`. Only a failure
//!    whose tree was dropped (a dropped `run`, or a body aborted around a
//!    nested run) may be delivered zero times; a failure a `restart`
//!    retried is taken by it and must never come out, unless the restart
//!    gives up and reports them all (see `Ledger::check`). A spawn may be
//!    refused (`ScopeClosed`) only in a dropped tree;
//! 2. no body of a tree is still running when its `run` returns (a live
//!    count per tree, with drop guards in the bodies), and the bodies of
//!    dropped trees all go away soon after (in paused time, without the
//!    clock moving);
//! 3. tokio's count of alive tasks is back to where it was;
//! 4. `run` returns (a watchdog fails the round if it hangs).
//!
//! A failure is only counted as injected once its task reached the point of
//! injection (recorded just before it returns `Err` or panics, with no
//! `.await` between), so a task cancelled or killed before that point
//! injects nothing, and the accounting is exact.
//!
//! Seeds: a round that fails prints its seed. `TASKWARD_CHAOS_SEED=<seed>`
//! runs that one round in each test (on a multi-thread runtime the
//! interleaving still varies; on the paused current-thread runtime it is
//! nearly deterministic); `TASKWARD_CHAOS_ROUNDS=<n>` runs more rounds, and
//! `TASKWARD_CHAOS_BASE=<seed>` explores other seeds.

mod common;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use taskward::{CancelCause, Child, Error, ErrorKind, Policy, Ready, Root, Scope, Startable, Task};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Trees are cut at this depth (nested trees count on from their parent).
const MAX_DEPTH: usize = 12;
/// Rounds whose tree reaches at least this depth are counted.
const MIN_DEPTH: usize = 5;

// ---------------------------------------------------------------------------
// Random numbers

/// splitmix64: every decision of a round derives from its seed.
#[derive(Clone, Copy, Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 if `n` is 0).
    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }

    /// True `percent` times in a hundred.
    fn percent(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    /// A duration between `low` and `high` milliseconds.
    fn millis(&mut self, low: u64, high: u64) -> Duration {
        Duration::from_millis(low + self.next() % (high - low + 1))
    }

    /// A generator of its own, for a subtree.
    fn fork(&mut self) -> Rng {
        Rng(self.next())
    }
}

// ---------------------------------------------------------------------------
// What the tasks inject, and where it comes out

/// The error an injected failure returns; its id is unique in the round.
#[derive(Debug)]
struct Injected(u64);

impl fmt::Display for Injected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One injected failure in four is hostile: its `Display` panics.
        // The runtime formats errors only for its tracing events (a
        // subscriber that formats them is installed, see `chaos`), and must
        // not let such a panic change what is delivered.
        if self.0.is_multiple_of(4) {
            panic!("chaos: injected panic in Display #{}", self.0);
        }
        write!(f, "chaos: injected failure #{}", self.0)
    }
}

impl std::error::Error for Injected {}

const PANIC_MARKER: &str = "chaos: injected panic #";

/// The id of an injected failure in `err` itself (not its related ones):
/// its `Injected` cause, or, for a panic, the id in its message. Any error
/// whose message names an injected failure counts, so that a copy of a
/// failure made by a buggy runtime is counted too.
/// The reason of a `cancel_with` of the random tree.
const CHAOS_REASON: &str = "chaos: cancelled with a reason";

fn injected_id(err: &Error) -> Option<u64> {
    if let Some(injected) = err.downcast_ref::<Injected>() {
        return Some(injected.0);
    }
    if let Some(payload) = err.panic_value::<common::LoudPayload>() {
        return Some(payload.0);
    }
    let text = err.message()?;
    let at = text.find(PANIC_MARKER).map(|at| at + PANIC_MARKER.len()).or_else(|| {
        let marker = "chaos: injected failure #";
        text.find(marker).map(|at| at + marker.len())
    })?;
    let digits: String = text[at..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Where a failure came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Sink {
    /// `child.await`.
    Handle,
    /// `scope.next_error()`.
    NextError,
    /// `scope.start(..)`: a failure before readiness.
    Start,
    /// Out of a `run` (the outer tree's or a nested one's).
    Run,
}

/// A tree of the round: the outer one, or one run inside a task's body.
struct TreeInfo {
    parent: Option<usize>,
    /// Bodies of this tree still alive.
    live: Arc<AtomicUsize>,
    /// Its `run` returned.
    finished: bool,
    /// Its `run` was dropped before it returned.
    dropped: bool,
}

/// How a `restart` in the round was configured.
#[derive(Clone, Copy, Debug)]
enum RestartFlavor {
    /// Never runs out of restarts (`within` zero); the first `fails`
    /// incarnations fail.
    Unlimited { fails: usize },
    /// At most `budget` restarts in the task's life (`within` = MAX); every
    /// incarnation fails (a `permanent` one fails every other time).
    Budget { budget: u32, permanent: bool },
}

/// A `restart` of the round, and the id each incarnation injected.
struct RestartInfo {
    flavor: RestartFlavor,
    /// One entry per incarnation made: the id of its failure, if it
    /// reached the injection point.
    incarnations: Vec<Option<u64>>,
}

struct Reached {
    tree: usize,
    /// Set for the failure of a restart's incarnation: (restart, index).
    incarnation: Option<(usize, usize)>,
}

/// What a round saw, to check that the suite explores what it claims.
#[derive(Debug, Default, Clone)]
struct Stats {
    rounds: usize,
    tasks: usize,
    deep_rounds: usize,
    injected: usize,
    panics: usize,
    lost_with_their_tree: usize,
    retried_by_restart: usize,
    restarts_given_up: usize,
    dropped_trees: usize,
    sinks: HashMap<Sink, usize>,
    kinds: HashMap<ErrorKind, usize>,
}

impl Stats {
    fn add(&mut self, other: &Stats) {
        self.rounds += other.rounds;
        self.tasks += other.tasks;
        self.deep_rounds += other.deep_rounds;
        self.injected += other.injected;
        self.panics += other.panics;
        self.lost_with_their_tree += other.lost_with_their_tree;
        self.retried_by_restart += other.retried_by_restart;
        self.restarts_given_up += other.restarts_given_up;
        self.dropped_trees += other.dropped_trees;
        for (sink, count) in &other.sinks {
            *self.sinks.entry(*sink).or_default() += count;
        }
        for (kind, count) in &other.kinds {
            *self.kinds.entry(*kind).or_default() += count;
        }
    }
}

/// The bookkeeping of one round.
#[derive(Default)]
struct Ledger {
    next_id: AtomicU64,
    tasks: AtomicUsize,
    deepest: AtomicUsize,
    panics: AtomicUsize,
    book: Mutex<Book>,
}

#[derive(Default)]
struct Book {
    trees: Vec<TreeInfo>,
    restarts: Vec<RestartInfo>,
    reached: HashMap<u64, Reached>,
    surfaced: HashMap<u64, Vec<Sink>>,
    /// `ScopeClosed` failures, with the tree they came out in.
    refused: Vec<(usize, String)>,
    sinks: HashMap<Sink, usize>,
    kinds: HashMap<ErrorKind, usize>,
    violations: Vec<String>,
}

impl Ledger {
    fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn new_tree(&self, parent: Option<usize>) -> (usize, Arc<AtomicUsize>) {
        let live = Arc::new(AtomicUsize::new(0));
        let mut book = self.book();
        book.trees.push(TreeInfo {
            parent,
            live: Arc::clone(&live),
            finished: false,
            dropped: false,
        });
        (book.trees.len() - 1, live)
    }

    /// The `run` of `tree` returned: none of its bodies may be alive.
    fn tree_finished(&self, tree: usize) {
        let mut book = self.book();
        book.trees[tree].finished = true;
        let live = book.trees[tree].live.load(Ordering::SeqCst);
        if live != 0 {
            book.violations.push(format!(
                "the run of tree {tree} returned while {live} of its bodies were still alive"
            ));
        }
    }

    fn tree_dropped(&self, tree: usize) {
        self.book().trees[tree].dropped = true;
    }

    fn new_restart(&self, flavor: RestartFlavor) -> usize {
        let mut book = self.book();
        book.restarts.push(RestartInfo {
            flavor,
            incarnations: Vec::new(),
        });
        book.restarts.len() - 1
    }

    /// A restart made a new incarnation: its index.
    fn incarnation_made(&self, restart: usize) -> usize {
        let mut book = self.book();
        let incarnations = &mut book.restarts[restart].incarnations;
        incarnations.push(None);
        incarnations.len() - 1
    }

    /// A task of `tree` is about to inject a failure: its id.
    fn reach(&self, tree: usize, incarnation: Option<(usize, usize)>) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let mut book = self.book();
        book.reached.insert(id, Reached { tree, incarnation });
        if let Some((restart, index)) = incarnation {
            book.restarts[restart].incarnations[index] = Some(id);
        }
        id
    }

    /// Counts every injected failure in `err` and its related ones as
    /// delivered to `sink`, in a task of `tree`.
    fn surface(&self, err: &Error, sink: Sink, tree: usize) {
        let mut book = self.book();
        *book.sinks.entry(sink).or_default() += 1;
        let mut walk = vec![err];
        while let Some(err) = walk.pop() {
            *book.kinds.entry(err.kind()).or_default() += 1;
            match err.kind() {
                // `start` reports a child that never became ready.
                ErrorKind::NotReady if sink == Sink::Start => {}
                // A task spawning on its parent's scope is refused when the
                // parent was aborted (its tree dropped): checked at the end.
                ErrorKind::ScopeClosed => book.refused.push((tree, err.to_string())),
                ErrorKind::AlreadyTaken | ErrorKind::NotReady | ErrorKind::NoRuntime => {
                    book.violations.push(format!("unexpected failure: {err}"));
                }
                _ => {}
            }
            if let Some(id) = injected_id(err) {
                book.surfaced.entry(id).or_default().push(sink);
            }
            walk.extend(err.related());
        }
    }

    fn result(&self, result: Result<(), Error>, sink: Sink, tree: usize) {
        if let Err(err) = result {
            self.surface(&err, sink, tree);
        }
    }

    fn violation(&self, what: String) {
        self.book().violations.push(what);
    }

    /// Whether `tree` or one of the trees it runs in was dropped.
    fn lost(book: &Book, tree: usize) -> bool {
        let mut at = Some(tree);
        while let Some(tree) = at {
            if book.trees[tree].dropped {
                return true;
            }
            at = book.trees[tree].parent;
        }
        false
    }

    /// Checks the accounting of failures; returns what the round saw.
    fn check(&self) -> Stats {
        let mut book = self.book();
        let book = &mut *book;
        let mut stats = Stats {
            rounds: 1,
            tasks: self.tasks.load(Ordering::SeqCst),
            deep_rounds: usize::from(self.deepest.load(Ordering::SeqCst) >= MIN_DEPTH),
            injected: book.reached.len(),
            panics: self.panics.load(Ordering::SeqCst),
            dropped_trees: book.trees.iter().filter(|tree| tree.dropped).count(),
            sinks: book.sinks.clone(),
            kinds: book.kinds.clone(),
            ..Stats::default()
        };
        let count = |id: u64| book.surfaced.get(&id).map_or(0, Vec::len);
        let mut violations = Vec::new();
        for (tree, refused) in &book.refused {
            if !Ledger::lost(book, *tree) {
                violations.push(format!(
                    "a spawn was refused in tree {tree}, which was not dropped: {refused}"
                ));
            }
        }
        for (id, surfaced) in &book.surfaced {
            if !book.reached.contains_key(id) {
                violations.push(format!("failure #{id} came out ({surfaced:?}) but was never injected"));
            }
        }
        for (id, reached) in &book.reached {
            if reached.incarnation.is_some() {
                continue;
            }
            let times = count(*id);
            let lost = Ledger::lost(book, reached.tree);
            if times == 0 && lost {
                stats.lost_with_their_tree += 1;
            } else if times != 1 {
                violations.push(format!(
                    "failure #{id} (tree {}) came out {times} times: {:?}",
                    reached.tree,
                    book.surfaced.get(id)
                ));
            }
        }
        // A restart takes the failure of every incarnation it retries: that
        // failure must never come out, except when the restart gives up and
        // reports all of them. The failure of the last incarnation is the
        // restart's result.
        for (index, restart) in book.restarts.iter().enumerate() {
            let Some((last, earlier)) = restart.incarnations.split_last() else {
                continue;
            };
            let tree_of = |id: &u64| book.reached[id].tree;
            let earlier: Vec<u64> = earlier.iter().flatten().copied().collect();
            let earlier_counts: Vec<usize> = earlier.iter().map(|id| count(*id)).collect();
            let given_up = earlier_counts.first().is_some_and(|times| *times > 0);
            let may_give_up = match restart.flavor {
                RestartFlavor::Unlimited { .. } => false,
                RestartFlavor::Budget { budget, .. } => restart.incarnations.len() == budget as usize + 1,
            };
            if earlier_counts.iter().any(|times| *times != usize::from(given_up)) || (given_up && !may_give_up) {
                violations.push(format!(
                    "restart {index} ({:?}, {} incarnations): retried failures {earlier:?} came out {earlier_counts:?} times",
                    restart.flavor,
                    restart.incarnations.len()
                ));
            }
            if given_up {
                stats.restarts_given_up += 1;
            } else {
                stats.retried_by_restart += earlier.len();
            }
            if let Some(id) = last {
                let times = count(*id);
                if times == 0 && Ledger::lost(book, tree_of(id)) {
                    stats.lost_with_their_tree += 1;
                } else if times != 1 {
                    violations.push(format!(
                        "restart {index} ({:?}): the failure #{id} of its last incarnation came out {times} times",
                        restart.flavor
                    ));
                }
            }
        }
        book.violations.extend(violations);
        stats
    }
}

// ---------------------------------------------------------------------------
// The random tree

/// Everything a task of the round needs.
#[derive(Clone)]
struct Ctx {
    ledger: Arc<Ledger>,
    tree: usize,
    live: Arc<AtomicUsize>,
    depth: usize,
}

impl Ctx {
    fn deeper(&self) -> Ctx {
        Ctx {
            depth: self.depth + 1,
            ..self.clone()
        }
    }

    /// Counts a body alive until the guard drops (with the body).
    fn enter(&self) -> LiveGuard {
        self.ledger.tasks.fetch_add(1, Ordering::Relaxed);
        self.ledger.deepest.fetch_max(self.depth, Ordering::Relaxed);
        self.live.fetch_add(1, Ordering::SeqCst);
        LiveGuard(Arc::clone(&self.live))
    }

    /// A failure of this task, returned or panicked.
    fn inject(&self, panic: bool, incarnation: Option<(usize, usize)>) -> Result<(), Injected> {
        let id = self.ledger.reach(self.tree, incarnation);
        if panic {
            self.ledger.panics.fetch_add(1, Ordering::Relaxed);
            // One panic in three carries a value whose own `Drop` panics:
            // wherever the failure goes, dropping it must not panic.
            if id.is_multiple_of(3) {
                std::panic::panic_any(common::LoudPayload(id));
            }
            panic!("{PANIC_MARKER}{id}");
        }
        Err(Injected(id))
    }
}

struct LiveGuard(Arc<AtomicUsize>);

/// Held beside some bodies (`LoudOnDrop`): panics when dropped (unless
/// already unwinding), with an injected failure of its own. Wherever the
/// body is dropped (once it completed, killed by a grace period, torn down
/// with its tree), the panic must come out exactly once, or be lost with a
/// dropped tree; and the body's own failure must not be lost either.
struct LoudDrop(Ctx);

/// A body with a `LoudDrop` beside it, dropped when the body's future is
/// dropped (a local of an `async` block is dropped inside its last poll,
/// where a panic would replace the value it returns).
struct LoudOnDrop<F> {
    body: F,
    _loud: LoudDrop,
}

impl<F: Future + Unpin> Future for LoudOnDrop<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<F::Output> {
        Pin::new(&mut self.body).poll(cx)
    }
}

impl Drop for LoudDrop {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let id = self.0.ledger.reach(self.0.tree, None);
        self.0.ledger.panics.fetch_add(1, Ordering::Relaxed);
        panic!("{PANIC_MARKER}{id}");
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What a parent does with a child's handle.
#[derive(Clone, Copy, Debug)]
enum Fate {
    /// Drops it at once: the failure goes to the scope.
    Drop,
    /// Keeps it unawaited until the body ends.
    Hold,
    /// Awaits it at once.
    Await,
    /// Awaits it after spawning the other children.
    AwaitLater,
    /// Awaits it in a `select!` against a timer; if the timer wins, the
    /// handle is dropped.
    Race(Duration),
    /// Starts it with `scope.start`, which waits until it is ready.
    Start,
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    /// A task of the random tree.
    Node,
    /// A leaf that ignores cancellation and never ends: it has a timeout,
    /// and is aborted when the grace period after it ends.
    Hang,
    /// `taskward::restart` of a probe that runs a small nested tree.
    Restart(RestartFlavor, Option<(Duration, Duration)>),
    /// A tree run inside this task's body (not a child); its `run` is
    /// dropped if `drop_after` passes first.
    Nested { drop_after: Option<Duration> },
}

#[derive(Clone, Copy, Debug)]
struct ChildPlan {
    rng: Rng,
    budget: usize,
    kind: Kind,
    fate: Fate,
    policy: Policy,
    timeout: Option<Duration>,
    /// `child.cancel()` right after spawning it.
    cancel: bool,
    /// With `cancel`: `child.cancel_with(..)` instead, whose reason the
    /// child's subtree must see.
    reason: bool,
    /// `.shielded()`: the parent's cancellation does not reach it.
    shielded: bool,
    /// How it is admitted to its scope.
    admit: Admit,
    /// What the parent waits for before spawning it.
    pause: Pause,
}

/// How a child is admitted to its scope (they differ with a limit).
#[derive(Clone, Copy, Debug)]
enum Admit {
    Spawn,
    /// `scope.reserve().await.spawn(..)`.
    Reserve,
    /// `scope.try_spawn(..)`, then `spawn` if the scope is full.
    TrySpawn,
}

#[derive(Clone, Copy, Debug)]
enum Pause {
    None,
    Yield,
    /// Sleeps, unless the scope is cancelled first.
    Sleep(Duration),
    /// Sleeps, ignoring cancellation.
    Stubborn(Duration),
}

impl Pause {
    fn random(rng: &mut Rng) -> Pause {
        match rng.below(20) {
            0..=9 => Pause::None,
            10..=14 => Pause::Yield,
            15..=18 => Pause::Sleep(rng.millis(0, 3)),
            _ => Pause::Stubborn(rng.millis(0, 2)),
        }
    }

    async fn wait(self, scope: &Scope) {
        match self {
            Pause::None => {}
            Pause::Yield => tokio::task::yield_now().await,
            Pause::Sleep(time) => {
                scope.until_cancelled(tokio::time::sleep(time)).await;
            }
            Pause::Stubborn(time) => tokio::time::sleep(time).await,
        }
    }
}

/// What a task of the random tree does.
#[derive(Debug)]
struct Plan {
    children: Vec<ChildPlan>,
    /// Its own failure: `Some(true)` a panic, `Some(false)` an `Err`.
    inject: Option<bool>,
    /// Gives up injecting if its scope is cancelled by then.
    cancel_aware: bool,
    /// Takes its children's failures with `next_error` before ending.
    drain: bool,
    limit: Option<usize>,
    /// Cancels its own scope after spawning this many children.
    cancel_self_after: Option<usize>,
    /// What it waits for before injecting.
    pause: Pause,
    /// Spawns its children on its parent's scope (as siblings) rather than
    /// its own, while the parent may already be joining.
    adopt: bool,
    /// When started, tells it is ready after spawning this many children;
    /// `None` drops its `Ready` unsent at once.
    ready_after: Option<usize>,
}

impl Plan {
    fn random(rng: &mut Rng, budget: usize, depth: usize) -> Plan {
        let mut children = Vec::new();
        if budget > 0 && depth < MAX_DEPTH {
            let fanout = 1 + rng.below(budget.min(8));
            let mut left = budget - fanout;
            for i in 0..fanout {
                // A uniform share of what is left: the first children tend
                // to get the most, which makes deep paths.
                let share = if i + 1 == fanout { left } else { rng.below(left + 1) };
                left -= share;
                children.push(ChildPlan::random(rng, share));
            }
        }
        let limit = rng.percent(10).then(|| 1 + rng.below(4));
        Plan {
            children,
            inject: rng.percent(30).then(|| rng.percent(25)),
            cancel_aware: rng.percent(50),
            drain: rng.percent(30),
            limit,
            cancel_self_after: rng.percent(4).then(|| rng.below(4)),
            pause: Pause::random(rng),
            adopt: rng.percent(8),
            ready_after: (!rng.percent(10)).then(|| rng.below(4)),
        }
    }
}

impl ChildPlan {
    fn random(rng: &mut Rng, budget: usize) -> ChildPlan {
        let kind = match rng.below(100) {
            0..=4 => Kind::Nested {
                drop_after: rng.percent(50).then(|| rng.millis(0, 8)),
            },
            5..=11 => {
                let flavor = if rng.percent(50) {
                    RestartFlavor::Unlimited { fails: rng.below(4) }
                } else {
                    RestartFlavor::Budget {
                        budget: rng.below(3) as u32,
                        permanent: rng.percent(30),
                    }
                };
                let backoff = rng.percent(30).then(|| (rng.millis(0, 1), rng.millis(1, 3)));
                Kind::Restart(flavor, backoff)
            }
            12..=16 if budget == 0 => Kind::Hang,
            _ => Kind::Node,
        };
        let fate = match rng.below(20) {
            0..=4 => Fate::Drop,
            5..=7 => Fate::Hold,
            8..=11 => Fate::Await,
            12..=15 => Fate::AwaitLater,
            16..=17 => Fate::Race(rng.millis(0, 4)),
            _ => Fate::Start,
        };
        let timeout = match kind {
            Kind::Hang => Some(rng.millis(1, 20)),
            _ => rng.percent(12).then(|| rng.millis(1, 30)),
        };
        ChildPlan {
            rng: rng.fork(),
            budget,
            kind,
            fate,
            policy: if rng.percent(50) {
                Policy::FailFast
            } else {
                Policy::Supervise
            },
            timeout,
            cancel: rng.percent(6),
            reason: rng.percent(50),
            shielded: rng.percent(5),
            admit: match rng.below(10) {
                0..=5 => Admit::Spawn,
                6..=7 => Admit::Reserve,
                _ => Admit::TrySpawn,
            },
            pause: Pause::random(rng),
        }
    }
}

/// A task of the random tree, as a `taskward` task.
/// `parent` is the scope of the task that spawns it, which it may spawn
/// siblings on.
fn node_task(
    ctx: Ctx,
    rng: Rng,
    budget: usize,
    policy: Policy,
    timeout: Option<Duration>,
    parent: Option<Scope>,
) -> impl Startable<Output = (), Ready = ()> {
    let mut task = taskward::task_with_ready(move |scope, ready| node_body(scope, ready, ctx, rng, budget, parent))
        .policy(policy)
        .named("node");
    if let Some(limit) = timeout {
        task = task.timeout(limit);
    }
    task
}

fn node_body(
    scope: Scope,
    ready: Ready<()>,
    ctx: Ctx,
    mut rng: Rng,
    budget: usize,
    parent: Option<Scope>,
) -> BoxFuture<Result<(), Injected>> {
    let loud = rng.percent(4).then(|| LoudDrop(ctx.clone()));
    let body = plain_node_body(scope, ready, ctx, rng, budget, parent);
    match loud {
        Some(loud) => Box::pin(LoudOnDrop { body, _loud: loud }),
        None => body,
    }
}

fn plain_node_body(
    scope: Scope,
    ready: Ready<()>,
    ctx: Ctx,
    mut rng: Rng,
    budget: usize,
    parent: Option<Scope>,
) -> BoxFuture<Result<(), Injected>> {
    Box::pin(async move {
        let _live = ctx.enter();
        let plan = Plan::random(&mut rng, budget, ctx.depth);
        if let Some(limit) = plan.limit {
            scope.set_limit(limit);
        }
        // Does nothing unless this task was started with `scope.start`.
        let mut ready = Some(ready);
        let owner = match &parent {
            Some(parent) if plan.adopt => parent,
            _ => &scope,
        };
        let mut held = Vec::new();
        let mut later = Vec::new();
        for (spawned, child) in plan.children.iter().enumerate() {
            match plan.ready_after {
                Some(after) if after == spawned => ready.take().map_or((), |ready| ready.send(())),
                None => drop(ready.take()),
                Some(_) => {}
            }
            if plan.cancel_self_after == Some(spawned) {
                scope.cancel();
            }
            child.pause.wait(&scope).await;
            if let Kind::Nested { drop_after } = child.kind {
                run_nested(&scope, &ctx, child.rng, child.budget, child.policy, drop_after).await;
                continue;
            }
            let Some(handle) = spawn_child(owner, &ctx, child, plan.limit.is_none()).await else {
                continue;
            };
            match (child.cancel, child.reason) {
                (true, true) => handle.cancel_with(CHAOS_REASON),
                (true, false) => handle.cancel(),
                (false, _) => {}
            }
            match child.fate {
                Fate::Drop => drop(handle),
                Fate::Hold => held.push(handle),
                Fate::Await => ctx.ledger.result(handle.await, Sink::Handle, ctx.tree),
                Fate::AwaitLater => later.push(handle),
                Fate::Race(time) => {
                    tokio::select! {
                        result = handle => ctx.ledger.result(result, Sink::Handle, ctx.tree),
                        () = tokio::time::sleep(time) => {}
                    }
                }
                Fate::Start => unreachable!("a started child has no handle"),
            }
        }
        if plan.drain {
            while let Some(err) = scope.next_error().await {
                ctx.ledger.surface(&err, Sink::NextError, ctx.tree);
            }
        }
        for handle in later {
            ctx.ledger.result(handle.await, Sink::Handle, ctx.tree);
        }
        if let Some(ready) = ready.take() {
            ready.send(());
        }
        plan.pause.wait(&scope).await;
        drop(held);
        // A cancelled task's cause names itself or an ancestor: the walk
        // up to the cause never strays out of the task's own line.
        if let Some(cause) = scope.cancel_cause() {
            let origin = match &cause {
                CancelCause::Requested { task, .. }
                | CancelCause::Deadline { task, .. }
                | CancelCause::ParentEnded { task, .. } => Some(task),
                _ => None,
            };
            let path = scope.path();
            if let Some(origin) = origin
                && !(path == &**origin || path.starts_with(&format!("{origin}/")))
            {
                ctx.ledger.book().violations.push(format!(
                    "`{path}` was cancelled with a cause of another line: {cause:?}"
                ));
            }
        }
        match plan.inject {
            Some(_) if plan.cancel_aware && scope.is_cancelled() => Ok(()),
            Some(panic) => ctx.inject(panic, None),
            None => Ok(()),
        }
    })
}

/// Spawns (or starts) `child` on `scope`, which may be the scope of the
/// task's parent.
/// (A child may spawn siblings on `scope` only if it has no limit: a child
/// waiting for a slot of its own parent's limit would wait for itself.)
async fn spawn_child(scope: &Scope, ctx: &Ctx, child: &ChildPlan, adoptable: bool) -> Option<Child<()>> {
    let deeper = ctx.deeper();
    match child.kind {
        Kind::Node | Kind::Nested { .. } => {
            let task = node_task(
                deeper,
                child.rng,
                child.budget,
                child.policy,
                child.timeout,
                adoptable.then(|| scope.clone()),
            );
            if child.shielded {
                spawn(scope, ctx, task.shielded(), child).await
            } else {
                spawn(scope, ctx, task, child).await
            }
        }
        Kind::Hang => {
            let task = taskward::task_with_ready(move |_, ready: Ready<()>| async move {
                let (_live, _never_sent) = (deeper.enter(), ready);
                std::future::pending::<()>().await;
            })
            .named("hang")
            .timeout(child.timeout.unwrap_or(Duration::ZERO));
            spawn(scope, ctx, task, child).await
        }
        Kind::Restart(flavor, backoff) => {
            let restart = ctx.ledger.new_restart(flavor);
            let (inner_rng, budget) = (child.rng, child.budget.min(8));
            let mut task = taskward::restart(move || probe(deeper.clone(), restart, inner_rng, budget));
            task = match flavor {
                RestartFlavor::Unlimited { .. } => task.max_restarts(1, Duration::ZERO),
                RestartFlavor::Budget { budget, permanent } => {
                    let task = task.max_restarts(budget, Duration::MAX);
                    if permanent { task.permanent() } else { task }
                }
            };
            if let Some((min, max)) = backoff {
                task = task.backoff(min, max);
            }
            let mut task = task.named("restart");
            if let Some(limit) = child.timeout {
                task = task.timeout(limit);
            }
            spawn_unstartable(scope, ctx, task, child).await
        }
    }
}

/// Admits `task` to `scope`, or starts it (the handle is then `None`).
async fn spawn<T>(scope: &Scope, ctx: &Ctx, task: T, child: &ChildPlan) -> Option<Child<()>>
where
    T: Startable<Output = (), Ready = ()>,
{
    if let Fate::Start = child.fate {
        let result = scope.start(task).await;
        ctx.ledger.result(result, Sink::Start, ctx.tree);
        return None;
    }
    Some(admit(scope, task, child).await)
}

/// Admits a task that cannot be started (a restart takes no `Ready`): one
/// whose fate is to be started is awaited at once instead (the handle is
/// then `None`).
async fn spawn_unstartable<T: Task<Output = ()>>(
    scope: &Scope,
    ctx: &Ctx,
    task: T,
    child: &ChildPlan,
) -> Option<Child<()>> {
    let handle = admit(scope, task, child).await;
    if let Fate::Start = child.fate {
        ctx.ledger.result(handle.await, Sink::Handle, ctx.tree);
        return None;
    }
    Some(handle)
}

async fn admit<T: Task<Output = ()>>(scope: &Scope, task: T, child: &ChildPlan) -> Child<()> {
    match child.admit {
        Admit::Spawn => scope.spawn(task),
        Admit::Reserve => scope.reserve().await.spawn(task),
        Admit::TrySpawn => scope.try_spawn(task).unwrap_or_else(|task| scope.spawn(task)),
    }
}

/// One incarnation of a restart: runs a small nested tree (so that what
/// the restart takes from it is only the probe's own failure), then fails
/// as the restart's flavour says.
fn probe(ctx: Ctx, restart: usize, rng: Rng, budget: usize) -> impl Task<Output = ()> {
    let index = ctx.ledger.incarnation_made(restart);
    let flavor = ctx.ledger.book().restarts[restart].flavor;
    taskward::task(move |scope: Scope| async move {
        let _live = ctx.enter();
        let mut rng = Rng(rng.0 ^ index as u64);
        let policy = if rng.percent(50) {
            Policy::FailFast
        } else {
            Policy::Supervise
        };
        run_nested(&scope, &ctx, rng.fork(), budget, policy, None).await;
        let fails = match flavor {
            RestartFlavor::Unlimited { fails } => index < fails,
            RestartFlavor::Budget { permanent, .. } => !permanent || rng.percent(50),
        };
        if fails && !scope.is_cancelled() {
            return ctx.inject(rng.percent(25), Some((restart, index)));
        }
        Ok(())
    })
    .named("probe")
}

/// Marks the tree dropped if its `run` future is dropped unfinished.
struct TreeRun {
    ledger: Arc<Ledger>,
    tree: usize,
    finished: bool,
}

impl Drop for TreeRun {
    fn drop(&mut self) {
        if !self.finished {
            self.ledger.tree_dropped(self.tree);
        }
    }
}

/// Runs a random tree inside the body of `scope`'s task, cancelled with
/// `scope` (its `Root`'s token is cancelled when `scope` is), and dropped
/// if `drop_after` passes first.
async fn run_nested(scope: &Scope, ctx: &Ctx, rng: Rng, budget: usize, policy: Policy, drop_after: Option<Duration>) {
    let (tree, live) = ctx.ledger.new_tree(Some(ctx.tree));
    let inner = Ctx {
        ledger: Arc::clone(&ctx.ledger),
        tree,
        live,
        depth: ctx.depth + 1,
    };
    let mut guard = TreeRun {
        ledger: Arc::clone(&ctx.ledger),
        tree,
        finished: false,
    };
    let root = Root::new().grace(Duration::from_millis(2));
    let stop = root.token();
    let run = root.run(node_task(inner, rng, budget, policy, None, None));
    tokio::pin!(run);
    let deadline = tokio::time::sleep(drop_after.unwrap_or(Duration::MAX));
    tokio::pin!(deadline);
    let mut linked = false;
    loop {
        tokio::select! {
            result = &mut run => {
                guard.finished = true;
                ctx.ledger.tree_finished(tree);
                ctx.ledger.result(result, Sink::Run, ctx.tree);
                return;
            }
            () = scope.cancelled(), if !linked => {
                linked = true;
                stop.cancel();
            }
            // `run` is dropped on the way out: the guard marks the tree.
            () = &mut deadline, if drop_after.is_some() => return,
        }
    }
}

// ---------------------------------------------------------------------------
// Rounds

/// The parameters of a round outside its tree.
#[derive(Debug)]
struct Outer {
    budget: usize,
    policy: Policy,
    grace: Duration,
    cancel_after: Option<Duration>,
    drop_after: Option<Duration>,
}

impl Outer {
    fn random(rng: &mut Rng) -> Outer {
        Outer {
            budget: 300 + rng.below(1200),
            policy: if rng.percent(20) {
                Policy::FailFast
            } else {
                Policy::Supervise
            },
            grace: rng.millis(1, 10),
            cancel_after: rng.percent(25).then(|| rng.millis(2, 40)),
            drop_after: rng.percent(10).then(|| rng.millis(5, 60)),
        }
    }
}

/// How long a round may take before it is taken for a hang.
const WATCHDOG: Duration = Duration::from_secs(20);

/// One round: a random tree from `seed`, run on the current runtime, then
/// the invariants. Returns what it saw, or what went wrong.
async fn round(seed: u64, paused: bool) -> Result<Stats, Vec<String>> {
    let metrics = tokio::runtime::Handle::current().metrics();
    let alive_before = metrics.num_alive_tasks();
    let mut rng = Rng(seed);
    let outer = Outer::random(&mut rng);
    let ledger = Arc::new(Ledger::default());
    let (tree, live) = ledger.new_tree(None);
    let ctx = Ctx {
        ledger: Arc::clone(&ledger),
        tree,
        live,
        depth: 0,
    };

    let root = Root::new().grace(outer.grace);
    let stop = root.token();
    let mut guard = TreeRun {
        ledger: Arc::clone(&ledger),
        tree,
        finished: false,
    };
    let run = root.run(node_task(ctx, rng.fork(), outer.budget, outer.policy, None, None));
    let outcome = tokio::time::timeout(WATCHDOG, async {
        tokio::pin!(run);
        let cancel = tokio::time::sleep(outer.cancel_after.unwrap_or(Duration::MAX));
        let drop_run = tokio::time::sleep(outer.drop_after.unwrap_or(Duration::MAX));
        tokio::pin!(cancel, drop_run);
        loop {
            tokio::select! {
                result = &mut run => return Some(result),
                () = &mut cancel, if outer.cancel_after.is_some() && !stop.is_cancelled() => stop.cancel(),
                () = &mut drop_run, if outer.drop_after.is_some() => return None,
            }
        }
    })
    .await;
    match outcome {
        Err(_) => {
            return Err(vec![format!(
                "`run` did not return within {WATCHDOG:?}: a hang ({outer:?})"
            )]);
        }
        Ok(Some(result)) => {
            guard.finished = true;
            ledger.tree_finished(tree);
            ledger.result(result, Sink::Run, tree);
        }
        Ok(None) => {}
    }
    drop(guard);

    // Dropped trees are aborted, which tokio completes a moment later: on
    // one thread in paused time, within a few turns of the scheduler and
    // without the clock moving (a body that is not aborted would still be
    // there); on several threads, within a generous delay.
    let live = || -> Vec<usize> {
        ledger
            .book()
            .trees
            .iter()
            .map(|tree| tree.live.load(Ordering::SeqCst))
            .collect()
    };
    let settled = || live().iter().all(|live| *live == 0) && metrics.num_alive_tasks() == alive_before;
    let mut turns = 0;
    while !settled() && turns < 1000 {
        tokio::task::yield_now().await;
        turns += 1;
    }
    if !paused {
        for _ in 0..5000 {
            if settled() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    if !settled() {
        let alive: Vec<(usize, usize)> = live().into_iter().enumerate().filter(|(_, live)| *live > 0).collect();
        ledger.violation(format!(
            "after the round, bodies still alive (tree, count): {alive:?}; tokio tasks alive: {} (before: {alive_before})",
            metrics.num_alive_tasks()
        ));
    }
    let stats = ledger.check();
    let violations = std::mem::take(&mut ledger.book().violations);
    if violations.is_empty() {
        Ok(stats)
    } else {
        Err(violations)
    }
}

/// How rounds are run.
#[derive(Clone, Copy, Debug)]
enum Flavor {
    /// A 2-worker multi-thread runtime, real time.
    MultiThread,
    /// A current-thread runtime with paused time.
    PausedCurrentThread,
}

fn runtime(flavor: Flavor) -> tokio::runtime::Runtime {
    match flavor {
        Flavor::MultiThread => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build(),
        Flavor::PausedCurrentThread => tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build(),
    }
    .unwrap()
}

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    let value = value.trim();
    match value.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => value.parse().ok(),
    }
    .or_else(|| panic!("{name}={value} is not a number"))
}

/// The seeds of a test: the forced one, or `rounds` derived from the base.
fn seeds(test: u64, rounds: usize) -> Vec<u64> {
    if let Some(seed) = env_u64("TASKWARD_CHAOS_SEED") {
        return vec![seed];
    }
    let rounds = env_u64("TASKWARD_CHAOS_ROUNDS").map_or(rounds, |rounds| rounds as usize);
    let mut base = Rng(env_u64("TASKWARD_CHAOS_BASE").unwrap_or(0x7A5C_3A2D) ^ test);
    (0..rounds).map(|_| base.next()).collect()
}

/// Runs the rounds of one test, each on a fresh runtime; fails with the
/// seed of every failed round and what went wrong.
fn chaos(test: &str, flavor: Flavor, seeds: Vec<u64>) -> Stats {
    common::quiet_panics("chaos: injected");
    format_every_warning();
    let mut total = Stats::default();
    let mut failed = Vec::new();
    for seed in seeds {
        let runtime = runtime(flavor);
        match runtime.block_on(round(seed, matches!(flavor, Flavor::PausedCurrentThread))) {
            Ok(stats) => total.add(&stats),
            Err(violations) => {
                let shown: Vec<&String> = violations.iter().take(10).collect();
                failed.push(format!(
                    "seed {seed:#x} ({flavor:?}): {} violation(s):\n    {}\n  reproduce: TASKWARD_CHAOS_SEED={seed:#x} cargo test --test chaos {test}",
                    violations.len(),
                    shown.iter().map(|line| line.as_str()).collect::<Vec<_>>().join("\n    ")
                ));
            }
        }
    }
    eprintln!("{test}: {total:?}");
    assert!(
        failed.is_empty(),
        "{} round(s) failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
    total
}

/// Installs, once for the process, a subscriber that formats the fields of
/// every warning and error event: the runtime's failure events then run the
/// `Display` of the injected failures, some of which panic.
fn format_every_warning() {
    #[cfg(feature = "tracing")]
    {
        static INSTALL: std::sync::Once = std::sync::Once::new();
        INSTALL.call_once(|| {
            let subscriber = common::Formatting {
                level: tracing::Level::WARN,
            };
            tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");
        });
    }
}

/// Checks that the rounds explored what the suite claims (a suite that
/// never injects anything cannot fail).
fn assert_explored(stats: &Stats, min_tasks: usize) {
    if env_u64("TASKWARD_CHAOS_SEED").is_some() {
        return;
    }
    assert!(stats.tasks >= min_tasks, "only {} tasks", stats.tasks);
    assert!(
        stats.deep_rounds * 2 >= stats.rounds,
        "only {} rounds {MIN_DEPTH} deep",
        stats.deep_rounds
    );
    assert!(
        stats.injected > stats.rounds * 10,
        "only {} failures injected",
        stats.injected
    );
    assert!(stats.panics > 0, "no panic injected");
    assert!(stats.retried_by_restart > 0, "no failure retried by a restart");
    assert!(stats.restarts_given_up > 0, "no restart gave up");
    assert!(stats.dropped_trees > 0, "no tree dropped");
    for sink in [Sink::Handle, Sink::NextError, Sink::Run] {
        assert!(
            stats.sinks.get(&sink).is_some_and(|count| *count > 0),
            "nothing reached {sink:?}"
        );
    }
    for kind in [
        ErrorKind::Failed,
        ErrorKind::Panicked,
        ErrorKind::TimedOut,
        ErrorKind::Cancelled,
    ] {
        assert!(
            stats.kinds.get(&kind).is_some_and(|count| *count > 0),
            "no {kind:?} failure seen"
        );
    }
}

#[test]
fn random_trees_on_a_multi_thread_runtime_keep_every_invariant() {
    let stats = chaos(
        "random_trees_on_a_multi_thread_runtime_keep_every_invariant",
        Flavor::MultiThread,
        seeds(1, 100),
    );
    assert_explored(&stats, 10_000);
}

#[test]
fn random_trees_in_paused_time_keep_every_invariant() {
    let stats = chaos(
        "random_trees_in_paused_time_keep_every_invariant",
        Flavor::PausedCurrentThread,
        seeds(2, 100),
    );
    assert_explored(&stats, 10_000);
}

/// The failure of the first child to fail in `fail_fast_rounds`.
#[derive(Debug)]
struct Doom;

impl fmt::Display for Doom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("doom")
    }
}

impl std::error::Error for Doom {}

/// Under fail-fast, the scope's error is the failure that cancelled it, on
/// every run: random numbers of siblings that fail once cancelled, their
/// handles and the failing child's dropped at once, held and dropped late
/// (so that the failures reach the scope in any order), or the failing
/// child spawned first or last, on both runtimes.
#[test]
fn under_fail_fast_the_failure_that_cancelled_the_scope_is_its_error_on_every_run() {
    for seed in seeds(3, 200) {
        let mut rng = Rng(seed);
        let flavor = if rng.percent(50) {
            Flavor::MultiThread
        } else {
            Flavor::PausedCurrentThread
        };
        let siblings = 1 + rng.below(300);
        let hold = rng.percent(50);
        let doom_first = rng.percent(30);
        let runtime = runtime(flavor);
        let err = runtime
            .block_on(taskward::run(taskward::task(move |scope: Scope| async move {
                let mut held = Vec::new();
                let mut doom = None;
                if doom_first {
                    doom = Some(scope.spawn(async { Err::<(), _>(Doom) }));
                }
                for i in 0..siblings {
                    let sibling = scope.spawn(taskward::task(move |sibling: Scope| async move {
                        sibling.cancelled().await;
                        Err::<(), _>(Injected(1 + 4 * i as u64))
                    }));
                    if hold {
                        held.push(sibling);
                    }
                }
                if !doom_first {
                    doom = Some(scope.spawn(async { Err::<(), _>(Doom) }));
                }
                if hold {
                    // The siblings' failures reach the scope before the
                    // held failure of the child that cancelled it.
                    scope.cancelled().await;
                    while held.iter().any(|sibling| !sibling.is_finished()) {
                        tokio::task::yield_now().await;
                    }
                    drop(held);
                } else {
                    drop(held);
                }
                drop(doom);
                Ok::<_, Error>(())
            })))
            .expect_err("the scope failed");
        assert!(
            err.downcast_ref::<Doom>().is_some(),
            "seed {seed:#x} ({flavor:?}, {siblings} siblings, hold {hold}, doom first {doom_first}): the error is {:?}",
            err.kind()
        );
        assert_eq!(err.related().len(), siblings, "seed {seed:#x}");
    }
}
