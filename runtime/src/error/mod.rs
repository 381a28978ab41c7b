//! The error a task tree reports: what failed, where, and what else failed with it.

use std::any::Any;
use std::error::Error as StdError;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A boxed error as returned by a task body (`E: Into<BoxError>`).
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// What kind of failure an [`Error`] reports.
///
/// More kinds may be added in later versions, so match with a `_` arm.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use taskward::{supervised, ErrorKind};
///
/// #[supervised]
/// async fn boom() {
///     panic!("boom");
/// }
///
/// let err = taskward::run(boom()).await.unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Panicked);
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The task body returned `Err`.
    Failed,
    /// The task body panicked; the panic was caught and turned into this error.
    Panicked,
    /// The task was stopped before it could deliver a result (its future was
    /// dropped or aborted).
    Cancelled,
    /// The task ran past its deadline.
    TimedOut,
    /// A task was spawned on a scope whose task had already finished, so it
    /// never ran.
    ScopeClosed,
    /// `run` was called outside a tokio runtime.
    NoRuntime,
    /// A [`Child`](crate::Child) was polled again after it had returned its result.
    AlreadyTaken,
    /// A task started with [`Scope::start`](crate::Scope::start) ended, or
    /// dropped its [`Ready`](crate::Ready), without sending a value.
    NotReady,
}

impl ErrorKind {
    fn verb(self) -> &'static str {
        match self {
            ErrorKind::Failed => "failed",
            ErrorKind::Panicked => "panicked",
            ErrorKind::Cancelled => "was cancelled",
            ErrorKind::TimedOut => "timed out",
            ErrorKind::ScopeClosed => "was not started",
            ErrorKind::NoRuntime => "was not started",
            ErrorKind::AlreadyTaken => "was already awaited",
            ErrorKind::NotReady => "never became ready",
        }
    }
}

/// The failure of a task, with the path of the task where it started.
///
/// Whatever a body returns as its error (`std::io::Error`, `anyhow::Error`, a
/// custom type) is kept inside and can be reached again with
/// [`downcast_ref`](Error::downcast_ref), however many levels of tasks it
/// travelled through. When a scope sees several failures, the first is the
/// error and the others are in [`related`](Error::related).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use taskward::{Error, ErrorKind, Scope, Task};
///
/// let err: Error = taskward::run(
///     taskward::task(|scope: Scope| async move {
///         scope.spawn(async { Err::<(), _>(std::io::Error::other("disk full")) });
///         Ok::<_, Error>(())
///     })
///     .named("pipeline"),
/// )
/// .await
/// .unwrap_err();
///
/// assert_eq!(err.kind(), ErrorKind::Failed);
/// assert_eq!(err.task(), "pipeline/task#0");
/// assert_eq!(err.to_string(), "task `pipeline/task#0` failed: disk full");
/// assert!(err.downcast_ref::<std::io::Error>().is_some());
/// # }
/// ```
#[derive(Clone)]
pub struct Error {
    inner: Arc<Inner>,
}

/// Everything an `Error` holds: the failure, and the failures related to it.
///
/// One block of at most 104 bytes (see the test `an_error_fits_in_a_fast_bin`):
/// what most failures do not have (related failures, a message, a panic's
/// value) is boxed apart.
struct Inner {
    failure: Failure,
    related: Related,
}

/// The failures related to an error: most often none, and then no block.
#[derive(Default)]
#[allow(
    clippy::box_collection,
    reason = "one word in the error's block, where a `Vec` takes three"
)]
struct Related(Option<Box<Vec<Error>>>);

impl Related {
    fn as_slice(&self) -> &[Error] {
        self.0.as_deref().map_or(&[], Vec::as_slice)
    }

    fn extend(&mut self, rest: impl IntoIterator<Item = Error>) {
        let mut rest = rest.into_iter().peekable();
        if rest.peek().is_some() {
            self.0.get_or_insert_with(Box::default).extend(rest);
        }
    }

    fn take(&mut self) -> Vec<Error> {
        self.0.take().map(|related| *related).unwrap_or_default()
    }
}

/// The failure an `Error` reports: its own, or, for an error extended while
/// a clone shared it (`with_related`), the clone's. The cause is kept in
/// its box, which cannot be cloned: in an `Arc` of its own, each failure
/// allocated one more block (about 150 instructions, 2% of a failure routed
/// to `next_error`), for the rare error extended while shared.
enum Failure {
    Own(What),
    /// An `Inner` whose failure is `Own`.
    Of(Arc<Inner>),
}

/// What failed, where, and why.
struct What {
    kind: ErrorKind,
    task: Place,
    why: Why,
    /// When the failure was made, among all failures of the process: a
    /// scope's failures are ordered by it, so that its error is the first
    /// in time, whatever order they reached it in.
    order: u64,
}

/// Why a task failed: the error its body returned, or what the runtime
/// says. One word less than a cause and a message side by side, which pays
/// for the `std::io::Error` kept as it is.
enum Why {
    /// A body's `Err`, boxed (`Into<BoxError>`).
    Boxed(BoxError),
    /// A body's `std::io::Error`, kept as it is: boxed, it took a block of
    /// its own beside the error's (about 150 instructions of a failure's
    /// 5 700 routed to `next_error`, see `BodyError`).
    Io(std::io::Error),
    /// A panic's message and value, or what happened to a task the runtime
    /// stopped.
    Said(Box<Said>),
    /// The body's error, moved out by [`Error::downcast`].
    Taken,
}

/// The error a task body returned, as `Error::failed` takes it: boxed, or
/// as it is for the two types that need no box (see `task::split`).
pub(crate) enum BodyError {
    Boxed(BoxError),
    Io(std::io::Error),
    /// A child's failure, passed on with `?`.
    Failure(Error),
}

impl BodyError {
    /// The taskward `Error` this is, if it is one.
    pub(crate) fn as_failure(&self) -> Option<&Error> {
        match self {
            BodyError::Boxed(cause) => cause.downcast_ref(),
            BodyError::Io(_) => None,
            BodyError::Failure(err) => Some(err),
        }
    }
}

impl From<BoxError> for BodyError {
    fn from(cause: BoxError) -> Self {
        BodyError::Boxed(cause)
    }
}

/// What a failure that is not a body's `Err` says.
struct Said {
    message: String,
    payload: Option<Arc<Payload>>,
}

impl What {
    /// The error the body returned, if it failed.
    fn cause(&self) -> Option<&(dyn StdError + Send + Sync + 'static)> {
        match &self.why {
            Why::Boxed(cause) => Some(&**cause),
            Why::Io(cause) => Some(cause),
            Why::Said(_) | Why::Taken => None,
        }
    }

    fn message(&self) -> Option<&str> {
        match &self.why {
            Why::Said(said) => Some(&said.message),
            _ => None,
        }
    }

    fn payload(&self) -> Option<&Arc<Payload>> {
        match &self.why {
            Why::Said(said) => said.payload.as_ref(),
            _ => None,
        }
    }
}

impl Inner {
    fn what(&self) -> &What {
        match &self.failure {
            Failure::Own(what) => what,
            Failure::Of(shared) => shared.what(),
        }
    }

    /// The failure, if no clone shares it.
    fn what_mut(&mut self) -> Option<&mut What> {
        match &mut self.failure {
            Failure::Own(what) => Some(what),
            Failure::Of(shared) => Arc::get_mut(shared)?.what_mut(),
        }
    }
}

/// Counts the failures made, for `Inner::order`.
static FAILURES: AtomicU64 = AtomicU64::new(0);

impl Error {
    fn new(kind: ErrorKind, task: Place, why: Why) -> Self {
        Error {
            inner: Arc::new(Inner {
                failure: Failure::Own(What {
                    kind,
                    task,
                    why,
                    order: FAILURES.fetch_add(1, Ordering::Relaxed),
                }),
                related: Related::default(),
            }),
        }
    }

    /// The body of `task` returned `Err(cause)`. A cause that is already a
    /// taskward `Error` (a child's failure passed on with `?`) is kept as it
    /// is, so the path and kind of the original failure survive.
    ///
    /// `task` gives the path of the task, built only if the failure began
    /// there: each task of a chain 100,000 deep passing its child's failure
    /// on would otherwise build its own path, work quadratic in the depth.
    pub(crate) fn failed<P: Into<Place>>(task: impl FnOnce() -> P, cause: impl Into<BodyError>) -> Self {
        let why = match cause.into() {
            BodyError::Failure(err) => return err,
            BodyError::Io(cause) => Why::Io(cause),
            BodyError::Boxed(cause) => match cause.downcast::<Error>() {
                Ok(err) => return *err,
                Err(cause) => Why::Boxed(cause),
            },
        };
        Error::new(ErrorKind::Failed, task().into(), why)
    }

    /// The body of `task` panicked with `payload`, which is kept for
    /// [`panic_value`](Error::panic_value) and [`into_panic`](Error::into_panic).
    pub(crate) fn panicked(task: impl Into<Place>, payload: Box<dyn Any + Send>) -> Self {
        let message = if let Some(s) = payload.downcast_ref::<&'static str>() {
            (*s).to_owned()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "non-string panic payload".to_owned()
        };
        let payload = Some(Arc::new(Payload::new(payload)));
        Error::new(
            ErrorKind::Panicked,
            task.into(),
            Why::Said(Box::new(Said { message, payload })),
        )
    }

    pub(crate) fn with_kind(kind: ErrorKind, task: impl Into<Place>, message: impl Into<String>) -> Self {
        let message = message.into();
        Error::new(kind, task.into(), Why::Said(Box::new(Said { message, payload: None })))
    }

    /// What happened, without the path: `failed: disk full`. The cause's
    /// `Display` is user code, run where the runtime's bookkeeping must go
    /// on: if it panics, only the verb is said.
    pub(crate) fn what(&self) -> String {
        let what = self.inner.what();
        let verb = what.kind.verb();
        let said = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match (what.cause(), what.message()) {
            (Some(cause), _) => format!("{verb}: {cause}"),
            (None, Some(message)) => format!("{verb}: {message}"),
            (None, None) => verb.to_owned(),
        }));
        said.unwrap_or_else(|payload| {
            crate::node::drop_quietly(payload);
            verb.to_owned()
        })
    }

    /// When the failure was made (see `Inner::order`).
    pub(crate) fn order(&self) -> u64 {
        self.inner.what().order
    }

    /// Makes `self` the first failure of a scope and `rest` its related ones.
    ///
    /// An error a clone shares is not changed under the clone: the result is
    /// a new error, of the same failure (see `Failure::Of`).
    pub(crate) fn with_related(mut self, rest: impl IntoIterator<Item = Error>) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.related.extend(rest);
            return self;
        }
        let shared = match &self.inner.failure {
            Failure::Own(_) => Arc::clone(&self.inner),
            Failure::Of(shared) => Arc::clone(shared),
        };
        Error {
            inner: Arc::new(Inner {
                failure: Failure::Of(shared),
                related: {
                    let mut related = Related::default();
                    related.extend(self.inner.related.as_slice().iter().cloned().chain(rest));
                    related
                },
            }),
        }
    }

    /// What kind of failure this is.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        self.inner.what().kind
    }

    /// The path of the task where the failure started, such as
    /// `pipeline/worker#3/split#1`.
    ///
    /// A failure that went up through a parent whose error type wraps
    /// taskward's `Error` (a thiserror enum with `#[from] taskward::Error`,
    /// or, with the `anyhow` and `eyre` features, an `anyhow::Error` or an
    /// `eyre::Report`) still names the task where it started: the innermost
    /// taskward `Error` of the chain of causes.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use taskward::{Error, Scope, Task};
    ///
    /// #[derive(Debug)]
    /// struct AppError(Error);
    ///
    /// impl std::fmt::Display for AppError {
    ///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    ///         f.write_str("could not load the app")
    ///     }
    /// }
    ///
    /// impl std::error::Error for AppError {
    ///     fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
    ///         Some(&self.0)
    ///     }
    /// }
    ///
    /// let err = taskward::run(
    ///     taskward::task(|scope: Scope| async move {
    ///         let load = scope.spawn(async { Err::<(), _>(std::io::Error::other("disk full")) }.named("load"));
    ///         load.await.map_err(AppError)
    ///     })
    ///     .named("app"),
    /// )
    /// .await
    /// .unwrap_err();
    /// assert_eq!(err.task(), "app/load#0");
    /// # }
    /// ```
    #[must_use]
    pub fn task(&self) -> &str {
        self.origin().inner.what().task.as_str()
    }

    /// The innermost taskward `Error` of the chain of causes: where the
    /// failure started (see [`task`](Error::task)).
    fn origin(&self) -> &Error {
        let mut origin = self;
        while let Some(inner) = links(origin.cause()).find_map(|link| link.downcast_ref::<Error>()) {
            origin = inner;
        }
        origin
    }

    /// Whether the failure started at the task whose path is `path` (the
    /// same allocation), found without joining a path.
    pub(crate) fn is_made_at(&self, path: &Arc<str>) -> bool {
        self.origin().inner.what().task.is(path)
    }

    /// Other failures of the same scope that came after this one (for
    /// example siblings that failed while the scope was being cancelled).
    #[must_use]
    pub fn related(&self) -> &[Error] {
        self.inner.related.as_slice()
    }

    /// For a panic, the panic message; for the runtime's own errors, what
    /// happened. `None` for a body's `Err`, whose cause is in `source()`.
    #[must_use]
    pub fn message(&self) -> Option<&str> {
        self.inner.what().message()
    }

    /// Whether this failure (not its related ones) is a caught panic.
    #[must_use]
    pub fn is_panic(&self) -> bool {
        self.kind() == ErrorKind::Panicked
    }

    /// Whether this failure is a cancellation.
    #[must_use]
    pub fn is_cancelled(&self) -> bool {
        self.kind() == ErrorKind::Cancelled
    }

    /// The value a task panicked with, if it is a `T`: the argument of
    /// [`std::panic::panic_any`], or the `String` or `&'static str` of
    /// `panic!`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use taskward::{Error, Scope};
    ///
    /// #[derive(Debug, PartialEq)]
    /// struct Code(u32);
    ///
    /// let err = taskward::run(taskward::task(|_: Scope| async move {
    ///     if true {
    ///         std::panic::panic_any(Code(7));
    ///     }
    ///     Ok::<_, Error>(())
    /// }))
    /// .await
    /// .unwrap_err();
    /// assert_eq!(err.panic_value::<Code>(), Some(&Code(7)));
    /// # }
    /// ```
    #[must_use]
    pub fn panic_value<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.inner.what().payload()?.downcast_ref()
    }

    /// Takes the value a task panicked with out of `self`, to look at it by
    /// value or to go on unwinding with [`std::panic::resume_unwind`], as
    /// Go's errgroup re-panics in `Wait`.
    ///
    /// # Errors
    ///
    /// Returns `Err(self)`, unchanged, when this failure is not a panic, or
    /// when a clone of it is still alive (the value cannot be moved out
    /// of a shared error).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use taskward::{Error, Scope};
    ///
    /// let err = taskward::run(taskward::task(|_: Scope| async move {
    ///     if true {
    ///         std::panic::panic_any(7_u32);
    ///     }
    ///     Ok::<_, Error>(())
    /// }))
    /// .await
    /// .unwrap_err();
    /// let value = err.into_panic().unwrap();
    /// assert_eq!(value.downcast::<u32>().ok().map(|code| *code), Some(7));
    /// # }
    /// ```
    pub fn into_panic(mut self) -> Result<Box<dyn Any + Send>, Self> {
        let taken = Arc::get_mut(&mut self.inner)
            .and_then(Inner::what_mut)
            .and_then(|what| match &mut what.why {
                Why::Said(said) => said.payload.as_mut(),
                _ => None,
            })
            .and_then(Arc::get_mut)
            .and_then(Payload::take);
        taken.ok_or(self)
    }

    /// The error the task body returned, found through any number of levels
    /// of causes (`source()` chain), if one of them is an `E`. With the
    /// `anyhow` and `eyre` features, this looks inside an `anyhow::Error` or
    /// `eyre::Report` too, with or without context.
    ///
    /// A task that panicked with an `E` (`std::panic::panic_any(err)`) gives
    /// that value too, here or in a nested failure of the chain. A panic's
    /// value of any other type (one that is not an `Error`) is reached with
    /// [`panic_value`](Error::panic_value): stable Rust cannot look for a
    /// type through `dyn Error` causes unless it is an `Error` itself.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use taskward::{Error, Scope};
    ///
    /// let err = taskward::run(taskward::task(|_: Scope| async move {
    ///     if true {
    ///         std::panic::panic_any(std::io::Error::other("disk on fire"));
    ///     }
    ///     Ok::<_, Error>(())
    /// }))
    /// .await
    /// .unwrap_err();
    /// let io = err.downcast_ref::<std::io::Error>().unwrap();
    /// assert_eq!(io.to_string(), "disk on fire");
    /// # }
    /// ```
    #[must_use]
    pub fn downcast_ref<E: StdError + Send + Sync + 'static>(&self) -> Option<&E> {
        self.panic_value::<E>().or_else(|| {
            links(self.cause()).find_map(|link| {
                link.downcast_ref::<E>()
                    .or_else(|| link.downcast_ref::<Error>()?.panic_value::<E>())
            })
        })
    }

    /// Takes the error the task body returned out of `self`, if it is an `E`,
    /// looking through nested taskward errors (and, with the `anyhow` and
    /// `eyre` features, inside an `anyhow::Error` or `eyre::Report`), or the
    /// value the task panicked with, if it is an `E`. Gives `self` back
    /// otherwise.
    ///
    /// # Errors
    ///
    /// Returns `Err(self)`, unchanged, when no cause is an `E`, when the `E`
    /// sits deeper in a foreign error's chain of causes or is the panic
    /// value of a nested failure (where it can only be borrowed), or when a
    /// clone of `self` is still alive.
    pub fn downcast<E: StdError + Send + Sync + 'static>(mut self) -> Result<E, Self> {
        if self.panic_value::<E>().is_some() {
            return match self.into_panic() {
                Ok(value) => Ok(*value.downcast::<E>().expect("the panic value was found to be an `E`")),
                Err(shared) => Err(shared),
            };
        }
        if self.downcast_ref::<E>().is_none() {
            return Err(self);
        }
        let Some(what) = Arc::get_mut(&mut self.inner).and_then(Inner::what_mut) else {
            return Err(self);
        };
        let kept = match std::mem::replace(&mut what.why, Why::Taken) {
            Why::Boxed(cause) => match take_cause::<E>(cause) {
                Ok(found) => return Ok(found),
                Err(cause) => Why::Boxed(cause),
            },
            Why::Io(cause) => match cast::<_, E>(cause) {
                Ok(found) => return Ok(found),
                Err(cause) => Why::Io(cause),
            },
            other => other,
        };
        what.why = kept;
        Err(self)
    }

    /// The error the body returned, if it failed.
    fn cause(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner
            .what()
            .cause()
            .map(|cause| cause as &(dyn StdError + 'static))
    }
}

/// `value` moved out as a `U` if it is one, or given back: `downcast`
/// for a value that is not boxed (its type is checked through `Any`).
pub(crate) fn cast<T: 'static, U: 'static>(value: T) -> Result<U, T> {
    let mut slot = Some(value);
    let any: &mut dyn Any = &mut slot;
    if let Some(found) = any.downcast_mut::<Option<U>>().and_then(Option::take) {
        return Ok(found);
    }
    match slot {
        Some(value) => Err(value),
        None => unreachable!("the slot is only emptied when its value is returned"),
    }
}

/// Moves an `E` out of `cause`, looking into a nested taskward `Error` and
/// the reports of anyhow and eyre; gives `cause` back if it holds none.
fn take_cause<E: StdError + Send + Sync + 'static>(cause: BoxError) -> Result<E, BoxError> {
    let cause = match cause.downcast::<E>() {
        Ok(found) => return Ok(*found),
        Err(cause) => cause,
    };
    let cause = match cause.downcast::<Error>() {
        Ok(nested) => return nested.downcast::<E>().map_err(|nested| Box::new(nested) as BoxError),
        Err(cause) => cause,
    };
    #[cfg(feature = "anyhow")]
    let cause = match cause.downcast::<foreign::Anyhow>() {
        Ok(report) => {
            return report
                .0
                .downcast::<E>()
                .map_err(|report| Box::new(foreign::Anyhow(report)) as BoxError);
        }
        Err(cause) => cause,
    };
    #[cfg(feature = "eyre")]
    let cause = match cause.downcast::<foreign::Eyre>() {
        Ok(report) => {
            return report
                .0
                .downcast::<E>()
                .map_err(|report| Box::new(foreign::Eyre(report)) as BoxError);
        }
        Err(cause) => cause,
    };
    Err(cause)
}

/// `first` and every error behind it, in the order a reader meets them: a
/// taskward `Error` leads to the error its body returned (its `source()`
/// skips it, the message being in its `Display`), a report of anyhow or
/// eyre to the error it wraps, anything else to its `source()`.
fn links<'a>(first: Option<&'a (dyn StdError + 'static)>) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(first, |&link| {
        if let Some(err) = link.downcast_ref::<Error>() {
            return err.cause();
        }
        #[cfg(feature = "anyhow")]
        if let Some(report) = link.downcast_ref::<foreign::Anyhow>() {
            return Some(report.wrapped());
        }
        #[cfg(feature = "eyre")]
        if let Some(report) = link.downcast_ref::<foreign::Eyre>() {
            return Some(report.wrapped());
        }
        link.source()
    })
}

impl Drop for Error {
    /// Related failures nest as deep as the tree that produced them: they
    /// are dropped in a loop, not one inside the other, which would take
    /// a few stack frames per level.
    ///
    /// An error still shared with a clone leaves its related failures to
    /// the last clone.
    fn drop(&mut self) {
        // Most errors have none: no need to ask whether a clone shares it.
        if self.inner.related.0.is_none() {
            return;
        }
        let Some(inner) = Arc::get_mut(&mut self.inner) else {
            return;
        };
        let mut nested = inner.related.take();
        while let Some(mut err) = nested.pop() {
            if let Some(inner) = Arc::get_mut(&mut err.inner) {
                nested.append(&mut inner.related.take());
            }
        }
    }
}

impl StdError for Error {
    /// The source of the error the body returned: that error's own message
    /// is already in `Display`, and a report (anyhow's, eyre's, or a walk
    /// of `source()`) shows each message once.
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.cause()?.source()
    }
}

#[cfg(any(feature = "anyhow", feature = "eyre"))]
pub(crate) mod foreign;
mod payload;
mod place;
mod report;

use payload::Payload;
pub(crate) use place::Place;
#[cfg(test)]
use report::{DEBUG_DEPTH, REPORT_DEPTH};

#[cfg(test)]
mod tests {
    use super::*;

    /// A failure with `levels` failures nested under it, each the only
    /// related failure of the one above, as a chain of tasks each killed
    /// while it awaited the next reports them.
    fn nested(levels: usize) -> Error {
        let mut err = Error::with_kind(ErrorKind::Cancelled, Arc::from("bottom"), "aborted");
        for _ in 0..levels {
            err = Error::with_kind(ErrorKind::Cancelled, Arc::from("link"), "aborted").with_related([err]);
        }
        err
    }

    // Regression: dropping a failure dropped its related ones one inside the
    // other, a few stack frames per level; an error nested 10k deep (from a
    // chain of tasks 10k deep) overflowed the stack.
    #[test]
    fn a_deeply_nested_failure_drops_without_recursion() {
        drop(nested(200_000));
    }

    // Regression: `{:#}` wrote the report of each related failure by
    // recursion, and overflowed the stack on deep nesting; past 32k levels
    // its indentation was also wider than `fmt` allows, which panics.
    #[test]
    fn the_full_report_of_a_deeply_nested_failure_lists_every_level() {
        let report = format!("{:#}", nested(40_000));
        // The first line, then a heading and an item per level.
        assert_eq!(report.lines().count(), 1 + 2 * 40_000);
        let last = report.lines().last().unwrap();
        assert_eq!(
            last,
            format!(
                "{:w$}- task `bottom` was cancelled: aborted",
                "",
                w = 2 * REPORT_DEPTH + 2
            )
        );
    }

    #[test]
    fn the_full_report_keeps_the_order_of_related_failures() {
        let failure = |task: &str| Error::with_kind(ErrorKind::Failed, Arc::from(task), "no");
        let err = failure("a").with_related([failure("b").with_related([failure("c")]), failure("d")]);
        assert_eq!(
            format!("{err:#}"),
            "task `a` failed: no\n  2 related failures:\n    - task `b` failed: no\n      1 related failure:\n        - task `c` failed: no\n    - task `d` failed: no"
        );
    }

    /// With its `Arc` counts, an error's one block stays within 120 bytes,
    /// the largest request glibc serves from its fast bins (as a node).
    #[cfg(target_pointer_width = "64")]
    #[test]
    fn an_error_fits_in_a_fast_bin() {
        assert!(size_of::<Inner>() + 16 <= 120, "{}", size_of::<Inner>());
    }

    /// An error shared with a clone and then extended leaves the clone as
    /// it was; once the clone is gone, the extended error gives its cause
    /// and its panic's value by value again.
    #[test]
    fn an_error_extended_while_shared_leaves_its_clone_alone() {
        let failure = |task: &str| Error::with_kind(ErrorKind::Failed, Arc::from(task), "no");
        let cause: BoxError = Box::new(std::io::Error::other("disk full"));
        let first = Error::failed(|| Arc::from("a"), cause).with_related([failure("b")]);
        let clone = first.clone();
        let extended = first.with_related([failure("c")]);
        fn tasks(err: &Error) -> Vec<&str> {
            err.related().iter().map(Error::task).collect()
        }
        assert_eq!(tasks(&clone), ["b"]);
        assert_eq!(tasks(&extended), ["b", "c"]);
        assert_eq!(extended.to_string(), "task `a` failed: disk full");
        assert_eq!(extended.order(), clone.order());
        // Extended again, while a clone of it shares it.
        let again = extended.clone().with_related([failure("d")]);
        assert_eq!(tasks(&again), ["b", "c", "d"]);
        assert_eq!(tasks(&extended), ["b", "c"]);
        drop(extended);
        let again = again.downcast::<std::io::Error>().unwrap_err();
        drop(clone);
        assert_eq!(again.downcast::<std::io::Error>().unwrap().to_string(), "disk full");

        let panicked = Error::panicked(Arc::from("p"), Box::new(7_u32));
        let clone = panicked.clone();
        let extended = panicked.with_related([failure("q")]);
        let extended = extended.into_panic().unwrap_err();
        drop(clone);
        let value = extended.into_panic().unwrap();
        assert_eq!(value.downcast::<u32>().ok().map(|value| *value), Some(7));
    }

    /// A body's `std::io::Error`, kept without a box of its own (`Why::Io`),
    /// reads as the same error boxed: same `Display`, `Debug`, `source()`,
    /// `downcast_ref`, and `downcast` by value (or not at all, intact).
    #[test]
    fn an_io_error_kept_as_it_is_reads_as_the_same_error_boxed() {
        #[derive(Debug)]
        struct Disk;
        impl std::fmt::Display for Disk {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("disk")
            }
        }
        impl StdError for Disk {}
        let io = || std::io::Error::new(std::io::ErrorKind::StorageFull, Disk);
        let kept = Error::failed(|| Arc::from("a"), BodyError::Io(io()));
        let boxed = Error::failed(|| Arc::from("a"), Box::new(io()) as BoxError);
        assert!(matches!(kept.inner.what().why, Why::Io(_)));
        assert!(matches!(boxed.inner.what().why, Why::Boxed(_)));
        for err in [&kept, &boxed] {
            assert_eq!(err.kind(), ErrorKind::Failed);
            assert_eq!(err.message(), None);
            assert_eq!(
                err.downcast_ref::<std::io::Error>().map(std::io::Error::kind),
                Some(std::io::ErrorKind::StorageFull)
            );
        }
        assert_eq!(kept.to_string(), boxed.to_string());
        assert_eq!(format!("{kept:#}"), format!("{boxed:#}"));
        assert_eq!(format!("{kept:?}"), format!("{boxed:?}"));
        assert_eq!(
            kept.source().map(ToString::to_string),
            boxed.source().map(ToString::to_string)
        );

        let kept = kept.downcast::<std::fmt::Error>().unwrap_err();
        assert_eq!(kept.to_string(), "task `a` failed: disk");
        let io = kept.downcast::<std::io::Error>().unwrap();
        assert_eq!(io.kind(), std::io::ErrorKind::StorageFull);
    }

    // `Debug` nests as the failures do, so past `DEBUG_DEPTH` levels it
    // counts them instead of overflowing the stack.
    #[test]
    fn debug_of_a_deeply_nested_failure_stops_at_a_depth() {
        let debug = format!("{:?}", nested(100_000));
        assert_eq!(debug.matches("Error {").count(), DEBUG_DEPTH + 1);
        assert!(debug.contains("[1 more, nested too deep to show]"), "{debug}");
        let shallow = format!("{:?}", nested(2));
        assert_eq!(shallow.matches("Error {").count(), 3);
        assert!(!shallow.contains("too deep"));
    }
}
