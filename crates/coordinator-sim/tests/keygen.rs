//! Key generation end to end, in one process: the real simulator and its tasks, four
//! processors running the real `key_gen::KeyGen` with their own databases and mailboxes,
//! over the in-memory broker.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Harness, Spec};
use key_gen::{testing::sign_and_verify_both, Malice};
use messages::{KeyGenId, KeyGenResponse, ProcessorMessage, Session};
use primitives::NetworkId;

const MSG: &[u8] = b"coordinator-sim key generation test";

fn sign_with(h: &Harness, signers: &[u16]) {
    let keys: Vec<_> = signers.iter().map(|v| h.keys(*v)).collect();
    sign_and_verify_both(&keys, MSG);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honest_three_of_four_confirms_one_key_pair_that_signs() {
    let mut h = Harness::start(Spec::honest(NetworkId::Litecoin, 3, 4));
    h.wait_confirmed_by(&[1, 2, 3, 4]).await;
    let status = h.status();
    let set = &status.sets[0];
    assert_eq!(set.stage, "confirmed");
    assert_eq!(set.attempt, 0);
    assert_eq!(set.participants, vec![1, 2, 3, 4]);
    assert!(set.excluded.is_empty(), "{:?}", set.excluded);
    assert!(!set.failed);
    assert_eq!(set.history.len(), 1);
    assert_eq!(set.history[0].outcome, "confirmed");
    assert_eq!(status.conflicts, 0);
    let confirmed = set.confirmed.clone().unwrap();
    assert_eq!(confirmed.ristretto_key.len(), 64);
    assert_eq!(confirmed.network_key.len(), 66, "a compressed secp256k1 key");
    // Any three of the four hold a working share of both keys.
    sign_with(&h, &[1, 2, 3]);
    sign_with(&h, &[2, 3, 4]);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_share_excludes_its_sender_and_the_rest_complete() {
    let mut spec = Spec::honest(NetworkId::Litecoin, 3, 4);
    spec.malice.insert(2, Malice::InvalidShareTo(3));
    let mut h = Harness::start(spec);
    h.wait_confirmed_by(&[1, 3, 4]).await;
    let set = h.status().sets[0].clone();
    assert_eq!(set.attempt, 1);
    assert_eq!(set.participants, vec![1, 3, 4]);
    assert_eq!(set.excluded.len(), 1, "{:?}", set.excluded);
    assert_eq!(set.excluded[0].validator, 2);
    assert_eq!(set.excluded[0].attempt, 0);
    assert!(set.excluded[0].reason.contains("blamed by validator 3"), "{}", set.excluded[0].reason);
    assert_eq!(set.history[0].participants, vec![1, 2, 3, 4]);
    assert!(set.history[0].outcome.contains("culprit 2"), "{}", set.history[0].outcome);
    // The culprit holds no confirmed key.
    assert!(!h.generated(2).is_some_and(|g| g.confirmed));
    sign_with(&h, &[1, 3, 4]);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_false_accuser_is_excluded_and_the_rest_complete() {
    // Monero: the network key is on Ed25519.
    let mut spec = Spec::honest(NetworkId::Monero, 3, 4);
    spec.malice.insert(3, Malice::FalseAccuse(1));
    let mut h = Harness::start(spec);
    h.wait_confirmed_by(&[1, 2, 4]).await;
    let set = h.status().sets[0].clone();
    assert_eq!(set.attempt, 1);
    assert_eq!(set.participants, vec![1, 2, 4]);
    assert_eq!(set.excluded.len(), 1, "{:?}", set.excluded);
    assert_eq!(set.excluded[0].validator, 3);
    assert_eq!(set.excluded[0].attempt, 0);
    assert!(
        set.excluded[0].reason.contains("falsely accused validator 1"),
        "{}",
        set.excluded[0].reason
    );
    assert_eq!(set.confirmed.as_ref().unwrap().network_key.len(), 64, "an Ed25519 key");
    assert!(!h.generated(3).is_some_and(|g| g.confirmed));
    sign_with(&h, &[1, 2, 4]);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_processor_times_out_and_the_rest_complete() {
    let mut spec = Spec::honest(NetworkId::Bitcoin, 3, 4);
    spec.silent = vec![4];
    spec.timeout = Duration::from_millis(5_000);
    let mut h = Harness::start(spec);
    let set =
        h.wait_for("the others' commitments", |s| s.sets[0].waiting_for == vec![4]).await.sets[0]
            .clone();
    assert_eq!((set.attempt, set.stage.as_str()), (0, "commitments"));

    // Just short of the deadline nothing happens (the timer ticks every 10 ms).
    h.clock.advance(4_999);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let set = h.status().sets[0].clone();
    assert_eq!(set.attempt, 0);
    assert!(set.excluded.is_empty());

    h.clock.advance(1);
    h.wait_confirmed_by(&[1, 2, 3]).await;
    let set = h.status().sets[0].clone();
    assert_eq!(set.attempt, 1);
    assert_eq!(set.participants, vec![1, 2, 3]);
    assert_eq!(set.excluded.len(), 1, "{:?}", set.excluded);
    assert_eq!(set.excluded[0].validator, 4);
    assert_eq!(set.excluded[0].attempt, 0);
    assert_eq!(set.excluded[0].reason, "did not answer the commitments round within 5000 ms");
    sign_with(&h, &[1, 2, 3]);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_silent_processors_fail_the_set_loudly() {
    let mut spec = Spec::honest(NetworkId::Litecoin, 3, 4);
    spec.silent = vec![3, 4];
    spec.timeout = Duration::from_millis(1_000);
    let mut h = Harness::start(spec);
    h.wait_for("the others' commitments", |s| s.sets[0].waiting_for == vec![3, 4]).await;
    h.clock.advance(1_000);
    let set = h.wait_for("failure", |s| s.sets[0].failed).await.sets[0].clone();
    assert_eq!(set.stage, "failed");
    assert_eq!(set.attempt, 0, "no attempt with fewer than threshold participants");
    assert_eq!(set.participants, vec![1, 2]);
    assert_eq!(set.excluded.iter().map(|e| e.validator).collect::<Vec<_>>(), vec![3, 4]);
    assert!(set.failure.unwrap().contains("fewer than the threshold 3"));
    assert!(set.confirmed.is_none());
    // It stays failed: a later timeout changes nothing.
    let routes = h.sim_routes();
    h.clock.advance(10_000);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(h.status().sets[0].attempt, 0);
    assert_eq!(h.sim_routes(), routes);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflicting_second_message_is_counted_and_changes_nothing_else() {
    let mut h = Harness::start(Spec::honest(NetworkId::Litecoin, 2, 3));
    h.wait_confirmed_by(&[1, 2, 3]).await;
    let before = h.status();
    let routes = h.sim_routes();
    assert_eq!(before.conflicts, 0);

    let id = KeyGenId { session: Session(0), attempt: 0 };
    // An unknown session: ignored, not a conflict.
    let unknown = KeyGenId { session: Session(99), attempt: 0 };
    h.send_as(
        1,
        ProcessorMessage::KeyGen(KeyGenResponse::Commitments { id: unknown, commitments: vec![1] }),
    );
    // A second, different round-1 message for attempt 0.
    h.send_as(
        1,
        ProcessorMessage::KeyGen(KeyGenResponse::Commitments { id, commitments: vec![1, 2, 3] }),
    );
    // A second, different key pair (round 3) from another validator.
    h.send_as(
        2,
        ProcessorMessage::KeyGen(KeyGenResponse::GeneratedKeyPair {
            id,
            ristretto_key: [7; 32],
            network_key: vec![2; 33],
            proposed_activation: None,
            settings: None,
        }),
    );
    let after = h.wait_for("two conflicts", |s| s.conflicts == 2).await;
    // Messages from one sender are handled in order: the unknown session's came first.
    assert_eq!(after.sets, before.sets, "a conflict or unknown session changed a set");
    assert_eq!(h.sim_routes(), routes, "the simulator sent something");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(h.status().conflicts, 2);
    h.stop().await;
}
