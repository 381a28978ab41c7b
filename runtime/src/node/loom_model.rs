//! A loom model of the bookkeeping of a scope: child registration, the
//! delivery of a child's failure (`ChildTask`, the hand-off to its `Child`
//! handle in the node, the routing to the parent), `next_error`, the end
//! of a body and the join, and the teardown of an aborted subtree (the
//! `Driver`'s and `ChildTask`'s drops, `abandon`, `release`), and the
//! owner's abort of a child (`Child::abort`) racing its completion, a
//! failure in its subtree, or the polls of a child whose waker is kept
//! once; the end of a child racing its parent's cancel
//! (`TOKEN_CANCELLED`); children whose handles were dropped ending as the
//! body ends and the join looks, or as their parent is cancelled while its
//! body spawns (their entries left to the join); and a group's `Inbox`,
//! its members' posts racing `next` and the group's drop.
//!
//! It runs the production code itself: `Node::register`, `Membership::drive`,
//! the `Driver`, `Node::next_error` and `Child`, whose mutexes and atomics
//! are loom's under `cfg(all(test, loom))` (see `sync.rs`). What loom
//! cannot model is replaced, and only that: each child's tokio task is a
//! loom thread driving `Membership::drive` with `loom::future::block_on` (its
//! handle has no `JoinHandle`, so the model follows failures, not values;
//! an abort reaches it through its node's alarm and waker, as on tokio).
//! tokio-util's `CancellationToken` runs as it is: loom does not see inside
//! it, so each of its calls is one step for it (they are linearizable), and
//! no body here waits on a token (tokio-util wakes a child token's waiters
//! under its parent's lock, which loom could switch away from).
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p taskward-runtime --lib
//! --release loom_model` (see CONTRIBUTING.md).

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex, OnceLock};
use std::task::{Context, Poll, Waker};

use ::loom::future::block_on;
use ::loom::thread::{self, JoinHandle};

use super::{Admission, Driver, Node, Phase, Shared};
use crate::child::Child;
use crate::error::Error;
use crate::group::Inbox;
use crate::policy::Policy;
use crate::task::{Name, Parts, Start, TaskResult};

/// The tokio runtime a `Shared` names. Nothing is spawned on it: children
/// run on loom threads.
fn runtime() -> tokio::runtime::Handle {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME
        .get_or_init(|| tokio::runtime::Builder::new_current_thread().build().unwrap())
        .handle()
        .clone()
}

fn root(policy: Policy) -> Arc<Node> {
    let tree = Arc::new(Shared::new(runtime(), None));
    Node::root(
        tree,
        Name::Fixed(&"root"),
        policy,
        tokio_util::sync::CancellationToken::new(),
        None,
    )
}

/// `Root::run` without its options: the root's `Driver`.
async fn run<B>(root: &Arc<Node>, body: B) -> Result<<B::Output as TaskResult>::Ok, Error>
where
    B: Future<Output: TaskResult>,
{
    let driver = Driver::new(Arc::clone(root), body, false, None);
    driver.await.expect("a root is never aborted through its alarm")
}

type Threads = Arc<StdMutex<Vec<JoinHandle<()>>>>;

/// The nodes a model made, to check at its end that none is left alive.
type Nodes = Arc<StdMutex<Vec<std::sync::Weak<Node>>>>;

/// Notes `node` in `nodes`.
fn note(nodes: &Nodes, node: &Arc<Node>) {
    nodes.lock().unwrap().push(Arc::downgrade(node));
}

/// Asserts that no node noted in `nodes` is alive.
fn assert_none_alive(nodes: &Nodes) {
    for node in nodes.lock().unwrap().iter() {
        assert!(node.upgrade().is_none(), "a child's node is left alive");
    }
}

/// `Scope::spawn` as `Node::spawn_with` does it, with a loom thread for the
/// tokio task: `make` gets the child's node (its scope) and makes its
/// body. `None` if the scope is closed. The thread is added to `threads`,
/// to be joined at the end of the model.
fn spawn<B>(
    parent: &Arc<Node>,
    policy: Policy,
    threads: &Threads,
    make: impl FnOnce(Arc<Node>) -> B,
) -> Option<Child<<B::Output as TaskResult>::Ok>>
where
    B: Future<Output: TaskResult> + Send + 'static,
{
    spawn_as(parent, policy, false, threads, make)
}

/// `spawn`, of a shielded child (`Task::shielded`) if `shielded`.
fn spawn_as<B>(
    parent: &Arc<Node>,
    policy: Policy,
    shielded: bool,
    threads: &Threads,
    make: impl FnOnce(Arc<Node>) -> B,
) -> Option<Child<<B::Output as TaskResult>::Ok>>
where
    B: Future<Output: TaskResult> + Send + 'static,
{
    let parts: Parts<()> = Parts {
        name: Name::Fixed(&"child"),
        policy,
        timeout: None,
        shielded,
        start: Start::Made(()),
    };
    let membership = parent.register(parent.shared(), &parts, Admission::Queue, None)?;
    let body = make(Arc::clone(membership.node()));
    let child = Child::new(Arc::clone(membership.node()), None);
    let thread = thread::spawn(move || {
        block_on(membership.drive(body, false));
    });
    threads.lock().unwrap().push(thread);
    Some(child)
}

/// Joins every thread, including those spawned meanwhile.
fn join(threads: &Threads) {
    loop {
        let batch = std::mem::take(&mut *threads.lock().unwrap());
        if batch.is_empty() {
            return;
        }
        for thread in batch {
            thread.join().unwrap();
        }
    }
}

fn failure() -> std::io::Result<()> {
    Err(std::io::Error::other("boom"))
}

/// Every failure in `err`, counting its related ones.
fn count(err: &Error) -> usize {
    1 + err.related().iter().map(count).sum::<usize>()
}

/// A child fails while its handle, moved to a sibling, is polled once and
/// dropped, and while the parent's body takes failures with
/// `next_error` (or ends at once): whichever wins each race, the failure
/// reaches exactly one of the handle, `next_error` and the parent's result.
fn exactly_once(policy: Policy, drain: bool) {
    ::loom::model(move || {
        let root = root(policy);
        let threads = Threads::default();
        let (by_handle, by_next_error) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let result = block_on(run(&root, {
            let (root, threads) = (Arc::clone(&root), Arc::clone(&threads));
            let (by_handle, by_next_error) = (Arc::clone(&by_handle), Arc::clone(&by_next_error));
            async move {
                let child = spawn(&root, Policy::FailFast, &threads, |_| async { failure() }).unwrap();
                // A sibling holds the handle: it polls it once, then drops it.
                spawn(&root, Policy::FailFast, &threads, move |_| async move {
                    let mut child = child;
                    let polled = poll_fn(|cx| Poll::Ready(Pin::new(&mut child).poll(cx))).await;
                    if let Poll::Ready(result) = polled {
                        assert!(result.is_err());
                        by_handle.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok::<_, Error>(())
                });
                if drain {
                    while let Some(err) = root.next_error().await {
                        by_next_error.fetch_add(count(&err), Ordering::SeqCst);
                    }
                }
                Ok::<_, Error>(())
            }
        }));
        join(&threads);
        let escalated = result.as_ref().map_or_else(count, |()| 0);
        let by_handle = by_handle.load(Ordering::SeqCst);
        let by_next_error = by_next_error.load(Ordering::SeqCst);
        assert_eq!(
            by_handle + by_next_error + escalated,
            1,
            "handle {by_handle}, next_error {by_next_error}, escalated {escalated}"
        );
    });
}

#[test]
fn a_failure_reaches_exactly_one_of_handle_next_error_and_escalation() {
    exactly_once(Policy::Supervise, true);
}

#[test]
fn a_failure_reaches_exactly_one_of_handle_and_escalation_under_fail_fast() {
    exactly_once(Policy::FailFast, false);
}

/// A task's result comes only after its whole subtree has finished, and
/// a grandchild's failure escalates through its parent once.
#[test]
fn a_result_comes_after_the_whole_subtree_and_a_deep_failure_escalates_once() {
    ::loom::model(|| {
        let root = root(Policy::Supervise);
        let threads = Threads::default();
        let done = Arc::new(AtomicBool::new(false));
        let result = block_on(run(&root, {
            let (root, threads, done) = (Arc::clone(&root), Arc::clone(&threads), Arc::clone(&done));
            async move {
                // The child's body ends at once; its own child fails later.
                spawn(&root, Policy::FailFast, &threads.clone(), move |child| async move {
                    spawn(&child, Policy::FailFast, &threads, move |_| async move {
                        done.store(true, Ordering::SeqCst);
                        failure()
                    });
                    Ok::<_, Error>(())
                });
                Ok::<_, Error>(())
            }
        }));
        assert!(
            done.load(Ordering::SeqCst),
            "the result came before the grandchild finished"
        );
        let err = result.unwrap_err();
        assert_eq!((err.task(), count(&err)), ("root/child#0/child#0", 1));
        assert!(
            root.lock()
                .family_ref()
                .is_none_or(|family| family.upgraded_children().all(|child| child.is_released()))
        );
        join(&threads);
    });
}

// Regression: the join saw "no child running" and closed the scope under
// two different locks; a spawn through a clone of the scope kept outside
// the tree (a raw tokio task, a thread) could come in between, and the
// scope finished without joining that child.
#[test]
fn a_spawn_racing_the_end_of_its_scope_is_joined_or_refused() {
    ::loom::model(|| {
        let root = root(Policy::Supervise);
        let threads = Threads::default();
        let ran = Arc::new(AtomicBool::new(false));
        let outsider = {
            let (root, threads, ran) = (Arc::clone(&root), Arc::clone(&threads), Arc::clone(&ran));
            thread::spawn(move || {
                let child = spawn(&root, Policy::FailFast, &threads, move |_| async move {
                    ran.store(true, Ordering::SeqCst);
                    Ok::<_, Error>(())
                });
                child.is_some()
            })
        };
        block_on(run(&root, async { Ok::<_, Error>(()) })).unwrap();
        let ran_before_the_end = ran.load(Ordering::SeqCst);
        let accepted = outsider.join().unwrap();
        assert!(!accepted || ran_before_the_end, "a child was accepted and not joined");
        assert_eq!(root.phase(&root.lock()), Phase::Closed);
        join(&threads);
    });
}

/// A child ends while another thread cancels its parent. It skips the
/// cancel of its own token only once its parent's cancel has returned
/// (`TOKEN_CANCELLED`), which cancelled every token made from the
/// parent's; a shielded child's token is not one of them. Whichever comes
/// first, each child's token is cancelled as soon as the child has ended,
/// before the parent's cancel is known to be over and before the parent
/// closes (which would cancel the non-shielded one).
#[test]
fn a_child_ending_while_its_parent_is_cancelled_has_its_token_cancelled() {
    ::loom::model(|| {
        let root = root(Policy::Supervise);
        let threads = Threads::default();
        let tokens = Arc::new(StdMutex::new(Vec::new()));
        for shielded in [false, true] {
            let tokens = Arc::clone(&tokens);
            spawn_as(&root, Policy::Supervise, shielded, &threads, move |node| {
                tokens.lock().unwrap().push(node.token().clone());
                async { Ok::<_, Error>(()) }
            })
            .expect("the scope is open");
        }
        let canceller = {
            let root = Arc::clone(&root);
            thread::spawn(move || root.cancel())
        };
        let scope = Arc::clone(&root);
        block_on(run(&root, async move {
            scope.wait_idle().await;
            for token in tokens.lock().unwrap().iter() {
                assert!(token.is_cancelled(), "a finished task's token is cancelled");
            }
            Ok::<_, Error>(())
        }))
        .unwrap();
        canceller.join().unwrap();
        join(&threads);
    });
}

/// Children whose handles were dropped end while their parent's body ends
/// and its join looks: each leaves its entry (and its node) to the join
/// (see `Family::children`), the last one wakes the join, a failing one is
/// routed under the parent's lock. Whatever the order, the join ends, the
/// failure escalates once, and no child's node is left alive.
#[test]
fn children_with_dropped_handles_race_the_end_of_the_body_and_the_join() {
    ::loom::model(|| {
        let root = root(Policy::Supervise);
        let threads = Threads::default();
        let nodes = Nodes::default();
        let result = block_on(run(&root, {
            let (root, threads, nodes) = (Arc::clone(&root), Arc::clone(&threads), Arc::clone(&nodes));
            async move {
                for fails in [false, true] {
                    let nodes = Arc::clone(&nodes);
                    let child = spawn(&root, Policy::Supervise, &threads, move |node| {
                        note(&nodes, &node);
                        async move { if fails { failure() } else { Ok(()) } }
                    });
                    drop(child.expect("the scope is open"));
                }
                Ok::<_, Error>(())
            }
        }));
        join(&threads);
        let err = result.expect_err("the child's failure escalates");
        assert_eq!(count(&err), 1, "{err:?}");
        assert_none_alive(&nodes);
    });
}

/// A child whose handle was dropped ends while its parent, cancelled, spawns
/// one more: the child's count racing the spawn's, which registers under
/// the lock. Whatever the order, the join ends and no child's node is left
/// alive. (The cancel racing the children is
/// `a_child_ending_while_its_parent_is_cancelled_has_its_token_cancelled`.)
#[test]
fn a_child_of_a_cancelled_scope_ends_while_the_body_spawns() {
    ::loom::model(|| {
        let root = root(Policy::Supervise);
        let threads = Threads::default();
        let nodes = Nodes::default();
        let keep = |nodes: &Nodes| {
            let nodes = Arc::clone(nodes);
            move |node: Arc<Node>| {
                note(&nodes, &node);
                async { Ok::<_, Error>(()) }
            }
        };
        drop(spawn(&root, Policy::Supervise, &threads, keep(&nodes)).expect("the scope is open"));
        root.cancel();
        let result = block_on(run(&root, {
            let (root, threads, make) = (Arc::clone(&root), Arc::clone(&threads), keep(&nodes));
            async move {
                drop(spawn(&root, Policy::Supervise, &threads, make).expect("the scope is open"));
                Ok::<_, Error>(())
            }
        }));
        join(&threads);
        result.unwrap();
        assert_none_alive(&nodes);
    });
}

/// A root whose future is dropped while its child and grandchild run:
/// each is aborted in turn through its alarm (the child's abort aborts the
/// grandchild), or the grandchild finishes first. Whatever the order, every node is
/// released to its parent only once its own children are gone, no count
/// is left behind, and no node is leaked (a node and its parent hold each
/// other until the child is released).
#[test]
fn an_aborted_subtree_is_released_bottom_up_and_leaks_nothing() {
    ::loom::model(|| {
        let root = root(Policy::Supervise);
        let nodes = Nodes::default();
        let threads = Threads::default();
        {
            let parts: Parts<()> = Parts {
                name: Name::Fixed(&"child"),
                policy: Policy::FailFast,
                timeout: None,
                shielded: false,
                start: Start::Made(()),
            };
            let membership = root.register(root.shared(), &parts, Admission::Queue, None).unwrap();
            let child = Arc::clone(membership.node());
            note(&nodes, &child);
            drop(Child::<()>::new(Arc::clone(&child), None));
            let (nodes, threads2) = (Arc::clone(&nodes), Arc::clone(&threads));
            let body = {
                let child = Arc::clone(&child);
                async move {
                    let grandchild = spawn(&child, Policy::FailFast, &threads2, |node| {
                        note(&nodes, &node);
                        async {
                            thread::yield_now();
                            Ok::<_, Error>(())
                        }
                    });
                    drop(grandchild);
                    std::future::pending::<Result<(), Error>>().await
                }
            };
            let thread = thread::spawn(move || {
                block_on(membership.drive(body, false));
            });
            threads.lock().unwrap().push(thread);
        }
        // The root's own future is dropped (a `select!` lost): its guard
        // raises the child's alarm.
        {
            let mut run = pin!(run(&root, std::future::pending::<Result<(), Error>>()));
            let mut cx = Context::from_waker(Waker::noop());
            assert!(run.as_mut().poll(&mut cx).is_pending());
        }
        join(&threads);
        {
            let state = root.lock();
            let children = state.family_ref().map_or(0, |family| {
                family.upgraded_children().filter(|child| !child.is_released()).count()
            });
            assert_eq!((root.members(), children), (0, 0));
        }
        drop(root);
        for node in nodes.lock().unwrap().iter() {
            assert_eq!(node.strong_count(), 0, "a node was leaked");
        }
    });
}

/// The owner aborts a child (`Child::abort`) while the child completes
/// with a failure, then keeps its handle or drops it at once, under
/// fail-fast. Whichever wins: a failure the child returned is delivered
/// exactly once (to the held handle, else escalated) and cancels the
/// owner; an abort that won reports nothing anywhere and cancels nothing;
/// no member is left behind.
fn abort_races_completion(keep_handle: bool) {
    ::loom::model(move || {
        let root = root(Policy::FailFast);
        let threads = Threads::default();
        let returned = Arc::new(AtomicBool::new(false));
        let result = block_on(run(&root, {
            let (root, threads, returned) = (Arc::clone(&root), Arc::clone(&threads), Arc::clone(&returned));
            async move {
                let child = spawn(&root, Policy::FailFast, &threads, move |_| {
                    let mut polled = false;
                    poll_fn(move |cx| {
                        if !polled {
                            polled = true;
                            cx.waker().wake_by_ref();
                            return Poll::Pending;
                        }
                        returned.store(true, Ordering::SeqCst);
                        Poll::Ready(failure())
                    })
                })
                .unwrap();
                child.abort();
                Ok::<_, Error>(keep_handle.then_some(child))
            }
        }));
        join(&threads);
        let returned = returned.load(Ordering::SeqCst);
        let cancelled_by = root.lock().family_ref().and_then(|family| family.cancelled_by);
        assert_eq!(cancelled_by.is_some(), returned, "the owner was cancelled by an abort");
        match result {
            Ok(Some(child)) => {
                assert_eq!(child.is_finished(), returned, "the handle lost the child's own failure");
                if returned {
                    let err = block_on(child).unwrap_err();
                    assert_eq!(err.kind(), crate::ErrorKind::Failed);
                }
            }
            Ok(None) => assert!(!returned, "the child's own failure was lost"),
            Err(err) => {
                assert!(returned, "an abort escalated: {err}");
                assert_eq!((err.kind(), count(&err)), (crate::ErrorKind::Failed, 1));
            }
        }
        assert_eq!(root.members(), 0);
    });
}

#[test]
fn an_abort_racing_completion_with_the_handle_kept_reports_only_to_it() {
    abort_races_completion(true);
}

#[test]
fn an_abort_racing_completion_with_the_handle_dropped_never_escalates() {
    abort_races_completion(false);
}

/// The owner aborts a child while the child's own child (a grandchild)
/// fails: the grandchild's failure reaches the child first (waiting in its
/// `next_error` queue) or after the child was aborted (kept there), or the
/// abort drops the grandchild before it fails. Whichever wins, a failure
/// the grandchild returned reaches the owner's scope exactly once (handed
/// up by the aborted child, see `hand_up`), and the abort itself reports
/// nothing.
#[test]
fn a_failure_in_a_subtree_racing_its_abort_reaches_the_owner_once() {
    ::loom::model(|| {
        let root = root(Policy::Supervise);
        let threads = Threads::default();
        let returned = Arc::new(AtomicBool::new(false));
        let result = block_on(run(&root, {
            let (root, threads, returned) = (Arc::clone(&root), Arc::clone(&threads), Arc::clone(&returned));
            async move {
                let inner = Arc::clone(&threads);
                let child = spawn(&root, Policy::Supervise, &threads, move |node| async move {
                    let grandchild = spawn(&node, Policy::FailFast, &inner, move |_| async move {
                        thread::yield_now();
                        returned.store(true, Ordering::SeqCst);
                        failure()
                    });
                    drop(grandchild);
                    std::future::pending::<Result<(), Error>>().await
                })
                .unwrap();
                child.abort();
                drop(child);
                Ok::<_, Error>(())
            }
        }));
        join(&threads);
        match result {
            Ok(()) => assert!(!returned.load(Ordering::SeqCst), "the grandchild's failure was lost"),
            Err(err) => {
                assert!(returned.load(Ordering::SeqCst), "the abort escalated: {err}");
                assert_eq!((err.kind(), count(&err)), (crate::ErrorKind::Failed, 1), "{err}");
            }
        }
        assert_eq!(root.members(), 0);
    });
}

/// The owner aborts a child whose body is pending at three polls in a row
/// (it wakes itself after the first two, then waits for good). The child
/// keeps its waker under its lock at its first pending poll only
/// (`keep_driver_waker`); the abort, at any point of those polls, still
/// wakes it (`block_on` would never return otherwise), and reports
/// nothing.
#[test]
fn an_abort_wakes_a_child_whose_waker_was_kept_at_an_earlier_poll() {
    ::loom::model(|| {
        let root = root(Policy::Supervise);
        let threads = Threads::default();
        let result = block_on(run(&root, {
            let (root, threads) = (Arc::clone(&root), Arc::clone(&threads));
            async move {
                let child = spawn(&root, Policy::Supervise, &threads, move |_| {
                    let mut polls = 0;
                    poll_fn(move |cx| {
                        polls += 1;
                        if polls < 3 {
                            cx.waker().wake_by_ref();
                        }
                        Poll::<Result<(), Error>>::Pending
                    })
                })
                .unwrap();
                thread::yield_now();
                child.abort();
                drop(child);
                Ok::<_, Error>(())
            }
        }));
        join(&threads);
        // The root's join waited for the aborted child to end: an abort
        // that did not wake it would have left both blocked.
        assert!(result.is_ok(), "an abort escalated: {result:?}");
        assert_eq!(root.members(), 0);
    });
}

/// A group's inbox (`group.rs`): two members post while the group takes
/// (one its value, one its node), then a third posts its value while the
/// group is dropped. Every post is taken once, no wake-up is lost
/// (`block_on` would never return), and a value posted as the group closes
/// is dropped, not kept in the inbox.
#[test]
fn a_groups_inbox_loses_no_post_nor_wake_up_and_keeps_nothing_once_closed() {
    ::loom::model(|| {
        let inbox = Arc::new(Inbox::<Arc<()>>::new());
        let value = Arc::new(());
        let node = root(Policy::FailFast);
        let post_value = || {
            let (inbox, value) = (Arc::clone(&inbox), Arc::clone(&value));
            thread::spawn(move || inbox.post(Ok(value)))
        };
        let post_node = {
            let (inbox, node) = (Arc::clone(&inbox), Arc::clone(&node));
            thread::spawn(move || inbox.post(Err(node)))
        };
        let members = [post_value(), post_node];
        let (mut values, mut nodes) = (0, Vec::new());
        let mut taken = VecDeque::new();
        while values + nodes.len() < 2 {
            block_on(poll_fn(|cx| inbox.poll_take(cx, &mut taken)));
            for post in taken.drain(..) {
                match post {
                    Ok(_) => values += 1,
                    Err(node) => nodes.push(node.key()),
                }
            }
        }
        assert_eq!((values, nodes), (1, vec![node.key()]));
        for member in members {
            member.join().unwrap();
        }
        let late = post_value();
        inbox.close();
        late.join().unwrap();
        assert_eq!(Arc::strong_count(&value), 1, "a value outlived the group's drop");
    });
}
