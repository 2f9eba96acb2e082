//! What the signing coordinator stores: items and their attempts, counters, settlement
//! state, and the tables (with what each key holder reported, and the convictions).
use std::collections::BTreeMap;

use borsh::{BorshDeserialize, BorshSerialize};
use db::{DbError, Get, Table};
use messages::{Participant, Session, SignId, SignKind};
use primitives::{Batch, NetworkId};

use super::{barred, eligible, item_id, ItemId};
use crate::state::{set_key, SetKey, SETS};

/// Where a signing item stands.
#[derive(Clone, Copy, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub enum SignStage {
    /// Waiting for every member's preprocess.
    Preprocesses,
    /// Preprocesses relayed; waiting for every member's share.
    Shares,
    /// Shares relayed; waiting for the signed Batch or the plan's completion.
    Completing,
    /// Complete. Final.
    Completed,
}

impl SignStage {
    /// The name used in logs and status.
    pub fn name(self) -> &'static str {
        match self {
            SignStage::Preprocesses => "preprocesses",
            SignStage::Shares => "shares",
            SignStage::Completing => "completing",
            SignStage::Completed => "completed",
        }
    }
}

/// How an attempt ended.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct SignAttemptEnd {
    /// The attempt.
    pub attempt: u32,
    /// Its signing set.
    pub selected: Vec<Participant>,
    /// What happened.
    pub outcome: String,
}

/// One item being signed (or signed).
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct SignItem {
    /// The set's network.
    pub network: NetworkId,
    /// The set's session.
    pub session: u32,
    /// What is signed.
    pub kind: SignKind,
    /// The current attempt.
    pub attempt: u32,
    /// Where it stands.
    pub stage: SignStage,
    /// The current attempt's signing set, ascending.
    pub selected: Vec<Participant>,
    /// Key holders excluded from the current attempt.
    pub excluded: Vec<Participant>,
    /// Unix ms of the attempt's start or its last progress.
    pub last_progress_ms: u64,
    /// The ended attempts, in order (the latest [`HISTORY`]).
    pub history: Vec<SignAttemptEnd>,
    /// A plan's transaction, once complete.
    pub tx: Option<Vec<u8>>,
    /// Earlier attempts whose set was fixed and that still run beside the current one
    /// (ROAST: `attempt` is then the next set forming), oldest first.
    pub open: Vec<OpenSession>,
}

/// An earlier attempt still running beside the current one (ROAST's concurrent sessions).
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct OpenSession {
    /// Its attempt number.
    pub attempt: u32,
    /// Its signing set, ascending.
    pub selected: Vec<Participant>,
    /// [`SignStage::Shares`] (waiting for shares) or [`SignStage::Completing`] (all
    /// shares relayed).
    pub stage: SignStage,
}

/// How many ended attempts an item keeps in its history (the latest).
pub const HISTORY: usize = 64;

/// A signed plan's deadline, in timeouts, once a member of its set reports it signed.
pub const SIGNED_TIMEOUT_FACTOR: u64 = 10;

impl SignItem {
    /// Records an ended attempt, keeping the latest [`HISTORY`].
    pub(super) fn end_attempt(&mut self, end: SignAttemptEnd) {
        self.history.push(end);
        let over = self.history.len().saturating_sub(HISTORY);
        self.history.drain(..over);
    }

    /// The set's key.
    pub fn set(&self) -> SetKey {
        set_key(self.network, self.session)
    }

    /// The table key.
    pub fn id(&self) -> ItemId {
        item_id(self.set(), &self.kind)
    }

    /// The current attempt's id.
    pub fn sign_id(&self) -> SignId {
        SignId { session: Session(self.session), kind: self.kind, attempt: self.attempt }
    }
}

/// Per-set signing counters (durable).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, BorshSerialize, BorshDeserialize)]
pub struct SignCounts {
    /// Batches whose signature verified.
    pub completed_batches: u64,
    /// Plans reported completed.
    pub completed_plans: u64,
    /// Blames accepted.
    pub blames: u64,
    /// Reattempts (after a blame or a timeout).
    pub reattempts: u64,
    /// Preprocesses accepted (one per signer and attempt).
    pub preprocesses: u64,
    /// A second, different preprocess from one signer for one attempt: the nonce rule
    /// broken (a redelivery repeats the same bytes and is not counted).
    pub conflicting_preprocesses: u64,
}

/// A proven fault in signing: what anyone holding the set's public key data can check
/// again with [`signers::batch::check_share`].
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct Conviction {
    /// The item.
    pub kind: SignKind,
    /// The attempt.
    pub attempt: u32,
    /// What was proven.
    pub fault: String,
    /// The signing set's preprocesses, by validator.
    pub preprocesses: BTreeMap<Participant, Vec<u8>>,
    /// The share judged (the culprit's, or for a false accusation the accused's valid one).
    pub share: Option<Vec<u8>>,
}

/// Per-set settlement state: each session of a network has its own Batch sequence.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, BorshSerialize, BorshDeserialize)]
pub struct SetSettlement {
    /// The next Batch id to settle.
    pub next_batch: u32,
    /// Signed Batches whose signature did not verify.
    pub bad_signatures: u64,
    /// The external block of the last Batch settled.
    pub last_block: Option<u64>,
}

/// Every item, by id.
pub const ITEMS: Table<ItemId, SignItem> = Table::new("sim/v2/sign/items");
/// The items not complete yet.
pub const ACTIVE: Table<ItemId, ()> = Table::new("sim/v1/sign/active");
/// Preprocesses by `(item, attempt, sender)`; pruned when the attempt ends.
pub const PREPROCESSES: Table<(ItemId, u32, Participant), Vec<u8>> =
    Table::new("sim/v1/sign/preprocesses");
/// Shares by `(item, attempt, sender)`; pruned when the attempt ends.
pub const SHARES: Table<(ItemId, u32, Participant), Vec<u8>> = Table::new("sim/v1/sign/shares");
/// A plan's completion as each key holder reported it (its transaction), by `(item,
/// reporter)`, until a threshold agree; then deleted.
pub const COMPLETION_REPORTS: Table<(ItemId, Participant), Vec<u8>> =
    Table::new("sim/v1/sign/completion_reports");
/// Pairs of key holders in dispute, `(set, low, high)`: one blamed the other in signing.
pub const DISPUTES: Table<(SetKey, Participant, Participant), ()> =
    Table::new("sim/v1/sign/disputes");
/// The Batches as each key holder reported them before signing, by `(network, session,
/// id, reporter)` (the first report kept); deleted once the Batch settles. A Batch's
/// shares are checked against it when every member of the signing set reported the same
/// one.
pub const BATCH_REPORTS: Table<(SetKey, u32, Participant), Batch> =
    Table::new("sim/v2/sign/batch_reports");
/// What each signer stated it signs for a plan, by `(item, signer)` (the first kept);
/// deleted once the item completes.
pub const STATEMENTS: Table<(ItemId, Participant), Vec<u8>> = Table::new("sim/v1/sign/statements");
/// Key holders convicted of a fault in signing, with the evidence, by `(set, culprit)`
/// (the first conviction kept). A convicted key holder is left out of every signing set of
/// the set while `t` others remain.
pub const CONVICTIONS: Table<(SetKey, Participant), Conviction> =
    Table::new("sim/v1/sign/convictions");
/// How far past the next Batch to settle a report is kept (bounds what a key holder can
/// make the simulator store).
pub const REPORT_WINDOW: u32 = 4096;
/// Counters per set.
pub const COUNTS: Table<SetKey, SignCounts> = Table::new("sim/v1/sign/counts");
/// Settlement state per set (network and session).
pub const SETTLEMENTS: Table<SetKey, SetSettlement> = Table::new("sim/v2/settlement/sets");
/// Verified Batches waiting for their predecessors, by `(set, id)`.
pub const VERIFIED: Table<(SetKey, u32), Batch> = Table::new("sim/v2/settlement/verified");

/// The counters of `set`.
pub fn counts(txn: &impl Get, set: SetKey) -> Result<SignCounts, DbError> {
    Ok(COUNTS.get(txn, &set)?.unwrap_or_default())
}

/// The settlement state of `set`.
pub fn set_settlement(txn: &impl Get, set: SetKey) -> Result<SetSettlement, DbError> {
    Ok(SETTLEMENTS.get(txn, &set)?.unwrap_or_default())
}

/// The members of `item`'s current attempt that have not sent what its stage needs.
pub fn waiting_for(txn: &impl Get, item: &SignItem) -> Result<Vec<Participant>, DbError> {
    // Before the set is fixed, any key holder not excluded can complete it.
    let (table, members) = match item.stage {
        SignStage::Preprocesses => {
            let Some(state) = SETS.get(txn, &item.set())? else { return Ok(vec![]) };
            let barred = barred(txn, item.set(), &state.participants)?;
            let eligible = eligible(&state.participants, &item.excluded, &barred, state.threshold);
            // Those that did not preprocess, and those that did but do not count (they
            // stated nothing, or something else).
            let (mut answered, mut silent) = (vec![], vec![]);
            for p in eligible {
                if PREPROCESSES.get(txn, &(item.id(), item.attempt, p))?.is_some() {
                    answered.push(p);
                } else {
                    silent.push(p);
                }
            }
            if let Some(counting) = super::judge::counting(txn, item, &answered)? {
                silent.extend(answered.into_iter().filter(|h| !counting.contains(h)));
                silent.sort_unstable();
            }
            return Ok(silent);
        }
        SignStage::Shares => (SHARES, item.selected.clone()),
        SignStage::Completing | SignStage::Completed => return Ok(vec![]),
    };
    let mut out = vec![];
    for p in &members {
        if table.get(txn, &(item.id(), item.attempt, *p))?.is_none() {
            out.push(*p);
        }
    }
    Ok(out)
}

/// Every item not complete yet.
pub fn active_items(txn: &impl Get) -> Result<Vec<SignItem>, DbError> {
    let mut out = vec![];
    for (id, ()) in ACTIVE.iter(txn)? {
        if let Some(item) = ITEMS.get(txn, &id)? {
            out.push(item);
        }
    }
    out.sort_by_key(|a| (a.set(), a.kind));
    Ok(out)
}
