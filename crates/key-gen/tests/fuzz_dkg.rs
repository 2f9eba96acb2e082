//! The key-generation decoders fed directly (see `primitives::testing::fuzz`), through
//! `key_gen::dkg::wire`, which parses with exactly what the rounds use: a participant's
//! round-1 commitments (`split`, then `R1::read` per curve, nothing after it), the
//! encrypted share it sent us (`R2::read` per curve) and a blame's evidence (`Evidence`,
//! then its `EncryptionKeyProof`). Seeds are the messages of an honest 2-of-3 run; the
//! network curve is secp256k1 (Bitcoin) or Ed25519 (Monero).
//!
//! None may panic or allocate from a length field, and whatever they accept must
//! re-encode to exactly the bytes read (a point or scalar with two encodings would give
//! one participant two messages for one round).
//!
//! `TC_FUZZ_ITERATIONS` sets the number of mutants per decoder; `TC_FUZZ_SEED` the seed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use key_gen::dkg::{commitments, shares, wire, Curve, Evidence, KeyGenParams, Round};
use messages::{KeyGenId, Session};
use primitives::{
    codec::encode_body,
    testing::fuzz::{self, fuzz, Outcome, TrackingAllocator},
    NetworkId,
};

#[global_allocator]
static ALLOCATOR: TrackingAllocator = TrackingAllocator;

const PARTICIPANTS: [u16; 3] = [1, 2, 3];
const THRESHOLD: u16 = 2;

fn params(network: NetworkId, me: u16) -> KeyGenParams {
    KeyGenParams {
        id: KeyGenId { session: Session(1), attempt: 0 },
        network,
        threshold: THRESHOLD,
        participants: PARTICIPANTS.to_vec(),
        me,
    }
}

fn entropy(v: u16) -> [u8; 32] {
    [v as u8; 32]
}

/// An honest run's messages: everyone's commitments, and sender -> recipient -> share.
struct Run {
    commitments: BTreeMap<u16, Vec<u8>>,
    shares: BTreeMap<u16, BTreeMap<u16, Vec<u8>>>,
}

fn run(network: NetworkId) -> Run {
    let commitments: BTreeMap<u16, Vec<u8>> = PARTICIPANTS
        .iter()
        .map(|v| (*v, commitments(&entropy(*v), &params(network, *v)).unwrap()))
        .collect();
    let others = |me: u16| -> BTreeMap<u16, Vec<u8>> {
        commitments.iter().filter(|(v, _)| **v != me).map(|(v, m)| (*v, m.clone())).collect()
    };
    let shares = PARTICIPANTS
        .iter()
        .map(|v| (*v, shares(&entropy(*v), &params(network, *v), &others(*v)).unwrap().unwrap()))
        .collect();
    Run { commitments, shares }
}

/// Feeds mutants of `seeds` to `decode`, which must accept every seed and re-encode
/// whatever it accepts to exactly the bytes it read.
fn canonical(name: &str, seeds: &[Vec<u8>], decode: impl Fn(&[u8]) -> Option<Vec<u8>>) {
    for seed in seeds {
        assert_eq!(decode(seed).as_ref(), Some(seed), "{name}: an honest message is refused");
    }
    let report = fuzz(name, seeds, fuzz::iterations(), |bytes| match decode(bytes) {
        Some(encoded) => {
            assert_eq!(encoded, bytes, "accepted a non-canonical encoding");
            Outcome::Accepted
        }
        None => Outcome::Rejected,
    });
    assert!(report.rejected > report.inputs / 2, "the mutator barely mutates");
}

fn fuzz_commitments(network: NetworkId) {
    let run = run(network);
    let me = params(network, 1);
    let seeds: Vec<Vec<u8>> = run.commitments.values().cloned().collect();
    canonical(&format!("dkg commitments ({network})"), &seeds, |bytes| {
        wire::commitments(&me, 2, bytes)
    });
}

fn fuzz_shares(network: NetworkId) {
    let run = run(network);
    let me = params(network, 3);
    let seeds: Vec<Vec<u8>> = run.shares.values().flat_map(|to| to.values().cloned()).collect();
    canonical(&format!("dkg share ({network})"), &seeds, |bytes| wire::share(&me, 2, bytes));
}

#[test]
fn bitcoin_commitments_decode_canonically_or_not_at_all() {
    fuzz_commitments(NetworkId::Bitcoin);
}

#[test]
fn monero_commitments_decode_canonically_or_not_at_all() {
    fuzz_commitments(NetworkId::Monero);
}

#[test]
fn bitcoin_shares_decode_canonically_or_not_at_all() {
    fuzz_shares(NetworkId::Bitcoin);
}

#[test]
fn monero_shares_decode_canonically_or_not_at_all() {
    fuzz_shares(NetworkId::Monero);
}

/// Evidence for a round-2 accusation on `curve` with a well-formed proof (an
/// `EncryptionKeyProof`: a point, then a DLEq proof of two scalars). An honest run cannot
/// produce one (a share is only blamed with a proof when its sender encrypted a wrong
/// scalar correctly, which the public API never does), so it is assembled from the
/// encryption key and the proof-of-knowledge scalar of a real round-1 part, which end it:
/// `commitments || R || s || encryption key`.
fn evidence_with_proof(network: NetworkId, run: &Run, curve: Curve) -> Vec<u8> {
    let pair = &run.commitments[&2];
    let ristretto_len = u32::from_le_bytes(pair[..4].try_into().unwrap()) as usize;
    let part = match curve {
        Curve::Ristretto => &pair[4..4 + ristretto_len],
        Curve::Network => &pair[4 + ristretto_len + 4..],
    };
    // 32-byte scalars; points of 32 (Ristretto, Ed25519) or 33 bytes (secp256k1).
    let secp256k1 = curve == Curve::Network && network != NetworkId::Monero;
    let point = if secp256k1 { 33 } else { 32 };
    let key = &part[part.len() - point..];
    let s = &part[part.len() - point - 32..part.len() - point];
    let proof = [key, s, s].concat();
    encode_body(&Evidence { curve, round: Round::Shares, proof: Some(proof) })
}

#[test]
fn evidence_decodes_canonically_or_not_at_all() {
    for network in [NetworkId::Bitcoin, NetworkId::Monero] {
        let run = run(network);
        let mut seeds = vec![
            evidence_with_proof(network, &run, Curve::Ristretto),
            evidence_with_proof(network, &run, Curve::Network),
        ];
        for round in [Round::Commitments, Round::Shares] {
            for curve in [Curve::Ristretto, Curve::Network] {
                seeds.push(encode_body(&Evidence { curve, round, proof: None }));
            }
        }
        canonical(&format!("dkg evidence ({network})"), &seeds, |bytes| {
            wire::evidence(network, bytes)
        });
    }
}
