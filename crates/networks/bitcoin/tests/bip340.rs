//! BIP340 FROST signing: per-kind taproot keys, signatures checked by libsecp256k1, and
//! multi-input transactions with blame for bad preprocesses and shares.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    cell::Cell,
    collections::HashMap,
    sync::OnceLock,
    time::{Duration, Instant},
};

use bitcoin::{
    hashes::Hash,
    key::{Parity, TapTweak, UntweakedPublicKey},
    secp256k1::{schnorr, Message, Secp256k1 as Secp},
    sighash::{Prevouts, SighashCache, TapSighashType},
    ScriptBuf, Transaction,
};
use bitcoin_network::{
    sign::{
        derive_key, output_key, script_pubkey, signing_keys, Bip340, Bip340Signature, SignError,
        SignableTransaction, TransactionMachine, TransactionSignMachine,
    },
    testing::keys::{dkg, sign_transaction},
};
use dkg_pedpop::{Commitments, EncryptedMessage, EncryptionKeyMessage, KeyGenMachine, SecretShare};
use flexible_transcript::{RecommendedTranscript, Transcript};
use k256::{
    elliptic_curve::{ops::Reduce, point::AffineCoordinates},
    ProjectivePoint, Scalar, U256,
};
use modular_frost::{
    curve::{Ciphersuite, Secp256k1},
    sign::{AlgorithmMachine, PreprocessMachine, SignMachine, SignatureMachine, Writable},
    FrostError, Participant, ThresholdKeys, ThresholdParams,
};
use proptest::{prelude::*, test_runner::TestRunner};
use rand::{rngs::StdRng, SeedableRng};
use scanner::OutputKind;
use sha2::{Digest, Sha256};

fn p(i: u16) -> Participant {
    Participant::new(i).unwrap()
}

fn g() -> ProjectivePoint {
    <Secp256k1 as Ciphersuite>::generator()
}

fn scalar(bytes: [u8; 32]) -> Scalar {
    <Scalar as Reduce<U256>>::reduce_bytes(&bytes.into())
}

/// A real in-process PedPoP run (dkg-pedpop), every message through bytes.
fn pedpop(t: u16, n: u16, seed: u64) -> Vec<ThresholdKeys<Secp256k1>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut context = [0; 32];
    context[..8].copy_from_slice(&seed.to_le_bytes());
    let params = |i: u16| ThresholdParams::new(t, n, p(i)).unwrap();

    let mut r1 = HashMap::new();
    let mut machines = Vec::new();
    for i in 1..=n {
        let (machine, msg) =
            KeyGenMachine::<Secp256k1>::new(params(i), context).generate_coefficients(&mut rng);
        r1.insert(p(i), msg.serialize());
        machines.push(machine);
    }

    let mut to: HashMap<Participant, HashMap<Participant, Vec<u8>>> = HashMap::new();
    let mut key_machines = Vec::new();
    for (machine, i) in machines.into_iter().zip(1..=n) {
        let parsed = r1
            .iter()
            .filter(|(l, _)| **l != p(i))
            .map(|(l, bytes)| {
                let mut slice = bytes.as_slice();
                let msg = EncryptionKeyMessage::<Secp256k1, Commitments<Secp256k1>>::read(
                    &mut slice,
                    params(i),
                )
                .unwrap();
                assert!(slice.is_empty());
                (*l, msg)
            })
            .collect();
        let (machine, shares) = machine.generate_secret_shares(&mut rng, parsed).unwrap();
        for (recipient, share) in shares {
            to.entry(recipient).or_default().insert(p(i), share.serialize());
        }
        key_machines.push(machine);
    }

    key_machines
        .into_iter()
        .zip(1..=n)
        .map(|(machine, i)| {
            let parsed = to[&p(i)]
                .iter()
                .map(|(from, bytes)| {
                    let mut slice = bytes.as_slice();
                    let msg = EncryptedMessage::<Secp256k1, SecretShare<Scalar>>::read(
                        &mut slice,
                        params(i),
                    )
                    .unwrap();
                    assert!(slice.is_empty());
                    (*from, msg)
                })
                .collect();
            machine.calculate_share(&mut rng, parsed).unwrap().complete()
        })
        .collect()
}

/// Ten 2-of-3 PedPoP key sets, generated once.
fn pedpop_sets() -> &'static [Vec<ThresholdKeys<Secp256k1>>] {
    static SETS: OnceLock<Vec<Vec<ThresholdKeys<Secp256k1>>>> = OnceLock::new();
    SETS.get_or_init(|| (0..10).map(|seed| pedpop(2, 3, 1000 + seed)).collect())
}

fn kind_strategy() -> impl Strategy<Value = OutputKind> {
    prop::sample::select(OutputKind::ALL.to_vec())
}

/// Signs `msg` with `keys` (a signing set) and the plain `Bip340` algorithm, through bytes.
fn sign_bip340(keys: &[ThresholdKeys<Secp256k1>], msg: &[u8], rng: &mut StdRng) -> Bip340Signature {
    try_sign_bip340(keys, msg, rng, None).unwrap()
}

/// Like `sign_bip340`, with the low bit of `tampered`'s share flipped; every other signer
/// completes and they must agree.
fn try_sign_bip340(
    keys: &[ThresholdKeys<Secp256k1>],
    msg: &[u8],
    rng: &mut StdRng,
    tampered: Option<Participant>,
) -> Result<Bip340Signature, FrostError> {
    let algorithm = || Bip340::new(RecommendedTranscript::new(b"tc-bitcoin test"));
    let mut preprocesses = HashMap::new();
    let mut machines = Vec::new();
    for keys in keys {
        let (machine, preprocess) =
            AlgorithmMachine::new(algorithm(), keys.clone()).preprocess(rng);
        preprocesses.insert(keys.params().i(), preprocess.serialize());
        machines.push((keys.params().i(), machine));
    }
    let mut shares = HashMap::new();
    let mut signature_machines = Vec::new();
    for (i, machine) in machines {
        let others = preprocesses
            .iter()
            .filter(|(l, _)| **l != i)
            .map(|(l, bytes)| (*l, machine.read_preprocess(&mut bytes.as_slice()).unwrap()))
            .collect();
        let (machine, share) = machine.sign(others, msg).unwrap();
        let mut share = share.serialize();
        if Some(i) == tampered {
            share[31] ^= 1;
        }
        shares.insert(i, share);
        signature_machines.push((i, machine));
    }
    let mut signature = None;
    for (i, machine) in signature_machines.into_iter().filter(|(i, _)| Some(*i) != tampered) {
        let others = shares
            .iter()
            .filter(|(l, _)| **l != i)
            .map(|(l, bytes)| (*l, machine.read_share(&mut bytes.as_slice()).unwrap()))
            .collect();
        let result = machine.complete(others);
        assert_eq!(*signature.get_or_insert(result), result);
    }
    signature.unwrap()
}

fn libsecp_verify(sig: &[u8; 64], msg: [u8; 32], key: &bitcoin::key::XOnlyPublicKey) -> bool {
    let sig = schnorr::Signature::from_slice(sig).unwrap();
    Secp::verification_only().verify_schnorr(&sig, &Message::from_digest(msg), key).is_ok()
}

/// The blame path (`verify_share`) names the right signer whichever the nonce's parity: the same
/// seeded run is done honestly (to learn R's parity) and with one share tampered.
#[test]
fn tampered_share_blamed_for_both_nonce_parities() {
    let keys = dkg(3, 4, 9);
    let (mut odd, mut even) = (0, 0);
    for seed in 0..24u64 {
        let kind = OutputKind::ALL[usize::try_from(seed % 4).unwrap()];
        let set = [0, 1, 3].map(|i| signing_keys(&keys[i], kind).unwrap());
        let msg = Sha256::digest(seed.to_le_bytes());
        let honest = try_sign_bip340(&set, &msg, &mut StdRng::seed_from_u64(seed), None).unwrap();
        let culprit = set[usize::try_from(seed % 3).unwrap()].params().i();
        let tampered = try_sign_bip340(&set, &msg, &mut StdRng::seed_from_u64(seed), Some(culprit));
        assert_eq!(tampered, Err(FrostError::InvalidShare(culprit)), "seed {seed}");
        if honest.nonce_negated() {
            odd += 1;
        } else {
            even += 1;
        }
    }
    assert!(odd > 0 && even > 0, "both nonce parities must occur ({odd} odd, {even} even)");
}

#[test]
fn frost_bip340_signatures_verify_with_libsecp256k1() {
    let start = Instant::now();
    pedpop_sets();
    let dkg_time = start.elapsed();

    let mut runner = TestRunner::new(ProptestConfig::with_cases(200));
    let (odd, even) = (Cell::new(0usize), Cell::new(0usize));
    let strategy = (
        any::<bool>(),
        any::<u64>(),
        any::<[u8; 32]>(),
        kind_strategy(),
        any::<[u8; 32]>(),
        0usize..4,
    );
    let start = Instant::now();
    runner
        .run(&strategy, |(use_pedpop, seed, extra, kind, msg, signers)| {
            let keys = if use_pedpop {
                // A PedPoP key set with an extra random tweak on top.
                let set = &pedpop_sets()[usize::try_from(seed % 10).unwrap()];
                set.iter().map(|k| k.clone().offset(scalar(extra))).collect::<Vec<_>>()
            } else {
                dkg(2, 3, seed)
            };
            // Signing sets: {1,2}, {1,3}, {2,3}, {1,2,3}.
            let set: Vec<_> = match signers {
                0 => vec![0, 1],
                1 => vec![0, 2],
                2 => vec![1, 2],
                _ => vec![0, 1, 2],
            }
            .into_iter()
            .map(|i| signing_keys(&keys[i], kind).unwrap())
            .collect();
            let q = output_key(keys[0].group_key(), kind).unwrap().to_x_only_public_key();
            prop_assert_eq!(&set[0].group_key().to_affine().x()[..], &q.serialize()[..]);
            let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
            let signature = sign_bip340(&set, &msg, &mut rng);
            prop_assert!(libsecp_verify(&signature.to_bytes(), msg, &q));
            if signature.nonce_negated() {
                odd.set(odd.get() + 1);
            } else {
                even.set(even.get() + 1);
            }
            Ok(())
        })
        .unwrap();
    eprintln!(
        "200 cases: {odd} with odd R (nonces negated), {even} with even R; \
         10 PedPoP 2-of-3 DKGs {dkg_time:?}, cases {:?}",
        start.elapsed(),
        odd = odd.get(),
        even = even.get(),
    );
    let (odd, even) = (odd.get(), even.get());
    assert!(odd > 0 && even > 0, "both nonce parities must occur ({odd} odd, {even} even)");
}

/// Independent statement of the kind offset (BIP340 tagged hash with sha2).
fn kind_offset(kind: OutputKind) -> Scalar {
    if kind == OutputKind::External {
        return Scalar::ZERO;
    }
    let tag = Sha256::digest(b"tc-bitcoin/v1/kind-offset");
    scalar(
        Sha256::new()
            .chain_update(tag)
            .chain_update(tag)
            .chain_update([kind as u8])
            .finalize()
            .into(),
    )
}

fn xonly(point: ProjectivePoint) -> UntweakedPublicKey {
    UntweakedPublicKey::from_slice(&point.to_affine().x()).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// `output_key` is the standard BIP86 derivation (rust-bitcoin's `tap_tweak`) of
    /// `P + o_kind·G + k·G` for the smallest k making both that key and the output key even.
    #[test]
    fn output_key_is_bip86_of_the_smallest_even_internal_key(secret in any::<[u8; 32]>()) {
        let secp = Secp::verification_only();
        let group_key = g() * scalar(secret);
        let mut keys = Vec::new();
        for kind in OutputKind::ALL {
            let derived = derive_key(group_key, kind).unwrap();
            let base = group_key + g() * kind_offset(kind);
            let mut k_found = None;
            for k in 0u64..512 {
                let candidate = base + g() * Scalar::from(k);
                if bool::from(candidate.to_affine().y_is_odd()) {
                    continue;
                }
                let (tweaked, parity) = xonly(candidate).tap_tweak(&secp, None);
                if parity == Parity::Even {
                    k_found = Some((k, candidate, tweaked));
                    break;
                }
            }
            let (k, internal, tweaked) = k_found.unwrap();
            prop_assert_eq!(derived.parity_offset, k);
            prop_assert_eq!(derived.internal_key, xonly(internal));
            prop_assert_eq!(derived.output_key, tweaked);
            prop_assert_eq!(output_key(group_key, kind).unwrap(), tweaked);
            prop_assert_eq!(
                script_pubkey(group_key, kind).unwrap(),
                ScriptBuf::new_p2tr(&secp, xonly(internal), None)
            );
            // Q = P + offset·G, with even y.
            let q = group_key + g() * derived.offset;
            prop_assert!(!bool::from(q.to_affine().y_is_odd()));
            prop_assert_eq!(xonly(q), tweaked.to_x_only_public_key());
            keys.push(tweaked);
        }
        keys.sort();
        keys.dedup();
        prop_assert_eq!(keys.len(), 4, "the four kinds must give four distinct keys");
    }
}

#[test]
fn signing_keys_group_key_is_the_output_key() {
    let keys = dkg(2, 3, 7);
    for kind in OutputKind::ALL {
        for k in &keys {
            let signing = signing_keys(k, kind).unwrap();
            let q = signing.group_key().to_affine();
            assert!(!bool::from(q.y_is_odd()));
            assert_eq!(&q.x()[..], &output_key(k.group_key(), kind).unwrap().serialize()[..]);
        }
    }
}

/// An unsigned transaction spending one of our outputs per kind in `kinds`.
fn transaction(group_key: ProjectivePoint, kinds: &[OutputKind]) -> SignableTransaction {
    bitcoin_network::testing::keys::spending(group_key, kinds)
}

/// Checks every input independently: 64-byte witness, libsecp256k1 accepts it for the sighash.
fn assert_all_inputs_verify(signable: &SignableTransaction, signed: &Transaction) {
    assert_eq!(signed.compute_txid(), signable.txid());
    let mut cache = SighashCache::new(signed);
    for (i, (input, prevout)) in signed.input.iter().zip(&signable.prevouts).enumerate() {
        assert_eq!(input.witness.len(), 1);
        let sig: [u8; 64] = input.witness.nth(0).unwrap().try_into().unwrap();
        let sighash = cache
            .taproot_key_spend_signature_hash(
                i,
                &Prevouts::All(&signable.prevouts),
                TapSighashType::Default,
            )
            .unwrap()
            .to_byte_array();
        let key = bitcoin::key::XOnlyPublicKey::from_slice(&prevout.script_pubkey.as_bytes()[2..])
            .unwrap();
        assert!(libsecp_verify(&sig, sighash, &key), "input {i}");
    }
}

#[test]
fn three_of_five_mixed_kinds_transaction() {
    let keys = dkg(3, 5, 35);
    let kinds = [OutputKind::External, OutputKind::Change, OutputKind::Forwarded];
    let signable = transaction(keys[0].group_key(), &kinds);
    let mut rng = StdRng::seed_from_u64(1);
    for set in [vec![0, 2, 4], vec![1, 2, 3], vec![0, 1, 3, 4]] {
        let signers = set.iter().map(|i| keys[*i].clone()).collect::<Vec<_>>();
        let signed = sign_transaction(&signers, signable.clone(), &mut rng).unwrap();
        assert_all_inputs_verify(&signable, &signed);
    }
    // Also with PedPoP keys and a Branch input.
    let keys = &pedpop_sets()[3];
    let kinds = [OutputKind::Branch, OutputKind::External, OutputKind::Branch];
    let signable = transaction(keys[0].group_key(), &kinds);
    let signed = sign_transaction(&keys[1..], signable.clone(), &mut rng).unwrap();
    assert_all_inputs_verify(&signable, &signed);
}

/// First round for `signers` (indexes into a 2-of-3 key set) on a 3-input transaction.
fn preprocessed(
    signers: &[usize],
) -> (SignableTransaction, Vec<(Participant, TransactionSignMachine, Vec<u8>)>) {
    let keys = dkg(2, 3, 23);
    let kinds = [OutputKind::External, OutputKind::Branch, OutputKind::Change];
    let signable = transaction(keys[0].group_key(), &kinds);
    let mut rng = StdRng::seed_from_u64(2);
    let machines = signers
        .iter()
        .map(|i| {
            let (machine, preprocess) = TransactionMachine::new(keys[*i].clone(), signable.clone())
                .unwrap()
                .preprocess(&mut rng);
            assert_eq!(preprocess.len(), 3 * 66);
            (keys[*i].params().i(), machine, preprocess)
        })
        .collect();
    (signable, machines)
}

fn others(
    messages: &HashMap<Participant, Vec<u8>>,
    i: Participant,
) -> HashMap<Participant, Vec<u8>> {
    messages.iter().filter(|(l, _)| **l != i).map(|(l, m)| (*l, m.clone())).collect()
}

/// Signs with participants 1, 2, 3 of a 2-of-3 key set; participant 3's share is altered by
/// `tamper`; returns what participants 1 and 2 get from `complete`.
fn complete_with_tampered_share(
    tamper: impl Fn(&mut Vec<u8>),
) -> Vec<Result<Transaction, SignError>> {
    let (_, machines) = preprocessed(&[0, 1, 2]);
    let preprocesses =
        machines.iter().map(|(i, _, pre)| (*i, pre.clone())).collect::<HashMap<_, _>>();
    let mut shares = HashMap::new();
    let mut signature_machines = Vec::new();
    for (i, machine, _) in machines {
        let (machine, mut share) = machine.sign(others(&preprocesses, i)).unwrap();
        assert_eq!(share.len(), 3 * 32);
        if i == p(3) {
            tamper(&mut share);
        }
        shares.insert(i, share);
        signature_machines.push((i, machine));
    }
    signature_machines
        .into_iter()
        .filter(|(i, _)| *i != p(3))
        .map(|(i, machine)| machine.complete(others(&shares, i)))
        .collect()
}

#[test]
fn tampered_share_blames_its_sender() {
    // Bit flips in each input's share (low and high bytes), and truncation / extension.
    let tampers: Vec<fn(&mut Vec<u8>)> = vec![
        |s| s[31] ^= 1,
        |s| s[32 + 31] ^= 0x10,
        |s| s[64 + 5] ^= 0x80,
        |s| s[0] ^= 0x80,
        |s| s.truncate(95),
        |s| s.truncate(64),
        |s| s.push(0),
        |s| s.extend([0; 32]),
        |s| s.clear(),
        |s| s[32..64].copy_from_slice(&[0xff; 32]),
    ];
    for (n, tamper) in tampers.into_iter().enumerate() {
        for result in complete_with_tampered_share(tamper) {
            match result {
                Err(SignError::InvalidShare(l)) => assert_eq!(l, p(3), "tamper {n}"),
                other => panic!("tamper {n}: expected InvalidShare(3), got {other:?}"),
            }
        }
    }
    // Untampered, both complete to the same valid transaction.
    let results = complete_with_tampered_share(|_| {});
    assert_eq!(results[0].as_ref().unwrap(), results[1].as_ref().unwrap());
}

#[test]
fn malformed_preprocess_blames_its_sender() {
    let tampers: Vec<fn(&mut Vec<u8>)> = vec![
        |pre| pre.truncate(3 * 66 - 1),
        |pre| pre.truncate(2 * 66),
        |pre| pre.clear(),
        |pre| pre.push(0),
        |pre| pre.extend(pre.clone()),
        // Not a point encoding.
        |pre| pre[66] = 5,
        // An x coordinate that is not on the curve (all 0xff is >= p).
        |pre| pre[133..165].copy_from_slice(&[0xff; 32]),
    ];
    for (n, tamper) in tampers.into_iter().enumerate() {
        let (_, mut machines) = preprocessed(&[0, 1, 2]);
        let mut preprocesses =
            machines.iter().map(|(i, _, pre)| (*i, pre.clone())).collect::<HashMap<_, _>>();
        tamper(preprocesses.get_mut(&p(2)).unwrap());
        let (i, machine, _) = machines.remove(0);
        match machine.sign(others(&preprocesses, i)) {
            Err(SignError::InvalidPreprocess(l)) => assert_eq!(l, p(2), "tamper {n}"),
            other => panic!("tamper {n}: expected InvalidPreprocess(2), got {:?}", other.err()),
        }
    }
}

#[test]
fn signing_set_errors() {
    // Too few signers (t = 2).
    let (_, mut machines) = preprocessed(&[0, 1]);
    let (_, machine, _) = machines.remove(0);
    assert!(matches!(machine.sign(HashMap::new()), Err(SignError::Frost(_))));

    // Including ourselves among the others.
    let (_, mut machines) = preprocessed(&[0, 1]);
    let pre0 = machines[0].2.clone();
    let pre1 = machines[1].2.clone();
    let (_, machine, _) = machines.remove(0);
    let result = machine.sign(HashMap::from([(p(1), pre0), (p(2), pre1)]));
    assert!(matches!(result, Err(SignError::Frost(_))), "{:?}", result.err());

    // Missing and unexpected shares.
    let (_, machines) = preprocessed(&[0, 1, 2]);
    let preprocesses =
        machines.iter().map(|(i, _, pre)| (*i, pre.clone())).collect::<HashMap<_, _>>();
    let mut shares = HashMap::new();
    let mut signature_machines = Vec::new();
    for (i, machine, _) in machines {
        let (machine, share) = machine.sign(others(&preprocesses, i)).unwrap();
        shares.insert(i, share);
        signature_machines.push(machine);
    }
    let mut signature_machines = signature_machines.into_iter();
    let m1 = signature_machines.next().unwrap();
    let result = m1.complete(HashMap::from([(p(2), shares[&p(2)].clone())]));
    assert!(matches!(result, Err(SignError::MissingParticipant(l)) if l == p(3)));
    let m2 = signature_machines.next().unwrap();
    let mut extra = others(&shares, p(2));
    extra.insert(p(2), shares[&p(2)].clone());
    let result = m2.complete(extra);
    assert!(matches!(result, Err(SignError::UnexpectedParticipant(l)) if l == p(2)));
}

#[test]
fn transaction_validation() {
    let keys = dkg(2, 3, 5);
    let group_key = keys[0].group_key();
    let signable = transaction(group_key, &[OutputKind::External, OutputKind::Change]);

    // Declared kind differs from the key the prevout was paid to.
    let mut wrong = signable.clone();
    wrong.kinds[1] = OutputKind::Forwarded;
    assert!(matches!(
        TransactionMachine::new(keys[0].clone(), wrong),
        Err(SignError::WrongKey { input: 1 })
    ));
    // Another group's key.
    let other = dkg(2, 3, 6);
    assert!(matches!(
        TransactionMachine::new(other[0].clone(), signable.clone()),
        Err(SignError::WrongKey { input: 0 })
    ));

    let SignableTransaction { tx, prevouts, kinds } = signable;
    assert!(matches!(
        SignableTransaction::new(tx.clone(), prevouts[..1].to_vec(), kinds.clone()),
        Err(SignError::Mismatch { inputs: 2, prevouts: 1, kinds: 2 })
    ));
    assert!(matches!(
        SignableTransaction::new(tx.clone(), prevouts.clone(), kinds[..1].to_vec()),
        Err(SignError::Mismatch { inputs: 2, prevouts: 2, kinds: 1 })
    ));
    let mut empty = tx;
    empty.input.clear();
    assert!(matches!(SignableTransaction::new(empty, vec![], vec![]), Err(SignError::NoInputs)));
}

#[test]
fn hundred_inputs_two_of_three() {
    let keys = dkg(2, 3, 100);
    let kinds = (0..100).map(|i| OutputKind::ALL[i % 4]).collect::<Vec<_>>();
    let signable = transaction(keys[0].group_key(), &kinds);
    let mut rng = StdRng::seed_from_u64(100);
    let start = Instant::now();
    let signed = sign_transaction(&keys[..2], signable.clone(), &mut rng).unwrap();
    let elapsed = start.elapsed();
    assert_all_inputs_verify(&signable, &signed);
    eprintln!("100-input 2-of-3 transaction, both signers' work (all rounds): {elapsed:?}");
    assert!(elapsed < Duration::from_secs(60));
}

/// A third party judges each input's share from the signers' public statement, their
/// preprocesses and the verification shares exactly as the signers' own aggregation does:
/// every honest share passes, every tampered one (each of `tampered_share_blames_its_sender`'s
/// alterations) fails, and a share for another statement fails.
#[test]
fn shares_are_judged_from_public_data_as_the_signers_judge_them() {
    use bitcoin_network::sign::check::{check_transaction_share, Statement};
    use signers::public::{Fault, PublicKeys};
    use std::collections::BTreeMap;

    let keys = dkg(2, 3, 23);
    let public = PublicKeys::<Secp256k1>::new(
        2,
        (1..=3).map(|i| keys[0].original_verification_share(p(i))).collect(),
    )
    .unwrap();
    let (signable, machines) = preprocessed(&[0, 1, 2]);
    let statement = TransactionMachine::new(keys[0].clone(), signable).unwrap().statement();
    assert_eq!(Statement::decode(&statement.encode()).unwrap(), statement);
    let preprocesses: BTreeMap<u16, Vec<u8>> =
        machines.iter().map(|(i, _, pre)| (u16::from(*i), pre.clone())).collect();
    let by_frost = machines.iter().map(|(i, _, pre)| (*i, pre.clone())).collect::<HashMap<_, _>>();
    let mut shares = BTreeMap::new();
    for (i, machine, _) in machines {
        let (_, share) = machine.sign(others(&by_frost, i)).unwrap();
        shares.insert(u16::from(i), share);
    }
    let judge = |statement: &Statement, pre: &BTreeMap<u16, Vec<u8>>, i: u16, share: &[u8]| {
        check_transaction_share(&public, statement, pre, i, share).unwrap()
    };
    for (i, share) in &shares {
        assert_eq!(judge(&statement, &preprocesses, *i, share), Ok(()), "participant {i}");
    }
    let tampers: Vec<fn(&mut Vec<u8>)> = vec![
        |s| s[31] ^= 1,
        |s| s[32 + 31] ^= 0x10,
        |s| s[64 + 5] ^= 0x80,
        |s| s.truncate(95),
        |s| s.push(0),
        |s| s.clear(),
        |s| s[32..64].copy_from_slice(&[0xff; 32]),
    ];
    for (n, tamper) in tampers.into_iter().enumerate() {
        let mut share = shares[&3].clone();
        tamper(&mut share);
        let verdict = judge(&statement, &preprocesses, 3, &share);
        assert!(
            matches!(verdict, Err(Fault::InvalidShare | Fault::UnreadableShare)),
            "tamper {n}: {verdict:?}"
        );
    }
    // Another transaction, another input's sighash, another kind of key: all fail.
    let other_txid = Statement { txid: [7; 32], ..statement.clone() };
    let mut other_sighash = statement.clone();
    other_sighash.inputs[1].1[0] ^= 1;
    let mut other_kind = statement.clone();
    other_kind.inputs[0].0 = OutputKind::Change;
    for other in [other_txid, other_sighash, other_kind] {
        assert_eq!(judge(&other, &preprocesses, 2, &shares[&2]), Err(Fault::InvalidShare));
    }
    // A malformed preprocess is its sender's fault, whoever's share is judged.
    let mut bad = preprocesses.clone();
    bad.get_mut(&1).unwrap().truncate(2 * 66);
    assert_eq!(judge(&statement, &bad, 2, &shares[&2]), Err(Fault::Preprocess(1)));
}
