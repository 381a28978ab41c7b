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
use std::future::poll_fn;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Poll;

use tokio::sync::oneshot;

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

/// `Scope::start`: spawns `task` and waits until it is ready.
pub(crate) async fn start<V, T>(scope: &Arc<Node>, task: T) -> Result<V, Error>
where
    V: Send + 'static,
    T: Task,
{
    let (link, receiver) = ReadyLink::new();
    let mut child = scope.spawn_with(task, Admission::Queue, Some(link));
    let mut receiver = Some(receiver);
    let mut dropped = false;
    let not_ready = |path: &str, message: String| Error::with_kind(ErrorKind::NotReady, Arc::from(path), message);
    poll_fn(|cx| {
        // A value sent wins over the result: a failure that comes after
        // readiness is not `start`'s.
        if let Some(signal) = receiver.as_mut() {
            match Pin::new(signal).poll(cx) {
                Poll::Ready(Ok(Signal::Value { value, type_name })) => {
                    return Poll::Ready(value.downcast::<V>().map(|value| *value).map_err(|_| {
                        not_ready(
                            child.path(),
                            format!(
                                "it sent a `{type_name}`, but `start` expected a `{}`",
                                std::any::type_name::<V>()
                            ),
                        )
                    }));
                }
                Poll::Ready(Ok(Signal::Ended)) => receiver = None,
                Poll::Ready(Err(_)) => {
                    receiver = None;
                    dropped = true;
                }
                Poll::Pending => {}
            }
        }
        match Pin::new(&mut child).poll(cx) {
            // Claimed here: it does not escalate.
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Ready(Ok(_)) => Poll::Ready(Err(not_ready(
                child.path(),
                "it ended without calling `Ready::send`".to_owned(),
            ))),
            Poll::Pending if dropped => Poll::Ready(Err(not_ready(
                child.path(),
                "it dropped its `Ready` without sending a value, and goes on running".to_owned(),
            ))),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}
