//! The simulator's durable key-generation state: every table, declared in one place.
//!
//! A set is keyed by [`SetKey`] `(network id, session)`. Per attempt, the messages the
//! coordinator must relay or judge with are stored by `(set, attempt, validator)`; they
//! are pruned once the attempt ends. The hashes of received messages are kept for good:
//! they are what proves that no processor sent two different messages for one
//! (session, attempt, round).

use std::collections::BTreeMap;

use borsh::{BorshDeserialize, BorshSerialize};
use db::{DbError, Get, Table, WriteTxn};
use messages::{KeyGenResponse, Participant};
use primitives::{codec::encode_body, Hash32, NetworkId};

/// A set: `(network as u8, session)`.
pub type SetKey = (u8, u32);

/// The key of `network`'s set for `session`.
pub fn set_key(network: NetworkId, session: u32) -> SetKey {
    (network as u8, session)
}

/// `(set, attempt, validator)`.
pub type ByValidator = (SetKey, u32, Participant);

/// Where an attempt stands, or how the set ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub enum Stage {
    /// Waiting for every participant's commitments.
    Commitments,
    /// Commitments relayed; waiting for every participant's shares.
    Shares,
    /// Shares relayed; waiting for every participant's generated key pair.
    KeyPairs,
    /// The key pair was confirmed. Final.
    Confirmed,
    /// Fewer than `threshold` participants remain. Final.
    Failed,
}

impl Stage {
    /// Whether an attempt is running.
    pub fn in_progress(self) -> bool {
        matches!(self, Stage::Commitments | Stage::Shares | Stage::KeyPairs)
    }

    /// The name used in logs and status.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Commitments => "commitments",
            Stage::Shares => "shares",
            Stage::KeyPairs => "key_pairs",
            Stage::Confirmed => "confirmed",
            Stage::Failed => "failed",
        }
    }
}

/// A validator removed from the set's key generation.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct Exclusion {
    /// Who.
    pub validator: Participant,
    /// The attempt it was removed in (it does not take part in later ones).
    pub attempt: u32,
    /// Why.
    pub reason: String,
}

/// How an attempt ended.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct AttemptEnd {
    /// The attempt.
    pub attempt: u32,
    /// Its participants.
    pub participants: Vec<Participant>,
    /// What happened.
    pub outcome: String,
}

/// The confirmed key pair of a set.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct ConfirmedKeys {
    /// The attempt that produced it.
    pub attempt: u32,
    /// The Ristretto key.
    pub ristretto_key: [u8; 32],
    /// The network key.
    pub network_key: Vec<u8>,
    /// Unix ms when key generation started (attempt 0).
    pub started_ms: u64,
    /// Unix ms when the key pair was confirmed.
    pub confirmed_ms: u64,
    /// The agreed first external block scanned for the key (see [`activation_block`]).
    pub activation_block: Option<u64>,
}

/// The activation block agreed from the participants' proposals: the lower median of
/// those made. Every honest proposal is a block that was not final before the key was
/// confirmed, so with an honest majority the median is at most the highest honest one
/// (no deposit to the new key can be in an earlier block) and at least the lowest honest
/// one (a minority cannot make the processors rescan old history). `None` when nobody
/// proposed one.
pub fn activation_block(proposals: impl IntoIterator<Item = Option<u64>>) -> Option<u64> {
    let mut made: Vec<u64> = proposals.into_iter().flatten().collect();
    made.sort_unstable();
    made.get(made.len().checked_sub(1)? / 2).copied()
}

/// One set's key generation.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct SetState {
    /// The network.
    pub network: NetworkId,
    /// The session.
    pub session: u32,
    /// Signers needed.
    pub threshold: u16,
    /// Every configured validator, ascending.
    pub validators: Vec<Participant>,
    /// The current (or last) attempt.
    pub attempt: u32,
    /// Its participants, ascending.
    pub participants: Vec<Participant>,
    /// Where it stands.
    pub stage: Stage,
    /// Unix ms of the attempt's start or its last progress; the timeout counts from here.
    pub last_progress_ms: u64,
    /// Unix ms when key generation started (attempt 0).
    pub started_ms: u64,
    /// Every exclusion, in order.
    pub excluded: Vec<Exclusion>,
    /// Every ended attempt, in order.
    pub history: Vec<AttemptEnd>,
    /// Set once the key pair is confirmed.
    pub confirmed: Option<ConfirmedKeys>,
    /// Set when the set failed: why.
    pub failure: Option<String>,
}

impl SetState {
    /// The table key.
    pub fn key(&self) -> SetKey {
        set_key(self.network, self.session)
    }
}

/// Every set's state.
pub const SETS: Table<SetKey, SetState> = Table::new("coordinator-sim/v1/keygen/sets");
/// Round 1: each participant's commitments, as received.
pub const COMMITMENTS: Table<ByValidator, Vec<u8>> =
    Table::new("coordinator-sim/v1/keygen/commitments");
/// Round 2: each participant's encrypted shares, by recipient.
pub const SHARES: Table<ByValidator, BTreeMap<Participant, Vec<u8>>> =
    Table::new("coordinator-sim/v1/keygen/shares");
/// A participant's round-3 report: (Ristretto key, network key), its proposed activation
/// block and the settings it scans and plans with.
pub type ReportedKeyPair = (([u8; 32], Vec<u8>), Option<u64>, Option<messages::ChainSettings>);
/// Round 3: each participant's generated key pair (Ristretto key, network key), its
/// proposed activation block and its settings.
pub const KEY_PAIRS: Table<ByValidator, ReportedKeyPair> =
    Table::new("coordinator-sim/v2/keygen/key_pairs");
/// The confirmed attempt's verification shares of both keys, computed from its relayed
/// round-1 messages at confirmation (absent when they did not compute, e.g. opaque test
/// messages): what lets the signing coordinator check shares and judge blame.
pub const VERIFICATION_SHARES: Table<SetKey, key_gen::VerificationShares> =
    Table::new("coordinator-sim/v1/keygen/verification_shares");
/// The hash of every key-generation message received, by ((set, attempt), round, sender).
pub const SEEN: Table<((SetKey, u32), u8, Participant), Hash32> =
    Table::new("coordinator-sim/v1/keygen/seen");
/// How many conflicting second messages arrived, ever.
pub const CONFLICTS: Table<(), u64> = Table::new("coordinator-sim/v1/keygen/conflicts");

/// Round numbers, as the processors count them.
pub mod round {
    /// Commitments (the answer to `GenerateKey`).
    pub const COMMITMENTS: u8 = 1;
    /// Shares, or a blame of a commitment (the answer to `Commitments`).
    pub const SHARES: u8 = 2;
    /// A key pair, or a blame of a share (the answer to `Shares`).
    pub const KEY_PAIR: u8 = 3;
}

/// The digest under which a received message is remembered.
pub fn message_hash(response: &KeyGenResponse) -> Hash32 {
    primitives::hash(b"tc/coordinator-sim/v1/keygen-message", &[&encode_body(response)])
}

/// The conflict counter.
pub fn conflicts(txn: &impl Get) -> Result<u64, DbError> {
    Ok(CONFLICTS.get(txn, &())?.unwrap_or(0))
}

/// Whether `validator` answered `stage`'s round of `state`'s current attempt.
pub fn answered(txn: &impl Get, state: &SetState, validator: Participant) -> Result<bool, DbError> {
    let key = (state.key(), state.attempt, validator);
    Ok(match state.stage {
        Stage::Commitments => COMMITMENTS.get(txn, &key)?.is_some(),
        Stage::Shares => SHARES.get(txn, &key)?.is_some(),
        Stage::KeyPairs => KEY_PAIRS.get(txn, &key)?.is_some(),
        Stage::Confirmed | Stage::Failed => true,
    })
}

/// The current attempt's participants that have not answered its current round.
pub fn waiting_for(txn: &impl Get, state: &SetState) -> Result<Vec<Participant>, DbError> {
    let mut out = Vec::new();
    for v in &state.participants {
        if !answered(txn, state, *v)? {
            out.push(*v);
        }
    }
    Ok(out)
}

/// Drops the relayed messages of `state`'s current attempt (it has ended).
pub fn prune_attempt(txn: &mut WriteTxn, state: &SetState) -> Result<(), DbError> {
    for v in &state.participants {
        let key = (state.key(), state.attempt, *v);
        COMMITMENTS.del(txn, &key)?;
        SHARES.del(txn, &key)?;
        KEY_PAIRS.del(txn, &key)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::activation_block;

    #[test]
    fn activation_is_the_lower_median_of_the_proposals_made() {
        assert_eq!(activation_block([None, None]), None);
        assert_eq!(activation_block([Some(7)]), Some(7));
        assert_eq!(activation_block([Some(9), None, Some(5)]), Some(5));
        assert_eq!(activation_block([Some(9), Some(5), Some(7)]), Some(7));
        // A minority's extreme proposals (0: rescan everything; u64::MAX: never scan)
        // do not move it outside the honest ones.
        assert_eq!(activation_block([Some(0), Some(100), Some(101)]), Some(100));
        assert_eq!(activation_block([Some(u64::MAX), Some(100), Some(101)]), Some(101));
        assert_eq!(
            activation_block([Some(0), Some(u64::MAX), Some(100), Some(101), Some(100)]),
            Some(100)
        );
    }
}

/// A set's hand-over to its successor (docs/rotation.md), recorded when the successor's
/// key is confirmed.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct Rotation {
    /// The successor's session.
    pub successor: u32,
    /// The successor's network key.
    pub successor_key: Vec<u8>,
    /// From this external block on, the set's Batches credit nothing.
    pub close_block: u64,
    /// The key holders that reported the set retired, with the block they stopped at.
    pub retired: BTreeMap<Participant, u64>,
}

/// Rotations, by the outgoing set.
pub const ROTATIONS: Table<SetKey, Rotation> = Table::new("coordinator-sim/v1/rotations");

/// A set's stage in a rotation, as `status` shows it: `active` (no successor), then
/// `forwarding` (its successor confirmed), `closing` (its Batches settled up to the close
/// block), `retired` (`threshold` key holders reported it).
pub fn rotation_stage(
    rotation: Option<&Rotation>,
    threshold: u16,
    last_settled: Option<u64>,
) -> &'static str {
    match rotation {
        None => "active",
        Some(r) if r.retired.len() >= usize::from(threshold) => "retired",
        Some(r) if last_settled.is_some_and(|b| b >= r.close_block) => "closing",
        Some(_) => "forwarding",
    }
}
