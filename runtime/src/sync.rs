//! The mutex of the bookkeeping of scopes and child handles: std's, or
//! loom's when the crate's unit tests are built with `--cfg loom`, so that
//! the loom model of the scope (`node/loom_model.rs`) runs this very code
//! and explores its interleavings.

#[cfg(all(test, loom))]
pub(crate) use loom::sync::atomic::{AtomicU8, AtomicU32, Ordering};
#[cfg(all(test, loom))]
pub(crate) use loom::sync::{Mutex, MutexGuard};
#[cfg(not(all(test, loom)))]
pub(crate) use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};
#[cfg(not(all(test, loom)))]
pub(crate) use std::sync::{Mutex, MutexGuard};

/// Where loom may switch threads in a step made of code it does not see:
/// tokio-util's `CancellationToken` uses std's mutex, so without this
/// point a token's `cancel` and the store after it would look like one
/// step to the model, which then could not tell their order.
#[cfg(all(test, loom))]
#[inline]
pub(crate) fn switch_point() {
    loom::thread::yield_now();
}

/// Nothing outside the loom model (see the loom version).
#[cfg(not(all(test, loom)))]
#[inline(always)]
pub(crate) fn switch_point() {}
