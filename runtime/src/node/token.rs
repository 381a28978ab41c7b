//! Stopping tasks: the lazy cancellation token, `cancel`, and the alarm
//! that drops bodies where they stand (`kill`) or whole futures (`abort`).

use std::task::Waker;

use tokio_util::sync::CancellationToken;

use super::Node;
use super::state::{ABORT, ABORTED, ASKED, CANCELLED, KILL, Phase, SHIELDED, TIMED_OUT, TOKEN_CANCELLED};
use crate::cause::CancelCause;
use crate::sync::Ordering;

impl Node {
    /// The task's cancellation token, made on first use.
    pub(crate) fn token(&self) -> &CancellationToken {
        match self.token.get() {
            Some(token) => token,
            None => self.make_token(),
        }
    }

    /// Makes the tokens of this node and of its ancestors that have none,
    /// top down, each a child of its parent's (the root always has one).
    /// In a loop, not by recursion: a chain can be thousands deep.
    ///
    /// A token made late must be what it would have been if made at the
    /// spawn: cancelled if the task was cancelled meanwhile, or has
    /// finished (its token is cancelled then). Both are decided under the
    /// node's lock, which `cancel` and the end of the task take too.
    #[cold]
    pub(super) fn make_token(&self) -> &CancellationToken {
        // Most often the parent has its token: no list of ancestors.
        if self.parent.as_ref().is_none_or(|parent| parent.token.get().is_some()) {
            return self.make_own_token();
        }
        let mut chain = vec![self];
        let mut node = self;
        while let Some(parent) = &node.parent {
            if parent.token.get().is_some() {
                break;
            }
            chain.push(parent);
            node = parent;
        }
        for node in chain.into_iter().rev() {
            node.make_own_token();
        }
        self.token.get().unwrap_or_else(|| unreachable!("made above"))
    }

    /// Makes this node's token, its parent's being made (see `make_token`).
    ///
    /// A shielded task's token is a new one, not its parent's child: its
    /// parent's cancellation does not reach it, nor its descendants, whose
    /// tokens are made from it. (`kill` and `abort` walk the children, not
    /// the tokens, so they still reach it.)
    pub(super) fn make_own_token(&self) -> &CancellationToken {
        let state = self.lock();
        let shielded = self.has(&state, SHIELDED);
        let token = self.token.get_or_init(|| match &self.parent {
            Some(_) if shielded => CancellationToken::new(),
            Some(parent) => parent
                .token
                .get()
                .map_or_else(CancellationToken::new, CancellationToken::child_token),
            None => CancellationToken::new(),
        });
        let cancelled = self.has(&state, CANCELLED) || self.phase(&state) == Phase::Closed;
        drop(state);
        if cancelled {
            token.cancel();
        }
        token
    }

    /// Cancels the task's token, and so its subtree's. Without a token yet,
    /// it is marked for its token to be made cancelled: its descendants'
    /// tokens are made from it, so they will be too.
    pub(crate) fn cancel(&self) {
        if let Some(token) = self.token.get() {
            self.cancel_token(token);
            return;
        }
        let made = {
            let mut state = self.lock();
            self.mark(&mut state, CANCELLED);
            self.token.get().cloned()
        };
        // Made between the two looks.
        if let Some(token) = made {
            self.cancel_token(&token);
        }
    }

    /// Cancels `token`, this task's, and says so in the alarm
    /// (`TOKEN_CANCELLED`) once it is done, for the children that close
    /// after it (see `close_token`).
    pub(super) fn cancel_token(&self, token: &CancellationToken) {
        token.cancel();
        // The model must see the two steps apart: with the bit set first,
        // a child could skip its own cancel in between.
        crate::sync::switch_point();
        self.alarm.fetch_or(TOKEN_CANCELLED, Ordering::Release);
    }

    /// Cancels the task's token, if it has one, as the task closes or its
    /// body fails (a token made later is made cancelled: see
    /// `make_token`), unless it is known to be cancelled already: by this
    /// task's `cancel`, or, if it is a child of its parent's token (not
    /// `shielded`), by its parent's. Cancelling it again would find it
    /// cancelled, but under the token's lock: where a parent of 50 000 idle
    /// children is cancelled, that lock was 43 of the 2 755 instructions
    /// each child took to end (benches/PROFILE-NOTES.md, session 8).
    ///
    /// `shielded` is read under the node's lock by the caller.
    #[inline]
    pub(super) fn close_token(&self, shielded: bool) {
        let Some(token) = self.token.get() else {
            return;
        };
        let cancelled = |node: &Node| node.alarm.load(Ordering::Acquire) & TOKEN_CANCELLED != 0;
        if cancelled(self) || (!shielded && self.parent.as_deref().is_some_and(cancelled)) {
            return;
        }
        token.cancel();
    }

    /// Whether the task's token is cancelled.
    pub(crate) fn is_cancelled(&self) -> bool {
        self.token().is_cancelled()
    }

    /// Keeps `cause` (made only then) as why the task is cancelled, unless
    /// it is cancelled already: the first cause wins.
    pub(crate) fn keep_cause(&self, cause: impl FnOnce() -> CancelCause) {
        if !self.is_cancelled() {
            let _ = self.extra().cause.set(Box::new(cause()));
        }
    }

    /// Cancels the task for `cause` (see `keep_cause`).
    pub(crate) fn cancel_for(&self, cause: impl FnOnce() -> CancelCause) {
        self.keep_cause(cause);
        self.cancel();
    }

    /// Why the task is cancelled, `None` if it is not: the cause kept by
    /// the nearest of itself and its ancestors that was cancelled for one,
    /// up to a shielded task (its parent's cancellation does not reach
    /// it). With no cause kept, the task where the cancellation began (the
    /// highest cancelled one) was cancelled by a plain `cancel`, or is a
    /// root cancelled through `Root::token`.
    pub(crate) fn cancel_cause(&self) -> Option<CancelCause> {
        if !self.is_cancelled() {
            return None;
        }
        let mut node = self;
        loop {
            if let Some(cause) = node.extra.get().and_then(|extra| extra.cause.get()) {
                return Some(CancelCause::clone(cause));
            }
            let shielded = node.has(&node.lock(), SHIELDED);
            match &node.parent {
                Some(parent) if !shielded && parent.is_cancelled() => node = parent,
                Some(_) => break,
                None if node.shared().stop.as_ref().is_some_and(CancellationToken::is_cancelled) => {
                    return Some(CancelCause::Shutdown { signal: false });
                }
                None => break,
            }
        }
        Some(CancelCause::Requested {
            task: std::sync::Arc::clone(node.path()),
            reason: None,
        })
    }

    /// Sets `bits` of the alarm and wakes the task, so that its next poll
    /// sees them.
    pub(super) fn raise(&self, bits: u8) {
        self.alarm.fetch_or(bits, Ordering::SeqCst);
        let waker = std::mem::replace(self.lock().waker(), Waker::noop().clone());
        waker.wake();
    }

    /// Aborts the task's body and every body of its subtree where they
    /// stand: each is dropped at once and reported `Cancelled`, while the
    /// joins go on, so that every task is awaited and delivers its result.
    ///
    /// A child spawned in the subtree after this is born killed: it reads
    /// its parent's alarm under the parent's lock, which the walk takes
    /// after raising it.
    pub(crate) fn kill(&self) {
        self.raise(KILL);
        let mut stack = self.children();
        while let Some(node) = stack.pop() {
            node.raise(KILL);
            stack.extend(node.children());
        }
    }

    /// Marks the task as past its deadline (its result will be `TimedOut`)
    /// and cancels it.
    pub(crate) fn time_out(&self) {
        self.mark(&mut self.lock(), TIMED_OUT);
        self.cancel_for(|| CancelCause::Deadline {
            task: std::sync::Arc::clone(self.path()),
            limit: self.timeout().unwrap_or_default(),
        });
    }

    /// The owner's abort (`Child::abort`): the task's future returns at its
    /// next poll and is dropped, as when its parent is aborted, and its
    /// teardown aborts the subtree. Marked `ASKED`, so that the `Cancelled`
    /// it causes is left to the handle (see `tear_down`). A task that has
    /// delivered already is not touched: its alarm is read no more.
    pub(crate) fn abort_asked(&self) {
        self.raise(ABORT | ASKED);
    }

    /// Whether the task's owner asked for its abort.
    pub(crate) fn is_abort_asked(&self) -> bool {
        self.alarm.load(Ordering::Acquire) & ASKED != 0
    }

    /// Cancels the token and aborts every running child; their bookkeeping
    /// stays until each is gone.
    pub(super) fn abort(&self) {
        self.cancel();
        {
            let mut state = self.lock();
            self.mark(&mut state, ABORTED);
            self.set_phase(&mut state, Phase::Closed);
        }
        for child in self.children() {
            child.raise(ABORT);
        }
    }
}
