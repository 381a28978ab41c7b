//! The scope of a task: where it starts its children and learns to stop.

use std::future::Future;
use std::sync::Arc;

use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

use crate::cause::CancelCause;
use crate::child::Child;
use crate::error::{BoxError, Error};
use crate::group::Group;
use crate::limit::Permit;
use crate::node::Node;
use crate::policy::Policy;
use crate::ready::{Ready, Startable, Starting};
use crate::task::Task;
use crate::tree::TaskTree;

/// The scope of a running task: it owns the task's children and its
/// cancellation token.
///
/// A `#[supervised]` function receives its scope as a `&Scope` (or `Scope`)
/// parameter; [`task()`](crate::task()) hands it to a closure. Every child
/// spawned here is joined before the task's result is delivered, is
/// cancelled with the task, and routes its failure back here.
///
/// `Scope` is a cheap handle (`Clone` shares the same scope).
///
/// ```
/// use taskward::{supervised, Scope};
///
/// #[supervised]
/// async fn square(n: u64) -> Result<u64, std::io::Error> {
///     Ok(n * n)
/// }
///
/// #[supervised]
/// async fn sum_of_squares(scope: &Scope, n: u64) -> Result<u64, taskward::Error> {
///     let children: Vec<_> = (1..=n).map(|i| scope.spawn(square(i))).collect();
///     let mut sum = 0;
///     for child in children {
///         sum += child.await?;
///     }
///     Ok(sum)
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// assert_eq!(taskward::run(sum_of_squares(3)).await.unwrap(), 14);
/// # }
/// ```
#[derive(Clone)]
pub struct Scope {
    node: Arc<Node>,
}

impl Scope {
    pub(crate) fn from_node(node: Arc<Node>) -> Self {
        Scope { node }
    }

    /// The bookkeeping behind this scope.
    pub(crate) fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// Starts `task` as a child of this scope and returns its handle.
    ///
    /// The child starts running at once on the tokio runtime of the tree. It
    /// gets its own scope, and a token that is a child of this scope's token.
    /// Dropping the returned [`Child`] does not detach the task.
    ///
    /// A task spawned on a scope whose task has already finished (through a
    /// clone of the scope kept elsewhere) is not started: its handle reports
    /// [`ErrorKind::ScopeClosed`](crate::ErrorKind::ScopeClosed).
    ///
    /// ```
    /// # use taskward::Scope;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// taskward::run(taskward::task(|scope: Scope| async move {
    ///     let child = scope.spawn(async { Ok::<_, std::io::Error>("done") });
    ///     assert_eq!(child.await.unwrap(), "done");
    /// }))
    /// .await
    /// .unwrap();
    /// # }
    /// ```
    ///
    /// With a limit set ([`set_limit`](Scope::set_limit)), a child spawned
    /// while the scope is full waits in line and starts when a slot frees;
    /// `spawn` itself never waits.
    pub fn spawn<T: Task>(&self, task: T) -> Child<T::Output> {
        self.node.spawn(task)
    }

    /// Starts `task` as a child if a slot of the scope's limit is free now,
    /// and hands it back otherwise (like errgroup's `TryGo`). Without a
    /// limit it always starts.
    ///
    /// # Errors
    ///
    /// `Err(task)`, unstarted, when the scope is full or children are
    /// already waiting in line.
    ///
    /// ```
    /// # use taskward::Scope;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// taskward::run(taskward::task(|scope: Scope| async move {
    ///     scope.set_limit(1);
    ///     let busy = scope.try_spawn(taskward::task(|scope: Scope| async move {
    ///         scope.cancelled().await; // holds the only slot until cancelled
    ///     }));
    ///     assert!(busy.is_ok());
    ///     let second = scope.try_spawn(async { Ok::<_, std::io::Error>(()) });
    ///     assert!(second.is_err()); // full: the task is handed back
    ///     scope.cancel();
    /// }))
    /// .await
    /// .unwrap();
    /// # }
    /// ```
    pub fn try_spawn<T: Task>(&self, task: T) -> Result<Child<T::Output>, T> {
        match self.node.try_reserve() {
            Some(permit) => Ok(permit.spawn(task)),
            None => Err(task),
        }
    }

    /// Lets at most `limit` children of this scope run at once (a child
    /// runs from the start of its body until it has finished, children
    /// included). Past it, [`spawn`](Scope::spawn)ed children wait in line,
    /// first come first served; they are children all the same: joined,
    /// cancelled and aborted with the scope, and their failures reach
    /// [`next_error`](Scope::next_error). A child that waits in line when
    /// the scope is cancelled still starts in its turn, and sees the
    /// cancelled token at once.
    ///
    /// It may be called again to change the limit: a higher limit starts
    /// waiting children at once; a lower one lets running children finish
    /// and starts no new one until fewer than `limit` run. Children started
    /// before the first call count too. A limit of `0` would never let a
    /// child run, so it is taken as `1`; `usize::MAX` is no limit.
    ///
    /// Each scope has its own limit: children's sub-workers, spawned on
    /// their own scopes, never wait for a slot of this one, so a full pool
    /// cannot deadlock on them.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use taskward::Scope;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let peak = taskward::run(taskward::task(|scope: Scope| async move {
    ///     scope.set_limit(3);
    ///     let running = Arc::new(AtomicUsize::new(0));
    ///     let peak = Arc::new(AtomicUsize::new(0));
    ///     for _ in 0..20 {
    ///         let (running, peak) = (running.clone(), peak.clone());
    ///         scope.spawn(async move {
    ///             let now = running.fetch_add(1, Ordering::SeqCst) + 1;
    ///             peak.fetch_max(now, Ordering::SeqCst);
    ///             tokio::task::yield_now().await;
    ///             running.fetch_sub(1, Ordering::SeqCst);
    ///         });
    ///     }
    ///     Ok::<_, taskward::Error>(peak)
    /// }))
    /// .await
    /// .unwrap();
    /// assert!(peak.load(Ordering::SeqCst) <= 3);
    /// # }
    /// ```
    pub fn set_limit(&self, limit: usize) {
        self.node.set_limit(limit);
    }

    /// Waits until a slot of this scope's limit is free and takes it: the
    /// returned [`Permit`] starts a child at once with
    /// [`Permit::spawn`]. This is backpressure: a producer that reserves
    /// before it spawns goes at the pace of the children (like errgroup's
    /// `Go`, or tokio's `Sender::reserve`). It waits in the same line as
    /// spawned children, and returns at once when the scope has no limit.
    ///
    /// Dropping the future gives its place (or its slot) back. An unused
    /// `Permit` holds its slot until it is dropped.
    ///
    /// ```
    /// # use taskward::Scope;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// taskward::run(taskward::task(|scope: Scope| async move {
    ///     scope.set_limit(4);
    ///     for job in 0..100u64 {
    ///         scope.reserve().await.spawn(async move { Ok::<_, std::io::Error>(job) });
    ///     }
    /// }))
    /// .await
    /// .unwrap();
    /// # }
    /// ```
    pub async fn reserve(&self) -> Permit {
        self.node.reserve().await
    }

    /// Starts `task` as a child and waits until it is ready: until it
    /// calls [`Ready::send`], whose value is returned here (Trio's `start`,
    /// OTP's `start_link`). The child then goes on running under this
    /// scope, like any spawned child. As with an `async fn`, nothing
    /// happens until the returned future is first polled.
    ///
    /// The task receives its [`Ready`] as a `Ready<V>` parameter of a
    /// `#[supervised]` function, or as the second argument of a
    /// [`task_with_ready()`](crate::task_with_ready()) closure; either way,
    /// its type says what `start` returns (see [`Startable`]), so no
    /// annotation is needed, and starting a task that takes no `Ready`, or
    /// expecting a value of another type, is a compile error.
    ///
    /// # Errors
    ///
    /// - If the child fails before it is ready, that failure: it is claimed
    ///   here and does not escalate. (A failure after readiness goes to the
    ///   scope, as for any child whose handle was dropped.)
    /// - [`ErrorKind::NotReady`](crate::ErrorKind::NotReady) if the child
    ///   ends without sending, or drops its `Ready` without sending (it then
    ///   goes on running). (So does a value of another type sent through
    ///   [`Scope::ready`], which the compiler cannot check.)
    ///
    /// A child that never sends, never drops its `Ready` and never ends
    /// keeps `start` waiting, as a child that never ends keeps its handle
    /// waiting: bound it with [`Task::timeout`](crate::Task::timeout) or
    /// cancel the scope.
    ///
    /// ```
    /// use taskward::{supervised, CancellationToken, Ready, Scope};
    ///
    /// #[supervised]
    /// async fn cache(token: CancellationToken, ready: Ready<usize>) -> std::io::Result<()> {
    ///     let entries = 128; // warm up
    ///     ready.send(entries);
    ///     token.cancelled().await; // then serve until cancelled
    ///     Ok(())
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// taskward::run(taskward::task(|scope: Scope| async move {
    ///     let entries = scope.start(cache()).await?;
    ///     assert_eq!(entries, 128);
    ///     scope.cancel();
    ///     Ok::<_, taskward::Error>(())
    /// }))
    /// .await
    /// .unwrap();
    /// # }
    /// ```
    pub fn start<V, T>(&self, task: T) -> Starting<V>
    where
        V: Send + 'static,
        T: Startable<Ready = V>,
    {
        crate::ready::start(&self.node, task)
    }

    /// The readiness handle of this scope's task, for code that has the
    /// task's scope but not the `Ready` the task received (a `Ready<V>`
    /// parameter of a `#[supervised]` function, or the second argument of
    /// a [`task_with_ready()`](crate::task_with_ready()) closure), which
    /// are the typed ways.
    ///
    /// Its type is not checked against the task's: `start` fails with
    /// [`ErrorKind::NotReady`](crate::ErrorKind::NotReady) if it receives a
    /// value of another type. In a task that was spawned rather than
    /// started, nobody waits for it and [`Ready::send`] does nothing.
    ///
    /// ```
    /// # use taskward::{Ready, Scope};
    /// fn announce(scope: &Scope) {
    ///     scope.ready::<u16>().send(8080); // deep in the task's code
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// taskward::run(taskward::task(|scope: Scope| async move {
    ///     let port = scope
    ///         .start(taskward::task_with_ready(|scope, ready: Ready<u16>| async move {
    ///             let _typed = ready; // kept until the body ends
    ///             announce(&scope);
    ///         }))
    ///         .await?;
    ///     assert_eq!(port, 8080);
    ///     Ok::<_, taskward::Error>(())
    /// }))
    /// .await
    /// .unwrap();
    /// # }
    /// ```
    #[must_use]
    pub fn ready<V: Send + 'static>(&self) -> Ready<V> {
        Ready::of(&self.node)
    }

    /// The cancellation token of this scope. It is cancelled when the task
    /// is cancelled (by its parent, a failing sibling under
    /// [`Policy::FailFast`], or explicitly), and when the task has finished.
    #[must_use]
    pub fn token(&self) -> &CancellationToken {
        self.node.token()
    }

    /// Cancels this scope: its own body and every descendant are told to stop.
    pub fn cancel(&self) {
        self.node.cancel();
    }

    /// Whether this scope has been cancelled.
    #[must_use]
    pub fn is_cancelled(&self) -> bool {
        self.node.is_cancelled()
    }

    /// Waits until this scope is cancelled.
    ///
    /// ```
    /// # use taskward::Scope;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// taskward::run(taskward::task(|scope: Scope| async move {
    ///     let child = scope.spawn(taskward::task(|scope: Scope| async move {
    ///         scope.cancelled().await; // a worker waiting to be told to stop
    ///     }));
    ///     child.cancel();
    ///     child.await.unwrap();
    /// }))
    /// .await
    /// .unwrap();
    /// # }
    /// ```
    pub fn cancelled(&self) -> WaitForCancellationFuture<'_> {
        self.node.token().cancelled()
    }

    /// Runs `future` until it completes (`Some(output)`) or this scope is
    /// cancelled (`None`, and `future` is dropped).
    ///
    /// ```
    /// # use taskward::Scope;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// taskward::run(taskward::task(|scope: Scope| async move {
    ///     scope.cancel();
    ///     let never = std::future::pending::<()>();
    ///     assert_eq!(scope.until_cancelled(never).await, None);
    /// }))
    /// .await
    /// .unwrap();
    /// # }
    /// ```
    pub async fn until_cancelled<F: Future>(&self, future: F) -> Option<F::Output> {
        self.node.token().run_until_cancelled(future).await
    }

    /// Takes the next failure of a child of this scope that no [`Child`]
    /// handle claimed. Returns `None` once no child of this scope is running
    /// and no failure is waiting.
    ///
    /// A failure taken here is handled: it does not escalate.
    ///
    /// ```
    /// # use taskward::{Policy, Scope, Task};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// taskward::run(
    ///     taskward::task(|scope: Scope| async move {
    ///         for n in 0..3 {
    ///             scope.spawn(async move {
    ///                 if n == 1 { Err(std::io::Error::other("bad job")) } else { Ok(()) }
    ///             });
    ///         }
    ///         let err = scope.next_error().await.unwrap();
    ///         assert_eq!(err.task(), "task/task#1");
    ///         assert!(scope.next_error().await.is_none());
    ///     })
    ///     .policy(Policy::Supervise),
    /// )
    /// .await
    /// .unwrap();
    /// # }
    /// ```
    pub async fn next_error(&self) -> Option<Error> {
        self.node.next_error().await
    }

    /// The path of this scope's task from the root, such as
    /// `pipeline/worker#3/split#1`: each task is `name#index`, where index
    /// counts from 0 the children of that name spawned by the same parent.
    /// The root is its bare name.
    #[must_use]
    pub fn path(&self) -> &str {
        self.node.path()
    }

    /// A snapshot of this scope's task and its live descendants, whose
    /// `Display` is an indented tree (see [`TaskTree`]). Taking it locks each
    /// task only while listing its children; the tree keeps running.
    #[must_use]
    pub fn tree(&self) -> TaskTree {
        crate::tree::snapshot(&self.node)
    }

    /// The policy of this scope.
    #[must_use]
    pub fn policy(&self) -> Policy {
        self.node.policy()
    }

    // Control over running children (DESIGN "Second round / Control").

    /// Waits until no child of this scope is running (WaitGroup's `Wait`,
    /// TaskTracker's `wait`), without ending the scope: the body goes on,
    /// and may spawn again. Children spawned while it waits are waited for
    /// too; an aborted child counts until its whole subtree is gone.
    ///
    /// Failures are routed as usual: a child's failure goes to its handle
    /// if held, else waits for [`next_error`](Scope::next_error) or
    /// escalates when the body ends, and under
    /// [`Policy::FailFast`] cancels the scope.
    ///
    /// Called from a child of this scope (through a clone of the scope), it
    /// would wait for that child itself, and never return.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use taskward::Scope;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// taskward::run(taskward::task(|scope: Scope| async move {
    ///     let done = Arc::new(AtomicUsize::new(0));
    ///     for round in 1..=3 {
    ///         for _ in 0..4 {
    ///             let done = done.clone();
    ///             scope.spawn(async move { done.fetch_add(1, Ordering::SeqCst); });
    ///         }
    ///         scope.wait().await; // this round's batch has finished
    ///         assert_eq!(done.load(Ordering::SeqCst), round * 4);
    ///     }
    /// }))
    /// .await
    /// .unwrap();
    /// # }
    /// ```
    pub async fn wait(&self) {
        self.node.wait_idle().await;
    }

    /// Cancels this scope, as [`cancel`](Scope::cancel) does, giving
    /// `reason` as why: the body and every descendant see it in
    /// [`cancel_cause`](Scope::cancel_cause) (Go's `context.Cause`), and a
    /// task of the subtree aborted when a grace period ends names it in its
    /// `Cancelled` error. A scope that is cancelled already keeps its first
    /// cause.
    ///
    /// ```
    /// use taskward::{CancelCause, Scope};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// taskward::run(taskward::task(|scope: Scope| async move {
    ///     scope.cancel_with(std::io::Error::other("disk almost full"));
    ///     let Some(CancelCause::Requested { reason: Some(reason), .. }) = scope.cancel_cause() else {
    ///         panic!("no reason");
    ///     };
    ///     assert_eq!(reason.to_string(), "disk almost full");
    /// }))
    /// .await
    /// .unwrap();
    /// # }
    /// ```
    pub fn cancel_with(&self, reason: impl Into<BoxError>) {
        let reason: Arc<dyn std::error::Error + Send + Sync> = Arc::from(reason.into());
        self.node.cancel_for(|| CancelCause::Requested {
            task: Arc::clone(self.node.path()),
            reason: Some(reason),
        });
    }

    /// Why this scope is cancelled, `None` while it is not (see
    /// [`CancelCause`]): a reason given to `cancel_with` here or to an
    /// ancestor, a failing sibling under [`Policy::FailFast`], a deadline,
    /// the root's shutdown, or the parent ending. A scope cancelled by a
    /// plain [`cancel`](Scope::cancel) (or its token's) answers
    /// [`CancelCause::Requested`] with no reason.
    ///
    /// ```
    /// use taskward::{CancelCause, Scope};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let err = taskward::run(taskward::task(|scope: Scope| async move {
    ///     let worker = scope.spawn(taskward::task(|scope: Scope| async move {
    ///         scope.cancelled().await;
    ///         Ok::<_, std::io::Error>(scope.cancel_cause().unwrap().to_string())
    ///     }));
    ///     scope.spawn(async { Err::<(), _>(std::io::Error::other("disk full")) });
    ///     assert_eq!(worker.await?, "`task/task#1` failed: disk full");
    ///     Ok::<_, taskward::Error>(())
    /// }))
    /// .await
    /// .unwrap_err();
    /// assert_eq!(err.to_string(), "task `task/task#1` failed: disk full");
    /// # }
    /// ```
    #[must_use]
    pub fn cancel_cause(&self) -> Option<CancelCause> {
        self.node.cancel_cause()
    }

    /// A [`Group`] of children of this scope whose results come out in the
    /// order they finish (tokio's `JoinSet`, owned by the scope).
    ///
    /// ```
    /// # use taskward::Scope;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// taskward::run(taskward::task(|scope: Scope| async move {
    ///     let mut group = scope.group::<u32>();
    ///     group.spawn(async { Ok::<_, std::io::Error>(1) });
    ///     assert_eq!(group.len(), 1);
    ///     assert_eq!(group.next().await.unwrap().unwrap(), 1);
    ///     assert!(group.is_empty());
    /// }))
    /// .await
    /// .unwrap();
    /// # }
    /// ```
    #[must_use]
    pub fn group<T: Send + 'static>(&self) -> Group<T> {
        Group::new(Arc::clone(&self.node))
    }
}

impl std::fmt::Debug for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scope")
            .field("path", &self.path())
            .field("policy", &self.policy())
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}
