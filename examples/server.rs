//! A TCP echo server: one child task per connection, the listener started
//! with `scope.start` (which hands back the bound address once it listens),
//! shut down gracefully by Ctrl-C or SIGTERM with a grace period.
//!
//! ```text
//! cargo run --example server          # serves until Ctrl-C
//! cargo run --example server -- 5     # stops by itself after 5 seconds
//! TASKWARD_SERVER_SECS=5 cargo run --example server
//! ```
//!
//! Then `nc 127.0.0.1 <port>` and type: every line comes back. On Ctrl-C
//! the listener stops accepting, each connection is told to stop and
//! closes; what is still running after the grace period is aborted. A
//! second Ctrl-C aborts at once. `tests/server.rs` drives this code with a
//! real TCP client.

use std::net::SocketAddr;
use std::time::Duration;

use taskward::{CancellationToken, Ready, Scope, supervised};
use tokio::net::{TcpListener, TcpStream};

/// Binds `addr`, says it is ready with the bound address, then accepts
/// connections until cancelled, each served by its own child task.
#[supervised]
pub(crate) async fn listener(
    scope: &Scope,
    token: CancellationToken,
    ready: Ready<SocketAddr>,
    addr: SocketAddr,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    ready.send(listener.local_addr()?);
    while let Some(accepted) = token.run_until_cancelled(listener.accept()).await {
        let (stream, peer) = accepted?;
        drop(scope.spawn(connection(stream, peer)));
    }
    // Cancelled: the listener is dropped here, so no new connection is
    // accepted; the connections still open are joined before the listener
    // task reports that it is done.
    Ok(())
}

/// Echoes what `peer` sends until it hangs up or the server stops.
///
/// A broken connection is the client's problem, not the server's: it is
/// reported here and does not fail the listener (which, under the default
/// fail-fast policy, would stop the whole server).
#[supervised]
async fn connection(token: CancellationToken, mut stream: TcpStream, peer: SocketAddr) {
    let (mut reader, mut writer) = stream.split();
    match token
        .run_until_cancelled(tokio::io::copy(&mut reader, &mut writer))
        .await
    {
        Some(Ok(bytes)) => println!("{peer}: closed after {bytes} bytes"),
        Some(Err(err)) => eprintln!("{peer}: {err}"),
        None => println!("{peer}: closed by the server's shutdown"),
    }
}

/// The whole server: starts the listener and reports where it listens.
#[supervised]
async fn server(scope: &Scope, addr: SocketAddr) -> Result<(), taskward::Error> {
    let bound: SocketAddr = scope.start(listener(addr)).await?;
    println!("listening on {bound}");
    Ok(())
}

/// The optional run time, from the first argument or `TASKWARD_SERVER_SECS`.
fn stop_after() -> Result<Option<Duration>, String> {
    let Some(secs) = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("TASKWARD_SERVER_SECS").ok())
    else {
        return Ok(None);
    };
    let secs: u64 = secs
        .parse()
        .map_err(|_| format!("expected a number of seconds to run, got `{secs}`"))?;
    Ok(Some(Duration::from_secs(secs)))
}

/// The root of the tree: Ctrl-C or SIGTERM cancel `token` and with it every
/// task; connections get 5 s to close, then what still runs is aborted.
#[taskward::main(grace = "5s")]
async fn main(scope: &Scope, token: CancellationToken) -> Result<(), taskward::BoxError> {
    if let Some(after) = stop_after()? {
        scope.spawn(async move {
            if token.run_until_cancelled(tokio::time::sleep(after)).await.is_some() {
                println!("stopping after {after:?}");
                token.cancel();
            }
        });
    }
    let addr = SocketAddr::from(([127, 0, 0, 1], 0));
    scope.spawn(server(addr)).await?;
    println!("server stopped");
    Ok(())
}
