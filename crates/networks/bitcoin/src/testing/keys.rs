//! In-process FROST keys and signing for tests.
//!
//! [`dkg`] deals the keys from a seeded polynomial (a trusted dealer,
//! `key_gen::testing::dealer`): the lib cannot use `dkg-pedpop` (only a dev-dependency of
//! this crate). The resulting [`ThresholdKeys`] have the
//! same form as PedPoP's (Lagrange interpolation, one verification share per participant), and
//! `tests/bip340.rs` also signs with keys from a real PedPoP run.

use std::collections::HashMap;

use modular_frost::{curve::Secp256k1, Participant, ThresholdKeys};
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};

use bitcoin::{
    absolute::LockTime, hashes::Hash, transaction::Version, Amount, OutPoint, ScriptBuf, Sequence,
    Transaction, TxIn, TxOut, Txid, Witness,
};
use k256::{ProjectivePoint, Scalar};
use scanner::OutputKind;

use crate::sign::{output_key, script_pubkey, SignError, SignableTransaction, TransactionMachine};

/// A deterministic RNG for tests: SHA-256 in counter mode over a 64-bit seed.
#[derive(Clone, Debug)]
pub struct SeededRng {
    seed: u64,
    counter: u64,
    block: [u8; 32],
    used: usize,
}

impl SeededRng {
    /// An RNG whose output depends only on `seed`.
    pub fn new(seed: u64) -> Self {
        SeededRng { seed, counter: 0, block: [0; 32], used: 32 }
    }
}

impl RngCore for SeededRng {
    fn next_u32(&mut self) -> u32 {
        let mut bytes = [0; 4];
        self.fill_bytes(&mut bytes);
        u32::from_le_bytes(bytes)
    }

    fn next_u64(&mut self) -> u64 {
        let mut bytes = [0; 8];
        self.fill_bytes(&mut bytes);
        u64::from_le_bytes(bytes)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for byte in dest {
            if self.used == 32 {
                let mut hasher = Sha256::new();
                hasher.update(b"tc-bitcoin/v1/test-rng");
                hasher.update(self.seed.to_le_bytes());
                hasher.update(self.counter.to_le_bytes());
                self.block = hasher.finalize().into();
                self.counter += 1;
                self.used = 0;
            }
            *byte = self.block[self.used];
            self.used += 1;
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for SeededRng {}

/// `t`-of-`n` secp256k1 threshold keys for participants `1..=n` (index `i - 1` holds
/// participant `i`), deterministic in `seed`.
pub fn dkg(t: u16, n: u16, seed: u64) -> Vec<ThresholdKeys<Secp256k1>> {
    key_gen::testing::dealer(t, n, &mut SeededRng::new(seed))
}

/// Signs `tx` with the signing set `keys` (the untweaked DKG keys, at least t of them), driving
/// every signer's machines through bytes; every signer completes and they must agree.
pub fn sign_transaction<R: RngCore + CryptoRng>(
    keys: &[ThresholdKeys<Secp256k1>],
    tx: SignableTransaction,
    rng: &mut R,
) -> Result<Transaction, SignError> {
    let mut preprocesses = HashMap::new();
    let mut machines = Vec::with_capacity(keys.len());
    for keys in keys {
        let i = keys.params().i();
        let (machine, preprocess) =
            TransactionMachine::new(keys.clone(), tx.clone())?.preprocess(rng);
        preprocesses.insert(i, preprocess);
        machines.push((i, machine));
    }

    let others = |map: &HashMap<Participant, Vec<u8>>, i: Participant| {
        map.iter().filter(|(l, _)| **l != i).map(|(l, m)| (*l, m.clone())).collect()
    };

    let mut shares = HashMap::new();
    let mut signature_machines = Vec::with_capacity(keys.len());
    for (i, machine) in machines {
        let (machine, share) = machine.sign(others(&preprocesses, i))?;
        shares.insert(i, share);
        signature_machines.push((i, machine));
    }

    let mut signed = None;
    for (i, machine) in signature_machines {
        let tx = machine.complete(others(&shares, i))?;
        match &signed {
            None => signed = Some(tx),
            Some(first) => assert_eq!(first, &tx, "signers produced different transactions"),
        }
    }
    Ok(signed.expect("at least one signer"))
}

fn outpoint(n: u8) -> OutPoint {
    OutPoint { txid: Txid::from_byte_array([n; 32]), vout: u32::from(n) }
}

/// An unsigned transaction spending one (made-up) output of ours per kind in `kinds`, to
/// a payee and to our change.
pub fn spending(group_key: ProjectivePoint, kinds: &[OutputKind]) -> SignableTransaction {
    let tx = Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: (0..kinds.len())
            .map(|i| TxIn {
                previous_output: outpoint(u8::try_from(i % 256).unwrap_or(0)),
                script_sig: ScriptBuf::new(),
                sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                witness: Witness::new(),
            })
            .collect(),
        output: vec![
            TxOut {
                value: Amount::from_sat(10_000),
                script_pubkey: ScriptBuf::new_p2tr_tweaked(
                    output_key(
                        ProjectivePoint::GENERATOR * Scalar::from(42u64),
                        OutputKind::External,
                    )
                    .expect("test transaction"),
                ),
            },
            TxOut {
                value: Amount::from_sat(5_000),
                script_pubkey: script_pubkey(group_key, OutputKind::Change)
                    .expect("test transaction"),
            },
        ],
    };
    let prevouts = kinds
        .iter()
        .enumerate()
        .map(|(i, kind)| TxOut {
            value: Amount::from_sat(10_000 + i as u64),
            script_pubkey: script_pubkey(group_key, *kind).expect("test transaction"),
        })
        .collect();
    SignableTransaction::new(tx, prevouts, kinds.to_vec()).expect("test transaction")
}
