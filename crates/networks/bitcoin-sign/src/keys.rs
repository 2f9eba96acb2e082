//! Per-kind taproot keys (BIP86-style key-path-only outputs) derived from the DKG group key.
//!
//! For a group key `P` and an output kind:
//! 1. `P_kind = P + o_kind·G`, where `o_kind = 0` for [`OutputKind::External`] and otherwise
//!    `int(tagged_hash("tc-bitcoin/v1/kind-offset", kind_byte)) mod n`.
//! 2. The smallest `k ≥ 0` is chosen such that the internal key `P' = P_kind + k·G` has an even
//!    y coordinate AND the BIP341 output key `Q = P' + t·G`, with
//!    `t = int(TapTweakHash(x(P')))` (no script tree), also has an even y coordinate.
//! 3. The FROST keys used for signing are `keys.offset(o_kind + k + t)`: their group key is
//!    exactly `Q` (even y), so BIP340 signing only has to handle the nonce's parity.
//!
//! Everything here is public data: the scanner and the address code call [`output_key`] and
//! [`script_pubkey`] with the group key alone.

use crate::OutputKind;
use bitcoin::{
    hashes::Hash,
    key::{TweakedPublicKey, UntweakedPublicKey},
    taproot::TapTweakHash,
    ScriptBuf,
};
use k256::{
    elliptic_curve::{ops::Reduce, point::AffineCoordinates, Group, PrimeField},
    ProjectivePoint, Scalar, U256,
};
use modular_frost::{
    curve::{Ciphersuite, Secp256k1},
    ThresholdKeys,
};
use sha2::{Digest, Sha256};

use crate::KeyDerivationError as SignError;

/// Tag of the BIP340-style tagged hash giving each non-External kind its key offset.
pub const KIND_OFFSET_TAG: &[u8] = b"tc-bitcoin/v1/kind-offset";

/// How many `k` are tried before giving up. Each `k` succeeds with probability about 1/4, so
/// running out means a failure probability below 2^-100 (or a group key that is the identity).
const MAX_PARITY_OFFSET: u64 = 512;

/// BIP340 tagged hash: `SHA256(SHA256(tag) || SHA256(tag) || parts...)`.
pub(crate) fn tagged_hash(tag: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let tag_hash = Sha256::digest(tag);
    let mut hasher = Sha256::new();
    hasher.update(tag_hash);
    hasher.update(tag_hash);
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// The generator of secp256k1.
pub(crate) fn generator() -> ProjectivePoint {
    <Secp256k1 as Ciphersuite>::generator()
}

/// The public offset `o_kind` of a kind: zero for External, else
/// `int(tagged_hash("tc-bitcoin/v1/kind-offset", [kind as u8])) mod n`.
pub fn kind_offset(kind: OutputKind) -> Scalar {
    match kind {
        OutputKind::External => Scalar::ZERO,
        _ => {
            let hash = tagged_hash(KIND_OFFSET_TAG, &[&[kind as u8]]);
            <Scalar as Reduce<U256>>::reduce_bytes(&hash.into())
        }
    }
}

/// Everything derived (publicly) from a group key for one output kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DerivedKey {
    /// The BIP86 internal key `P' = P + o_kind·G + k·G` (even y).
    pub internal_key: UntweakedPublicKey,
    /// The taproot output key `Q = P' + t·G` (even y), the key the output is locked to.
    pub output_key: TweakedPublicKey,
    /// The parity offset `k` (the smallest making both `P'` and `Q` even).
    pub parity_offset: u64,
    /// The total offset `o_kind + k + t`, so that `Q = P + offset·G`.
    pub offset: Scalar,
}

/// The x-only key of `point` if it is not the identity and has an even y coordinate.
fn even_x_only(point: &ProjectivePoint) -> Option<bitcoin::key::XOnlyPublicKey> {
    if bool::from(point.is_identity()) {
        return None;
    }
    let affine = point.to_affine();
    if bool::from(affine.y_is_odd()) {
        return None;
    }
    bitcoin::key::XOnlyPublicKey::from_slice(&affine.x()).ok()
}

/// Derives the internal key, the output key and the total offset for `kind`.
///
/// Deterministic and public-only. Fails only if `group_key` is the identity or (with
/// negligible probability) no suitable `k` below 512 exists.
pub fn derive_key(group_key: ProjectivePoint, kind: OutputKind) -> Result<DerivedKey, SignError> {
    if bool::from(group_key.is_identity()) {
        return Err(SignError);
    }
    let o_kind = kind_offset(kind);
    let g = generator();
    let mut internal = group_key + (g * o_kind);
    for k in 0..MAX_PARITY_OFFSET {
        if k != 0 {
            internal += g;
        }
        let Some(internal_key) = even_x_only(&internal) else { continue };
        let tweak = TapTweakHash::from_key_and_tweak(internal_key, None).to_byte_array();
        // BIP341: a tweak >= n makes this internal key unusable; move on to the next k.
        let Some(t) = Option::<Scalar>::from(Scalar::from_repr(tweak.into())) else { continue };
        let Some(output_key) = even_x_only(&(internal + (g * t))) else { continue };
        return Ok(DerivedKey {
            internal_key,
            output_key: TweakedPublicKey::dangerous_assume_tweaked(output_key),
            parity_offset: k,
            offset: o_kind + Scalar::from(k) + t,
        });
    }
    Err(SignError)
}

/// The taproot output key (x-only, even y) that outputs of `kind` are paid to.
///
/// `group_key` is the DKG group key (`<Secp256k1 as Ciphersuite>::G`). Equal to the standard
/// BIP86 derivation (`UntweakedPublicKey::tap_tweak(secp, None)`) of
/// [`DerivedKey::internal_key`], and distinct for each kind.
pub fn output_key(
    group_key: ProjectivePoint,
    kind: OutputKind,
) -> Result<TweakedPublicKey, SignError> {
    Ok(derive_key(group_key, kind)?.output_key)
}

/// The P2TR `script_pubkey` (`OP_1 <x(Q)>`) of outputs of `kind`.
pub fn script_pubkey(group_key: ProjectivePoint, kind: OutputKind) -> Result<ScriptBuf, SignError> {
    Ok(ScriptBuf::new_p2tr_tweaked(output_key(group_key, kind)?))
}

/// The FROST keys that sign for outputs of `kind`: `keys.offset(o_kind + k + t)`.
///
/// Their group key is exactly the (even-y) point whose x is [`output_key`] of `keys.group_key()`,
/// so [`super::Bip340`] can sign with them directly. The offset is ephemeral (not serialized).
pub fn signing_keys(
    keys: &ThresholdKeys<Secp256k1>,
    kind: OutputKind,
) -> Result<ThresholdKeys<Secp256k1>, SignError> {
    let derived = derive_key(keys.group_key(), kind)?;
    Ok(keys.clone().offset(derived.offset))
}
