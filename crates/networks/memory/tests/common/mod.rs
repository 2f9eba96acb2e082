//! Shared test helpers: params, trusted-dealer keys (`key_gen::testing::dealer`), and FROST signing of a plan through
//! the network's own signing machine, all participants in process.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::HashMap;

use memory_network::{Chain, MemoryNetwork, Signable, Transaction};
use modular_frost::curve::Secp256k1;
use modular_frost::ThresholdKeys;
use primitives::{Amount, NetworkId};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use scanner::{Network, NetworkParams};
use signers::{Completing, Signing};

/// Litecoin-like params, small enough for 100-input plans.
pub fn params() -> NetworkParams {
    NetworkParams {
        network: NetworkId::Litecoin,
        confirmations: 3,
        max_inputs: 150,
        max_outputs: 16,
        dust: Amount(10_000),
        min_fee_rate: 1_000,
        max_fee_rate: 100_000,
        max_money: 84_000_000 * 100_000_000,
    }
}

/// `t`-of-`n` keys from a seeded dealer polynomial (index `i - 1` holds participant `i`).
pub fn keys(t: u16, n: u16, seed: u64) -> Vec<ThresholdKeys<Secp256k1>> {
    key_gen::testing::dealer(t, n, &mut ChaCha20Rng::seed_from_u64(seed))
}

fn others(map: &HashMap<u16, Vec<u8>>, me: u16) -> HashMap<u16, Vec<u8>> {
    map.iter().filter(|(i, _)| **i != me).map(|(i, m)| (*i, m.clone())).collect()
}

/// Signs `signable` with the signing set `keys` through `network.sign` machines, driving
/// preprocess → sign → complete over bytes; every signer must produce the same encoding.
pub fn sign(
    network: &MemoryNetwork,
    keys: &[ThresholdKeys<Secp256k1>],
    signable: &Signable,
) -> Transaction {
    let mut preprocesses = HashMap::new();
    let mut signing: Vec<(u16, Box<dyn Signing>)> = vec![];
    for k in keys {
        let i = u16::from(k.params().i());
        let machine = network.sign(k.clone(), signable.clone()).unwrap();
        let (machine, preprocess) = machine.preprocess();
        preprocesses.insert(i, preprocess);
        signing.push((i, machine));
    }
    let mut shares = HashMap::new();
    let mut completing: Vec<(u16, Box<dyn Completing>)> = vec![];
    for (i, machine) in signing {
        let (machine, share) = machine.sign(others(&preprocesses, i)).unwrap();
        shares.insert(i, share);
        completing.push((i, machine));
    }
    let mut encoded: Option<Vec<u8>> = None;
    for (i, machine) in completing {
        let bytes = machine.complete(others(&shares, i)).unwrap();
        match &encoded {
            None => encoded = Some(bytes),
            Some(first) => assert_eq!(first, &bytes, "signers produced different transactions"),
        }
    }
    network.decode_transaction(&encoded.expect("at least one signer")).unwrap()
}

/// A chain with `params()` and a 2-of-3 group.
pub fn setup() -> (Chain, MemoryNetwork, Vec<ThresholdKeys<Secp256k1>>) {
    let chain = Chain::new(params());
    let network = chain.network();
    (chain, network, keys(2, 3, 7))
}
