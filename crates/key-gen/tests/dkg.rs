//! The DKG rounds with every message going through bytes: agreement, usable keys,
//! determinism, and blame (true and false accusations) in both rounds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use key_gen::{
    dkg::{
        commitments, complete, judge, shares, shares_and_machines, Curve, Evidence, Fault,
        KeyGenParams, Round,
    },
    testing::sign_and_verify_both,
    GeneratedKeys,
};
use messages::{KeyGenId, Session};
use primitives::{codec::encode_body, NetworkId};

fn params(network: NetworkId, participants: &[u16], me: u16, t: u16) -> KeyGenParams {
    KeyGenParams {
        id: KeyGenId { session: Session(1), attempt: 0 },
        network,
        threshold: t,
        participants: participants.to_vec(),
        me,
    }
}

fn entropy(v: u16) -> [u8; 32] {
    let mut e = [0u8; 32];
    e[..2].copy_from_slice(&v.to_le_bytes());
    e[31] = 0xaa;
    e
}

/// Everyone's round-1 messages.
fn round1(network: NetworkId, ps: &[u16], t: u16) -> BTreeMap<u16, Vec<u8>> {
    ps.iter()
        .map(|v| (*v, commitments(&entropy(*v), &params(network, ps, *v, t)).unwrap()))
        .collect()
}

fn others(all: &BTreeMap<u16, Vec<u8>>, me: u16) -> BTreeMap<u16, Vec<u8>> {
    all.iter().filter(|(v, _)| **v != me).map(|(v, m)| (*v, m.clone())).collect()
}

/// Round 2 for everyone: sender -> (recipient -> share).
fn round2(
    network: NetworkId,
    ps: &[u16],
    t: u16,
    r1: &BTreeMap<u16, Vec<u8>>,
) -> BTreeMap<u16, BTreeMap<u16, Vec<u8>>> {
    ps.iter()
        .map(|v| {
            (
                *v,
                shares(&entropy(*v), &params(network, ps, *v, t), &others(r1, *v))
                    .unwrap()
                    .unwrap(),
            )
        })
        .collect()
}

fn inbound(r2: &BTreeMap<u16, BTreeMap<u16, Vec<u8>>>, me: u16) -> BTreeMap<u16, Vec<u8>> {
    r2.iter().filter(|(s, _)| **s != me).map(|(s, m)| (*s, m[&me].clone())).collect()
}

fn run(network: NetworkId, ps: &[u16], t: u16) -> BTreeMap<u16, GeneratedKeys> {
    let r1 = round1(network, ps, t);
    let r2 = round2(network, ps, t, &r1);
    ps.iter()
        .map(|v| {
            let keys = complete(
                &entropy(*v),
                &params(network, ps, *v, t),
                &others(&r1, *v),
                &inbound(&r2, *v),
                None,
            );
            (*v, keys.unwrap().unwrap())
        })
        .collect()
}

#[test]
fn three_of_four_agree_and_any_three_sign_for_every_curve() {
    for network in [NetworkId::Bitcoin, NetworkId::Monero] {
        let keys = run(network, &[1, 2, 3, 4], 3);
        let first = &keys[&1];
        for k in keys.values() {
            assert_eq!(k.ristretto_key(), first.ristretto_key());
            assert_eq!(k.network_key(), first.network_key());
        }
        assert_eq!(first.network_key().len(), if network == NetworkId::Monero { 32 } else { 33 });
        for signers in [[1u16, 2, 3], [2, 3, 4], [1, 3, 4]] {
            let set: Vec<_> = signers.iter().map(|v| keys[v].clone()).collect();
            sign_and_verify_both(&set, b"any three of four");
        }
    }
}

#[test]
fn non_contiguous_validator_indices_work() {
    // After an exclusion, the participants are e.g. {1, 3, 4}: DKG indices are 1..=3.
    let keys = run(NetworkId::Litecoin, &[1, 3, 4], 2);
    sign_and_verify_both(&[keys[&4].clone(), keys[&1].clone()], b"two of three");
}

#[test]
fn rounds_are_deterministic_so_a_restart_resends_identical_bytes() {
    let ps = [1, 2, 3, 4];
    let a = round1(NetworkId::Bitcoin, &ps, 3);
    let b = round1(NetworkId::Bitcoin, &ps, 3);
    assert_eq!(a, b);
    assert_eq!(round2(NetworkId::Bitcoin, &ps, 3, &a), round2(NetworkId::Bitcoin, &ps, 3, &b));
    // A new attempt is a new context: nothing is reused across attempts.
    let mut p = params(NetworkId::Bitcoin, &ps, 1, 3);
    p.id.attempt = 1;
    assert_ne!(commitments(&entropy(1), &p).unwrap(), a[&1]);
}

#[test]
fn invalid_share_is_blamed_on_its_sender_and_the_evidence_convinces_a_third_party() {
    let ps = [1, 2, 3, 4];
    let r1 = round1(NetworkId::Bitcoin, &ps, 3);
    let mut r2 = round2(NetworkId::Bitcoin, &ps, 3, &r1);
    // 2 sends 3 a share whose network part is altered.
    let share = r2.get_mut(&2).unwrap().get_mut(&3).unwrap();
    let n = share.len();
    share[n - 1] ^= 1;
    let fault = complete(
        &entropy(3),
        &params(NetworkId::Bitcoin, &ps, 3, 3),
        &others(&r1, 3),
        &inbound(&r2, 3),
        None,
    )
    .unwrap()
    .unwrap_err();
    assert_eq!(fault.accused, 2);
    assert_eq!(fault.evidence.round, Round::Shares);
    let evidence = encode_body(&fault.evidence);
    let judged =
        judge(&params(NetworkId::Bitcoin, &ps, 3, 3), &r1, 3, 2, &evidence, Some(&r2[&2][&3]))
            .unwrap();
    assert_eq!(judged, 2);
    // The others are unaffected.
    assert!(complete(
        &entropy(4),
        &params(NetworkId::Bitcoin, &ps, 4, 3),
        &others(&r1, 4),
        &inbound(&r2, 4),
        None,
    )
    .unwrap()
    .is_ok());
}

#[test]
fn false_accusations_are_blamed_on_the_accuser() {
    let ps = [1, 2, 3, 4];
    let r1 = round1(NetworkId::Monero, &ps, 3);
    let r2 = round2(NetworkId::Monero, &ps, 3, &r1);
    let p = params(NetworkId::Monero, &ps, 3, 3);
    // No proof at all.
    let bare =
        encode_body(&Evidence { curve: Curve::Ristretto, round: Round::Shares, proof: None });
    assert_eq!(judge(&p, &r1, 3, 1, &bare, Some(&r2[&1][&3])).unwrap(), 3);
    // A garbage proof, on the network curve.
    let junk = encode_body(&Evidence {
        curve: Curve::Network,
        round: Round::Shares,
        proof: Some(vec![7; 96]),
    });
    assert_eq!(judge(&p, &r1, 3, 1, &junk, Some(&r2[&1][&3])).unwrap(), 3);
    // Claiming valid commitments are invalid.
    let r1_claim =
        encode_body(&Evidence { curve: Curve::Network, round: Round::Commitments, proof: None });
    assert_eq!(judge(&p, &r1, 3, 1, &r1_claim, None).unwrap(), 3);
    // Undecodable evidence, self-accusation, accusing a non-participant.
    assert_eq!(judge(&p, &r1, 3, 1, b"\xff", None).unwrap(), 3);
    assert_eq!(judge(&p, &r1, 3, 3, &bare, None).unwrap(), 3);
    assert_eq!(judge(&p, &r1, 3, 9, &bare, None).unwrap(), 3);
}

#[test]
fn invalid_commitments_are_blamed_in_round_one() {
    let ps = [1, 2, 3, 4];
    let mut r1 = round1(NetworkId::Litecoin, &ps, 3);
    // Alter 2's Ristretto proof of knowledge (inside its commitments message).
    let pair = r1.get_mut(&2).unwrap();
    pair[4 + 3 * 32 + 40] ^= 1;
    let Fault { accused, evidence } =
        shares(&entropy(1), &params(NetworkId::Litecoin, &ps, 1, 3), &others(&r1, 1))
            .unwrap()
            .unwrap_err();
    assert_eq!(accused, 2);
    assert_eq!(evidence.round, Round::Commitments);
    let p = params(NetworkId::Litecoin, &ps, 1, 3);
    assert_eq!(judge(&p, &r1, 1, 2, &encode_body(&evidence), None).unwrap(), 2);
    // Truncated commitments are blamed on their sender too.
    r1.get_mut(&4).unwrap().truncate(10);
    let fault = shares(&entropy(1), &p, &others(&r1, 1)).unwrap().unwrap_err();
    assert!(fault.accused == 2 || fault.accused == 4);
}

#[test]
fn malformed_requests_are_typed_errors() {
    let bad = [
        params(NetworkId::Bitcoin, &[1, 2, 3], 4, 2),
        params(NetworkId::Bitcoin, &[1, 2, 3], 1, 0),
        params(NetworkId::Bitcoin, &[1, 2, 3], 1, 4),
        params(NetworkId::Bitcoin, &[2, 1, 3], 1, 2),
        params(NetworkId::Bitcoin, &[0, 1], 1, 1),
        params(NetworkId::Bitcoin, &[], 1, 1),
    ];
    for p in bad {
        assert!(
            matches!(commitments(&entropy(1), &p), Err(key_gen::KeyGenError::InvalidParams(_))),
            "{p:?}"
        );
    }
    // Messages from the wrong set of participants.
    let ps = [1, 2, 3];
    let r1 = round1(NetworkId::Bitcoin, &ps, 2);
    let p = params(NetworkId::Bitcoin, &ps, 1, 2);
    assert!(shares(&entropy(1), &p, &r1).is_err(), "included our own commitments");
    let mut missing = others(&r1, 1);
    missing.remove(&2);
    assert!(shares(&entropy(1), &p, &missing).is_err());
}

#[test]
fn an_accuser_with_invalid_commitments_is_itself_the_culprit() {
    let ps = [1, 2, 3, 4];
    let mut r1 = round1(NetworkId::Bitcoin, &ps, 3);
    let r2 = round2(NetworkId::Bitcoin, &ps, 3, &r1);
    // 3's own proof of knowledge is invalid, and 3 accuses 1 of a bad share: the judge
    // must find 3's fault before it reasons about 1's share with 3's commitments.
    r1.get_mut(&3).unwrap()[4 + 3 * 32 + 40] ^= 1;
    let p = params(NetworkId::Bitcoin, &ps, 3, 3);
    let evidence =
        encode_body(&Evidence { curve: Curve::Ristretto, round: Round::Shares, proof: None });
    assert_eq!(judge(&p, &r1, 3, 1, &evidence, Some(&r2[&1][&3])).unwrap(), 3);
}

#[test]
fn round_two_state_kept_in_memory_gives_the_same_keys_as_recomputing_it() {
    let ps = [1, 2, 3];
    let r1 = round1(NetworkId::Monero, &ps, 2);
    let r2 = round2(NetworkId::Monero, &ps, 2, &r1);
    let p = params(NetworkId::Monero, &ps, 2, 2);
    let (shares_again, machines) =
        shares_and_machines(&entropy(2), &p, &others(&r1, 2)).unwrap().unwrap();
    assert_eq!(shares_again, r2[&2]);
    let kept = complete(&entropy(2), &p, &others(&r1, 2), &inbound(&r2, 2), Some(machines))
        .unwrap()
        .unwrap();
    let recomputed =
        complete(&entropy(2), &p, &others(&r1, 2), &inbound(&r2, 2), None).unwrap().unwrap();
    assert_eq!(kept.serialize(), recomputed.serialize());
}

/// Every holder's verification share of `keys`, encoded, by DKG index.
fn holders_view(keys: &GeneratedKeys, n: u16) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    use ciphersuite::group::GroupEncoding;
    let index = |i| modular_frost::Participant::new(i).unwrap();
    let ristretto = (1..=n)
        .map(|i| keys.ristretto.original_verification_share(index(i)).to_bytes().to_vec())
        .collect();
    let network = (1..=n)
        .map(|i| match &keys.network {
            key_gen::NetworkKeys::Secp256k1(k) => {
                k.original_verification_share(index(i)).to_bytes().to_vec()
            }
            key_gen::NetworkKeys::Ed25519(k) => {
                k.original_verification_share(index(i)).to_bytes().to_vec()
            }
        })
        .collect();
    (ristretto, network)
}

#[test]
fn verification_shares_from_the_public_round_one_match_what_the_holders_derive() {
    for network in [NetworkId::Litecoin, NetworkId::Monero] {
        let ps = [2u16, 3, 5, 7];
        let r1 = round1(network, &ps, 3);
        let keys = run(network, &ps, 3);
        // Any participant's view of the parameters computes the same.
        let public = key_gen::dkg::verification_shares(&params(network, &ps, 5, 3), &r1).unwrap();
        assert_eq!(public.threshold, 3);
        for held in keys.values() {
            assert_eq!(holders_view(held, 4), (public.ristretto.clone(), public.network.clone()));
        }
        // One message short, or one that does not decode, computes nothing.
        let mut short = r1.clone();
        short.remove(&7);
        assert!(key_gen::dkg::verification_shares(&params(network, &ps, 5, 3), &short).is_err());
        let mut broken = r1.clone();
        broken.get_mut(&3).unwrap().truncate(40);
        assert!(key_gen::dkg::verification_shares(&params(network, &ps, 5, 3), &broken).is_err());
    }
}
