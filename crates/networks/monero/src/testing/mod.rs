//! Test support (feature `testing`): a monerod regtest node with a reusable history
//! ([`node`]), a single-key wallet that pays deposits with instructions ([`wallet`]), and
//! in-process FROST keys and signing.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

pub mod node;
pub mod wallet;

use std::collections::HashMap;

use modular_frost::curve::Ed25519;
use modular_frost::sign::{PreprocessMachine, SignMachine, SignatureMachine, Writable};
use modular_frost::{Participant, ThresholdKeys};
use monero_wallet::send::SignableTransaction;
use monero_wallet::transaction::Transaction;
use rand_core::SeedableRng;

/// `t`-of-`n` Ed25519 threshold keys dealt from `seed` (participant `i` at index `i - 1`).
pub fn dkg(t: u16, n: u16, seed: u64) -> Vec<ThresholdKeys<Ed25519>> {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
    key_gen::testing::dealer(t, n, &mut rng)
}

/// Signs `tx` with the signing set `keys` (at least t), driving every signer's machine
/// through bytes as the processors do; every signer completes and they must agree.
pub fn sign_transaction(keys: &[ThresholdKeys<Ed25519>], tx: SignableTransaction) -> Transaction {
    let mut rng = rand_core::OsRng;
    let mut preprocesses = HashMap::new();
    let mut machines = vec![];
    for k in keys {
        let i = k.params().i();
        let (machine, preprocess) = tx.clone().multisig(k.clone()).unwrap().preprocess(&mut rng);
        preprocesses.insert(i, preprocess.serialize());
        machines.push((i, machine));
    }
    let others =
        |map: &HashMap<Participant, Vec<u8>>, i: Participant| -> HashMap<Participant, Vec<u8>> {
            map.iter().filter(|(l, _)| **l != i).map(|(l, m)| (*l, m.clone())).collect()
        };
    let mut shares = HashMap::new();
    let mut finishing = vec![];
    for (i, machine) in machines {
        let parsed = others(&preprocesses, i)
            .into_iter()
            .map(|(l, m)| (l, machine.read_preprocess(&mut m.as_slice()).unwrap()))
            .collect();
        let (machine, share) = machine.sign(parsed, &[]).unwrap();
        shares.insert(i, share.serialize());
        finishing.push((i, machine));
    }
    let mut signed = None;
    for (i, machine) in finishing {
        let parsed = others(&shares, i)
            .into_iter()
            .map(|(l, m)| (l, machine.read_share(&mut m.as_slice()).unwrap()))
            .collect();
        let tx = machine.complete(parsed).unwrap();
        if let Some(previous) = &signed {
            assert_eq!(&tx, previous, "signers disagree on the signed transaction");
        }
        signed = Some(tx);
    }
    signed.expect("at least one signer")
}
