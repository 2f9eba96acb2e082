//! A modular-frost [`Algorithm`] producing BIP340 Schnorr signatures.

use std::io;

use flexible_transcript::RecommendedTranscript;
use k256::{
    elliptic_curve::{ops::Reduce, point::AffineCoordinates, Group, PrimeField},
    ProjectivePoint, Scalar, U256,
};
use modular_frost::{
    algorithm::Algorithm, curve::Secp256k1, FrostError, Participant, ThresholdKeys, ThresholdView,
};
use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroizing;

use crate::keys::{generator, tagged_hash};

/// The BIP340 challenge `int(tagged_hash("BIP0340/challenge", x(R) || x(Q) || m)) mod n`.
pub fn challenge(r: &ProjectivePoint, q: &ProjectivePoint, msg: &[u8]) -> Scalar {
    let hash = tagged_hash(
        b"BIP0340/challenge",
        &[r.to_affine().x().as_slice(), q.to_affine().x().as_slice(), msg],
    );
    <Scalar as Reduce<U256>>::reduce_bytes(&hash.into())
}

/// An aggregated BIP340 signature: `x(R) || s` (64 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bip340Signature {
    bytes: [u8; 64],
    nonce_negated: bool,
}

impl Bip340Signature {
    /// The 64-byte BIP340 encoding `x(R) || s`.
    pub fn to_bytes(&self) -> [u8; 64] {
        self.bytes
    }

    /// Whether the aggregate FROST nonce had an odd y and every signer negated its nonce
    /// (diagnostic; the signature itself is the same kind of object either way).
    pub fn nonce_negated(&self) -> bool {
        self.nonce_negated
    }
}

/// BIP340 signing over secp256k1 for modular-frost's [`AlgorithmMachine`](modular_frost::sign::AlgorithmMachine).
///
/// Requirements and guarantees:
/// - The keys' group key must have an even y coordinate (use [`super::signing_keys`]); with an
///   odd group key no signature is produced ([`Algorithm::verify`] returns `None`, and
///   aggregation fails with an internal FROST error).
/// - One nonce over `G`, no addendum. If the aggregate nonce `R` has an odd y, every signer
///   negates its own nonce, so the signature is for the even lift of `x(R)`; participants'
///   shares are checked against the correspondingly negated nonce commitments, so an invalid
///   share is still attributed to its sender.
/// - The transcript (used for FROST's binding factors) must be built identically by all
///   signers; bind it to whatever is being signed (e.g. txid and input index).
/// - The message may be any length; Bitcoin signs a 32-byte sighash.
#[derive(Clone, Debug)]
pub struct Bip340 {
    transcript: RecommendedTranscript,
    /// Set by `sign_share`: the challenge and whether the aggregate nonce was negated.
    state: Option<(Scalar, bool)>,
}

impl Bip340 {
    /// A BIP340 algorithm continuing `transcript`.
    pub fn new(transcript: RecommendedTranscript) -> Self {
        Bip340 { transcript, state: None }
    }
}

fn first_nonce(nonces: &[Vec<ProjectivePoint>]) -> Option<ProjectivePoint> {
    nonces.first().and_then(|n| n.first()).copied()
}

impl Algorithm<Secp256k1> for Bip340 {
    type Transcript = RecommendedTranscript;
    type Addendum = ();
    type Signature = Bip340Signature;

    fn transcript(&mut self) -> &mut Self::Transcript {
        &mut self.transcript
    }

    fn nonces(&self) -> Vec<Vec<ProjectivePoint>> {
        vec![vec![generator()]]
    }

    fn preprocess_addendum<R: RngCore + CryptoRng>(
        &mut self,
        _: &mut R,
        _: &ThresholdKeys<Secp256k1>,
    ) {
    }

    fn read_addendum<R: io::Read>(&self, _: &mut R) -> io::Result<Self::Addendum> {
        Ok(())
    }

    fn process_addendum(
        &mut self,
        _: &ThresholdView<Secp256k1>,
        _: Participant,
        (): (),
    ) -> Result<(), FrostError> {
        Ok(())
    }

    fn sign_share(
        &mut self,
        params: &ThresholdView<Secp256k1>,
        nonce_sums: &[Vec<ProjectivePoint>],
        nonces: Vec<Zeroizing<Scalar>>,
        msg: &[u8],
    ) -> Scalar {
        // modular-frost always passes exactly the one nonce requested by `nonces()`.
        let (Some(r), Some(mut nonce)) = (first_nonce(nonce_sums), nonces.into_iter().next())
        else {
            return Scalar::ZERO;
        };
        let negate = bool::from(r.to_affine().y_is_odd());
        if negate {
            *nonce = -*nonce;
        }
        let c = challenge(&r, &params.group_key(), msg);
        self.state = Some((c, negate));
        *nonce + (c * **params.secret_share())
    }

    fn verify(
        &self,
        group_key: ProjectivePoint,
        nonces: &[Vec<ProjectivePoint>],
        sum: Scalar,
    ) -> Option<Bip340Signature> {
        let (c, negated) = self.state?;
        let r = first_nonce(nonces)?;
        if bool::from(group_key.is_identity())
            || bool::from(group_key.to_affine().y_is_odd())
            || bool::from(r.is_identity())
            || bool::from(r.to_affine().y_is_odd()) != negated
        {
            return None;
        }
        let r_even = if negated { -r } else { r };
        if generator() * sum != r_even + (group_key * c) {
            return None;
        }
        let mut bytes = [0; 64];
        bytes[..32].copy_from_slice(&r.to_affine().x());
        bytes[32..].copy_from_slice(&sum.to_repr());
        Some(Bip340Signature { bytes, nonce_negated: negated })
    }

    fn verify_share(
        &self,
        verification_share: ProjectivePoint,
        nonces: &[Vec<ProjectivePoint>],
        share: Scalar,
    ) -> Result<Vec<(Scalar, ProjectivePoint)>, ()> {
        let (c, negated) = self.state.ok_or(())?;
        let r = first_nonce(nonces).ok_or(())?;
        // s_i = ±r_i + c·x_i  <=>  (±1)·R_i + c·V_i - s_i·G == 0
        let nonce_coefficient = if negated { -Scalar::ONE } else { Scalar::ONE };
        Ok(vec![(nonce_coefficient, r), (c, verification_share), (-share, generator())])
    }
}
