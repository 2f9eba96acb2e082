//! The Bitcoin network's decoders of bytes from the chain and from other signers, fed
//! directly (see `primitives::testing::fuzz`):
//! - `instruction::decode`, a deposit's OP_RETURN payload, and `instruction::of_transaction`
//!   on a mutated OP_RETURN script: whatever they accept is exactly the encoding of the
//!   instruction returned (one push), with a standard return address;
//! - the transaction signing machines' readers of the other signers' preprocesses
//!   (`TransactionSignMachine::sign`) and shares (`TransactionSignatureMachine::complete`),
//!   through their `testing` hooks: accepted messages re-encode to exactly the bytes read,
//!   rejected ones blame their sender.
//!
//! The node's HTTP responses are parsed by hyper; `rpc::tests` checks how the client
//! treats malformed, truncated and oversized ones.
//!
//! `TC_FUZZ_ITERATIONS` sets the number of mutants per decoder; `TC_FUZZ_SEED` the seed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use bitcoin::{
    absolute::LockTime, hashes::Hash, transaction::Version, Amount, OutPoint, ScriptBuf, Sequence,
    Transaction, TxIn, TxOut, Txid, Witness,
};
use bitcoin_network::{
    address::Address,
    instruction,
    sign::{
        script_pubkey, SignError, SignableTransaction, TransactionMachine, TransactionSignMachine,
        TransactionSignatureMachine,
    },
    testing::keys::{dkg, SeededRng},
};
use modular_frost::{curve::Secp256k1, Participant, ThresholdKeys};
use primitives::{
    testing::fuzz::{self, fuzz, Outcome, TrackingAllocator},
    ExternalAddress, InInstruction, SettlementAccount,
};
use scanner::{Instruction, OutputKind};

#[global_allocator]
static ALLOCATOR: TrackingAllocator = TrackingAllocator;

fn p(i: u16) -> Participant {
    Participant::new(i).unwrap()
}

/// Instructions with no return address and with one of every standard type.
fn instructions() -> Vec<InInstruction> {
    let scripts: [&[u8]; 5] = [
        &[&[0x76, 0xa9, 0x14][..], &[1; 20], &[0x88, 0xac]].concat(),
        &[&[0xa9, 0x14][..], &[2; 20], &[0x87]].concat(),
        &[&[0x00, 0x14][..], &[3; 20]].concat(),
        &[&[0x00, 0x20][..], &[4; 32]].concat(),
        &[&[0x51, 0x20][..], &[5; 32]].concat(),
    ];
    std::iter::once(None)
        .chain(scripts.iter().map(|s| Some(ExternalAddress::new(s.to_vec()).unwrap())))
        .enumerate()
        .map(|(i, return_address)| InInstruction {
            account: SettlementAccount([i as u8 * 37; 32]),
            return_address,
        })
        .collect()
}

/// What a decoder of deposit instructions may return for `data`: `Valid` only for the
/// exact encoding of a returned instruction whose return address is standard.
fn check_valid(found: Instruction, data: &[u8]) -> Outcome {
    match found {
        Instruction::Valid(i) => {
            assert_eq!(instruction::encode(&i).unwrap(), data, "accepted a non-canonical payload");
            if let Some(address) = &i.return_address {
                assert!(Address::from_external(address).is_ok(), "a non-standard return address");
            }
            Outcome::Accepted
        }
        Instruction::Invalid => Outcome::Rejected,
        Instruction::Missing => panic!("a payload was read as no instruction"),
    }
}

#[test]
fn op_return_payloads_decode_canonically_or_not_at_all() {
    let seeds: Vec<Vec<u8>> =
        instructions().iter().map(|i| instruction::encode(i).unwrap()).collect();
    let report = fuzz("bitcoin instruction::decode", &seeds, fuzz::iterations(), |data| {
        check_valid(instruction::decode(data), data)
    });
    assert!(report.rejected > report.inputs / 2, "the mutator barely mutates");
}

/// The push prefixes a script may put before `len` bytes of data: the minimal one, and the
/// longer forms (non-minimal pushes are standard in an OP_RETURN output).
fn push_prefixes(len: usize) -> Vec<Vec<u8>> {
    let mut prefixes =
        vec![vec![0x4c, len as u8], vec![0x4d, len as u8, 0], vec![0x4e, len as u8, 0, 0, 0]];
    if len <= 75 {
        prefixes.push(vec![len as u8]);
    }
    prefixes
}

#[test]
fn op_return_scripts_decode_canonically_or_not_at_all() {
    let seeds: Vec<Vec<u8>> =
        instructions().iter().map(|i| instruction::script(i).unwrap().to_bytes()).collect();
    // The script is the first OP_RETURN output, after an ordinary one.
    let ordinary = [&[0x00, 0x14][..], &[9; 20]].concat();
    let mut tx = Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![],
        output: vec![
            TxOut { value: Amount::from_sat(1000), script_pubkey: ScriptBuf::from_bytes(ordinary) },
            TxOut { value: Amount::ZERO, script_pubkey: ScriptBuf::new() },
        ],
    };
    let report =
        fuzz("bitcoin instruction::of_transaction", &seeds, fuzz::iterations(), |script| {
            tx.output[1].script_pubkey = ScriptBuf::from_bytes(script.to_vec());
            match instruction::of_transaction(&tx) {
                Instruction::Missing => {
                    assert_ne!(script.first(), Some(&0x6a), "an OP_RETURN output was missed");
                    Outcome::Rejected
                }
                Instruction::Invalid => Outcome::Rejected,
                Instruction::Valid(i) => {
                    // Exactly OP_RETURN, then one push of the instruction's encoding.
                    let payload = instruction::encode(&i).unwrap();
                    let exact = push_prefixes(payload.len())
                        .iter()
                        .any(|prefix| *script == [&[0x6a][..], prefix, &payload].concat());
                    assert!(exact, "accepted a script that is not one push of the instruction");
                    check_valid(Instruction::Valid(i), &payload)
                }
            }
        });
    assert!(report.rejected > report.inputs / 2, "the mutator barely mutates");
}

/// An unsigned transaction spending one of our outputs of each of `kinds`.
fn signable(keys: &ThresholdKeys<Secp256k1>, kinds: &[OutputKind]) -> SignableTransaction {
    let group_key = keys.group_key();
    let tx = Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: (0..kinds.len())
            .map(|i| TxIn {
                previous_output: OutPoint { txid: Txid::from_byte_array([i as u8; 32]), vout: 0 },
                script_sig: ScriptBuf::new(),
                sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                witness: Witness::new(),
            })
            .collect(),
        output: vec![TxOut {
            value: Amount::from_sat(5_000),
            script_pubkey: script_pubkey(group_key, OutputKind::Change).unwrap(),
        }],
    };
    let prevouts = kinds
        .iter()
        .map(|kind| TxOut {
            value: Amount::from_sat(10_000),
            script_pubkey: script_pubkey(group_key, *kind).unwrap(),
        })
        .collect();
    SignableTransaction::new(tx, prevouts, kinds.to_vec()).unwrap()
}

const KINDS: [OutputKind; 2] = [OutputKind::External, OutputKind::Change];

/// Signer `i`'s (index into `keys`) first round on the two-input transaction.
fn preprocessed(
    keys: &[ThresholdKeys<Secp256k1>],
    i: usize,
    rng: &mut SeededRng,
) -> (TransactionSignMachine, Vec<u8>) {
    TransactionMachine::new(keys[i].clone(), signable(&keys[0], &KINDS)).unwrap().preprocess(rng)
}

/// Signers 1 and 2 sign: 1's machine for the last round, and 2's shares.
fn signed(
    keys: &[ThresholdKeys<Secp256k1>],
    rng: &mut SeededRng,
) -> (TransactionSignatureMachine, Vec<u8>) {
    let (m1, pre1) = preprocessed(keys, 0, rng);
    let (m2, pre2) = preprocessed(keys, 1, rng);
    let (m1, _) = m1.sign(HashMap::from([(p(2), pre2)])).unwrap();
    let (_, share2) = m2.sign(HashMap::from([(p(1), pre1)])).unwrap();
    (m1, share2)
}

/// Messages by signer.
type Messages = HashMap<Participant, Vec<u8>>;

/// Feeds mutants of `seeds`, as signer 2's message, to `parse`: accepted messages must
/// re-encode exactly, rejected ones must blame signer 2 with `blame`.
fn canonical(
    name: &str,
    seeds: &[Vec<u8>],
    parse: impl Fn(&Messages) -> Result<Messages, SignError>,
    blame: fn(&SignError) -> Option<Participant>,
) {
    for seed in seeds {
        let parsed = parse(&HashMap::from([(p(2), seed.clone())])).unwrap();
        assert_eq!(parsed[&p(2)], *seed, "{name}: an honest message is refused");
    }
    let report = fuzz(name, seeds, fuzz::iterations(), |bytes| {
        match parse(&HashMap::from([(p(2), bytes.to_vec())])) {
            Ok(parsed) => {
                assert_eq!(parsed[&p(2)], bytes, "accepted a non-canonical encoding");
                Outcome::Accepted
            }
            Err(e) => {
                assert_eq!(blame(&e), Some(p(2)), "the sender is blamed: {e}");
                Outcome::Rejected
            }
        }
    });
    assert!(report.rejected > report.inputs / 2, "the mutator barely mutates");
}

#[test]
fn transaction_preprocesses_decode_canonically_or_not_at_all() {
    let keys = dkg(2, 3, 71);
    let mut rng = SeededRng::new(fuzz::seed());
    let (machine, _) = preprocessed(&keys, 0, &mut rng);
    let seeds: Vec<Vec<u8>> = (0..8).map(|i| preprocessed(&keys, 1 + i % 2, &mut rng).1).collect();
    canonical(
        "bitcoin transaction preprocess",
        &seeds,
        |map| machine.parse_preprocesses(map),
        |e| match e {
            SignError::InvalidPreprocess(p) => Some(*p),
            _ => None,
        },
    );
}

#[test]
fn transaction_shares_decode_canonically_or_not_at_all() {
    let keys = dkg(2, 3, 72);
    let mut rng = SeededRng::new(fuzz::seed());
    let (machine, share) = signed(&keys, &mut rng);
    let seeds: Vec<Vec<u8>> =
        std::iter::once(share).chain((0..7).map(|_| signed(&keys, &mut rng).1)).collect();
    canonical(
        "bitcoin transaction share",
        &seeds,
        |map| machine.parse_shares(map),
        |e| match e {
            SignError::InvalidShare(p) => Some(*p),
            _ => None,
        },
    );
}
