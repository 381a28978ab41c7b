//! `#[tracing::instrument]` on a supervised function, on either side of
//! `#[supervised]`, instruments the body: an event in the body is inside
//! the instrument's span, itself inside the task's span, and `skip(scope)`
//! knows the supplied parameters.
//!
//! Regression (issue 20): under `#[supervised]` the instrument wrapped only
//! the creation of the task (an event in the body had no span), and
//! `skip(scope)` failed ("attempting to skip non-existent parameter").

#![cfg(feature = "tracing")]

#[path = "common/recorder.rs"]
mod recorder;

use std::sync::Arc;

use recorder::Recorder;
use taskward::{Scope, supervised};

#[supervised]
#[tracing::instrument(skip(scope))]
async fn below(scope: &Scope, id: u32) {
    tokio::task::yield_now().await;
    tracing::info!("in the body of {}", scope.path());
}

#[tracing::instrument(skip(scope))]
#[supervised]
async fn above(scope: &Scope, id: u32) {
    tokio::task::yield_now().await;
    tracing::info!("in the body of {}", scope.path());
}

/// The spans entered when the body's event was emitted: each one's name
/// and `id` field.
async fn spans_of_body_event(task: taskward::Supervised<()>) -> Vec<(String, Option<String>)> {
    let recorder = Arc::new(Recorder::default());
    let _guard = tracing::subscriber::set_default(Arc::clone(&recorder));
    taskward::run(task).await.unwrap();
    let event = recorder
        .events()
        .into_iter()
        .find(|event| event.message().starts_with("in the body"))
        .expect("the body's event was recorded");
    event
        .stack
        .iter()
        .map(|span| (span.name.clone(), span.field("id")))
        .collect()
}

#[tokio::test(flavor = "current_thread")]
async fn an_instrument_below_supervised_instruments_the_body() {
    let stack = spans_of_body_event(below(7)).await;
    assert_eq!(
        stack,
        [("task".to_owned(), None), ("below".to_owned(), Some("7".to_owned()))]
    );
}

#[tokio::test(flavor = "current_thread")]
async fn an_instrument_above_supervised_instruments_the_body() {
    let stack = spans_of_body_event(above(8)).await;
    assert_eq!(
        stack,
        [("task".to_owned(), None), ("above".to_owned(), Some("8".to_owned()))]
    );
}
