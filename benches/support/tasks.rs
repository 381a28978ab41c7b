//! The task bodies every bench shares, in their taskward form and in the form
//! of each baseline, so that all of them do the same work.

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use taskward::{CancellationToken, Error, Scope, supervised};

/// Children per node of the nested tree.
pub(crate) const FANOUT: usize = 10;

/// Tasks spawned by a tree of `depth` levels below its root (the root is not
/// spawned): `FANOUT + FANOUT^2 + ... + FANOUT^depth`.
pub(crate) fn tree_size(depth: u32) -> usize {
    (1..=depth).map(|level| FANOUT.pow(level)).sum()
}

/// The trivial child: gives back its argument.
#[supervised]
pub(crate) async fn trivial(i: usize) -> Result<usize, Infallible> {
    Ok(black_box(i))
}

/// A node of the nested tree: spawns `FANOUT` copies of itself one level down,
/// awaits them, and counts the nodes of its subtree (itself included).
#[supervised]
pub(crate) async fn tree(scope: &Scope, depth: u32) -> Result<usize, Error> {
    if depth == 0 {
        return Ok(1);
    }
    let children: Vec<_> = (0..FANOUT).map(|_| scope.spawn(tree(depth - 1))).collect();
    let mut total = 1;
    for child in children {
        total += child.await?;
    }
    Ok(total)
}

/// An idle child: says it has started, then waits to be cancelled.
#[supervised]
pub(crate) async fn idle(token: CancellationToken, started: Arc<AtomicUsize>) {
    started.fetch_add(1, Ordering::Release);
    token.cancelled().await;
}

/// A parent of `n` idle children, idle itself until cancelled.
#[supervised]
pub(crate) async fn idle_parent(scope: &Scope, token: CancellationToken, n: usize, started: Arc<AtomicUsize>) {
    for _ in 0..n {
        scope.spawn(idle(Arc::clone(&started)));
    }
    token.cancelled().await;
}

/// Waits (yielding to the runtime) until `n` tasks have said they started.
pub(crate) async fn wait_started(started: &AtomicUsize, n: usize) {
    while started.load(Ordering::Acquire) < n {
        tokio::task::yield_now().await;
    }
}
