//! Checking one signer's FROST share from public data alone: the signing set's
//! preprocesses, the message, and the key's verification shares. This is what makes blame
//! in signing verifiable by a third party (the coordinator), as key generation's already
//! is: a share that fails here was made wrongly by its sender; a blame against a share
//! that passes is a false accusation.
//!
//! [`check_share`] recomputes exactly what every member of the set computes in
//! modular-frost's `sign` (the transcript over each member's commitments and addendum, the
//! binding factors, the aggregate nonces, the algorithm's challenge) and then asks the
//! algorithm for the share's verification statements, as modular-frost's aggregation does
//! when a signature fails. It is generic over the algorithm, so a Batch (Schnorr over
//! Ristretto), a Bitcoin input (BIP340) or any later algorithm is checked by the same
//! code, given the algorithm instance the signers built and the keys as they used them
//! ([`PublicKeys::stand_in`], then any tweak the signers apply).
//!
//! The recomputation follows modular-frost `=0.11.0` (pinned exactly); the tests sign
//! with modular-frost's own machines and check every share here, so a change in that
//! crate's transcript shows up as a failing test, not as wrongly convicted signers.
use std::collections::{BTreeMap, HashMap};
use std::io;

use ciphersuite::group::ff::{Field, PrimeField};
use ciphersuite::group::{Group, GroupEncoding};
use flexible_transcript::Transcript;
use modular_frost::algorithm::{Algorithm, WriteAddendum};
use modular_frost::curve::Curve;
use modular_frost::dkg::Interpolation;
use modular_frost::{Participant, ThresholdKeys, ThresholdParams};
use zeroize::Zeroizing;

/// A key's public side: the threshold and every participant's verification share, by
/// 1-based key index (`shares[0]` is participant 1's).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PublicKeys<C: Curve> {
    threshold: u16,
    shares: Vec<C::G>,
}

/// Why a check could not be made at all (nobody is at fault in the signing data: the
/// caller passed something inconsistent).
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum CheckError {
    /// The verification shares or threshold do not make a key.
    #[error("the public keys are invalid: {0}")]
    Keys(&'static str),
    /// The signing set is not one of this key (too small, an unknown index, or without
    /// the accused).
    #[error("the signing set is invalid: {0}")]
    Set(&'static str),
}

/// The verdict on one share.
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// A member's preprocess does not decode (or its addendum is refused): that member is
    /// at fault, whoever's share was being checked.
    #[error("participant {0}'s preprocess is invalid")]
    Preprocess(u16),
    /// The share does not decode.
    #[error("the share does not decode")]
    UnreadableShare,
    /// The share decodes but is not the one the sender's key share and nonces make.
    #[error("the share is invalid")]
    InvalidShare,
}

impl<C: Curve> PublicKeys<C> {
    /// The public keys from `threshold` and the verification shares of participants
    /// `1..=shares.len()`, encoded.
    pub fn read(threshold: u16, shares: &[Vec<u8>]) -> Result<Self, CheckError> {
        let mut points = Vec::with_capacity(shares.len());
        for bytes in shares {
            let mut reader = bytes.as_slice();
            let point = <C as Curve>::read_G(&mut reader)
                .map_err(|_| CheckError::Keys("a verification share is not a valid point"))?;
            if !reader.is_empty() {
                return Err(CheckError::Keys("a verification share has trailing bytes"));
            }
            points.push(point);
        }
        Self::new(threshold, points)
    }

    /// The public keys from `threshold` and the verification shares.
    pub fn new(threshold: u16, shares: Vec<C::G>) -> Result<Self, CheckError> {
        let n = u16::try_from(shares.len()).map_err(|_| CheckError::Keys("too many shares"))?;
        if threshold == 0 || threshold > n {
            return Err(CheckError::Keys("the threshold is outside 1..=n"));
        }
        Ok(PublicKeys { threshold, shares })
    }

    /// The group key the verification shares interpolate to.
    pub fn group_key(&self) -> Result<C::G, CheckError> {
        Ok(self.stand_in(1)?.group_key())
    }

    /// Threshold keys for participant `i` holding no secret (a zero share): enough to
    /// recompute everything a signing set computes in public, never to sign. Apply the
    /// same tweaks (offset, scale) the signers apply before checking.
    pub fn stand_in(&self, i: u16) -> Result<ThresholdKeys<C>, CheckError> {
        let n = u16::try_from(self.shares.len()).map_err(|_| CheckError::Keys("too many"))?;
        let i = Participant::new(i).ok_or(CheckError::Set("participant index 0"))?;
        let params = ThresholdParams::new(self.threshold, n, i)
            .map_err(|_| CheckError::Set("the participant is not one of the key's"))?;
        let shares: HashMap<Participant, C::G> =
            (1..=n).filter_map(Participant::new).zip(self.shares.iter().copied()).collect();
        ThresholdKeys::new(params, Interpolation::Lagrange, Zeroizing::new(C::F::ZERO), shares)
            .map_err(|_| CheckError::Keys("the verification shares do not make a key"))
    }
}

/// One member's parsed preprocess: per nonce, per generator, `(D, E)`; and its addendum.
struct Parsed<C: Curve, A: Algorithm<C>> {
    commitments: Vec<Vec<[C::G; 2]>>,
    addendum: A::Addendum,
}

fn parse<C: Curve, A: Algorithm<C>>(
    algorithm: &A,
    generators: &[Vec<C::G>],
    bytes: &[u8],
) -> io::Result<Parsed<C, A>> {
    let mut reader = bytes;
    let mut commitments = Vec::with_capacity(generators.len());
    for nonce in generators {
        let mut per_generator = Vec::with_capacity(nonce.len());
        for _ in nonce {
            let d = <C as Curve>::read_G(&mut reader)?;
            let e = <C as Curve>::read_G(&mut reader)?;
            per_generator.push([d, e]);
        }
        commitments.push(per_generator);
    }
    let addendum = algorithm.read_addendum(&mut reader)?;
    if !reader.is_empty() {
        return Err(io::Error::other("trailing bytes"));
    }
    Ok(Parsed { commitments, addendum })
}

/// Whether `bytes` is a well-formed preprocess for `algorithm` (its nonce commitments
/// and addendum decode, nothing trails): what a member that refuses a preprocess claims.
pub fn check_preprocess<C: Curve, A: Algorithm<C>>(algorithm: &A, bytes: &[u8]) -> bool {
    parse::<C, A>(algorithm, &algorithm.nonces(), bytes).is_ok()
}

/// Checks `accused`'s `share` in the signing set whose members' preprocesses are
/// `preprocesses` (by key index, the accused's included), for `message`, as signed with
/// `algorithm` (a fresh instance, built exactly as the signers built theirs: its
/// transcript is part of what is checked) under `keys` (the accused's
/// [`PublicKeys::stand_in`], tweaked as the signers tweak theirs).
///
/// `Ok(Ok(()))`: the share is the one the accused's key share makes, so a blame against
/// it is false. `Ok(Err(fault))`: the fault is proven by the data (the accused's share, or
/// a member's preprocess). `Err`: the inputs do not describe a signing set of this key.
pub fn check_share<C: Curve, A: Algorithm<C>>(
    mut algorithm: A,
    keys: &ThresholdKeys<C>,
    preprocesses: &BTreeMap<u16, Vec<u8>>,
    message: &[u8],
    share: &[u8],
) -> Result<Result<(), Fault>, CheckError> {
    let accused = keys.params().i();
    let mut included = Vec::with_capacity(preprocesses.len());
    for l in preprocesses.keys() {
        included.push(Participant::new(*l).ok_or(CheckError::Set("participant index 0"))?);
    }
    if !included.contains(&accused) {
        return Err(CheckError::Set("the accused is not in the signing set"));
    }
    let view = keys
        .view(included.clone())
        .map_err(|_| CheckError::Set("not a signing set of this key"))?;
    let generators = algorithm.nonces();

    // As modular-frost: every preprocess is read first (an unreadable one is its sender's
    // fault), then the transcript is built member by member in index order, with each
    // addendum as re-encoded (not as received).
    let mut parsed = BTreeMap::new();
    for (l, bytes) in preprocesses {
        let Ok(member) = parse::<C, A>(&algorithm, &generators, bytes) else {
            return Ok(Err(Fault::Preprocess(*l)));
        };
        parsed.insert(*l, member);
    }
    algorithm.transcript().domain_separate(b"FROST");
    for (l, member) in &parsed {
        let index = Participant::new(*l).ok_or(CheckError::Set("participant index 0"))?;
        let mut addendum = vec![];
        if member.addendum.write(&mut addendum).is_err() {
            return Ok(Err(Fault::Preprocess(*l)));
        }
        let transcript = algorithm.transcript();
        transcript.append_message(b"participant", C::F::from(u64::from(*l)).to_repr());
        transcript.domain_separate(b"commitments");
        for nonce in &member.commitments {
            transcript.domain_separate(b"nonce");
            for [d, e] in nonce {
                transcript.append_message(b"commitment_D", d.to_bytes());
                transcript.append_message(b"commitment_E", e.to_bytes());
            }
        }
        transcript.append_message(b"addendum", &addendum);
        if algorithm.process_addendum(&view, index, member.addendum.clone()).is_err() {
            return Ok(Err(Fault::Preprocess(*l)));
        }
    }

    let mut rho_transcript = A::Transcript::new(b"FROST_rho");
    rho_transcript.append_message(b"group_key", keys.group_key().to_bytes());
    rho_transcript.append_message(b"message", C::hash_msg(message));
    let preprocessed = algorithm.transcript().challenge(b"preprocesses");
    rho_transcript.append_message(b"preprocesses", C::hash_commitments(preprocessed.as_ref()));
    // Each member's binding factors and bound nonces (D + rho·E), per nonce and generator.
    let mut bound: BTreeMap<u16, Vec<Vec<C::G>>> = BTreeMap::new();
    for (l, member) in &parsed {
        let mut transcript = rho_transcript.clone();
        transcript.append_message(b"participant", C::F::from(u64::from(*l)).to_repr());
        let nonces = member
            .commitments
            .iter()
            .map(|nonce| {
                let rho = C::hash_binding_factor(transcript.challenge(b"rho").as_ref());
                nonce.iter().map(|[d, e]| *d + (*e * rho)).collect()
            })
            .collect();
        bound.insert(*l, nonces);
    }
    algorithm.transcript().append_message(b"rho_transcript", rho_transcript.challenge(b"merge"));
    let sums: Vec<Vec<C::G>> = generators
        .iter()
        .enumerate()
        .map(|(n, nonce)| {
            (0..nonce.len()).map(|g| bound.values().map(|member| member[n][g]).sum()).collect()
        })
        .collect();

    // The algorithm derives its challenge (and any other state) while signing; the stand-in
    // signs with zero nonces and a zero key share, and its own share is discarded.
    let zero_nonces = generators.iter().map(|_| Zeroizing::new(C::F::ZERO)).collect();
    let _ = algorithm.sign_share(&view, &sums, zero_nonces, message);

    let mut reader = share;
    let Ok(share) = C::read_F(&mut reader) else {
        return Ok(Err(Fault::UnreadableShare));
    };
    if !reader.is_empty() {
        return Ok(Err(Fault::UnreadableShare));
    }
    let accused_bound = &bound[&u16::from(accused)];
    let Ok(statements) =
        algorithm.verify_share(view.verification_share(accused), accused_bound, share)
    else {
        return Ok(Err(Fault::InvalidShare));
    };
    let sum: C::G = statements.iter().map(|(scalar, point)| *point * scalar).sum();
    if bool::from(sum.is_identity()) {
        Ok(Ok(()))
    } else {
        Ok(Err(Fault::InvalidShare))
    }
}
