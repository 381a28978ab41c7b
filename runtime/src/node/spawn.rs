//! `Node::spawn`: from a `Task` to a registered child running in its own
//! tokio task, for each way a body is made (`Start`).

use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;

use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::membership::{Admission, Membership, Unregister};
use super::state::Phase;
use super::{Node, Shared};
use crate::error::{Error, ErrorKind};
use crate::policy::Policy;
use crate::ready::ReadyLink;
use crate::scope::Scope;
use crate::task::{Name, Start, Task, TaskResult};
use crate::trace;

impl Node {
    /// Starts `task` as a child of this node, waiting in line if the
    /// scope's limit is reached.
    pub(crate) fn spawn<T: Task>(self: &Arc<Self>, task: T) -> crate::Child<T::Output> {
        self.spawn_with(task, Admission::Queue, None)
    }

    /// Starts `task` as a child of this node: `admission` tells whether it
    /// already holds a slot of the scope's limit, `ready` links it to a
    /// `Scope::start` call.
    pub(crate) fn spawn_with<T: Task>(
        self: &Arc<Self>,
        task: T,
        admission: Admission,
        ready: Option<Arc<ReadyLink>>,
    ) -> crate::Child<T::Output> {
        let parts = task.into_parts();
        let shared = self.shared();
        let Some(membership) = self.register(shared, &parts, admission, ready) else {
            return self.refuse(parts.name);
        };
        let node = Arc::clone(membership.node());
        trace::open_span(&node);
        // An abort reaches the task through the node's alarm; its handle
        // only carries its value.
        let task = match parts.start {
            Start::Made(body) => shared.runtime.spawn(membership.drive(body, false)),
            Start::Lazy(body) => body.spawn(Spawn {
                membership,
                runtime: &shared.runtime,
            }),
            Start::WithScope(make) => {
                // User code (a `task(...)` closure) runs here, outside the
                // lock. If it panics, the child is unregistered again, so
                // that the parent's join does not wait for a task that
                // never started.
                let unregister = Unregister {
                    parent: self,
                    child: &node,
                };
                let body = make(Scope::from_node(Arc::clone(&node)));
                std::mem::forget(unregister);
                shared.runtime.spawn(membership.drive(body, false))
            }
        };
        crate::Child::new(node, Some(task))
    }

    /// The answer to a spawn on a finished scope: a handle that reports it.
    pub(super) fn refuse<T>(self: &Arc<Self>, name: Name) -> crate::Child<T> {
        crate::Child::new(self.refused(name), None)
    }

    /// The node of a refused spawn: detached, closed, its `ScopeClosed`
    /// failure waiting for its handle.
    fn refused(self: &Arc<Self>, name: Name) -> Arc<Node> {
        let shared = Arc::new(Shared::new(self.shared().runtime.clone(), None));
        let name = Name::Given(Cow::Owned(format!("{}/{}", self.path(), name.as_str())));
        let node = Node::root(shared, name, Policy::FailFast, CancellationToken::new(), None);
        node.cancel();
        node.set_phase(&mut node.lock(), Phase::Closed);
        let err = Error::with_kind(
            ErrorKind::ScopeClosed,
            Arc::clone(node.path()),
            format!(
                "the scope of `{}` has already finished; spawn children while the task that owns the scope is still running",
                self.path()
            ),
        );
        let _ = node.offer_failure(err);
        node
    }
}

/// What a boxed `#[supervised]` body needs to spawn itself as a child's
/// task, unboxed (see `task::LazyBody`).
pub(crate) struct Spawn<'a> {
    membership: Membership,
    runtime: &'a Handle,
}

impl Spawn<'_> {
    /// Spawns `body`, which takes its scope at its first poll.
    pub(crate) fn lazy<B>(self, body: B) -> JoinHandle<Option<<B::Output as TaskResult>::Ok>>
    where
        B: Future<Output: TaskResult> + Send + 'static,
    {
        self.runtime.spawn(self.membership.drive(body, true))
    }
}

impl Node {
    /// Registers `task` as a child of this node and gives its node and the
    /// future of its task, to run in a `Group`'s `JoinSet`: as `spawn_with`,
    /// but the body stays in its box for a `#[supervised]` task. `Err` with
    /// the node of a refused spawn (its `ScopeClosed` failure waits in it).
    pub(crate) fn spawn_member<T: Task>(
        self: &Arc<Self>,
        task: T,
    ) -> Result<Member<impl Future<Output = Option<T::Output>> + Send + 'static>, Arc<Node>> {
        let parts = task.into_parts();
        let shared = self.shared();
        let Some(membership) = self.register(shared, &parts, Admission::Queue, None) else {
            return Err(self.refused(parts.name));
        };
        let node = Arc::clone(membership.node());
        trace::open_span(&node);
        // A `task(...)` closure runs here, outside the lock (see `spawn_with`).
        let unregister = Unregister {
            parent: self,
            child: &node,
        };
        let (body, lazy) = parts.into_body(&Scope::from_node(Arc::clone(&node)));
        std::mem::forget(unregister);
        let task = membership.drive(body, lazy);
        Ok(Member { node, task })
    }
}

/// A registered member of a `Group`: its node, and the future of its task.
pub(crate) struct Member<F> {
    pub(crate) node: Arc<Node>,
    pub(crate) task: F,
}
