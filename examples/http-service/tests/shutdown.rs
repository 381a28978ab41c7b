//! The service's graceful shutdown, driven over loopback by hyper's HTTP
//! client: in the test's process through the `Root`'s token, and as a
//! process through SIGINT (what Ctrl-C sends). Every test is bounded by a
//! timeout.

use std::io::{BufRead, BufReader, Lines};
use std::net::SocketAddr;
use std::process::{ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use taskward::Root;
use taskward_http_example::{Stats, service};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::time::{sleep, timeout};

/// Far more than any of these tests needs, even on a loaded machine.
const BOUND: Duration = Duration::from_secs(60);

/// Sends one request on a connection of its own and returns the status and
/// the body.
async fn request(addr: SocketAddr, method: Method, target: &str) -> (StatusCode, String) {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    let driver = tokio::spawn(connection);
    let request = Request::builder()
        .method(method)
        .uri(target)
        .header("host", addr.to_string())
        .body(Empty::<Bytes>::new())
        .expect("request");
    let response = sender.send_request(request).await.expect("response");
    let status = response.status();
    let body = response.into_body().collect().await.expect("body").to_bytes();
    drop(sender);
    driver.await.expect("client connection").expect("client connection");
    (status, String::from_utf8(body.to_vec()).expect("utf-8 body"))
}

/// Waits until `condition` holds (the caller's timeout bounds it).
async fn until(condition: impl Fn() -> bool) {
    while !condition() {
        sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until a new connection to `addr` is refused.
async fn until_refused(addr: SocketAddr) {
    loop {
        match TcpStream::connect(addr).await {
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionRefused => return,
            // Accepted before the listener stopped, or reset as its socket
            // closed during the handshake: try again.
            Ok(_) => {}
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(err) => panic!("connecting failed otherwise than refused: {err}"),
        }
        sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_answers_the_request_in_flight_refuses_new_ones_and_cancels_and_joins_the_jobs() {
    timeout(BOUND, async {
        let root = Root::new().grace(Duration::from_secs(30));
        let stop = root.token();
        let monitor = root.monitor();
        let stats = Arc::new(Stats::default());
        let (bound, listening) = oneshot::channel();
        let served = tokio::spawn(root.run(service(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            bound,
            Arc::clone(&stats),
        )));
        let addr = listening.await.expect("the service listens");

        assert_eq!(
            request(addr, Method::GET, "/hello").await,
            (StatusCode::OK, "hello\n".to_owned())
        );
        let job = request(addr, Method::POST, "/jobs?ms=600000").await;
        assert_eq!(job, (StatusCode::ACCEPTED, "job started\n".to_owned()));
        until(|| stats.jobs_running() == 1).await;
        let tree = monitor.snapshot().to_string();
        assert!(tree.contains("job#0"), "the job is a task of the tree:\n{tree}");

        let slow = tokio::spawn(request(addr, Method::GET, "/slow?ms=1000"));
        until(|| stats.in_flight() == 1).await;
        stop.cancel();

        until_refused(addr).await;
        let answered = slow.await.expect("the slow request's task");
        assert_eq!(answered, (StatusCode::OK, "slept 1000 ms\n".to_owned()));
        served
            .await
            .expect("the service's task")
            .expect("a clean shutdown: nothing aborted, nothing failed");

        assert!(monitor.snapshot().is_empty(), "nothing of the tree is alive");
        assert_eq!(stats.in_flight(), 0);
        assert_eq!(stats.jobs_running(), 0);
        assert_eq!(stats.jobs_cancelled(), 1, "the job was cancelled and joined");
        assert_eq!(stats.jobs_finished(), 0);
    })
    .await
    .expect("the test takes less than its bound");
}

/// The binary under test, serving on a free loopback port.
struct Server {
    process: std::process::Child,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Server {
    fn start(grace_ms: u64) -> Self {
        let mut process = Command::new(env!("CARGO_BIN_EXE_http-service"))
            .arg("127.0.0.1:0")
            .env("TASKWARD_HTTP_GRACE_MS", grace_ms.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the binary");
        let stdout = BufReader::new(process.stdout.take().expect("stdout")).lines();
        Server { process, stdout }
    }

    /// The next line the server prints (blocking: called on a blocking thread).
    fn line(&mut self) -> String {
        self.stdout.next().expect("a line").expect("stdout")
    }

    /// Sends what Ctrl-C sends.
    fn interrupt(&self) {
        let sent = Command::new("kill")
            .args(["-s", "INT", &self.process.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A failed test must not leave the process behind.
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Runs `f` on a blocking thread (reading the child's output blocks).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_answers_the_request_in_flight_and_exits_zero() {
    timeout(BOUND, async {
        let mut server = blocking(|| Server::start(30_000)).await;
        let (mut server, first) = blocking(move || {
            let first = server.line();
            (server, first)
        })
        .await;
        let addr: SocketAddr = first
            .strip_prefix("listening on http://")
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("expected the address, got `{first}`"));

        let slow = tokio::spawn(request(addr, Method::GET, "/slow?ms=1000"));
        let (server, logged) = blocking(move || {
            let logged = server.line();
            (server, logged)
        })
        .await;
        assert_eq!(logged, "GET /slow?ms=1000", "the request is in flight");
        server.interrupt();

        let answered = slow.await.expect("the slow request's task");
        assert_eq!(answered, (StatusCode::OK, "slept 1000 ms\n".to_owned()));
        let (status, last) = blocking(move || {
            let mut server = server;
            let last = server.line();
            (server.process.wait().expect("wait for the binary"), last)
        })
        .await;
        assert_eq!(last, "stopped");
        assert_eq!(status.code(), Some(0));
    })
    .await
    .expect("the test takes less than its bound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_longer_than_the_grace_period_is_aborted_and_the_exit_code_says_so() {
    timeout(BOUND, async {
        let mut server = blocking(|| Server::start(200)).await;
        let (mut server, first) = blocking(move || {
            let first = server.line();
            (server, first)
        })
        .await;
        let addr: SocketAddr = first
            .strip_prefix("listening on http://")
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("expected the address, got `{first}`"));

        let endless = tokio::spawn(async move {
            let stream = TcpStream::connect(addr).await.expect("connect");
            let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .expect("handshake");
            tokio::spawn(connection);
            let request = Request::get("/slow?ms=600000")
                .header("host", addr.to_string())
                .body(Empty::<Bytes>::new())
                .expect("request");
            sender.send_request(request).await
        });
        let (server, logged) = blocking(move || {
            let logged = server.line();
            (server, logged)
        })
        .await;
        assert_eq!(logged, "GET /slow?ms=600000", "the request is in flight");
        server.interrupt();

        let mut server = server;
        let (status, stderr) = blocking(move || {
            let status = server.process.wait().expect("wait for the binary");
            let mut stderr = String::new();
            std::io::Read::read_to_string(&mut server.process.stderr.take().expect("stderr"), &mut stderr)
                .expect("stderr");
            (status, stderr)
        })
        .await;
        assert_eq!(status.code(), Some(1), "stderr: {stderr}");
        assert!(
            stderr.contains("http/listener#0/connection#"),
            "the report names the aborted connection: {stderr}"
        );
        assert!(
            endless.await.expect("the client's task").is_err(),
            "the connection was cut"
        );
    })
    .await
    .expect("the test takes less than its bound");
}
