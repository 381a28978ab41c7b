// `#[taskward::main]` with its arguments; `main` may take the scope and the
// token, and return `()` or `Result<(), E>`.
#![deny(warnings)]

use taskward::{CancellationToken, Scope};

mod current {
    #[taskward::main(flavor = "current_thread", grace = "1.5s")]
    pub(crate) async fn main() {}
}

mod threads {
    #[taskward::main(worker_threads = 2, grace = "500ms", crate = ::taskward)]
    pub(crate) async fn main(token: taskward::CancellationToken) -> Result<(), std::io::Error> {
        assert!(!token.is_cancelled());
        Ok(())
    }
}

/// Runs both others.
#[taskward::main]
async fn main(scope: &Scope, token: CancellationToken) -> Result<(), taskward::Error> {
    assert_eq!(scope.path(), "main");
    assert!(!token.is_cancelled());
    let others = std::thread::spawn(|| (current::main(), threads::main()));
    let (current, threads) = others.join().unwrap();
    assert_eq!(current, std::process::ExitCode::SUCCESS);
    assert_eq!(threads, std::process::ExitCode::SUCCESS);
    Ok(())
}
