//! `!Send` tasks: `#[supervised(local)]` calls and futures, for
//! `Scope::spawn_local`.

use std::future::Future;
use std::pin::Pin;

use super::{BoxFuture, Formatted, Name, Parts, Start, Task, TaskResult, sealed};
use crate::policy::Policy;

/// The task returned by calling a `#[supervised(local)]` function, whose
/// body need not be `Send` (it may hold an `Rc` across an `.await`): a
/// [`LocalTask`], for [`Scope::spawn_local`](crate::Scope::spawn_local),
/// not a [`Task`]. Its body receives its own scope, as any supervised
/// function's does.
///
/// ```
/// use std::rc::Rc;
/// use taskward::{supervised, Root, Scope};
///
/// #[supervised(local)]
/// async fn shared_count(scope: &Scope, n: usize) -> Result<String, std::io::Error> {
///     let shared = Rc::new(n); // not `Send`
///     tokio::task::yield_now().await; // held across an `.await`
///     Ok(format!("{} counted {shared}", scope.path()))
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let out = Root::new()
///     .run_local(taskward::task(|scope: Scope| async move { scope.spawn_local(shared_count(3)).await }))
///     .await
///     .unwrap();
/// assert_eq!(out, "task/shared_count#0 counted 3");
/// # }
/// ```
#[must_use = "a task does nothing until it is spawned with `scope.spawn_local`"]
pub struct LocalSupervised<R> {
    name: &'static &'static str,
    formatted: Option<Formatted>,
    policy: Policy,
    /// The body, made at the call; it is handed its scope at its first
    /// poll, and takes it if its function names its scope or token.
    body: Pin<Box<dyn Future<Output = R> + 'static>>,
}

impl<R> LocalSupervised<R> {
    /// The task of a `#[supervised(local)]` call.
    #[doc(hidden)]
    pub fn new<F>(name: &'static &'static str, policy: Policy, body: F) -> Self
    where
        R: TaskResult,
        F: Future<Output = R> + 'static,
    {
        LocalSupervised {
            name,
            formatted: None,
            policy,
            body: Box::pin(body),
        }
    }

    /// The task named by `format` (see [`Supervised::formatted`]).
    #[doc(hidden)]
    pub fn formatted<F: FnOnce() -> String + Send + 'static>(mut self, format: F) -> Self {
        self.formatted = Some(Formatted::new(self.name, format));
        self
    }
}

impl<R> std::fmt::Debug for LocalSupervised<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalSupervised")
            .field("name", &self.name)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// How a local task wants to be started: its name and policy, its body,
/// and whether the body takes its scope at its first poll.
#[doc(hidden)]
#[derive(Debug)]
pub struct LocalParts<B> {
    pub(crate) parts: Parts<()>,
    pub(crate) body: B,
    pub(crate) lazy: bool,
}

/// What [`Scope::spawn_local`](crate::Scope::spawn_local) runs on the
/// thread's `LocalSet`: a future that need not be `Send`, whose output is
/// `Result<T, E>` or `()`, or the call of a `#[supervised(local)]` function
/// (a [`LocalSupervised`]).
///
/// ```
/// use std::cell::RefCell;
/// use std::rc::Rc;
/// use taskward::{LocalTask, Root, Scope};
///
/// fn tally(log: Rc<RefCell<Vec<u32>>>) -> impl LocalTask<Output = usize> {
///     async move {
///         log.borrow_mut().push(1);
///         tokio::task::yield_now().await;
///         Ok::<_, std::io::Error>(log.borrow().len())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let len = Root::new()
///     .run_local(taskward::task(|scope: Scope| async move {
///         scope.spawn_local(tally(Rc::default())).await
///     }))
///     .await
///     .unwrap();
/// assert_eq!(len, 1);
/// # }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a task that `spawn_local` can run",
    label = "not a `taskward::LocalTask`",
    note = "a local task is a future whose output is `Result<T, E>` or `()`, or the call of a `#[supervised(local)]` fn"
)]
pub trait LocalTask: sealed::LocalSealed + Sized + 'static {
    /// The value the task produces when it succeeds.
    type Output: Send + 'static;

    #[doc(hidden)]
    type Body: Future<Output: TaskResult<Ok = Self::Output>> + 'static;

    #[doc(hidden)]
    fn into_local_parts(self) -> LocalParts<Self::Body>;
}

impl<F> sealed::LocalSealed for F where F: Future + 'static {}

impl<F> LocalTask for F
where
    F: Future<Output: TaskResult> + 'static,
{
    type Output = <F::Output as TaskResult>::Ok;
    type Body = F;

    fn into_local_parts(self) -> LocalParts<F> {
        LocalParts {
            parts: Parts {
                name: Name::Fixed(&"local"),
                policy: Policy::FailFast,
                timeout: None,
                shielded: false,
                start: Start::Made(()),
            },
            body: self,
            lazy: false,
        }
    }
}

impl<R: TaskResult> sealed::Sealed for LocalSupervised<R> {}

/// Never applies: a `LocalSupervised` holds a body that is not `Send`. It
/// is here for the compiler's message only: with a second impl that could
/// apply, `scope.spawn(local_task())` is reported as `Task` not implemented
/// (whose message names `spawn_local`), not as the blanket impl's "not a
/// future" and "not `Send`". (`#[diagnostic::do_not_recommend]` on the
/// blanket impl would do the same, but would also hide which value of a
/// plain future is not `Send`.)
impl<R: TaskResult> Task for LocalSupervised<R>
where
    Self: Send,
{
    type Output = R::Ok;
    type Body = BoxFuture<R>;

    fn into_parts(self) -> Parts<BoxFuture<R>> {
        unreachable!("a `LocalSupervised` is never `Send`")
    }
}

impl<R: TaskResult> sealed::LocalSealed for LocalSupervised<R> {}

impl<R: TaskResult> LocalTask for LocalSupervised<R> {
    type Output = R::Ok;
    type Body = Pin<Box<dyn Future<Output = R> + 'static>>;

    fn into_local_parts(self) -> LocalParts<Self::Body> {
        LocalParts {
            parts: Parts {
                name: Name::of_call(self.name, self.formatted),
                policy: self.policy,
                timeout: None,
                shielded: false,
                start: Start::Made(()),
            },
            body: self.body,
            lazy: true,
        }
    }
}
