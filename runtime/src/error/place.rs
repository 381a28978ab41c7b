//! Where a failure was made: the path of its task, kept as it is or joined
//! the first time it is read.

use std::sync::{Arc, OnceLock};

/// The path of the task where a failure was made.
///
/// A child without a path of its own (most children: a path is built when
/// it is first asked for) fails below a parent whose path is kept. Its
/// failure holds the parent's path and the child's label, and joins them
/// on the first read: a failure drained with `next_error` and dropped
/// unread makes no string, and the one read is built where it is read
/// (not allocated on one worker and freed on another).
pub(crate) enum Place {
    /// A path built already.
    Path(Arc<str>),
    /// `parent/name#index` (`parent/name` without an index), once read.
    Below {
        parent: Arc<str>,
        name: &'static &'static str,
        index: Option<u32>,
        joined: OnceLock<Box<str>>,
    },
}

impl Place {
    pub(crate) fn below(parent: Arc<str>, name: &'static &'static str, index: Option<u32>) -> Self {
        Place::Below {
            parent,
            name,
            index,
            joined: OnceLock::new(),
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        match self {
            Place::Path(path) => path,
            Place::Below {
                parent,
                name,
                index,
                joined,
            } => joined.get_or_init(|| crate::node::joined_path(parent, name, *index)),
        }
    }

    /// Whether this is `path` itself (the same allocation), found without
    /// joining a path.
    pub(crate) fn is(&self, path: &Arc<str>) -> bool {
        matches!(self, Place::Path(own) if Arc::ptr_eq(own, path))
    }
}

impl From<Arc<str>> for Place {
    fn from(path: Arc<str>) -> Self {
        Place::Path(path)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_place_below_a_parent_joins_its_path_once() {
        let place = Place::below(Arc::from("pipeline"), &"worker", Some(3));
        let first = place.as_str();
        assert_eq!(first, "pipeline/worker#3");
        assert!(std::ptr::eq(first, place.as_str()), "joined again");
        assert_eq!(Place::below(Arc::from("a/b"), &"c", None).as_str(), "a/b/c");
    }

    /// With `Error`'s other parts, a failure's one block stays within a
    /// fast bin (see `an_error_fits_in_a_fast_bin`).
    #[cfg(target_pointer_width = "64")]
    #[test]
    fn a_place_takes_seven_words() {
        assert_eq!(size_of::<Place>(), 56);
    }

    #[test]
    fn a_place_is_only_the_path_it_holds() {
        let path: Arc<str> = Arc::from("pipeline/worker#3");
        assert!(Place::from(Arc::clone(&path)).is(&path));
        assert!(
            !Place::from(Arc::from("pipeline/worker#3")).is(&path),
            "an equal string is not the same path"
        );
        assert!(!Place::below(Arc::from("pipeline"), &"worker", Some(3)).is(&path));
    }
}
