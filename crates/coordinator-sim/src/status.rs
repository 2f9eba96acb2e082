//! What `coordinator-sim status` and `/status` report, read from the database.

use bus::{Mailbox, INBOX};
use db::{DbError, Get};
use serde::{Deserialize, Serialize};

use crate::{
    handler::DEFERRED,
    state::{self, SETS},
};

/// A point-in-time view of the simulator's durable state.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct StatusReport {
    /// Second, different key-generation messages received for one (session, attempt,
    /// round) from one sender, ever. Honest processors never cause one.
    pub conflicts: u64,
    /// Every set, by (network, session).
    pub sets: Vec<SetStatus>,
    /// Messages received, not yet handled.
    pub inbox_pending: u64,
    /// Messages kept for handlers not yet available.
    pub deferred: u64,
    /// Messages sent, not yet acknowledged end to end.
    pub outbox_pending: u64,
}

/// One set's key generation.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SetStatus {
    /// `bitcoin`, `litecoin`, `monero` or `ethereum`.
    pub network: String,
    /// The session.
    pub session: u32,
    /// Signers needed.
    pub threshold: u16,
    /// Every configured validator.
    pub validators: Vec<u16>,
    /// The current (or last) attempt.
    pub attempt: u32,
    /// Its participants.
    pub participants: Vec<u16>,
    /// `commitments`, `shares` or `key_pairs` while running; `confirmed` or `failed`.
    pub stage: String,
    /// Participants that have not answered the current round yet.
    pub waiting_for: Vec<u16>,
    /// Every exclusion, in order.
    pub excluded: Vec<ExcludedStatus>,
    /// The confirmed key pair, or `null`.
    pub confirmed: Option<KeysStatus>,
    /// Whether the set failed (fewer than `threshold` participants left).
    pub failed: bool,
    /// Why it failed, or `null`.
    pub failure: Option<String>,
    /// Every ended attempt, in order.
    pub history: Vec<AttemptStatus>,
}

/// An excluded validator.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExcludedStatus {
    /// Who.
    pub validator: u16,
    /// In which attempt.
    pub attempt: u32,
    /// Why.
    pub reason: String,
}

/// A confirmed key pair, hex.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeysStatus {
    /// The attempt that produced it.
    pub attempt: u32,
    /// The Ristretto key, 64 hex characters.
    pub ristretto_key: String,
    /// The network key, hex.
    pub network_key: String,
    /// Milliseconds from the start of key generation to confirmation.
    pub elapsed_ms: u64,
}

/// How an attempt ended.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AttemptStatus {
    /// The attempt.
    pub attempt: u32,
    /// Its participants.
    pub participants: Vec<u16>,
    /// What happened.
    pub outcome: String,
}

impl StatusReport {
    /// Reads the report in one read transaction.
    pub fn read(txn: &impl Get) -> Result<Self, DbError> {
        let mut sets = Vec::new();
        for (_, s) in SETS.iter(txn)? {
            sets.push(SetStatus {
                network: s.network.name().to_string(),
                session: s.session,
                threshold: s.threshold,
                validators: s.validators.clone(),
                attempt: s.attempt,
                participants: s.participants.clone(),
                stage: s.stage.name().to_string(),
                waiting_for: if s.stage.in_progress() {
                    state::waiting_for(txn, &s)?
                } else {
                    vec![]
                },
                excluded: s
                    .excluded
                    .iter()
                    .map(|e| ExcludedStatus {
                        validator: e.validator,
                        attempt: e.attempt,
                        reason: e.reason.clone(),
                    })
                    .collect(),
                confirmed: s.confirmed.as_ref().map(|k| KeysStatus {
                    attempt: k.attempt,
                    ristretto_key: hex::encode(k.ristretto_key),
                    network_key: hex::encode(&k.network_key),
                    elapsed_ms: k.confirmed_ms.saturating_sub(k.started_ms),
                }),
                failed: s.failure.is_some(),
                failure: s.failure.clone(),
                history: s
                    .history
                    .iter()
                    .map(|h| AttemptStatus {
                        attempt: h.attempt,
                        participants: h.participants.clone(),
                        outcome: h.outcome.clone(),
                    })
                    .collect(),
            });
        }
        Ok(StatusReport {
            conflicts: state::conflicts(txn)?,
            sets,
            inbox_pending: INBOX.len(txn)?,
            deferred: DEFERRED.len(txn)?,
            outbox_pending: Mailbox::pending(txn)?.len() as u64,
        })
    }

    /// Lines for a terminal.
    pub fn human(&self) -> String {
        let mut out = format!(
            "conflicts      {}\ninbox pending  {}\ndeferred       {}\noutbox pending {}\n",
            self.conflicts, self.inbox_pending, self.deferred, self.outbox_pending
        );
        for s in &self.sets {
            out += &format!(
                "\n{} session {}: {}-of-{:?}, attempt {}, participants {:?}, stage {}\n",
                s.network, s.session, s.threshold, s.validators, s.attempt, s.participants, s.stage
            );
            if !s.waiting_for.is_empty() {
                out += &format!("  waiting for  {:?}\n", s.waiting_for);
            }
            if let Some(k) = &s.confirmed {
                out += &format!(
                    "  confirmed    ristretto {} network {} (attempt {})\n",
                    k.ristretto_key, k.network_key, k.attempt
                );
            }
            if let Some(f) = &s.failure {
                out += &format!("  FAILED       {f}\n");
            }
            for e in &s.excluded {
                out += &format!(
                    "  excluded     validator {} in attempt {}: {}\n",
                    e.validator, e.attempt, e.reason
                );
            }
            for h in &s.history {
                out += &format!("  attempt {}    {:?}: {}\n", h.attempt, h.participants, h.outcome);
            }
        }
        out
    }
}
