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
//!   bound address), then leaves it running; the type of the value comes
//!   from the task's `Ready<T>` ([`Startable`]).
//!
//! # Features
//!
//! - `tracing` (on by default): every task runs in a `tracing` span
//!   carrying its path, and failures, escalations and aborts are `tracing`
//!   events. Without it taskward does not depend on `tracing`.
//!
//! On docs.rs every feature is on, and items that need one say which.

#![warn(missing_docs)]
// docs.rs builds with `--cfg docsrs` on nightly: show which feature an item needs.
#![cfg_attr(docsrs, feature(doc_cfg))]

/// Turns an `async fn` into a supervised task.
///
/// The function may take a `&Scope` (or `Scope`) parameter, a
/// `CancellationToken` parameter and a [`Ready<T>`](Ready) parameter (for
/// [`Scope::start`], which then returns a `T`: see [`Startable`]), at any
/// position; the runtime supplies them and they disappear from the
/// signature callers see. Calling the function runs
/// nothing: it returns a lazy [`Task`] (a [`Supervised`]) that runs once it is
/// spawned with [`Scope::spawn`] or run as the root of a tree with [`run`].
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
/// # What the rewrite does
///
/// This function:
///
/// ```ignore
/// /// Sums the sizes of `files`.
/// #[supervised(name = "sizes")]
/// pub async fn sizes(scope: &Scope, token: CancellationToken, files: Vec<PathBuf>) -> io::Result<u64> {
///     // body
/// }
/// ```
///
/// becomes this, where `__private` is really `::taskward::__private` (or
/// the path given with `crate = ...`) and the `__taskward_` locals are
/// hygienic, so the body cannot name them (a test of `taskward-macros`
/// expands the example above and compares it with this block):
///
/// ```ignore
/// /// Sums the sizes of `files`.
/// pub fn sizes(files: Vec<PathBuf>) -> __private::Supervised<io::Result<u64>> {
///     {
///         let __taskward_body = __private::check_send(async move {
///             let files = files;
///             let scope: __private::Scope = __private::scope();
///             let token: CancellationToken = __private::token(&scope);
///             let scope: &Scope = __private::scope_ref(&scope);
///             if let __private::Option::Some(__taskward_never) = __private::Option::None::<io::Result<u64>> {
///                 return __taskward_never;
///             }
///             {
///                 // body
///             }
///         });
///         __private::Supervised::<io::Result<u64>>::new_with_token(&"sizes", __private::Policy::FailFast, __taskward_body)
///     }
/// }
/// ```
///
/// - `async` goes, and so do the scope and token parameters: the caller
///   passes only the others (`sizes(files)`).
/// - The function returns [`Supervised<R>`](Supervised), where `R` is the
///   body's return type. It is a named type, not an `impl Trait`, so that a
///   supervised function can spawn itself.
/// - The call makes the body at once, an `async move` block holding the
///   arguments, and the constructor (here `new_with_token`) boxes it: the
///   one allocation of a call, and a spawn moves the body back out of the
///   box. Nothing runs until the task is spawned. At its first poll the
///   body moves every argument in (so that, as with an `async fn`, each
///   lives until the body ends, even one the body never names:
///   `_permit: OwnedSemaphorePermit` holds its permit for the whole task),
///   takes its scope from the runtime (`__private::scope()`) and binds the
///   scope and token parameters from it. A function that has neither (nor a
///   [`Ready`] parameter) skips that line and is made with
///   `Supervised::new_unscoped`: the runtime then hands its body no scope,
///   and its task holds no second reference to its node while it runs. One
///   that has a token parameter is made with `Supervised::new_with_token`:
///   its token is made when it is spawned, by the spawning task, rather
///   than at its first poll (unless it waits in line for a slot of its
///   scope's limit; its value is the same either way). The `if let` that
///   never runs fixes the block's type for `?` and `return`; then the body
///   runs, unchanged. Its future must be `Send` (it may run on any worker
///   thread: `check_send` says so at `async`).
/// - The function is not `#[must_use]`, its `Supervised` value is: a call
///   left unused is one warning.
/// - Attributes, doc comments, visibility, generics and where-clauses are
///   kept. `#[tracing::instrument]` may be written above or below
///   `#[supervised]`: either way it instruments the body (inside the task's
///   own span) and sees the parameters as written, so `skip(scope)` works.
///   [`Supervised`] is `#[must_use]`: a call left unused is a warning.
///
/// # Accepted signatures
///
/// - An `async fn` with a body: a free function, or an associated function
///   of an `impl` block, which may take `self` (or `mut self`) or
///   `self: Arc<Self>`.
/// - At most one scope parameter, `&Scope` or `Scope`, and at most one token
///   parameter, `CancellationToken`, anywhere in the list (two under
///   exclusive `#[cfg]`s are fine; a parameter compiled out is not bound).
///   They are recognised by their type's name, written bare (`Scope`) or
///   under taskward's path (`taskward::Scope`, the `crate = path`); the
///   same name under another path (`oauth::Scope`) is an ordinary
///   parameter. Under another name (`use taskward::Scope as S`, a type
///   alias), mark the parameter: `#[scope] s: &S`, `#[token] t: Token`,
///   `#[ready] up: Port`.
///
/// ```
/// use taskward::{supervised, CancellationToken, Scope as S};
///
/// type Stop = CancellationToken;
///
/// #[supervised]
/// async fn marked(#[scope] scope: &S, #[token] stop: Stop) -> Result<bool, std::io::Error> {
///     Ok(stop.is_cancelled() || scope.is_cancelled())
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// assert!(!taskward::run(marked()).await.unwrap());
/// # }
/// ```
/// - Other parameters own their data: `String`, `Vec<T>`, `Arc<T>`,
///   `&'static str`, your own types. A task runs after the call that creates
///   it returns, so it cannot borrow from the caller. Type parameters need
///   `Send + 'static`.
/// - The return type is `Result<T, E>` with `T: Send + 'static` and
///   `E: Into<Box<dyn std::error::Error + Send + Sync>>` (so
///   `std::io::Result<T>`, `anyhow::Result<T>` and your own error types all
///   work), or nothing (`()`). See [`TaskResult`].
///
/// Everything else is a compile error that points at the offending tokens
/// and says what to write instead: a function that is not `async`;
/// `const`, `unsafe`, `extern "ABI"` or variadic functions; `&self`,
/// `&mut self` and borrowed parameters (`&str`, `&T`, a lifetime); lifetime
/// parameters; `impl Trait` parameters or results; a second scope or token
/// parameter; `&mut Scope` or `&CancellationToken`; any other item (a
/// struct, an `impl` block, a closure: use [`task()`] for closures). For
/// example:
///
/// ```compile_fail
/// # use taskward::supervised;
/// #[supervised]
/// async fn greet(name: &str) -> Result<String, std::io::Error> {
///     // error: a supervised task cannot take borrowed parameters: [...]; take a `String`
///     Ok(format!("hello, {name}"))
/// }
/// ```
///
/// ```compile_fail,E0277
/// # use taskward::supervised;
/// #[supervised]
/// async fn double(n: u32) -> u32 {
///     // error: `u32` cannot be the result of a supervised task
///     n * 2
/// }
/// ```
///
/// # Arguments
///
/// - `name = "..."`: the task's name, used in its path
///   ([`Scope::path`]), its errors and its traces. By default, the
///   function's name. With braces it is a format string over the
///   parameters the caller passes, named as in `format!`'s captures:
///   `name = "chunk-{part}"`, `name = "{id:>3}"` (`{{` for a brace). The
///   name is formatted when a path is first needed (an error, a trace, a
///   tree snapshot), from clones of those arguments taken at the call, so
///   they must be `Clone + Send` (plus `Display`, or what the format asks);
///   the path has no `#index` (`pipeline/worker-3/chunk-2`), and two
///   siblings of the same formatted name have the same path. A name
///   whose formatting panics is the function's.
/// - `policy = fail_fast | supervise`: how the task's scope treats a failing
///   child (see [`Policy`]). By default `fail_fast`.
/// - `local`: the body need not be `Send` (it may hold an `Rc` or a
///   `RefCell` guard across an `.await`). The call returns a
///   [`LocalSupervised`], which is spawned with [`Scope::spawn_local`] inside
///   a `LocalSet` ([`Root::run_local`]) and still receives its own scope;
///   giving it to [`Scope::spawn`] is a compile error that says so. A local
///   task takes no `Ready` (it cannot be started).
/// - `crate = path`: where the `taskward` crate is, for a crate that
///   re-exports it under another path. By default `::taskward`.
///
/// Each argument may be given once, in any order. A caller can still
/// override the name and policy of one call with [`Task::named`] and
/// [`Task::policy`]. Deadlines and restarts are not arguments of the
/// attribute but choices of the caller: `worker(id).timeout(duration)`
/// ([`Task::timeout`]) and `taskward::restart(move || worker(id))`
/// ([`restart()`]).
///
/// ```
/// use std::sync::Arc;
///
/// use taskward::{supervised, Policy, Scope};
///
/// struct Crawler {
///     max_depth: u32,
/// }
///
/// impl Crawler {
///     #[supervised(name = "crawl", policy = supervise)]
///     async fn crawl(self: Arc<Self>, scope: &Scope, depth: u32) -> Result<u32, taskward::Error> {
///         assert_eq!(scope.policy(), Policy::Supervise);
///         if depth == self.max_depth {
///             return Ok(1);
///         }
///         let child = scope.spawn(Arc::clone(&self).crawl(depth + 1));
///         Ok(1 + child.await?)
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let crawler = Arc::new(Crawler { max_depth: 3 });
/// assert_eq!(taskward::run(crawler.crawl(0)).await.unwrap(), 4);
/// # }
/// ```
///
/// A crate that re-exports taskward points the generated code at its own
/// path:
///
/// ```
/// mod runtime {
///     pub use taskward::*;
/// }
///
/// #[runtime::supervised(crate = crate::runtime)]
/// async fn ping(scope: &runtime::Scope) -> Result<String, std::io::Error> {
///     Ok(scope.path().to_owned())
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// assert_eq!(runtime::run(ping()).await.unwrap(), "ping");
/// # }
/// ```
pub use taskward_macros::supervised;

/// Runs `async fn main` as the root of a supervised tree.
///
/// The attribute builds the tokio runtime, runs the function as a [`Root`]
/// whose tree Ctrl-C and SIGTERM shut down (a second signal aborts it), and
/// when the tree fails, prints the full error report (`{:#}` of [`Error`])
/// to stderr and exits with code 1. `main` may take `&Scope` (or `Scope`)
/// and a `CancellationToken`, as a supervised function does, and returns
/// `()` or `Result<(), E>`.
///
/// ```no_run
/// use taskward::{CancellationToken, Scope};
///
/// #[taskward::main(grace = "10s")]
/// async fn main(scope: &Scope, token: CancellationToken) -> Result<(), taskward::Error> {
///     scope.spawn(async move {
///         token.cancelled().await; // until Ctrl-C
///     });
///     Ok(())
/// }
/// ```
///
/// # Arguments
///
/// - `grace = "10s"`: once the tree is told to stop (a signal, a failure
///   under `fail_fast`), what still runs after this long is aborted
///   ([`Root::grace`]). Units: `ms`, `s`, `m`, `h`; decimals allowed. By
///   default the tree waits for a cooperative stop.
/// - `flavor = "multi_thread"` (the default) or `"current_thread"`, and
///   `worker_threads = n` for the former, as for `tokio::main`.
/// - `crate = path`, as for [`supervised`].
pub use taskward_macros::main;

pub use taskward_runtime::{
    BoxError, CancelCause, CancellationToken, Child, Configured, Error, ErrorKind, Group, LocalSupervised, LocalTask,
    Permit, Policy, Ready, Restart, Root, Scope, Startable, Starting, Supervised, Task, TaskFn, TaskInfo, TaskResult,
    TaskState, TaskTree, TreeMonitor, race, restart, run, task, task_with_ready,
};

/// What the code generated by `#[supervised]` refers to. Not public API.
#[doc(hidden)]
pub mod __private {
    pub use taskward_runtime::__private::*;
}

/// The README's example, compiled and run as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
