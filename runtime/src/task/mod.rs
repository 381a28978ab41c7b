//! Lazy units of work: what `Scope::spawn` and `run` accept.

use std::borrow::Cow;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::error::{BodyError, BoxError, Error, cast};
use crate::node::Spawn;
use crate::policy::Policy;
use crate::ready::{Ready, Startable};
use crate::scope::Scope;

mod closure;
mod local;
mod name;

pub use closure::{TaskFn, task, task_with_ready};
pub(crate) use local::LocalParts;
pub use local::{LocalSupervised, LocalTask};
pub(crate) use name::{Formatted, Name};

/// A boxed, sendable future: the body of a `#[supervised]` root, of a restart.
pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What a task body may return: `Result<T, E>` with an error convertible into
/// `Box<dyn Error + Send + Sync>`, or `()`.
///
/// This is what lets `std::io::Result<T>`, `anyhow::Result<T>` and your own
/// error types all work as the return type of a supervised function.
///
/// An `async` block that can only panic (or loop forever) has the type `!`,
/// which is not a task result: make the panic conditional
/// (`async { if broken { panic!("...") } }`), or write a
/// `#[supervised] async fn` with no return type.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the result of a supervised task",
    label = "return `Result<T, E>` here, where `E: Into<Box<dyn std::error::Error + Send + Sync>>`, or return nothing (`()`)",
    note = "a task reports failure through `Err`, so that its parent receives it; `std::io::Result<T>`, `anyhow::Result<T>` and `Result<T, YourError>` all work"
)]
pub trait TaskResult: Send + 'static {
    /// The value of a successful task.
    type Ok: Send + 'static;

    /// Splits the body's return value into success or a boxed failure.
    ///
    /// # Errors
    ///
    /// The body's own error, boxed.
    fn into_task_result(self) -> Result<Self::Ok, BoxError>;
}

impl TaskResult for () {
    type Ok = ();

    fn into_task_result(self) -> Result<(), BoxError> {
        Ok(())
    }
}

impl<T, E> TaskResult for Result<T, E>
where
    T: Send + 'static,
    E: Into<BoxError> + Send + 'static,
{
    type Ok = T;

    fn into_task_result(self) -> Result<T, BoxError> {
        self.map_err(into_box_error)
    }
}

/// Splits a body's return value as `into_task_result` does, without boxing
/// an error that needs no box: a `std::io::Error` (the error of most tokio
/// programs; a box is one block more per failure, freed on whichever
/// worker drops the error) or a taskward `Error` passed on with `?`
/// (boxed, only to be unboxed again by `Error::failed`). The type is
/// recognised at run time, through `Any`, as in `into_box_error`; for any
/// other type the test is decided when compiling.
pub(crate) fn split<R: TaskResult>(out: R) -> Result<R::Ok, BodyError> {
    let out = match cast::<_, Result<R::Ok, std::io::Error>>(out) {
        Ok(result) => return result.map_err(BodyError::Io),
        Err(out) => out,
    };
    let out = match cast::<_, Result<R::Ok, Error>>(out) {
        Ok(result) => return result.map_err(BodyError::Failure),
        Err(out) => out,
    };
    out.into_task_result().map_err(BodyError::Boxed)
}

/// Boxes a body's error. With the `anyhow` and `eyre` features, their reports
/// are boxed whole (their own conversion hides the type of the error they
/// wrap from `downcast_ref`). A report is recognised by its type at run
/// time, through `Any`: `E` is `'static`.
fn into_box_error<E: Into<BoxError> + 'static>(err: E) -> BoxError {
    #[cfg(feature = "anyhow")]
    let err = match cast::<_, anyhow::Error>(err) {
        Ok(report) => return Box::new(crate::error::foreign::Anyhow(report)),
        Err(err) => err,
    };
    #[cfg(feature = "eyre")]
    let err = match cast::<_, eyre::Report>(err) {
        Ok(report) => return Box::new(crate::error::foreign::Eyre(report)),
        Err(err) => err,
    };
    err.into()
}

pub(crate) mod sealed {
    pub trait Sealed {}
    pub trait LocalSealed {}
}

/// A lazy unit of work that a [`Scope`] can own.
///
/// Nothing runs until the task is spawned ([`Scope::spawn`]) or run as the
/// root of a tree ([`run`](crate::run)). Three kinds of values are tasks:
///
/// - the call of a `#[supervised]` function, such as `worker(3)`;
/// - any `Send + 'static` future whose output is `Result<T, E>` or `()`,
///   such as an `async move { ... }` block;
/// - [`task(|scope| async move { ... })`](crate::task()), a closure that is
///   handed the new task's scope.
///
/// ```
/// use taskward::{Scope, Task};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), taskward::Error> {
/// let total = taskward::run(
///     taskward::task(|scope: Scope| async move {
///         let a = scope.spawn(async { Ok::<_, std::io::Error>(20) });
///         let b = scope.spawn(async { Ok::<_, std::io::Error>(22) }.named("b"));
///         Ok::<_, taskward::Error>(a.await? + b.await?)
///     })
///     .named("sum"),
/// )
/// .await?;
/// assert_eq!(total, 42);
/// # Ok(())
/// # }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a task that can be sent to another thread",
    label = "not a `taskward::Task`",
    note = "a task is the call of a `#[supervised]` fn, a `Send` future whose output is `Result<T, E>` or `()`, or `taskward::task(|scope| ..)`",
    note = "the call of a `#[supervised(local)]` fn, or a future that is not `Send`, runs on the thread's `LocalSet`: spawn it with `scope.spawn_local(..)`"
)]
pub trait Task: sealed::Sealed + Send + Sized + 'static {
    /// The value the task produces when it succeeds.
    type Output: Send + 'static;

    #[doc(hidden)]
    type Body: Future<Output: TaskResult<Ok = Self::Output>> + Send + 'static;

    #[doc(hidden)]
    fn into_parts(self) -> Parts<Self::Body>;

    /// Gives the task a name, used in its path (`pipeline/<name>#3`), in
    /// errors and in traces. By default a `#[supervised]` function is named
    /// after the function and any other task is named `task`.
    fn named(self, name: impl Into<Cow<'static, str>>) -> Configured<Self> {
        Configured::new(self).named(name)
    }

    /// Chooses how this task's scope treats the failure of one of its
    /// children (see [`Policy`]). The default is [`Policy::FailFast`].
    fn policy(self, policy: Policy) -> Configured<Self> {
        Configured::new(self).policy(policy)
    }

    /// Gives the task a deadline, counted from the moment its body starts
    /// (for a child waiting for a slot of its scope's limit, once its turn
    /// comes). The deadline covers the body and the join of its children.
    ///
    /// At the deadline the task's token is cancelled, and so is its whole
    /// subtree's; whatever it returns then, its result is
    /// [`ErrorKind::TimedOut`](crate::ErrorKind::TimedOut), with the failures
    /// of its scope in [`related`](crate::Error::related). If it has not
    /// stopped when the grace period ends (the [`Root`](crate::Root)'s, or 1
    /// second when the root sets none), its body and subtree are aborted
    /// where they stand.
    ///
    /// As with `tokio::time::timeout`, the task is polled once before the
    /// deadline is looked at: with `Duration::ZERO`, only a task that
    /// finishes in its first poll succeeds. A huge duration is capped by
    /// tokio at about 30 years.
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskward::{supervised, CancellationToken, ErrorKind, Task};
    ///
    /// #[supervised]
    /// async fn slow(token: CancellationToken) -> std::io::Result<()> {
    ///     token.cancelled().await; // stops as soon as it is told to
    ///     Ok(())
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let err = taskward::run(slow().timeout(Duration::from_millis(10))).await.unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::TimedOut);
    /// assert_eq!(err.to_string(), "task `slow` timed out: did not finish within 10ms");
    /// # }
    /// ```
    fn timeout(self, limit: Duration) -> Configured<Self> {
        Configured::new(self).timeout(limit)
    }

    /// Shields the task from its parent's cancellation (Go's
    /// `context.WithoutCancel`, Trio's shield, Kotlin's `NonCancellable`):
    /// its token is not cancelled when its parent's is, by a failing
    /// sibling, the parent's own failure, its deadline or the root's
    /// shutdown. Its children's tokens derive from its own, so its subtree
    /// is shielded too. For cleanup and flushes that must finish.
    ///
    /// It is still a child: its parent joins it (a parent that is
    /// cancelled waits for it), its failures are routed as any child's,
    /// its own token is cancelled by [`Child::cancel`](crate::Child::cancel)
    /// and its own `.timeout`, and it is aborted like everything else when
    /// a grace period ends (the [`Root`](crate::Root)'s, or an ancestor's
    /// deadline's), or by [`Child::abort`](crate::Child::abort). A root has
    /// no parent: shielding it changes nothing.
    ///
    /// ```
    /// use taskward::{Scope, Task};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let flushed = taskward::run(taskward::task(|scope: Scope| async move {
    ///     let flush = scope.spawn(
    ///         taskward::task(|scope: Scope| async move {
    ///             tokio::task::yield_now().await; // the parent is cancelled meanwhile
    ///             Ok::<_, std::io::Error>(!scope.is_cancelled())
    ///         })
    ///         .shielded(),
    ///     );
    ///     scope.cancel();
    ///     flush.await
    /// }))
    /// .await
    /// .unwrap();
    /// assert!(flushed);
    /// # }
    /// ```
    fn shielded(self) -> Configured<Self> {
        Configured::new(self).shielded()
    }
}

/// How a task wants to be started: its name, its policy, and how to make its
/// body once its scope exists.
#[doc(hidden)]
#[derive(Debug)]
pub struct Parts<B> {
    pub(crate) name: Name,
    pub(crate) policy: Policy,
    pub(crate) timeout: Option<Duration>,
    /// The task's token is not a child of its parent's (`Task::shielded`).
    pub(crate) shielded: bool,
    pub(crate) start: Start<B>,
}

#[doc(hidden)]
pub(crate) enum Start<B> {
    /// The body exists already (a plain future) and ignores its scope.
    Made(B),
    /// The body exists already, boxed, and takes its scope at its first
    /// poll, with `__private::scope` (a `#[supervised]` body), unless its
    /// function names neither scope nor token (`LazyBody::takes_scope`).
    Lazy(Box<dyn LazyBody<B>>),
    /// The body needs its scope first.
    WithScope(Box<dyn FnOnce(Scope) -> B + Send + 'static>),
}

/// A `#[supervised]` body in the box that lets its task type be named.
///
/// Spawned, it moves out of the box into its tokio task, so that the box is
/// freed at once, by the worker that made it, and the task polls the body
/// with no indirection; run as a root, it stays boxed.
pub(crate) trait LazyBody<B>: Send {
    /// Spawns the body as the task of `node` (see `Node::spawn_with`).
    fn spawn(self: Box<Self>, spawn: Spawn<'_>) -> JoinHandle<Option<<B::Output as TaskResult>::Ok>>
    where
        B: Future<Output: TaskResult>;

    /// The body as a future of type `B`.
    fn into_body(self: Box<Self>) -> B;

    /// Whether the body takes its scope at its first poll: `false` for a
    /// function that names neither its scope nor its token, whose body the
    /// macro makes without `__private::scope`.
    fn takes_scope(&self) -> bool;
}

pin_project_lite::pin_project! {
    /// The concrete body of a `#[supervised]` call, which takes its scope
    /// at its first poll if `S` is `Scoped`.
    struct Body<F, S> {
        #[pin]
        future: F,
        scoping: PhantomData<S>,
    }
}

/// Whether a body takes its scope at its first poll, and whether its token
/// is made at its spawn, as a type: known where the body's task is made, at
/// no cost in the box.
trait Scoping: Send + 'static {
    const TAKES_SCOPE: bool;
    /// The function names its token: it is made by the spawn (see
    /// `Supervised::new_with_token`).
    const MAKES_TOKEN: bool;
}

/// A body that takes its scope (`Supervised::new`).
struct Scoped;

/// A body that does not (`Supervised::new_unscoped`).
struct Unscoped;

/// A body that takes its scope and its token
/// (`Supervised::new_with_token`).
struct Tokened;

impl Scoping for Scoped {
    const TAKES_SCOPE: bool = true;
    const MAKES_TOKEN: bool = false;
}

impl Scoping for Unscoped {
    const TAKES_SCOPE: bool = false;
    const MAKES_TOKEN: bool = false;
}

impl Scoping for Tokened {
    const TAKES_SCOPE: bool = true;
    const MAKES_TOKEN: bool = true;
}

impl<F, S> Body<F, S> {
    fn new(future: F) -> Self {
        Body {
            future,
            scoping: PhantomData,
        }
    }
}

impl<F: Future, S> Future for Body<F, S> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.project().future.poll(cx)
    }
}

impl<F, S: Scoping> LazyBody<BoxFuture<F::Output>> for Body<F, S>
where
    F: Future<Output: TaskResult> + Send + 'static,
{
    fn spawn(
        self: Box<Self>,
        spawn: Spawn<'_>,
    ) -> JoinHandle<Option<<<BoxFuture<F::Output> as Future>::Output as TaskResult>::Ok>> {
        spawn.lazy(self.future, S::TAKES_SCOPE, S::MAKES_TOKEN)
    }

    fn into_body(self: Box<Self>) -> BoxFuture<F::Output> {
        Box::into_pin(self)
    }

    fn takes_scope(&self) -> bool {
        S::TAKES_SCOPE
    }
}

impl<B> std::fmt::Debug for Start<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Start::Made(_) => "Made",
            Start::Lazy(_) => "Lazy",
            Start::WithScope(_) => "WithScope",
        })
    }
}

impl<B> Parts<B> {
    /// The body, and whether it takes its scope at its first poll.
    pub(crate) fn into_body(self, scope: &Scope) -> (B, bool) {
        match self.start {
            Start::Made(body) => (body, false),
            Start::Lazy(body) => {
                let scoped = body.takes_scope();
                (body.into_body(), scoped)
            }
            Start::WithScope(make) => (make(scope.clone()), false),
        }
    }
}

/// The task returned by calling a `#[supervised]` function whose body
/// returns `R`; `S` is the type of its `Ready<V>` parameter (`()` when it
/// takes none), which makes it [`Startable`] with `V`.
///
/// It is a named type, not an `impl Trait`, so that a supervised function can
/// spawn itself (recursion).
///
/// `R` is not bounded here but where the task is made and used, so that a
/// function's signature does not repeat the bound: a where-clause
/// `R: TaskResult` in a generic function would hide `R`'s value type from
/// its body (`<Result<T, E> as TaskResult>::Ok` would no longer be `T`).
#[must_use = "a task does nothing until it is spawned on a scope or run with `taskward::run`"]
pub struct Supervised<R, S = ()> {
    name: &'static &'static str,
    /// The name formatted from the arguments, if the attribute's `name`
    /// names some.
    formatted: Option<Formatted>,
    policy: Policy,
    /// The body, made with the arguments at the call, which takes its scope
    /// at its first poll if it needs it: one allocation per call, where a
    /// closure making the body once the scope exists would need two. A
    /// spawn takes the body back out of it (see `LazyBody`).
    body: Box<dyn LazyBody<BoxFuture<R>>>,
    ready: PhantomData<fn() -> S>,
}

impl<R, S> Supervised<R, S> {
    /// The task of a `#[supervised]` call (see [`check_send`]), whose body
    /// takes its scope at its first poll.
    #[doc(hidden)]
    #[inline(always)]
    pub fn new<F>(name: &'static &'static str, policy: Policy, body: F) -> Self
    where
        R: TaskResult,
        F: Future<Output = R> + Send + 'static,
    {
        Self::with_body(Box::new(Body::<F, Scoped>::new(body)), name, policy)
    }

    /// The task of a `#[supervised]` call whose function names its token:
    /// as `new`, but its spawn makes the token, unless the child waits in
    /// line for a slot of its scope's limit (its body then makes it at its
    /// first poll, as any other body does). Made by the spawns, the tokens
    /// of a scope's children come in the order of the spawns, from the
    /// spawning task; made at the first polls, they came from whichever
    /// worker ran each child first, in the order the children happened to
    /// run. A cancel walks a token's children in the order they were made
    /// (from the last): cancelling 50 000 idle children went from 1.17x to
    /// 1.08x `TaskTracker` + child tokens, for the same instructions
    /// (benches/PROFILE-NOTES.md, session 18, item 7). The body would make
    /// the token at its first poll anyway.
    #[doc(hidden)]
    #[inline(always)]
    pub fn new_with_token<F>(name: &'static &'static str, policy: Policy, body: F) -> Self
    where
        R: TaskResult,
        F: Future<Output = R> + Send + 'static,
    {
        Self::with_body(Box::new(Body::<F, Tokened>::new(body)), name, policy)
    }

    /// The task of a `#[supervised]` call whose function names neither its
    /// scope nor its token: its body does not take the scope, so that the
    /// runtime does not hand it one, and it holds no `Scope` while it runs.
    #[doc(hidden)]
    #[inline(always)]
    pub fn new_unscoped<F>(name: &'static &'static str, policy: Policy, body: F) -> Self
    where
        R: TaskResult,
        F: Future<Output = R> + Send + 'static,
    {
        Self::with_body(Box::new(Body::<F, Unscoped>::new(body)), name, policy)
    }

    /// The task of a call whose body is boxed already. Always inlined, as
    /// `new` is: otherwise a call cost 8 to 10 instructions more (callgrind,
    /// the nested tree and `spawn_join/10000`).
    #[inline(always)]
    fn with_body(body: Box<dyn LazyBody<BoxFuture<R>>>, name: &'static &'static str, policy: Policy) -> Self {
        Supervised {
            name,
            formatted: None,
            policy,
            body,
            ready: PhantomData,
        }
    }

    /// The task named by `format`, called when the name is first needed
    /// (`#[supervised(name = "chunk-{part}")]`); the function's name if it
    /// panics.
    #[doc(hidden)]
    pub fn formatted<F: FnOnce() -> String + Send + 'static>(mut self, format: F) -> Self {
        self.formatted = Some(Formatted::new(self.name, format));
        self
    }
}

/// The body of a `#[supervised]` call, if it is `Send`: checked apart from
/// [`Supervised::new`], so that a body that is not `Send` is reported at the
/// function's `async` and a result that is not a task result at its return
/// type.
#[doc(hidden)]
pub fn check_send<F: Future + Send>(body: F) -> F {
    body
}

impl<R, S> std::fmt::Debug for Supervised<R, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervised")
            .field("name", &self.name)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl<R: TaskResult, S: 'static> sealed::Sealed for Supervised<R, S> {}

impl<R: TaskResult, S: 'static> Task for Supervised<R, S> {
    type Output = R::Ok;
    type Body = BoxFuture<R>;

    fn into_parts(self) -> Parts<Self::Body> {
        Parts {
            name: Name::of_call(self.name, self.formatted),
            policy: self.policy,
            timeout: None,
            shielded: false,
            start: Start::Lazy(self.body),
        }
    }
}

impl<R: TaskResult, V: Send + 'static> Startable for Supervised<R, Ready<V>> {
    type Ready = V;
}

impl<F> sealed::Sealed for F where F: Future + Send + 'static {}

impl<F> Task for F
where
    F: Future + Send + 'static,
    F::Output: TaskResult,
{
    type Output = <F::Output as TaskResult>::Ok;
    type Body = F;

    fn into_parts(self) -> Parts<Self::Body> {
        Parts {
            name: Name::Fixed(&"task"),
            policy: Policy::FailFast,
            timeout: None,
            shielded: false,
            start: Start::Made(self),
        }
    }
}

/// A task with a name, policy, timeout or shield chosen by
/// [`Task::named`], [`Task::policy`], [`Task::timeout`] or
/// [`Task::shielded`].
#[must_use = "a task does nothing until it is spawned on a scope or run with `taskward::run`"]
#[derive(Debug)]
pub struct Configured<T> {
    task: T,
    name: Option<Cow<'static, str>>,
    policy: Option<Policy>,
    timeout: Option<Duration>,
    shielded: bool,
}

impl<T: Task> Configured<T> {
    fn new(task: T) -> Self {
        Configured {
            task,
            name: None,
            policy: None,
            timeout: None,
            shielded: false,
        }
    }

    /// Gives the task a name (see [`Task::named`]).
    pub fn named(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Chooses the task's policy (see [`Task::policy`]).
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// Gives the task a deadline (see [`Task::timeout`]).
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    /// Shields the task from its parent's cancellation (see
    /// [`Task::shielded`]).
    pub fn shielded(mut self) -> Self {
        self.shielded = true;
        self
    }
}

impl<T> sealed::Sealed for Configured<T> {}

/// A configured task is started as the task it configures: `.timeout` and
/// `.named` keep `start` knowing the value the task sends.
impl<T: Startable> Startable for Configured<T> {
    type Ready = T::Ready;
}

impl<T: Task> Task for Configured<T> {
    type Output = T::Output;
    type Body = T::Body;

    fn into_parts(self) -> Parts<T::Body> {
        let mut parts = self.task.into_parts();
        if let Some(name) = self.name {
            parts.name = Name::Given(name);
        }
        if let Some(policy) = self.policy {
            parts.policy = policy;
        }
        if let Some(limit) = self.timeout {
            parts.timeout = Some(limit);
        }
        parts.shielded |= self.shielded;
        parts
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use std::sync::Arc;

    #[test]
    fn split_keeps_an_io_error_and_a_taskward_error_unboxed() {
        let io = split(Err::<(), _>(std::io::Error::other("disk full")));
        assert!(matches!(io, Err(BodyError::Io(err)) if err.to_string() == "disk full"));

        let failure = Error::with_kind(ErrorKind::Cancelled, Arc::from("a/b"), "aborted");
        let passed_on = split(Err::<(), _>(failure));
        assert!(matches!(passed_on, Err(BodyError::Failure(err)) if err.task() == "a/b"));

        let other = split(Err::<(), _>("no disk"));
        assert!(matches!(other, Err(BodyError::Boxed(err)) if err.to_string() == "no disk"));

        assert!(matches!(split(Ok::<_, std::io::Error>(7)), Ok(7)));
        assert!(matches!(split(()), Ok(())));
    }
}
