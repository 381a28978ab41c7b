//! `Group`: children of a scope whose results come out in completion order.
//!
//! Each member is a child registered as any other (`Node::spawn_member`),
//! whose task posts its value to the group's `Inbox` (see `node/member.rs`)
//! instead of keeping it for a `Child`. The group takes a member's failure
//! through its node as a `Child` does (`take_failure`), and gives back what
//! it did not take when it is dropped (`release_failure`); dropping it
//! closes the inbox, never detaches the children from their scope.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::pin::Pin;
use std::sync::{Arc, PoisonError};
use std::task::{Context, Poll, Waker};

use crate::error::{Error, ErrorKind};
use crate::node::{Node, drop_quietly};
use crate::sync::{Mutex, MutexGuard};
use crate::task::Task;

/// Children of a scope whose results come out in the order they finish
/// (tokio's `JoinSet`, with structured ownership), from
/// [`Scope::group`](crate::Scope::group).
///
/// Its members are children of the scope like any other: joined before the
/// scope's task delivers its result, cancelled with it, and under
/// [`Policy::FailFast`](crate::Policy::FailFast) a member's failure cancels
/// the scope. A failure that [`next`](Group::next) hands out is yours and
/// does not escalate. Dropping the group does not detach its members: the
/// scope still joins them, and a failure the group did not hand out goes to
/// [`Scope::next_error`](crate::Scope::next_error) or escalates, as for a
/// dropped [`Child`](crate::Child).
///
/// It implements `futures_core::Stream`, with the items of `next`.
///
/// ```
/// use std::time::Duration;
/// use taskward::Scope;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let order = taskward::run(taskward::task(|scope: Scope| async move {
///     let mut group = scope.group::<u64>();
///     for ms in [30, 10, 20] {
///         group.spawn(async move {
///             tokio::time::sleep(Duration::from_millis(ms)).await;
///             Ok::<_, std::io::Error>(ms)
///         });
///     }
///     let mut order = Vec::new();
///     while let Some(result) = group.next().await {
///         order.push(result?);
///     }
///     Ok::<_, taskward::Error>(order)
/// }))
/// .await
/// .unwrap();
/// assert_eq!(order, [10, 20, 30]);
/// # }
/// ```
pub struct Group<T: 'static> {
    scope: Arc<Node>,
    /// Where the members post their values, in the order they finish.
    inbox: Arc<Inbox<T>>,
    /// The members not yet handed out by `next`, by their node's key: to
    /// find the node of a post, to abort them, and to give back their
    /// failures when the group is dropped.
    members: HashMap<usize, Arc<Node>, BuildHasherDefault<KeyHasher>>,
    /// An aborted member whose post was taken while its subtree was still
    /// going away (one level at a time after it): it comes out of `next`
    /// once all of it is gone, as an aborted `Child`'s result does.
    draining: Option<Arc<Node>>,
}

/// Where the members of a group post their values (see `node/member.rs`).
pub(crate) struct Inbox<T> {
    state: Mutex<Posts<T>>,
}

struct Posts<T> {
    /// Each finished member's key, with its value (`None` when it failed
    /// or was aborted), in the order they finished.
    done: VecDeque<(usize, Option<T>)>,
    /// The waker of a `next` waiting for a post.
    waker: Option<Waker>,
    /// The group was dropped: a value posted now is dropped.
    closed: bool,
}

impl<T> Inbox<T> {
    pub(crate) fn new() -> Self {
        Inbox {
            state: Mutex::new(Posts {
                done: VecDeque::new(),
                waker: None,
                closed: false,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Posts<T>> {
        // No user code runs under this lock: it cannot be poisoned by it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The member of `key` has finished, with `value` if it succeeded.
    pub(crate) fn post(&self, key: usize, value: Option<T>) {
        let mut posts = self.lock();
        if posts.closed {
            drop(posts);
            // Its `Drop` is user code: never under the lock.
            drop_quietly(value);
            return;
        }
        posts.done.push_back((key, value));
        let waker = posts.waker.take();
        drop(posts);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// The first post not taken yet, or `Pending` until a post wakes the
    /// task of `cx` (its waker is kept under the lock a post takes, so
    /// that wake-up is never missed).
    pub(crate) fn poll_take(&self, cx: &mut Context<'_>) -> Poll<(usize, Option<T>)> {
        let mut posts = self.lock();
        if let Some(post) = posts.done.pop_front() {
            return Poll::Ready(post);
        }
        match &mut posts.waker {
            Some(known) if known.will_wake(cx.waker()) => {}
            waker => *waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// The group is dropped: the values posted and not taken, and those
    /// posted from now on, are dropped (outside the lock: their `Drop` is
    /// user code).
    pub(crate) fn close(&self) {
        let finished = {
            let mut posts = self.lock();
            posts.closed = true;
            std::mem::take(&mut posts.done)
        };
        drop_quietly(finished);
    }
}

/// Hashes a member's key, the address of its node: distinct, and a
/// multiple of 8, so it is spread over the bits by one multiplication
/// instead of SipHash.
#[derive(Default)]
pub(crate) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(self.0 ^ u64::from(byte));
        }
    }

    fn write_usize(&mut self, key: usize) {
        self.write_u64(key as u64);
    }

    fn write_u64(&mut self, key: u64) {
        let mixed = key.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = mixed ^ (mixed >> 29);
    }
}

impl<T: Send + 'static> Group<T> {
    pub(crate) fn new(scope: Arc<Node>) -> Self {
        Group {
            scope,
            inbox: Arc::new(Inbox::new()),
            members: HashMap::default(),
            draining: None,
        }
    }

    /// Starts `task` as a child of the group's scope (waiting in line if
    /// the scope's limit is reached, as [`Scope::spawn`](crate::Scope::spawn)
    /// does). Its result comes out of [`next`](Group::next). A task spawned
    /// after the scope has finished comes out as
    /// [`ErrorKind::ScopeClosed`].
    pub fn spawn<U: Task<Output = T>>(&mut self, task: U) {
        let (Ok(node) | Err(node)) = self.scope.spawn_member(task, &self.inbox);
        self.members.insert(node.key(), node);
    }

    /// The result of the next member to finish (it and its children), in
    /// completion order; `None` once every member has come out.
    ///
    /// # Errors
    ///
    /// The member's failure, which is then yours and does not escalate;
    /// [`ErrorKind::Cancelled`] for a member aborted by
    /// [`abort_all`](Group::abort_all).
    pub async fn next(&mut self) -> Option<Result<T, Error>> {
        std::future::poll_fn(|cx| self.poll_next_member(cx)).await
    }

    /// How many members have not come out of [`next`](Group::next) yet.
    #[must_use]
    pub fn len(&self) -> usize {
        self.members.len() + usize::from(self.draining.is_some())
    }

    /// Whether every member has come out of [`next`](Group::next).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Aborts every member still running, and its subtree, as
    /// [`Child::abort`](crate::Child::abort) does: each still comes out of
    /// [`next`](Group::next), as [`ErrorKind::Cancelled`] (or with its
    /// result, if it had finished). The aborts never escalate and do not
    /// cancel the scope; failures that happened inside a member's subtree
    /// go to the scope, as for `Child::abort`.
    pub fn abort_all(&self) {
        for node in self.members.values() {
            node.abort_asked();
        }
    }

    fn poll_next_member(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T, Error>>> {
        if let Some(node) = &self.draining {
            std::task::ready!(node.poll_idle(cx));
            let node = self.draining.take();
            return Poll::Ready(node.map(|node| Err(Self::aborted(&node, node.take_failure()))));
        }
        // Every post is of a member kept here until it is handed out.
        if self.members.is_empty() {
            return Poll::Ready(None);
        }
        let (key, value) = std::task::ready!(self.inbox.poll_take(cx));
        let Some(node) = self.members.remove(&key) else {
            unreachable!("a member is kept until its post is handed out")
        };
        if value.is_none() && node.is_abort_asked() && node.poll_idle(cx).is_pending() {
            self.draining = Some(node);
            return Poll::Pending;
        }
        let failure = node.take_failure();
        Poll::Ready(Some(value.ok_or_else(|| Self::aborted(&node, failure))))
    }

    /// The error of a member that posted no value: its own failure, or the
    /// `Cancelled` of its abort.
    fn aborted(node: &Node, failure: Option<Error>) -> Error {
        failure.unwrap_or_else(|| {
            let message = if node.is_abort_asked() {
                "aborted by its owner"
            } else {
                "aborted before it finished"
            };
            Error::with_kind(ErrorKind::Cancelled, Arc::clone(node.path()), message)
        })
    }
}

impl<T: Send + 'static> futures_core::Stream for Group<T> {
    type Item = Result<T, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_next_member(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.len(), Some(self.len()))
    }
}

impl<T: 'static> Drop for Group<T> {
    /// The members go on as children of the scope: their values, from now
    /// on, are dropped as they come, and a failure the group holds goes to
    /// the scope (see `Child`'s drop).
    fn drop(&mut self) {
        self.inbox.close();
        for node in self.members.drain().map(|(_, node)| node).chain(self.draining.take()) {
            if let (Some(err), Some(parent)) = (node.release_failure(), node.parent()) {
                parent.route(err);
            }
        }
    }
}

impl<T: 'static> std::fmt::Debug for Group<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group")
            .field("scope", &self.scope.path())
            .field("len", &self.members.len())
            .finish()
    }
}
