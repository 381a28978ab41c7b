//! Readiness: a child tells the task that started it that it is ready
//! (Trio's `start`, OTP's `start_link`).
//!
//! `Scope::start` spawns the child with a `ReadyLink`: the sending half of a
//! one-shot channel, kept on the child's node. The child's [`Ready`] sends
//! its value through it. A task spawned with `spawn` has no link, and a
//! task that takes no `Ready` never looks at it: neither pays for it.
//!
//! What `start` must tell apart is why the channel closed without a value:
//! the child dropped its `Ready` and goes on running (`start` fails at once,
//! the child stays under the scope), or the child's body ended (`start`
//! takes the child's result, so that a failure before readiness is claimed
//! by `start` and does not escalate). A `Ready` dropped while the body is
//! being polled (or dropped) may be the body ending, so the node decides
//! after that poll; the end of the body is signalled with an explicit
//! [`Signal::Ended`].

use std::any::Any;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use tokio::sync::oneshot;

use crate::child::Child;
use crate::error::{Error, ErrorKind};
use crate::node::{Admission, Node};
use crate::task::Task;

/// What goes from the child to `start`.
enum Signal {
    /// `Ready::send` was called.
    Value {
        value: Box<dyn Any + Send>,
        type_name: &'static str,
    },
    /// The body ended without sending.
    Ended,
}

/// The child's end of a `Scope::start` call.
pub(crate) struct ReadyLink {
    state: Mutex<LinkState>,
}

struct LinkState {
    sender: Option<oneshot::Sender<Signal>>,
    /// `Ready` handles alive.
    holders: usize,
    /// The node is polling or dropping the body.
    in_body: bool,
    /// The last `Ready` was dropped unsent while `in_body`.
    orphaned: bool,
}

impl ReadyLink {
    fn new() -> (Arc<Self>, oneshot::Receiver<Signal>) {
        let (sender, receiver) = oneshot::channel();
        let link = ReadyLink {
            state: Mutex::new(LinkState {
                sender: Some(sender),
                holders: 0,
                in_body: false,
                orphaned: false,
            }),
        };
        (Arc::new(link), receiver)
    }

    fn lock(&self) -> MutexGuard<'_, LinkState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The node is about to poll (or drop) the body.
    pub(crate) fn enter(&self) {
        self.lock().in_body = true;
    }

    /// The node has polled (or dropped) the body; `running` when the body
    /// goes on. A `Ready` dropped meanwhile closes the channel only then.
    pub(crate) fn leave(&self, running: bool) {
        let mut state = self.lock();
        state.in_body = false;
        if std::mem::take(&mut state.orphaned) && running && state.holders == 0 {
            state.sender = None;
        }
    }

    /// The body has ended (the node is joining its children).
    pub(crate) fn body_ended(&self) {
        let sender = self.lock().sender.take();
        if let Some(sender) = sender {
            // `start` may have given up waiting: nothing to tell then.
            let _ = sender.send(Signal::Ended);
        }
    }
}

/// How a task tells [`Scope::start`](crate::Scope::start) that it is ready,
/// and with what value (a server's bound address, a connection pool).
///
/// A `#[supervised]` function receives it as a `Ready<T>` parameter, which
/// the attribute recognises like the scope and the token; a
/// [`task()`](crate::task()) closure gets it from
/// [`Scope::ready`](crate::Scope::ready).
///
/// [`send`](Ready::send) it once the task is ready; the task goes on running
/// under its scope. A task that drops it, or ends, without sending makes
/// `start` fail with [`ErrorKind::NotReady`]. In a task spawned with
/// [`Scope::spawn`](crate::Scope::spawn) rather than `start`, nobody waits
/// for it and sending does nothing.
///
/// ```
/// use std::net::SocketAddr;
/// use taskward::{supervised, Ready, Scope};
///
/// #[supervised]
/// async fn server(ready: Ready<SocketAddr>) -> std::io::Result<()> {
///     let addr: SocketAddr = "127.0.0.1:8080".parse().unwrap(); // bind here
///     ready.send(addr);
///     // ... serve until cancelled ...
///     Ok(())
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// taskward::run(taskward::task(|scope: Scope| async move {
///     let addr: SocketAddr = scope.start(server()).await?;
///     assert_eq!(addr.port(), 8080);
///     Ok::<_, taskward::Error>(())
/// }))
/// .await
/// .unwrap();
/// # }
/// ```
pub struct Ready<T> {
    link: Option<Arc<ReadyLink>>,
    value: PhantomData<fn(T)>,
}

impl<T: Send + 'static> Ready<T> {
    /// The readiness handle of the task that owns `node`.
    pub(crate) fn of(node: &Node) -> Self {
        let link = node.ready_link().cloned();
        if let Some(link) = &link {
            link.lock().holders += 1;
        }
        Ready {
            link,
            value: PhantomData,
        }
    }

    /// Tells the task that started this one that it is ready: its
    /// [`Scope::start`](crate::Scope::start) returns `Ok(value)`.
    pub fn send(self, value: T) {
        let Some(link) = &self.link else {
            return;
        };
        let sender = link.lock().sender.take();
        if let Some(sender) = sender {
            let signal = Signal::Value {
                value: Box::new(value),
                type_name: std::any::type_name::<T>(),
            };
            // `start` may have given up waiting: nothing to tell then.
            let _ = sender.send(signal);
        }
    }
}

impl<T> Drop for Ready<T> {
    fn drop(&mut self) {
        let Some(link) = &self.link else {
            return;
        };
        let mut state = link.lock();
        state.holders -= 1;
        if state.holders == 0 && state.sender.is_some() {
            if state.in_body {
                state.orphaned = true;
            } else {
                state.sender = None;
            }
        }
    }
}

impl<T> std::fmt::Debug for Ready<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let awaited = self.link.as_ref().is_some_and(|link| link.lock().sender.is_some());
        f.debug_struct("Ready")
            .field("type", &std::any::type_name::<T>())
            .field("awaited", &awaited)
            .finish()
    }
}

/// A task that says when it is ready, with a value of type
/// [`Ready`](Startable::Ready): what [`Scope::start`](crate::Scope::start)
/// accepts.
///
/// The call of a `#[supervised]` function that takes a `Ready<V>`
/// parameter is `Startable<Ready = V>`, and so is a
/// [`task_with_ready()`](crate::task_with_ready()) closure whose `Ready` is
/// a `Ready<V>`; [`Task::named`], [`Task::timeout`], [`Task::policy`] and
/// [`Task::shielded`] keep it startable. A task that takes no `Ready` (a
/// plain future, a [`task()`](crate::task()) closure,
/// [`restart`](crate::restart()), [`race`](crate::race())) is not: `start`
/// would have nothing to wait for, and giving it one is a compile error.
///
/// So `start` needs no annotation, and a value of another type is a compile
/// error:
///
/// ```
/// use std::net::SocketAddr;
/// use taskward::{supervised, Ready, Scope};
///
/// #[supervised]
/// async fn server(scope: &Scope, ready: Ready<SocketAddr>) -> std::io::Result<()> {
///     ready.send(SocketAddr::from(([127, 0, 0, 1], 8080))); // bind here
///     scope.cancelled().await;
///     Ok(())
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// taskward::run(taskward::task(|scope: Scope| async move {
///     let addr = scope.start(server()).await?; // a `SocketAddr`
///     assert_eq!(addr.port(), 8080);
///     scope.cancel();
///     Ok::<_, taskward::Error>(())
/// }))
/// .await
/// .unwrap();
/// # }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` takes no `Ready<T>`, so `scope.start(..)` cannot wait for it to be ready",
    label = "this task never says it is ready",
    note = "give the `#[supervised]` fn a `ready: Ready<T>` parameter and call `ready.send(value)` once it is ready, or make the task with `taskward::task_with_ready(|scope, ready| ..)`",
    note = "to run a child without waiting for it to be ready, use `scope.spawn(..)`"
)]
pub trait Startable: Task {
    /// The value the task sends with [`Ready::send`], which `start`
    /// returns.
    type Ready: Send + 'static;
}

/// `Scope::start`: the future that spawns `task` at its first poll and
/// then waits until it is ready.
pub(crate) fn start<V, T>(scope: &Arc<Node>, task: T) -> Starting<V>
where
    V: Send + 'static,
    T: Task,
{
    let (link, receiver) = ReadyLink::new();
    Starting {
        receiver: Some(receiver),
        child: Box::new(Launch::Pending {
            scope: Arc::clone(scope),
            task,
            link,
        }),
        dropped: false,
        value: PhantomData,
    }
}

/// The future of [`Scope::start`](crate::Scope::start): it starts the task
/// when first polled, and gives the value the task sends to its
/// [`Ready`], or why it never became ready.
///
/// A named type, so that a task that cannot be started is one error, at
/// the call of `start`, rather than one more at each use of its future.
///
/// ```
/// use taskward::{Ready, Scope, Starting};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// taskward::run(taskward::task(|scope: Scope| async move {
///     let starting: Starting<u16> = scope.start(taskward::task_with_ready(|_, ready: Ready<u16>| async move {
///         ready.send(8080);
///     }));
///     assert_eq!(starting.await?, 8080);
///     Ok::<_, taskward::Error>(())
/// }))
/// .await
/// .unwrap();
/// # }
/// ```
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct Starting<V> {
    receiver: Option<oneshot::Receiver<Signal>>,
    /// The task, until the first poll spawns it; then its handle. Boxed so
    /// that the task's type is not in this one's: rustc cannot prove `Send`
    /// a future holding, across an `.await`, a type whose lifetime it
    /// erased (`Ready<&'static str>`: "`Send` is not general enough").
    child: Box<dyn Started>,
    /// The child dropped its `Ready` without sending.
    dropped: bool,
    value: PhantomData<fn() -> V>,
}

impl<V> std::fmt::Debug for Starting<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Starting")
            .field("type", &std::any::type_name::<V>())
            .field("path", &self.child.path())
            .finish_non_exhaustive()
    }
}

/// The child of a `start`, whatever its type: `start` only needs to know
/// whether it failed.
trait Started: Send {
    /// Spawns the task, the first time.
    fn launch(&mut self);
    fn poll_end(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>>;
    /// The child's path, once it is spawned.
    fn path(&self) -> Option<&str>;
}

enum Launch<T: Task> {
    Pending {
        scope: Arc<Node>,
        task: T,
        link: Arc<ReadyLink>,
    },
    Spawned(Child<T::Output>),
    /// Only while `launch` replaces `Pending`.
    Launching,
}

impl<T: Task> Started for Launch<T> {
    fn launch(&mut self) {
        if let Launch::Pending { .. } = self
            && let Launch::Pending { scope, task, link } = std::mem::replace(self, Launch::Launching)
        {
            *self = Launch::Spawned(scope.spawn_with(task, Admission::Queue, Some(link)));
        }
    }

    fn poll_end(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.launch();
        match self {
            Launch::Spawned(child) => Pin::new(child).poll(cx).map(|result| result.map(drop)),
            Launch::Pending { .. } | Launch::Launching => unreachable!("launched above"),
        }
    }

    fn path(&self) -> Option<&str> {
        match self {
            Launch::Spawned(child) => Some(child.path()),
            Launch::Pending { .. } | Launch::Launching => None,
        }
    }
}

impl<V: Send + 'static> Future for Starting<V> {
    type Output = Result<V, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<V, Error>> {
        let this = self.get_mut();
        this.child.launch();
        let not_ready = |child: &dyn Started, message: String| {
            let path = child.path().unwrap_or_default();
            Error::with_kind(ErrorKind::NotReady, Arc::from(path), message)
        };
        // A value sent wins over the result: a failure that comes after
        // readiness is not `start`'s.
        if let Some(signal) = this.receiver.as_mut() {
            match Pin::new(signal).poll(cx) {
                Poll::Ready(Ok(Signal::Value { value, type_name })) => {
                    return Poll::Ready(value.downcast::<V>().map(|value| *value).map_err(|_| {
                        not_ready(
                            &*this.child,
                            format!(
                                "it sent a `{type_name}`, but `start` expected a `{}`",
                                std::any::type_name::<V>()
                            ),
                        )
                    }));
                }
                Poll::Ready(Ok(Signal::Ended)) => this.receiver = None,
                Poll::Ready(Err(_)) => {
                    this.receiver = None;
                    this.dropped = true;
                }
                Poll::Pending => {}
            }
        }
        match this.child.poll_end(cx) {
            // Claimed here: it does not escalate.
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Ready(Ok(())) => Poll::Ready(Err(not_ready(
                &*this.child,
                "it ended without calling `Ready::send`".to_owned(),
            ))),
            Poll::Pending if this.dropped => Poll::Ready(Err(not_ready(
                &*this.child,
                "it dropped its `Ready` without sending a value, and goes on running".to_owned(),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}
