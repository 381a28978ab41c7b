//! A task's name and path (`pipeline/worker#3`), built on first use.

use std::fmt::Write as _;
use std::sync::Arc;

use super::Node;
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

    /// Appends the task's own part of its path: `name#index` below a
    /// parent (the bare name when formatted from its arguments), the
    /// name at the root.
    fn push_label(&self, path: &mut String) {
        path.push_str(self.name());
        if self.parent.is_some() && self.counted_name().is_some() {
            let _ = write!(path, "#{}", self.index());
        }
    }

    /// The task's path from the root, such as `pipeline/worker#3`.
    ///
    /// Built in a loop up to the nearest ancestor whose path is known (or
    /// the root), not by recursion: a chain of tasks thousands deep must
    /// not overflow the stack. The ancestors' own paths are not built on
    /// the way, so a failure at the bottom of a deep chain costs one string.
    pub(crate) fn path(&self) -> &Arc<str> {
        if let Some(path) = self.known_path() {
            return path;
        }
        // A formatted name is formatted before the path's cell is taken: its
        // format may ask for this task's path (it then gets the path with
        // the function's name) and must not wait for the cell it is in.
        let _ = self.name();
        self.extra().path.get_or_init(|| {
            // Most often the parent's path is known: one `format!`.
            match &self.parent {
                None => return Arc::from(self.name()),
                Some(parent) => {
                    if let Some(known) = parent.known_path() {
                        let mut path = format!("{known}/");
                        self.push_label(&mut path);
                        return Arc::from(path);
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
        })
    }

    /// The task's path, if it was built already.
    pub(crate) fn known_path(&self) -> Option<&Arc<str>> {
        self.extra.get()?.path.get()
    }

    /// Whether `err` began at this task (rather than being a child's failure
    /// passed on), found without building the path: a failure made here
    /// holds this task's path, built for it.
    #[cfg(feature = "tracing")]
    pub(crate) fn is_origin_of(&self, err: &crate::Error) -> bool {
        self.known_path()
            .is_some_and(|path| std::ptr::eq(path.as_ptr(), err.task().as_ptr()))
    }

    /// The task's own part of its path: `worker#3`, or the root's name.
    pub(crate) fn label(&self) -> String {
        let mut label = String::new();
        self.push_label(&mut label);
        label
    }
}
