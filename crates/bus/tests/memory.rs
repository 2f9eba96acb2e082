//! The behaviour suite on the in-memory transport, plus its injected faults.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use bus::{Faults, MemoryTransport};
use common::*;

fn transport() -> MemoryTransport {
    MemoryTransport::new(7, Duration::from_secs(2))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_dedup() {
    publish_dedup_by_intent(transport()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivery_after_consumer_restart() {
    unacked_is_redelivered_after_restart(transport()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_follow_commits() {
    ack_only_after_commit(transport()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_envelopes() {
    rejected_envelopes_change_nothing(transport()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_through_broker_crash() {
    let t = transport();
    let crash = t.clone();
    exactly_once_end_to_end(t, 200, || async move {
        tokio::time::sleep(Duration::from_millis(30)).await;
        crash.crash();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_through_drop_duplicate_reorder_delay() {
    for seed in 0..3 {
        let t = MemoryTransport::new(seed, Duration::from_secs(1));
        t.set_faults(Faults {
            drop: 0.2,
            duplicate: 0.2,
            reorder: 0.3,
            max_delay: Duration::from_millis(30),
        });
        let crash = t.clone();
        exactly_once_end_to_end(t, 150, || async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            crash.crash();
        })
        .await;
    }
}
