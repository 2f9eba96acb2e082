//! Envelope decoding under mutation (see `primitives::testing::fuzz`): valid envelopes of
//! every message kind are mutated and fed to `open`. It must never panic, and must accept
//! a mutant only if it is byte-identical to a valid envelope it started from. (Mutants
//! rarely get past the signature check: `fuzz_messages.rs` feeds the messages behind it.)
//!
//! `TC_FUZZ_ITERATIONS` sets the number of mutants; `TC_FUZZ_SEED` the seed (printed, so
//! a failure replays).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use messages::{
    envelope::{open, seal, Body},
    testing::{coordinator_message, processor_message},
    EnvelopeError, Identity, KeyRegistry, Party,
};
use primitives::{
    codec::Versioned,
    testing::fuzz::{self, fuzz, Outcome, TrackingAllocator},
    NetworkId,
};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

#[global_allocator]
static ALLOCATOR: TrackingAllocator = TrackingAllocator;

#[test]
fn mutated_envelopes_never_panic_and_are_never_accepted() {
    let coordinator = Identity::from_secret(&[1; 32]);
    let processor = Identity::from_secret(&[2; 32]);
    let me = Party::Processor { network: NetworkId::Monero, validator: 3 };
    let mut at_processor = KeyRegistry::new();
    at_processor.insert(Party::Coordinator, coordinator.public());
    let mut at_coordinator = KeyRegistry::new();
    at_coordinator.insert(me, processor.public());

    // A corpus of valid envelopes in both directions, plus acks.
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[fuzz::seed() as u8; 32]),
    );
    let mut to_processor = vec![];
    let mut to_coordinator = vec![];
    for i in 0..64u64 {
        let c = coordinator_message().new_tree(&mut runner).unwrap().current();
        to_processor.push(
            seal(&coordinator, Party::Coordinator, me, i + 1, Body::Message(c.encode())).encode(),
        );
        let p = processor_message().new_tree(&mut runner).unwrap().current();
        to_coordinator.push(
            seal(&processor, me, Party::Coordinator, i + 1, Body::Message(p.encode())).encode(),
        );
    }
    to_processor
        .push(seal(&coordinator, Party::Coordinator, me, 0, Body::Ack { through: 9 }).encode());
    // Both directions mutate from one corpus (splices cross directions); each mutant is
    // opened as both recipients.
    let corpus: Vec<Vec<u8>> = to_processor.iter().chain(&to_coordinator).cloned().collect();
    for bytes in &to_processor {
        open(bytes, &at_processor, me).expect("the corpus is valid");
    }
    for bytes in &to_coordinator {
        open(bytes, &at_coordinator, Party::Coordinator).expect("the corpus is valid");
    }

    let report = fuzz("envelope", &corpus, fuzz::iterations(), |mutant| {
        let results =
            [open(mutant, &at_processor, me), open(mutant, &at_coordinator, Party::Coordinator)];
        // Every rejection's metrics label is one the metrics start at zero.
        for e in results.iter().filter_map(|r| r.as_ref().err()) {
            assert!(EnvelopeError::REASONS.contains(&e.reason()), "{} not listed", e.reason());
        }
        let opened = results.map(|r| r.is_ok());
        if opened.contains(&true) {
            assert!(
                corpus.iter().any(|c| c == mutant),
                "accepted a mutant that is no valid envelope"
            );
        }
        Outcome::accepted_if(opened.contains(&true))
    });
    assert!(report.rejected > report.inputs * 9 / 10, "the mutator barely mutates");
}
