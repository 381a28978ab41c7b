//! Deadlines: a task that runs past its timeout is cancelled, then aborted
//! if it does not stop within the grace period, and reports `TimedOut`.

use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, ErrorKind};
use crate::node::Node;

/// The grace period of a timed-out task when its tree's `Root` sets none:
/// how long it may take to stop cooperatively once its token is cancelled,
/// before it is aborted.
pub(crate) const DEFAULT_GRACE: Duration = Duration::from_secs(1);

/// The deadline of a task: `limit` from now, the task is marked timed out
/// and cancelled; after the grace period it is killed. Polled by the
/// task's `Driver` beside the task itself.
pub(crate) async fn watchdog(node: Arc<Node>, limit: Duration) {
    tokio::time::sleep(limit).await;
    event!(debug, task = &**node.path(), ?limit, "deadline passed; cancelling");
    node.time_out();
    tokio::time::sleep(node.shared().grace.unwrap_or(DEFAULT_GRACE)).await;
    event!(debug, task = &**node.path(), "grace period over; aborting");
    node.kill();
}

/// The result of a task that ran past its deadline: `TimedOut`, with the
/// failures of its scope in `related()`.
pub(crate) fn timed_out(node: &Node, limit: Duration, aborted: bool, failures: Vec<Error>) -> Error {
    let message = if aborted {
        format!(
            "did not finish within {limit:?}, and was aborted when its grace period of {:?} ended",
            node.shared().grace.unwrap_or(DEFAULT_GRACE)
        )
    } else {
        format!("did not finish within {limit:?}")
    };
    Error::with_kind(ErrorKind::TimedOut, Arc::clone(node.path()), message).with_related(failures)
}
