//! BIP340 FROST signing for key-path taproot outputs.
//!
//! - [`keys`]: each [`OutputKind`](scanner::OutputKind) has its own BIP86-style output key
//!   derived publicly from the DKG group key, with an extra public offset making both the
//!   internal and the output key even, so FROST never has to negate key shares.
//! - [`Bip340`]: a modular-frost algorithm producing BIP340 signatures (nonce parity handled).
//! - [`TransactionMachine`]: all inputs of a transaction signed in one two-round run, messages
//!   concatenated per signer, verified with libsecp256k1 before the signed transaction is
//!   returned.
//! - [`check`]: a signer's shares checked from public data (the signers' [`check::Statement`]),
//!   for verifiable blame.

mod adapter;
mod transaction;

use modular_frost::Participant;

pub use adapter::PlanMachine;
pub use bitcoin_sign::{
    challenge, check, derive_key, keys, output_key, script_pubkey, signing_keys, Bip340,
    Bip340Signature, DerivedKey,
};
pub use transaction::{
    SignableTransaction, TransactionMachine, TransactionSignMachine, TransactionSignatureMachine,
};

/// Why keys could not be derived or a transaction could not be signed.
#[derive(thiserror::Error, Debug)]
pub enum SignError {
    /// The group key is the identity, or (probability below 2^-100) no parity offset worked.
    #[error("no even internal and output key could be derived")]
    KeyDerivation,
    /// The transaction has no inputs.
    #[error("the transaction has no inputs")]
    NoInputs,
    /// The number of prevouts or kinds differs from the number of inputs.
    #[error("{inputs} inputs but {prevouts} prevouts and {kinds} kinds")]
    Mismatch {
        /// Inputs of the transaction.
        inputs: usize,
        /// Prevouts given.
        prevouts: usize,
        /// Kinds given.
        kinds: usize,
    },
    /// The BIP341 sighash could not be computed.
    #[error("sighash: {0}")]
    Sighash(#[from] bitcoin::sighash::TaprootError),
    /// The output spent by this input is not paid to our key of the stated kind.
    #[error("input {input} does not spend an output of our key of the given kind")]
    WrongKey {
        /// Index of the input.
        input: usize,
    },
    /// This participant's preprocess is malformed, truncated or has trailing bytes.
    #[error("invalid preprocess from participant {0}")]
    InvalidPreprocess(Participant),
    /// This participant's share is malformed, truncated, extended, or does not verify.
    #[error("invalid share from participant {0}")]
    InvalidShare(Participant),
    /// A member of the signing set sent no share.
    #[error("no share from participant {0}")]
    MissingParticipant(Participant),
    /// A share came from a participant outside the signing set.
    #[error("share from participant {0}, who is not in the signing set")]
    UnexpectedParticipant(Participant),
    /// Any other FROST error (e.g. too few signers, this signer among the others, an index
    /// above n).
    #[error("frost: {0}")]
    Frost(String),
    /// libsecp256k1 rejected an aggregated signature: a bug, never a participant's fault.
    #[error("BUG: libsecp256k1 rejected the signature of input {input}")]
    Verification {
        /// Index of the input.
        input: usize,
    },
}

impl From<bitcoin_sign::KeyDerivationError> for SignError {
    fn from(_: bitcoin_sign::KeyDerivationError) -> Self {
        SignError::KeyDerivation
    }
}
