//! An HTTP service under taskward, with a graceful shutdown.
//!
//! The tree, as `Root::monitor()` prints it while it serves:
//!
//! ```text
//! http                      the service: starts the two below, then waits for them
//! ├── jobs#0                owns the background work that requests start
//! │   └── job#0 ...         one per `POST /jobs`, cancelled at shutdown
//! └── listener#0            accepts connections until the shutdown
//!     └── connection#0 ...  one per connection, served by hyper
//! ```
//!
//! On shutdown (Ctrl-C, SIGTERM, or the `Root`'s token) every token of the
//! tree is cancelled at once, and each task does its part:
//!
//! - the listener stops accepting and drops its socket, so a new connection
//!   is refused;
//! - each connection tells hyper to shut down gracefully: a request in
//!   flight is answered, then the connection closes (an idle one closes at
//!   once);
//! - the background jobs are cancelled, and the `jobs` task joins them.
//!
//! `Root::run` returns once all of that is done, so when it returns nothing
//! of the service is alive. What has not finished when the grace period
//! ends is aborted and reported as an error, and the binary exits non-zero.
//!
//! Endpoints: `GET /hello`; `GET /slow?ms=N` answers after N milliseconds
//! (a request that a shutdown lets finish); `POST /jobs?ms=N` starts a
//! background job of N milliseconds and answers `202 Accepted` at once.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use taskward::{CancellationToken, Error, Ready, Scope, supervised};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

/// How long requests in flight get to finish once the service is told to
/// stop, unless `TASKWARD_HTTP_GRACE_MS` says otherwise; what still runs then
/// is aborted.
pub const GRACE: Duration = Duration::from_secs(10);

/// What the service has done so far; the tests read it.
#[derive(Debug, Default)]
pub struct Stats {
    in_flight: AtomicUsize,
    jobs_running: AtomicUsize,
    jobs_finished: AtomicUsize,
    jobs_cancelled: AtomicUsize,
}

impl Stats {
    /// Requests being answered now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Background jobs running now.
    pub fn jobs_running(&self) -> usize {
        self.jobs_running.load(Ordering::SeqCst)
    }

    /// Background jobs that ran to their end.
    pub fn jobs_finished(&self) -> usize {
        self.jobs_finished.load(Ordering::SeqCst)
    }

    /// Background jobs stopped by a cancellation (the shutdown).
    pub fn jobs_cancelled(&self) -> usize {
        self.jobs_cancelled.load(Ordering::SeqCst)
    }
}

/// What every connection needs: where to send background work, and the
/// counters.
#[derive(Clone, Debug)]
struct App {
    jobs: mpsc::Sender<Duration>,
    stats: Arc<Stats>,
}

/// The whole service: the owner of the background jobs, and the listener
/// bound to `addr`, whose address is sent to `bound` once it listens.
#[supervised(name = "http")]
pub async fn service(
    scope: &Scope,
    addr: SocketAddr,
    bound: oneshot::Sender<SocketAddr>,
    stats: Arc<Stats>,
) -> Result<(), Error> {
    let (jobs_in, jobs_out) = mpsc::channel(64);
    drop(scope.spawn(jobs(jobs_out, Arc::clone(&stats))));
    let app = App { jobs: jobs_in, stats };
    let addr: SocketAddr = scope.start(listener(addr, app)).await?;
    // Nobody waiting for the address is no reason to stop serving.
    let _ = bound.send(addr);
    Ok(())
}

/// Runs each job it receives as a child of its own, until the service stops.
///
/// Its children are the background work of the requests: they outlive the
/// request that started them, and this task's scope joins them. At shutdown
/// their tokens are cancelled with this task's.
#[supervised]
async fn jobs(scope: &Scope, token: CancellationToken, mut queue: mpsc::Receiver<Duration>, stats: Arc<Stats>) {
    // Until cancelled (`None`) or every sender is gone (`Some(None)`).
    while let Some(Some(length)) = token.run_until_cancelled(queue.recv()).await {
        drop(scope.spawn(job(length, Arc::clone(&stats))));
    }
}

/// Background work: `length` of it, unless the service stops first.
#[supervised]
async fn job(token: CancellationToken, length: Duration, stats: Arc<Stats>) {
    stats.jobs_running.fetch_add(1, Ordering::SeqCst);
    let done = token.run_until_cancelled(tokio::time::sleep(length)).await;
    stats.jobs_running.fetch_sub(1, Ordering::SeqCst);
    let counter = if done.is_some() {
        &stats.jobs_finished
    } else {
        &stats.jobs_cancelled
    };
    counter.fetch_add(1, Ordering::SeqCst);
}

/// Binds `addr`, says it is ready with the bound address, then accepts
/// connections until the shutdown, each served by a child of its own.
#[supervised]
async fn listener(
    scope: &Scope,
    token: CancellationToken,
    ready: Ready<SocketAddr>,
    addr: SocketAddr,
    app: App,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    ready.send(listener.local_addr()?);
    while let Some(accepted) = token.run_until_cancelled(listener.accept()).await {
        let (stream, _) = accepted?;
        drop(scope.spawn(connection(stream, app.clone())));
    }
    // The socket closes here, before the connections are joined: from now
    // on a new connection is refused.
    drop(listener);
    Ok(())
}

/// Serves the requests of one connection; at shutdown, lets the request in
/// flight finish and closes.
///
/// A broken connection is the client's business: it is reported here and
/// does not fail the listener (which, under the default fail-fast policy,
/// would stop the whole service).
#[supervised]
async fn connection(token: CancellationToken, stream: TcpStream, app: App) {
    let service = service_fn(move |request| answer(request, app.clone()));
    let mut conn = pin!(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
    let served = tokio::select! {
        served = conn.as_mut() => served,
        () = token.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(err) = served {
        eprintln!("connection: {err}");
    }
}

/// Counts a request as in flight for as long as it lives.
struct InFlight(Arc<Stats>);

impl InFlight {
    fn new(stats: &Arc<Stats>) -> Self {
        stats.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(Arc::clone(stats))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn answer(request: Request<Incoming>, app: App) -> Result<Response<Full<Bytes>>, Infallible> {
    let _in_flight = InFlight::new(&app.stats);
    println!("{} {}", request.method(), request.uri());
    let length = millis(request.uri().query());
    let response = match (request.method(), request.uri().path(), length) {
        (&Method::GET, "/hello", _) => reply(StatusCode::OK, "hello\n".to_owned()),
        (&Method::GET, "/slow", Some(length)) => {
            // Not tied to the shutdown: a request in flight is answered.
            tokio::time::sleep(length).await;
            reply(StatusCode::OK, format!("slept {} ms\n", length.as_millis()))
        }
        (&Method::POST, "/jobs", Some(length)) => match app.jobs.try_send(length) {
            Ok(()) => reply(StatusCode::ACCEPTED, "job started\n".to_owned()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                reply(StatusCode::TOO_MANY_REQUESTS, "too many jobs\n".to_owned())
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                reply(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n".to_owned())
            }
        },
        (_, "/slow" | "/jobs", None) => reply(StatusCode::BAD_REQUEST, "expected ?ms=N\n".to_owned()),
        _ => reply(StatusCode::NOT_FOUND, "not found\n".to_owned()),
    };
    Ok(response)
}

/// The `ms=N` of a query string, as a duration.
fn millis(query: Option<&str>) -> Option<Duration> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("ms="))
        .and_then(|ms| ms.parse().ok())
        .map(Duration::from_millis)
}

fn reply(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}
