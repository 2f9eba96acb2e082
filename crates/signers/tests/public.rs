//! A signer's share judged from public data (`signers::public`): every share that
//! modular-frost's machines make passes, and every way of making one wrongly is caught
//! and attributed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, HashMap};

use ciphersuite::group::ff::PrimeField;
use ciphersuite::group::GroupEncoding;
use modular_frost::curve::{Ciphersuite, Ristretto};
use modular_frost::ThresholdKeys;
use signers::batch::check_share;
use signers::public::{CheckError, Fault, PublicKeys};
use signers::{batch_machine, Completing};

/// The public side of `keys`, as a third party learns it.
fn public(keys: &[ThresholdKeys<Ristretto>]) -> PublicKeys<Ristretto> {
    let first = &keys[0];
    let n = first.params().n();
    let shares = (1..=n)
        .map(|i| {
            let p = modular_frost::Participant::new(i).unwrap();
            first.original_verification_share(p).to_bytes().to_vec()
        })
        .collect::<Vec<_>>();
    PublicKeys::read(first.params().t(), &shares).unwrap()
}

struct Round {
    preprocesses: BTreeMap<u16, Vec<u8>>,
    shares: BTreeMap<u16, Vec<u8>>,
    completing: BTreeMap<u16, Box<dyn Completing>>,
}

/// One honest signing round of `batch` by `set` (key indices), through the production
/// machines.
fn round(keys: &[ThresholdKeys<Ristretto>], set: &[u16], batch: &primitives::Batch) -> Round {
    let mut signing = BTreeMap::new();
    let mut preprocesses = BTreeMap::new();
    for i in set {
        let (machine, preprocess) =
            batch_machine(keys[usize::from(*i) - 1].clone(), batch).preprocess();
        signing.insert(*i, machine);
        preprocesses.insert(*i, preprocess);
    }
    let mut shares = BTreeMap::new();
    let mut completing = BTreeMap::new();
    for (i, machine) in signing {
        let others: HashMap<u16, Vec<u8>> =
            preprocesses.iter().filter(|(l, _)| **l != i).map(|(l, p)| (*l, p.clone())).collect();
        let (done, share) = machine.sign(others).unwrap();
        shares.insert(i, share);
        completing.insert(i, done);
    }
    Round { preprocesses, shares, completing }
}

fn tampered(share: &[u8]) -> Vec<u8> {
    let mut reader = share;
    let s = <Ristretto as Ciphersuite>::read_F(&mut reader).unwrap();
    (s + <Ristretto as Ciphersuite>::F::ONE).to_repr().as_ref().to_vec()
}

#[test]
fn every_honest_share_passes_and_the_signature_verifies() {
    let keys = common::keys(3, 4);
    let public = public(&keys);
    assert_eq!(public.group_key().unwrap(), keys[0].group_key());
    let batch = common::batch(7);
    for set in [[1u16, 2, 3], [1, 3, 4], [2, 3, 4]] {
        let mut r = round(&keys, &set, &batch);
        for (i, share) in &r.shares {
            assert_eq!(
                check_share(&public, &batch, &r.preprocesses, *i, share),
                Ok(Ok(())),
                "{set:?} {i}"
            );
        }
        // The same round aggregates: the checker judged the shares that really sign.
        let (first, done) = r.completing.pop_first().unwrap();
        let others =
            r.shares.iter().filter(|(l, _)| **l != first).map(|(l, s)| (*l, s.clone())).collect();
        let signature: [u8; 64] = done.complete(others).unwrap().try_into().unwrap();
        signers::batch::verify(&common::group_key(&keys[0]), &batch, &signature).unwrap();
    }
}

#[test]
fn a_wrong_share_is_caught_and_blamed_on_its_sender_only() {
    let keys = common::keys(3, 4);
    let public = public(&keys);
    let batch = common::batch(1);
    let set = [1u16, 2, 4];
    let r = round(&keys, &set, &batch);
    let bad = tampered(&r.shares[&2]);
    assert_eq!(
        check_share(&public, &batch, &r.preprocesses, 2, &bad),
        Ok(Err(Fault::InvalidShare))
    );
    // The members that signed correctly still pass, in the same set.
    for i in [1u16, 4] {
        assert_eq!(check_share(&public, &batch, &r.preprocesses, i, &r.shares[&i]), Ok(Ok(())));
    }
    // The very aggregation a member runs names the same culprit.
    let mut r = r;
    let done = r.completing.remove(&1).unwrap();
    let others = HashMap::from([(2u16, bad), (4u16, r.shares[&4].clone())]);
    assert_eq!(done.complete(others).unwrap_err(), signers::SignFailure::Blame(2));
}

#[test]
fn a_share_for_anything_else_fails() {
    let keys = common::keys(2, 3);
    let public = public(&keys);
    let batch = common::batch(3);
    let r = round(&keys, &[1, 3], &batch);
    let share = &r.shares[&3];
    // Another Batch (message and transcript).
    assert_eq!(
        check_share(&public, &common::batch(4), &r.preprocesses, 3, share),
        Ok(Err(Fault::InvalidShare))
    );
    // Another member's share under this member's name.
    assert_eq!(
        check_share(&public, &batch, &r.preprocesses, 1, share),
        Ok(Err(Fault::InvalidShare))
    );
    // Another attempt's preprocesses (fresh nonces) with this attempt's share.
    let again = round(&keys, &[1, 3], &batch);
    assert_eq!(
        check_share(&public, &batch, &again.preprocesses, 3, share),
        Ok(Err(Fault::InvalidShare))
    );
    // A share that is not a scalar.
    assert_eq!(
        check_share(&public, &batch, &r.preprocesses, 3, &[0xff; 32]),
        Ok(Err(Fault::UnreadableShare))
    );
    assert_eq!(
        check_share(&public, &batch, &r.preprocesses, 3, &share[..31]),
        Ok(Err(Fault::UnreadableShare))
    );
    let mut long = share.clone();
    long.push(0);
    assert_eq!(
        check_share(&public, &batch, &r.preprocesses, 3, &long),
        Ok(Err(Fault::UnreadableShare))
    );
}

#[test]
fn an_unreadable_preprocess_is_blamed_on_its_sender_and_a_bad_set_is_refused() {
    let keys = common::keys(2, 3);
    let public = public(&keys);
    let batch = common::batch(5);
    let r = round(&keys, &[1, 2], &batch);
    let mut preprocesses = r.preprocesses.clone();
    preprocesses.get_mut(&1).unwrap().push(0);
    assert_eq!(
        check_share(&public, &batch, &preprocesses, 2, &r.shares[&2]),
        Ok(Err(Fault::Preprocess(1)))
    );
    preprocesses.insert(1, vec![0xff; 64]);
    assert_eq!(
        check_share(&public, &batch, &preprocesses, 2, &r.shares[&2]),
        Ok(Err(Fault::Preprocess(1)))
    );
    // Not a set of this key: the accused absent, too few members, an unknown index.
    assert!(matches!(
        check_share(&public, &batch, &r.preprocesses, 3, &r.shares[&2]),
        Err(CheckError::Set(_))
    ));
    let one = BTreeMap::from([(2u16, r.preprocesses[&2].clone())]);
    assert!(matches!(
        check_share(&public, &batch, &one, 2, &r.shares[&2]),
        Err(CheckError::Set(_))
    ));
    let mut unknown = r.preprocesses.clone();
    unknown.insert(9, r.preprocesses[&1].clone());
    assert!(matches!(
        check_share(&public, &batch, &unknown, 2, &r.shares[&2]),
        Err(CheckError::Set(_))
    ));
    // Keys that are not keys.
    assert!(PublicKeys::<Ristretto>::read(2, &[vec![0xff; 32], vec![0; 32]]).is_err());
    assert!(PublicKeys::<Ristretto>::read(3, &[vec![1; 32]]).is_err());
}

#[test]
fn a_preprocess_is_well_formed_or_not() {
    let keys = common::keys(2, 3);
    let batch = common::batch(2);
    let r = round(&keys, &[1, 2], &batch);
    assert!(signers::batch::check_preprocess(&batch, &r.preprocesses[&1]));
    assert!(!signers::batch::check_preprocess(&batch, &r.preprocesses[&1][..63]));
    assert!(!signers::batch::check_preprocess(&batch, &[0xff; 64]));
    let mut long = r.preprocesses[&1].clone();
    long.push(1);
    assert!(!signers::batch::check_preprocess(&batch, &long));
}
