//! The `Scope` methods for work that is not a `Send` future on the tree's
//! own runtime: a closure on the blocking pool, a task on another runtime,
//! a `!Send` future on the thread's `LocalSet`. Each is a child like any
//! other: joined, cancelled, counted by the limit, its failure routed.

use crate::child::Child;
use crate::scope::Scope;
use crate::task::{LocalTask, Task, TaskResult};
use tokio_util::sync::CancellationToken;

impl Scope {
    /// Runs the closure `f` on tokio's blocking pool, as a child of this
    /// scope, and returns its handle: for CPU-heavy work or blocking calls
    /// (file systems, compression, a synchronous client) that would stall
    /// the workers of the runtime.
    ///
    /// The child is like any other: joined before this scope's task
    /// finishes, counted by [`set_limit`](Scope::set_limit) (a closure in
    /// line waits in a tokio task, not on a thread, and starts when a slot
    /// frees), listed in [`tree`](Scope::tree) snapshots, and its failure
    /// goes to its handle, [`next_error`](Scope::next_error), or the scope,
    /// under the scope's policy. Its path is `.../blocking#N`.
    ///
    /// `f` receives the child's own [`CancellationToken`] and returns
    /// `Result<T, E>` (`E: Into<BoxError>`) or `()`, as a task body does
    /// (see [`TaskResult`](crate::TaskResult)); a panic in it is
    /// [`ErrorKind::Panicked`](crate::ErrorKind::Panicked) with its message.
    ///
    /// # What can and cannot stop it
    ///
    /// A thread cannot be interrupted. Cancelling the scope only cancels
    /// the token: a closure that never looks at it (with
    /// [`is_cancelled`](CancellationToken::is_cancelled) between steps of
    /// its work) runs to its end. When a grace period ends (the
    /// [`Root`](crate::Root)'s, or a [`timeout`](crate::Task::timeout)'s),
    /// the async tasks of the tree are aborted, but a running closure is
    /// not: a `tracing` warning names it, the tree still waits for it, and
    /// its result is [`ErrorKind::Cancelled`](crate::ErrorKind::Cancelled),
    /// saying it ran past its grace period. So [`run`](crate::run) never
    /// returns while one of its closures runs; a closure that never returns
    /// keeps its tree from finishing. A closure still waiting for a slot of
    /// the limit, or for a thread of the pool, when the grace period ends
    /// or its runtime shuts down is not run at all, and reports `Cancelled`.
    ///
    /// ```
    /// use taskward::{CancellationToken, Scope};
    ///
    /// fn checksum(data: &[u8], token: &CancellationToken) -> Result<u64, std::io::Error> {
    ///     let mut sum = 0u64;
    ///     for chunk in data.chunks(4096) {
    ///         if token.is_cancelled() {
    ///             return Err(std::io::Error::other("cancelled")); // stops between chunks
    ///         }
    ///         sum = chunk.iter().fold(sum, |sum, &byte| sum.wrapping_mul(31).wrapping_add(u64::from(byte)));
    ///     }
    ///     Ok(sum)
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let sum = taskward::run(taskward::task(|scope: Scope| async move {
    ///     let data = vec![7u8; 1 << 20];
    ///     let child = scope.spawn_blocking(move |token| checksum(&data, &token));
    ///     child.await
    /// }))
    /// .await
    /// .unwrap();
    /// assert_ne!(sum, 0);
    /// # }
    /// ```
    pub fn spawn_blocking<F, R>(&self, f: F) -> Child<R::Ok>
    where
        F: FnOnce(CancellationToken) -> R + Send + 'static,
        R: TaskResult,
    {
        self.node().spawn_blocking(f)
    }

    /// Starts `task` as a child of this scope on another tokio runtime,
    /// the one of `runtime`, and returns its handle: for a dedicated
    /// runtime (CPU-bound async work, or work kept apart from the tree's
    /// workers).
    ///
    /// The child is still this scope's: joined before the scope's task
    /// finishes, cancelled with it, counted by its limit, listed in its
    /// snapshots, aborted with it, and its failure is routed as any
    /// child's. Its own children (and its blocking closures) run on the
    /// same runtime as itself. That runtime must have what the task uses
    /// (its time driver for a [`timeout`](crate::Task::timeout), I/O for
    /// sockets), and must outlive it: a runtime shut down under the child
    /// drops it, and its handle reports
    /// [`ErrorKind::Cancelled`](crate::ErrorKind::Cancelled).
    ///
    /// ```
    /// use taskward::Scope;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let dedicated = tokio::runtime::Builder::new_multi_thread()
    ///     .worker_threads(1)
    ///     .thread_name("dedicated")
    ///     .build()
    ///     .unwrap();
    /// let handle = dedicated.handle().clone();
    /// let on = taskward::run(taskward::task(move |scope: Scope| async move {
    ///     let child = scope.spawn_on(
    ///         async { Ok::<_, std::io::Error>(std::thread::current().name().map(str::to_owned)) },
    ///         &handle,
    ///     );
    ///     child.await
    /// }))
    /// .await
    /// .unwrap();
    /// assert_eq!(on.as_deref(), Some("dedicated"));
    /// dedicated.shutdown_background(); // a runtime cannot be dropped in async code
    /// # }
    /// ```
    pub fn spawn_on<T: Task>(&self, task: T, runtime: &tokio::runtime::Handle) -> Child<T::Output> {
        self.node().spawn_on(task, runtime)
    }

    /// Starts the `!Send` future `task` as a child of this scope, on the
    /// thread's [`LocalSet`](tokio::task::LocalSet), and returns its
    /// handle: for a body that holds an `Rc` or a `RefCell` across an
    /// `.await`, or a client that is not `Send`.
    ///
    /// The child is like any other: joined, cancelled, counted by the
    /// limit, listed in snapshots, aborted at the end of a grace period,
    /// its failure routed under the scope's policy (a panic is
    /// [`ErrorKind::Panicked`](crate::ErrorKind::Panicked)). Its value must
    /// be `Send` (it may be awaited from any task).
    ///
    /// `task` is a future, or the call of a `#[supervised(local)]`
    /// function (see [`LocalTask`]). The call of a local supervised
    /// function receives its own scope, is named after the function
    /// (`.../counter#N`) and takes the attribute's policy; a plain future's
    /// path is `.../local#N`, and it has no scope of its own: it captures a
    /// clone of this `Scope` to spawn children. Either way the children may
    /// be `Send` ([`spawn`](Scope::spawn)) or local again.
    ///
    /// # Where it can be called
    ///
    /// tokio runs `!Send` futures only inside a `LocalSet`, and offers no
    /// way to ask whether the current code runs in one. taskward knows it
    /// does in two places: the tree of [`Root::run_local`](crate::Root::run_local)
    /// (the root's body, which runs inside the set `run_local` made) and
    /// the local tasks themselves. Anywhere else (a `Send` child, which the
    /// runtime's scheduler polls outside the set, or a tree run inside a
    /// `LocalSet` of your own) the child is not started and its handle
    /// reports [`ErrorKind::NoRuntime`](crate::ErrorKind::NoRuntime); it
    /// never panics.
    ///
    /// ```
    /// use std::cell::RefCell;
    /// use std::rc::Rc;
    /// use taskward::{Root, Scope};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let total = Root::new()
    ///     .run_local(taskward::task(|scope: Scope| async move {
    ///         let log = Rc::new(RefCell::new(Vec::new())); // not Send
    ///         let child = scope.spawn_local(async move {
    ///             for n in 1..=3 {
    ///                 log.borrow_mut().push(n);
    ///                 tokio::task::yield_now().await; // the Rc is held across it
    ///             }
    ///             let total: u32 = log.borrow().iter().sum();
    ///             Ok::<_, std::io::Error>(total)
    ///         });
    ///         child.await
    ///     }))
    ///     .await
    ///     .unwrap();
    /// assert_eq!(total, 6);
    /// # }
    /// ```
    pub fn spawn_local<T: LocalTask>(&self, task: T) -> Child<T::Output> {
        self.node().spawn_local(task.into_local_parts())
    }
}
