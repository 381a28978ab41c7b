//! `#[taskward::main]` as a program's entry point: this test has no harness,
//! its `main` is the attribute's. Run without arguments, it runs itself as a
//! child process for each case and checks the exit code and the output; run
//! with a case name, it is that case.
//!
//! - `fail`: a child fails; the full report is on stderr, the exit code 1.
//! - `signal`: the tree waits for its token; SIGTERM cancels it, and it ends
//!   with exit code 0.
//! - `ok`: nothing fails; exit code 0 and nothing on stderr.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use taskward::{CancellationToken, Error, Scope, Task};

#[taskward::main(flavor = "multi_thread", worker_threads = 2, grace = "5s")]
async fn main(scope: &Scope, token: CancellationToken) -> Result<(), Error> {
    let case = std::env::args().nth(1);
    match case.as_deref() {
        None => check_every_case(),
        Some("fail") => {
            let writer = async { Err::<(), _>(std::io::Error::other("disk full")) }.named("writer");
            scope.spawn(writer).await?;
        }
        Some("signal") => {
            println!("ready");
            token.cancelled().await;
        }
        Some(_) => {}
    }
    Ok(())
}

fn run_case(case: &str) -> Command {
    let mut command = Command::new(std::env::current_exe().expect("the test binary"));
    command.arg(case).stdout(Stdio::piped()).stderr(Stdio::piped());
    command
}

fn check_every_case() {
    let fail = run_case("fail").output().unwrap();
    let stderr = String::from_utf8_lossy(&fail.stderr);
    assert_eq!(fail.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("Error: "), "{stderr}");
    assert!(stderr.contains("main/writer#0"), "the report names the task: {stderr}");
    assert!(stderr.contains("disk full"), "the report has the cause: {stderr}");

    let ok = run_case("ok").output().unwrap();
    assert_eq!(ok.status.code(), Some(0));
    assert!(ok.stderr.is_empty(), "{}", String::from_utf8_lossy(&ok.stderr));

    #[cfg(unix)]
    {
        let mut child = run_case("signal").spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line, "ready\n");
        let killed = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(killed.success());
        let signalled = child.wait_with_output().unwrap();
        assert_eq!(
            signalled.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&signalled.stderr)
        );
    }
    println!("main_attribute: every case passed");
}
