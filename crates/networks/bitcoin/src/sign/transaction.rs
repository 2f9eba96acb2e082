//! Signing every (key-path taproot) input of a transaction in one two-round FROST run.

use std::{collections::HashMap, fmt};

use bitcoin::{
    hashes::Hash,
    key::XOnlyPublicKey,
    secp256k1::{schnorr, Message, Secp256k1 as Secp},
    sighash::{Prevouts, SighashCache, TapSighashType},
    taproot, ScriptBuf, Transaction, TxOut, Txid, Witness,
};
use modular_frost::{
    curve::Secp256k1,
    sign::{
        AlgorithmMachine, AlgorithmSignMachine, AlgorithmSignatureMachine, PreprocessMachine,
        SignMachine, SignatureMachine, Writable,
    },
    FrostError, Participant, ThresholdKeys,
};
use rand_core::{CryptoRng, RngCore};
use scanner::OutputKind;

use super::{script_pubkey, signing_keys, Bip340, SignError};

/// One signer's preprocess for one input (Bip340 has no addendum).
type Preprocess = modular_frost::sign::Preprocess<Secp256k1, ()>;
/// One signer's share for one input.
type Share = modular_frost::sign::SignatureShare<Secp256k1>;

/// An unsigned transaction whose inputs all spend our key-path taproot outputs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignableTransaction {
    /// The unsigned transaction (witnesses are replaced when signed).
    pub tx: Transaction,
    /// The output spent by each input, in input order.
    pub prevouts: Vec<TxOut>,
    /// For each input, the kind of key the spent output was paid to.
    pub kinds: Vec<OutputKind>,
}

impl SignableTransaction {
    /// Checks that there is at least one input and one prevout and one kind per input.
    pub fn new(
        tx: Transaction,
        prevouts: Vec<TxOut>,
        kinds: Vec<OutputKind>,
    ) -> Result<Self, SignError> {
        let signable = SignableTransaction { tx, prevouts, kinds };
        signable.validate()?;
        Ok(signable)
    }

    fn validate(&self) -> Result<(), SignError> {
        let inputs = self.tx.input.len();
        if inputs == 0 {
            return Err(SignError::NoInputs);
        }
        if self.prevouts.len() != inputs || self.kinds.len() != inputs {
            return Err(SignError::Mismatch {
                inputs,
                prevouts: self.prevouts.len(),
                kinds: self.kinds.len(),
            });
        }
        Ok(())
    }

    /// The transaction id (witnesses do not change it).
    pub fn txid(&self) -> Txid {
        self.tx.compute_txid()
    }

    /// The BIP341 key-spend sighash (`SIGHASH_DEFAULT`) of every input, in input order.
    pub fn sighashes(&self) -> Result<Vec<[u8; 32]>, SignError> {
        self.validate()?;
        let prevouts = Prevouts::All(&self.prevouts);
        let mut cache = SighashCache::new(&self.tx);
        (0..self.tx.input.len())
            .map(|i| {
                Ok(cache
                    .taproot_key_spend_signature_hash(i, &prevouts, TapSighashType::Default)?
                    .to_byte_array())
            })
            .collect()
    }
}

fn frost_error(e: FrostError) -> SignError {
    match e {
        FrostError::InvalidPreprocess(p) => SignError::InvalidPreprocess(p),
        FrostError::InvalidShare(p) => SignError::InvalidShare(p),
        other => SignError::Frost(other.to_string()),
    }
}

/// Participants of a message map in ascending order (deterministic culprit reporting).
fn sorted<T>(map: &HashMap<Participant, T>) -> Vec<Participant> {
    let mut participants = map.keys().copied().collect::<Vec<_>>();
    participants.sort_unstable();
    participants
}

/// Splits each of `signers`' messages (one message per input, concatenated in input order)
/// with `read`, in the order given: the first whose message does not parse, or has bytes
/// left over, is `blame`d (a missing message is an empty one). Returns one map per input.
fn read_per_input<M, T>(
    machines: &[M],
    signers: &[Participant],
    messages: &HashMap<Participant, Vec<u8>>,
    read: impl Fn(&M, &mut &[u8]) -> std::io::Result<T>,
    blame: impl Fn(Participant) -> SignError,
) -> Result<Vec<HashMap<Participant, T>>, SignError> {
    let mut per_input: Vec<HashMap<Participant, T>> =
        machines.iter().map(|_| HashMap::with_capacity(signers.len())).collect();
    for p in signers {
        let mut reader = messages.get(p).map(Vec::as_slice).unwrap_or_default();
        for (machine, map) in machines.iter().zip(per_input.iter_mut()) {
            let message = read(machine, &mut reader).map_err(|_| blame(*p))?;
            map.insert(*p, message);
        }
        if !reader.is_empty() {
            return Err(blame(*p));
        }
    }
    Ok(per_input)
}

/// Each signer's messages of every input re-encoded and concatenated, as they were sent.
#[cfg(feature = "testing")]
fn reencode<T: Writable>(per_input: &[HashMap<Participant, T>]) -> HashMap<Participant, Vec<u8>> {
    let mut out: HashMap<Participant, Vec<u8>> = HashMap::new();
    for map in per_input {
        for p in sorted(map) {
            if let Some(message) = map.get(&p) {
                out.entry(p).or_default().extend(message.serialize());
            }
        }
    }
    out
}

/// First round of signing a [`SignableTransaction`]: one FROST machine per input.
///
/// Not `Clone`: the preprocess (nonces) it creates must never be used twice.
pub struct TransactionMachine {
    tx: SignableTransaction,
    sighashes: Vec<[u8; 32]>,
    i: Participant,
    machines: Vec<AlgorithmMachine<Secp256k1, Bip340>>,
}

impl fmt::Debug for TransactionMachine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransactionMachine")
            .field("txid", &self.tx.txid())
            .field("inputs", &self.machines.len())
            .field("participant", &self.i)
            .finish_non_exhaustive()
    }
}

impl TransactionMachine {
    /// Prepares signing every input of `tx` with `keys` (the untweaked DKG keys).
    ///
    /// Input `i` is signed with [`signing_keys`]`(keys, tx.kinds[i])`; its prevout's
    /// `script_pubkey` must be exactly [`script_pubkey`] of that kind, else
    /// [`SignError::WrongKey`]. Each input's FROST transcript is bound to the txid and the
    /// input index, and its message is the input's BIP341 sighash.
    pub fn new(keys: ThresholdKeys<Secp256k1>, tx: SignableTransaction) -> Result<Self, SignError> {
        let sighashes = tx.sighashes()?;
        let txid = tx.txid();
        let mut by_kind: HashMap<OutputKind, (ThresholdKeys<Secp256k1>, ScriptBuf)> =
            HashMap::new();
        let mut machines = Vec::with_capacity(tx.kinds.len());
        for (input, (kind, prevout)) in tx.kinds.iter().zip(&tx.prevouts).enumerate() {
            let (kind_keys, script) = match by_kind.get(kind) {
                Some(derived) => derived.clone(),
                None => {
                    let derived =
                        (signing_keys(&keys, *kind)?, script_pubkey(keys.group_key(), *kind)?);
                    by_kind.insert(*kind, derived.clone());
                    derived
                }
            };
            if prevout.script_pubkey != script {
                return Err(SignError::WrongKey { input });
            }
            let transcript = bitcoin_sign::input_transcript(txid.to_byte_array(), input);
            machines.push(AlgorithmMachine::new(Bip340::new(transcript), kind_keys));
        }
        Ok(TransactionMachine { tx, sighashes, i: keys.params().i(), machines })
    }

    /// What this machine signs, for a third party to check shares against.
    pub fn statement(&self) -> bitcoin_sign::check::Statement {
        bitcoin_sign::check::Statement {
            txid: self.tx.txid().to_byte_array(),
            inputs: self.tx.kinds.iter().copied().zip(self.sighashes.iter().copied()).collect(),
        }
    }

    /// Creates fresh nonces for every input and returns this signer's preprocess: the
    /// per-input FROST preprocesses concatenated in input order (66 bytes per input).
    ///
    /// The returned machine holds the nonces in memory only and is consumed by `sign`.
    pub fn preprocess<R: RngCore + CryptoRng>(
        self,
        rng: &mut R,
    ) -> (TransactionSignMachine, Vec<u8>) {
        let mut bytes = Vec::with_capacity(66 * self.machines.len());
        let mut machines = Vec::with_capacity(self.machines.len());
        for machine in self.machines {
            let (machine, preprocess) = machine.preprocess(rng);
            bytes.extend(preprocess.serialize());
            machines.push(machine);
        }
        (
            TransactionSignMachine { tx: self.tx, sighashes: self.sighashes, i: self.i, machines },
            bytes,
        )
    }
}

/// Second round: takes the other signers' preprocesses and produces this signer's shares.
///
/// Not `Clone`: signing consumes the nonces.
pub struct TransactionSignMachine {
    tx: SignableTransaction,
    sighashes: Vec<[u8; 32]>,
    i: Participant,
    machines: Vec<AlgorithmSignMachine<Secp256k1, Bip340>>,
}

impl fmt::Debug for TransactionSignMachine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransactionSignMachine")
            .field("txid", &self.tx.txid())
            .field("inputs", &self.machines.len())
            .field("participant", &self.i)
            .finish_non_exhaustive()
    }
}

impl TransactionSignMachine {
    /// `preprocesses`: the OTHER members of the signing set (t-1 or more), by participant index,
    /// each the exact bytes that signer's [`TransactionMachine::preprocess`] returned.
    ///
    /// Every preprocess is parsed before any share is computed: one that is malformed,
    /// truncated or has trailing bytes gives [`SignError::InvalidPreprocess`] naming its sender
    /// (the lowest index if several are bad). A signing set that is too small, includes this
    /// signer or names an index above `n` gives [`SignError::Frost`]. Returns the machine for
    /// the last round and this signer's shares, concatenated in input order (32 bytes each).
    pub fn sign(
        self,
        preprocesses: HashMap<Participant, Vec<u8>>,
    ) -> Result<(TransactionSignatureMachine, Vec<u8>), SignError> {
        let inputs = self.machines.len();
        let others = sorted(&preprocesses);
        let per_input = self.read_preprocesses(&others, &preprocesses)?;

        let mut machines = Vec::with_capacity(inputs);
        let mut shares = Vec::with_capacity(32 * inputs);
        for ((machine, map), sighash) in
            self.machines.into_iter().zip(per_input).zip(&self.sighashes)
        {
            let (machine, share) = machine.sign(map, sighash).map_err(frost_error)?;
            shares.extend(share.serialize());
            machines.push(machine);
        }
        Ok((
            TransactionSignatureMachine {
                tx: self.tx,
                sighashes: self.sighashes,
                i: self.i,
                others,
                machines,
            },
            shares,
        ))
    }
}

/// Last round: aggregates the shares into a signed transaction.
pub struct TransactionSignatureMachine {
    tx: SignableTransaction,
    sighashes: Vec<[u8; 32]>,
    i: Participant,
    others: Vec<Participant>,
    machines: Vec<AlgorithmSignatureMachine<Secp256k1, Bip340>>,
}

impl fmt::Debug for TransactionSignatureMachine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransactionSignatureMachine")
            .field("txid", &self.tx.txid())
            .field("inputs", &self.machines.len())
            .field("participant", &self.i)
            .field("others", &self.others)
            .finish_non_exhaustive()
    }
}

impl TransactionSignatureMachine {
    /// `shares`: the shares of exactly the other signers whose preprocesses were passed to
    /// [`TransactionSignMachine::sign`], each the exact bytes that signer's `sign` returned.
    ///
    /// A missing or extra signer gives [`SignError::MissingParticipant`] /
    /// [`SignError::UnexpectedParticipant`]. A malformed, truncated or extended share, or one
    /// that does not verify against its sender's verification share, gives
    /// [`SignError::InvalidShare`] naming the sender. Then every input's signature is verified
    /// with libsecp256k1 against the prevout's x-only key and sighash before the transaction
    /// (each witness = the 64-byte signature) is returned; a rejection there is a bug and is
    /// reported as [`SignError::Verification`].
    pub fn complete(self, shares: HashMap<Participant, Vec<u8>>) -> Result<Transaction, SignError> {
        if let Some(p) = self.others.iter().find(|p| !shares.contains_key(p)) {
            return Err(SignError::MissingParticipant(*p));
        }
        if let Some(p) = sorted(&shares).into_iter().find(|p| !self.others.contains(p)) {
            return Err(SignError::UnexpectedParticipant(p));
        }

        let inputs = self.machines.len();
        let per_input = self.read_shares(&shares)?;

        let mut signatures = Vec::with_capacity(inputs);
        for (machine, map) in self.machines.into_iter().zip(per_input) {
            signatures.push(machine.complete(map).map_err(frost_error)?);
        }

        let SignableTransaction { mut tx, prevouts, .. } = self.tx;
        let secp = Secp::verification_only();
        for (input, ((signature, sighash), prevout)) in
            signatures.iter().zip(&self.sighashes).zip(&prevouts).enumerate()
        {
            let verification = || -> Option<schnorr::Signature> {
                let script = prevout.script_pubkey.as_bytes();
                if !prevout.script_pubkey.is_p2tr() {
                    return None;
                }
                let key = XOnlyPublicKey::from_slice(script.get(2..34)?).ok()?;
                let signature = schnorr::Signature::from_slice(&signature.to_bytes()).ok()?;
                let message = Message::from_digest(*sighash);
                secp.verify_schnorr(&signature, &message, &key).ok()?;
                Some(signature)
            };
            let Some(signature) = verification() else {
                tracing::error!(input, txid = %tx.compute_txid(), "libsecp256k1 rejected an aggregated BIP340 signature");
                return Err(SignError::Verification { input });
            };
            let witness = Witness::p2tr_key_spend(&taproot::Signature {
                signature,
                sighash_type: TapSighashType::Default,
            });
            if let Some(txin) = tx.input.get_mut(input) {
                txin.witness = witness;
            }
        }
        Ok(tx)
    }
}

impl TransactionSignMachine {
    /// The preprocesses of `others` (ascending), parsed per input as [`Self::sign`] does.
    fn read_preprocesses(
        &self,
        others: &[Participant],
        preprocesses: &HashMap<Participant, Vec<u8>>,
    ) -> Result<Vec<HashMap<Participant, Preprocess>>, SignError> {
        read_per_input(
            &self.machines,
            others,
            preprocesses,
            |machine, reader| machine.read_preprocess(reader),
            SignError::InvalidPreprocess,
        )
    }

    /// The decoder [`Self::sign`] runs on the other signers' preprocesses, for fuzzing
    /// (feature `testing`; `sign` consumes the machine): each signer's preprocess as read
    /// and re-encoded, or the error `sign` would return for it.
    #[cfg(feature = "testing")]
    pub fn parse_preprocesses(
        &self,
        preprocesses: &HashMap<Participant, Vec<u8>>,
    ) -> Result<HashMap<Participant, Vec<u8>>, SignError> {
        Ok(reencode(&self.read_preprocesses(&sorted(preprocesses), preprocesses)?))
    }
}

impl TransactionSignatureMachine {
    /// The shares of the signing set, parsed per input as [`Self::complete`] does.
    fn read_shares(
        &self,
        shares: &HashMap<Participant, Vec<u8>>,
    ) -> Result<Vec<HashMap<Participant, Share>>, SignError> {
        read_per_input(
            &self.machines,
            &self.others,
            shares,
            |machine, reader| machine.read_share(reader),
            SignError::InvalidShare,
        )
    }

    /// The decoder [`Self::complete`] runs on the other signers' shares, for fuzzing
    /// (feature `testing`; `complete` consumes the machine): each signer's share as read
    /// and re-encoded, or the error `complete` would return for it.
    #[cfg(feature = "testing")]
    pub fn parse_shares(
        &self,
        shares: &HashMap<Participant, Vec<u8>>,
    ) -> Result<HashMap<Participant, Vec<u8>>, SignError> {
        Ok(reencode(&self.read_shares(shares)?))
    }
}
