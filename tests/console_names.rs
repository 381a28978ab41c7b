//! Built with `RUSTFLAGS="--cfg tokio_unstable"` (as tokio-console and
//! tokio's task dumps need), every tokio task of a tree is named with its
//! taskward path. tokio reports the name in the `runtime.spawn` span it
//! makes for each task, which is what tokio-console reads.
//!
//! `RUSTFLAGS="--cfg tokio_unstable" cargo test -p taskward --test console_names`

#![cfg(tokio_unstable)]

use std::sync::{Arc, Mutex};

use taskward::{Scope, supervised};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Keeps the `task.name` of every `runtime.spawn` span.
struct Names(Arc<Mutex<Vec<String>>>);

struct TaskName(Option<String>);

impl Visit for TaskName {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "task.name" {
            self.0 = Some(value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "task.name" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

impl Subscriber for Names {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.name() == "runtime.spawn"
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut name = TaskName(None);
        span.record(&mut name);
        if let Some(name) = name.0 {
            self.0.lock().unwrap().push(name);
        }
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, _: &Event<'_>) {}

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

#[supervised]
async fn worker(id: u32) -> Result<u32, std::io::Error> {
    Ok(id)
}

#[supervised(name = "pool")]
async fn pool(scope: &Scope) -> Result<u32, taskward::Error> {
    let a = scope.spawn(worker(1));
    let b = scope.spawn(async { Ok::<_, std::io::Error>(2) });
    Ok(a.await? + b.await?)
}

#[test]
fn every_tokio_task_is_named_with_its_path() {
    let names = Arc::new(Mutex::new(Vec::new()));
    let _guard = tracing::subscriber::set_default(Names(Arc::clone(&names)));
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    assert_eq!(runtime.block_on(taskward::run(pool())).unwrap(), 3);
    // tokio gives an unnamed task an empty name.
    let mut names: Vec<String> = names
        .lock()
        .unwrap()
        .iter()
        .filter(|name| !name.is_empty())
        .cloned()
        .collect();
    names.sort();
    assert_eq!(names, ["pool/task#0", "pool/worker#0"]);
}
