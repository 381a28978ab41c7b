//! The `blocking` example: hashing files on the blocking pool under a
//! limit, cut short by a deadline.

#[allow(dead_code)]
#[path = "../examples/blocking.rs"]
mod blocking;

use std::sync::atomic::Ordering;
use std::time::Duration;

use blocking::{FILES, LIMIT, hash_files_until};
use taskward::ErrorKind;

#[tokio::test]
async fn the_deadline_stops_the_hashing_and_run_waits_for_every_closure() {
    let outcome = hash_files_until(Duration::from_millis(100)).await.unwrap();
    assert_eq!(outcome.running_after_run, 0, "run returned while a closure ran");
    let peak = outcome.stats.peak.load(Ordering::SeqCst);
    assert!(peak <= LIMIT, "{peak} closures ran at once");
    // Hashing every file takes at least 24 files x 16 chunks x 5 ms / 4.
    let err = outcome.result.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{err:#}");
    assert_eq!(err.task(), "hash-files/hash_all#0");
    let hashed = outcome.stats.hashed.lock().unwrap().len();
    assert!(hashed < FILES);
    let stopped = outcome.stats.interrupted.load(Ordering::SeqCst) + outcome.stats.skipped.load(Ordering::SeqCst);
    assert_eq!(hashed + stopped, FILES, "every closure ran and returned once");
    assert!(!outcome.dir.exists(), "the temporary files were removed");
}

#[tokio::test]
async fn with_time_enough_every_file_is_hashed() {
    let outcome = hash_files_until(Duration::from_secs(60)).await.unwrap();
    outcome.result.unwrap();
    let mut hashed = outcome.stats.hashed.lock().unwrap().clone();
    assert_eq!(hashed.len(), FILES);
    hashed.sort();
    hashed.dedup_by_key(|(_, hash)| *hash);
    assert_eq!(hashed.len(), FILES, "every file has its own hash");
    assert_eq!(outcome.stats.interrupted.load(Ordering::SeqCst), 0);
    assert!(!outcome.dir.exists());
}
