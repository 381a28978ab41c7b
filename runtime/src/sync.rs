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
