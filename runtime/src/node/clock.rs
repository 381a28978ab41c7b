//! The time a task is spawned at, for the age a tree snapshot shows: read
//! once per poll of the spawning body (see `SpawnClock`).

use std::cell::Cell;

use tokio::time::Instant;

use super::Shared;

std::thread_local! {
    /// The polls of bodies on this thread: how many are under way (nested,
    /// as when a root runs inside a task) in the low bits, how many began
    /// or ended above them. Every begin and end changes it.
    static POLLS: Cell<u64> = const { Cell::new(0) };
    /// The clock as the first spawn of a poll read it.
    static SPAWN_CLOCK: Cell<SpawnClock> = const { Cell::new(SpawnClock { poll: 0, epoch: None, offset: 0 }) };
}

impl Shared {
    /// The start of a task spawned now: `now`, read once per poll of the
    /// spawning body (see `SpawnClock`).
    #[inline]
    pub(super) fn spawn_time(&self) -> u64 {
        let polls = POLLS.get();
        if polls & SpawnClock::DEPTH == 0 {
            return self.now();
        }
        let poll = polls >> SpawnClock::DEPTH_BITS;
        match SPAWN_CLOCK.get() {
            SpawnClock {
                poll: read,
                epoch,
                offset,
            } if read == poll && epoch == Some(self.epoch) => offset,
            _ => {
                let offset = self.now();
                SPAWN_CLOCK.set(SpawnClock {
                    poll,
                    epoch: Some(self.epoch),
                    offset,
                });
                offset
            }
        }
    }
}

/// When the children spawned in one poll of a body started: the clock is
/// read by the first of them and shared by the others (a loop spawning a
/// thousand workers reads it once, where it cost about 2% of each spawn).
/// A poll is short, so the age a snapshot shows is off by at most its
/// length. A spawn outside any body's poll (from a scope moved into a
/// plain tokio task) reads the clock itself.
#[derive(Clone, Copy)]
pub(super) struct SpawnClock {
    /// The poll it was read in (`POLLS` above the depth).
    poll: u64,
    /// The start of the tree it was read for.
    epoch: Option<Instant>,
    /// The reading, as an offset from `epoch`.
    offset: u64,
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
        let first = shared.spawn_time();
        pass_time();
        let second = shared.spawn_time();
        SpawnClock::leave();
        assert_eq!(first, second);
        // The next poll reads the clock again.
        SpawnClock::enter();
        let next = shared.spawn_time();
        SpawnClock::leave();
        assert!(next >= first + 2_000_000, "{next} is not 2 ms after {first}");
    }

    #[test]
    fn a_spawn_outside_any_poll_reads_the_clock() {
        let (_runtime, shared) = shared();
        SpawnClock::enter();
        let inside = shared.spawn_time();
        SpawnClock::leave();
        pass_time();
        let outside = shared.spawn_time();
        pass_time();
        let later = shared.spawn_time();
        assert!(outside >= inside + 2_000_000, "{outside} is not 2 ms after {inside}");
        assert!(later >= outside + 2_000_000, "{later} is not 2 ms after {outside}");
    }

    #[test]
    fn a_reading_is_for_one_tree_only() {
        let (_runtime, first) = shared();
        pass_time();
        let (_other, second) = shared();
        SpawnClock::enter();
        let in_first = first.spawn_time();
        let in_second = second.spawn_time();
        SpawnClock::leave();
        // The second tree started 2 ms later: its offsets are smaller.
        assert!(in_first >= in_second + 2_000_000, "{in_first} vs {in_second}");
    }
}
