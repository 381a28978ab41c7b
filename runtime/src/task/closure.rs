//! Tasks made from closures: `task(|scope| ..)` and
//! `task_with_ready(|scope, ready| ..)`.

use std::future::Future;
use std::marker::PhantomData;

use super::{Name, Parts, Start, Task, TaskResult, sealed};
use crate::policy::Policy;
use crate::ready::{Ready, Startable};
use crate::scope::Scope;

/// A task made from a closure that receives the new task's [`Scope`]; see
/// [`task()`](crate::task()). With `S = Ready<V>`, the closure receives its
/// [`Ready<V>`](Ready) too and the task is [`Startable`]; see
/// [`task_with_ready()`](crate::task_with_ready()).
#[must_use = "a task does nothing until it is spawned on a scope or run with `taskward::run`"]
pub struct TaskFn<F, S = ()> {
    make: F,
    ready: PhantomData<fn() -> S>,
}

impl<F, S> std::fmt::Debug for TaskFn<F, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskFn").finish_non_exhaustive()
    }
}

/// Makes a task from a closure that is handed the task's own [`Scope`], for
/// work that needs to spawn children but is not worth a named function.
///
/// ```
/// use taskward::Scope;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let doubled = taskward::run(taskward::task(|scope: Scope| async move {
///     let child = scope.spawn(async { Ok::<u32, std::io::Error>(21) });
///     Ok::<_, taskward::Error>(child.await? * 2)
/// }))
/// .await
/// .unwrap();
/// assert_eq!(doubled, 42);
/// # }
/// ```
///
/// As with any `async` block, the error type of a body that uses `?` may need
/// to be written out (`Ok::<_, MyError>(value)`).
pub fn task<F, Fut>(make: F) -> TaskFn<F>
where
    F: FnOnce(Scope) -> Fut + Send + 'static,
    Fut: Future<Output: TaskResult> + Send + 'static,
{
    TaskFn {
        make,
        ready: PhantomData,
    }
}

/// Makes a task from a closure that is handed the task's own [`Scope`] and
/// its [`Ready`], for a task that [`Scope::start`] waits for and that is
/// not worth a named function: `start` knows the type of the value it
/// sends.
///
/// Move the `Ready` into the future the closure returns (use it there): a
/// `Ready` dropped unsent, as a closure parameter that the `async move`
/// block does not name is, makes `start` fail with
/// [`ErrorKind::NotReady`](crate::ErrorKind::NotReady).
///
/// ```
/// use taskward::Scope;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// taskward::run(taskward::task(|scope: Scope| async move {
///     let port = scope
///         .start(taskward::task_with_ready(|scope, ready| async move {
///             ready.send(8080u16); // bind here, then say so
///             scope.cancelled().await; // and serve until cancelled
///         }))
///         .await?;
///     assert_eq!(port, 8080);
///     scope.cancel();
///     Ok::<_, taskward::Error>(())
/// }))
/// .await
/// .unwrap();
/// # }
/// ```
pub fn task_with_ready<F, Fut, V>(make: F) -> TaskFn<F, Ready<V>>
where
    F: FnOnce(Scope, Ready<V>) -> Fut + Send + 'static,
    Fut: Future<Output: TaskResult> + Send + 'static,
    V: Send + 'static,
{
    TaskFn {
        make,
        ready: PhantomData,
    }
}

impl<F, S> sealed::Sealed for TaskFn<F, S> {}

impl<F, Fut> Task for TaskFn<F>
where
    F: FnOnce(Scope) -> Fut + Send + 'static,
    Fut: Future<Output: TaskResult> + Send + 'static,
{
    type Output = <Fut::Output as TaskResult>::Ok;
    type Body = Fut;

    fn into_parts(self) -> Parts<Fut> {
        Parts {
            name: Name::Fixed(&"task"),
            policy: Policy::FailFast,
            timeout: None,
            shielded: false,
            start: Start::WithScope(Box::new(self.make)),
        }
    }
}

impl<F, Fut, V> Task for TaskFn<F, Ready<V>>
where
    F: FnOnce(Scope, Ready<V>) -> Fut + Send + 'static,
    Fut: Future<Output: TaskResult> + Send + 'static,
    V: Send + 'static,
{
    type Output = <Fut::Output as TaskResult>::Ok;
    type Body = Fut;

    fn into_parts(self) -> Parts<Fut> {
        let make = self.make;
        Parts {
            name: Name::Fixed(&"task"),
            policy: Policy::FailFast,
            timeout: None,
            shielded: false,
            start: Start::WithScope(Box::new(move |scope: Scope| {
                let ready = scope.ready();
                make(scope, ready)
            })),
        }
    }
}

impl<F, Fut, V> Startable for TaskFn<F, Ready<V>>
where
    F: FnOnce(Scope, Ready<V>) -> Fut + Send + 'static,
    Fut: Future<Output: TaskResult> + Send + 'static,
    V: Send + 'static,
{
    type Ready = V;
}
