//! What `coordinator-sim status` and `/status` report, read from the database.

use bus::{Mailbox, INBOX};
use db::{DbError, Get};
use serde::{Deserialize, Serialize};

use crate::{
    handler::DEFERRED,
    ledger,
    signing::{self, SignItem},
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
    /// Messages kept by versions without signing handlers, not yet handled.
    pub deferred: u64,
    /// Messages sent, not yet acknowledged end to end.
    pub outbox_pending: u64,
    /// The last settlement block made (0: none yet).
    #[serde(default)]
    pub last_settlement_block: u64,
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
    /// Signing with the set's key, and its network's settlement.
    #[serde(default)]
    pub signing: SigningStatus,
    /// Its stage in a key rotation: `active`, `forwarding`, `closing` or `retired`
    /// (docs/rotation.md).
    #[serde(default)]
    pub rotation: String,
    /// With a successor: its session, the close block, and the key holders that reported
    /// the set retired.
    #[serde(default)]
    pub successor: Option<SuccessorStatus>,
}

/// A set's successor in a rotation.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SuccessorStatus {
    /// The successor's session.
    pub session: u32,
    /// From this external block on, the set's Batches credit nothing.
    pub close_block: u64,
    /// Key holders that reported the set retired.
    pub retired: Vec<u16>,
}

/// One set's signing, and its network's settlement.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SigningStatus {
    /// Items not complete yet, by kind.
    pub in_progress: Vec<SignItemStatus>,
    /// Batches whose signature verified.
    pub completed_batches: u64,
    /// Plans reported completed.
    pub completed_plans: u64,
    /// Blames accepted.
    pub blames: u64,
    /// Pairs of key holders in dispute (one blamed the other), never again in one signing
    /// set while enough others remain.
    #[serde(default)]
    pub disputes: Vec<(u16, u16)>,
    /// Key holders convicted of a fault in signing, proven from public data (a wrong
    /// share or preprocess, or a false blame): `(validator, what, item, attempt)`. Left
    /// out of every signing set while `t` others remain.
    #[serde(default)]
    pub convictions: Vec<ConvictionStatus>,
    /// Reattempts (blame or timeout).
    pub reattempts: u64,
    /// Preprocesses accepted.
    pub preprocesses: u64,
    /// Second, different preprocesses for one signer and attempt (nonce rule broken).
    pub conflicting_preprocesses: u64,
    /// The network's signed Batches whose signature did not verify.
    pub bad_batch_signatures: u64,
    /// The network's next Batch id to settle.
    pub next_batch: u32,
}

/// A key holder's conviction.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ConvictionStatus {
    /// The culprit.
    pub validator: u16,
    /// What was proven.
    pub fault: String,
    /// The item (`batch <id>` or `plan <hex>`).
    pub item: String,
    /// The attempt.
    pub attempt: u32,
}

/// A signing item in progress.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SignItemStatus {
    /// `batch` or `plan`.
    pub kind: String,
    /// The Batch id, or the plan id in hex.
    pub id: String,
    /// The current attempt.
    pub attempt: u32,
    /// `preprocesses`, `shares` or `completing`.
    pub stage: String,
    /// The attempt's signing set.
    pub selected: Vec<u16>,
    /// Key holders excluded from the attempt.
    pub excluded: Vec<u16>,
    /// Members that have not sent what the stage needs.
    pub waiting_for: Vec<u16>,
    /// Earlier attempts still running beside this one (ROAST's concurrent sessions).
    #[serde(default)]
    pub sessions: Vec<SessionStatus>,
}

/// An open session: an earlier attempt still running.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionStatus {
    /// Its attempt.
    pub attempt: u32,
    /// `shares` or `completing`.
    pub stage: String,
    /// Its signing set.
    pub selected: Vec<u16>,
}

fn item_status(txn: &impl Get, item: &SignItem) -> Result<SignItemStatus, DbError> {
    let (kind, id) = match item.kind {
        messages::SignKind::Batch(id) => ("batch", id.to_string()),
        messages::SignKind::Plan(plan) => ("plan", hex::encode(plan)),
    };
    Ok(SignItemStatus {
        kind: kind.into(),
        id,
        attempt: item.attempt,
        stage: item.stage.name().into(),
        selected: item.selected.clone(),
        excluded: item.excluded.clone(),
        waiting_for: signing::waiting_for(txn, item)?,
        sessions: item
            .open
            .iter()
            .map(|o| SessionStatus {
                attempt: o.attempt,
                stage: o.stage.name().into(),
                selected: o.selected.clone(),
            })
            .collect(),
    })
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
    /// The agreed first external block scanned for the key.
    pub activation_block: Option<u64>,
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
        let active = signing::active_items(txn)?;
        for (key, s) in SETS.iter(txn)? {
            let counts = signing::counts(txn, key)?;
            let settlement = signing::set_settlement(txn, key)?;
            let rotation = state::ROTATIONS.get(txn, &key)?;
            let mut in_progress = vec![];
            for item in active.iter().filter(|i| i.set() == key) {
                in_progress.push(item_status(txn, item)?);
            }
            let signing = SigningStatus {
                in_progress,
                completed_batches: counts.completed_batches,
                completed_plans: counts.completed_plans,
                blames: counts.blames,
                disputes: signing::disputes(txn, key)?,
                convictions: signing::convictions(txn, key)?
                    .into_iter()
                    .map(|(validator, c)| ConvictionStatus {
                        validator,
                        fault: c.fault,
                        item: signing::kind_name(&c.kind),
                        attempt: c.attempt,
                    })
                    .collect(),
                reattempts: counts.reattempts,
                preprocesses: counts.preprocesses,
                conflicting_preprocesses: counts.conflicting_preprocesses,
                bad_batch_signatures: settlement.bad_signatures,
                next_batch: settlement.next_batch,
            };
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
                    activation_block: k.activation_block,
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
                signing,
                rotation: state::rotation_stage(
                    rotation.as_ref(),
                    s.threshold,
                    settlement.last_block,
                )
                .to_string(),
                successor: rotation.map(|r| SuccessorStatus {
                    session: r.successor,
                    close_block: r.close_block,
                    retired: r.retired.keys().copied().collect(),
                }),
            });
        }
        Ok(StatusReport {
            conflicts: state::conflicts(txn)?,
            sets,
            inbox_pending: INBOX.len(txn)?,
            deferred: DEFERRED.len(txn)?,
            outbox_pending: Mailbox::pending(txn)?.len() as u64,
            last_settlement_block: ledger::last_block(txn)?,
        })
    }

    /// Lines for a terminal.
    pub fn human(&self) -> String {
        let mut out = format!(
            "conflicts      {}\ninbox pending  {}\ndeferred       {}\noutbox pending {}\nsettlement     block {}\n",
            self.conflicts, self.inbox_pending, self.deferred, self.outbox_pending, self.last_settlement_block
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
                if let Some(block) = k.activation_block {
                    out += &format!("  activation   scanning from block {block}\n");
                }
            }
            if let Some(next) = &s.successor {
                out += &format!(
                    "  rotation     {}: to session {}, closing at block {}, retired by {:?}\n",
                    s.rotation, next.session, next.close_block, next.retired
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
            let g = &s.signing;
            out += &format!(
                "  signing      batches {} plans {} blames {} reattempts {} preprocesses {} (conflicting {}) bad batch signatures {}; next batch {}\n",
                g.completed_batches, g.completed_plans, g.blames, g.reattempts, g.preprocesses, g.conflicting_preprocesses, g.bad_batch_signatures, g.next_batch
            );
            if !g.disputes.is_empty() {
                out += &format!("  disputes     {:?} (never in one signing set)\n", g.disputes);
            }
            for c in &g.convictions {
                out += &format!(
                    "  convicted    validator {} {} ({} attempt {}; left out of signing)\n",
                    c.validator, c.fault, c.item, c.attempt
                );
            }
            for i in &g.in_progress {
                out += &format!(
                    "  signing      {} {} attempt {} stage {} set {:?} excluded {:?} waiting for {:?}\n",
                    i.kind, i.id, i.attempt, i.stage, i.selected, i.excluded, i.waiting_for
                );
                for o in &i.sessions {
                    out += &format!(
                        "               open session: attempt {} stage {} set {:?}\n",
                        o.attempt, o.stage, o.selected
                    );
                }
            }
        }
        out
    }
}
