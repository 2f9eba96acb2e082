//! The processor's side of key generation: a state machine over the database, driven by
//! the coordinator's messages, run inside the caller's write transaction.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
};

use borsh::{BorshDeserialize, BorshSerialize};
use db::{Db, DbError, Get, Table, WriteTxn};
use messages::{KeyGenId, KeyGenRequest, KeyGenResponse, Session};
use primitives::{codec::encode_body, NetworkId};
use rand_core::{OsRng, RngCore};
use zeroize::Zeroizing;

use crate::{
    dkg::{self, Curve, Evidence, GeneratedKeys, KeyGenParams, Round},
    KeyGenError, Sealer,
};

/// Deliberate misbehaviour, for tests of blame (key generation's and signing's). The
/// processor honours it only in tests (`[testing] malice`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum Malice {
    /// Behave.
    #[default]
    None,
    /// Send this validator an invalid share.
    InvalidShareTo(u16),
    /// Falsely accuse this validator of sending an invalid share.
    FalseAccuse(u16),
    /// In signing: whenever this validator is in the same signing set, blame it instead of
    /// sending a signature share (a false accusation; the processor's pipeline acts it).
    /// `0`: blame the lowest-numbered other member of every signing set.
    FalseBlame(u16),
    /// In signing: send every signature share altered (a wrong share; the processor's
    /// pipeline acts it). The number is unused (`0`).
    WrongShare(u16),
    /// In signing: preprocess, then never send the share (a withholder; the processor's
    /// pipeline acts it). The number is unused (`0`).
    WithholdShare(u16),
}

/// A session's generated key pair, as stored.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct Generated {
    /// The attempt that produced it.
    pub attempt: u32,
    /// Signers needed.
    pub threshold: u16,
    /// The validators holding shares; DKG index = position + 1.
    pub participants: Vec<u16>,
    /// The Ristretto group key.
    pub ristretto_key: [u8; 32],
    /// The network group key.
    pub network_key: Vec<u8>,
    /// The key shares, sealed.
    sealed_keys: Vec<u8>,
    /// Set when the coordinator confirmed this pair: only then is it active.
    pub confirmed: bool,
}

/// This participant's secret entropy, sealed.
const ENTROPY: Table<(), Vec<u8>> = Table::new("keygen/v1/entropy");
/// The current attempt per session.
const CURRENT: Table<u32, KeyGenParams> = Table::new("keygen/v1/current");
/// The other participants' round-1 messages, per (session, attempt).
const COMMITMENTS: Table<(u32, u32), BTreeMap<u16, Vec<u8>>> = Table::new("keygen/v1/commitments");
/// A hash of what we answered per (session, attempt, round): rounds are answered once.
const ANSWERED: Table<(u32, u32, u8), [u8; 32]> = Table::new("keygen/v1/answered");
/// Generated key pairs per session.
const GENERATED: Table<u32, Generated> = Table::new("keygen/v1/generated");

fn keys_aad(session: Session) -> Vec<u8> {
    [b"tc/keygen/v1/keys/".as_slice(), &session.0.to_be_bytes()].concat()
}

/// The key-generation parameters this processor's operator allows, whatever the
/// coordinator asks: a set where fewer than `min_threshold` signers, or no more than
/// `min_threshold_percent` of the participants, can move the funds is refused. (The
/// participants are those the coordinator names for the attempt; pinning the validator
/// set itself is the settlement layer's.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyGenPolicy {
    /// The lowest threshold accepted; never below 2 (one key holder alone must never be
    /// able to sign).
    pub min_threshold: u16,
    /// The threshold must be more than this percentage of the attempt's participants.
    pub min_threshold_percent: u8,
}

impl Default for KeyGenPolicy {
    /// At least 2 signers, and more than half of the participants.
    fn default() -> Self {
        KeyGenPolicy { min_threshold: 2, min_threshold_percent: 50 }
    }
}

impl KeyGenPolicy {
    /// Why `threshold`-of-`participants` is refused, if it is.
    pub fn check(&self, threshold: u16, participants: usize) -> Result<(), KeyGenError> {
        let min = self.min_threshold.max(2);
        if threshold < min {
            return Err(KeyGenError::Refused(format!(
                "a threshold of {threshold} is below the {min} this operator allows"
            )));
        }
        let percent = u64::from(self.min_threshold_percent);
        if u64::from(threshold) * 100 <= percent * participants as u64 {
            return Err(KeyGenError::Refused(format!(
                "a threshold of {threshold} of {participants} participants is not more than the {percent}% this operator requires"
            )));
        }
        Ok(())
    }
}

/// The key-generation state machine of one processor.
pub struct KeyGen {
    network: NetworkId,
    me: u16,
    policy: KeyGenPolicy,
    entropy: Zeroizing<[u8; 32]>,
    sealer: Arc<Sealer>,
    malice: Malice,
    /// Round-2 state per (session, attempt), in memory only.
    machines: Mutex<HashMap<(u32, u32), dkg::Round2Machines>>,
}

impl KeyGen {
    /// The same, refusing parameters outside `policy` (default: [`KeyGenPolicy::default`]).
    pub fn with_policy(mut self, policy: KeyGenPolicy) -> Self {
        self.policy = policy;
        self
    }
}

impl std::fmt::Debug for KeyGen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyGen")
            .field("network", &self.network)
            .field("me", &self.me)
            .finish_non_exhaustive()
    }
}

impl KeyGen {
    /// This processor's validator index.
    pub fn me(&self) -> u16 {
        self.me
    }

    /// The misbehaviour this processor was told to act (tests only).
    pub fn malice(&self) -> Malice {
        self.malice
    }

    /// Loads this processor's entropy (creating and sealing it on first use).
    pub fn open(
        db: &Db,
        sealer: Arc<Sealer>,
        network: NetworkId,
        me: u16,
        malice: Malice,
    ) -> Result<Self, KeyGenError> {
        const AAD: &[u8] = b"tc/keygen/v1/entropy";
        let mut txn = db.write()?;
        let entropy = match ENTROPY.get(&txn, &())? {
            Some(sealed) => {
                let plain = sealer.open(AAD, &sealed)?;
                let bytes: [u8; 32] = plain
                    .as_slice()
                    .try_into()
                    .map_err(|_| KeyGenError::Crypto("stored entropy is corrupt"))?;
                drop(txn);
                Zeroizing::new(bytes)
            }
            None => {
                let mut entropy = Zeroizing::new([0u8; 32]);
                OsRng.fill_bytes(entropy.as_mut());
                ENTROPY.put(&mut txn, &(), &sealer.seal(AAD, entropy.as_ref()))?;
                txn.commit()?;
                entropy
            }
        };
        Ok(KeyGen {
            network,
            me,
            policy: KeyGenPolicy::default(),
            entropy,
            sealer,
            malice,
            machines: Mutex::new(HashMap::new()),
        })
    }

    fn machines(&self) -> std::sync::MutexGuard<'_, HashMap<(u32, u32), dkg::Round2Machines>> {
        // The map holds no invariant a panic could break: take it as it is.
        self.machines.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn answered(
        &self,
        txn: &mut WriteTxn,
        id: KeyGenId,
        round: u8,
        response: &KeyGenResponse,
    ) -> Result<(), KeyGenError> {
        let digest = primitives::hash(b"tc/keygen/v1/answer", &[&encode_body(response)]);
        ANSWERED.put(txn, &(id.session.0, id.attempt, round), &digest)?;
        Ok(())
    }

    fn was_answered(&self, txn: &impl Get, id: KeyGenId, round: u8) -> Result<bool, KeyGenError> {
        Ok(ANSWERED.get(txn, &(id.session.0, id.attempt, round))?.is_some())
    }

    fn current(&self, txn: &impl Get, id: KeyGenId) -> Result<KeyGenParams, KeyGenError> {
        match CURRENT.get(txn, &id.session.0)? {
            Some(params) if params.id == id => Ok(params),
            _ => Err(KeyGenError::NotCurrent { session: id.session.0, attempt: id.attempt }),
        }
    }

    /// Handles one key-generation request inside `txn`, returning the reply to send (in
    /// the same transaction) if any. `Ok(None)`: nothing to do (a duplicate, or the
    /// session already has keys). Errors change nothing in `txn`.
    pub fn handle(
        &self,
        txn: &mut WriteTxn,
        request: &KeyGenRequest,
    ) -> Result<Option<KeyGenResponse>, KeyGenError> {
        match request {
            KeyGenRequest::GenerateKey { id, network, threshold, participants, me } => {
                let params = KeyGenParams {
                    id: *id,
                    network: *network,
                    threshold: *threshold,
                    participants: participants.clone(),
                    me: *me,
                };
                if params.network != self.network || params.me != self.me {
                    return Err(KeyGenError::InvalidParams(
                        "addressed to another network or validator",
                    ));
                }
                params.validate()?;
                let superseded = match GENERATED.get(txn, &id.session.0)? {
                    Some(generated) if generated.confirmed || generated.attempt >= id.attempt => {
                        tracing::info!(
                            session = id.session.0,
                            "keys already generated; request ignored"
                        );
                        return Ok(None);
                    }
                    // A later attempt supersedes keys that were never confirmed (another
                    // participant's round failed, or one was excluded): once every check
                    // below passed, they are discarded and can never become active.
                    Some(generated) => Some(generated.attempt),
                    None => None,
                };
                self.policy.check(params.threshold, params.participants.len())?;
                if let Some(current) = CURRENT.get(txn, &id.session.0)? {
                    if current.id.attempt > id.attempt {
                        return Err(KeyGenError::NotCurrent {
                            session: id.session.0,
                            attempt: id.attempt,
                        });
                    }
                    if current.id.attempt == id.attempt {
                        if current != params {
                            return Err(KeyGenError::InvalidParams(
                                "conflicting parameters for one attempt",
                            ));
                        }
                        if self.was_answered(txn, *id, 1)? {
                            return Ok(None);
                        }
                    }
                }
                let commitments = dkg::commitments(&self.entropy, &params)?;
                if let Some(discarded_attempt) = superseded {
                    tracing::info!(
                        session = id.session.0,
                        discarded_attempt,
                        attempt = id.attempt,
                        "discarding unconfirmed keys for a new attempt"
                    );
                    GENERATED.del(txn, &id.session.0)?;
                }
                CURRENT.put(txn, &id.session.0, &params)?;
                let response = KeyGenResponse::Commitments { id: *id, commitments };
                self.answered(txn, *id, 1, &response)?;
                Ok(Some(response))
            }
            KeyGenRequest::Commitments { id, commitments } => {
                let params = self.current(txn, *id)?;
                if self.was_answered(txn, *id, 2)? {
                    return Ok(None);
                }
                let response = match dkg::shares_and_machines(&self.entropy, &params, commitments)?
                {
                    Ok((mut shares, machines)) => {
                        self.machines().insert((id.session.0, id.attempt), machines);
                        if let Malice::InvalidShareTo(victim) = self.malice {
                            corrupt_share(&mut shares, victim);
                        }
                        KeyGenResponse::Shares { id: *id, shares }
                    }
                    Err(fault) => blame(*id, fault),
                };
                COMMITMENTS.put(txn, &(id.session.0, id.attempt), commitments)?;
                self.answered(txn, *id, 2, &response)?;
                Ok(Some(response))
            }
            KeyGenRequest::Shares { id, shares } => {
                let params = self.current(txn, *id)?;
                if self.was_answered(txn, *id, 3)? {
                    return Ok(None);
                }
                let commitments = COMMITMENTS.get(txn, &(id.session.0, id.attempt))?.ok_or(
                    KeyGenError::NotCurrent { session: id.session.0, attempt: id.attempt },
                )?;
                // Kept from round 2 unless this process restarted since; then recomputed.
                let machines = self.machines().remove(&(id.session.0, id.attempt));
                let response =
                    match dkg::complete(&self.entropy, &params, &commitments, shares, machines)? {
                        Ok(_) if matches!(self.malice, Malice::FalseAccuse(_)) => {
                            let Malice::FalseAccuse(victim) = self.malice else { unreachable!() };
                            let evidence = Evidence {
                                curve: Curve::Ristretto,
                                round: Round::Shares,
                                proof: None,
                            };
                            blame(*id, dkg::Fault { accused: victim, evidence })
                        }
                        Ok(keys) => {
                            let generated = Generated {
                                attempt: id.attempt,
                                threshold: params.threshold,
                                participants: params.participants.clone(),
                                ristretto_key: keys.ristretto_key(),
                                network_key: keys.network_key(),
                                sealed_keys: self
                                    .sealer
                                    .seal(&keys_aad(id.session), &keys.serialize()),
                                confirmed: false,
                            };
                            GENERATED.put(txn, &id.session.0, &generated)?;
                            tracing::info!(
                                session = id.session.0,
                                attempt = id.attempt,
                                ristretto_key = %hex::encode(generated.ristretto_key),
                                network_key = %hex::encode(&generated.network_key),
                                "generated key pair; waiting for confirmation"
                            );
                            KeyGenResponse::GeneratedKeyPair {
                                id: *id,
                                ristretto_key: generated.ristretto_key,
                                network_key: generated.network_key,
                                // Network state is not key generation's: the processor
                                // fills in its proposal and settings before sending.
                                proposed_activation: None,
                                settings: None,
                            }
                        }
                        Err(fault) => blame(*id, fault),
                    };
                self.answered(txn, *id, 3, &response)?;
                Ok(Some(response))
            }
        }
    }

    /// The coordinator confirmed a key pair: activates it if it is exactly the pair this
    /// processor generated for `session`. Returns whether it was newly activated.
    pub fn confirm(
        &self,
        txn: &mut WriteTxn,
        session: Session,
        ristretto_key: [u8; 32],
        network_key: &[u8],
    ) -> Result<bool, KeyGenError> {
        let mut generated =
            GENERATED.get(txn, &session.0)?.ok_or(KeyGenError::ConfirmedUnknownKeys(session.0))?;
        if generated.ristretto_key != ristretto_key || generated.network_key != network_key {
            return Err(KeyGenError::ConfirmedUnknownKeys(session.0));
        }
        if generated.confirmed {
            return Ok(false);
        }
        generated.confirmed = true;
        GENERATED.put(txn, &session.0, &generated)?;
        tracing::info!(session = session.0, "key pair confirmed: active");
        Ok(true)
    }

    /// The stored key pair of `session`, if generated.
    pub fn generated(txn: &impl Get, session: Session) -> Result<Option<Generated>, DbError> {
        GENERATED.get(txn, &session.0)
    }

    /// Every generated key pair, by session.
    pub fn all_generated(txn: &impl Get) -> Result<Vec<(u32, Generated)>, DbError> {
        GENERATED.iter(txn)
    }

    /// The key shares of `session`, unsealed.
    pub fn keys(
        &self,
        txn: &impl Get,
        session: Session,
    ) -> Result<Option<GeneratedKeys>, KeyGenError> {
        let Some(generated) = GENERATED.get(txn, &session.0)? else { return Ok(None) };
        let plain = self.sealer.open(&keys_aad(session), &generated.sealed_keys)?;
        Ok(Some(GeneratedKeys::read(self.network, &plain)?))
    }
}

fn blame(id: KeyGenId, fault: dkg::Fault) -> KeyGenResponse {
    tracing::warn!(session = id.session.0, attempt = id.attempt, accused = fault.accused, ?fault.evidence, "blaming a participant");
    KeyGenResponse::Blame { id, accused: fault.accused, evidence: encode_body(&fault.evidence) }
}

/// Flips a bit of the Ristretto share addressed to `victim` (test misbehaviour).
fn corrupt_share(shares: &mut BTreeMap<u16, Vec<u8>>, victim: u16) {
    if let Some(bytes) = shares.get_mut(&victim) {
        if let Ok(mut pair) = primitives::codec::decode_body::<dkg::Pair>(bytes) {
            if let Some(last) = pair.ristretto.last_mut() {
                *last ^= 1;
            }
            *bytes = encode_body(&pair);
        }
    }
}
