//! The node's state word: four bytes beside its lock, each with one writer
//! discipline, and every bit of them side by side.
//!
//! | byte     | bits                                   | written by                              |
//! |----------|----------------------------------------|-----------------------------------------|
//! | `alarm`  | `KILL`, `ABORT`, `RELEASED`, `ASKED`, `TOKEN_CANCELLED` | anyone (`kill`, `abort`, `child_done`, `Child::abort`, `cancel`); read at every poll |
//! | `handle` | `HELD`, `STORED`, `DROPPED`, `TAKEN`   | the task (`STORED`) and its `Child` (`DROPPED`, `TAKEN`) |
//! | `flags`  | `Phase`, `ABORTED`, `CANCELLED`, `TIMED_OUT`, `SHIELDED`, `HANDED_UP` | anyone, under the node's lock only |
//! | `step`   | `Stage`, `LAZY`, `KILLED`, `DELIVERED`, `WAKER_KEPT` | the task itself only (its polls and drops) |
//!
//! The two lifecycles differ in who may look: `Phase` is what the *scope*
//! is doing (taking spawns, joining, closed), read by spawns and joins from
//! any thread under the lock; `Stage` is where the task's *future* stands,
//! seen by that future alone. The count of children (`Node::members`) is
//! a word of its own, with the `LIMITED` bit.

use super::Node;
use super::family::State;
use crate::sync::Ordering;

/// `Node::alarm`: the task's body is to be dropped where it stands (its
/// joins go on).
pub(super) const KILL: u8 = 1;
/// `Node::alarm`: the task's future is to be dropped, bookkeeping and all,
/// as tokio drops an aborted task.
pub(super) const ABORT: u8 = 2;
/// `Node::alarm`: the task is gone for its parent (`child_done`); its entry
/// in the parent's `children` is dead.
pub(super) const RELEASED: u8 = 4;
/// `Node::alarm`, with `ABORT`: the abort was asked for by the task's owner
/// (`Child::abort`), so the `Cancelled` it causes is the owner's to see,
/// never escalated, and does not cancel the owner's scope.
pub(super) const ASKED: u8 = 8;
/// `Node::alarm`: the task's token is cancelled, and so is every token made
/// from it (its children's, unless shielded): set once a `cancel` of it has
/// returned (tokio-util cancels the whole subtree under the token's lock
/// before that). A task that closes after it need not cancel its own token
/// again, which takes that token's lock (see `Node::close_token`).
pub(super) const TOKEN_CANCELLED: u8 = 16;

/// `Node::handle`: the `Child` handle is there, and no failure was offered
/// yet.
pub(super) const HELD: u8 = 0;
/// `Node::handle`: a failure waits in the state for the handle.
pub(super) const STORED: u8 = 1;
/// `Node::handle`: the handle was dropped; failures go to the parent.
pub(super) const DROPPED: u8 = 2;
/// `Node::handle`: the handle has taken the result.
pub(super) const TAKEN: u8 = 4;

/// `Node::members`: a limit is in use (`set_limit`, `reserve`), so that
/// the children's slots are counted; set once, with the count of the
/// children running then, and never cleared. It shares the word of the
/// count so that a child that finishes sees, in the same atomic step, whether
/// it must give its slot back. (2^31 children alive at once would take
/// hundreds of gigabytes: the count never reaches it.)
pub(super) const LIMITED: u32 = 1 << 31;

/// `Node::flags`, changed and read under the node's lock only: the
/// `Phase` in the low bits, then the flags below.
pub(super) const PHASE: u8 = 0b11;
/// `Node::flags`: the node's future was dropped before it finished.
pub(super) const ABORTED: u8 = 4;
/// `Node::flags`: the task was cancelled before its token was made: the
/// token is made cancelled.
pub(super) const CANCELLED: u8 = 8;
/// `Node::flags`: the task's deadline passed.
pub(super) const TIMED_OUT: u8 = 16;
/// `Node::flags`: the task's token is not a child of its parent's
/// (`Task::shielded`). Set when the node is made, never changed.
pub(super) const SHIELDED: u8 = 32;
/// `Node::flags`: an aborted node has handed its failures to its parent
/// (`hand_up`): a failure routed to it now goes on up.
pub(super) const HANDED_UP: u8 = 64;

/// `Node::flags`, low bits: the scope's lifecycle, what a spawn, a routed
/// failure or `next_error` meets. Moved forward only, under the node's
/// lock, by `end_body` (to `Joining`, or `Closed` for a task that never had
/// a child), `poll_join` (`Closed`), `abort` and `refuse` (`Closed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Phase {
    /// The body runs; failures wait in `pending` for `next_error`.
    Body = 0,
    /// The body has ended; failures escalate into `failures`.
    Joining = 1,
    /// Body and children are done: nothing can be spawned any more.
    Closed = 2,
}

/// `Node::step`: where the task's `Driver` stands. Only the task itself
/// reads and writes it, from its polls and its drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum Stage {
    /// Waiting in line for a slot of the parent's limit.
    Queued = 0,
    /// About to run the body for the first time.
    Start = 1,
    Body = 2,
    Joining = 3,
    Done = 4,
}

/// `Node::step`: the stage, in the low bits.
pub(super) const STAGE: u8 = 0b111;
/// `Node::step`: the body takes its scope at its first poll (see
/// `first_poll_scope`).
pub(super) const LAZY: u8 = 8;
/// `Node::step`: the body was dropped by a kill.
pub(super) const KILLED: u8 = 16;
/// `Node::step`: the child's result was delivered (see `ChildTask`).
pub(super) const DELIVERED: u8 = 32;
/// `Node::step`: the waker of the child's tokio task is kept (see
/// `Node::keep_driver_waker`).
pub(super) const WAKER_KEPT: u8 = 64;

impl Node {
    /// The task's phase. Under the node's lock (`_locked`).
    #[inline]
    pub(crate) fn phase(&self, _locked: &State) -> Phase {
        match self.flags.load(Ordering::Relaxed) & PHASE {
            0 => Phase::Body,
            1 => Phase::Joining,
            _ => Phase::Closed,
        }
    }

    /// Moves the task to `phase`. Under the node's lock (`_locked`).
    #[inline]
    pub(super) fn set_phase(&self, _locked: &mut State, phase: Phase) {
        let flags = self.flags.load(Ordering::Relaxed);
        self.flags.store((flags & !PHASE) | phase as u8, Ordering::Relaxed);
    }

    /// Whether `flag` is set. Under the node's lock (`_locked`).
    #[inline]
    pub(super) fn has(&self, _locked: &State, flag: u8) -> bool {
        self.flags.load(Ordering::Relaxed) & flag != 0
    }

    /// Sets `flag`. Under the node's lock (`_locked`).
    #[inline]
    pub(super) fn mark(&self, _locked: &mut State, flag: u8) {
        self.flags.fetch_or(flag, Ordering::Relaxed);
    }

    #[inline]
    pub(super) fn stage(&self) -> Stage {
        match self.step.load(Ordering::Relaxed) & STAGE {
            0 => Stage::Queued,
            1 => Stage::Start,
            2 => Stage::Body,
            3 => Stage::Joining,
            _ => Stage::Done,
        }
    }

    #[inline]
    pub(super) fn set_stage(&self, stage: Stage) {
        let step = self.step.load(Ordering::Relaxed);
        self.step.store((step & !STAGE) | stage as u8, Ordering::Relaxed);
    }

    #[inline]
    pub(super) fn step_has(&self, bit: u8) -> bool {
        self.step.load(Ordering::Relaxed) & bit != 0
    }

    #[inline]
    pub(super) fn step_set(&self, bit: u8, on: bool) {
        let step = self.step.load(Ordering::Relaxed);
        self.step
            .store(if on { step | bit } else { step & !bit }, Ordering::Relaxed);
    }
}
