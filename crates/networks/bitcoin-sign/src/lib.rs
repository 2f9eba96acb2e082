//! Bitcoin-family signing that needs no node: what the processor signs transactions with
//! and what a third party (the coordinator) checks the signers' shares with.
//!
//! - [`keys`]: each [`OutputKind`] has its own BIP86-style output key derived publicly
//!   from the DKG group key, with an extra public offset making both the internal and the
//!   output key even, so FROST never has to negate key shares.
//! - [`Bip340`]: a modular-frost algorithm producing BIP340 signatures (nonce parity
//!   handled).
//! - [`check`]: a transaction signer's shares checked from public data (the signers'
//!   [`check::Statement`]), for verifiable blame.
//!
//! # Guarantees
//! - Everything here is a pure function of public data except signing itself, which
//!   needs the signer's key share.
//! - Each input's FROST transcript ([`input_transcript`]) is bound to the txid and the
//!   input index; [`check`] rebuilds exactly what the signers built.
#![deny(missing_docs)]

mod bip340;
pub mod check;
pub mod keys;

use flexible_transcript::{RecommendedTranscript, Transcript};
pub use primitives::OutputKind;

pub use bip340::{challenge, Bip340, Bip340Signature};
pub use keys::{derive_key, output_key, script_pubkey, signing_keys, DerivedKey};

/// Domain of the per-input FROST transcript.
const TRANSCRIPT_DOMAIN: &[u8] = b"tc-bitcoin/v1/bip340-input";

/// Input `input`'s FROST transcript: bound to the txid and the input index.
pub fn input_transcript(txid: [u8; 32], input: usize) -> RecommendedTranscript {
    let mut transcript = RecommendedTranscript::new(TRANSCRIPT_DOMAIN);
    transcript.append_message(b"txid", txid);
    transcript.append_message(b"input", u64::try_from(input).unwrap_or(u64::MAX).to_le_bytes());
    transcript
}

/// No even internal and output key could be derived: the group key is the identity, or
/// (probability below 2^-100) no parity offset worked.
#[derive(thiserror::Error, Debug, Clone, Copy, PartialEq, Eq)]
#[error("no even internal and output key could be derived")]
pub struct KeyDerivationError;
