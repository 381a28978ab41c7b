//! A snapshot of a live task tree, for people to read.

use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::Duration;

use tokio::time::Instant;

use crate::node::{Node, Phase};

/// What a task is doing at the moment of a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TaskState {
    /// Its body is running.
    Running,
    /// Its body is running, and its token has been cancelled: it has been
    /// told to stop.
    Cancelling,
    /// Its body has ended; it waits for its children before delivering its
    /// result.
    Joining,
    /// It waits in line for a slot of its scope's limit
    /// ([`Scope::set_limit`](crate::Scope::set_limit)); its body has not
    /// started.
    Queued,
    /// Its future was dropped; its children are being aborted.
    Aborting,
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TaskState::Running => "running",
            TaskState::Cancelling => "cancelling",
            TaskState::Joining => "joining children",
            TaskState::Queued => "waiting for a slot",
            TaskState::Aborting => "aborting",
        })
    }
}

/// One task of a [`TaskTree`].
#[derive(Debug, Clone)]
pub struct TaskInfo {
    link: Arc<Link>,
    /// Built on first use from `link`: the paths of every task of a deep
    /// chain would take memory quadratic in its depth.
    path: OnceLock<Arc<str>>,
    state: TaskState,
    age: Duration,
    depth: usize,
}

/// A task's place in a snapshot: its label below its parent's, from which
/// its path is built when asked for.
#[derive(Debug)]
struct Link {
    parent: Option<Arc<Link>>,
    label: String,
    /// The task's whole path, where it was known when the snapshot was
    /// taken (always for the snapshot's first task).
    known: Option<Arc<str>>,
}

impl Link {
    /// The task's path: the labels from the nearest known path down.
    fn path(&self) -> Arc<str> {
        let mut labels = Vec::new();
        let mut link = self;
        let top = loop {
            if let Some(known) = &link.known {
                break known.as_ref();
            }
            match &link.parent {
                Some(parent) => {
                    labels.push(link.label.as_str());
                    link = parent;
                }
                None => break link.label.as_str(),
            }
        };
        if labels.is_empty() {
            return Arc::from(top);
        }
        let mut path = String::with_capacity(top.len() + labels.iter().map(|label| label.len() + 1).sum::<usize>());
        path.push_str(top);
        for label in labels.into_iter().rev() {
            path.push('/');
            path.push_str(label);
        }
        Arc::from(path)
    }

    /// Whether the task's path is `path`, found without building it.
    fn is_path(&self, mut path: &str) -> bool {
        let mut link = self;
        loop {
            if let Some(known) = &link.known {
                return **known == *path;
            }
            let Some(parent) = &link.parent else {
                return link.label == path;
            };
            match path
                .strip_suffix(link.label.as_str())
                .and_then(|rest| rest.strip_suffix('/'))
            {
                Some(rest) => path = rest,
                None => return false,
            }
            link = parent;
        }
    }
}

impl Drop for Link {
    /// Unlinked in a loop: the links of a chain thousands deep would
    /// otherwise be dropped one inside the other, a stack frame each.
    fn drop(&mut self) {
        let mut parent = self.parent.take();
        while let Some(link) = parent {
            parent = Arc::into_inner(link).and_then(|mut link| link.parent.take());
        }
    }
}

impl TaskInfo {
    /// The task's own part of the path: `worker#3` (the root: its name).
    #[must_use]
    pub fn label(&self) -> &str {
        &self.link.label
    }

    /// The task's full path, such as `pipeline/worker#3`.
    #[must_use]
    pub fn path(&self) -> &str {
        self.path.get_or_init(|| self.link.path())
    }

    /// What the task was doing when the snapshot was taken.
    #[must_use]
    pub fn state(&self) -> TaskState {
        self.state
    }

    /// How long the task had existed when the snapshot was taken.
    #[must_use]
    pub fn age(&self) -> Duration {
        self.age
    }

    /// How far below the snapshot's first task this task is (that one is 0).
    #[must_use]
    pub fn depth(&self) -> usize {
        self.depth
    }
}

/// A snapshot of the live tasks of a subtree, taken by
/// [`Scope::tree`](crate::Scope::tree).
///
/// Its `Display` is an indented tree, one line per task with its name, state
/// and age; `{:#}` shows full paths instead of names.
///
/// ```
/// use taskward::Scope;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// taskward::run(taskward::task(|scope: Scope| async move {
///     scope.spawn(taskward::task(|scope: Scope| async move { scope.cancelled().await }));
///     let tree = scope.tree();
///     assert_eq!(tree.len(), 2);
///     assert_eq!(tree.tasks().nth(1).unwrap().path(), "task/task#0");
///     println!("{tree}");
///     scope.cancel();
/// }))
/// .await
/// .unwrap();
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct TaskTree {
    /// Depth-first, in spawn order.
    tasks: Vec<TaskInfo>,
}

impl TaskTree {
    /// Adds a task below the task at `parent` (or as the first task), and
    /// gives its position. Tasks must be added depth first. `known` is the
    /// task's path if it was built already; the first task must have it.
    pub(crate) fn push(
        &mut self,
        parent: Option<usize>,
        label: String,
        known: Option<Arc<str>>,
        state: TaskState,
        age: Duration,
    ) -> usize {
        let (depth, parent) = match parent {
            Some(parent) => {
                let parent = &self.tasks[parent];
                (parent.depth + 1, Some(Arc::clone(&parent.link)))
            }
            None => (0, None),
        };
        let path = OnceLock::new();
        if let Some(known) = &known {
            let _ = path.set(Arc::clone(known));
        }
        self.tasks.push(TaskInfo {
            link: Arc::new(Link { parent, label, known }),
            path,
            state,
            age,
            depth,
        });
        self.tasks.len() - 1
    }

    /// Every task of the snapshot, depth first, children in spawn order.
    pub fn tasks(&self) -> impl ExactSizeIterator<Item = &TaskInfo> {
        self.tasks.iter()
    }

    /// The task with this path, if it was alive.
    #[must_use]
    pub fn find(&self, path: &str) -> Option<&TaskInfo> {
        self.tasks.iter().find(|task| match task.path.get() {
            Some(built) => **built == *path,
            None => task.link.is_path(path),
        })
    }

    /// How many tasks the snapshot holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether the snapshot holds no task.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }
}

impl fmt::Display for TaskTree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, task) in self.tasks.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            let name = if f.alternate() { task.path() } else { task.label() };
            // Past `SHOWN_DEPTH` levels the indentation stops growing and
            // the line says how deep it is.
            let indent = 2 * task.depth.min(SHOWN_DEPTH);
            write!(f, "{:indent$}", "")?;
            if task.depth > SHOWN_DEPTH {
                write!(f, "[depth {}] ", task.depth)?;
            }
            write!(f, "{name} ({}, {:.1?})", task.state, task.age)?;
        }
        Ok(())
    }
}

/// How many levels deep the `Display` of a [`TaskTree`] indents: a chain of
/// tasks thousands deep would indent its last lines by thousands of spaces
/// (and past 32,767 levels, wider than `fmt` allows).
const SHOWN_DEPTH: usize = 64;

/// A snapshot of the live subtree rooted at `root`. Each node's lock is
/// held only while its children are listed; nothing global is locked.
pub(crate) fn snapshot(root: &Arc<Node>) -> TaskTree {
    let tree_epoch = root.shared().epoch;
    let now = Instant::now();
    let mut tree = TaskTree::default();
    // (node, index of its parent in `tree`), visited depth first with an
    // explicit stack so that a deep chain cannot overflow the call stack.
    let mut stack: Vec<(Arc<Node>, Option<usize>, bool)> = vec![(Arc::clone(root), None, false)];
    while let Some((node, parent, queued)) = stack.pop() {
        // Before the lock, which making the token takes.
        let cancelled = node.is_cancelled();
        let (state, mut children) = {
            let state = node.lock();
            // In spawn order: the list is kept in it.
            let children: Vec<(Arc<Node>, bool)> = match state.family_ref() {
                None => Vec::new(),
                Some(family) => family
                    .upgraded_children()
                    .map(|child| {
                        let queued = family.limit.is_waiting(child.key());
                        (child, queued)
                    })
                    .collect(),
            };
            let task_state = match node.phase(&state) {
                _ if queued => TaskState::Queued,
                Phase::Body if cancelled => TaskState::Cancelling,
                Phase::Body => TaskState::Running,
                Phase::Joining => TaskState::Joining,
                Phase::Closed => TaskState::Aborting,
            };
            (task_state, children)
        };
        // The released children are dropped here, after the lock (see
        // `Family::push_child`).
        children.retain(|(child, _)| !child.is_released());
        let age = now.saturating_duration_since(tree_epoch + node.started());
        // The first task's path is built (once); the others' are built by
        // the snapshot when asked for.
        let known = match parent {
            None => Some(Arc::clone(node.path())),
            Some(_) => node.known_path().cloned(),
        };
        let at = tree.push(parent, node.label(), known, state, age);
        // Spawn order, so that the snapshot reads like the code: the
        // stack pops the first child first.
        children.reverse();
        stack.extend(children.into_iter().map(|(child, queued)| (child, Some(at), queued)));
    }
    tree
}

/// Takes snapshots of a whole tree from outside it, at any moment; see
/// [`Root::monitor`](crate::Root::monitor). Cloning it shares the same tree.
///
/// A snapshot is empty before the tree starts and after it has finished.
#[derive(Clone, Default)]
pub struct TreeMonitor {
    root: Arc<Mutex<Weak<Node>>>,
}

impl TreeMonitor {
    /// Follows the tree whose root is `node` from now on.
    pub(crate) fn watch(&self, node: &Arc<Node>) {
        *self.root.lock().unwrap_or_else(PoisonError::into_inner) = Arc::downgrade(node);
    }

    /// A snapshot of every live task of the tree (see [`TaskTree`]).
    #[must_use]
    pub fn snapshot(&self) -> TaskTree {
        let root = self.root.lock().unwrap_or_else(PoisonError::into_inner).upgrade();
        match root {
            Some(root) if !root.is_closed() => snapshot(&root),
            _ => TaskTree::default(),
        }
    }
}

impl fmt::Debug for TreeMonitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TreeMonitor")
            .field("running", &!self.snapshot().is_empty())
            .finish()
    }
}
