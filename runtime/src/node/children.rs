//! A parent's list of its children (`Family::children`), in blocks.
//!
//! One `Vec` of all the entries would be a single block of 16 bytes per
//! child: 800 KB for a scope of 50 000 children, copied each time it grows,
//! and freed in one piece by the join. glibc answers a free that large by
//! consolidating its fast bins, which by then hold the nodes and tokens of
//! every child that just ended: one worker spent milliseconds there after
//! the last child of a wide scope had ended (benches/PROFILE-NOTES.md,
//! sessions 11 and 12). In blocks of under a kilobyte, nothing is copied as
//! the list grows, and no block freed is large enough to set that off by
//! itself.

use std::sync::{Arc, Weak};

use tokio::task::AbortHandle;

use super::Node;

/// A child in its parent's list.
#[derive(Default)]
pub(super) struct Entry {
    /// Weak: a parent does not keep its children's nodes alive. Empty
    /// only where a sweep moved it from (`Children::retain_mut`).
    pub(super) node: Weak<Node>,
    /// The child's tokio task, kept from the moment its handle was dropped
    /// before it finished (see `Node::keep_task`).
    pub(super) task: Option<AbortHandle>,
}

impl Entry {
    /// The entry of a child just added.
    #[inline]
    pub(super) fn new(child: &Arc<Node>) -> Self {
        Entry {
            node: Arc::downgrade(child),
            task: None,
        }
    }
}

/// The entries, by slot: the first `FIRST` in a block of their own, made
/// at the first child (most scopes need no other), the rest in blocks of
/// `BLOCK`, made as the list grows. As a `Vec` keeps its room, a block
/// emptied by a sweep stays, for the entries that come next, until the
/// list is dropped: so a list is swept only once it has filled its room
/// again (see `Family::push_child`), not every time it reaches the end of
/// a block.
///
/// The later blocks are boxed apart, so that the list takes two words in a
/// `Family`, where a `Vec` took three: the `Family` stays within the block
/// size it had (a larger one measured 60 instructions more of malloc per
/// task in a tree of fanout 10).
#[derive(Default)]
pub(super) struct Children {
    first: Vec<Entry>,
    more: Option<Box<More>>,
}

/// The blocks after the first.
#[derive(Default)]
struct More {
    blocks: Vec<Vec<Entry>>,
    /// How many entries they hold, empty ones included: every block before
    /// the one of entry `len` is full, every block after it empty.
    len: usize,
}

impl More {
    /// Makes one more block, every one before it being full: once every
    /// `BLOCK` entries, out of line.
    #[inline(never)]
    fn add_block(&mut self) {
        self.blocks.push(Vec::with_capacity(Children::BLOCK));
    }
}

impl Children {
    /// The room of the first block: a scope of up to 16 children allocates
    /// its list once (in a tree of fanout 10, a list grown from empty cost
    /// about 120 instructions per child). A scope of one child pays 96
    /// bytes more than a list of four.
    pub(super) const FIRST: usize = 16;

    /// The room of every later block: 960 bytes, under the 1 KB from which
    /// glibc serves (and frees) a block from its large bins, where a malloc
    /// consolidates the fast bins too.
    pub(super) const BLOCK: usize = 60;

    /// How many entries there are, empty ones included.
    #[inline]
    pub(super) fn len(&self) -> usize {
        self.first.len() + self.more.as_ref().map_or(0, |more| more.len)
    }

    /// Whether every block made is full, so that the next entry needs a
    /// new one: where a sweep may be due (see `Family::push_child`).
    #[inline]
    pub(super) fn is_full(&self) -> bool {
        match &self.more {
            None => self.first.len() == Self::FIRST,
            Some(more) => more.len == more.blocks.len() * Self::BLOCK,
        }
    }

    /// Adds `entry` at the end; gives back its slot. Always inlined into
    /// the spawn, where a call cost 13 to 20 instructions.
    #[inline(always)]
    pub(super) fn push(&mut self, entry: Entry) -> usize {
        if self.first.len() < Self::FIRST {
            if self.first.capacity() == 0 {
                self.make_first();
            }
            self.first.push(entry);
            return self.first.len() - 1;
        }
        let more = self.more.get_or_insert_with(Box::default);
        let past = more.len;
        more.len += 1;
        let block = past / Self::BLOCK;
        if block == more.blocks.len() {
            more.add_block();
        }
        more.blocks[block].push(entry);
        Self::FIRST + past
    }

    /// Makes the first block, at the first child.
    #[cold]
    fn make_first(&mut self) {
        self.first.reserve_exact(Self::FIRST);
    }

    /// The entry at `slot`, if there is one.
    pub(super) fn get_mut(&mut self, slot: usize) -> Option<&mut Entry> {
        match slot.checked_sub(Self::FIRST) {
            None => self.first.get_mut(slot),
            Some(past) => self
                .more
                .as_mut()?
                .blocks
                .get_mut(past / Self::BLOCK)?
                .get_mut(past % Self::BLOCK),
        }
    }

    /// The entries, in slot order.
    pub(super) fn iter(&self) -> impl Iterator<Item = &Entry> {
        let more = self.more.iter().flat_map(|more| more.blocks.iter().flatten());
        self.first.iter().chain(more)
    }

    /// Keeps the entries for which `keep` returns true, in their order,
    /// moved to the front; drops the others (the blocks stay).
    pub(super) fn retain_mut(&mut self, mut keep: impl FnMut(&mut Entry) -> bool) {
        let mut kept = 0;
        for slot in 0..self.len() {
            let Some(entry) = self.get_mut(slot) else {
                unreachable!("every slot under the length has an entry")
            };
            if !keep(entry) {
                continue;
            }
            if kept != slot {
                let moved = std::mem::take(entry);
                if let Some(place) = self.get_mut(kept) {
                    *place = moved;
                }
            }
            kept += 1;
        }
        self.truncate(kept);
    }

    /// Drops the entries from slot `len` on.
    fn truncate(&mut self, len: usize) {
        self.first.truncate(len);
        if let Some(more) = &mut self.more {
            let mut past = len.saturating_sub(Self::FIRST);
            more.len = more.len.min(past);
            for block in &mut more.blocks {
                block.truncate(past.min(Self::BLOCK));
                past = past.saturating_sub(Self::BLOCK);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::Node;
    use super::{Children, Entry};

    fn node() -> Arc<Node> {
        Arc::new(Node::for_test(None, crate::Policy::FailFast))
    }

    /// Which of `nodes` each entry points to, in slot order (`None` for an
    /// empty entry).
    fn listed(children: &Children, nodes: &[Arc<Node>]) -> Vec<Option<usize>> {
        children
            .iter()
            .map(|entry| nodes.iter().position(|node| std::ptr::eq(entry.node.as_ptr(), &**node)))
            .collect()
    }

    /// Slots count across the blocks, each entry is found at its slot, and
    /// a block is made only when the one before is full.
    #[test]
    fn entries_are_found_at_their_slots_across_blocks() {
        let count = Children::FIRST + 2 * Children::BLOCK + 5;
        let nodes: Vec<_> = (0..count).map(|_| node()).collect();
        let mut children = Children::default();
        for (i, node) in nodes.iter().enumerate() {
            let at_a_block_end = i
                .checked_sub(Children::FIRST)
                .is_some_and(|past| past % Children::BLOCK == 0);
            assert_eq!(children.is_full(), at_a_block_end, "full before entry {i}");
            assert_eq!(children.push(Entry::new(node)), i);
            assert_eq!(children.len(), i + 1);
        }
        assert_eq!(children.more.as_ref().map(|more| more.blocks.len()), Some(3));
        for (slot, node) in nodes.iter().enumerate() {
            let entry = children.get_mut(slot).expect("an entry at every slot");
            assert!(std::ptr::eq(entry.node.as_ptr(), &**node), "slot {slot}");
        }
        assert!(children.get_mut(count).is_none());
        assert_eq!(listed(&children, &nodes), (0..count).map(Some).collect::<Vec<_>>());
    }

    /// `retain_mut` keeps the order of the entries it keeps and moves them
    /// to the front; the blocks stay, and the list grows again from there,
    /// into them.
    #[test]
    fn retain_moves_the_kept_entries_to_the_front() {
        let count = Children::FIRST + 3 * Children::BLOCK;
        let nodes: Vec<_> = (0..count).map(|_| node()).collect();
        let mut children = Children::default();
        for node in &nodes {
            children.push(Entry::new(node));
        }
        let keep: Vec<usize> = (0..count).filter(|i| i % 7 == 3).collect();
        let mut index = 0;
        children.retain_mut(|_| {
            index += 1;
            (index - 1) % 7 == 3
        });
        assert_eq!(children.len(), keep.len());
        assert_eq!(
            listed(&children, &nodes),
            keep.iter().copied().map(Some).collect::<Vec<_>>()
        );
        // The blocks stay, so the list is not full until they are filled.
        assert_eq!(children.more.as_ref().map(|more| more.blocks.len()), Some(3));
        assert!(!children.is_full());
        // It grows again from where it was cut.
        let extra = node();
        assert_eq!(children.push(Entry::new(&extra)), keep.len());
        let slot = keep.len();
        assert!(std::ptr::eq(children.get_mut(slot).unwrap().node.as_ptr(), &*extra));
        for _ in slot + 1..count {
            assert!(!children.is_full());
            children.push(Entry::new(&extra));
        }
        assert!(children.is_full(), "full once the room of its blocks is used");
        assert_eq!(
            children.more.as_ref().map(|more| more.blocks.len()),
            Some(3),
            "without a block more"
        );

        children.retain_mut(|_| false);
        assert_eq!(children.len(), 0);
        assert_eq!(children.iter().count(), 0);
        assert_eq!(children.push(Entry::new(&extra)), 0);
    }
}
