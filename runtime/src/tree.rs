//! A snapshot of a live task tree, for people to read.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, Weak};
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
    label: String,
    path: Arc<str>,
    state: TaskState,
    age: Duration,
    depth: usize,
}

impl TaskInfo {
    /// The task's own part of the path: `worker#3` (the root: its name).
    #[must_use]
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The task's full path, such as `pipeline/worker#3`.
    #[must_use]
    pub fn path(&self) -> &str {
        &self.path
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
    /// gives its position. Tasks must be added depth first.
    pub(crate) fn push(
        &mut self,
        parent: Option<usize>,
        label: String,
        path: Arc<str>,
        state: TaskState,
        age: Duration,
    ) -> usize {
        let depth = parent.map_or(0, |parent| self.tasks[parent].depth + 1);
        self.tasks.push(TaskInfo {
            label,
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
        self.tasks.iter().find(|task| task.path() == path)
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
            write!(
                f,
                "{:indent$}{name} ({}, {:.1?})",
                "",
                task.state,
                task.age,
                indent = 2 * task.depth
            )?;
        }
        Ok(())
    }
}

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
                    .live_children()
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
        let age = now.saturating_duration_since(tree_epoch + node.started());
        let at = tree.push(parent, node.label(), Arc::clone(node.path()), state, age);
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
