//! A task's name and path (`pipeline/worker#3`), built on first use.

use std::cell::RefCell;
use std::sync::Arc;

use super::Node;
use crate::error::Place;
use crate::sync::Ordering;

impl Node {
    pub(super) fn index(&self) -> u32 {
        self.index.load(Ordering::Relaxed)
    }

    /// The task's name; a name formatted from the task's arguments is
    /// formatted now, the first time (user code: never under a lock).
    pub(super) fn name(&self) -> &str {
        match (self.name, self.extra.get().and_then(|extra| extra.name.as_ref())) {
            (Some(name), _) => name,
            (None, Some(name)) => name.as_str(),
            (None, None) => unreachable!("a name not fixed is kept in `Extra`"),
        }
    }

    /// The task's name if it is counted among its siblings' (`name#index`),
    /// found without formatting one.
    pub(super) fn counted_name(&self) -> Option<&str> {
        match (self.name, self.extra.get().and_then(|extra| extra.name.as_ref())) {
            (Some(name), _) => Some(name),
            (None, Some(name)) if name.is_counted() => Some(name.as_str()),
            _ => None,
        }
    }

    /// The index that follows the task's name in its path (`name#index`):
    /// below a parent, when the name is counted (not formatted from the
    /// task's arguments).
    fn counted_index(&self) -> Option<u32> {
        (self.parent.is_some() && self.counted_name().is_some()).then(|| self.index())
    }

    /// Appends the task's own part of its path: `name#index` below a
    /// parent (the bare name when formatted from its arguments), the
    /// name at the root.
    fn push_label(&self, path: &mut String) {
        path.push_str(self.name());
        if let Some(index) = self.counted_index() {
            path.push('#');
            push_index(path, index);
        }
    }

    /// The task's path from the root, such as `pipeline/worker#3`, built
    /// the first time and kept.
    pub(crate) fn path(&self) -> &Arc<str> {
        if let Some(path) = self.known_path() {
            return path;
        }
        // A formatted name is formatted before the path's cell is taken: its
        // format may ask for this task's path (it then gets the path with
        // the function's name) and must not wait for the cell it is in.
        let _ = self.name();
        self.extra().path.get_or_init(|| self.build_path())
    }

    /// Where a failure made at this task was made: the kept path if the
    /// task has its `Extra` (made at the spawn for a task with a run-time
    /// name, a span or a deadline), else its parent's path, which is kept
    /// (one for all the failing children), and its own label, joined only
    /// if the failure's path is read (see `Place`). A task that failed
    /// seldom asks for its path again: keeping it would make an `Extra` for
    /// every failing child (about a fifth of a failure's cost when
    /// thousands of children fail under `next_error`).
    pub(crate) fn failure_place(&self) -> Place {
        match (self.extra.get(), &self.parent, self.name) {
            (None, Some(parent), Some(name)) => Place::below(Arc::clone(parent.path()), name, self.counted_index()),
            _ => Place::from(Arc::clone(self.path())),
        }
    }

    /// Builds the task's path from the nearest ancestor whose path is known
    /// (or the root).
    ///
    /// In a loop, not by recursion: a chain of tasks thousands deep must
    /// not overflow the stack. The ancestors' own paths are not built on
    /// the way, so a failure at the bottom of a deep chain costs one string.
    fn build_path(&self) -> Arc<str> {
        // Most often the parent's path is known: one allocation.
        match &self.parent {
            None => return Arc::from(self.name()),
            Some(parent) => {
                if let Some(known) = parent.known_path() {
                    return joined(known, self.name(), self.counted_index());
                }
            }
        }
        // `self` and its ancestors whose path is not built, bottom up.
        let mut chain = vec![self];
        let mut known: &str = "";
        let mut node = self;
        while let Some(parent) = &node.parent {
            if let Some(path) = parent.known_path() {
                known = path;
                break;
            }
            chain.push(parent);
            node = parent;
        }
        let mut path = String::from(known);
        for node in chain.into_iter().rev() {
            if node.parent.is_some() {
                path.push('/');
            }
            node.push_label(&mut path);
        }
        Arc::from(path)
    }

    /// The task's path, if it was built already.
    pub(crate) fn known_path(&self) -> Option<&Arc<str>> {
        self.extra.get()?.path.get()
    }

    /// Whether `err` was made at this task, by its scope (a `race` of no
    /// tasks), found without building a path: such a failure holds the
    /// path this task keeps.
    pub(super) fn is_origin_of(&self, err: &crate::Error) -> bool {
        self.known_path().is_some_and(|path| err.is_made_at(path))
    }

    /// The task's own part of its path: `worker#3`, or the root's name.
    pub(crate) fn label(&self) -> String {
        let mut label = String::new();
        self.push_label(&mut label);
        label
    }
}

/// The longest path `joined` builds in the thread's scratch string: a
/// longer one (a deep chain's) gets a `String` of its own, so that no
/// thread keeps a large buffer.
const SCRATCH_LEN: usize = 256;

thread_local! {
    /// Where `joined` writes a path before copying it into its `Arc`.
    static SCRATCH: RefCell<String> = const { RefCell::new(String::new()) };
}

/// `parent/name#index` (`parent/name` without an index) in one allocation,
/// the `Arc`'s. A `format!` into a `String` then copied into an `Arc<str>`
/// allocated twice and formatted the index through `fmt`; a buffer on the
/// stack would have to be checked to be UTF-8 to become a `str` (about 180
/// instructions for a path of 15 bytes), where a `String` is written
/// `str` by `str`.
fn joined(parent: &str, name: &str, index: Option<u32>) -> Arc<str> {
    let write = |path: &mut String| write_joined(path, parent, name, index);
    if parent.len() + name.len() + 12 <= SCRATCH_LEN {
        // Not reached from within (nothing here runs user code); `None`
        // only while the thread's locals are being destroyed.
        let built = SCRATCH.try_with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            scratch.clear();
            write(&mut scratch);
            Arc::from(scratch.as_str())
        });
        if let Ok(path) = built {
            return path;
        }
    }
    let mut path = String::new();
    write(&mut path);
    Arc::from(path)
}

/// `parent/name#index` (`parent/name` without an index) in a block of its
/// own, of its length, for a failure's path read (see `Place`).
pub(crate) fn joined_path(parent: &str, name: &str, index: Option<u32>) -> Box<str> {
    let digits = |index: u32| index.checked_ilog10().map_or(1, |log| log as usize + 1);
    let len = parent.len() + 1 + name.len() + index.map_or(0, |index| 1 + digits(index));
    let mut path = String::with_capacity(len);
    write_joined(&mut path, parent, name, index);
    debug_assert_eq!(path.len(), len, "the length of `{path}` was counted wrong");
    path.into_boxed_str()
}

fn write_joined(path: &mut String, parent: &str, name: &str, index: Option<u32>) {
    path.push_str(parent);
    path.push('/');
    path.push_str(name);
    if let Some(index) = index {
        path.push('#');
        push_index(path, index);
    }
}

/// Appends `index` in decimal, without `fmt`: from its highest digit
/// down, each pushed as an ASCII `char`.
fn push_index(path: &mut String, index: u32) {
    let mut unit = 1;
    while index / unit >= 10 {
        unit *= 10;
    }
    loop {
        // A digit, 0 to 9: the cast cannot truncate.
        #[allow(clippy::cast_possible_truncation)]
        let digit = (index / unit % 10) as u8;
        path.push(char::from(b'0' + digit));
        if unit == 1 {
            return;
        }
        unit /= 10;
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::{SCRATCH_LEN, joined, joined_path};

    #[test]
    fn a_joined_path_writes_the_index_in_decimal() {
        for (index, digits) in [(0, "0"), (7, "7"), (10, "10"), (305, "305"), (u32::MAX, "4294967295")] {
            assert_eq!(&*joined("root", "worker", Some(index)), format!("root/worker#{digits}"));
        }
        assert_eq!(&*joined("root", "fetch https://a.b", None), "root/fetch https://a.b");
    }

    // A failure's path, joined when read, takes a block of its length
    // exactly (counted before it is written; checked in debug builds).
    #[test]
    fn a_failures_path_is_joined_in_a_block_of_its_length() {
        for (index, digits) in [
            (0, "0"),
            (9, "9"),
            (10, "10"),
            (99, "99"),
            (100, "100"),
            (u32::MAX, "4294967295"),
        ] {
            assert_eq!(
                &*joined_path("root", "worker", Some(index)),
                format!("root/worker#{digits}")
            );
        }
        assert_eq!(&*joined_path("a/b", "c", None), "a/b/c");
    }

    // A path too long for the thread's scratch string is built all the
    // same, and a short one after it is not left with its end.
    #[test]
    fn a_joined_path_longer_than_the_scratch_string_is_whole() {
        let parent = "p/".repeat(SCRATCH_LEN);
        assert_eq!(&*joined(&parent, "leaf", Some(3)), format!("{parent}/leaf#3"));
        assert_eq!(&*joined("root", "leaf", Some(12)), "root/leaf#12");
        assert_eq!(&*joined("root", "x", Some(1)), "root/x#1");
    }
}
