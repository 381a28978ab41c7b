//! A minimal `tracing` subscriber that remembers spans and events, for the
//! tests of what taskward (and `#[tracing::instrument]` under it) emits. It
//! keeps one stack of entered spans: use it on a current-thread runtime.

#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// A span as it was created: its name and fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub name: String,
    pub fields: HashMap<String, String>,
}

impl Span {
    pub fn field(&self, name: &str) -> Option<String> {
        self.fields.get(name).cloned()
    }
}

/// An event: its level, its fields, and the spans entered when it was
/// emitted, outermost first.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub level: Level,
    pub fields: HashMap<String, String>,
    pub stack: Vec<Span>,
}

impl Recorded {
    pub fn message(&self) -> &str {
        self.fields.get("message").map_or("", String::as_str)
    }

    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }

    /// The `path` of the innermost span entered when it was emitted.
    pub fn in_task(&self) -> Option<String> {
        self.stack.last()?.field("path")
    }
}

#[derive(Default)]
pub struct Recorder {
    spans: Mutex<Vec<Span>>,
    entered: Mutex<Vec<u64>>,
    events: Mutex<Vec<Recorded>>,
    /// The most verbose level taken, if not every level.
    max: Option<Level>,
}

impl Recorder {
    /// A recorder that takes spans and events up to `max` only (`WARN`:
    /// warnings and errors), and says so to tracing's global level.
    pub fn up_to(max: Level) -> Self {
        Recorder {
            max: Some(max),
            ..Recorder::default()
        }
    }

    /// Every span created so far, in order of creation.
    pub fn spans(&self) -> Vec<Span> {
        lock(&self.spans).clone()
    }

    /// The `path` of every task's span created so far, in order.
    pub fn task_paths(&self) -> Vec<Option<String>> {
        lock(&self.spans)
            .iter()
            .filter(|span| span.name == "task")
            .map(|span| span.field("path"))
            .collect()
    }

    /// Every event emitted so far.
    pub fn events(&self) -> Vec<Recorded> {
        lock(&self.events).clone()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Default)]
struct Fields(HashMap<String, String>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.max.is_none_or(|max| *metadata.level() <= max)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(self.max.map_or(LevelFilter::TRACE, LevelFilter::from_level))
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut fields = Fields::default();
        span.record(&mut fields);
        let mut spans = lock(&self.spans);
        spans.push(Span {
            name: span.metadata().name().to_owned(),
            fields: fields.0,
        });
        Id::from_u64(spans.len() as u64)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let stack = {
            let spans = lock(&self.spans);
            lock(&self.entered)
                .iter()
                .map(|id| spans[usize::try_from(*id).unwrap() - 1].clone())
                .collect()
        };
        lock(&self.events).push(Recorded {
            level: *event.metadata().level(),
            fields: fields.0,
            stack,
        });
    }

    fn enter(&self, span: &Id) {
        lock(&self.entered).push(span.into_u64());
    }

    fn exit(&self, _: &Id) {
        lock(&self.entered).pop();
    }
}
