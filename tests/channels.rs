//! Semantic 7: producers close channels. A task's captured senders are
//! dropped as soon as its body ends, so a consumer's `recv()` loop ends when
//! the last producer is done, even while the producers' scopes still join.

use std::time::Duration;

use taskward::{Error, Scope, supervised};
use tokio::sync::mpsc;

#[supervised]
async fn producer(scope: &Scope, tx: mpsc::Sender<u32>, from: u32) {
    for n in from..from + 10 {
        tx.send(n).await.unwrap();
    }
    // A slow child that has no sender: the channel must not wait for it.
    scope.spawn(tokio::time::sleep(Duration::from_secs(60)));
}

#[tokio::test(start_paused = true)]
async fn receiver_loop_ends_when_the_last_producer_body_ends() {
    let summary = taskward::run(taskward::task(|scope: Scope| async move {
        let (tx, mut rx) = mpsc::channel(4);
        for i in 0..3 {
            scope.spawn(producer(tx.clone(), i * 100));
        }
        drop(tx);
        let mut received = Vec::new();
        while let Some(n) = rx.recv().await {
            received.push(n);
        }
        // The loop ended long before the producers' slow children.
        let ended_at = tokio::time::Instant::now();
        Ok::<_, Error>((received.len(), ended_at))
    }))
    .await
    .unwrap();
    assert_eq!(summary.0, 30);
    let start = summary.1;
    // `run` itself returned only after the 60 s children (paused clock).
    assert!(tokio::time::Instant::now() - start >= Duration::from_secs(59));
}

#[tokio::test(start_paused = true)]
async fn a_plain_future_drops_its_captures_when_it_finishes() {
    taskward::run(taskward::task(|scope: Scope| async move {
        let (tx, mut rx) = mpsc::channel::<&str>(1);
        scope.spawn(async move {
            tx.send("only message").await.unwrap();
        });
        assert_eq!(rx.recv().await, Some("only message"));
        assert_eq!(rx.recv().await, None);
    }))
    .await
    .unwrap();
}
