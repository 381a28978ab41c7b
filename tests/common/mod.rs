//! Helpers shared by the integration tests.

#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// Sets its flag when dropped: tells whether a task's future is gone.
pub struct DropFlag(pub Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A fresh flag, unset.
pub fn flag() -> Arc<AtomicBool> {
    Arc::new(AtomicBool::new(false))
}

/// Awaits `future`, failing the test instead of hanging if it has not
/// finished after a day of (usually paused, so instant) tokio time.
pub async fn bounded<F: Future>(future: F) -> F::Output {
    bounded_for(Duration::from_secs(24 * 3600), future).await
}

/// Awaits `future`, failing the test instead of hanging if it has not
/// finished after `limit` of tokio time: for tests on real time (real
/// sockets), where a day would be a day. It times nothing.
pub async fn bounded_for<F: Future>(limit: Duration, future: F) -> F::Output {
    tokio::time::timeout(limit, future)
        .await
        .expect("did not finish: a hang")
}

/// Counts tasks running at once and remembers the highest count.
#[derive(Clone, Default)]
pub struct Gauge {
    now: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

impl Gauge {
    /// Counts one more running task until the guard is dropped.
    pub fn enter(&self) -> GaugeGuard {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        GaugeGuard(self.now.clone())
    }

    pub fn now(&self) -> usize {
        self.now.load(Ordering::SeqCst)
    }

    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }
}

/// Waits until no task counted by `gauge` is left (an aborted task's future
/// is dropped a moment after the abort), failing after a while.
pub async fn settle_gauge(gauge: &Gauge) {
    for _ in 0..2000 {
        if gauge.now() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(gauge.now(), 0, "tasks still alive");
}

pub struct GaugeGuard(Arc<AtomicUsize>);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Keeps the panics a test injects on purpose, whose message starts with
/// `marker`, out of the test output; any other panic is reported as usual.
pub fn quiet_panics(marker: &'static str) {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str));
            if !message.is_some_and(|message| message.starts_with(marker)) && !payload.is::<LoudPayload>() {
                report(info);
            }
        }));
    });
}

/// How many tasks the current tokio runtime has not released yet.
pub fn alive_tasks() -> usize {
    tokio::runtime::Handle::current().metrics().num_alive_tasks()
}

/// Waits until tokio has released every task but the `before` that were
/// alive before (a task is released a moment after its future completed),
/// failing after a while.
pub async fn settle_tasks(before: usize) {
    for _ in 0..2000 {
        if alive_tasks() == before {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(alive_tasks(), before, "tokio tasks still alive");
}

/// A subscriber that formats every field of the events it takes, as a real
/// one does: a field holding `%err` runs the error's `Display` (user code).
#[cfg(feature = "tracing")]
pub struct Formatting {
    /// The most verbose level taken.
    pub level: tracing::Level,
}

#[cfg(feature = "tracing")]
struct Format;

#[cfg(feature = "tracing")]
impl tracing::field::Visit for Format {
    fn record_debug(&mut self, _: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = format!("{value:?}");
    }
}

#[cfg(feature = "tracing")]
impl tracing::Subscriber for Formatting {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        *metadata.level() <= self.level
    }

    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        span.record(&mut Format);
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        event.record(&mut Format);
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

/// A panic payload whose own `Drop` panics (with a message starting
/// `chaos: injected`), carrying an id. `quiet_panics` keeps panics with it
/// out of the test output.
pub struct LoudPayload(pub u64);

impl Drop for LoudPayload {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("chaos: injected panic in a payload's drop #{}", self.0);
        }
    }
}
