//! `#[tracing::instrument]` on a supervised function, on either side of
//! `#[supervised]`, instruments the body: an event in the body is inside
//! the instrument's span, itself inside the task's span, and `skip(scope)`
//! knows the supplied parameters.
//!
//! Regression (issue 20): under `#[supervised]` the instrument wrapped only
//! the creation of the task (an event in the body had no span), and
//! `skip(scope)` failed ("attempting to skip non-existent parameter").

#![cfg(feature = "tracing")]

use std::sync::{Arc, Mutex};

use taskward::{Scope, supervised};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// A span: its name and its `id` field, if any.
type Span = (String, Option<String>);

/// Remembers spans, and for each event its message and the spans entered
/// when it was emitted, outermost first (one thread only).
#[derive(Default)]
struct Recorder {
    spans: Mutex<Vec<Span>>,
    entered: Mutex<Vec<u64>>,
    events: Mutex<Vec<(String, Vec<Span>)>>,
}

#[derive(Default)]
struct Fields {
    id: Option<String>,
    message: Option<String>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "id" => self.id = Some(format!("{value:?}")),
            "message" => self.message = Some(format!("{value:?}")),
            _ => {}
        }
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut fields = Fields::default();
        span.record(&mut fields);
        let mut spans = self.spans.lock().unwrap();
        spans.push((span.metadata().name().to_owned(), fields.id));
        Id::from_u64(spans.len() as u64)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let spans = self.spans.lock().unwrap();
        let stack = self
            .entered
            .lock()
            .unwrap()
            .iter()
            .map(|id| spans[usize::try_from(*id).unwrap() - 1].clone())
            .collect();
        self.events
            .lock()
            .unwrap()
            .push((fields.message.unwrap_or_default(), stack));
    }

    fn enter(&self, span: &Id) {
        self.entered.lock().unwrap().push(span.into_u64());
    }

    fn exit(&self, _: &Id) {
        self.entered.lock().unwrap().pop();
    }
}

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

/// The spans entered when the body's event was emitted.
async fn spans_of_body_event(task: taskward::Supervised<()>) -> Vec<Span> {
    let recorder = Arc::new(Recorder::default());
    let _guard = tracing::subscriber::set_default(Arc::clone(&recorder));
    taskward::run(task).await.unwrap();
    let events = recorder.events.lock().unwrap();
    let (_, stack) = events
        .iter()
        .find(|(message, _)| message.starts_with("in the body"))
        .expect("the body's event was recorded");
    stack.clone()
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
