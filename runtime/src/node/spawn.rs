//! `Node::spawn`: from a `Task` to a registered child running in its own
//! tokio task, for each way a body is made (`Start`).

use std::any::Any;
use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;

use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::driver::ChildTask;
use super::member::Post;
use super::membership::{Admission, Membership};
use super::state::Phase;
use super::{Node, Shared};
use crate::error::{Error, ErrorKind};
use crate::group::{Inbox, Member};
use crate::policy::Policy;
use crate::ready::ReadyLink;
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
        let shared = self.shared();
        self.spawn_in(task, admission, ready, shared, &shared.runtime, |_| {})
    }

    /// Starts `task` as a child of this node on the tokio runtime of
    /// `runtime` instead of the tree's: its node keeps that runtime with
    /// what the tree shares, so its own children run there too.
    pub(crate) fn spawn_on<T: Task>(self: &Arc<Self>, task: T, runtime: &Handle) -> crate::Child<T::Output> {
        let shared = self.shared();
        let on = Arc::new(shared.on(runtime.clone()));
        self.spawn_in(task, Admission::Queue, None, shared, runtime, |node| node.keep(on))
    }

    /// `spawn_with` on the runtime of `runtime`, `shared` being what the
    /// tree shares; `settle` is given the child's node before anything
    /// runs in it.
    #[inline]
    fn spawn_in<T: Task>(
        self: &Arc<Self>,
        task: T,
        admission: Admission,
        ready: Option<Arc<ReadyLink>>,
        shared: &Shared,
        runtime: &Handle,
        settle: impl FnOnce(&Node),
    ) -> crate::Child<T::Output> {
        let parts = task.into_parts();
        let Some(membership) = self.register(shared, &parts, admission, ready) else {
            return self.refuse(parts.name);
        };
        let node = Arc::clone(membership.node());
        settle(&node);
        trace::open_span(&node);
        // An abort reaches the task through the node's alarm; its handle
        // only carries its value.
        let task = match parts.start {
            Start::Made(body) => spawn_task(runtime, membership.drive(body, false)),
            Start::Lazy(body) => body.spawn(Spawn {
                membership,
                runtime,
                inbox: None,
            }),
            Start::WithScope(make) => {
                let body = self.make_body(&node, make);
                spawn_task(runtime, membership.drive(body, false))
            }
        };
        crate::Child::new(node, Some(task))
    }

    /// The answer to a spawn on a finished scope: a handle that reports it.
    pub(super) fn refuse<T>(self: &Arc<Self>, name: Name) -> crate::Child<T> {
        crate::Child::new(self.refused(name), None)
    }

    /// A spawn that cannot start: a handle that reports `kind` and
    /// `message`.
    pub(super) fn refuse_with<T>(self: &Arc<Self>, name: Name, kind: ErrorKind, message: String) -> crate::Child<T> {
        crate::Child::new(self.refused_with(name, kind, message), None)
    }

    /// The node of a spawn on a finished scope: detached, closed, its
    /// `ScopeClosed` failure waiting for its handle.
    fn refused(self: &Arc<Self>, name: Name) -> Arc<Node> {
        let message = format!(
            "the scope of `{}` has already finished; spawn children while the task that owns the scope is still running",
            self.path()
        );
        self.refused_with(name, ErrorKind::ScopeClosed, message)
    }

    /// The node of a refused spawn: detached, closed, its failure (`kind`,
    /// `message`) waiting for its handle.
    fn refused_with(self: &Arc<Self>, name: Name, kind: ErrorKind, message: String) -> Arc<Node> {
        let shared = Arc::new(Shared::new(self.shared().runtime.clone(), None));
        let name = Name::Given(Cow::Owned(format!("{}/{}", self.path(), name.as_str())));
        let node = Node::root(shared, name, Policy::FailFast, CancellationToken::new(), None);
        node.cancel();
        node.set_phase(&mut node.lock(), Phase::Closed);
        let err = Error::with_kind(kind, Arc::clone(node.path()), message);
        let _ = node.offer_failure(err);
        node
    }
}

/// What a boxed `#[supervised]` body needs to spawn itself as a child's
/// task, unboxed (see `task::LazyBody`).
pub(crate) struct Spawn<'a> {
    membership: Membership,
    runtime: &'a Handle,
    /// The `Arc` of the `Inbox` of the `Group` the child is a member of, if
    /// it is one: its value goes there (typed by the body, which only
    /// `lazy` knows). Borrowed: the member clones it once, when its type is
    /// known.
    inbox: Option<&'a (dyn Any + Send + Sync)>,
}

impl Spawn<'_> {
    /// Spawns `body`, which takes its scope at its first poll if `scoped`;
    /// its token is made first if `token` (see `Supervised::new_with_token`),
    /// unless the child waits in line for a slot: it makes it when it
    /// starts, so that a backlog of queued children holds no tokens.
    /// Always inlined into `LazyBody::spawn`, its one caller per body
    /// type: the call cost 12 to 17 instructions per task.
    #[inline(always)]
    pub(crate) fn lazy<B>(self, body: B, scoped: bool, token: bool) -> JoinHandle<Option<<B::Output as TaskResult>::Ok>>
    where
        B: Future<Output: TaskResult> + Send + 'static,
    {
        if token && !self.membership.is_queued() {
            let _ = self.membership.node().token();
        }
        let task = self.membership.drive(body, scoped);
        match self.inbox {
            None => spawn_task(self.runtime, task),
            Some(inbox) => spawn_lazy_member(self.runtime, task, inbox),
        }
    }
}

/// `Spawn::lazy` for a member of a group: its value goes to `inbox`.
#[cold]
fn spawn_lazy_member<B>(
    runtime: &Handle,
    task: ChildTask<B, <B::Output as TaskResult>::Ok>,
    inbox: &(dyn Any + Send + Sync),
) -> JoinHandle<Option<<B::Output as TaskResult>::Ok>>
where
    B: Future<Output: TaskResult> + Send + 'static,
{
    match inbox.downcast_ref::<Arc<Inbox<<B::Output as TaskResult>::Ok>>>() {
        Some(inbox) => spawn_task(runtime, Post::new(task, Arc::clone(inbox))),
        None => unreachable!("a group's inbox takes its members' values"),
    }
}

/// The future of a node's tokio task, which knows its node (to name the
/// task after it, see `spawn_task`).
pub(super) trait OfNode {
    fn node(&self) -> &Node;
}

impl<B, T> OfNode for ChildTask<B, T> {
    fn node(&self) -> &Node {
        ChildTask::node(self)
    }
}

/// Spawns `future`, the tokio task of its node, on `runtime`. Built with
/// `--cfg tokio_unstable`, the tokio task is named with the node's path, so
/// that tokio-console and tokio's task dumps show the tree (building every
/// path costs a string per task: only then).
#[inline]
fn spawn_task<F>(runtime: &Handle, future: F) -> JoinHandle<F::Output>
where
    F: Future + OfNode + Send + 'static,
    F::Output: Send + 'static,
{
    #[cfg(tokio_unstable)]
    {
        let path = Arc::clone(future.node().path());
        match tokio::task::Builder::new().name(&path).spawn_on(future, runtime) {
            Ok(handle) => handle,
            Err(err) => unreachable!("tokio's task builder spawns or panics: {err}"),
        }
    }
    #[cfg(not(tokio_unstable))]
    {
        // Named only with `tokio_unstable` (a load, compiled away).
        let _ = future.node();
        runtime.spawn(future)
    }
}

impl Node {
    /// Starts `task` as a member of a `Group` of this scope: a child as
    /// `spawn` starts it, whose value is posted to the group's `inbox`
    /// (see `member.rs`). Gives its node and its task's handle; a refused
    /// spawn gives the node of its `ScopeClosed` failure, posted already,
    /// and no handle.
    pub(crate) fn spawn_member<T: Task>(self: &Arc<Self>, task: T, inbox: &Arc<Inbox<T::Output>>) -> Member<T::Output> {
        let parts = task.into_parts();
        let shared = self.shared();
        let runtime = &shared.runtime;
        let Some(membership) = self.register(shared, &parts, Admission::Queue, None) else {
            let node = self.refused(parts.name);
            inbox.post(Err(Arc::clone(&node)));
            return Member { node, task: None };
        };
        let node = Arc::clone(membership.node());
        trace::open_span(&node);
        let body = match parts.start {
            Start::Made(body) => body,
            Start::Lazy(body) => {
                let spawn = Spawn {
                    membership,
                    runtime,
                    inbox: Some(inbox),
                };
                let task = body.spawn(spawn);
                return Member { node, task: Some(task) };
            }
            Start::WithScope(make) => self.make_body(&node, make),
        };
        let task = Post::new(membership.drive(body, false), Arc::clone(inbox));
        let task = spawn_task(runtime, task);
        Member { node, task: Some(task) }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::convert::Infallible;
    use std::sync::Arc;

    use tokio_util::sync::CancellationToken;

    use super::super::Node;
    use crate::policy::Policy;
    use crate::task::Supervised;

    /// A `#[supervised]` function that names its token has it made by its
    /// spawn, before its body first runs, as a child of its parent's; one
    /// that names only its scope has none until it asks for it.
    #[test]
    fn a_function_that_names_its_token_has_it_made_by_its_spawn() {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let root = Node::root_for_test(&runtime);
        let body = || async { Ok::<u8, Infallible>(7) };
        let tokened = root.spawn(Supervised::<Result<u8, Infallible>>::new_with_token(
            &"tokened",
            Policy::FailFast,
            body(),
        ));
        let scoped = root.spawn(Supervised::<Result<u8, Infallible>>::new(
            &"scoped",
            Policy::FailFast,
            body(),
        ));
        // Neither body has run: the runtime has not been driven yet.
        assert!(tokened.node().token.get().is_some());
        assert!(scoped.node().token.get().is_none());
        // One in line for a slot of its scope's limit makes it when it
        // starts.
        crate::Scope::from_node(Arc::clone(&root)).set_limit(2);
        let queued = root.spawn(Supervised::<Result<u8, Infallible>>::new_with_token(
            &"queued",
            Policy::FailFast,
            body(),
        ));
        assert_eq!(queued.node().stage(), super::super::state::Stage::Queued);
        assert!(queued.node().token.get().is_none());
        root.cancel();
        assert!(tokened.node().token.get().is_some_and(CancellationToken::is_cancelled));
        runtime.block_on(async {
            assert_eq!(tokened.await.unwrap(), 7);
            assert_eq!(scoped.await.unwrap(), 7);
            assert_eq!(queued.await.unwrap(), 7);
        });
    }
}
