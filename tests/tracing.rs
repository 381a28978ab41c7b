//! With the `tracing` feature (on by default), every task runs in a `task`
//! span carrying its path, and failures and escalations are events.

#![cfg(feature = "tracing")]

use std::sync::{Arc, Mutex};

use taskward::{Scope, Task};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

#[derive(Debug, Clone, PartialEq)]
struct Recorded {
    level: Level,
    message: String,
    error: Option<String>,
    scope: Option<String>,
    /// The path of the innermost `task` span entered when it was emitted.
    in_task: Option<String>,
}

/// A minimal subscriber that remembers spans and events (one thread only:
/// the tests use a current-thread runtime).
#[derive(Default)]
struct Recorder {
    spans: Mutex<Vec<(String, Option<String>)>>,
    entered: Mutex<Vec<u64>>,
    events: Arc<Mutex<Vec<Recorded>>>,
}

#[derive(Default)]
struct Fields {
    path: Option<String>,
    message: Option<String>,
    error: Option<String>,
    scope: Option<String>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record_debug(field, &format_args!("{value}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let value = format!("{value:?}");
        match field.name() {
            "path" => self.path = Some(value),
            "message" => self.message = Some(value),
            "error" => self.error = Some(value),
            "scope" => self.scope = Some(value),
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
        spans.push((span.metadata().name().to_owned(), fields.path));
        Id::from_u64(spans.len() as u64)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let in_task = self.entered.lock().unwrap().last().and_then(|id| {
            let spans = self.spans.lock().unwrap();
            spans[usize::try_from(*id).unwrap() - 1].1.clone()
        });
        self.events.lock().unwrap().push(Recorded {
            level: *event.metadata().level(),
            message: fields.message.unwrap_or_default(),
            error: fields.error,
            scope: fields.scope,
            in_task,
        });
    }

    fn enter(&self, span: &Id) {
        self.entered.lock().unwrap().push(span.into_u64());
    }

    fn exit(&self, _: &Id) {
        self.entered.lock().unwrap().pop();
    }
}

#[tokio::test(flavor = "current_thread")]
async fn tasks_run_in_spans_with_their_paths_and_failures_are_events() {
    let recorder = Recorder::default();
    let events = Arc::clone(&recorder.events);
    let spans = std::mem::take(&mut *recorder.spans.lock().unwrap());
    assert!(spans.is_empty());
    let recorder = Arc::new(recorder);
    let _guard = tracing::subscriber::set_default(Arc::clone(&recorder));

    let err = taskward::run(
        taskward::task(|scope: Scope| async move {
            scope.spawn(async { Ok::<_, std::io::Error>(()) }.named("fine"));
            scope.spawn(async { Err::<(), _>(std::io::Error::other("disk full")) }.named("broken"));
        })
        .named("app")
        .policy(taskward::Policy::Supervise),
    )
    .await
    .unwrap_err();
    assert_eq!(err.task(), "app/broken#0");

    let spans = recorder.spans.lock().unwrap().clone();
    let task_paths: Vec<Option<String>> = spans
        .iter()
        .filter(|(name, _)| name == "task")
        .map(|(_, path)| path.clone())
        .collect();
    assert_eq!(
        task_paths,
        [
            Some("app".to_owned()),
            Some("app/fine#0".to_owned()),
            Some("app/broken#0".to_owned())
        ]
    );

    let events = events.lock().unwrap().clone();
    let started: Vec<_> = events
        .iter()
        .filter(|event| event.message == "task started")
        .map(|event| (event.level, event.in_task.clone().unwrap()))
        .collect();
    assert_eq!(started.len(), 3);
    assert!(started.iter().all(|(level, _)| *level == Level::DEBUG));

    let failed = events
        .iter()
        .find(|event| event.message == "task failed")
        .expect("a warning for the failing task");
    assert_eq!(failed.level, Level::WARN);
    assert_eq!(failed.in_task.as_deref(), Some("app/broken#0"));
    assert_eq!(failed.error.as_deref(), Some("task `app/broken#0` failed: disk full"));

    let escalated = events
        .iter()
        .find(|event| event.message == "unhandled failure escalates")
        .expect("an error event for the escalation");
    assert_eq!(escalated.level, Level::ERROR);
    // Emitted where the failure arrives (the child's span), naming the scope
    // it escalates in.
    assert_eq!(escalated.scope.as_deref(), Some("app"));
    assert_eq!(
        escalated.error.as_deref(),
        Some("task `app/broken#0` failed: disk full")
    );
}
