//! Serves HTTP until Ctrl-C or SIGTERM, then shuts down gracefully.
//!
//! ```text
//! cargo run -p taskward-http-example                    # on 127.0.0.1:3000
//! cargo run -p taskward-http-example -- 127.0.0.1:0     # on a free port
//! curl 127.0.0.1:3000/hello
//! curl '127.0.0.1:3000/slow?ms=5000'                     # then Ctrl-C: it is still answered
//! curl -X POST '127.0.0.1:3000/jobs?ms=60000'            # background work, cancelled by Ctrl-C
//! ```
//!
//! Every request is logged on stdout as it starts (`GET /hello`). The grace
//! period is 10 s, or `TASKWARD_HTTP_GRACE_MS` milliseconds.
//!
//! Exits 0 once everything has stopped by itself, 1 if something had to be
//! aborted at the end of the grace period or the service failed (a second
//! Ctrl-C aborts at once), and 2 on a bad argument.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use taskward::Root;
use taskward_http_example::{GRACE, Stats, service};
use tokio::sync::oneshot;

#[tokio::main]
async fn main() -> ExitCode {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:3000".to_owned());
    let addr: SocketAddr = match addr.parse() {
        Ok(addr) => addr,
        Err(err) => {
            eprintln!("expected an address such as 127.0.0.1:3000, got `{addr}`: {err}");
            return ExitCode::from(2);
        }
    };
    let grace = match std::env::var("TASKWARD_HTTP_GRACE_MS") {
        Ok(ms) => match ms.parse() {
            Ok(ms) => Duration::from_millis(ms),
            Err(err) => {
                eprintln!("expected TASKWARD_HTTP_GRACE_MS to be milliseconds, got `{ms}`: {err}");
                return ExitCode::from(2);
            }
        },
        Err(_) => GRACE,
    };
    let root = Root::new().grace(grace).shutdown_on_signal();
    let (bound, listening) = oneshot::channel();
    let announce = async {
        if let Ok(addr) = listening.await {
            println!("listening on http://{addr}");
        }
    };
    let (served, ()) = tokio::join!(root.run(service(addr, bound, Arc::new(Stats::default()))), announce);
    match served {
        Ok(()) => {
            println!("stopped");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("{err:#}");
            ExitCode::FAILURE
        }
    }
}
