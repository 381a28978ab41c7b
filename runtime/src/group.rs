//! `Group`: children of a scope whose results come out in completion order.
//!
//! Each member is a child registered as any other (`Node::spawn_member`),
//! whose task posts its value, or its node if it has none, to the group's
//! `Inbox` (see `node/member.rs`) instead of keeping the value for a
//! `Child`. The group takes a member's failure through its node as a
//! `Child` does (`take_failure`), and gives back what it did not take when
//! it is dropped (`release_failure`); dropping it closes the inbox, never
//! detaches the children from their scope.
//!
//! A member that posts a value marks its node's handle `TAKEN` itself
//! first, where its node is in the cache (no failure can follow a value):
//! the group hands the value out without touching the node.
//!
//! The group keeps its members in the order they were spawned, with their
//! tokio tasks' handles: a post brings its node, so `next` looks nothing
//! up, and a member handed out (or that posted a value: its node's handle
//! `TAKEN`) stays in the list until a sweep drops it with its task's
//! handle. So the task's memory is freed by the owner, which allocated it,
//! as with a `JoinSet` or a `Child`: freed by the worker that ran it, it
//! made that worker take the glibc arena's lock the owner's spawns take.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, PoisonError};
use std::task::{Context, Poll, Waker};

use tokio::task::JoinHandle;

use crate::error::{Error, ErrorKind};
use crate::node::{Node, drop_quietly};
use crate::sync::{Mutex, MutexGuard};
use crate::task::Task;

/// A sweep of the members comes when at least this many, and half of the
/// list, have been handed out: each member is looked at a bounded number
/// of times, and a group that hands out as it spawns keeps a short list.
const SWEEP_MIN: usize = 32;

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
    /// Where the members post their values (or nodes), in the order they
    /// finish.
    inbox: Arc<Inbox<T>>,
    /// Posts taken out of the inbox all at once, not handed out yet (the
    /// owner takes the inbox's lock once per batch, not once per post).
    taken: VecDeque<Posted<T>>,
    /// Every member in the order it was spawned, until a sweep drops those
    /// handed out: to abort them, to give back their failures when the
    /// group is dropped, and to free their tasks here.
    members: Vec<Member<T>>,
    /// How many members have not come out of `next` yet.
    pending: usize,
    /// An aborted member whose post was taken while its subtree was still
    /// going away (one level at a time after it): it comes out of `next`
    /// once all of it is gone, as an aborted `Child`'s result does.
    draining: Option<Arc<Node>>,
}

/// A member's post: its value, or its node when it failed or was aborted
/// (the group takes the failure there).
type Posted<T> = Result<T, Arc<Node>>;

/// A member, kept by its group until a sweep after it was handed out.
pub(crate) struct Member<T> {
    pub(crate) node: Arc<Node>,
    /// Its tokio task's handle (none for a refused spawn), only to be
    /// dropped here (see the module).
    #[expect(dead_code, reason = "never read: kept to be dropped by the group's owner")]
    pub(crate) task: Option<JoinHandle<Option<T>>>,
}

impl<T> Member<T> {
    /// Whether `next` has handed it out, or it posted a value: its node's
    /// handle was taken.
    fn is_out(&self) -> bool {
        !self.node.is_held()
    }
}

/// Where the members of a group post their values (see `node/member.rs`).
pub(crate) struct Inbox<T> {
    state: Mutex<Posts<T>>,
}

struct Posts<T> {
    /// Each finished member's post, in the order they finished.
    done: VecDeque<Posted<T>>,
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

    /// A member has finished: `post` is its value, or its node if it has
    /// none.
    pub(crate) fn post(&self, post: Posted<T>) {
        let mut posts = self.lock();
        if posts.closed {
            drop(posts);
            // A value's `Drop` is user code: never under the lock.
            drop_quietly(post);
            return;
        }
        posts.done.push_back(post);
        let waker = posts.waker.take();
        drop(posts);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Every post not taken yet, swapped into `taken` (empty: its
    /// capacity goes back to the inbox, so that neither queue grows again
    /// once both are large enough), or `Pending` until a post wakes the
    /// task of `cx` (its waker is kept under the lock a post takes, so
    /// that wake-up is never missed).
    pub(crate) fn poll_take(&self, cx: &mut Context<'_>, taken: &mut VecDeque<Posted<T>>) -> Poll<()> {
        debug_assert!(taken.is_empty(), "the posts taken before are handed out first");
        let mut posts = self.lock();
        if !posts.done.is_empty() {
            std::mem::swap(&mut posts.done, taken);
            return Poll::Ready(());
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

impl<T: Send + 'static> Group<T> {
    pub(crate) fn new(scope: Arc<Node>) -> Self {
        Group {
            scope,
            inbox: Arc::new(Inbox::new()),
            taken: VecDeque::new(),
            members: Vec::new(),
            pending: 0,
            draining: None,
        }
    }

    /// Starts `task` as a child of the group's scope (waiting in line if
    /// the scope's limit is reached, as [`Scope::spawn`](crate::Scope::spawn)
    /// does). Its result comes out of [`next`](Group::next). A task spawned
    /// after the scope has finished comes out as
    /// [`ErrorKind::ScopeClosed`].
    pub fn spawn<U: Task<Output = T>>(&mut self, task: U) {
        let member = self.scope.spawn_member(task, &self.inbox);
        self.members.push(member);
        self.pending += 1;
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
        self.pending
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
        for member in self.members.iter().filter(|member| !member.is_out()) {
            member.node.abort_asked();
        }
    }

    fn poll_next_member(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T, Error>>> {
        let result = std::task::ready!(self.poll_next_post(cx));
        if result.is_some() {
            self.pending -= 1;
            if self.members.len() >= SWEEP_MIN + 2 * self.pending {
                self.members.retain(|member| !member.is_out());
            }
        }
        Poll::Ready(result)
    }

    /// The next member handed out (its node's handle `TAKEN`), by its
    /// post.
    fn poll_next_post(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T, Error>>> {
        if let Some(node) = &self.draining {
            std::task::ready!(node.poll_idle(cx));
            let node = self.draining.take();
            return Poll::Ready(node.map(|node| Err(Self::aborted(&node, node.take_failure()))));
        }
        // Every member not handed out posts once.
        if self.pending == 0 {
            return Poll::Ready(None);
        }
        if self.taken.is_empty() {
            std::task::ready!(self.inbox.poll_take(cx, &mut self.taken));
        }
        let node = match self.taken.pop_front() {
            // The member marked its node handed out as it posted.
            Some(Ok(value)) => return Poll::Ready(Some(Ok(value))),
            Some(Err(node)) => node,
            None => unreachable!("the inbox gives at least one post when it is ready"),
        };
        if node.is_abort_asked() && node.poll_idle(cx).is_pending() {
            self.draining = Some(node);
            return Poll::Pending;
        }
        let failure = node.take_failure();
        Poll::Ready(Some(Err(Self::aborted(&node, failure))))
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

/// The group never pins a value: it only moves them out of the inbox.
impl<T: 'static> Unpin for Group<T> {}

impl<T: 'static> Drop for Group<T> {
    /// The members go on as children of the scope: their values, from now
    /// on, are dropped as they come, and a failure the group holds goes to
    /// the scope (see `Child`'s drop).
    fn drop(&mut self) {
        self.inbox.close();
        drop_quietly(std::mem::take(&mut self.taken));
        // The draining member is in the list too, not handed out yet.
        self.draining = None;
        for member in std::mem::take(&mut self.members) {
            if member.is_out() {
                continue;
            }
            if let (Some(err), Some(parent)) = (member.node.release_failure(), member.node.parent()) {
                parent.route(err);
            }
        }
    }
}

impl<T: 'static> std::fmt::Debug for Group<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group")
            .field("scope", &self.scope.path())
            .field("len", &self.pending)
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::convert::Infallible;
    use std::time::Duration;

    use super::{Member, SWEEP_MIN};
    use crate::{ErrorKind, Policy, Scope, Task};

    /// Regression: the members handed out are swept from the group's list;
    /// without the sweep a group that hands out as it spawns kept every
    /// member it ever had (its node and its task) until it was dropped.
    #[tokio::test]
    async fn a_group_handing_out_as_it_spawns_keeps_a_short_list() {
        crate::run(crate::task(|scope: Scope| async move {
            let mut group = scope.group::<usize>();
            for i in 0..10 * SWEEP_MIN {
                group.spawn(async move { Ok::<_, Infallible>(i) });
                assert_eq!(group.next().await.transpose()?, Some(i));
                assert!(group.members.len() < SWEEP_MIN, "{} members kept", group.members.len());
            }
            Ok::<_, crate::Error>(())
        }))
        .await
        .unwrap();
    }

    /// A member that posts a value marks its node handed out itself, so
    /// that `next` hands the value out without touching the node; one that
    /// fails does not (the group takes its failure there). `abort_all` then
    /// leaves the first alone and its value still comes out, and the
    /// failure comes out once, as the member's.
    #[tokio::test]
    async fn a_member_that_posts_a_value_marks_itself_handed_out() {
        crate::run(
            crate::task(|scope: Scope| async move {
                let mut group = scope.group::<usize>();
                group.spawn(async { Ok::<_, Infallible>(7) });
                group.spawn(async { Err::<usize, _>(std::io::Error::other("no")) });
                while group.inbox.lock().done.len() < 2 {
                    tokio::task::yield_now().await;
                }
                let out: Vec<bool> = group.members.iter().map(Member::is_out).collect();
                assert_eq!(
                    out,
                    [true, false],
                    "which members are marked handed out once both posted"
                );
                group.abort_all();
                assert_eq!(group.next().await.transpose()?, Some(7));
                let Some(Err(err)) = group.next().await else {
                    panic!("the failed member's failure did not come out of `next`");
                };
                assert_eq!(err.kind(), ErrorKind::Failed, "{err}");
                assert!(group.next().await.is_none());
                Ok::<_, crate::Error>(())
            })
            .policy(Policy::Supervise),
        )
        .await
        .unwrap();
    }

    /// A sweep keeps the members not handed out: `abort_all` after many
    /// sweeps still reaches one that sleeps for a day (swept out, it would
    /// not come out of `next` within the minute, and the test would fail).
    #[tokio::test(start_paused = true)]
    async fn a_sweep_keeps_the_members_not_handed_out() {
        crate::run(crate::task(|scope: Scope| async move {
            let mut group = scope.group::<usize>();
            group.spawn(async {
                tokio::time::sleep(Duration::from_secs(86_400)).await;
                Ok::<_, Infallible>(0)
            });
            for i in 0..4 * SWEEP_MIN {
                group.spawn(async move { Ok::<_, Infallible>(i) });
            }
            for _ in 0..4 * SWEEP_MIN {
                group.next().await.transpose()?;
            }
            assert!(group.members.len() < 4 * SWEEP_MIN, "no sweep happened");
            assert_eq!(group.len(), 1);
            group.abort_all();
            let last = tokio::time::timeout(Duration::from_secs(60), group.next()).await;
            let Ok(Some(Err(err))) = last else {
                panic!("the member never handed out was lost by a sweep: {last:?}");
            };
            assert_eq!(err.kind(), ErrorKind::Cancelled);
            assert!(group.next().await.is_none());
            Ok::<_, crate::Error>(())
        }))
        .await
        .unwrap();
    }
}
