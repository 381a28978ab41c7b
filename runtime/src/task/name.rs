//! A task's name as its task carries it: fixed, given, or formatted from
//! its arguments when first needed.

use std::borrow::Cow;
use std::cell::RefCell;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// A task's name: a constant, which a node keeps in one word, or one given
/// at run time (`Task::named`) or formatted from the task's arguments
/// (`#[supervised(name = "chunk-{part}")]`), which it keeps in its `Extra`.
#[derive(Debug)]
pub(crate) enum Name {
    Fixed(&'static &'static str),
    Given(Cow<'static, str>),
    Formatted(Formatted),
}

/// Cloned at every spawn (the node keeps it, the spawn's `Parts` too):
/// the common name, a function's, is copied inline, the others cloned out
/// of line.
impl Clone for Name {
    #[inline]
    fn clone(&self) -> Self {
        match self {
            Name::Fixed(name) => Name::Fixed(name),
            _ => self.clone_other(),
        }
    }
}

impl Name {
    /// `clone` of a name given or formatted.
    #[inline(never)]
    fn clone_other(&self) -> Self {
        match self {
            Name::Fixed(name) => Name::Fixed(name),
            Name::Given(name) => Name::Given(name.clone()),
            Name::Formatted(name) => Name::Formatted(name.clone()),
        }
    }

    /// The name of a `#[supervised]` call: formatted from its arguments if
    /// the attribute gave a format, else the function's name.
    #[inline]
    pub(crate) fn of_call(name: &'static &'static str, formatted: Option<Formatted>) -> Self {
        formatted.map_or(Name::Fixed(name), Name::Formatted)
    }

    /// The name's text; a formatted name is formatted now, the first time.
    pub(crate) fn as_str(&self) -> &str {
        match self {
            Name::Fixed(name) => name,
            Name::Given(name) => name,
            Name::Formatted(name) => name.as_str(),
        }
    }

    /// Whether the name is counted among its siblings' (`name#index`): a
    /// formatted name says itself what the task works on, and is not
    /// known before it is needed.
    pub(crate) fn is_counted(&self) -> bool {
        !matches!(self, Name::Formatted(_))
    }
}

/// A name formatted from a task's arguments when it is first needed (for
/// a path, an error, a span), from clones of the arguments the format
/// names, taken at the call.
#[derive(Clone)]
pub(crate) struct Formatted(Arc<dyn FormatName>);

/// The formatter of a `Formatted` name and its text once made.
trait FormatName: Send + Sync {
    fn text(&self) -> &str;
}

struct NameFormat<F> {
    /// The function's name: the name if formatting panics.
    fallback: &'static &'static str,
    format: Mutex<Option<F>>,
    text: OnceLock<Box<str>>,
}

thread_local! {
    /// The names being formatted on this thread, by address.
    static FORMATTING: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// Marks a name as being formatted on this thread until it is dropped.
struct Formatting(usize);

impl Formatting {
    /// `None` if the name is already being formatted on this thread: its
    /// format asks for it (an argument's `Display` reads its own task's
    /// path), and would wait for itself forever.
    fn enter(name: usize) -> Option<Self> {
        FORMATTING.with_borrow_mut(|names| {
            if names.contains(&name) {
                return None;
            }
            names.push(name);
            Some(Formatting(name))
        })
    }
}

impl Drop for Formatting {
    fn drop(&mut self) {
        let _ = FORMATTING.try_with(|names| names.borrow_mut().retain(|&name| name != self.0));
    }
}

impl<F: FnOnce() -> String + Send> FormatName for NameFormat<F> {
    fn text(&self) -> &str {
        if let Some(text) = self.text.get() {
            return text;
        }
        // Asked for by its own format: the function's name, for now (the
        // path being built with it keeps it).
        let Some(_formatting) = Formatting::enter(std::ptr::from_ref(self).addr()) else {
            return self.fallback;
        };
        self.text.get_or_init(|| {
            // Taken out of the mutex before it runs: user code (the
            // arguments' `Display`) never runs under a lock.
            let format = self.format.lock().unwrap_or_else(PoisonError::into_inner).take();
            match format.map(|format| std::panic::catch_unwind(AssertUnwindSafe(format))) {
                Some(Ok(text)) => text.into_boxed_str(),
                Some(Err(payload)) => {
                    // A payload may panic in its own `Drop`: it is leaked.
                    std::mem::forget(payload);
                    (*self.fallback).into()
                }
                None => (*self.fallback).into(),
            }
        })
    }
}

impl Formatted {
    pub(super) fn new<F: FnOnce() -> String + Send + 'static>(fallback: &'static &'static str, format: F) -> Self {
        Formatted(Arc::new(NameFormat {
            fallback,
            format: Mutex::new(Some(format)),
            text: OnceLock::new(),
        }))
    }

    pub(crate) fn as_str(&self) -> &str {
        self.0.text()
    }
}

impl std::fmt::Debug for Formatted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Formatted")
    }
}
