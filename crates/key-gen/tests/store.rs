//! The processor-side state machine over real redb databases: a full session relayed
//! in-process, restart in the middle, sealing at rest, confirmation rules.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{collections::BTreeMap, sync::Arc};

use ciphersuite::group::ff::PrimeField;
use db::{Db, Schema};
use key_gen::{
    store::Generated, testing::sign_and_verify_both, KeyGen, KeyGenError, Malice, SealError, Sealer,
};
use messages::{KeyGenId, KeyGenRequest, KeyGenResponse, Session};
use primitives::NetworkId;

const SCHEMA: Schema = Schema { app: "key-gen-test", version: 1 };
const SECRET: &[u8] = b"correct horse battery staple";
const ID: KeyGenId = KeyGenId { session: Session(5), attempt: 0 };

struct Node {
    v: u16,
    db: Db,
    keygen: KeyGen,
    path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

fn node(v: u16, network: NetworkId) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let db = Db::open(&path, SCHEMA).unwrap();
    let sealer = Arc::new(Sealer::unlock(&db, SECRET).unwrap());
    let keygen = KeyGen::open(&db, sealer, network, v, Malice::None).unwrap();
    Node { v, db, keygen, path, _dir: dir }
}

fn handle(n: &Node, request: &KeyGenRequest) -> Result<Option<KeyGenResponse>, KeyGenError> {
    let mut txn = n.db.write().unwrap();
    let out = n.keygen.handle(&mut txn, request)?;
    txn.commit().unwrap();
    Ok(out)
}

fn generate(network: NetworkId, ps: &[u16], me: u16) -> KeyGenRequest {
    KeyGenRequest::GenerateKey { id: ID, network, threshold: 3, participants: ps.to_vec(), me }
}

/// Relays one session among `nodes` like the coordinator; returns the confirmed pair.
fn relay(nodes: &[Node], network: NetworkId) -> ([u8; 32], Vec<u8>) {
    let ps: Vec<u16> = nodes.iter().map(|n| n.v).collect();
    let mut r1 = BTreeMap::new();
    for n in nodes {
        match handle(n, &generate(network, &ps, n.v)).unwrap() {
            Some(KeyGenResponse::Commitments { commitments, .. }) => r1.insert(n.v, commitments),
            other => panic!("{other:?}"),
        };
    }
    let mut r2 = BTreeMap::new();
    for n in nodes {
        let others = r1.iter().filter(|(v, _)| **v != n.v).map(|(v, c)| (*v, c.clone())).collect();
        match handle(n, &KeyGenRequest::Commitments { id: ID, commitments: others }).unwrap() {
            Some(KeyGenResponse::Shares { shares, .. }) => r2.insert(n.v, shares),
            other => panic!("{other:?}"),
        };
    }
    let mut pairs = vec![];
    for n in nodes {
        let mine: BTreeMap<u16, Vec<u8>> =
            r2.iter().filter(|(s, _)| **s != n.v).map(|(s, m)| (*s, m[&n.v].clone())).collect();
        match handle(n, &KeyGenRequest::Shares { id: ID, shares: mine }).unwrap() {
            Some(KeyGenResponse::GeneratedKeyPair { ristretto_key, network_key, .. }) => {
                pairs.push((ristretto_key, network_key))
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(pairs.windows(2).all(|w| w[0] == w[1]), "participants disagree");
    pairs.remove(0)
}

fn generated(n: &Node) -> Generated {
    KeyGen::generated(&n.db.read().unwrap(), ID.session).unwrap().unwrap()
}

#[test]
fn a_relayed_session_confirms_and_signs() {
    let nodes: Vec<Node> = (1..=4).map(|v| node(v, NetworkId::Litecoin)).collect();
    let (rk, nk) = relay(&nodes, NetworkId::Litecoin);
    for n in &nodes {
        assert!(!generated(n).confirmed, "active before confirmation");
        let mut txn = n.db.write().unwrap();
        assert!(n.keygen.confirm(&mut txn, ID.session, rk, &nk).unwrap());
        assert!(!n.keygen.confirm(&mut txn, ID.session, rk, &nk).unwrap(), "confirmed twice");
        txn.commit().unwrap();
        assert!(generated(n).confirmed);
    }
    let keys: Vec<_> = nodes[1..]
        .iter()
        .map(|n| n.keygen.keys(&n.db.read().unwrap(), ID.session).unwrap().unwrap())
        .collect();
    sign_and_verify_both(&keys, b"three of four, from sealed storage");
}

#[test]
fn confirming_other_keys_is_refused_and_changes_nothing() {
    let nodes: Vec<Node> = (1..=4).map(|v| node(v, NetworkId::Bitcoin)).collect();
    let (rk, nk) = relay(&nodes, NetworkId::Bitcoin);
    let mut txn = nodes[0].db.write().unwrap();
    let mut wrong = rk;
    wrong[0] ^= 1;
    assert!(matches!(
        nodes[0].keygen.confirm(&mut txn, ID.session, wrong, &nk),
        Err(KeyGenError::ConfirmedUnknownKeys(5))
    ));
    assert!(matches!(
        nodes[0].keygen.confirm(&mut txn, Session(6), rk, &nk),
        Err(KeyGenError::ConfirmedUnknownKeys(6))
    ));
    txn.commit().unwrap();
    assert!(!generated(&nodes[0]).confirmed);
}

#[test]
fn a_restarted_participant_resumes_with_identical_messages_and_answers_each_round_once() {
    let ps = [1, 2, 3, 4];
    let a = node(2, NetworkId::Monero);
    let first = handle(&a, &generate(NetworkId::Monero, &ps, 2)).unwrap().unwrap();
    // The same request again: already answered, nothing new to send.
    assert!(handle(&a, &generate(NetworkId::Monero, &ps, 2)).unwrap().is_none());
    // "Restart": a new KeyGen over the same database and secret.
    let sealer = Arc::new(Sealer::unlock(&a.db, SECRET).unwrap());
    let restarted = KeyGen::open(&a.db, sealer, NetworkId::Monero, 2, Malice::None).unwrap();
    let mut txn = a.db.write().unwrap();
    assert!(restarted.handle(&mut txn, &generate(NetworkId::Monero, &ps, 2)).unwrap().is_none());
    drop(txn);
    // A fresh database with the same entropy would produce the same bytes: determinism is
    // what lets the restarted one continue. Run the rest of the session with it.
    let mut nodes: Vec<Node> = [1, 3, 4].iter().map(|v| node(*v, NetworkId::Monero)).collect();
    let KeyGenResponse::Commitments { commitments: c2, .. } = first else { panic!() };
    let mut r1 = BTreeMap::from([(2u16, c2)]);
    for n in &nodes {
        let Some(KeyGenResponse::Commitments { commitments, .. }) =
            handle(n, &generate(NetworkId::Monero, &ps, n.v)).unwrap()
        else {
            panic!()
        };
        r1.insert(n.v, commitments);
    }
    nodes.insert(1, Node { keygen: restarted, ..a });
    let mut r2 = BTreeMap::new();
    for n in &nodes {
        let others = r1.iter().filter(|(v, _)| **v != n.v).map(|(v, c)| (*v, c.clone())).collect();
        let req = KeyGenRequest::Commitments { id: ID, commitments: others };
        let Some(KeyGenResponse::Shares { shares, .. }) = handle(n, &req).unwrap() else {
            panic!()
        };
        assert!(handle(n, &req).unwrap().is_none(), "round 2 answered twice");
        r2.insert(n.v, shares);
    }
    let mut keys = vec![];
    for n in &nodes {
        let mine =
            r2.iter().filter(|(s, _)| **s != n.v).map(|(s, m)| (*s, m[&n.v].clone())).collect();
        let Some(KeyGenResponse::GeneratedKeyPair { ristretto_key, .. }) =
            handle(n, &KeyGenRequest::Shares { id: ID, shares: mine }).unwrap()
        else {
            panic!()
        };
        keys.push(ristretto_key);
    }
    assert!(keys.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn stale_conflicting_and_foreign_requests_change_nothing() {
    let n = node(1, NetworkId::Bitcoin);
    let ps = vec![1, 2, 3];
    let mut later = generate(NetworkId::Bitcoin, &ps, 1);
    if let KeyGenRequest::GenerateKey { id, .. } = &mut later {
        id.attempt = 2;
    }
    handle(&n, &later).unwrap().unwrap();
    let before = n.db.read().unwrap();
    let snapshot = db::Get::range_raw(&before, b"").unwrap();
    drop(before);
    // An older attempt.
    assert!(matches!(
        handle(&n, &generate(NetworkId::Bitcoin, &ps, 1)),
        Err(KeyGenError::NotCurrent { .. })
    ));
    // The same attempt with other parameters.
    let KeyGenRequest::GenerateKey { id, .. } = later else { unreachable!() };
    let conflicting = KeyGenRequest::GenerateKey {
        id,
        network: NetworkId::Bitcoin,
        threshold: 4,
        participants: vec![1, 2, 3, 4],
        me: 1,
    };
    assert!(matches!(handle(&n, &conflicting), Err(KeyGenError::InvalidParams(_))));
    // Another network, another validator, round 2 for an attempt not running.
    assert!(handle(&n, &generate(NetworkId::Monero, &ps, 1)).is_err());
    assert!(handle(&n, &generate(NetworkId::Bitcoin, &ps, 2)).is_err());
    assert!(matches!(
        handle(&n, &KeyGenRequest::Commitments { id: ID, commitments: BTreeMap::new() }),
        Err(KeyGenError::NotCurrent { .. })
    ));
    // Round 2 with the wrong set of participants.
    assert!(handle(
        &n,
        &KeyGenRequest::Commitments { id, commitments: BTreeMap::from([(2, vec![1])]) }
    )
    .is_err());
    assert_eq!(db::Get::range_raw(&n.db.read().unwrap(), b"").unwrap(), snapshot);
}

#[test]
fn wrong_secret_is_refused_and_the_file_holds_no_secret_bytes() {
    let nodes: Vec<Node> = (1..=4).map(|v| node(v, NetworkId::Bitcoin)).collect();
    relay(&nodes, NetworkId::Bitcoin);
    let n = &nodes[0];
    let keys = n.keygen.keys(&n.db.read().unwrap(), ID.session).unwrap().unwrap();
    assert!(matches!(Sealer::unlock(&n.db, b"not the secret at all"), Err(SealError::WrongSecret)));

    let file = std::fs::read(&n.path).unwrap();
    let contains = |needle: &[u8]| file.windows(needle.len()).any(|w| w == needle);
    let ristretto_share = keys.ristretto.original_secret_share().to_repr();
    assert!(!contains(ristretto_share.as_ref()), "the Ristretto share is in the file in plaintext");
    let key_gen::NetworkKeys::Secp256k1(network) = &keys.network else { panic!() };
    let network_share = network.original_secret_share().to_repr();
    assert!(!contains(network_share.as_ref()), "the secp256k1 share is in the file in plaintext");
    // The public keys are there (sanity: the search works).
    assert!(contains(&keys.ristretto_key()));
}

#[test]
fn a_later_attempt_supersedes_unconfirmed_keys_but_never_confirmed_ones() {
    let nodes: Vec<Node> = (1..=4).map(|v| node(v, NetworkId::Bitcoin)).collect();
    let (rk, nk) = relay(&nodes, NetworkId::Bitcoin);
    let retry = |n: &Node, attempt| KeyGenRequest::GenerateKey {
        id: KeyGenId { session: ID.session, attempt },
        network: NetworkId::Bitcoin,
        threshold: 2,
        participants: vec![1, 3, 4],
        me: n.v,
    };
    // Unconfirmed keys of attempt 0 give way to attempt 1 (someone was excluded).
    assert!(matches!(
        handle(&nodes[0], &retry(&nodes[0], 1)).unwrap(),
        Some(KeyGenResponse::Commitments { .. })
    ));
    assert!(KeyGen::generated(&nodes[0].db.read().unwrap(), ID.session).unwrap().is_none());
    // The superseded pair can no longer be confirmed.
    let mut txn = nodes[0].db.write().unwrap();
    assert!(nodes[0].keygen.confirm(&mut txn, ID.session, rk, &nk).is_err());
    drop(txn);
    // Confirmed keys are final: a later attempt is ignored.
    let mut txn = nodes[2].db.write().unwrap();
    nodes[2].keygen.confirm(&mut txn, ID.session, rk, &nk).unwrap();
    txn.commit().unwrap();
    assert!(handle(&nodes[2], &retry(&nodes[2], 1)).unwrap().is_none());
    assert!(generated(&nodes[2]).confirmed);
}

/// Parameters the operator does not allow are refused before anything is written: a
/// threshold of 1 (one key holder could sign alone), or one that is not more than half of
/// the participants (by default); a policy of 40% lets 2-of-4 through.
#[test]
fn thresholds_below_the_operators_policy_are_refused() {
    let n = node(1, NetworkId::Bitcoin);
    let snapshot = db::Get::range_raw(&n.db.read().unwrap(), b"").unwrap();
    let request = |threshold: u16, participants: &[u16]| KeyGenRequest::GenerateKey {
        id: ID,
        network: NetworkId::Bitcoin,
        threshold,
        participants: participants.to_vec(),
        me: 1,
    };
    for (t, ps) in [
        (1, &[1, 2, 3][..]),
        (1, &[1][..]),
        (2, &[1, 2, 3, 4][..]),
        (3, &[1, 2, 3, 4, 5, 6, 7][..]),
    ] {
        let refused = handle(&n, &request(t, ps));
        assert!(
            matches!(refused, Err(KeyGenError::Refused(_))),
            "{t}-of-{}: {refused:?}",
            ps.len()
        );
    }
    assert_eq!(
        db::Get::range_raw(&n.db.read().unwrap(), b"").unwrap(),
        snapshot,
        "a refusal wrote"
    );

    // An operator requiring more than 40%: 2-of-4 goes ahead; 1-of-2 still does not.
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("db.redb"), SCHEMA).unwrap();
    let sealer = Arc::new(Sealer::unlock(&db, SECRET).unwrap());
    let policy = key_gen::KeyGenPolicy { min_threshold: 2, min_threshold_percent: 40 };
    let keygen =
        KeyGen::open(&db, sealer, NetworkId::Bitcoin, 1, Malice::None).unwrap().with_policy(policy);
    let mut txn = db.write().unwrap();
    assert!(matches!(keygen.handle(&mut txn, &request(1, &[1, 2])), Err(KeyGenError::Refused(_))));
    assert!(matches!(
        keygen.handle(&mut txn, &request(2, &[1, 2, 3, 4])),
        Ok(Some(KeyGenResponse::Commitments { .. }))
    ));
}
