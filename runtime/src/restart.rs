//! Restart (OTP `one_for_one`): a task that re-creates and re-runs a child
//! when it fails.

use std::collections::VecDeque;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::{Error, ErrorKind};
use crate::policy::Policy;
use crate::scope::Scope;
use crate::task::{BoxFuture, Name, Parts, Start, Task, sealed};

/// A task that runs the task made by `make` and, when it fails, makes and
/// runs a new one (OTP's `one_for_one` restart).
///
/// - **What is restarted.** By default (*transient*) a failure (an `Err`, a
///   panic, a timeout) is restarted and an `Ok` is the result;
///   [`.permanent()`](Restart::permanent) restarts on `Ok` too.
/// - **When.** A new incarnation starts only once the previous one, with
///   all of its children, has finished; after the
///   [`backoff`](Restart::backoff) delay if one is set (none by default).
/// - **How often.** At most [`max_restarts(n, within)`](Restart::max_restarts)
///   restarts in any window of `within` (by default 3 within 5 seconds).
///   Past that budget the last failure is the result, with the failures
///   that used the budget up in [`Error::related`].
/// - **Cancellation** stops restarting: once the restart task is cancelled,
///   the incarnation's result (or, during a backoff, the last failure) is
///   the result.
///
/// Each incarnation is a child of the restart task, so its failures are
/// taken by the restart and do not escalate while it is restarted. The
/// restart task is named `restart` (change it with [`Task::named`]):
/// incarnations appear as `.../restart#0/worker#0`, `.../restart#0/worker#1`,
/// and so on. [`Task::timeout`] on the restart bounds all incarnations
/// together; a timeout inside `make` bounds each one. The incarnations do
/// not receive the restart's [`Ready`](crate::Ready): a restart is spawned,
/// not [`start`](crate::Scope::start)ed.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::time::Duration;
/// use taskward::supervised;
///
/// #[supervised]
/// async fn flaky(attempts: Arc<AtomicU32>) -> Result<u32, std::io::Error> {
///     let attempt = attempts.fetch_add(1, Ordering::SeqCst) + 1;
///     if attempt < 3 {
///         return Err(std::io::Error::other("not yet"));
///     }
///     Ok(attempt)
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let attempts = Arc::new(AtomicU32::new(0));
/// let worker = taskward::restart(move || flaky(attempts.clone()))
///     .backoff(Duration::from_millis(1), Duration::from_millis(10));
/// assert_eq!(taskward::run(worker).await.unwrap(), 3);
/// # }
/// ```
pub fn restart<F, T>(make: F) -> Restart<F>
where
    F: FnMut() -> T + Send + 'static,
    T: Task,
{
    Restart {
        make,
        permanent: false,
        backoff: None,
        max_restarts: 3,
        within: Duration::from_secs(5),
    }
}

/// The task returned by [`restart()`]; see there.
#[must_use = "a task does nothing until it is spawned on a scope or run with `taskward::run`"]
pub struct Restart<F> {
    make: F,
    permanent: bool,
    backoff: Option<Backoff>,
    max_restarts: u32,
    within: Duration,
}

impl<F> Restart<F> {
    /// Restarts the task when it returns `Ok` too (OTP's *permanent*):
    /// for a worker that should run for as long as its scope does.
    ///
    /// Every restart counts against the budget; a permanent task that
    /// spends it fails with [`ErrorKind::Failed`], even if its last run
    /// returned `Ok`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let runs = Arc::new(AtomicU32::new(0));
    /// let counter = runs.clone();
    /// let worker = taskward::restart(move || {
    ///     let runs = counter.clone();
    ///     async move {
    ///         runs.fetch_add(1, Ordering::SeqCst);
    ///         Ok::<_, std::io::Error>(())
    ///     }
    /// })
    /// .permanent()
    /// .max_restarts(2, Duration::from_secs(60));
    /// assert!(taskward::run(worker).await.is_err()); // spent its budget
    /// assert_eq!(runs.load(Ordering::SeqCst), 3); // the first run + 2 restarts
    /// # }
    /// ```
    pub fn permanent(mut self) -> Self {
        self.permanent = true;
        self
    }

    /// Waits before each restart, exponentially longer: before the `k`-th
    /// restart in a row (from 0), a random delay between `b/2` and `b`,
    /// where `b = min * 2^k`, capped at `max` ("equal jitter", so that
    /// workers that failed together do not restart together).
    ///
    /// A run that lasted at least `max` ends the row: the next delay starts
    /// from `min` again. If `max` is below `min`, `min` is used for both.
    /// Zero durations restart at once. A backoff is cut short when the
    /// restart task is cancelled.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let started = tokio::time::Instant::now();
    /// let worker = taskward::restart(|| async { Err::<(), _>(std::io::Error::other("down")) })
    ///     .backoff(Duration::from_millis(100), Duration::from_secs(1))
    ///     .max_restarts(2, Duration::from_secs(60));
    /// assert!(taskward::run(worker).await.is_err());
    /// // Two restarts: after 50..=100 ms, then after 100..=200 ms.
    /// assert!(started.elapsed() >= Duration::from_millis(150));
    /// # }
    /// ```
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff = Some(Backoff { min, max: max.max(min) });
        self
    }

    /// The restart budget: at most `n` restarts in any window of `within`.
    /// The restart that would be the `n+1`-th within `within` is not made:
    /// the last failure is the result, with the failures that used the
    /// budget up in [`Error::related`].
    ///
    /// `n = 0` never restarts (the task fails as it would without
    /// `restart`). A zero `within` never runs out, since no two restarts
    /// fall within zero time; `Duration::MAX` makes `n` a budget for the
    /// task's whole life.
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskward::ErrorKind;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let worker = taskward::restart(|| async { Err::<(), _>(std::io::Error::other("down")) })
    ///     .max_restarts(2, Duration::from_secs(10));
    /// let err = taskward::run(worker).await.unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Failed);
    /// assert_eq!(err.task(), "restart/task#2"); // the third run
    /// assert_eq!(err.related().len(), 2); // the two runs before it
    /// # }
    /// ```
    pub fn max_restarts(mut self, n: u32, within: Duration) -> Self {
        self.max_restarts = n;
        self.within = within;
        self
    }
}

impl<F> std::fmt::Debug for Restart<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Restart")
            .field("permanent", &self.permanent)
            .field("backoff", &self.backoff)
            .field("max_restarts", &self.max_restarts)
            .field("within", &self.within)
            .finish_non_exhaustive()
    }
}

impl<F> sealed::Sealed for Restart<F> {}

impl<F, T> Task for Restart<F>
where
    F: FnMut() -> T + Send + 'static,
    T: Task,
{
    type Output = T::Output;
    type Body = BoxFuture<Result<T::Output, Error>>;

    fn into_parts(self) -> Parts<Self::Body> {
        Parts {
            name: Name::Fixed(&"restart"),
            policy: Policy::Supervise,
            timeout: None,
            shielded: false,
            start: Start::WithScope(Box::new(move |scope| Box::pin(self.supervise(scope)))),
        }
    }
}

impl<F, T> Restart<F>
where
    F: FnMut() -> T + Send + 'static,
    T: Task,
{
    async fn supervise(mut self, scope: Scope) -> Result<T::Output, Error> {
        // The restarts within the last `within`, with the failure that
        // caused each (`None` for a permanent task's `Ok`).
        let mut recent: VecDeque<(Instant, Option<Error>)> = VecDeque::new();
        let mut row = 0u32;
        let mut jitter = Jitter::new();
        loop {
            let started = Instant::now();
            let result = scope.spawn((self.make)()).await;
            let ran = started.elapsed();
            if (result.is_ok() && !self.permanent) || scope.is_cancelled() {
                return result;
            }

            let now = Instant::now();
            while recent
                .front()
                .is_some_and(|(at, _)| now.saturating_duration_since(*at) >= self.within)
            {
                recent.pop_front();
            }
            if recent.len() >= self.max_restarts as usize {
                return Err(self.give_up(&scope, result, recent));
            }

            let result = if let Some(backoff) = self.backoff {
                if ran >= backoff.max {
                    row = 0;
                }
                let delay = backoff.delay(row, jitter.next());
                row = row.saturating_add(1);
                if let Err(err) = &result {
                    crate::trace::restarting(scope.path(), err, Some(delay));
                }
                let last = LastRun::new(&scope, result);
                let cancelled = scope.until_cancelled(tokio::time::sleep(delay)).await.is_none();
                let result = last.take();
                if cancelled {
                    return result;
                }
                result
            } else {
                if let Err(err) = &result {
                    crate::trace::restarting(scope.path(), err, None);
                }
                result
            };
            recent.push_back((Instant::now(), result.err()));
        }
    }

    /// The result once the budget is spent: the last failure, with the
    /// earlier ones of the window in `related()`.
    fn give_up(
        &self,
        scope: &Scope,
        last: Result<T::Output, Error>,
        recent: VecDeque<(Instant, Option<Error>)>,
    ) -> Error {
        let earlier = recent.into_iter().filter_map(|(_, failure)| failure);
        let last = match last {
            Err(err) => err,
            Ok(_) => Error::with_kind(
                ErrorKind::Failed,
                Arc::from(scope.path()),
                format!(
                    "ended {} times within {:?}, which is past its restart budget",
                    self.max_restarts + 1,
                    self.within
                ),
            ),
        };
        last.with_related(earlier)
    }
}

/// The last run's result while the restart waits out a backoff. If the
/// restart is aborted meanwhile (killed at the end of a grace period before
/// it saw its token cancelled), its body is dropped where it stands: a
/// failure held here then escalates as the restart's own (the abort goes in
/// its `related()`), instead of vanishing with the body.
struct LastRun<'a, T> {
    scope: &'a Scope,
    result: Option<Result<T, Error>>,
}

impl<'a, T> LastRun<'a, T> {
    fn new(scope: &'a Scope, result: Result<T, Error>) -> Self {
        LastRun {
            scope,
            result: Some(result),
        }
    }

    fn take(mut self) -> Result<T, Error> {
        let Some(result) = self.result.take() else {
            unreachable!("the result is only taken once")
        };
        result
    }
}

impl<T> Drop for LastRun<'_, T> {
    fn drop(&mut self) {
        if let Some(Err(err)) = self.result.take() {
            self.scope.node().route(err);
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Backoff {
    min: Duration,
    max: Duration,
}

impl Backoff {
    /// The delay before the `row`-th restart in a row, for a random `unit`
    /// in `[0, 1)`.
    fn delay(self, row: u32, unit: f64) -> Duration {
        let base = match 1u32.checked_shl(row) {
            Some(factor) => self.min.saturating_mul(factor).min(self.max),
            None => self.max,
        };
        let half = base / 2;
        // `unit < 1`, but float rounding on huge durations may overshoot.
        half.checked_add((base - half).mul_f64(unit))
            .map_or(base, |delay| delay.min(base))
    }
}

/// A small xorshift generator for the backoff's jitter: no cryptographic
/// quality is needed, only that workers restarting together spread out.
struct Jitter(u64);

impl Jitter {
    /// Seeded from std's per-process random hash keys.
    fn new() -> Self {
        let seed = std::collections::hash_map::RandomState::new().build_hasher().finish();
        Jitter(seed | 1)
    }

    /// A number in `[0, 1)`.
    fn next(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        // 53 random bits, the precision of an f64.
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_min_and_stay_within_half_to_full_of_their_base() {
        let backoff = Backoff {
            min: Duration::from_millis(100),
            max: Duration::from_millis(350),
        };
        for (row, base) in [(0, 100), (1, 200), (2, 350), (3, 350), (40, 350)] {
            let base = Duration::from_millis(base);
            assert_eq!(backoff.delay(row, 0.0), base / 2);
            assert!(backoff.delay(row, 0.999_999) <= base);
            assert!(backoff.delay(row, 0.999_999) > base / 2);
        }
    }

    #[test]
    fn huge_backoffs_saturate_instead_of_overflowing() {
        let backoff = Backoff {
            min: Duration::MAX,
            max: Duration::MAX,
        };
        assert!(backoff.delay(5, 0.999_999) <= Duration::MAX);
        assert!(backoff.delay(5, 0.5) >= Duration::MAX / 2);
    }

    #[test]
    fn jitter_stays_in_the_unit_interval_and_varies() {
        let mut jitter = Jitter::new();
        let draws: Vec<f64> = (0..1000).map(|_| jitter.next()).collect();
        assert!(draws.iter().all(|x| (0.0..1.0).contains(x)));
        assert!(draws.windows(2).any(|pair| pair[0] != pair[1]));
    }
}
