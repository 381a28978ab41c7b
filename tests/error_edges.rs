//! Errors where they cross into other code (issue 13): panic values, anyhow,
//! eyre and thiserror-style wrappers, reports that print each message once, and
//! `Error: Clone`.

use std::error::Error as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use taskward::{Error, ErrorKind, Scope, Task, supervised};

#[derive(Debug, PartialEq)]
struct Code(u32);

#[derive(Debug, PartialEq)]
enum ParseError {
    Empty,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("parsing \"oops\"")
    }
}

impl std::error::Error for ParseError {}

#[supervised]
async fn parse() -> Result<(), ParseError> {
    Err(ParseError::Empty)
}

#[supervised]
async fn panics_with_a_code() {
    if Code(7).0 == 7 {
        std::panic::panic_any(Code(7));
    }
}

// Regression: a panic with a non-string value gave "non-string panic
// payload" and the value itself was dropped.
#[tokio::test]
async fn a_panic_value_is_reached_by_reference() {
    let err = taskward::run(panics_with_a_code()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Panicked);
    assert_eq!(err.panic_value::<Code>(), Some(&Code(7)));
    assert_eq!(err.panic_value::<String>(), None);
    // The second look finds it where the first left it.
    assert_eq!(err.panic_value::<Code>(), Some(&Code(7)));
}

#[tokio::test]
async fn a_panic_value_is_taken_by_value_and_can_be_resumed() {
    let err = taskward::run(panics_with_a_code()).await.unwrap_err();
    let payload = err.into_panic().expect("a panic");
    assert_eq!(payload.downcast_ref::<Code>(), Some(&Code(7)));
    let resumed =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| std::panic::resume_unwind(payload))).unwrap_err();
    assert_eq!(resumed.downcast_ref::<Code>(), Some(&Code(7)));
}

#[tokio::test]
async fn a_panic_value_looked_at_before_is_still_taken_by_value() {
    let err = taskward::run(panics_with_a_code()).await.unwrap_err();
    assert!(err.panic_value::<Code>().is_some());
    let payload = err.into_panic().expect("a panic");
    assert_eq!(payload.downcast::<Code>().ok().map(|code| *code), Some(Code(7)));
}

#[tokio::test]
async fn a_failure_is_not_a_panic_value() {
    let err = taskward::run(parse()).await.unwrap_err();
    assert_eq!(err.panic_value::<ParseError>(), None);
    assert!(err.into_panic().is_err());
}

/// A panic value that is an `Error` type.
#[derive(Debug, PartialEq)]
struct Fatal(u32);

impl std::fmt::Display for Fatal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "fatal {}", self.0)
    }
}

impl std::error::Error for Fatal {}

#[supervised]
async fn panics_with_an_error() {
    if Code(7).0 == 7 {
        std::panic::panic_any(Fatal(9));
    }
}

// DESIGN: `downcast_ref` reaches a panic's value. Stable Rust lets it do so
// for a value that is an `Error` (ARCHITECTURE.md), in the failure itself
// and in a failure nested in the chain of causes.
#[tokio::test]
async fn a_panic_value_that_is_an_error_is_reached_by_downcast() {
    let err = taskward::run(panics_with_an_error()).await.unwrap_err();
    assert_eq!(err.downcast_ref::<Fatal>(), Some(&Fatal(9)));
    assert_eq!(err.downcast_ref::<ParseError>(), None);
    let copy = err.clone().downcast::<Fatal>().expect_err("a clone of it is alive");
    drop(copy);
    assert_eq!(err.downcast::<Fatal>().ok(), Some(Fatal(9)));

    let nested = taskward::run(taskward::task(|scope: Scope| async move {
        scope.spawn(panics_with_an_error()).await.map_err(Wrapped)
    }))
    .await
    .unwrap_err();
    assert_eq!(nested.downcast_ref::<Fatal>(), Some(&Fatal(9)));
    assert!(
        nested.downcast::<Fatal>().is_err(),
        "a nested value can only be borrowed"
    );
}

/// A parent's error that keeps its child's failure as its source.
#[derive(Debug)]
struct Wrapped(Error);

impl std::fmt::Display for Wrapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the child failed")
    }
}

impl std::error::Error for Wrapped {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// A panic value whose own `Drop` panics.
struct PanicOnDrop(Arc<AtomicUsize>);

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
        panic!("dropping the panic value");
    }
}

// A payload that panics in `Drop` must not turn dropping the error into a
// second panic (or an abort, had it been dropped while unwinding).
#[tokio::test]
async fn dropping_an_error_never_lets_the_payloads_drop_panic_out() {
    let drops = Arc::new(AtomicUsize::new(0));
    let in_task = Arc::clone(&drops);
    let err = taskward::run(taskward::task(move |_: Scope| async move {
        if in_task.load(Ordering::SeqCst) == 0 {
            std::panic::panic_any(PanicOnDrop(in_task));
        }
        Ok::<_, Error>(())
    }))
    .await
    .unwrap_err();
    let copy = err.clone();
    drop(err);
    assert_eq!(drops.load(Ordering::SeqCst), 0, "a clone still holds the value");
    drop(copy);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_panic_value_reached_once_still_drops_without_a_panic() {
    #[derive(Debug)]
    struct Loud(Arc<AtomicUsize>);
    impl Drop for Loud {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
            panic!("loud drop");
        }
    }
    let drops = Arc::new(AtomicUsize::new(0));
    let in_task = Arc::clone(&drops);
    let err = taskward::run(taskward::task(move |_: Scope| async move {
        if in_task.load(Ordering::SeqCst) == 0 {
            std::panic::panic_any(Loud(in_task));
        }
        Ok::<_, Error>(())
    }))
    .await
    .unwrap_err();
    assert!(err.panic_value::<Loud>().is_some());
    drop(err);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_error_is_clone_and_both_copies_reach_the_cause() {
    let err = taskward::run(parse()).await.unwrap_err();
    let copy = err.clone();
    assert_eq!(copy.task(), err.task());
    assert_eq!(copy.to_string(), err.to_string());
    assert_eq!(copy.downcast_ref::<ParseError>(), Some(&ParseError::Empty));
    assert_eq!(err.downcast_ref::<ParseError>(), Some(&ParseError::Empty));
    // Shared, the cause cannot be moved out of either copy.
    let err = err.downcast::<ParseError>().unwrap_err();
    drop(copy);
    assert_eq!(err.downcast::<ParseError>().ok(), Some(ParseError::Empty));
}

/// How many times `needle` appears in `haystack`.
fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

/// Every message of the `source()` chain of `err`, its `Display` first.
fn chain(err: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut messages = vec![err.to_string()];
    let mut next = err.source();
    while let Some(cause) = next {
        messages.push(cause.to_string());
        next = cause.source();
    }
    messages
}

// Regression: `Display` wrote the cause and `source()` returned it too, so
// walking the chain printed `parsing "oops"` twice.
#[tokio::test]
async fn display_says_what_where_and_why_and_the_chain_never_repeats_it() {
    let err = taskward::run(parse().named("parse")).await.unwrap_err();
    assert_eq!(err.to_string(), "task `parse` failed: parsing \"oops\"");
    assert!(err.source().is_none(), "the cause is already in Display");
    let all = chain(&err).join("\n");
    assert_eq!(count(&all, "parsing \"oops\""), 1, "{all}");
}

/// What `#[derive(thiserror::Error)]` writes for
/// `#[error("loading the config")] Task(#[from] Error)`, written out so that
/// the library's examples do not compile thiserror.
#[derive(Debug)]
enum AppError {
    Task(Error),
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("loading the config")
    }
}

impl std::error::Error for AppError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AppError::Task(err) => Some(err),
        }
    }
}

impl From<Error> for AppError {
    fn from(err: Error) -> Self {
        AppError::Task(err)
    }
}

#[supervised]
async fn wraps_in_thiserror(scope: &Scope) -> Result<(), AppError> {
    scope.spawn(parse().named("loose")).await?;
    Ok(())
}

// Regression: a parent whose error type wraps taskward's `Error` reported its
// own path, not the one where the failure started.
#[tokio::test]
async fn a_thiserror_wrapper_keeps_the_origin() {
    let err = taskward::run(wraps_in_thiserror().named("parent")).await.unwrap_err();
    assert_eq!(err.task(), "parent/loose#0");
    assert_eq!(err.downcast_ref::<ParseError>(), Some(&ParseError::Empty));
    let all = chain(&err).join("\n");
    assert_eq!(count(&all, "parsing \"oops\""), 1, "{all}");
}

#[cfg(feature = "anyhow")]
mod anyhow_feature {
    use super::*;
    use anyhow::Context as _;

    #[supervised]
    async fn anyhow_bare() -> anyhow::Result<()> {
        Err(ParseError::Empty)?;
        Ok(())
    }

    #[supervised]
    async fn anyhow_with_context() -> anyhow::Result<()> {
        Err(ParseError::Empty).context("reading the config")?;
        Ok(())
    }

    // Regression: anyhow's conversion to `Box<dyn Error>` hid the type.
    #[tokio::test]
    async fn an_anyhow_error_keeps_its_type_without_context() {
        let err = taskward::run(anyhow_bare()).await.unwrap_err();
        assert_eq!(err.downcast_ref::<ParseError>(), Some(&ParseError::Empty));
        assert_eq!(err.downcast::<ParseError>().ok(), Some(ParseError::Empty));
    }

    #[tokio::test]
    async fn an_anyhow_error_keeps_its_type_with_context() {
        let err = taskward::run(anyhow_with_context()).await.unwrap_err();
        assert_eq!(err.downcast_ref::<ParseError>(), Some(&ParseError::Empty));
        assert_eq!(err.to_string(), "task `anyhow_with_context` failed: reading the config");
        assert_eq!(err.downcast::<ParseError>().ok(), Some(ParseError::Empty));
    }

    #[supervised]
    async fn anyhow_parent(scope: &Scope) -> anyhow::Result<()> {
        scope.spawn(parse().named("loose")).await?;
        Ok(())
    }

    #[supervised]
    async fn anyhow_parent_with_context(scope: &Scope) -> anyhow::Result<()> {
        scope.spawn(parse().named("loose")).await.context("loading")?;
        Ok(())
    }

    // Regression: the parent's path replaced the origin's when the failure
    // went through an `anyhow::Error`.
    #[tokio::test]
    async fn an_anyhow_parent_keeps_the_origin() {
        let err = taskward::run(anyhow_parent().named("parent")).await.unwrap_err();
        assert_eq!(err.task(), "parent/loose#0");
        let err = taskward::run(anyhow_parent_with_context().named("parent"))
            .await
            .unwrap_err();
        assert_eq!(err.task(), "parent/loose#0");
        assert_eq!(err.downcast_ref::<ParseError>(), Some(&ParseError::Empty));
    }

    // Regression: the report of nested task failures printed the message
    // three times and the inner path twice.
    #[tokio::test]
    async fn an_anyhow_report_of_nested_failures_prints_each_path_and_message_once() {
        let err = taskward::run(anyhow_parent().named("parent")).await.unwrap_err();
        let report = anyhow::Error::from(err);
        for rendered in [format!("{report:?}"), format!("{report:#}")] {
            assert_eq!(count(&rendered, "parsing \"oops\""), 1, "{rendered}");
            assert_eq!(count(&rendered, "`parent/loose#0`"), 1, "{rendered}");
            assert_eq!(count(&rendered, "`parent`"), 1, "{rendered}");
        }
        let err = taskward::run(anyhow_parent_with_context().named("parent"))
            .await
            .unwrap_err();
        let report = anyhow::Error::from(err);
        for rendered in [format!("{report:?}"), format!("{report:#}")] {
            assert_eq!(count(&rendered, "parsing \"oops\""), 1, "{rendered}");
            assert_eq!(count(&rendered, "loading"), 1, "{rendered}");
            assert_eq!(count(&rendered, "`parent/loose#0`"), 1, "{rendered}");
        }
    }
}

#[cfg(feature = "eyre")]
mod eyre_feature {
    use super::*;
    use eyre::WrapErr as _;

    #[supervised]
    async fn eyre_bare() -> eyre::Result<()> {
        Err(ParseError::Empty)?;
        Ok(())
    }

    #[supervised]
    async fn eyre_with_context() -> eyre::Result<()> {
        Err(ParseError::Empty).wrap_err("reading the config")?;
        Ok(())
    }

    #[supervised]
    async fn eyre_parent(scope: &Scope) -> eyre::Result<()> {
        scope.spawn(parse().named("loose")).await.wrap_err("loading")?;
        Ok(())
    }

    #[tokio::test]
    async fn an_eyre_report_keeps_its_type_with_and_without_context() {
        let err = taskward::run(eyre_bare()).await.unwrap_err();
        assert_eq!(err.downcast_ref::<ParseError>(), Some(&ParseError::Empty));
        assert_eq!(err.downcast::<ParseError>().ok(), Some(ParseError::Empty));
        let err = taskward::run(eyre_with_context()).await.unwrap_err();
        assert_eq!(err.downcast_ref::<ParseError>(), Some(&ParseError::Empty));
    }

    #[tokio::test]
    async fn an_eyre_parent_keeps_the_origin_and_prints_each_message_once() {
        let err = taskward::run(eyre_parent().named("parent")).await.unwrap_err();
        assert_eq!(err.task(), "parent/loose#0");
        let rendered = format!("{:?}", eyre::Report::from(err));
        assert_eq!(count(&rendered, "parsing \"oops\""), 1, "{rendered}");
        assert_eq!(count(&rendered, "`parent/loose#0`"), 1, "{rendered}");
    }
}
