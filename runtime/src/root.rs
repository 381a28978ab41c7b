//! Running a task as the root of a tree.

use std::sync::Arc;

use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, ErrorKind};
use crate::node::{Node, Tree};
use crate::scope::Scope;
use crate::task::Task;
use crate::trace;

/// Runs `task` as the root of a new task tree on the current tokio runtime,
/// and returns its result once the whole tree has finished.
///
/// Dropping the returned future (for example in a `select!` or a timeout)
/// cancels the tree and aborts every task of it.
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
    run_with_token(task, CancellationToken::new()).await
}

pub(crate) async fn run_with_token<T: Task>(task: T, token: CancellationToken) -> Result<T::Output, Error> {
    let parts = task.into_parts();
    let Ok(runtime) = Handle::try_current() else {
        return Err(Error::with_kind(
            ErrorKind::NoRuntime,
            Arc::from(&*parts.name),
            "`taskward::run` was called outside a tokio runtime; call it from within one \
             (for example from `#[tokio::main]`, or `Runtime::block_on`)",
        ));
    };
    let node = Node::root(Arc::new(Tree { runtime }), parts.name.clone(), parts.policy, token);
    let scope = Scope::from_node(Arc::clone(&node));
    let body = parts.into_body(&scope);
    drop(scope);
    trace::instrument(&node, node.run(body)).await
}
