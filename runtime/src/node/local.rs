//! `Node::spawn_local`: a `!Send` future as a child, run on the thread's
//! `LocalSet`, and `InLocalSet`, the marker that tells a spawn it is on
//! one.
//!
//! tokio has no public test for "is a `LocalSet` running this code", and
//! its `spawn_local` panics outside one. So taskward keeps its own mark, a
//! thread-local count raised while it polls a future it knows runs inside
//! a `LocalSet`: the tree of `Root::run_local` (inside the set it made),
//! and every local child (spawned on that set). Wherever the mark is up,
//! tokio's own context is set too; code outside them (a `Send` child,
//! polled by the runtime's scheduler) is refused with a typed error, where
//! tokio would panic. A `LocalSet` the user made is not seen: a local spawn
//! under it is refused too (see `Scope::spawn_local`).

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::membership::Admission;
use crate::error::ErrorKind;
use crate::task::{LocalParts, TaskResult};
use crate::trace;

use super::Node;

std::thread_local! {
    /// How many `InLocalSet` polls are under way on this thread.
    static IN_LOCAL_SET: Cell<usize> = const { Cell::new(0) };
}

pin_project_lite::pin_project! {
    /// A future polled inside a `LocalSet`, with the mark up (see the
    /// module's docs).
    pub(crate) struct InLocalSet<F> {
        #[pin]
        future: F,
    }
}

impl<F> InLocalSet<F> {
    /// `future`, which the caller polls inside a `LocalSet` only.
    pub(crate) fn new(future: F) -> Self {
        InLocalSet { future }
    }
}

impl<F: Future> Future for InLocalSet<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        /// Lowers the mark again, even if the poll panics.
        struct Lower;
        impl Drop for Lower {
            fn drop(&mut self) {
                IN_LOCAL_SET.with(|depth| depth.set(depth.get() - 1));
            }
        }
        IN_LOCAL_SET.with(|depth| depth.set(depth.get() + 1));
        let _lower = Lower;
        self.project().future.poll(cx)
    }
}

impl Node {
    /// Starts the `!Send` future `body` as a child of this node on the
    /// thread's `LocalSet`, or refuses with `NoRuntime` outside one; `lazy`
    /// when the body takes its scope at its first poll (a
    /// `#[supervised(local)]` body).
    pub(crate) fn spawn_local<B>(self: &Arc<Self>, local: LocalParts<B>) -> crate::Child<<B::Output as TaskResult>::Ok>
    where
        B: Future<Output: TaskResult> + 'static,
    {
        let LocalParts { parts, body, lazy } = local;
        if IN_LOCAL_SET.with(Cell::get) == 0 {
            return self.refuse_with(
                parts.name,
                ErrorKind::NoRuntime,
                "`spawn_local` was called outside a `LocalSet` that taskward knows of; call it from a tree run \
                 with `Root::run_local`, or from a local task"
                    .to_owned(),
            );
        }
        let Some(membership) = self.register(self.shared(), &parts, Admission::Queue, None) else {
            return self.refuse(parts.name);
        };
        let node = Arc::clone(membership.node());
        trace::open_span(&node);
        let task = tokio::task::spawn_local(InLocalSet::new(membership.drive(body, lazy)));
        crate::Child::new(node, Some(task))
    }
}
