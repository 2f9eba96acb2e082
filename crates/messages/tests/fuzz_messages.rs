//! The message decoders behind the envelope's signature check, fed directly (see
//! `primitives::testing::fuzz`): `Versioned::decode` of [`CoordinatorMessage`] (what a
//! processor reads from the coordinator) and of [`ProcessorMessage`] with its
//! `check_bounds` (what the coordinator reads from a processor). Neither may panic or
//! allocate from a length field, and whatever they accept must be the canonical encoding
//! of what they return (the crate's guarantee: one encoding per message, so one intent).
//!
//! `TC_FUZZ_ITERATIONS` sets the number of mutants per decoder; `TC_FUZZ_SEED` the seed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use messages::{
    testing::{coordinator_message, processor_message},
    CoordinatorMessage, ProcessorMessage,
};
use primitives::{
    codec::Versioned,
    testing::fuzz::{self, fuzz, Outcome, TrackingAllocator},
};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

#[global_allocator]
static ALLOCATOR: TrackingAllocator = TrackingAllocator;

/// 200 valid encodings drawn from `strategy` (seeded from the fuzz seed, so they replay).
fn corpus<T: Versioned>(strategy: impl Strategy<Value = T>) -> Vec<Vec<u8>> {
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[fuzz::seed() as u8; 32]),
    );
    (0..200).map(|_| strategy.new_tree(&mut runner).unwrap().current().encode()).collect()
}

#[test]
fn coordinator_messages_decode_canonically_or_not_at_all() {
    let seeds = corpus(coordinator_message());
    let report = fuzz("CoordinatorMessage::decode", &seeds, fuzz::iterations(), |bytes| {
        match CoordinatorMessage::decode(bytes) {
            Ok(message) => {
                assert_eq!(message.encode(), bytes, "accepted a non-canonical encoding");
                Outcome::Accepted
            }
            Err(_) => Outcome::Rejected,
        }
    });
    assert!(report.rejected > report.inputs / 2, "the mutator barely mutates");
}

#[test]
fn processor_messages_decode_canonically_or_not_at_all() {
    let seeds = corpus(processor_message());
    let report = fuzz("ProcessorMessage::decode", &seeds, fuzz::iterations(), |bytes| {
        match ProcessorMessage::decode(bytes).and_then(|m| m.check_bounds().map(|()| m)) {
            Ok(message) => {
                assert_eq!(message.encode(), bytes, "accepted a non-canonical encoding");
                Outcome::Accepted
            }
            Err(_) => Outcome::Rejected,
        }
    });
    assert!(report.rejected > report.inputs / 2, "the mutator barely mutates");
}
