//! The behaviour suite against a real nats-server started by the test: an open one, and a
//! secured one that requires TLS (a test CA's certificate) and a user and password, which
//! every test runs against too. A client without the credentials, or that does not trust
//! the CA, gets nothing through the secured server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use bus::{testing::NatsServer, NatsAuth, NatsTransport, Transport};
use common::*;

fn server(secured: bool) -> NatsServer {
    if secured {
        NatsServer::start_secured()
    } else {
        NatsServer::start()
    }
}

async fn transport(server: &NatsServer) -> NatsTransport {
    let mut config = server.nats_config("test");
    config.ack_wait = Duration::from_secs(2);
    NatsTransport::connect(config).await.unwrap()
}

/// Each case, on an open and on a secured server.
macro_rules! both {
    ($($name:ident => $case:expr;)*) => {
        mod open {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    ($case)(false).await;
                }
            )*
        }
        mod secured {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    ($case)(true).await;
                }
            )*
        }
    };
}

both! {
    publish_dedup => |secured| async move {
        let server = server(secured);
        publish_dedup_by_intent(transport(&server).await).await;
    };
    redelivery_after_consumer_restart => |secured| async move {
        let server = server(secured);
        unacked_is_redelivered_after_restart(transport(&server).await).await;
    };
    acks_follow_commits => |secured| async move {
        let server = server(secured);
        ack_only_after_commit(transport(&server).await).await;
    };
    rejected_envelopes => |secured| async move {
        let server = server(secured);
        rejected_envelopes_change_nothing(transport(&server).await).await;
    };
    exactly_once_through_graceful_broker_restart => |secured| through_restart(secured, false);
    exactly_once_through_broker_sigkill => |secured| through_restart(secured, true);
}

async fn through_restart(secured: bool, kill: bool) {
    let server = server(secured);
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

/// Whether a publish through `config` reaches the broker within a few seconds.
async fn publishes(config: bus::NatsConfig) -> bool {
    let Ok(t) = NatsTransport::connect(config).await else { return false };
    let publish = t.publish(C, [7; 32], b"let me in".to_vec());
    matches!(tokio::time::timeout(Duration::from_secs(5), publish).await, Ok(Ok(())))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secured_server_lets_in_only_clients_with_its_credentials_over_tls() {
    let server = NatsServer::start_secured();
    assert!(publishes(server.nats_config("gate")).await, "the right credentials over TLS");
    // A wrong password.
    let mut wrong = server.nats_config("gate");
    wrong.auth = NatsAuth::UserPassword {
        user: "tc".into(),
        password: zeroize::Zeroizing::new("not-the-password".into()),
    };
    assert!(!publishes(wrong).await, "a wrong password got in");
    // No credentials.
    let mut anonymous = server.nats_config("gate");
    anonymous.auth = NatsAuth::None;
    assert!(!publishes(anonymous).await, "a client without credentials got in");
    // The right password, but the server's certificate not trusted (no test CA).
    let mut untrusting = server.nats_config("gate");
    untrusting.tls = Some(bus::NatsTls::default());
    assert!(!publishes(untrusting).await, "a client not trusting the CA got in");
}

/// The client itself requires TLS: configured for it, it does not talk (nor send its
/// password) to a broker that offers none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_configured_for_tls_refuses_a_broker_without_it() {
    let secured = NatsServer::start_secured();
    let open = NatsServer::start();
    let mut config = secured.nats_config("gate");
    config.url = open.url();
    assert!(!publishes(config).await, "a TLS client talked to a broker without TLS");
    assert!(publishes(open.nats_config("gate")).await, "the open broker works");
}
