//! Hashing files on tokio's blocking pool: at most four closures at once,
//! a progress line, and a deadline that cancels the work halfway.
//!
//! ```text
//! cargo run --example blocking
//! ```
//!
//! Each file is hashed by a closure of `scope.spawn_blocking`, which looks
//! at its token between chunks: when the deadline passes, every closure
//! stops at its next chunk, and the closures still in line start in their
//! turn, see the cancelled token and return at once.
//! `run` returns only once every closure has stopped, which the example
//! checks by counting the closures that run.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use taskward::{CancellationToken, Error, Scope, Task, supervised};

pub(crate) const FILES: usize = 24;
const FILE_SIZE: usize = 64 * 1024;
const CHUNK: usize = 4 * 1024;
/// Closures hashing at once.
pub(crate) const LIMIT: usize = 4;
/// A slow disk: each chunk takes at least this long, so that hashing
/// every file takes about 500 ms (24 files of 16 chunks, 4 at a time).
const PER_CHUNK: Duration = Duration::from_millis(5);
/// About halfway.
const DEADLINE: Duration = Duration::from_millis(250);

/// What the closures did, counted as they go.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    /// Closures running now.
    running: AtomicUsize,
    /// The most closures that ran at once.
    pub(crate) peak: AtomicUsize,
    /// Files hashed to the end: name and hash.
    pub(crate) hashed: Mutex<Vec<(String, u64)>>,
    /// Closures that stopped midway when they saw the cancellation.
    pub(crate) interrupted: AtomicUsize,
    /// Closures that saw it before their first chunk (they were in line).
    pub(crate) skipped: AtomicUsize,
}

/// Counts a running closure until it is dropped.
struct Running<'a>(&'a Stats);

impl<'a> Running<'a> {
    fn enter(stats: &'a Stats) -> Self {
        let now = stats.running.fetch_add(1, Ordering::SeqCst) + 1;
        stats.peak.fetch_max(now, Ordering::SeqCst);
        Running(stats)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

/// FNV-1a, 64 bits, continued over `bytes`.
fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// Hashes one file, chunk by chunk, on a thread of the blocking pool. It
/// looks at its token between chunks: that is the only way a blocking
/// closure can be stopped.
fn hash_file(path: &Path, token: &CancellationToken, stats: &Stats) -> std::io::Result<()> {
    let _running = Running::enter(stats);
    let mut file = File::open(path)?;
    let mut buffer = vec![0; CHUNK];
    let mut hash = 0xcbf2_9ce4_8422_2325;
    for chunk in 0.. {
        if token.is_cancelled() {
            let stopped = if chunk == 0 { &stats.skipped } else { &stats.interrupted };
            stopped.fetch_add(1, Ordering::SeqCst);
            return Ok(());
        }
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hash = fnv1a(hash, &buffer[..read]);
        std::thread::sleep(PER_CHUNK);
    }
    let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
    stats.hashed.lock().unwrap().push((name, hash));
    Ok(())
}

/// One closure per file, at most `LIMIT` at once; the others wait in line
/// (in the scope, not on threads of the pool).
#[supervised]
async fn hash_all(scope: &Scope, files: Vec<PathBuf>, stats: Arc<Stats>) -> Result<(), Error> {
    scope.set_limit(LIMIT);
    for path in files {
        let stats = Arc::clone(&stats);
        scope.spawn_blocking(move |token| hash_file(&path, &token, &stats));
    }
    Ok(())
}

/// The progress line, until cancelled.
#[supervised]
async fn progress(token: CancellationToken, stats: Arc<Stats>) {
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    while token.run_until_cancelled(tick.tick()).await.is_some() {
        let hashed = stats.hashed.lock().unwrap().len();
        let running = stats.running.load(Ordering::SeqCst);
        println!("progress: {hashed}/{FILES} files hashed, {running} closures running");
    }
}

/// A directory of generated files, removed when dropped.
pub(crate) struct TempFiles {
    pub(crate) dir: PathBuf,
    files: Vec<PathBuf>,
}

impl TempFiles {
    /// `count` files of pseudo-random bytes in a new directory of the
    /// system's temporary directory.
    fn create(count: usize) -> std::io::Result<TempFiles> {
        static MADE: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let unique = format!(
            "taskward-blocking-{}-{nanos}-{}",
            std::process::id(),
            MADE.fetch_add(1, Ordering::Relaxed)
        );
        let dir = std::env::temp_dir().join(unique);
        std::fs::create_dir(&dir)?;
        // Made now: removed even if writing a file fails.
        let mut temp = TempFiles { dir, files: Vec::new() };
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for n in 0..count {
            let path = temp.dir.join(format!("file-{n:02}.bin"));
            let mut bytes = Vec::with_capacity(FILE_SIZE);
            while bytes.len() < FILE_SIZE {
                // xorshift64
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                bytes.extend_from_slice(&state.to_le_bytes());
            }
            File::create(&path)?.write_all(&bytes)?;
            temp.files.push(path);
        }
        Ok(temp)
    }
}

impl Drop for TempFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What a run of the example saw.
pub(crate) struct Outcome {
    /// The tree's result: `TimedOut` when the deadline cut it short.
    pub(crate) result: Result<(), Error>,
    pub(crate) stats: Arc<Stats>,
    /// Closures still running when `run` returned.
    pub(crate) running_after_run: usize,
    /// The temporary directory, removed by now.
    pub(crate) dir: PathBuf,
}

/// Generates the files, hashes them until `deadline`, and removes them.
pub(crate) async fn hash_files_until(deadline: Duration) -> std::io::Result<Outcome> {
    let temp = TempFiles::create(FILES)?;
    let stats = Arc::new(Stats::default());
    let files = temp.files.clone();
    let shared = Arc::clone(&stats);
    let result = taskward::run(
        taskward::task(move |scope: Scope| async move {
            let progress = scope.spawn(progress(Arc::clone(&shared)));
            let hashing = scope.spawn(hash_all(files, shared).timeout(deadline));
            let result = hashing.await;
            progress.cancel();
            result
        })
        .named("hash-files"),
    )
    .await;
    let running_after_run = stats.running.load(Ordering::SeqCst);
    let dir = temp.dir.clone();
    drop(temp);
    Ok(Outcome {
        result,
        stats,
        running_after_run,
        dir,
    })
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    println!(
        "hashing {FILES} files of {} KiB, {LIMIT} at a time, with a deadline of {DEADLINE:?}",
        FILE_SIZE / 1024
    );
    let outcome = hash_files_until(DEADLINE).await?;
    match &outcome.result {
        Ok(()) => println!("every file was hashed before the deadline"),
        Err(err) => println!("stopped: {err}"),
    }
    let hashed = outcome.stats.hashed.lock().unwrap();
    for (name, hash) in hashed.iter().take(3) {
        println!("  {name}: {hash:016x}");
    }
    println!(
        "{} files hashed, {} closures stopped midway, {} saw the cancellation before their first chunk; at most {} ran at once",
        hashed.len(),
        outcome.stats.interrupted.load(Ordering::SeqCst),
        outcome.stats.skipped.load(Ordering::SeqCst),
        outcome.stats.peak.load(Ordering::SeqCst),
    );
    println!(
        "closures still running when `run` returned: {}; {} removed",
        outcome.running_after_run,
        outcome.dir.display()
    );
    Ok(())
}
