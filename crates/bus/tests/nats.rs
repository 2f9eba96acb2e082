//! The behaviour suite against a real nats-server started by the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use bus::{testing::NatsServer, NatsConfig, NatsTransport};
use common::*;

async fn transport(server: &NatsServer) -> NatsTransport {
    let mut config = NatsConfig::new(server.url(), "test");
    config.ack_wait = Duration::from_secs(2);
    NatsTransport::connect(config).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_dedup() {
    let server = NatsServer::start();
    publish_dedup_by_intent(transport(&server).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivery_after_consumer_restart() {
    let server = NatsServer::start();
    unacked_is_redelivered_after_restart(transport(&server).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_follow_commits() {
    let server = NatsServer::start();
    ack_only_after_commit(transport(&server).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_envelopes() {
    let server = NatsServer::start();
    rejected_envelopes_change_nothing(transport(&server).await).await;
}

async fn through_restart(kill: bool) {
    let server = NatsServer::start();
    let t = transport(&server).await;
    let server = std::sync::Arc::new(std::sync::Mutex::new(server));
    let handle = server.clone();
    exactly_once_end_to_end(t, 200, move || async move {
        tokio::time::sleep(Duration::from_millis(30)).await;
        tokio::task::spawn_blocking(move || handle.lock().unwrap().restart(kill)).await.unwrap();
    })
    .await;
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_through_graceful_broker_restart() {
    through_restart(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_through_broker_sigkill() {
    through_restart(true).await;
}
