//! Dealerless threshold key generation for a validator set's session.
//!
//! One session generates two keys with PedPoP (`dkg-pedpop`): a Ristretto key that signs
//! Batches and the network's key (secp256k1 for Bitcoin, Litecoin and Ethereum; Ed25519
//! for Monero). The coordinator relays the messages; see `docs/protocol.md`.
//!
//! Guarantees:
//! - [`dkg`]: each round is a deterministic function of the participant's sealed entropy,
//!   the attempt's parameters and the messages received. Recomputing a round after a
//!   restart yields byte-identical messages: a participant MUST NOT, and here cannot,
//!   send two different messages for one (session, attempt, round).
//! - Misbehaviour yields a [`dkg::Fault`] naming the culprit with [`dkg::Evidence`] that
//!   anyone holding the attempt's relayed messages can check with [`dkg::judge`], which
//!   blames the accuser instead when the accusation is false.
//! - [`store::KeyGen`] persists what it needs in the caller's write transaction, seals key
//!   shares and entropy with [`seal::Sealer`] (a copy of the database reveals neither),
//!   and activates a key only on the coordinator's confirmation of exactly that key pair.
//! - Invalid requests and messages are typed errors that change nothing.
#![deny(missing_docs)]

pub mod dkg;
pub mod seal;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;

pub use dkg::{
    Curve, CurveKeys, Evidence, Fault, GeneratedKeys, KeyGenParams, NetworkKeys, Round,
    VerificationShares,
};
pub use seal::{SealError, Sealer};
pub use store::{KeyGen, KeyGenPolicy, Malice};

/// Why a key-generation step could not run. None of these change any state.
#[derive(Debug, thiserror::Error)]
pub enum KeyGenError {
    /// The coordinator's parameters are malformed.
    #[error("invalid key-generation request: {0}")]
    InvalidParams(&'static str),
    /// Well-formed parameters this processor's operator does not allow
    /// ([`store::KeyGenPolicy`]).
    #[error("refused key-generation request: {0}")]
    Refused(String),
    /// A message set does not name exactly the expected participants.
    #[error("expected messages from {expected:?}, got them from {found:?}")]
    WrongParticipants {
        /// The other participants.
        expected: Vec<u16>,
        /// Who the messages were from.
        found: Vec<u16>,
    },
    /// A message from someone who is not a participant.
    #[error("message from validator {0}, who is not a participant")]
    UnexpectedSender(u16),
    /// A message needed to judge or proceed is missing.
    #[error("missing the message of validator {0}")]
    MissingMessage(u16),
    /// The message is for an attempt this processor is not running.
    #[error("message for session {session} attempt {attempt}, which is not the current attempt")]
    NotCurrent {
        /// Its session.
        session: u32,
        /// Its attempt.
        attempt: u32,
    },
    /// The confirmed key pair is not the one this processor generated.
    #[error("the coordinator confirmed keys this processor did not generate for session {0}")]
    ConfirmedUnknownKeys(u32),
    /// The cryptographic library rejected an input in a way no peer can be blamed for.
    #[error("key generation failed: {0}")]
    Crypto(&'static str),
    /// Sealing failed.
    #[error(transparent)]
    Seal(#[from] SealError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] db::DbError),
}
