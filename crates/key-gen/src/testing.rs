//! Test helpers: FROST-sign with some participants' keys, all in one process (feature
//! `testing`). Production signing lives with the signers; this only proves keys work.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use ciphersuite::group::GroupEncoding;
use dkg_pedpop::{Participant, ThresholdKeys};
use modular_frost::{
    algorithm::{Hram, IetfSchnorr, SchnorrSignature},
    curve::{
        Curve, Ed25519, IetfEd25519Hram, IetfRistrettoHram, IetfSecp256k1Hram, Ristretto, Secp256k1,
    },
    sign::{AlgorithmMachine, PreprocessMachine, SignMachine, SignatureMachine, Writable},
};
use rand_core::OsRng;
use zeroize::Zeroizing;

use crate::{GeneratedKeys, NetworkKeys};

/// `t`-of-`n` threshold keys on `C` for participants `1..=n` (index `i - 1` holds
/// participant `i`), dealt from a polynomial drawn from `rng` (a trusted dealer, for tests
/// that need keys without running the DKG): Lagrange interpolation and one verification
/// share per participant, as PedPoP's.
pub fn dealer<C: Curve>(
    t: u16,
    n: u16,
    rng: &mut (impl rand_core::RngCore + rand_core::CryptoRng),
) -> Vec<ThresholdKeys<C>> {
    use ciphersuite::group::ff::Field;
    assert!(1 <= t && t <= n, "need 1 <= t <= n");
    let coefficients: Vec<C::F> = (0..t).map(|_| C::F::random(&mut *rng)).collect();
    let shares: Vec<(Participant, C::F)> = (1..=n)
        .map(|i| {
            let x = C::F::from(u64::from(i));
            let share = coefficients.iter().rev().fold(C::F::ZERO, |acc, c| acc * x + c);
            (Participant::new(i).unwrap(), share)
        })
        .collect();
    let verification: HashMap<_, _> =
        shares.iter().map(|(i, s)| (*i, C::generator() * s)).collect();
    shares
        .into_iter()
        .map(|(i, share)| {
            ThresholdKeys::new(
                modular_frost::ThresholdParams::new(t, n, i).unwrap(),
                modular_frost::dkg::Interpolation::Lagrange,
                Zeroizing::new(share),
                verification.clone(),
            )
            .unwrap()
        })
        .collect()
}

/// Signs `msg` with the given keys (one per signer, at least t) through serialized
/// messages, and checks every signer computed the same signature.
pub fn sign<C: Curve, H: Hram<C>>(keys: &[ThresholdKeys<C>], msg: &[u8]) -> SchnorrSignature<C> {
    let index = |k: &ThresholdKeys<C>| k.params().i();
    let mut machines = HashMap::new();
    let mut preprocesses = HashMap::new();
    for k in keys {
        let (machine, pre) =
            AlgorithmMachine::new(IetfSchnorr::<C, H>::ietf(), k.clone()).preprocess(&mut OsRng);
        preprocesses.insert(index(k), pre.serialize());
        machines.insert(index(k), machine);
    }
    let mut signature_machines = HashMap::new();
    let mut shares = HashMap::new();
    for (i, machine) in machines {
        let others: HashMap<Participant, _> = preprocesses
            .iter()
            .filter(|(l, _)| **l != i)
            .map(|(l, b)| (*l, machine.read_preprocess(&mut b.as_slice()).unwrap()))
            .collect();
        let (machine, share) = machine.sign(others, msg).unwrap();
        shares.insert(i, share.serialize());
        signature_machines.insert(i, machine);
    }
    let mut signatures = vec![];
    for (i, machine) in signature_machines {
        let others: HashMap<Participant, _> = shares
            .iter()
            .filter(|(l, _)| **l != i)
            .map(|(l, b)| (*l, machine.read_share(&mut b.as_slice()).unwrap()))
            .collect();
        signatures.push(machine.complete(others).unwrap());
    }
    assert!(signatures.windows(2).all(|w| w[0] == w[1]), "signers disagree");
    signatures.remove(0)
}

/// Whether `signature` verifies for `msg` under `group_key` (IETF Schnorr).
pub fn verify<C: Curve, H: Hram<C>>(
    group_key: C::G,
    msg: &[u8],
    signature: &SchnorrSignature<C>,
) -> bool {
    signature.verify(group_key, H::hram(&signature.R, &group_key, msg))
}

/// Signs with both keys of the given participants' key pairs and verifies each signature
/// under the group keys (and the encoded keys they reported). Panics on any failure.
pub fn sign_and_verify_both(signers: &[GeneratedKeys], msg: &[u8]) {
    let ristretto: Vec<_> = signers.iter().map(|k| k.ristretto.clone()).collect();
    let signature = sign::<Ristretto, IetfRistrettoHram>(&ristretto, msg);
    assert!(verify::<Ristretto, IetfRistrettoHram>(ristretto[0].group_key(), msg, &signature));
    assert_eq!(ristretto[0].group_key().to_bytes(), signers[0].ristretto_key());
    match &signers[0].network {
        NetworkKeys::Secp256k1(_) => {
            let keys: Vec<_> = signers
                .iter()
                .map(|k| match &k.network {
                    NetworkKeys::Secp256k1(k) => k.clone(),
                    NetworkKeys::Ed25519(_) => panic!("mixed curves"),
                })
                .collect();
            let signature = sign::<Secp256k1, IetfSecp256k1Hram>(&keys, msg);
            assert!(verify::<Secp256k1, IetfSecp256k1Hram>(keys[0].group_key(), msg, &signature));
        }
        NetworkKeys::Ed25519(_) => {
            let keys: Vec<_> = signers
                .iter()
                .map(|k| match &k.network {
                    NetworkKeys::Ed25519(k) => k.clone(),
                    NetworkKeys::Secp256k1(_) => panic!("mixed curves"),
                })
                .collect();
            let signature = sign::<Ed25519, IetfEd25519Hram>(&keys, msg);
            assert!(verify::<Ed25519, IetfEd25519Hram>(keys[0].group_key(), msg, &signature));
        }
    }
}
