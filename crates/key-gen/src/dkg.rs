//! The PedPoP rounds for one curve, and for the pair of curves a session generates.
//!
//! Every round is a pure function of the participant's secret entropy, the attempt's
//! parameters and the messages received: the randomness of each round is derived from
//! them. A processor therefore never needs to keep a DKG state machine (which cannot be
//! serialized) across a restart: it recomputes the rounds from what it stored, and gets
//! byte-identical messages. This is what makes "never send two different messages for the
//! same (session, attempt, round)" hold by construction.

use std::collections::{BTreeMap, HashMap};

use borsh::{BorshDeserialize, BorshSerialize};
use ciphersuite::{
    group::{ff::Field, Group, GroupEncoding},
    Ciphersuite,
};
use dkg_pedpop::{
    AdditionalBlameMachine, Commitments, EncryptedMessage, EncryptionKeyMessage,
    EncryptionKeyProof, KeyGenMachine, KeyMachine, Participant, PedPoPError, SecretShare,
    SecretShareMachine, ThresholdKeys, ThresholdParams,
};
use messages::KeyGenId;
use modular_frost::curve::{Ed25519, Ristretto, Secp256k1};
use primitives::{codec::encode_body, NetworkId};
use rand_chacha::ChaCha20Rng;
use rand_core::{OsRng, SeedableRng};
use zeroize::Zeroizing;

use crate::KeyGenError;

type R1<C> = EncryptionKeyMessage<C, Commitments<C>>;
type R2<C> = EncryptedMessage<C, SecretShare<<C as Ciphersuite>::F>>;

/// The parameters of one key-generation attempt, as the coordinator stated them.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct KeyGenParams {
    /// Session and attempt.
    pub id: KeyGenId,
    /// The network whose key is generated alongside the Ristretto key.
    pub network: NetworkId,
    /// Signers needed.
    pub threshold: u16,
    /// The validators taking part, strictly ascending. DKG index = position + 1.
    pub participants: Vec<u16>,
    /// This processor's validator index.
    pub me: u16,
}

/// Which of the session's two keys.
#[derive(Clone, Copy, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub enum Curve {
    /// The Ristretto key that signs Batches.
    Ristretto,
    /// The network's key (secp256k1 or Ed25519).
    Network,
}

/// The round in which a contribution was found faulty.
#[derive(Clone, Copy, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub enum Round {
    /// Round 1: commitments and proofs of knowledge.
    Commitments,
    /// Round 2: an encrypted secret share.
    Shares,
}

/// What an accuser publishes so that anyone holding the attempt's messages can check it.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct Evidence {
    /// Which key's DKG.
    pub curve: Curve,
    /// Which round.
    pub round: Round,
    /// For an invalid share: the proof that the accuser decrypted it correctly.
    pub proof: Option<Vec<u8>>,
}

/// A peer's contribution was invalid.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Fault {
    /// The culprit's validator index.
    pub accused: u16,
    /// The evidence, for the coordinator to check.
    pub evidence: Evidence,
}

/// The wire form of a round's message: one part per curve.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub(crate) struct Pair {
    pub(crate) ristretto: Vec<u8>,
    pub(crate) network: Vec<u8>,
}

impl KeyGenParams {
    /// Checks the coordinator's request is well formed.
    pub fn validate(&self) -> Result<(), KeyGenError> {
        let invalid = |reason: &'static str| Err(KeyGenError::InvalidParams(reason));
        if self.participants.is_empty() || self.participants.contains(&0) {
            return invalid("participants must be non-empty validator indices from 1");
        }
        if !self.participants.windows(2).all(|w| w[0] < w[1]) {
            return invalid("participants must be strictly ascending");
        }
        if !self.participants.contains(&self.me) {
            return invalid("this validator is not a participant");
        }
        let n = self.participants.len();
        if self.threshold == 0 || usize::from(self.threshold) > n {
            return invalid("the threshold must be between 1 and the number of participants");
        }
        Ok(())
    }

    fn n(&self) -> u16 {
        // validate() bounds it by the u16 indices it lists.
        u16::try_from(self.participants.len()).expect("at most u16::MAX distinct u16 indices")
    }

    /// The DKG index of a validator in this attempt.
    pub fn index_of(&self, validator: u16) -> Option<Participant> {
        let position = self.participants.iter().position(|v| *v == validator)?;
        Participant::new(u16::try_from(position + 1).ok()?)
    }

    /// The validator holding a DKG index in this attempt.
    pub fn validator_of(&self, index: Participant) -> Option<u16> {
        self.participants.get(usize::from(u16::from(index)).checked_sub(1)?).copied()
    }

    fn threshold_params(&self, validator: u16) -> Result<ThresholdParams, KeyGenError> {
        let i = self.index_of(validator).ok_or(KeyGenError::InvalidParams("not a participant"))?;
        ThresholdParams::new(self.threshold, self.n(), i)
            .map_err(|_| KeyGenError::InvalidParams("invalid threshold parameters"))
    }

    /// The context all participants share (it excludes `me`): unique per attempt and curve.
    fn context(&self, curve: Curve) -> [u8; 32] {
        let shared = encode_body(&(self.id, self.network, self.threshold, &self.participants));
        primitives::hash(b"tc/keygen/v1/context", &[&shared, &encode_body(&curve)])
    }

    /// The others, in order.
    pub fn others(&self) -> Vec<u16> {
        self.participants.iter().copied().filter(|v| *v != self.me).collect()
    }
}

fn rng(entropy: &[u8; 32], context: &[u8; 32], round: &[u8]) -> ChaCha20Rng {
    let seed = Zeroizing::new(primitives::hash(b"tc/keygen/v1/rng", &[entropy, context, round]));
    ChaCha20Rng::from_seed(*seed)
}

fn read_exact<T>(bytes: &[u8], read: impl FnOnce(&mut &[u8]) -> std::io::Result<T>) -> Option<T> {
    let mut reader = bytes;
    let value = read(&mut reader).ok()?;
    reader.is_empty().then_some(value)
}

fn r1<C: Ciphersuite>(
    entropy: &[u8; 32],
    params: &KeyGenParams,
    curve: Curve,
) -> Result<(SecretShareMachine<C>, Vec<u8>), KeyGenError> {
    let context = params.context(curve);
    let machine = KeyGenMachine::<C>::new(params.threshold_params(params.me)?, context);
    let (machine, message) = machine.generate_coefficients(&mut rng(entropy, &context, b"r1"));
    Ok((machine, message.serialize()))
}

/// Messages keyed by validator index.
type ByValidator = BTreeMap<u16, Vec<u8>>;

type R2Out<C> = (KeyMachine<C>, ByValidator);

fn r2<C: Ciphersuite>(
    entropy: &[u8; 32],
    params: &KeyGenParams,
    curve: Curve,
    commitments: &BTreeMap<u16, Vec<u8>>,
) -> Result<Result<R2Out<C>, Fault>, KeyGenError> {
    let (machine, _) = r1::<C>(entropy, params, curve)?;
    let tp = params.threshold_params(params.me)?;
    let fault = |accused| Fault {
        accused,
        evidence: Evidence { curve, round: Round::Commitments, proof: None },
    };
    let mut parsed = HashMap::new();
    for (validator, bytes) in commitments {
        let index = params.index_of(*validator).ok_or(KeyGenError::UnexpectedSender(*validator))?;
        match read_exact(bytes, |r| R1::<C>::read(r, tp)) {
            Some(message) => parsed.insert(index, message),
            None => return Ok(Err(fault(*validator))),
        };
    }
    let context = params.context(curve);
    match machine.generate_secret_shares(&mut rng(entropy, &context, b"r2"), parsed) {
        Ok((machine, shares)) => {
            let mut out = BTreeMap::new();
            for (index, share) in shares {
                let validator = params
                    .validator_of(index)
                    .ok_or(KeyGenError::Crypto("share for an unknown index"))?;
                out.insert(validator, share.serialize());
            }
            Ok(Ok((machine, out)))
        }
        Err(PedPoPError::InvalidCommitments(index)) => Ok(Err(fault(
            params.validator_of(index).ok_or(KeyGenError::Crypto("unknown culprit"))?,
        ))),
        Err(_) => Err(KeyGenError::Crypto("round 2 rejected the set of commitments")),
    }
}

fn r3<C: Ciphersuite>(
    entropy: &[u8; 32],
    params: &KeyGenParams,
    curve: Curve,
    machine: KeyMachine<C>,
    shares: &BTreeMap<u16, Vec<u8>>,
) -> Result<Result<ThresholdKeys<C>, Fault>, KeyGenError> {
    let tp = params.threshold_params(params.me)?;
    let mut parsed = HashMap::new();
    for (validator, bytes) in shares {
        let index = params.index_of(*validator).ok_or(KeyGenError::UnexpectedSender(*validator))?;
        match read_exact(bytes, |r| R2::<C>::read(r, tp)) {
            Some(message) => parsed.insert(index, message),
            None => {
                let evidence = Evidence { curve, round: Round::Shares, proof: None };
                return Ok(Err(Fault { accused: *validator, evidence }));
            }
        };
    }
    let context = params.context(curve);
    match machine.calculate_share(&mut rng(entropy, &context, b"r3"), parsed) {
        Ok(blame_machine) => Ok(Ok(blame_machine.complete())),
        Err(PedPoPError::InvalidShare { participant, blame }) => {
            let accused =
                params.validator_of(participant).ok_or(KeyGenError::Crypto("unknown culprit"))?;
            let evidence =
                Evidence { curve, round: Round::Shares, proof: blame.map(|b| b.serialize()) };
            Ok(Err(Fault { accused, evidence }))
        }
        Err(_) => Err(KeyGenError::Crypto("round 3 rejected the set of shares")),
    }
}

/// Decides who is at fault for an accusation about `curve`'s DKG: the accused if the
/// evidence holds, else the accuser. `commitments` holds every participant's round-1 part
/// for that curve; `share` the encrypted share the accused sent the accuser (round 2).
/// A third participant proven faulty along the way is returned instead.
fn judge_curve<C: Ciphersuite>(
    params: &KeyGenParams,
    curve: Curve,
    commitments: &BTreeMap<u16, Vec<u8>>,
    accuser: u16,
    accused: u16,
    evidence: &Evidence,
    share: Option<&[u8]>,
) -> Result<u16, KeyGenError> {
    let context = params.context(curve);
    let accuser_params = params.threshold_params(accuser)?;
    // Every round-1 message is checked before anything else uses them (the blame machine
    // requires verified commitments): a stand-in for the accuser, with throwaway
    // randomness, verifies everyone else's proofs exactly as the accuser did; a stand-in
    // for the accused then verifies the accuser's own.
    let mut all = HashMap::new();
    for validator in &params.participants {
        let bytes = commitments.get(validator).ok_or(KeyGenError::MissingMessage(*validator))?;
        let index = params.index_of(*validator).ok_or(KeyGenError::UnexpectedSender(*validator))?;
        let Some(message) = read_exact(bytes, |r| R1::<C>::read(r, accuser_params)) else {
            return Ok(*validator);
        };
        all.insert(index, message);
    }
    for stand_in_for in [accuser, accused] {
        let stand_in_params = params.threshold_params(stand_in_for)?;
        let own = stand_in_params.i();
        let others: HashMap<_, _> =
            all.iter().filter(|(i, _)| **i != own).map(|(i, m)| (*i, m.clone())).collect();
        let (stand_in, _) =
            KeyGenMachine::<C>::new(stand_in_params, context).generate_coefficients(&mut OsRng);
        match stand_in.generate_secret_shares(&mut OsRng, others) {
            Ok(_) => {}
            Err(PedPoPError::InvalidCommitments(index)) => {
                return params.validator_of(index).ok_or(KeyGenError::Crypto("unknown culprit"));
            }
            Err(_) => return Err(KeyGenError::Crypto("could not check the commitments")),
        }
    }
    if evidence.round == Round::Commitments {
        // The accused's commitments are valid: the accusation is false.
        return Ok(accuser);
    }
    let Some(share) = share else { return Err(KeyGenError::MissingMessage(accused)) };
    let Some(message) = read_exact(share, |r| R2::<C>::read(r, accuser_params)) else {
        return Ok(accused);
    };
    let proof = match &evidence.proof {
        None => None,
        Some(bytes) => match read_exact(bytes, |r| EncryptionKeyProof::<C>::read(r)) {
            Some(proof) => Some(proof),
            None => return Ok(accuser),
        },
    };
    let machine = AdditionalBlameMachine::new(context, params.n(), all)
        .map_err(|_| KeyGenError::Crypto("could not build the blame machine"))?;
    let index = |v| params.index_of(v).ok_or(KeyGenError::UnexpectedSender(v));
    let faulty = machine.blame(index(accused)?, index(accuser)?, message, proof);
    params.validator_of(faulty).ok_or(KeyGenError::Crypto("unknown culprit"))
}

/// The network's threshold keys.
#[derive(Clone)]
pub enum NetworkKeys {
    /// Bitcoin, Litecoin, Ethereum.
    Secp256k1(ThresholdKeys<Secp256k1>),
    /// Monero.
    Ed25519(ThresholdKeys<Ed25519>),
}

impl std::fmt::Debug for NetworkKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (curve, key) = match self {
            NetworkKeys::Secp256k1(k) => ("secp256k1", k.group_key().to_bytes().to_vec()),
            NetworkKeys::Ed25519(k) => ("ed25519", k.group_key().to_bytes().to_vec()),
        };
        write!(f, "NetworkKeys({curve}, group key {})", hex::encode(key))
    }
}

/// A curve a network's keys may be on: how to find its keys among [`NetworkKeys`], so
/// that code generic over a network's curve reaches its keys without matching on it.
pub trait CurveKeys: modular_frost::curve::Curve {
    /// The keys, when `keys` are on this curve.
    fn keys(keys: &NetworkKeys) -> Option<ThresholdKeys<Self>>;
}

impl CurveKeys for Secp256k1 {
    fn keys(keys: &NetworkKeys) -> Option<ThresholdKeys<Self>> {
        match keys {
            NetworkKeys::Secp256k1(k) => Some(k.clone()),
            NetworkKeys::Ed25519(_) => None,
        }
    }
}

impl CurveKeys for Ed25519 {
    fn keys(keys: &NetworkKeys) -> Option<ThresholdKeys<Self>> {
        match keys {
            NetworkKeys::Ed25519(k) => Some(k.clone()),
            NetworkKeys::Secp256k1(_) => None,
        }
    }
}

/// Both keys of a session, as this participant holds them.
#[derive(Clone)]
pub struct GeneratedKeys {
    /// Signs Batches.
    pub ristretto: ThresholdKeys<Ristretto>,
    /// Signs the network's transactions.
    pub network: NetworkKeys,
}

impl std::fmt::Debug for GeneratedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedKeys")
            .field("ristretto_key", &hex::encode(self.ristretto_key()))
            .field("network_key", &hex::encode(self.network_key()))
            .finish_non_exhaustive()
    }
}

impl GeneratedKeys {
    /// The Ristretto group key, encoded.
    pub fn ristretto_key(&self) -> [u8; 32] {
        self.ristretto.group_key().to_bytes()
    }

    /// The network group key, encoded (33-byte SEC1 compressed, or 32-byte Ed25519).
    pub fn network_key(&self) -> Vec<u8> {
        match &self.network {
            NetworkKeys::Secp256k1(k) => k.group_key().to_bytes().to_vec(),
            NetworkKeys::Ed25519(k) => k.group_key().to_bytes().to_vec(),
        }
    }

    /// Secret serialization, for sealing.
    pub fn serialize(&self) -> Zeroizing<Vec<u8>> {
        let network = match &self.network {
            NetworkKeys::Secp256k1(k) => k.serialize(),
            NetworkKeys::Ed25519(k) => k.serialize(),
        };
        let ristretto = self.ristretto.serialize();
        // Encodes exactly as a `Pair`, without copying the secrets out of `Zeroizing`.
        Zeroizing::new(encode_body(&(ristretto.as_slice(), network.as_slice())))
    }

    /// Reads [`GeneratedKeys::serialize`] for `network`.
    pub fn read(network: NetworkId, bytes: &[u8]) -> Result<Self, KeyGenError> {
        let pair: Pair = primitives::codec::decode_body(bytes)
            .map_err(|_| KeyGenError::Crypto("stored keys are corrupt"))?;
        let pair = (Zeroizing::new(pair.ristretto), Zeroizing::new(pair.network));
        let corrupt = || KeyGenError::Crypto("stored keys are corrupt");
        let ristretto =
            read_exact(&pair.0, |r| ThresholdKeys::<Ristretto>::read(r)).ok_or_else(corrupt)?;
        let network = match network_curve(network) {
            NetworkCurve::Secp256k1 => NetworkKeys::Secp256k1(
                read_exact(&pair.1, |r| ThresholdKeys::read(r)).ok_or_else(corrupt)?,
            ),
            NetworkCurve::Ed25519 => NetworkKeys::Ed25519(
                read_exact(&pair.1, |r| ThresholdKeys::read(r)).ok_or_else(corrupt)?,
            ),
        };
        Ok(GeneratedKeys { ristretto, network })
    }
}

enum NetworkCurve {
    Secp256k1,
    Ed25519,
}

fn network_curve(network: NetworkId) -> NetworkCurve {
    match network {
        NetworkId::Bitcoin | NetworkId::Litecoin | NetworkId::Ethereum => NetworkCurve::Secp256k1,
        NetworkId::Monero => NetworkCurve::Ed25519,
    }
}

/// Runs `$body` with `$C` bound to the network's curve type.
macro_rules! with_network_curve {
    ($network:expr, $C:ident => $body:expr) => {
        match network_curve($network) {
            NetworkCurve::Secp256k1 => {
                type $C = Secp256k1;
                $body
            }
            NetworkCurve::Ed25519 => {
                type $C = Ed25519;
                $body
            }
        }
    };
}

fn split(
    messages: &BTreeMap<u16, Vec<u8>>,
    round: Round,
) -> Result<Result<(ByValidator, ByValidator), Fault>, KeyGenError> {
    let (mut ristretto, mut network) = (BTreeMap::new(), BTreeMap::new());
    for (validator, bytes) in messages {
        match primitives::codec::decode_body::<Pair>(bytes) {
            Ok(pair) => {
                ristretto.insert(*validator, pair.ristretto);
                network.insert(*validator, pair.network);
            }
            // An unparseable pair is blamed on the sender, as unparseable Ristretto data.
            Err(_) => {
                let evidence = Evidence { curve: Curve::Ristretto, round, proof: None };
                return Ok(Err(Fault { accused: *validator, evidence }));
            }
        }
    }
    Ok(Ok((ristretto, network)))
}

fn expect_others(
    params: &KeyGenParams,
    messages: &BTreeMap<u16, Vec<u8>>,
) -> Result<(), KeyGenError> {
    let found: Vec<u16> = messages.keys().copied().collect();
    let expected = params.others();
    if found != expected {
        return Err(KeyGenError::WrongParticipants { expected, found });
    }
    Ok(())
}

/// Round 1: this participant's commitments for both curves.
pub fn commitments(entropy: &[u8; 32], params: &KeyGenParams) -> Result<Vec<u8>, KeyGenError> {
    params.validate()?;
    let (_, ristretto) = r1::<Ristretto>(entropy, params, Curve::Ristretto)?;
    let network =
        with_network_curve!(params.network, C => r1::<C>(entropy, params, Curve::Network)?.1);
    Ok(encode_body(&Pair { ristretto, network }))
}

/// Round 2: given every other participant's commitments, the encrypted share for each
/// other participant — or the first faulty participant found.
pub fn shares(
    entropy: &[u8; 32],
    params: &KeyGenParams,
    commitments: &BTreeMap<u16, Vec<u8>>,
) -> Result<Result<BTreeMap<u16, Vec<u8>>, Fault>, KeyGenError> {
    Ok(shares_and_machines(entropy, params, commitments)?.map(|(shares, _)| shares))
}

/// The state round 3 continues from, kept in memory between rounds so that round 3 need
/// not recompute round 2. It holds secrets: never persisted, never printed. Without it
/// (after a restart), [`complete`] recomputes it, identically.
pub struct Round2Machines {
    ristretto: KeyMachine<Ristretto>,
    network: NetworkMachine,
}

impl std::fmt::Debug for Round2Machines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Round2Machines([secret])")
    }
}

enum NetworkMachine {
    Secp256k1(KeyMachine<Secp256k1>),
    Ed25519(KeyMachine<Ed25519>),
}

trait IntoNetworkMachine {
    fn into_network_machine(self) -> NetworkMachine;
}
impl IntoNetworkMachine for KeyMachine<Secp256k1> {
    fn into_network_machine(self) -> NetworkMachine {
        NetworkMachine::Secp256k1(self)
    }
}
impl IntoNetworkMachine for KeyMachine<Ed25519> {
    fn into_network_machine(self) -> NetworkMachine {
        NetworkMachine::Ed25519(self)
    }
}

/// [`shares`], also returning the state round 3 continues from.
pub fn shares_and_machines(
    entropy: &[u8; 32],
    params: &KeyGenParams,
    commitments: &BTreeMap<u16, Vec<u8>>,
) -> Result<Result<(ByValidator, Round2Machines), Fault>, KeyGenError> {
    params.validate()?;
    expect_others(params, commitments)?;
    let (ristretto_c, network_c) = match split(commitments, Round::Commitments)? {
        Ok(split) => split,
        Err(fault) => return Ok(Err(fault)),
    };
    let (ristretto_machine, ristretto) =
        match r2::<Ristretto>(entropy, params, Curve::Ristretto, &ristretto_c)? {
            Ok(out) => out,
            Err(fault) => return Ok(Err(fault)),
        };
    let (network_machine, network) = with_network_curve!(params.network, C => match r2::<C>(entropy, params, Curve::Network, &network_c)? {
        Ok((machine, shares)) => (machine.into_network_machine(), shares),
        Err(fault) => return Ok(Err(fault)),
    });
    let mut out = BTreeMap::new();
    for (validator, ristretto) in ristretto {
        let network =
            network.get(&validator).cloned().ok_or(KeyGenError::Crypto("missing share"))?;
        out.insert(validator, encode_body(&Pair { ristretto, network }));
    }
    Ok(Ok((out, Round2Machines { ristretto: ristretto_machine, network: network_machine })))
}

/// Round 3: given the same commitments and every other participant's share for us, our
/// keys — or the first faulty participant found, with the evidence. `machines`, if kept
/// from [`shares_and_machines`] on the same commitments, saves recomputing round 2.
pub fn complete(
    entropy: &[u8; 32],
    params: &KeyGenParams,
    commitments: &BTreeMap<u16, Vec<u8>>,
    shares: &BTreeMap<u16, Vec<u8>>,
    machines: Option<Round2Machines>,
) -> Result<Result<GeneratedKeys, Fault>, KeyGenError> {
    params.validate()?;
    expect_others(params, commitments)?;
    expect_others(params, shares)?;
    let (ristretto_c, network_c) = match split(commitments, Round::Commitments)? {
        Ok(split) => split,
        Err(fault) => return Ok(Err(fault)),
    };
    let (ristretto_s, network_s) = match split(shares, Round::Shares)? {
        Ok(split) => split,
        Err(fault) => return Ok(Err(fault)),
    };
    // Verifying the others' shares is most of the work (n-1 shares against t commitments
    // each): the two curves are independent, so they are verified on two threads.
    let (ristretto_machine, network_machine) = match machines {
        Some(Round2Machines { ristretto, network }) => (Some(ristretto), Some(network)),
        None => (None, None),
    };
    let (ristretto, network) = std::thread::scope(|scope| {
        let ristretto = scope.spawn(|| {
            ristretto_keys(entropy, params, &ristretto_c, &ristretto_s, ristretto_machine)
        });
        let network = network_keys(entropy, params, &network_c, &network_s, network_machine);
        (ristretto.join(), network)
    });
    let ristretto =
        ristretto.map_err(|_| KeyGenError::Crypto("the Ristretto verification thread panicked"))?;
    // Report the Ristretto fault first, as a sequential run would.
    let ristretto = match ristretto? {
        Ok(keys) => keys,
        Err(fault) => return Ok(Err(fault)),
    };
    let network = match network? {
        Ok(keys) => keys,
        Err(fault) => return Ok(Err(fault)),
    };
    Ok(Ok(GeneratedKeys { ristretto, network }))
}

trait IntoNetworkKeys {
    fn into_network_keys(self) -> NetworkKeys;
}
impl IntoNetworkKeys for ThresholdKeys<Secp256k1> {
    fn into_network_keys(self) -> NetworkKeys {
        NetworkKeys::Secp256k1(self)
    }
}
impl IntoNetworkKeys for ThresholdKeys<Ed25519> {
    fn into_network_keys(self) -> NetworkKeys {
        NetworkKeys::Ed25519(self)
    }
}
fn wrap_network<K: IntoNetworkKeys>(keys: K) -> NetworkKeys {
    keys.into_network_keys()
}

fn ristretto_keys(
    entropy: &[u8; 32],
    params: &KeyGenParams,
    commitments: &ByValidator,
    shares: &ByValidator,
    machine: Option<KeyMachine<Ristretto>>,
) -> Result<Result<ThresholdKeys<Ristretto>, Fault>, KeyGenError> {
    let machine = match machine {
        Some(machine) => machine,
        None => match r2::<Ristretto>(entropy, params, Curve::Ristretto, commitments)? {
            Ok((machine, _)) => machine,
            Err(fault) => return Ok(Err(fault)),
        },
    };
    r3(entropy, params, Curve::Ristretto, machine, shares)
}

fn network_keys(
    entropy: &[u8; 32],
    params: &KeyGenParams,
    commitments: &ByValidator,
    shares: &ByValidator,
    machine: Option<NetworkMachine>,
) -> Result<Result<NetworkKeys, Fault>, KeyGenError> {
    match machine {
        Some(NetworkMachine::Secp256k1(m)) => {
            return Ok(r3(entropy, params, Curve::Network, m, shares)?.map(wrap_network));
        }
        Some(NetworkMachine::Ed25519(m)) => {
            return Ok(r3(entropy, params, Curve::Network, m, shares)?.map(wrap_network));
        }
        None => {}
    }
    with_network_curve!(params.network, C => {
        let machine = match r2::<C>(entropy, params, Curve::Network, commitments)? {
            Ok((machine, _)) => machine,
            Err(fault) => return Ok(Err(fault)),
        };
        Ok(r3(entropy, params, Curve::Network, machine, shares)?.map(wrap_network))
    })
}

/// Judges an accusation (see [`Evidence`]). `commitments` holds every participant's
/// round-1 message of the attempt (as relayed); `share` the round-2 message the accused
/// sent the accuser, if the accusation is about round 2. Returns the culprit's validator
/// index: the accused if the evidence holds, else the accuser (or a third participant
/// whose own contribution proved invalid while checking).
pub fn judge(
    params: &KeyGenParams,
    commitments: &BTreeMap<u16, Vec<u8>>,
    accuser: u16,
    accused: u16,
    evidence: &[u8],
    share: Option<&[u8]>,
) -> Result<u16, KeyGenError> {
    params.validate()?;
    if accuser == accused
        || params.index_of(accuser).is_none()
        || params.index_of(accused).is_none()
    {
        return Ok(accuser);
    }
    let Ok(evidence) = primitives::codec::decode_body::<Evidence>(evidence) else {
        return Ok(accuser);
    };
    // The accused's messages must be well-formed pairs, else it is at fault.
    let mut ristretto = BTreeMap::new();
    let mut network = BTreeMap::new();
    for (validator, bytes) in commitments {
        let Ok(pair) = primitives::codec::decode_body::<Pair>(bytes) else { return Ok(*validator) };
        ristretto.insert(*validator, pair.ristretto);
        network.insert(*validator, pair.network);
    }
    let share = match share.map(primitives::codec::decode_body::<Pair>) {
        None => None,
        Some(Ok(pair)) => Some(pair),
        Some(Err(_)) => return Ok(accused),
    };
    let part = |pair: &Pair| match evidence.curve {
        Curve::Ristretto => pair.ristretto.clone(),
        Curve::Network => pair.network.clone(),
    };
    let share = share.as_ref().map(part);
    match evidence.curve {
        Curve::Ristretto => judge_curve::<Ristretto>(
            params,
            Curve::Ristretto,
            &ristretto,
            accuser,
            accused,
            &evidence,
            share.as_deref(),
        ),
        Curve::Network => with_network_curve!(params.network, C =>
            judge_curve::<C>(params, Curve::Network, &network, accuser, accused, &evidence, share.as_deref())),
    }
}

/// Both keys' verification shares (each participant's public key share), computed from
/// the attempt's round-1 messages alone: what a third party needs to check signature shares
/// ([`signers::public`](../../signers/public/index.html)), without trusting any
/// participant's report of them.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct VerificationShares {
    /// Signers needed.
    pub threshold: u16,
    /// The Ristretto key's, encoded, by DKG index (`[0]` is index 1's).
    pub ristretto: Vec<Vec<u8>>,
    /// The network key's, encoded, by DKG index.
    pub network: Vec<Vec<u8>>,
}

fn curve_verification_shares<C: Ciphersuite>(
    params: &KeyGenParams,
    commitments: &BTreeMap<u16, Vec<u8>>,
) -> Result<Vec<Vec<u8>>, KeyGenError> {
    let tp = params.threshold_params(params.me)?;
    let t = usize::from(params.threshold);
    // `stripes[k]`: the sum over participants of their k-th coefficient commitment.
    let mut stripes = vec![C::G::identity(); t];
    for validator in &params.participants {
        let bytes = commitments.get(validator).ok_or(KeyGenError::MissingMessage(*validator))?;
        // The whole message must be well formed; its first `t` points are the commitments
        // to the polynomial's coefficients (dkg-pedpop's `Commitments` encoding).
        read_exact(bytes, |r| R1::<C>::read(r, tp))
            .ok_or(KeyGenError::Crypto("a round-1 message does not decode"))?;
        let mut reader = bytes.as_slice();
        for stripe in &mut stripes {
            let point = C::read_G(&mut reader)
                .map_err(|_| KeyGenError::Crypto("a round-1 message does not decode"))?;
            *stripe += point;
        }
    }
    let mut out = Vec::with_capacity(params.participants.len());
    for i in 1..=params.n() {
        let x = C::F::from(u64::from(i));
        let mut power = C::F::ONE;
        let mut share = C::G::identity();
        for stripe in &stripes {
            share += *stripe * power;
            power *= x;
        }
        out.push(share.to_bytes().as_ref().to_vec());
    }
    Ok(out)
}

/// Both keys' [`VerificationShares`] from every participant's round-1 message of the
/// attempt (as relayed, by validator). `params.me` may be any participant.
pub fn verification_shares(
    params: &KeyGenParams,
    commitments: &BTreeMap<u16, Vec<u8>>,
) -> Result<VerificationShares, KeyGenError> {
    params.validate()?;
    let (ristretto, network) = match split(commitments, Round::Commitments)? {
        Ok(parts) => parts,
        Err(_) => return Err(KeyGenError::Crypto("a round-1 message does not decode")),
    };
    Ok(VerificationShares {
        threshold: params.threshold,
        ristretto: curve_verification_shares::<Ristretto>(params, &ristretto)?,
        network: with_network_curve!(params.network, C =>
            curve_verification_shares::<C>(params, &network)?),
    })
}

/// The decoders of the rounds' messages, for fuzzing (feature `testing`): each parses
/// one peer's bytes with exactly the functions the rounds and [`judge`] use, without the
/// cryptography around them (which costs far more per input than the parsing), and
/// returns the re-encoding of what it accepted.
#[cfg(feature = "testing")]
pub mod wire {
    use super::*;

    /// `from`'s round-1 message as round 2 reads it: the pair, then each curve's part.
    pub fn commitments(params: &KeyGenParams, from: u16, bytes: &[u8]) -> Option<Vec<u8>> {
        let tp = params.threshold_params(params.me).ok()?;
        let (ristretto, network) =
            split(&BTreeMap::from([(from, bytes.to_vec())]), Round::Commitments).ok()?.ok()?;
        let ristretto =
            read_exact(ristretto.get(&from)?, |r| R1::<Ristretto>::read(r, tp))?.serialize();
        let network = with_network_curve!(params.network, C =>
            read_exact(network.get(&from)?, |r| R1::<C>::read(r, tp))?.serialize());
        Some(encode_body(&Pair { ristretto, network }))
    }

    /// The encrypted share `from` sent us, as round 3 (and [`judge`]) reads it.
    pub fn share(params: &KeyGenParams, from: u16, bytes: &[u8]) -> Option<Vec<u8>> {
        let tp = params.threshold_params(params.me).ok()?;
        let (ristretto, network) =
            split(&BTreeMap::from([(from, bytes.to_vec())]), Round::Shares).ok()?.ok()?;
        let ristretto =
            read_exact(ristretto.get(&from)?, |r| R2::<Ristretto>::read(r, tp))?.serialize();
        let network = with_network_curve!(params.network, C =>
            read_exact(network.get(&from)?, |r| R2::<C>::read(r, tp))?.serialize());
        Some(encode_body(&Pair { ristretto, network }))
    }

    /// A blame's evidence as [`judge`] reads it: the [`Evidence`], then its proof on the
    /// curve it names.
    pub fn evidence(network: NetworkId, bytes: &[u8]) -> Option<Vec<u8>> {
        let evidence = primitives::codec::decode_body::<Evidence>(bytes).ok()?;
        let proof = match (&evidence.proof, evidence.curve) {
            (None, _) => None,
            (Some(proof), Curve::Ristretto) => {
                Some(read_exact(proof, |r| EncryptionKeyProof::<Ristretto>::read(r))?.serialize())
            }
            (Some(proof), Curve::Network) => Some(with_network_curve!(network, C =>
                read_exact(proof, |r| EncryptionKeyProof::<C>::read(r))?.serialize())),
        };
        Some(encode_body(&Evidence { proof, ..evidence }))
    }
}
