//! A CI-sized, mutation-based fuzzer for envelope decoding (stable Rust has no
//! `cargo fuzz`): valid envelopes of every message kind are mutated — bit flips, byte
//! overwrites, insertions, deletions, truncations, splices of two envelopes, length-field
//! inflation — and fed to `open`. It must never panic, and must accept a mutant only if it
//! is byte-identical to a valid envelope it started from.
//!
//! `TC_FUZZ_ITERATIONS` sets the number of mutants (default 200,000); `TC_FUZZ_SEED` the
//! seed (printed, so a failure replays).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use messages::{
    envelope::{open, seal, Body},
    testing::{coordinator_message, processor_message},
    Identity, KeyRegistry, Party,
};
use primitives::{codec::Versioned, NetworkId};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % (n.max(1) as u64)) as usize
    }
}

fn mutate(rng: &mut XorShift, a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut m = a.to_vec();
    for _ in 0..=rng.below(3) {
        match rng.below(7) {
            0 if !m.is_empty() => {
                let bit = rng.below(m.len() * 8);
                m[bit / 8] ^= 1 << (bit % 8);
            }
            1 if !m.is_empty() => {
                let i = rng.below(m.len());
                m[i] = rng.next() as u8;
            }
            2 => {
                let i = rng.below(m.len() + 1);
                m.insert(i, rng.next() as u8);
            }
            3 if !m.is_empty() => {
                let i = rng.below(m.len());
                m.remove(i);
            }
            4 => m.truncate(rng.below(m.len() + 1)),
            5 => {
                let cut = rng.below(m.len() + 1);
                let from = rng.below(b.len() + 1);
                m.truncate(cut);
                m.extend_from_slice(&b[from..]);
            }
            _ if m.len() >= 4 => {
                // Inflate what may be a u32 length prefix.
                let i = rng.below(m.len() - 3);
                m[i..i + 4].copy_from_slice(&u32::MAX.to_le_bytes());
            }
            _ => m.push(0),
        }
    }
    m
}

#[test]
fn mutated_envelopes_never_panic_and_are_never_accepted() {
    let iterations: usize =
        std::env::var("TC_FUZZ_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000);
    let seed: u64 = std::env::var("TC_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| (std::process::id() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    println!("fuzz seed {seed} ({iterations} mutants)");

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
        TestRng::from_seed(RngAlgorithm::ChaCha, &[seed as u8; 32]),
    );
    let mut corpus: Vec<(Vec<u8>, bool)> = vec![];
    for i in 0..64u64 {
        let c = coordinator_message().new_tree(&mut runner).unwrap().current();
        corpus.push((
            seal(&coordinator, Party::Coordinator, me, i + 1, Body::Message(c.encode())).encode(),
            true,
        ));
        let p = processor_message().new_tree(&mut runner).unwrap().current();
        corpus.push((
            seal(&processor, me, Party::Coordinator, i + 1, Body::Message(p.encode())).encode(),
            false,
        ));
    }
    corpus.push((
        seal(&coordinator, Party::Coordinator, me, 0, Body::Ack { through: 9 }).encode(),
        true,
    ));
    for (bytes, to_processor) in &corpus {
        let (registry, recipient) =
            if *to_processor { (&at_processor, me) } else { (&at_coordinator, Party::Coordinator) };
        open(bytes, registry, recipient).expect("the corpus is valid");
    }

    let mut rng = XorShift(seed);
    let started = Instant::now();
    let mut rejected = 0usize;
    for _ in 0..iterations {
        let (a, to_processor) = &corpus[rng.below(corpus.len())];
        let (b, _) = &corpus[rng.below(corpus.len())];
        let mutant = mutate(&mut rng, a, b);
        let (registry, recipient) =
            if *to_processor { (&at_processor, me) } else { (&at_coordinator, Party::Coordinator) };
        match open(&mutant, registry, recipient) {
            Err(_) => rejected += 1,
            Ok(_) => assert!(
                corpus.iter().any(|(c, _)| *c == mutant),
                "accepted a mutant that is no valid envelope: {}",
                hex::encode(&mutant)
            ),
        }
    }
    println!(
        "{iterations} mutants in {:.2?}: {rejected} rejected, {} identical to a valid envelope",
        started.elapsed(),
        iterations - rejected
    );
    assert!(rejected > iterations * 9 / 10, "the mutator barely mutates");
}
