//! The time a task is spawned at, for the age a tree snapshot shows, and
//! whether its span is wanted: read once per poll of the spawning body
//! (see `SpawnClock`).

use std::cell::Cell;

use tokio::time::Instant;

use super::Shared;
use crate::trace;

std::thread_local! {
    /// The polls of bodies on this thread: how many are under way (nested,
    /// as when a root runs inside a task) in the low bits, how many began
    /// or ended above them. Every begin and end changes it.
    static POLLS: Cell<u64> = const { Cell::new(0) };
    /// The clock, and tracing's level, as the first spawn of a poll read them.
    static SPAWN_CLOCK: Cell<SpawnClock> = const {
        Cell::new(SpawnClock {
            poll: 0,
            epoch: None,
            stamp: Stamp { at: 0, spans: false },
        })
    };
}

impl Shared {
    /// The start of a task spawned now (`now`), and whether a subscriber
    /// wants its span (`trace::spans_wanted`): read once per poll of the
    /// spawning body (see `SpawnClock`).
    #[inline]
    pub(super) fn spawn_stamp(&self) -> Stamp {
        let polls = POLLS.get();
        if polls & SpawnClock::DEPTH == 0 {
            return self.stamp_now();
        }
        let poll = polls >> SpawnClock::DEPTH_BITS;
        match SPAWN_CLOCK.get() {
            SpawnClock {
                poll: read,
                epoch,
                stamp,
            } if read == poll && epoch == Some(self.epoch) => stamp,
            _ => {
                let stamp = self.stamp_now();
                SPAWN_CLOCK.set(SpawnClock {
                    poll,
                    epoch: Some(self.epoch),
                    stamp,
                });
                stamp
            }
        }
    }

    /// `spawn_stamp`, read now.
    pub(super) fn stamp_now(&self) -> Stamp {
        Stamp {
            at: self.now(),
            spans: trace::spans_wanted(),
        }
    }
}

/// What the spawns of one poll share (see `SpawnClock`).
#[derive(Clone, Copy)]
pub(crate) struct Stamp {
    /// When the task was spawned, as an offset from its tree's start.
    pub(super) at: u64,
    /// Whether a subscriber wants the task's span.
    pub(super) spans: bool,
}

/// When the children spawned in one poll of a body started, and whether
/// their spans are wanted: read by the first of them and shared by the
/// others (a loop spawning a thousand workers reads them once). The clock
/// cost about 2% of each spawn. tracing's level is an atomic that shares
/// its cache line with tokio's task id counter, which every spawn writes:
/// read at every spawn of a tree spawning on both workers, that one load
/// took 13% of the spawn's own samples (benches/PROFILE-NOTES.md, session
/// 13).
/// A poll is short, so the age a snapshot shows is off by at most its
/// length, and a subscriber installed during a poll sees the spans of the
/// tasks spawned from the next one. A spawn outside any body's poll (from
/// a scope moved into a plain tokio task) reads both itself.
#[derive(Clone, Copy)]
pub(super) struct SpawnClock {
    /// The poll it was read in (`POLLS` above the depth).
    poll: u64,
    /// The start of the tree it was read for.
    epoch: Option<Instant>,
    /// The reading: the clock, as an offset from `epoch`, and tracing's
    /// level.
    stamp: Stamp,
}

impl SpawnClock {
    const DEPTH_BITS: u32 = 16;
    const DEPTH: u64 = (1 << Self::DEPTH_BITS) - 1;

    /// A body's poll begins: the spawns it makes share one reading.
    #[inline]
    pub(super) fn enter() {
        POLLS.set(POLLS.get().wrapping_add((1 << Self::DEPTH_BITS) + 1));
    }

    /// The body's poll has ended (returned or panicked): the next spawn on
    /// this thread reads the clock again.
    #[inline]
    pub(super) fn leave() {
        POLLS.set(POLLS.get().wrapping_add((1 << Self::DEPTH_BITS) - 1));
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::time::Duration;

    use super::{Shared, SpawnClock};

    fn shared() -> (tokio::runtime::Runtime, Shared) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let shared = Shared::new(runtime.handle().clone(), None);
        (runtime, shared)
    }

    /// Sleeps long enough for any clock to move.
    fn pass_time() {
        std::thread::sleep(Duration::from_millis(2));
    }

    #[test]
    fn the_spawns_of_one_poll_share_one_reading() {
        let (_runtime, shared) = shared();
        SpawnClock::enter();
        let first = shared.spawn_stamp().at;
        pass_time();
        let second = shared.spawn_stamp().at;
        SpawnClock::leave();
        assert_eq!(first, second);
        // The next poll reads the clock again.
        SpawnClock::enter();
        let next = shared.spawn_stamp().at;
        SpawnClock::leave();
        assert!(next >= first + 2_000_000, "{next} is not 2 ms after {first}");
    }

    #[test]
    fn a_spawn_outside_any_poll_reads_the_clock() {
        let (_runtime, shared) = shared();
        SpawnClock::enter();
        let inside = shared.spawn_stamp().at;
        SpawnClock::leave();
        pass_time();
        let outside = shared.spawn_stamp().at;
        pass_time();
        let later = shared.spawn_stamp().at;
        assert!(outside >= inside + 2_000_000, "{outside} is not 2 ms after {inside}");
        assert!(later >= outside + 2_000_000, "{later} is not 2 ms after {outside}");
    }

    #[test]
    fn a_reading_is_for_one_tree_only() {
        let (_runtime, first) = shared();
        pass_time();
        let (_other, second) = shared();
        SpawnClock::enter();
        let in_first = first.spawn_stamp().at;
        let in_second = second.spawn_stamp().at;
        SpawnClock::leave();
        // The second tree started 2 ms later: its offsets are smaller.
        assert!(in_first >= in_second + 2_000_000, "{in_first} vs {in_second}");
    }
}
