//! The reference scenario: one task generates jobs, a pool of workers
//! processes them, and workers split big jobs among their own sub-workers.
//! One job is poisoned.
//!
//! ```text
//! cargo run --example worker_pool               # fail_fast: the failure stops the tree
//! cargo run --example worker_pool -- --supervise   # the pool goes on, the pipeline handles it
//! ```
//!
//! Nothing here waits on a WaitGroup, passes a context around or closes a
//! channel by hand: the scope joins the workers, their tokens come from the
//! pipeline's, and each channel closes when its last producer ends.

use std::sync::Arc;
use std::time::Duration;

use taskward::{CancellationToken, Error, Policy, Scope, Task, supervised};
use tokio::sync::{Mutex, mpsc};

pub(crate) const JOBS: u32 = 16;
const WORKERS: usize = 4;
pub(crate) const POISONED_JOB: u32 = 11;
/// Jobs larger than this are split into chunks of this size.
const CHUNK: usize = 8;

#[derive(Debug)]
struct Job {
    id: u32,
    data: Vec<u64>,
}

#[derive(Debug)]
pub(crate) struct Done {
    pub(crate) job: u32,
    checksum: u64,
    chunks: usize,
    by: String,
}

/// The error of one job: errors are just results.
#[derive(Debug)]
pub(crate) struct JobError {
    pub(crate) job: u32,
    reason: String,
}

impl std::fmt::Display for JobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "job {}: {}", self.job, self.reason)
    }
}

impl std::error::Error for JobError {}

/// Produces the jobs. It owns the only sender, so the channel closes when it
/// returns: the workers' loops then end by themselves.
#[supervised]
async fn generator(token: CancellationToken, jobs: mpsc::Sender<Job>) {
    for id in 0..JOBS {
        // Every fourth job is big enough to be split.
        let len = if id % 4 == 3 { 4 * CHUNK } else { CHUNK / 2 };
        let job = Job {
            id,
            data: (0..len as u64).map(|n| n * u64::from(id + 1)).collect(),
        };
        tokio::select! {
            () = token.cancelled() => return,
            sent = jobs.send(job) => if sent.is_err() { return },
        }
    }
}

/// Takes jobs until the channel closes or it is told to stop. Big jobs go to
/// sub-workers spawned on the worker's own scope. Its path says which worker
/// it is: `pipeline/worker-3`.
#[supervised(name = "worker-{id}")]
async fn worker(
    scope: &Scope,
    token: CancellationToken,
    id: usize,
    jobs: Arc<Mutex<mpsc::Receiver<Job>>>,
    results: mpsc::Sender<Done>,
) -> Result<(), taskward::BoxError> {
    loop {
        let next = async { jobs.lock().await.recv().await };
        let Some(job) = scope.until_cancelled(next).await.flatten() else {
            return Ok(());
        };
        let (checksum, chunks) = if job.data.len() > CHUNK {
            let parts: Vec<_> = job
                .data
                .chunks(CHUNK)
                .enumerate()
                .map(|(part, data)| scope.spawn(chunk(job.id, part, data.to_vec())))
                .collect();
            let chunks = parts.len();
            let mut sum = 0;
            for part in parts {
                // A failed chunk fails this worker: `?` passes the error on
                // unchanged, with the path of the chunk where it started.
                sum += part.await?;
            }
            (sum, chunks)
        } else {
            (work(&token, &job.data).await, 0)
        };
        let done = Done {
            job: job.id,
            checksum,
            chunks,
            by: scope.path().to_owned(),
        };
        if results.send(done).await.is_err() {
            return Ok(());
        }
    }
}

/// A sub-worker: one chunk of a big job, named after it
/// (`pipeline/worker-3/chunk-2`), so that an error says which chunk failed.
#[supervised(name = "chunk-{part}")]
async fn chunk(token: CancellationToken, job: u32, part: usize, data: Vec<u64>) -> Result<u64, JobError> {
    if job == POISONED_JOB && part == 2 {
        tokio::time::sleep(Duration::from_millis(3)).await;
        return Err(JobError {
            job,
            reason: format!("corrupted data in chunk {part}"),
        });
    }
    Ok(work(&token, &data).await)
}

/// Pretends to work for a moment, stopping early if told to.
async fn work(token: &CancellationToken, data: &[u64]) -> u64 {
    let _ = token
        .run_until_cancelled(tokio::time::sleep(Duration::from_millis(5)))
        .await;
    data.iter().sum()
}

/// Reads the results until every worker (the producers) has ended.
#[supervised]
async fn collector(mut results: mpsc::Receiver<Done>) -> Result<Vec<Done>, JobError> {
    let mut all = Vec::new();
    while let Some(done) = results.recv().await {
        all.push(done);
    }
    Ok(all)
}

#[derive(Debug)]
pub(crate) struct Summary {
    pub(crate) done: Vec<Done>,
    pub(crate) handled: Vec<Error>,
}

/// The root: wires the generator, the workers and the collector together.
#[supervised]
pub(crate) async fn pipeline(scope: &Scope) -> Result<Summary, taskward::BoxError> {
    let (job_tx, job_rx) = mpsc::channel(4);
    let (result_tx, result_rx) = mpsc::channel(4);

    scope.spawn(generator(job_tx));
    let jobs = Arc::new(Mutex::new(job_rx));
    for id in 0..WORKERS {
        scope.spawn(worker(id, jobs.clone(), result_tx.clone()));
    }
    // The workers hold the only senders now: when the last one ends, the
    // collector's loop ends.
    drop(result_tx);
    let collector = scope.spawn(collector(result_rx));

    // Under `supervise` a failure reaches us here: the worker it came from
    // has ended (a failed chunk fails its worker), and the pool goes on with
    // one worker fewer. Under `fail_fast` it has already cancelled the tree
    // and will escalate.
    let mut handled = Vec::new();
    if scope.policy() == Policy::Supervise {
        while let Some(err) = scope.next_error().await {
            println!("  handled: {err} (that worker has ended; the pool goes on with one fewer)");
            handled.push(err);
        }
    }
    let done = collector.await?;
    Ok(Summary { done, handled })
}

#[tokio::main]
async fn main() {
    let policy = if std::env::args().any(|arg| arg == "--supervise") {
        Policy::Supervise
    } else {
        Policy::FailFast
    };
    println!("worker pool: {JOBS} jobs, {WORKERS} workers, job {POISONED_JOB} is poisoned, policy {policy:?}");

    match taskward::run(pipeline().policy(policy)).await {
        Ok(summary) => {
            let split = summary.done.iter().filter(|done| done.chunks > 0).count();
            let checksum: u64 = summary.done.iter().map(|done| done.checksum).sum();
            println!(
                "done: {} of {JOBS} jobs ({split} split among sub-workers), checksum {checksum}",
                summary.done.len()
            );
            for done in summary.done.iter().filter(|done| done.chunks > 0) {
                println!("  job {:>2} by {} in {} chunks", done.job, done.by, done.chunks);
            }
            println!("failures handled by the pipeline: {}", summary.handled.len());
            for err in &summary.handled {
                if let Some(job) = err.downcast_ref::<JobError>() {
                    println!("  job {} failed in `{}`", job.job, err.task());
                }
            }
        }
        Err(err) => {
            println!("pipeline stopped: {err}");
            if let Some(job) = err.downcast_ref::<JobError>() {
                println!(
                    "  the failing job was {}; every other task was cancelled and joined",
                    job.job
                );
            }
            for related in err.related() {
                println!("  also: {related}");
            }
            println!("(run with `-- --supervise` to see the pool go on and the pipeline handle the failure)");
        }
    }
}
