//! Why a task was cancelled: `CancelCause`.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Why a task was cancelled, from [`Scope::cancel_cause`](crate::Scope::cancel_cause)
/// (Go's `context.Cause`).
///
/// A task cancelled because an ancestor was sees the ancestor's cause. The
/// first cause wins: cancelling a task again, with another reason, does not
/// change it. `Display` says it in a few words, and a
/// [`Cancelled`](crate::ErrorKind::Cancelled) error's message ends with it
/// (naming a failing sibling by its path only: its message is in its own
/// failure).
///
/// ```
/// use taskward::{CancelCause, Scope};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// taskward::run(taskward::task(|scope: Scope| async move {
///     let worker = scope.spawn(taskward::task(|scope: Scope| async move {
///         scope.cancelled().await;
///         Ok::<_, std::io::Error>(scope.cancel_cause())
///     }));
///     scope.cancel_with("configuration reloaded");
///     let cause = worker.await?.unwrap();
///     assert!(matches!(&cause, CancelCause::Requested { reason: Some(_), .. }));
///     assert_eq!(cause.to_string(), "`task` was cancelled: configuration reloaded");
///     Ok::<_, taskward::Error>(())
/// }))
/// .await
/// .unwrap();
/// # }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum CancelCause {
    /// `task` was cancelled on purpose: with `cancel_with(reason)`, or
    /// with `cancel()` or its token's `cancel` (`reason` is `None`), through
    /// its scope or its [`Child`](crate::Child).
    #[non_exhaustive]
    Requested {
        /// The path of the task that was cancelled.
        task: Arc<str>,
        /// The reason given to `cancel_with`.
        reason: Option<Arc<dyn StdError + Send + Sync>>,
    },
    /// Under [`Policy::FailFast`](crate::Policy::FailFast), the child
    /// `task` of the cancelled scope failed.
    #[non_exhaustive]
    SiblingFailed {
        /// The path of the child that failed.
        task: Arc<str>,
        /// What its failure said, after its path (`failed: disk full`).
        message: String,
    },
    /// `task` ran past its deadline (`Task::timeout`).
    #[non_exhaustive]
    Deadline {
        /// The path of the task whose deadline passed.
        task: Arc<str>,
        /// Its deadline.
        limit: Duration,
    },
    /// The tree was shut down: by a signal (`Root::shutdown_on_signal`), or
    /// through [`Root::token`](crate::Root::token).
    #[non_exhaustive]
    Shutdown {
        /// Whether a signal (Ctrl-C, SIGTERM) did it.
        signal: bool,
    },
    /// The task `task` ended while its children ran (its body failed, so
    /// it has no use for their work), and cancelled them.
    #[non_exhaustive]
    ParentEnded {
        /// The path of the task that ended.
        task: Arc<str>,
    },
}

impl fmt::Display for CancelCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CancelCause::Requested {
                task,
                reason: Some(reason),
            } => write!(f, "`{task}` was cancelled: {reason}"),
            CancelCause::Requested { task, reason: None } => write!(f, "`{task}` was cancelled"),
            CancelCause::SiblingFailed { task, message } => write!(f, "`{task}` {message}"),
            CancelCause::Deadline { task, limit } => write!(f, "`{task}` ran past its deadline of {limit:?}"),
            CancelCause::Shutdown { signal: true } => f.write_str("the tree was shut down by a signal"),
            CancelCause::Shutdown { signal: false } => f.write_str("the tree was shut down through its token"),
            CancelCause::ParentEnded { task } => write!(f, "`{task}` ended while its children ran"),
        }
    }
}

impl CancelCause {
    /// The cause as a `Cancelled` error's message says it: a failing
    /// sibling by its path and what happened (`failed`), not its message,
    /// which that sibling's own failure carries (each message once in a
    /// report).
    pub(crate) fn brief(&self) -> String {
        match self {
            CancelCause::SiblingFailed { task, message } => {
                let verb = message.split_once(':').map_or(message.as_str(), |(verb, _)| verb);
                format!("`{task}` {verb}")
            }
            cause => cause.to_string(),
        }
    }
}
