//! The README's main example, run under both policies.

#[allow(dead_code)]
#[path = "../examples/worker_pool.rs"]
mod worker_pool;

use taskward::{Policy, Task};
use worker_pool::{JobError, POISONED_JOB, pipeline};

#[tokio::test]
async fn fail_fast_stops_the_tree_and_names_the_failing_sub_worker() {
    let err = taskward::run(pipeline().policy(Policy::FailFast)).await.unwrap_err();
    assert_eq!(err.downcast_ref::<JobError>().unwrap().job, POISONED_JOB);
    // The path names the worker and the chunk (`#[supervised(name =
    // "chunk-{part}")]`), not how many chunks the worker had spawned.
    let (worker, chunk) = err.task().rsplit_once('/').unwrap();
    assert!(worker.starts_with("pipeline/worker-"), "{}", err.task());
    assert_eq!(chunk, "chunk-2", "the poisoned chunk is the third of its job");
}

#[tokio::test]
async fn supervise_goes_on_and_the_pipeline_handles_the_failure() {
    let summary = taskward::run(pipeline().policy(Policy::Supervise)).await.unwrap();
    assert_eq!(summary.handled.len(), 1);
    assert_eq!(summary.handled[0].downcast_ref::<JobError>().unwrap().job, POISONED_JOB);
    let mut jobs: Vec<u32> = summary.done.iter().map(|done| done.job).collect();
    jobs.sort_unstable();
    let expected: Vec<u32> = (0..worker_pool::JOBS).filter(|&job| job != POISONED_JOB).collect();
    assert_eq!(jobs, expected, "every other job was processed");
}
