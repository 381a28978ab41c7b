//! Structured concurrency for tokio.
//!
//! > A task that starts another task is responsible for it: it waits for it,
//! > it can stop it, and it receives its errors.
//!
//! taskward makes that rule the default. A worker is an `async fn` marked
//! [`#[supervised]`](supervised): it receives its own [`Scope`] (to start
//! children) and [`CancellationToken`] (to be told to stop). The runtime
//! joins every child before its parent's result is delivered, cancels a
//! subtree on demand or on failure, turns panics into errors, and routes
//! every child failure to exactly one place.
//!
//! ```
//! use taskward::{supervised, CancellationToken, Error, Scope};
//!
//! #[supervised]
//! async fn worker(token: CancellationToken, id: u64) -> Result<u64, std::io::Error> {
//!     if token.is_cancelled() {
//!         return Ok(0);
//!     }
//!     Ok(id * 10)
//! }
//!
//! #[supervised(name = "pool")]
//! async fn pool(scope: &Scope, workers: u64) -> Result<u64, Error> {
//!     let handles: Vec<_> = (0..workers).map(|id| scope.spawn(worker(id))).collect();
//!     let mut total = 0;
//!     for handle in handles {
//!         total += handle.await?;
//!     }
//!     Ok(total)
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let total = taskward::run(pool(4)).await.unwrap();
//! assert_eq!(total, 60);
//! # }
//! ```
//!
//! # The rules
//!
//! 1. **Join.** A task's result is delivered only after every task it
//!    spawned, and theirs, has finished, even when its body returns early.
//! 2. **Cancellation.** Each scope has a token that is a child of its
//!    parent's. Cancelling a scope tells its body and every descendant to
//!    stop (cooperatively). When a task has finished, its token is cancelled
//!    too, so whatever else was handed it learns that its owner is gone.
//! 3. **Errors are results, delivered exactly once**: to the [`Child`]
//!    handle if it is still held, else to [`Scope::next_error`], else as the
//!    parent's own failure when the parent's body ends.
//! 4. **Policies.** Under [`Policy::FailFast`] (the default) the first
//!    failing child cancels the scope; under [`Policy::Supervise`] it leaves
//!    its siblings alone.
//! 5. **Panics** become [`ErrorKind::Panicked`] errors with the task's path.
//! 6. **No leaks.** Dropping a running task's future aborts its subtree.
//! 7. **Producers close channels.** A task's captured values, such as channel
//!    senders, are dropped as soon as its body ends, so a consumer's `recv()`
//!    loop ends when the last producer is done.
//!
//! # Tasks
//!
//! A [`Task`] is lazy: nothing runs until it is spawned with
//! [`Scope::spawn`] or run as the root of a tree with [`run`]. A task is the
//! call of a `#[supervised]` function, any `Send + 'static` future returning
//! `Result<T, E>` or `()`, or a closure given to [`task()`].
//!
//! # Supervision
//!
//! - [`Root`] runs a tree with a token to stop it from outside, a grace
//!   period after which what still runs is aborted, and shutdown on Ctrl-C
//!   / SIGTERM.
//! - [`Task::timeout`] gives any task a deadline; past it the task is
//!   cancelled, then aborted after the grace period, and reports
//!   [`ErrorKind::TimedOut`].
//! - [`restart()`] re-runs a failing task (OTP's `one_for_one`), with
//!   backoff and a restart budget.
//! - [`Scope::set_limit`] bounds how many children of a scope run at once;
//!   [`Scope::reserve`] and [`Scope::try_spawn`] add backpressure.
//! - [`Scope::start`] waits until a child says it is [`Ready`] (a server's
//!   bound address), then leaves it running.

#![warn(missing_docs)]

/// Turns an `async fn` into a supervised task.
///
/// The function may take a `&Scope` (or `Scope`) parameter, a
/// `CancellationToken` parameter and a [`Ready<T>`](Ready) parameter (for
/// [`Scope::start`]), at any position; the runtime supplies them and they
/// disappear from the signature callers see. Calling the function returns a
/// lazy [`Task`] that runs once it is spawned or run.
///
/// ```
/// use taskward::{supervised, CancellationToken, Scope};
///
/// #[supervised]
/// async fn split(scope: &Scope, token: CancellationToken, items: Vec<u32>) -> Result<u32, taskward::Error> {
///     if token.is_cancelled() || items.len() <= 1 {
///         return Ok(items.iter().sum());
///     }
///     let (left, right) = items.split_at(items.len() / 2);
///     let left = scope.spawn(split(left.to_vec()));
///     let right = scope.spawn(split(right.to_vec()));
///     Ok(left.await? + right.await?)
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// assert_eq!(taskward::run(split((1..=10).collect())).await.unwrap(), 55);
/// # }
/// ```
///
/// Arguments: `name = "..."` (the task's name, by default the function's),
/// `policy = fail_fast | supervise` (default `fail_fast`), and
/// `crate = path` (where the `taskward` crate is, for re-exporters).
pub use taskward_macros::supervised;

pub use taskward_runtime::{
    BoxError, CancellationToken, Child, Configured, Error, ErrorKind, Permit, Policy, Ready, Restart, Root, Scope,
    Supervised, Task, TaskFn, TaskResult, restart, run, task,
};

/// What the code generated by `#[supervised]` refers to. Not public API.
#[doc(hidden)]
pub mod __private {
    pub use taskward_runtime::__private::*;
}
