//! Batch signatures: `(R, s)` over Ristretto with `s·G = R + c·A`, where
//! `c = hash_to_F("tc/batch/v1/challenge", R || A || m)` and `m` is the Batch's versioned
//! encoding ([`primitives::codec::Versioned::encode`]). The domain separates Batch
//! signatures from any other use of the key.
use std::io;

use ciphersuite::group::GroupEncoding;
use flexible_transcript::{RecommendedTranscript, Transcript};
use modular_frost::algorithm::{Hram, Schnorr, SchnorrSignature};
use modular_frost::curve::{Ciphersuite, Ristretto};
use primitives::codec::Versioned;
use primitives::Batch;

/// The challenge's domain.
pub const CHALLENGE_DOMAIN: &[u8] = b"tc/batch/v1/challenge";

/// The challenge function of Batch signatures.
#[derive(Clone, Copy, Debug, Default)]
pub struct BatchHram;

impl Hram<Ristretto> for BatchHram {
    #[allow(non_snake_case)]
    fn hram(
        R: &<Ristretto as Ciphersuite>::G,
        A: &<Ristretto as Ciphersuite>::G,
        m: &[u8],
    ) -> <Ristretto as Ciphersuite>::F {
        let mut data = R.to_bytes().to_vec();
        data.extend_from_slice(A.to_bytes().as_ref());
        data.extend_from_slice(m);
        <Ristretto as Ciphersuite>::hash_to_F(CHALLENGE_DOMAIN, &data)
    }
}

/// The FROST algorithm that signs Batches (one per signing attempt; not reusable).
pub type BatchAlgorithm = Schnorr<Ristretto, RecommendedTranscript, BatchHram>;

/// A fresh algorithm instance, its transcript bound to the Batch's network and id.
pub fn algorithm(batch: &Batch) -> BatchAlgorithm {
    let mut transcript = RecommendedTranscript::new(b"tc/batch/v1/sign");
    transcript.append_message(b"network", [batch.network as u8]);
    transcript.append_message(b"id", batch.id.to_le_bytes());
    Schnorr::new(transcript)
}

/// The message a Batch signature signs.
pub fn message(batch: &Batch) -> Vec<u8> {
    batch.encode()
}

/// Encodes a signature as 64 bytes (`R || s`).
pub fn signature_bytes(signature: &SchnorrSignature<Ristretto>) -> [u8; 64] {
    let mut out = [0u8; 64];
    let bytes = signature.serialize();
    // R (32 bytes) then s (32 bytes) for Ristretto.
    out.copy_from_slice(&bytes[..64.min(bytes.len())]);
    out
}

/// Checks `accused`'s share of a Batch signature from public data
/// ([`crate::public::check_share`]): the set's preprocesses by key index, the Batch, and
/// the key's verification shares.
pub fn check_share(
    keys: &crate::public::PublicKeys<Ristretto>,
    batch: &Batch,
    preprocesses: &std::collections::BTreeMap<u16, Vec<u8>>,
    accused: u16,
    share: &[u8],
) -> Result<Result<(), crate::public::Fault>, crate::public::CheckError> {
    let stand_in = keys.stand_in(accused)?;
    crate::public::check_share(algorithm(batch), &stand_in, preprocesses, &message(batch), share)
}

/// Whether `bytes` is a well-formed preprocess for signing `batch`.
pub fn check_preprocess(batch: &Batch, bytes: &[u8]) -> bool {
    crate::public::check_preprocess(&algorithm(batch), bytes)
}

/// Why a Batch signature was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    /// The key is not a valid Ristretto point.
    #[error("the Ristretto key is not a valid point")]
    BadKey,
    /// The signature does not decode (non-canonical point or scalar).
    #[error("the signature does not decode")]
    Malformed,
    /// The signature does not verify for this Batch and key.
    #[error("the signature does not verify")]
    Invalid,
}

/// Verifies a Batch signature under the session's Ristretto key.
pub fn verify(key: &[u8; 32], batch: &Batch, signature: &[u8; 64]) -> Result<(), VerifyError> {
    let key = <Ristretto as Ciphersuite>::read_G(&mut io::Cursor::new(key))
        .map_err(|_| VerifyError::BadKey)?;
    let sig = SchnorrSignature::<Ristretto>::read(&mut io::Cursor::new(signature))
        .map_err(|_| VerifyError::Malformed)?;
    let c = BatchHram::hram(&sig.R, &key, &message(batch));
    if sig.verify(key, c) {
        Ok(())
    } else {
        Err(VerifyError::Invalid)
    }
}
