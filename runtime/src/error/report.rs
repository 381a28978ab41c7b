//! How an `Error` prints: `Display` (one line, or the full report with
//! `{:#}`) and `Debug`.

use std::error::Error as StdError;
use std::fmt;

use super::Error;

impl fmt::Display for Error {
    /// One line: the task's path and the cause. The alternate form (`{:#}`)
    /// is the full report: the cause chain, then the related failures as an
    /// indented list.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = self.inner.what();
        write!(f, "task `{}` {}", what.task.as_str(), what.kind.verb())?;
        if let Some(cause) = what.cause() {
            write!(f, ": {cause}")?;
        } else if let Some(message) = what.message() {
            write!(f, ": {message}")?;
        }
        if f.alternate() {
            self.write_report(f, 1)?;
        }
        Ok(())
    }
}

impl Error {
    /// The part of `{:#}` below the first line, indented by `level`.
    ///
    /// Related failures nest as deep as the tree that produced them (a
    /// chain of tasks each aborted while it awaited the next), so they are
    /// walked with a stack of their own rather than by recursion, and the
    /// indentation stops growing `REPORT_DEPTH` levels down.
    fn write_report(&self, f: &mut fmt::Formatter<'_>, level: usize) -> fmt::Result {
        enum Step<'a> {
            /// The causes and related failures of an error.
            Report(&'a Error, usize),
            /// One line of a list of related failures, then its report.
            Item(&'a Error, usize),
        }
        let mut steps = vec![Step::Report(self, level)];
        while let Some(step) = steps.pop() {
            match step {
                Step::Report(err, level) => {
                    let indent = level.min(REPORT_DEPTH) * 2;
                    let mut source = err.source();
                    while let Some(cause) = source {
                        write!(f, "\n{:indent$}caused by: {cause}", "")?;
                        source = cause.source();
                    }
                    let related = err.inner.related.as_slice();
                    if !related.is_empty() {
                        let count = related.len();
                        let plural = if count == 1 { "" } else { "s" };
                        write!(f, "\n{:indent$}{count} related failure{plural}:", "")?;
                        steps.extend(related.iter().rev().map(|related| Step::Item(related, level)));
                    }
                }
                Step::Item(related, level) => {
                    write!(
                        f,
                        "\n{:indent$}- {related}",
                        "",
                        indent = level.min(REPORT_DEPTH) * 2 + 2
                    )?;
                    steps.push(Step::Report(related, level + 2));
                }
            }
        }
        Ok(())
    }
}

/// How many levels deep the report of `{:#}` indents: a chain of tasks
/// thousands deep would indent its last lines by thousands of spaces.
pub(super) const REPORT_DEPTH: usize = 64;

/// How many related failures deep `Debug` shows; deeper ones are counted.
pub(super) const DEBUG_DEPTH: usize = 32;

thread_local! {
    /// How many `Debug` calls of `Error` are under way on this thread.
    static DEBUG_NESTING: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        let what = inner.what();
        let mut s = f.debug_struct("Error");
        s.field("kind", &what.kind).field("task", &what.task.as_str());
        if let Some(cause) = what.cause() {
            s.field("cause", &cause);
        }
        if let Some(message) = what.message() {
            s.field("message", &message);
        }
        let related = inner.related.as_slice();
        if !related.is_empty() {
            // `Debug` nests like the failures, a few stack frames a level:
            // past `DEBUG_DEPTH` levels it only counts them (`{:#}` shows all).
            let nested = Nested::enter();
            if nested.0 < DEBUG_DEPTH {
                s.field("related", &related);
            } else {
                s.field(
                    "related",
                    &format_args!("[{} more, nested too deep to show]", related.len()),
                );
            }
        }
        s.finish()
    }
}

/// One level of `Debug` of a related failure, on this thread.
struct Nested(usize);

impl Nested {
    fn enter() -> Self {
        Nested(DEBUG_NESTING.with(|nesting| nesting.replace(nesting.get() + 1)))
    }
}

impl Drop for Nested {
    fn drop(&mut self) {
        DEBUG_NESTING.with(|nesting| nesting.set(self.0));
    }
}
