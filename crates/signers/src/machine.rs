//! One signing attempt's protocol run, behind object-safe traits so that the attempt
//! manager ([`crate::attempts::Signers`]) is generic over what is signed.
//!
//! Each step consumes its state by value (`self: Box<Self>`): the nonces of a preprocess
//! can be used for at most one signature share, and none of these types is `Clone`.
//! Participants are the key's 1-based indices ([`messages::Participant`]).
use std::collections::{BTreeMap, HashMap};
use std::fmt;

use ciphersuite::group::GroupEncoding;
use messages::Participant;
use modular_frost::algorithm::Algorithm;
use modular_frost::curve::{Curve, Ristretto};
use modular_frost::sign::{
    AlgorithmMachine, AlgorithmSignMachine, AlgorithmSignatureMachine, PreprocessMachine,
    SignMachine, SignatureMachine, Writable,
};
use modular_frost::{FrostError, ThresholdKeys};
use primitives::Batch;
use rand_core::OsRng;

use crate::batch;

/// Why an attempt could not go on.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum SignFailure {
    /// This participant sent an invalid preprocess or share (identifiable abort).
    #[error("participant {0} sent an invalid preprocess or share")]
    Blame(Participant),
    /// The attempt failed without a culprit (e.g. a signing set smaller than the threshold
    /// or with an unknown participant); the coordinator's timeout reattempts.
    #[error("signing failed: {0}")]
    Failed(String),
}

/// Round 0 of one attempt: nothing has been generated yet.
pub trait Machine: Send {
    /// Generates fresh nonces (from `OsRng`) and returns the machine holding them with the
    /// preprocess (nonce commitments) to publish.
    fn preprocess(self: Box<Self>) -> (Box<dyn Signing>, Vec<u8>);

    /// What this machine signs, in the network's encoding, for a third party to check the
    /// signers' shares against (see [`crate::public`]); `None` when the item is stated
    /// otherwise (a Batch is reported whole).
    fn statement(&self) -> Option<Vec<u8>> {
        None
    }
}

/// Round 1 of one attempt: nonces generated, preprocess published.
pub trait Signing: Send {
    /// Signs with the preprocesses of the OTHER members of the signing set (not ours),
    /// returning the machine that aggregates and our signature share. Consumes the nonces
    /// whatever the outcome.
    fn sign(
        self: Box<Self>,
        others: HashMap<Participant, Vec<u8>>,
    ) -> Result<(Box<dyn Completing>, Vec<u8>), SignFailure>;
}

/// Round 2 of one attempt: our share is published.
pub trait Completing: Send {
    /// Aggregates with the OTHER members' shares and verifies the result, returning the
    /// signed item's bytes.
    fn complete(
        self: Box<Self>,
        shares: HashMap<Participant, Vec<u8>>,
    ) -> Result<Vec<u8>, SignFailure>;
}

/// Turns an aggregated (and by FROST already verified) signature into the signed item's
/// bytes, after any check of its own.
pub type Finish<S> = Box<dyn FnOnce(S) -> Result<Vec<u8>, SignFailure> + Send>;

/// [`Machine`] for any modular-frost [`Algorithm`]: the message is fixed at construction
/// and `finish` encodes the signature.
pub struct FrostMachine<C: Curve, A: Algorithm<C>> {
    machine: AlgorithmMachine<C, A>,
    message: Vec<u8>,
    finish: Finish<A::Signature>,
    statement: Option<Vec<u8>>,
}

impl<C: Curve, A: Algorithm<C>> fmt::Debug for FrostMachine<C, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrostMachine")
            .field("message_len", &self.message.len())
            .finish_non_exhaustive()
    }
}

impl<C: Curve, A: Algorithm<C>> FrostMachine<C, A> {
    /// A machine signing `message` with `algorithm` (a fresh instance: algorithms carry a
    /// transcript and are single-use) under `keys`.
    pub fn new(
        algorithm: A,
        keys: ThresholdKeys<C>,
        message: Vec<u8>,
        finish: impl FnOnce(A::Signature) -> Result<Vec<u8>, SignFailure> + Send + 'static,
    ) -> Self {
        FrostMachine {
            machine: AlgorithmMachine::new(algorithm, keys),
            message,
            finish: Box::new(finish),
            statement: None,
        }
    }

    /// The same, stating `statement` as what it signs ([`Machine::statement`]).
    pub fn stating(mut self, statement: Vec<u8>) -> Self {
        self.statement = Some(statement);
        self
    }
}

struct FrostSigning<C: Curve, A: Algorithm<C>> {
    machine: AlgorithmSignMachine<C, A>,
    message: Vec<u8>,
    finish: Finish<A::Signature>,
}

struct FrostCompleting<C: Curve, A: Algorithm<C>> {
    machine: AlgorithmSignatureMachine<C, A>,
    finish: Finish<A::Signature>,
}

fn frost_participant(p: Participant) -> Result<modular_frost::Participant, SignFailure> {
    modular_frost::Participant::new(p)
        .ok_or_else(|| SignFailure::Failed("participant index 0".into()))
}

/// A modular-frost error as an attempt's failure: an invalid preprocess or share blames
/// its sender (for machines of other crates built on modular-frost's traits too).
pub fn frost_failure(e: FrostError) -> SignFailure {
    match e {
        FrostError::InvalidPreprocess(p) | FrostError::InvalidShare(p) => {
            SignFailure::Blame(u16::from(p))
        }
        other => SignFailure::Failed(other.to_string()),
    }
}

/// Parses every message with `read` (in participant order, so the culprit reported among
/// several is deterministic); unreadable or over-long messages blame their sender. Public
/// for machines of other crates built on modular-frost's traits (Monero's transaction
/// machine).
pub fn parse_all<T>(
    messages: HashMap<Participant, Vec<u8>>,
    read: impl Fn(&mut &[u8]) -> std::io::Result<T>,
) -> Result<HashMap<modular_frost::Participant, T>, SignFailure> {
    let sorted: BTreeMap<_, _> = messages.into_iter().collect();
    let mut out = HashMap::with_capacity(sorted.len());
    for (p, bytes) in sorted {
        let index = frost_participant(p)?;
        let mut reader = bytes.as_slice();
        let parsed = read(&mut reader).map_err(|_| SignFailure::Blame(p))?;
        if !reader.is_empty() {
            return Err(SignFailure::Blame(p));
        }
        out.insert(index, parsed);
    }
    Ok(out)
}

/// `parse_all`, the decoder both rounds run on the other signers' messages, for fuzzing
/// (feature `testing`): pass the closure a round passes (`|r| machine.read_preprocess(r)`
/// or `|r| machine.read_share(r)`). Through the rounds themselves every input would cost
/// a fresh machine and preprocess, since a round consumes its machine.
#[cfg(feature = "testing")]
pub fn parse_messages<T>(
    messages: HashMap<Participant, Vec<u8>>,
    read: impl Fn(&mut &[u8]) -> std::io::Result<T>,
) -> Result<HashMap<modular_frost::Participant, T>, SignFailure> {
    parse_all(messages, read)
}

impl<C: Curve + 'static, A: Algorithm<C> + 'static> Machine for FrostMachine<C, A> {
    fn statement(&self) -> Option<Vec<u8>> {
        self.statement.clone()
    }

    fn preprocess(self: Box<Self>) -> (Box<dyn Signing>, Vec<u8>) {
        let FrostMachine { machine, message, finish, .. } = *self;
        let (machine, preprocess) = machine.preprocess(&mut OsRng);
        (Box::new(FrostSigning { machine, message, finish }), preprocess.serialize())
    }
}

impl<C: Curve + 'static, A: Algorithm<C> + 'static> Signing for FrostSigning<C, A> {
    fn sign(
        self: Box<Self>,
        others: HashMap<Participant, Vec<u8>>,
    ) -> Result<(Box<dyn Completing>, Vec<u8>), SignFailure> {
        let FrostSigning { machine, message, finish } = *self;
        let others = parse_all(others, |r| machine.read_preprocess(r))?;
        let (machine, share) = machine.sign(others, &message).map_err(frost_failure)?;
        Ok((Box::new(FrostCompleting { machine, finish }), share.serialize()))
    }
}

impl<C: Curve + 'static, A: Algorithm<C> + 'static> Completing for FrostCompleting<C, A> {
    fn complete(
        self: Box<Self>,
        shares: HashMap<Participant, Vec<u8>>,
    ) -> Result<Vec<u8>, SignFailure> {
        let FrostCompleting { machine, finish } = *self;
        let shares = parse_all(shares, |r| machine.read_share(r))?;
        let signature = machine.complete(shares).map_err(frost_failure)?;
        finish(signature)
    }
}

/// A machine signing `batch` with the session's Ristretto key; it completes with the
/// 64-byte signature ([`batch::signature_bytes`]), checked with [`batch::verify`] against
/// `keys.group_key()` before it is returned.
pub fn batch_machine(keys: ThresholdKeys<Ristretto>, batch: &Batch) -> Box<dyn Machine> {
    let group_key: [u8; 32] = keys.group_key().to_bytes();
    let signed = batch.clone();
    Box::new(FrostMachine::new(batch::algorithm(batch), keys, batch::message(batch), move |sig| {
        let bytes = batch::signature_bytes(&sig);
        batch::verify(&group_key, &signed, &bytes)
            .map_err(|e| SignFailure::Failed(format!("the aggregated Batch signature: {e}")))?;
        Ok(bytes.to_vec())
    }))
}
