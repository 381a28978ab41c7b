//! The echo server of `examples/server.rs`, driven by a real TCP client on
//! 127.0.0.1, then shut down with the root's token.

mod common;

#[allow(dead_code)] // the example's `main` is not used here
#[path = "../examples/server.rs"]
mod server;

use std::net::SocketAddr;
use std::time::Duration;

use taskward::{ErrorKind, Root, Scope};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

/// Fails the test rather than hanging on a broken shutdown (on real time:
/// real sockets); times nothing.
async fn bounded<F: std::future::Future>(future: F) -> F::Output {
    common::bounded_for(Duration::from_secs(60), future).await
}

async fn echo(stream: &mut TcpStream, message: &[u8]) -> Vec<u8> {
    stream.write_all(message).await.unwrap();
    let mut back = vec![0; message.len()];
    stream.read_exact(&mut back).await.unwrap();
    back
}

#[tokio::test]
async fn the_server_echoes_over_tcp_and_stops_gracefully_with_the_token() {
    let root = Root::new().grace(Duration::from_secs(5));
    let stop = root.token();
    let (bound, addr) = oneshot::channel();
    let tree = tokio::spawn(root.run(taskward::task(|scope: Scope| async move {
        let addr: SocketAddr = scope
            .start(server::listener(SocketAddr::from(([127, 0, 0, 1], 0))))
            .await?;
        let _ = bound.send(addr);
        Ok::<_, taskward::Error>(())
    })));
    let addr = bounded(addr).await.expect("the listener became ready");
    assert!(addr.ip().is_loopback());
    assert_ne!(addr.port(), 0, "start returned the bound address");

    let mut first = bounded(TcpStream::connect(addr)).await.unwrap();
    let mut second = bounded(TcpStream::connect(addr)).await.unwrap();
    assert_eq!(bounded(echo(&mut first, b"hello")).await, b"hello");
    assert_eq!(bounded(echo(&mut second, b"world")).await, b"world");
    assert_eq!(bounded(echo(&mut first, b"again")).await, b"again");
    drop(second); // one client hangs up; the other stays connected

    stop.cancel();
    bounded(tree).await.unwrap().unwrap();

    // The open connection was closed by the shutdown, and nothing listens.
    let mut rest = Vec::new();
    assert_eq!(bounded(first.read_to_end(&mut rest)).await.unwrap(), 0);
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "still listening after shutdown"
    );
}

#[tokio::test]
async fn a_listener_that_cannot_bind_fails_start_and_the_failure_is_claimed() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let result = bounded(taskward::run(taskward::task(move |scope: Scope| async move {
        let err = scope.start::<SocketAddr, _>(server::listener(addr)).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Failed);
        let io = err.downcast_ref::<std::io::Error>().expect("the bind error");
        assert_eq!(io.kind(), std::io::ErrorKind::AddrInUse);
        Ok::<_, taskward::Error>("handled")
    })))
    .await;
    assert_eq!(result.unwrap(), "handled");
}
