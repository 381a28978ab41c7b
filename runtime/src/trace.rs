//! tracing integration: a span per task carrying its path, and events at the
//! moments that matter. With the `tracing` feature off, every function here
//! is empty: no span is made or kept, and a task's `Driver` enters none.

/// `tracing`'s event macros, compiled away with the `tracing` feature off.
macro_rules! event {
    ($level:ident, $($arg:tt)*) => {
        #[cfg(feature = "tracing")]
        ::tracing::$level!($($arg)*);
    };
}

use crate::error::Error;
use crate::node::Node;

/// Whether a task's span may be wanted: a subscriber that may take
/// `debug` spans is installed. Only then does a node make room for one (its
/// `Extra`): a span kept in the task's future would make every tokio task
/// larger, wanted or not.
#[inline]
pub(crate) fn spans_wanted() -> bool {
    #[cfg(feature = "tracing")]
    return tracing::level_enabled!(tracing::Level::DEBUG);
    #[cfg(not(feature = "tracing"))]
    false
}

/// Makes the task's span (`task` with a `path` field), once its path is
/// known. The path is only built when a subscriber is interested in it.
#[inline]
pub(crate) fn open_span(node: &Node) {
    #[cfg(feature = "tracing")]
    if let Some(cell) = node.span_cell() {
        cell.get_or_init(|| tracing::debug_span!("task", path = &**node.path()));
    }
    #[cfg(not(feature = "tracing"))]
    let _ = node;
}

/// Enters the task's span, if it has one, until the guard is dropped.
/// Inlined: most tasks have none, and a call returning an empty guard to
/// be dropped cost about 65 instructions a poll.
#[cfg(feature = "tracing")]
#[inline]
pub(crate) fn enter(node: &Node) -> Option<tracing::span::EnteredSpan> {
    node.span_cell()?.get().map(|span| span.clone().entered())
}

/// Without the `tracing` feature there is no span to enter.
#[cfg(not(feature = "tracing"))]
pub(crate) fn enter(_node: &Node) -> Option<std::convert::Infallible> {
    None
}

/// Whether the task has a span (see `spans_wanted`). The `debug` events of
/// every task, its start and its end, are sent only then: a task spawned
/// with no subscriber interested does not even ask tracing's global level,
/// an atomic that shares its cache line with tokio's task id counter,
/// which every spawn writes (in profiles of a spawn-heavy load, that one
/// read cost about 3% of the time).
#[cfg(feature = "tracing")]
fn has_span(node: &Node) -> bool {
    node.span_cell().is_some_and(|cell| cell.get().is_some())
}

/// The task's body is about to be polled for the first time.
pub(crate) fn started(node: &Node) {
    #[cfg(feature = "tracing")]
    if has_span(node) {
        tracing::debug!("task started");
    }
    let _ = node;
}

/// Sends an event that formats user values (an error's `Display`): a
/// panic there must not reach the runtime's bookkeeping, nor change what
/// is delivered. The panic's payload is forgotten, not dropped: its own
/// `Drop` is user code too.
#[cfg(feature = "tracing")]
fn quietly(send: impl FnOnce()) {
    if let Err(payload) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(send)) {
        std::mem::forget(payload);
    }
}

/// The task's own body returned `Err` or panicked; `passed_on` when its
/// `Err` is a child's failure passed on with `?`, reported where it began.
pub(crate) fn body_failed(err: &Error, passed_on: bool) {
    #[cfg(feature = "tracing")]
    if passed_on {
        quietly(|| tracing::debug!(error = %err, "task passed on a failure"));
    } else {
        quietly(|| tracing::warn!(error = %err, "task failed"));
    }
    #[cfg(not(feature = "tracing"))]
    let _ = (err, passed_on);
}

/// The task's body was dropped where it stood: it was still running when
/// its grace period (after a cancellation or its deadline) ended.
pub(crate) fn aborted(node: &Node) {
    #[cfg(feature = "tracing")]
    tracing::error!(
        task = &**node.path(),
        "task aborted: still running when its grace period ended"
    );
    #[cfg(not(feature = "tracing"))]
    let _ = node;
}

/// Whether a subscriber may take the failure events (`error` level): only
/// then is a failure kept (a clone, an `Arc` count) to be reported after
/// the lock under which it was routed.
pub(crate) fn wanted() -> bool {
    #[cfg(feature = "tracing")]
    return tracing::level_enabled!(tracing::Level::ERROR);
    #[cfg(not(feature = "tracing"))]
    false
}

/// The alarm was raised (a grace period ended, or the tree was dropped)
/// while a blocking closure runs: a thread cannot be stopped, so its
/// parent waits until it returns.
pub(crate) fn blocking_overran(node: &Node) {
    #[cfg(feature = "tracing")]
    tracing::warn!(
        task = &**node.path(),
        "blocking closure still running when it was to be aborted; a thread cannot be stopped, so it is waited for until it returns"
    );
    #[cfg(not(feature = "tracing"))]
    let _ = node;
}

/// A failure nobody handled becomes the failure of `node`.
pub(crate) fn escalated(node: &Node, err: &Error) {
    #[cfg(feature = "tracing")]
    quietly(|| tracing::error!(scope = &**node.path(), error = %err, "unhandled failure escalates"));
    #[cfg(not(feature = "tracing"))]
    let _ = (node, err);
}

/// The task and all its children have finished.
pub(crate) fn finished(node: &Node, err: Option<&Error>) {
    #[cfg(feature = "tracing")]
    if has_span(node) {
        match err {
            None => tracing::debug!("task finished"),
            Some(err) => quietly(|| tracing::debug!(error = %err, "task finished with a failure")),
        }
    }
    #[cfg(not(feature = "tracing"))]
    let _ = err;
    let _ = node;
}

/// A failure held by a `Child` handle that outlived its scope was dropped
/// unawaited: the scope's result is already out, so this event is the only
/// place left to report it.
pub(crate) fn failure_lost(node: &Node, err: &Error) {
    #[cfg(feature = "tracing")]
    quietly(|| {
        tracing::error!(
            scope = &**node.path(),
            error = %err,
            "a child's failure was dropped unawaited after its scope had finished"
        );
    });
    #[cfg(not(feature = "tracing"))]
    let _ = (node, err);
}

/// The body of a tree whose `run` future was dropped panicked as it was
/// dropped: nobody is left to take the failure, so this event reports it.
pub(crate) fn panic_lost(node: &Node, err: &Error) {
    #[cfg(feature = "tracing")]
    quietly(
        || tracing::error!(task = &**node.path(), error = %err, "a task panicked as its dropped tree was torn down"),
    );
    #[cfg(not(feature = "tracing"))]
    let _ = (node, err);
}

/// A restart is about to re-run a failed task, after `delay` if any.
pub(crate) fn restarting(task: &str, err: &Error, delay: Option<std::time::Duration>) {
    #[cfg(feature = "tracing")]
    quietly(|| match delay {
        Some(delay) => tracing::warn!(task, error = %err, ?delay, "restarting after a delay"),
        None => tracing::warn!(task, error = %err, "restarting"),
    });
    #[cfg(not(feature = "tracing"))]
    let _ = (task, err, delay);
}

/// The system refused the signal handlers of `Root::shutdown_on_signal`.
pub(crate) fn signals_unavailable(err: &std::io::Error) {
    #[cfg(feature = "tracing")]
    tracing::error!(error = %err, "cannot listen for shutdown signals");
    #[cfg(not(feature = "tracing"))]
    let _ = err;
}
