//! Running a task as the root of a tree: [`run`], and [`Root`] for the
//! options (a token to stop the tree from outside, a grace period, shutdown
//! on signals).

use std::any::Any;
use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use crate::cause::CancelCause;
use crate::error::{Error, ErrorKind};
use crate::node::{Driver, Node, Shared};
use crate::scope::Scope;
use crate::task::Task;
use crate::trace;
use crate::tree::TreeMonitor;

/// Runs `task` as the root of a new task tree on the current tokio runtime,
/// and returns its result once the whole tree has finished.
///
/// This is `Root::new().run(task)`: no grace period, no signal handling.
///
/// Dropping the returned future (for example in a `select!` or a timeout)
/// cannot wait for anything: it cancels the root's token and asks every task
/// of the tree to abort, at once. Each task is then dropped, with its body,
/// at its next scheduling point on the runtime's workers, a moment later:
/// right after the drop, a task may still be running on another worker,
/// and what it holds (a bound port, a file) may still be held. For a
/// shutdown that waits until nothing of the tree is alive, cancel the tree
/// through [`Root::token`] (with a [`Root::grace`] period, to abort what
/// does not stop by itself) and await `run` to its end.
///
/// # Errors
///
/// The root's failure: its own `Err` or panic, or a failure of a descendant
/// that nobody handled. Called outside a tokio runtime, it returns an error
/// of kind [`ErrorKind::NoRuntime`].
///
/// ```
/// use taskward::{supervised, Scope};
///
/// #[supervised]
/// async fn hello(scope: &Scope) -> Result<String, std::io::Error> {
///     Ok(format!("hello from {}", scope.path()))
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// assert_eq!(taskward::run(hello()).await.unwrap(), "hello from hello");
/// # }
/// ```
pub async fn run<T: Task>(task: T) -> Result<T::Output, Error> {
    Root::new().run(task).await
}

/// The root of a task tree, with its options: a token to stop the tree from
/// outside, a grace period after which what still runs is aborted, and
/// shutdown on Ctrl-C / SIGTERM.
///
/// [`Root::run`] returns only when nothing of the tree is alive any more:
/// every task has finished or, after an abort, has been dropped and awaited.
///
/// ```
/// use std::time::Duration;
/// use taskward::{supervised, CancellationToken, Root};
///
/// #[supervised]
/// async fn serve(token: CancellationToken) -> std::io::Result<&'static str> {
///     token.cancelled().await; // serve until told to stop
///     Ok("stopped cleanly")
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let root = Root::new().grace(Duration::from_secs(5));
/// let stop = root.token();
/// let tree = tokio::spawn(root.run(serve()));
/// stop.cancel(); // from anywhere: a signal handler, an admin endpoint
/// assert_eq!(tree.await.unwrap().unwrap(), "stopped cleanly");
/// # }
/// ```
#[derive(Debug, Default)]
#[must_use = "a `Root` does nothing until `run` is called"]
pub struct Root {
    token: CancellationToken,
    grace: Option<Duration>,
    signals: bool,
    monitor: TreeMonitor,
}

impl Root {
    /// A root with no grace period (a cancelled tree is waited for until
    /// it stops by itself) and no signal handling.
    pub fn new() -> Self {
        Root::default()
    }

    /// The token that cancels the whole tree: cancel it from outside to
    /// start a shutdown. It may be taken before or while the tree runs.
    ///
    /// The root task's own token is a child of this one, not this one: a
    /// tree cancels its own token when it finishes (so that whatever was
    /// handed it learns its owner is gone), and that must not flow back
    /// out to whoever holds this token. Cancellation flows in; completion
    /// does not flow out.
    ///
    /// ```
    /// # use taskward::{Root, Scope};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let root = Root::new();
    /// let token = root.token();
    /// token.cancel(); // cancelled before it even starts
    /// let seen = root.run(taskward::task(|scope: Scope| async move { Ok::<_, std::io::Error>(scope.is_cancelled()) }));
    /// assert!(seen.await.unwrap());
    /// assert!(token.is_cancelled());
    /// # }
    /// ```
    #[must_use]
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// A handle that takes a snapshot of the whole tree at any moment while
    /// it runs (see [`TreeMonitor`]); it may be taken before `run`.
    ///
    /// ```
    /// # use taskward::{Root, Scope};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let root = Root::new();
    /// let monitor = root.monitor();
    /// assert!(monitor.snapshot().is_empty()); // not running yet
    /// root.run(taskward::task(move |scope: Scope| async move {
    ///     scope.spawn(async {});
    ///     assert_eq!(monitor.snapshot().tasks().next().unwrap().path(), "task");
    /// }))
    /// .await
    /// .unwrap();
    /// # }
    /// ```
    #[must_use]
    pub fn monitor(&self) -> TreeMonitor {
        self.monitor.clone()
    }

    /// Sets the grace period: once the tree is cancelled (through
    /// [`token`](Root::token), a signal, the root's own scope, or a failing
    /// child under [`Policy::FailFast`](crate::Policy::FailFast)), every task
    /// still running when it ends is aborted where it stands and reported
    /// [`ErrorKind::Cancelled`], naming the task.
    ///
    /// The grace period also applies to tasks past their
    /// [`timeout`](crate::Task::timeout) (1 second when no grace period is
    /// set). A zero grace period aborts, at the next poll, whatever did not
    /// stop right away; a huge one is capped by tokio at about 30 years.
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskward::{ErrorKind, Root, Scope};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let root = Root::new().grace(Duration::from_millis(10));
    /// root.token().cancel();
    /// let err = root
    ///     .run(taskward::task(|scope: Scope| async move {
    ///         // Ignores cancellation: aborted when the grace period ends.
    ///         scope.spawn(std::future::pending::<()>().named("stubborn"));
    ///     }))
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Cancelled);
    /// assert_eq!(err.task(), "task/stubborn#0");
    /// # }
    /// # use taskward::Task;
    /// ```
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = Some(grace);
        self
    }

    /// Cancels the tree on Ctrl-C (and on SIGTERM on Unix), as if
    /// [`token`](Root::token) were cancelled; a second signal aborts at once
    /// whatever still runs, without waiting for the grace period.
    ///
    /// The handlers are installed when [`run`](Root::run) starts. As for
    /// any tokio signal, the runtime needs its I/O driver
    /// (`#[tokio::main]` and `Builder::enable_all` have it), and, as tokio
    /// documents, once installed a handler stays for the life of the
    /// process: after `run` has returned, Ctrl-C no longer ends the process
    /// by itself.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use taskward::{supervised, CancellationToken, Root};
    ///
    /// #[supervised]
    /// async fn serve(token: CancellationToken) {
    ///     token.cancelled().await;
    /// }
    ///
    /// #[tokio::main]
    /// async fn main() -> Result<(), taskward::Error> {
    ///     Root::new()
    ///         .grace(Duration::from_secs(10))
    ///         .shutdown_on_signal()
    ///         .run(serve())
    ///         .await
    /// }
    /// ```
    pub fn shutdown_on_signal(mut self) -> Self {
        self.signals = true;
        self
    }

    /// Runs `task` as the root of a new tree on the current tokio runtime,
    /// and returns its result once nothing of the tree is alive.
    ///
    /// A tree that is cancelled and stops cooperatively returns whatever its
    /// tasks return; what the grace period aborted is reported
    /// [`ErrorKind::Cancelled`].
    ///
    /// # Errors
    ///
    /// As [`run`](crate::run): the root's failure, a failure nobody handled,
    /// a task aborted at the end of the grace period, or
    /// [`ErrorKind::NoRuntime`] outside a tokio runtime.
    ///
    /// # Panics
    ///
    /// With [`shutdown_on_signal`](Root::shutdown_on_signal), if the tokio
    /// runtime has no I/O driver; with a grace period or a timeout, if it has
    /// no time driver (tokio's own checks).
    ///
    /// ```
    /// # use taskward::Root;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let answer = Root::new().run(async { Ok::<_, std::io::Error>(42) }).await;
    /// assert_eq!(answer.unwrap(), 42);
    /// # }
    /// ```
    pub async fn run<T: Task>(self, task: T) -> Result<T::Output, Error> {
        let parts = task.into_parts();
        let Ok(runtime) = Handle::try_current() else {
            return Err(Error::with_kind(
                ErrorKind::NoRuntime,
                Arc::from(parts.name.as_str()),
                "`taskward::run` was called outside a tokio runtime; call it from within one \
                 (for example from `#[tokio::main]`, or `Runtime::block_on`)",
            ));
        };
        // Installed before the body first runs, so that no signal sent
        // after `run` started is missed.
        let signals = if self.signals { signal::Signals::install() } else { None };
        let mut tree = Shared::new(runtime, self.grace);
        tree.stop = Some(self.token.clone());
        let tree = Arc::new(tree);
        let node = Node::root(
            tree,
            parts.name.clone(),
            parts.policy,
            self.token.child_token(),
            parts.timeout,
        );
        trace::open_span(&node);
        self.monitor.watch(&node);
        let scope = Scope::from_node(Arc::clone(&node));
        // A `task(..)` closure runs here: its panic becomes the panic of the
        // body, so that the root reports it (and joins whatever the closure
        // spawned) as any other.
        let (body, lazy) = match catch_unwind(AssertUnwindSafe(|| parts.into_body(&scope))) {
            Ok((body, lazy)) => (RootBody::Made { body }, lazy),
            Err(payload) => (RootBody::Panicked { payload: Some(payload) }, false),
        };
        drop(scope);

        let grace = async {
            if let Some(grace) = self.grace {
                node.token().cancelled().await;
                event!(
                    debug,
                    root = &**node.path(),
                    ?grace,
                    "tree cancelled; grace period started"
                );
                tokio::time::sleep(grace).await;
                event!(
                    warn,
                    root = &**node.path(),
                    "grace period over; aborting what still runs"
                );
                node.kill();
            }
        };
        let on_signals = async {
            if let Some(mut signals) = signals {
                if signals.recv().await {
                    event!(info, root = &**node.path(), "signal received; cancelling the tree");
                    node.keep_cause(|| CancelCause::Shutdown { signal: true });
                    self.token.cancel();
                }
                if signals.recv().await {
                    event!(warn, root = &**node.path(), "second signal received; aborting the tree");
                    node.kill();
                }
            }
        };
        let run = async {
            // The root has no parent to abort it (dropping this future does):
            // its alarm is only ever `KILL`.
            Driver::new(Arc::clone(&node), body, lazy, None)
                .await
                .unwrap_or_else(|| unreachable!("a root is never aborted through its alarm"))
        };
        alongside(alongside(run, grace), on_signals).await
    }

    /// Runs `task` as [`run`](Root::run) does, inside a
    /// [`LocalSet`](tokio::task::LocalSet) made for it, so that the root's
    /// body can start `!Send` children with
    /// [`Scope::spawn_local`](crate::Scope::spawn_local) (and those local
    /// children can start more). The tree's other tasks run on the
    /// runtime as usual. Returns once every task, local or not, has
    /// finished.
    ///
    /// The returned future is not `Send`: await it in `main` (as
    /// `#[tokio::main]` does) or in `Runtime::block_on`, not in a spawned
    /// task.
    ///
    /// # Errors
    ///
    /// As [`run`](Root::run).
    ///
    /// ```
    /// use std::rc::Rc;
    /// use taskward::{Root, Scope};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let len = Root::new()
    ///     .run_local(taskward::task(|scope: Scope| async move {
    ///         let name = Rc::new(String::from("local"));
    ///         scope
    ///             .spawn_local(async move {
    ///                 tokio::task::yield_now().await;
    ///                 Ok::<_, std::io::Error>(name.len())
    ///             })
    ///             .await
    ///     }))
    ///     .await
    ///     .unwrap();
    /// assert_eq!(len, 5);
    /// # }
    /// ```
    pub async fn run_local<T: Task>(self, task: T) -> Result<T::Output, Error> {
        tokio::task::LocalSet::new()
            .run_until(crate::node::InLocalSet::new(self.run(task)))
            .await
    }
}

pin_project_lite::pin_project! {
    /// The root's body, or the panic of the closure that was to make it,
    /// raised again at the body's first poll.
    #[project = RootBodyProj]
    enum RootBody<B> {
        Made { #[pin] body: B },
        Panicked { payload: Option<Box<dyn Any + Send>> },
    }
}

impl<B: Future> Future for RootBody<B> {
    type Output = B::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<B::Output> {
        match self.project() {
            RootBodyProj::Made { body } => body.poll(cx),
            RootBodyProj::Panicked { payload } => match payload.take() {
                Some(payload) => std::panic::resume_unwind(payload),
                None => unreachable!("a body that panicked is not polled again"),
            },
        }
    }
}

/// Ctrl-C, and SIGTERM on Unix. (None when built with `--cfg loom`, for the
/// loom model of the runtime: tokio has no signals then.)
mod signal {
    #[cfg(all(unix, not(loom)))]
    use tokio::signal::unix::{Signal, SignalKind, signal};

    pub(super) struct Signals {
        #[cfg(all(unix, not(loom)))]
        interrupt: Signal,
        #[cfg(all(unix, not(loom)))]
        terminate: Signal,
        #[cfg(all(windows, not(loom)))]
        ctrl_c: tokio::signal::windows::CtrlC,
    }

    impl Signals {
        /// The handlers, or `None` (reported as a tracing event) if the
        /// system refused them.
        pub(super) fn install() -> Option<Self> {
            match Self::try_install() {
                Ok(signals) => Some(signals),
                Err(err) => {
                    crate::trace::signals_unavailable(&err);
                    None
                }
            }
        }

        #[cfg(all(unix, not(loom)))]
        fn try_install() -> std::io::Result<Self> {
            Ok(Signals {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
            })
        }

        #[cfg(all(windows, not(loom)))]
        fn try_install() -> std::io::Result<Self> {
            Ok(Signals {
                ctrl_c: tokio::signal::windows::ctrl_c()?,
            })
        }

        #[cfg(any(loom, not(any(unix, windows))))]
        fn try_install() -> std::io::Result<Self> {
            Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "no signals on this platform",
            ))
        }

        /// Waits for the next signal; `false` if none can come any more.
        pub(super) async fn recv(&mut self) -> bool {
            std::future::poll_fn(|cx| self.poll_recv(cx)).await.is_some()
        }

        #[cfg(all(unix, not(loom)))]
        fn poll_recv(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<()>> {
            if let std::task::Poll::Ready(got) = self.interrupt.poll_recv(cx) {
                return std::task::Poll::Ready(got);
            }
            self.terminate.poll_recv(cx)
        }

        #[cfg(all(windows, not(loom)))]
        fn poll_recv(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<()>> {
            self.ctrl_c.poll_recv(cx)
        }

        #[cfg(any(loom, not(any(unix, windows))))]
        fn poll_recv(&mut self, _cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<()>> {
            std::task::Poll::Ready(None)
        }
    }
}

/// Polls `main` to its end while also driving `side` (until `side` ends).
pub(crate) async fn alongside<M: Future, S: Future<Output = ()>>(main: M, side: S) -> M::Output {
    let mut main = pin!(main);
    let mut side = pin!(side);
    let mut side_done = false;
    poll_fn(|cx| {
        if let Poll::Ready(output) = main.as_mut().poll(cx) {
            return Poll::Ready(output);
        }
        if !side_done {
            side_done = side.as_mut().poll(cx).is_ready();
        }
        Poll::Pending
    })
    .await
}

/// The body of the `fn main` that `#[taskward::main]` writes: builds the
/// tokio runtime, runs `task` as the root of a tree that Ctrl-C / SIGTERM
/// shut down (with `grace`, if given), and on failure prints the full error
/// report (`{:#}`) to stderr and exits with code 1. This is the one place
/// where taskward writes to stderr: it is the program's own `main`.
pub(crate) fn run_main<T: Task<Output = ()>>(
    flavor: crate::__private::Flavor,
    grace: Option<Duration>,
    task: T,
) -> std::process::ExitCode {
    use crate::__private::Flavor;

    let mut builder = match flavor {
        Flavor::CurrentThread => tokio::runtime::Builder::new_current_thread(),
        Flavor::MultiThread(threads) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            if let Some(threads) = threads {
                builder.worker_threads(threads);
            }
            builder
        }
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("Error: cannot start the tokio runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let mut root = Root::new().shutdown_on_signal();
    if let Some(grace) = grace {
        root = root.grace(grace);
    }
    match runtime.block_on(root.run(task)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("Error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
