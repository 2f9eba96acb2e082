//! The signing rounds' decoder fed directly (see `primitives::testing::fuzz`):
//! `machine::parse_messages` (the rounds' `parse_all`) with the closures the Batch
//! machine's rounds pass it, on another signer's preprocess (`read_preprocess`) and
//! signature share (`read_share`); and `batch::verify`, which reads a Batch signature and
//! the key it is checked under as a processor reports them (the coordinator's side). Seeds
//! are the messages and signatures of honest 2-of-3 Batch signings.
//!
//! None may panic or allocate from a length field; whatever the rounds accept must
//! re-encode to exactly the bytes read (a preprocess with two encodings would let one
//! signer's message be relayed in two forms), and `verify` must accept exactly the
//! signatures made.
//!
//! `TC_FUZZ_ITERATIONS` sets the number of mutants per decoder; `TC_FUZZ_SEED` the seed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;

use modular_frost::{
    curve::Ristretto,
    sign::{
        AlgorithmMachine, AlgorithmSignMachine, AlgorithmSignatureMachine, PreprocessMachine,
        SignMachine, SignatureMachine, Writable,
    },
    Participant, ThresholdKeys,
};
use primitives::testing::fuzz::{self, fuzz, Outcome, TrackingAllocator};
use rand_core::OsRng;
use signers::{batch, batch::BatchAlgorithm, machine::parse_messages};

#[global_allocator]
static ALLOCATOR: TrackingAllocator = TrackingAllocator;

type SignM = AlgorithmSignMachine<Ristretto, BatchAlgorithm>;
type SignatureM = AlgorithmSignatureMachine<Ristretto, BatchAlgorithm>;

fn the_batch() -> primitives::Batch {
    common::batch(7)
}

/// Signer `keys`' machine after its preprocess, and the preprocess.
fn preprocess(keys: &ThresholdKeys<Ristretto>) -> (SignM, Vec<u8>) {
    let (machine, preprocess) =
        AlgorithmMachine::new(batch::algorithm(&the_batch()), keys.clone()).preprocess(&mut OsRng);
    (machine, preprocess.serialize())
}

/// One honest round between signers 1 and 2: 1's machine after signing, and 2's share.
fn signed(keys: &[ThresholdKeys<Ristretto>]) -> (SignatureM, Vec<u8>) {
    let (m1, p1) = preprocess(&keys[0]);
    let (m2, p2) = preprocess(&keys[1]);
    let message = batch::message(&the_batch());
    let read = |m: &SignM, i: u16, p: &[u8]| {
        HashMap::from([(Participant::new(i).unwrap(), m.read_preprocess(&mut &*p).unwrap())])
    };
    let (from2, from1) = (read(&m1, 2, &p2), read(&m2, 1, &p1));
    let (s1, _) = m1.sign(from2, &message).unwrap();
    let (_, share2) = m2.sign(from1, &message).unwrap();
    (s1, share2.serialize())
}

/// A signature of the Batch by signers 1 and 2.
fn signature(keys: &[ThresholdKeys<Ristretto>]) -> [u8; 64] {
    let (machine, share) = signed(keys);
    let share = machine.read_share(&mut share.as_slice()).unwrap();
    let signature =
        machine.complete(HashMap::from([(Participant::new(2).unwrap(), share)])).unwrap();
    batch::signature_bytes(&signature)
}

/// Feeds mutants of `seeds`, as signer 2's message, to `parse_messages` with `read`.
fn canonical<T: Writable>(
    name: &str,
    seeds: &[Vec<u8>],
    read: impl Fn(&mut &[u8]) -> std::io::Result<T>,
) {
    let parse = |bytes: &[u8]| parse_messages(HashMap::from([(2, bytes.to_vec())]), &read);
    for seed in seeds {
        assert!(parse(seed).is_ok(), "{name}: an honest message is refused");
    }
    let report = fuzz(name, seeds, fuzz::iterations(), |bytes| match parse(bytes) {
        Ok(parsed) => {
            let parsed = &parsed[&Participant::new(2).unwrap()];
            assert_eq!(parsed.serialize(), bytes, "accepted a non-canonical encoding");
            Outcome::Accepted
        }
        Err(failure) => {
            assert_eq!(failure, signers::SignFailure::Blame(2), "the sender is blamed");
            Outcome::Rejected
        }
    });
    assert!(report.rejected > report.inputs / 2, "the mutator barely mutates");
}

#[test]
fn batch_preprocesses_decode_canonically_or_not_at_all() {
    let keys = common::keys(2, 3);
    let (machine, _) = preprocess(&keys[0]);
    let seeds: Vec<Vec<u8>> = (0..8).map(|i| preprocess(&keys[1 + i % 2]).1).collect();
    canonical("Batch preprocess", &seeds, |r| machine.read_preprocess(r));
}

#[test]
fn batch_shares_decode_canonically_or_not_at_all() {
    let keys = common::keys(2, 3);
    let (machine, share) = signed(&keys);
    let seeds: Vec<Vec<u8>> =
        std::iter::once(share).chain((0..7).map(|_| signed(&keys).1)).collect();
    canonical("Batch share", &seeds, |r| machine.read_share(r));
}

#[test]
fn batch_signatures_verify_exactly_as_signed() {
    let keys = common::keys(2, 3);
    let key = common::group_key(&keys[0]);
    // The key and the signature, as the coordinator gets them from a processor.
    let seeds: Vec<Vec<u8>> = (0..4).map(|_| [&key[..], &signature(&keys)].concat()).collect();
    let the_batch = the_batch();
    let report = fuzz("batch::verify", &seeds, fuzz::iterations(), |bytes| {
        let (key, signature) = bytes.split_at(bytes.len().min(32));
        let (Ok(key), Ok(signature)) = (key.try_into(), signature.try_into()) else {
            return Outcome::Rejected;
        };
        match batch::verify(&key, &the_batch, &signature) {
            Ok(()) => {
                assert!(seeds.iter().any(|s| s == bytes), "verified a signature nobody made");
                Outcome::Accepted
            }
            Err(_) => Outcome::Rejected,
        }
    });
    assert!(report.rejected > report.inputs / 2, "the mutator barely mutates");
}
