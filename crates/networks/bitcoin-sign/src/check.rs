//! A transaction signer's shares checked from public data ([`signers::public`]), so that
//! the coordinator can judge blame in plan signing as it does for Batches.
//!
//! What the signers sign is stated by each of them as a [`Statement`]: the txid (which
//! every input's FROST transcript is bound to) and, per input, the kind of key it spends
//! (which decides the public offset of the signing keys) and its BIP341 sighash (the
//! message). A preprocess is the per-input preprocesses concatenated (66 bytes each), a
//! share the per-input shares (32 bytes each), as the network crate's `TransactionMachine` makes them.
use std::collections::BTreeMap;

use crate::OutputKind;
use borsh::{BorshDeserialize, BorshSerialize};
use modular_frost::curve::Secp256k1;
use signers::public::{check_preprocess, check_share as check_one, CheckError, Fault, PublicKeys};

use crate::{input_transcript, signing_keys, Bip340};

/// Bytes of one input's preprocess (two compressed points).
pub const PREPROCESS_LEN: usize = 66;
/// Bytes of one input's share (a scalar).
pub const SHARE_LEN: usize = 32;
/// The most inputs a statement may list (bounds what a peer can make a checker do).
pub const MAX_INPUTS: usize = 10_000;

/// What the signers of one transaction sign, for a third party to check shares against.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct Statement {
    /// The transaction id.
    pub txid: [u8; 32],
    /// Per input, in order: the kind of key it spends and its sighash.
    pub inputs: Vec<(OutputKind, [u8; 32])>,
}

impl Statement {
    /// Encoded, for the wire.
    pub fn encode(&self) -> Vec<u8> {
        borsh::to_vec(self).unwrap_or_default()
    }

    /// Decodes a statement a peer sent (at most [`MAX_INPUTS`] inputs, at least one).
    pub fn decode(bytes: &[u8]) -> Result<Self, CheckError> {
        let statement = borsh::from_slice::<Statement>(bytes)
            .map_err(|_| CheckError::Set("the statement does not decode"))?;
        if statement.inputs.is_empty() || statement.inputs.len() > MAX_INPUTS {
            return Err(CheckError::Set("the statement lists no inputs, or too many"));
        }
        Ok(statement)
    }
}

/// Whether `preprocess` is well formed for the transaction `statement` describes.
pub fn check_transaction_preprocess(statement: &Statement, preprocess: &[u8]) -> bool {
    let inputs = statement.inputs.len();
    let algorithm = Bip340::new(input_transcript(statement.txid, 0));
    preprocess.len() == inputs * PREPROCESS_LEN
        && preprocess.chunks(PREPROCESS_LEN).all(|chunk| check_preprocess(&algorithm, chunk))
}

/// Checks `accused`'s `share` (every input's) of the transaction `statement` describes,
/// given the signing set's preprocesses by key index and the network key's public keys.
/// See [`signers::public::check_share`] for what the verdicts mean.
pub fn check_transaction_share(
    keys: &PublicKeys<Secp256k1>,
    statement: &Statement,
    preprocesses: &BTreeMap<u16, Vec<u8>>,
    accused: u16,
    share: &[u8],
) -> Result<Result<(), Fault>, CheckError> {
    let inputs = statement.inputs.len();
    for (l, preprocess) in preprocesses {
        if !check_transaction_preprocess(statement, preprocess) {
            return Ok(Err(Fault::Preprocess(*l)));
        }
    }
    if share.len() != inputs * SHARE_LEN {
        return Ok(Err(Fault::UnreadableShare));
    }
    let stand_in = keys.stand_in(accused)?;
    // Each kind's keys once (as the signers derive them once per kind).
    let mut by_kind = BTreeMap::new();
    for (input, (kind, sighash)) in statement.inputs.iter().enumerate() {
        let kind_keys = match by_kind.get(kind) {
            Some(keys) => keys,
            None => {
                let derived = signing_keys(&stand_in, *kind)
                    .map_err(|_| CheckError::Keys("no signing keys derive from the group key"))?;
                by_kind.entry(*kind).or_insert(derived)
            }
        };
        let per_input: BTreeMap<u16, Vec<u8>> = preprocesses
            .iter()
            .map(|(l, p)| (*l, p[input * PREPROCESS_LEN..(input + 1) * PREPROCESS_LEN].to_vec()))
            .collect();
        let algorithm = Bip340::new(input_transcript(statement.txid, input));
        let share = &share[input * SHARE_LEN..(input + 1) * SHARE_LEN];
        let verdict = check_one(algorithm, kind_keys, &per_input, sighash, share)?;
        if verdict.is_err() {
            return Ok(verdict);
        }
    }
    Ok(Ok(()))
}
