//! The coordinator's side of signing (Batches and planned transactions) and the
//! settlement chain's acceptance of signed Batches (docs/protocol.md §5.2).
//!
//! Per item `(set, kind)`, attempt by attempt:
//! - Each key holder (a participant of the set's confirmed key-generation attempt) that
//!   has the item ready sends `Preprocess` for attempt 0 unasked, and every key holder
//!   for each reattempt. The first one creates the item.
//! - Responsive first: the attempt's signing set is fixed as soon as `t` [`eligible`] key
//!   holders (not excluded from the item, not convicted), no two of them in dispute
//!   ([`disputeless`]) and, where shares can be checked, all having stated the same thing
//!   to sign, have preprocessed: the preferred set ([`signing_set_avoiding`], by
//!   `hash("tc/sim/v1/signing-set", [borsh(kind), attempt LE, participant LE])`) if all of
//!   it answered, else the first such `t` of those that did. A silent key holder so costs
//!   no timeout (any eligible preprocess counts as progress for the deadline). Each
//!   member then gets `Preprocesses` with the `t` preprocesses; once
//!   every member sent its share, each gets `Shares` with the `t` shares. Later
//!   preprocesses and messages from non-members are stored and ignored.
//! - Verifiable blame: with the set's verification shares (computed at confirmation from
//!   the public round-1 messages) and what every member stated it signs (its
//!   `BatchReport::Batch`, or its plan `Statement`), every share is checked from public
//!   data before it is relayed (`signers::public`): a wrong one convicts its sender, and a
//!   member's `Blame` convicts the accuser when the accused's share (or preprocess) is
//!   valid, else the accused. The convicted ([`CONVICTIONS`]) are left out of every later
//!   set while `t` others remain. Where nothing can be checked, a `Blame` puts the accuser
//!   and the accused in dispute (one of the two lies) and reattempts at once; a blame
//!   between a pair already in dispute also excludes both from the next attempt. Sets are chosen
//!   without disputed pairs whenever one can be filled (a backtracking search), and honest
//!   key holders never dispute each other: while `t` key holders are honest, liars cannot
//!   stall signing. An attempt without progress for the timeout reattempts without the
//!   members that did not send what the stage needed (a plan's, once a member reports it
//!   signed, after [`SIGNED_TIMEOUT_FACTOR`] timeouts). An item's exclusions accumulate
//!   over its attempts, so key holders that answer first and then withhold cannot take
//!   turns; if that would leave fewer than `t` key holders, only the last attempt's
//!   culprits are excluded, and if even that is too many, nobody. A reattempt sends
//!   `Reattempt { attempt + 1 }` to every key holder.
//! - A Batch is complete when a `SignedBatch` verifies under the set's Ristretto key; a
//!   plan when `t` key holders report `Completed` with the same transaction (signers when
//!   they publish it, every key holder when its own node shows it in an applied block;
//!   fewer than `t` liars cannot complete a plan that was not signed), relayed once to the
//!   key holders that did not report it. Complete items get no more timeouts, and late
//!   messages for them are ignored.
//! - Verified Batches are settled strictly in id order per network: credit the ledger,
//!   make the next settlement block, and send every key holder `BlockAcknowledged` with
//!   the burns queued for the network since the previous acknowledgement.
//!
//! Every method runs inside the caller's write transaction and queues what it sends in
//! it. Nothing here does I/O.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use bitcoin_sign::check::{check_transaction_preprocess, check_transaction_share};
use borsh::{BorshDeserialize, BorshSerialize};
use bus::Mailbox;
use db::{DbError, Get, Table, WriteTxn};
use messages::{
    BatchReport, CoordinatorMessage, Participant, Party, Session, SettlementEvent, SignId,
    SignKind, SignRequest, SignResponse,
};
use modular_frost::curve::{Ristretto, Secp256k1};
use primitives::{codec::encode_body, codec::Versioned, Batch, NetworkId};
use signers::public::{Fault, PublicKeys};

use crate::{
    clock::Clock,
    config::{Selection, SetConfig},
    keygen::SimError,
    ledger,
    metrics::SignMetrics,
    state::{set_key, SetKey, SetState, SETS, VERIFICATION_SHARES},
};

/// An item's table key: `hash("tc/sim/v1/sign-item", [network, session LE, borsh(kind)])`.
pub type ItemId = [u8; 32];

/// The key of `kind` signed by `set`.
pub fn item_id(set: SetKey, kind: &SignKind) -> ItemId {
    primitives::hash(b"tc/sim/v1/sign-item", &[&[set.0], &set.1.to_le_bytes(), &encode_body(kind)])
}

/// The signing set of `kind`'s `attempt`: the `threshold` members of `holders` not in
/// `excluded` with the lowest `hash("tc/sim/v1/signing-set", [borsh(kind), attempt LE,
/// participant LE])`, ascending. If fewer than `threshold` remain after the exclusions,
/// nobody is excluded.
pub fn signing_set(
    kind: &SignKind,
    attempt: u32,
    holders: &[Participant],
    excluded: &[Participant],
    threshold: u16,
) -> Vec<Participant> {
    signing_set_avoiding(kind, attempt, holders, excluded, &[], threshold)
}

/// [`signing_set`] without two members in dispute (one blamed the other: one of the two
/// lies), found by [`disputeless`] (members in fewer disputes first, then in hash order).
/// If no such set exists without the excluded members, the disputes are set aside for
/// this attempt (the exclusions are not: an excluded member was silent).
pub fn signing_set_avoiding(
    kind: &SignKind,
    attempt: u32,
    holders: &[Participant],
    excluded: &[Participant],
    disputes: &[(Participant, Participant)],
    threshold: u16,
) -> Vec<Participant> {
    let t = usize::from(threshold);
    let mut candidates: Vec<Participant> =
        holders.iter().copied().filter(|p| !excluded.contains(p)).collect();
    if candidates.len() < t {
        candidates = holders.to_vec();
    }
    let pick = |from: &[Participant], disputes: &[(Participant, Participant)]| {
        disputeless(kind, attempt, holders, from, disputes, threshold)
    };
    // The exclusions (silent key holders: they would stall the attempt for sure) come
    // before the disputes (one of the pair lies: it may).
    let mut set = pick(&candidates, disputes)
        .or_else(|| pick(&candidates, &[]))
        .or_else(|| pick(holders, disputes))
        .unwrap_or_default();
    set.sort_unstable();
    set
}

/// `threshold` members of `candidates` with no two in dispute, if there are: the first
/// such set in the order of the members' disputes with `holders` (fewest first), then of
/// `hash("tc/sim/v1/signing-set", [borsh(kind), attempt LE, participant LE])`, found by a
/// backtracking search (so a set is found whenever one exists, up to a bound of
/// [`SEARCH_STEPS`] steps); ascending.
pub fn disputeless(
    kind: &SignKind,
    attempt: u32,
    holders: &[Participant],
    candidates: &[Participant],
    disputes: &[(Participant, Participant)],
    threshold: u16,
) -> Option<Vec<Participant>> {
    let kind = encode_body(kind);
    let in_dispute = |a: Participant, b: Participant| disputes.contains(&(a.min(b), a.max(b)));
    let degree = |p: Participant| holders.iter().filter(|q| in_dispute(p, **q)).count();
    let mut ranked: Vec<(usize, [u8; 32], Participant)> = candidates
        .iter()
        .map(|p| {
            let h = primitives::hash(
                b"tc/sim/v1/signing-set",
                &[&kind, &attempt.to_le_bytes(), &p.to_le_bytes()],
            );
            (degree(*p), h, *p)
        })
        .collect();
    ranked.sort_unstable();
    let ranked: Vec<Participant> = ranked.into_iter().map(|(_, _, p)| p).collect();
    let mut set = vec![];
    let mut steps = SEARCH_STEPS;
    if !extend(&ranked, 0, usize::from(threshold), &in_dispute, &mut set, &mut steps) {
        return None;
    }
    set.sort_unstable();
    Some(set)
}

/// The most steps [`disputeless`] takes before it gives up (a set of a few hundred key
/// holders with many disputes; far above what real disputes make).
pub const SEARCH_STEPS: usize = 100_000;

/// Extends `set` to `t` members from `ranked[from..]`, none in dispute with another, in
/// rank order; whether it could.
fn extend(
    ranked: &[Participant],
    from: usize,
    t: usize,
    in_dispute: &impl Fn(Participant, Participant) -> bool,
    set: &mut Vec<Participant>,
    steps: &mut usize,
) -> bool {
    if set.len() == t {
        return true;
    }
    for i in from..ranked.len() {
        if ranked.len() - i < t - set.len() || *steps == 0 {
            return false;
        }
        *steps -= 1;
        let p = ranked[i];
        if set.iter().any(|q| in_dispute(p, *q)) {
            continue;
        }
        set.push(p);
        if extend(ranked, i + 1, t, in_dispute, set, steps) {
            return true;
        }
        set.pop();
    }
    false
}

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
}

/// How many ended attempts an item keeps in its history (the latest).
pub const HISTORY: usize = 64;

/// A signed plan's deadline, in timeouts, once a member of its set reports it signed.
pub const SIGNED_TIMEOUT_FACTOR: u64 = 10;

impl SignItem {
    /// Records an ended attempt, keeping the latest [`HISTORY`].
    fn end_attempt(&mut self, end: SignAttemptEnd) {
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

/// Per-network settlement state.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, BorshSerialize, BorshDeserialize)]
pub struct NetworkSettlement {
    /// The next Batch id to settle.
    pub next_batch: u32,
    /// Signed Batches whose signature did not verify.
    pub bad_signatures: u64,
}

/// Every item, by id.
pub const ITEMS: Table<ItemId, SignItem> = Table::new("sim/v1/sign/items");
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
/// The Batches as each key holder reported them before signing, by `(network, id,
/// reporter)` (the first report kept); deleted once the Batch settles. A Batch's shares are
/// checked against it when every member of the signing set reported the same one.
pub const BATCH_REPORTS: Table<(u8, u32, Participant), Batch> =
    Table::new("sim/v1/sign/batch_reports");
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
/// Settlement state per network (as `u8`).
pub const NETWORKS: Table<u8, NetworkSettlement> = Table::new("sim/v1/settlement/networks");
/// Verified Batches waiting for their predecessors, by `(network, id)`, with the set
/// that signed them.
pub const VERIFIED: Table<(u8, u32), (SetKey, Batch)> = Table::new("sim/v1/settlement/verified");

/// The counters of `set`.
pub fn counts(txn: &impl Get, set: SetKey) -> Result<SignCounts, DbError> {
    Ok(COUNTS.get(txn, &set)?.unwrap_or_default())
}

/// The settlement state of `network`.
pub fn network_settlement(
    txn: &impl Get,
    network: NetworkId,
) -> Result<NetworkSettlement, DbError> {
    Ok(NETWORKS.get(txn, &(network as u8))?.unwrap_or_default())
}

/// The members of `item`'s current attempt that have not sent what its stage needs.
pub fn waiting_for(txn: &impl Get, item: &SignItem) -> Result<Vec<Participant>, DbError> {
    // Before the set is fixed, any key holder not excluded can complete it.
    let (table, members) = match item.stage {
        SignStage::Preprocesses => {
            let Some(state) = SETS.get(txn, &item.set())? else { return Ok(vec![]) };
            let barred = barred(txn, item.set(), &state.participants)?;
            let eligible = eligible(&state.participants, &item.excluded, &barred, state.threshold);
            (PREPROCESSES, eligible)
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

/// What [`SignCoordinator`] did with a message.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SignOutcome {
    /// It advanced an item (stored and relayed, reattempted, completed or settled).
    Progress,
    /// Stored, but it does not advance the item (a preprocess from a non-member).
    Stored,
    /// Recorded nothing but a log line (a Batch report).
    Noted,
    /// Ignored; the reason.
    Ignored(&'static str),
}

/// Drives signing for every configured set, and settles signed Batches.
#[derive(Debug)]
pub struct SignCoordinator {
    sets: Vec<SetConfig>,
    mailbox: Mailbox,
    clock: Arc<dyn Clock>,
    timeout_ms: u64,
    selection: Selection,
    metrics: SignMetrics,
}

/// A set that can sign: its state (with the key holders), its Ristretto key and the
/// pairs of its key holders in dispute.
struct Signer {
    state: SetState,
    ristretto_key: [u8; 32],
    disputes: Vec<(Participant, Participant)>,
    /// Convicted key holders, left out while `t` others remain.
    barred: Vec<Participant>,
}

impl Signer {
    fn holders(&self) -> &[Participant] {
        &self.state.participants
    }

    /// Who may sign `item`'s current attempt ([`eligible`]).
    fn eligible_for(&self, excluded: &[Participant]) -> Vec<Participant> {
        eligible(self.holders(), excluded, &self.barred, self.state.threshold)
    }

    /// `kind`'s signing set for `attempt` among the [`eligible`] key holders, without
    /// disputed pairs.
    fn signing_set(
        &self,
        kind: &SignKind,
        attempt: u32,
        excluded: &[Participant],
    ) -> Vec<Participant> {
        let holders = self.holders();
        let eligible = self.eligible_for(excluded);
        let out: Vec<Participant> =
            holders.iter().copied().filter(|h| !eligible.contains(h)).collect();
        signing_set_avoiding(kind, attempt, holders, &out, &self.disputes, self.state.threshold)
    }

    /// A key holder's DKG index (its position among the key holders, from 1).
    fn index(&self, holder: Participant) -> Option<u16> {
        let position = self.holders().iter().position(|h| *h == holder)?;
        u16::try_from(position + 1).ok()
    }
}

/// The convicted key holders of `set`.
fn barred(
    txn: &impl Get,
    set: SetKey,
    holders: &[Participant],
) -> Result<Vec<Participant>, DbError> {
    let mut out = vec![];
    for holder in holders {
        if CONVICTIONS.get(txn, &(set, *holder))?.is_some() {
            out.push(*holder);
        }
    }
    Ok(out)
}

/// Who may sign an attempt: the key holders neither `excluded` from the item (silent in
/// it) nor `barred` (convicted). While that leaves fewer than `threshold`, the item's
/// exclusions are dropped first (silence is no proof), then the convictions instead, then
/// both. (More than `n - t` convicted key holders leave fewer than `t` honest ones, and
/// nothing can sign then.) One answer for choosing a set and for counting who answered.
pub fn eligible(
    holders: &[Participant],
    excluded: &[Participant],
    barred: &[Participant],
    threshold: u16,
) -> Vec<Participant> {
    let t = usize::from(threshold);
    let without = |skip: &[&[Participant]]| -> Vec<Participant> {
        holders.iter().copied().filter(|h| !skip.iter().any(|s| s.contains(h))).collect()
    };
    for skip in [&[excluded, barred][..], &[barred], &[excluded]] {
        let left = without(skip);
        if left.len() >= t {
            return left;
        }
    }
    holders.to_vec()
}

/// Every conviction of `set`'s key holders.
pub fn convictions(txn: &impl Get, set: SetKey) -> Result<Vec<(Participant, Conviction)>, DbError> {
    let holders = SETS.get(txn, &set)?.map(|s| s.participants).unwrap_or_default();
    let mut out = vec![];
    for holder in holders {
        if let Some(conviction) = CONVICTIONS.get(txn, &(set, holder))? {
            out.push((holder, conviction));
        }
    }
    Ok(out)
}

/// The pairs `(low, high)` of `set`'s key holders in dispute.
pub fn disputes(txn: &impl Get, set: SetKey) -> Result<Vec<(Participant, Participant)>, DbError> {
    Ok(DISPUTES
        .iter(txn)?
        .into_iter()
        .filter(|((s, _, _), _)| *s == set)
        .map(|((_, a, b), _)| (a, b))
        .collect())
}

impl SignCoordinator {
    /// A coordinator for `sets`, sending through `mailbox`.
    pub fn new(
        sets: Vec<SetConfig>,
        mailbox: Mailbox,
        clock: Arc<dyn Clock>,
        timeout: Duration,
        selection: Selection,
        metrics: SignMetrics,
    ) -> Self {
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX).max(1);
        SignCoordinator { sets, mailbox, clock, timeout_ms, selection, metrics }
    }

    /// The attempt timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// At startup: an attempt whose deadline passed while the simulator was down gets a
    /// full timeout from now.
    pub fn start(&self, txn: &mut WriteTxn) -> Result<(), SimError> {
        let now = self.clock.now_ms();
        for mut item in active_items(txn)? {
            if now.saturating_sub(item.last_progress_ms) >= self.timeout_ms {
                item.last_progress_ms = now;
                ITEMS.put(txn, &item.id(), &item)?;
            }
        }
        Ok(())
    }

    fn configured(&self, key: SetKey) -> bool {
        self.sets.iter().any(|s| s.key() == key)
    }

    /// The configured, confirmed set `(network, session)`, or why not.
    fn signer(
        &self,
        txn: &impl Get,
        network: NetworkId,
        session: u32,
    ) -> Result<Result<Signer, &'static str>, SimError> {
        let key = set_key(network, session);
        let Some(state) = SETS.get(txn, &key)?.filter(|_| self.configured(key)) else {
            return Ok(Err("unknown_session"));
        };
        let Some(ristretto_key) = state.confirmed.as_ref().map(|c| c.ristretto_key) else {
            return Ok(Err("no_key"));
        };
        let disputes = disputes(txn, key)?;
        let barred = barred(txn, key, &state.participants)?;
        Ok(Ok(Signer { state, ristretto_key, disputes, barred }))
    }

    fn send(
        &self,
        txn: &mut WriteTxn,
        network: NetworkId,
        to: Participant,
        message: CoordinatorMessage,
    ) -> Result<(), SimError> {
        let recipient = Party::Processor { network, validator: to };
        self.mailbox.send(txn, recipient, message.encode())?;
        Ok(())
    }

    fn bump(
        &self,
        txn: &mut WriteTxn,
        set: SetKey,
        f: impl FnOnce(&mut SignCounts),
    ) -> Result<(), SimError> {
        let mut c = counts(txn, set)?;
        f(&mut c);
        COUNTS.put(txn, &set, &c)?;
        Ok(())
    }

    /// Handles one signing message from `sender`, inside `txn`. On `Err`, the caller
    /// MUST drop `txn` uncommitted.
    pub fn handle_sign(
        &self,
        txn: &mut WriteTxn,
        sender: Party,
        response: &SignResponse,
    ) -> Result<SignOutcome, SimError> {
        let outcome = self.handle_sign_inner(txn, sender, response)?;
        if let SignOutcome::Ignored(reason) = outcome {
            self.metrics.ignored(reason);
        }
        Ok(outcome)
    }

    fn handle_sign_inner(
        &self,
        txn: &mut WriteTxn,
        sender: Party,
        response: &SignResponse,
    ) -> Result<SignOutcome, SimError> {
        let Party::Processor { network, validator } = sender else {
            return Ok(SignOutcome::Ignored("not_a_processor"));
        };
        let (session, kind, attempt) = match response {
            SignResponse::Preprocess { id, .. }
            | SignResponse::Share { id, .. }
            | SignResponse::Statement { id, .. }
            | SignResponse::Blame { id, .. } => (id.session, id.kind, Some(id.attempt)),
            SignResponse::Completed { session, plan, .. } => {
                (*session, SignKind::Plan(*plan), None)
            }
        };
        let span = tracing::info_span!("sign", %network, session = session.0, kind = %kind_name(&kind), attempt, validator);
        let _enter = span.enter();
        let signer = match self.signer(txn, network, session.0)? {
            Ok(signer) => signer,
            Err(reason) => {
                tracing::warn!(reason, "signing message for a set that cannot sign; ignored");
                return Ok(SignOutcome::Ignored(reason));
            }
        };
        if !signer.holders().contains(&validator) {
            tracing::warn!("signing message from a validator holding no key share; ignored");
            return Ok(SignOutcome::Ignored("not_a_key_holder"));
        }
        let id = item_id(signer.state.key(), &kind);
        let existing = ITEMS.get(txn, &id)?;
        if let SignResponse::Completed { tx, .. } = response {
            return self.on_completed(txn, &signer, existing, kind, validator, tx);
        }
        let Some(attempt) = attempt else { return Ok(SignOutcome::Ignored("unreachable")) };
        let mut item = match existing {
            Some(item) => item,
            None if attempt == 0 && matches!(response, SignResponse::Preprocess { .. }) => {
                self.new_item(&signer, kind)
            }
            None => return Ok(SignOutcome::Ignored("unknown_item")),
        };
        if item.stage == SignStage::Completed {
            return Ok(SignOutcome::Ignored("completed"));
        }
        if let SignResponse::Statement { statement, .. } = response {
            // Whatever the attempt: a signer states its item once.
            let outcome = self.on_statement(txn, &signer, &mut item, validator, statement)?;
            if outcome == SignOutcome::Progress {
                ITEMS.put(txn, &id, &item)?;
            }
            return Ok(outcome);
        }
        if attempt != item.attempt {
            tracing::debug!(current = item.attempt, "signing message for another attempt; ignored");
            return Ok(SignOutcome::Ignored("other_attempt"));
        }
        let outcome = match response {
            SignResponse::Preprocess { preprocess, .. } => {
                self.on_preprocess(txn, &signer, &mut item, validator, preprocess)?
            }
            SignResponse::Share { share, .. } => {
                self.on_share(txn, &signer, &mut item, validator, share)?
            }
            SignResponse::Blame { accused, .. } => {
                self.on_blame(txn, &signer, &mut item, validator, *accused)?
            }
            SignResponse::Completed { .. } | SignResponse::Statement { .. } => {
                SignOutcome::Ignored("unreachable")
            }
        };
        if matches!(outcome, SignOutcome::Progress | SignOutcome::Stored) {
            ITEMS.put(txn, &id, &item)?;
            if item.stage != SignStage::Completed {
                ACTIVE.put(txn, &id, &())?;
            }
        }
        Ok(outcome)
    }

    fn new_item(&self, signer: &Signer, kind: SignKind) -> SignItem {
        let selected = signer.signing_set(&kind, 0, &[]);
        tracing::info!(?selected, "new signing item");
        self.metrics.attempts.inc();
        SignItem {
            network: signer.state.network,
            session: signer.state.session,
            kind,
            attempt: 0,
            stage: SignStage::Preprocesses,
            selected,
            excluded: vec![],
            last_progress_ms: self.clock.now_ms(),
            history: vec![],
            tx: None,
        }
    }

    fn on_preprocess(
        &self,
        txn: &mut WriteTxn,
        signer: &Signer,
        item: &mut SignItem,
        validator: Participant,
        preprocess: &[u8],
    ) -> Result<SignOutcome, SimError> {
        let key = (item.id(), item.attempt, validator);
        if let Some(first) = PREPROCESSES.get(txn, &key)? {
            if first != preprocess {
                tracing::error!(
                    validator,
                    attempt = item.attempt,
                    "a signer sent a second, different preprocess for one attempt: the nonce rule is broken"
                );
                self.bump(txn, item.set(), |c| c.conflicting_preprocesses += 1)?;
                return Ok(SignOutcome::Ignored("conflicting"));
            }
            return Ok(SignOutcome::Ignored("duplicate"));
        }
        PREPROCESSES.put(txn, &key, &preprocess.to_vec())?;
        self.bump(txn, item.set(), |c| c.preprocesses += 1)?;
        if item.stage != SignStage::Preprocesses
            || !signer.eligible_for(&item.excluded).contains(&validator)
        {
            tracing::debug!("preprocess after the signing set was fixed, or from an excluded or convicted key holder; stored");
            return Ok(SignOutcome::Stored);
        }
        item.last_progress_ms = self.clock.now_ms();
        self.try_fix_set(txn, signer, item)?;
        Ok(SignOutcome::Progress)
    }

    /// Fixes `item`'s signing set if enough eligible key holders answered, and relays
    /// their preprocesses. Responsive first: the set is fixed as soon as `t` eligible key
    /// holders (no two in dispute) have preprocessed this attempt, whoever they are, so a
    /// silent key holder costs no timeout; the preferred set is kept when it is among
    /// them. Where key holders stated what they sign, only those that stated the agreed
    /// statement count ([`Self::agreed`]), so that every fixed set can be checked.
    fn try_fix_set(
        &self,
        txn: &mut WriteTxn,
        signer: &Signer,
        item: &mut SignItem,
    ) -> Result<(), SimError> {
        let eligible = signer.eligible_for(&item.excluded);
        let mut answered = vec![];
        for holder in &eligible {
            if PREPROCESSES.get(txn, &(item.id(), item.attempt, *holder))?.is_some() {
                answered.push(*holder);
            }
        }
        if let Some(agreeing) = self.agreed(txn, item, &eligible)? {
            answered.retain(|h| agreeing.contains(h));
        }
        let preferred = item.selected.iter().all(|p| answered.contains(p));
        let set = if preferred {
            Some(item.selected.clone())
        } else if self.selection == Selection::Preferred {
            // The reference behaviour: wait for the preferred set (a silent member costs
            // a timeout).
            None
        } else {
            let t = signer.state.threshold;
            disputeless(&item.kind, item.attempt, signer.holders(), &answered, &signer.disputes, t)
        };
        let Some(set) = set else { return Ok(()) };
        item.selected = set;
        // Every member of `set` answered: gathered in this transaction, all are there.
        let Some(all) = self.gather(txn, item, PREPROCESSES)? else { return Ok(()) };
        for to in item.selected.clone() {
            let request =
                SignRequest::Preprocesses { id: item.sign_id(), preprocesses: all.clone() };
            self.send(txn, item.network, to, CoordinatorMessage::Sign(request))?;
        }
        item.stage = SignStage::Shares;
        tracing::info!(selected = ?item.selected, "all preprocesses in; relayed");
        Ok(())
    }

    /// When shares can be checked (the set's verification shares are known) and any of
    /// `eligible` stated what it signs for `item`: those that stated the statement most of
    /// them stated (the lowest encoding among equals), which the set is chosen from.
    /// `None` otherwise (every answer counts).
    fn agreed(
        &self,
        txn: &impl Get,
        item: &SignItem,
        eligible: &[Participant],
    ) -> Result<Option<Vec<Participant>>, SimError> {
        if VERIFICATION_SHARES.get(txn, &item.set())?.is_none() {
            return Ok(None);
        }
        let mut groups: BTreeMap<Vec<u8>, Vec<Participant>> = BTreeMap::new();
        for holder in eligible {
            if let Some(stated) = self.stated(txn, item, *holder)? {
                groups.entry(stated.key()).or_default().push(*holder);
            }
        }
        // The largest group; among equals, the first in encoding order.
        let mut best: Option<Vec<Participant>> = None;
        for (_, members) in groups {
            if best.as_ref().is_none_or(|b| members.len() > b.len()) {
                best = Some(members);
            }
        }
        Ok(best)
    }

    fn on_share(
        &self,
        txn: &mut WriteTxn,
        signer: &Signer,
        item: &mut SignItem,
        validator: Participant,
        share: &[u8],
    ) -> Result<SignOutcome, SimError> {
        if !item.selected.contains(&validator) {
            return Ok(SignOutcome::Ignored("not_selected"));
        }
        if item.stage != SignStage::Shares {
            return Ok(SignOutcome::Ignored("out_of_order"));
        }
        let key = (item.id(), item.attempt, validator);
        if SHARES.get(txn, &key)?.is_some() {
            return Ok(SignOutcome::Ignored("duplicate"));
        }
        // A share that can be checked is, before anyone else sees it: a wrong one convicts
        // its sender, who is left out from then on, and the item goes on without it.
        if let Some(check) = self.checker(txn, signer, item)? {
            if let Verdict::Guilty(culprit, fault) = check.judge_share(validator, share) {
                self.convict(txn, signer, item, culprit, &fault, &check, Some(share))?;
                return Ok(SignOutcome::Progress);
            }
        }
        SHARES.put(txn, &key, &share.to_vec())?;
        item.last_progress_ms = self.clock.now_ms();
        let Some(all) = self.gather(txn, item, SHARES)? else {
            return Ok(SignOutcome::Progress);
        };
        for to in item.selected.clone() {
            let request = SignRequest::Shares { id: item.sign_id(), shares: all.clone() };
            self.send(txn, item.network, to, CoordinatorMessage::Sign(request))?;
        }
        item.stage = SignStage::Completing;
        tracing::info!("all shares in; relayed");
        Ok(SignOutcome::Progress)
    }

    fn on_blame(
        &self,
        txn: &mut WriteTxn,
        signer: &Signer,
        item: &mut SignItem,
        accuser: Participant,
        accused: Participant,
    ) -> Result<SignOutcome, SimError> {
        if !item.selected.contains(&accuser) {
            return Ok(SignOutcome::Ignored("not_selected"));
        }
        if item.stage == SignStage::Preprocesses {
            // Nothing was relayed: there is nothing the accuser can have checked.
            return Ok(SignOutcome::Ignored("premature_blame"));
        }
        if accused == accuser || !item.selected.contains(&accused) {
            return Ok(SignOutcome::Ignored("bad_blame"));
        }
        // Where the accusation can be checked from public data, it is: the accused's share
        // (or, before shares were relayed, its preprocess) decides who is convicted.
        if let Some(check) = self.checker(txn, signer, item)? {
            let share = SHARES.get(txn, &(item.id(), item.attempt, accused))?;
            let verdict = match (&share, item.stage) {
                (Some(share), _) => check.judge_share(accused, share),
                (None, SignStage::Shares) => check.judge_preprocess(accused),
                (None, _) => Verdict::Unknown,
            };
            let found = match verdict {
                Verdict::Guilty(culprit, fault) => Some((culprit, fault)),
                Verdict::Valid => {
                    let what = if share.is_some() { "share" } else { "preprocess" };
                    Some((
                        accuser,
                        format!("falsely blamed validator {accused}, whose {what} is valid"),
                    ))
                }
                // Nothing proven either way: a dispute, below.
                Verdict::Unknown => None,
            };
            if let Some((culprit, fault)) = found {
                self.metrics.blames.inc();
                self.bump(txn, item.set(), |c| c.blames += 1)?;
                self.convict(txn, signer, item, culprit, &fault, &check, share.as_deref())?;
                return Ok(SignOutcome::Progress);
            }
        }
        // Nothing here can check the accusation (the shares are checked by the signers):
        // one of the two lies. The pair is in dispute from now on, for every item of the
        // set: never again in one signing set (while enough others remain), so neither a
        // cheater nor a false accuser stalls signing for long.
        tracing::warn!(
            accuser,
            accused,
            "blame: the pair is in dispute; reattempting without them together"
        );
        self.metrics.blames.inc();
        self.bump(txn, item.set(), |c| c.blames += 1)?;
        let pair = (item.set(), accuser.min(accused), accuser.max(accused));
        // Already in dispute (they signed together only because no set without a disputed
        // pair could be filled): both sit the next attempt out.
        let culprits =
            if DISPUTES.get(txn, &pair)?.is_some() { vec![accuser, accused] } else { vec![] };
        DISPUTES.put(txn, &pair, &())?;
        let mut disputes = signer.disputes.clone();
        if !disputes.contains(&(pair.1, pair.2)) {
            disputes.push((pair.1, pair.2));
        }
        let signer = Signer {
            state: signer.state.clone(),
            disputes,
            barred: signer.barred.clone(),
            ..*signer
        };
        let outcome = format!("validator {accuser} blamed validator {accused}");
        self.reattempt(txn, &signer, item, culprits, outcome)?;
        Ok(SignOutcome::Progress)
    }

    /// Keeps a signer's statement of what it signs for a plan (the first one).
    fn on_statement(
        &self,
        txn: &mut WriteTxn,
        signer: &Signer,
        item: &mut SignItem,
        validator: Participant,
        statement: &[u8],
    ) -> Result<SignOutcome, SimError> {
        if !matches!(item.kind, SignKind::Plan(_)) {
            return Ok(SignOutcome::Ignored("batch_statement"));
        }
        let key = (item.id(), validator);
        match STATEMENTS.get(txn, &key)? {
            Some(first) if first != statement => {
                tracing::warn!(
                    "a signer stated a second, different statement for one plan; the first is kept"
                );
                Ok(SignOutcome::Ignored("conflicting"))
            }
            Some(_) => Ok(SignOutcome::Ignored("duplicate")),
            None => {
                STATEMENTS.put(txn, &key, &statement.to_vec())?;
                // The statement may complete the set of those that count.
                if item.stage == SignStage::Preprocesses {
                    self.try_fix_set(txn, signer, item)?;
                    return Ok(SignOutcome::Progress);
                }
                Ok(SignOutcome::Stored)
            }
        }
    }

    /// What `member` stated it signs for `item`: the Batch it reported, or its plan
    /// statement.
    fn stated(
        &self,
        txn: &impl Get,
        item: &SignItem,
        member: Participant,
    ) -> Result<Option<Stated>, SimError> {
        Ok(match item.kind {
            SignKind::Batch(id) => {
                BATCH_REPORTS.get(txn, &(item.network as u8, id, member))?.map(Stated::Batch)
            }
            SignKind::Plan(_) => STATEMENTS.get(txn, &(item.id(), member))?.map(Stated::Plan),
        })
    }

    /// The public data to check `item`'s current attempt with, when there is all of it:
    /// the set fixed, the key's verification shares known, and every member having stated
    /// the same thing (the same Batch, or the same plan statement of a network that can
    /// be checked). Otherwise blame falls back to disputes.
    fn checker(
        &self,
        txn: &impl Get,
        signer: &Signer,
        item: &SignItem,
    ) -> Result<Option<Checker>, SimError> {
        if item.stage == SignStage::Preprocesses {
            return Ok(None);
        }
        let Some(shares) = VERIFICATION_SHARES.get(txn, &item.set())? else { return Ok(None) };
        let mut stated: Option<Stated> = None;
        let mut preprocesses = BTreeMap::new();
        let mut indices = BTreeMap::new();
        for member in &item.selected {
            let Some(this) = self.stated(txn, item, *member)? else { return Ok(None) };
            if stated.as_ref().is_some_and(|s| *s != this) {
                tracing::warn!("the signing set's members stated different things to sign; blame cannot be checked");
                return Ok(None);
            }
            stated = Some(this);
            let Some(preprocess) = PREPROCESSES.get(txn, &(item.id(), item.attempt, *member))?
            else {
                return Ok(None);
            };
            let Some(index) = signer.index(*member) else { return Ok(None) };
            preprocesses.insert(*member, preprocess);
            indices.insert(*member, index);
        }
        let statement = match stated {
            Some(Stated::Batch(batch)) => {
                let Ok(keys) = PublicKeys::read(shares.threshold, &shares.ristretto) else {
                    return Ok(None);
                };
                Statement::Batch { keys, batch }
            }
            Some(Stated::Plan(bytes)) => match item.network {
                NetworkId::Bitcoin | NetworkId::Litecoin => {
                    let Ok(keys) = PublicKeys::read(shares.threshold, &shares.network) else {
                        return Ok(None);
                    };
                    let Ok(statement) = bitcoin_sign::check::Statement::decode(&bytes) else {
                        tracing::warn!("the signing set's plan statement does not decode; blame cannot be checked");
                        return Ok(None);
                    };
                    Statement::Bitcoin { keys, statement }
                }
                // Not checkable here yet.
                NetworkId::Monero | NetworkId::Ethereum => return Ok(None),
            },
            None => return Ok(None),
        };
        Ok(Some(Checker { statement, preprocesses, indices }))
    }

    /// Records `culprit`'s conviction (the first one stands) and reattempts `item`
    /// without it.
    #[allow(clippy::too_many_arguments)]
    fn convict(
        &self,
        txn: &mut WriteTxn,
        signer: &Signer,
        item: &mut SignItem,
        culprit: Participant,
        fault: &str,
        check: &Checker,
        share: Option<&[u8]>,
    ) -> Result<(), SimError> {
        tracing::error!(
            culprit,
            fault,
            "a key holder is convicted of a fault in signing; it is left out from now on"
        );
        let key = (item.set(), culprit);
        if CONVICTIONS.get(txn, &key)?.is_none() {
            let conviction = Conviction {
                kind: item.kind,
                attempt: item.attempt,
                fault: fault.to_string(),
                preprocesses: check.preprocesses.clone(),
                share: share.map(<[u8]>::to_vec),
            };
            CONVICTIONS.put(txn, &key, &conviction)?;
            self.metrics.convictions.inc();
        }
        let barred = barred(txn, item.set(), signer.holders())?;
        let signer = Signer {
            state: signer.state.clone(),
            disputes: signer.disputes.clone(),
            barred,
            ..*signer
        };
        let outcome = format!("validator {culprit} convicted: {fault}");
        self.reattempt(txn, &signer, item, vec![culprit], outcome)
    }

    /// A key holder reports a plan completed on its own node. Believed once `t` key
    /// holders report the same transaction (at least one of them honest while fewer than
    /// `t` lie): then relayed once to the others, and the item is complete. Until then
    /// the item goes on (timeouts, reattempts), so that one lying key holder cannot stop
    /// a plan from being signed.
    fn on_completed(
        &self,
        txn: &mut WriteTxn,
        signer: &Signer,
        existing: Option<SignItem>,
        kind: SignKind,
        validator: Participant,
        tx: &[u8],
    ) -> Result<SignOutcome, SimError> {
        let SignKind::Plan(plan) = kind else { return Ok(SignOutcome::Ignored("unreachable")) };
        // Every plan is signed here first: a report for an unknown one is not kept (the
        // reports stay bounded by the items and their key holders).
        let Some(mut item) = existing else { return Ok(SignOutcome::Ignored("unknown_item")) };
        if item.stage == SignStage::Completed {
            if item.tx.as_deref() != Some(tx) {
                tracing::warn!(tx = %hex::encode(tx), first = ?item.tx.as_ref().map(hex::encode), "plan completed again with another transaction; ignored");
            }
            return Ok(SignOutcome::Ignored("completed"));
        }
        let id = item_id(signer.state.key(), &kind);
        if let Some(earlier) = COMPLETION_REPORTS.get(txn, &(id, validator))? {
            if earlier != tx {
                tracing::warn!(tx = %hex::encode(tx), earlier = %hex::encode(&earlier), "a key holder reported the plan completed by two transactions; the first is kept");
            }
            return Ok(SignOutcome::Ignored("duplicate"));
        }
        COMPLETION_REPORTS.put(txn, &(id, validator), &tx.to_vec())?;
        let mut agreeing = vec![];
        for holder in signer.holders() {
            if COMPLETION_REPORTS.get(txn, &(id, *holder))?.as_deref() == Some(tx) {
                agreeing.push(*holder);
            }
        }
        let threshold = usize::from(signer.state.threshold);
        if agreeing.len() < threshold {
            tracing::info!(tx = %hex::encode(tx), reported_by = ?agreeing, threshold, "plan reported completed; believed once a threshold of key holders agree");
            return Ok(SignOutcome::Stored);
        }
        for to in signer.holders().iter().copied().filter(|p| !agreeing.contains(p)) {
            let request =
                SignRequest::Completed { session: Session(item.session), plan, tx: tx.to_vec() };
            self.send(txn, item.network, to, CoordinatorMessage::Sign(request))?;
        }
        for holder in signer.holders() {
            COMPLETION_REPORTS.del(txn, &(id, *holder))?;
        }
        item.tx = Some(tx.to_vec());
        let outcome = format!("completed on chain, as validators {agreeing:?} reported");
        self.complete(txn, &mut item, outcome)?;
        self.bump(txn, item.set(), |c| c.completed_plans += 1)?;
        self.metrics.completed("plan");
        tracing::info!(tx = %hex::encode(tx), reported_by = ?agreeing, "plan completed; relayed");
        Ok(SignOutcome::Progress)
    }

    /// Marks `item` complete and stores it.
    fn complete(
        &self,
        txn: &mut WriteTxn,
        item: &mut SignItem,
        outcome: String,
    ) -> Result<(), SimError> {
        self.prune(txn, item)?;
        if let Some(state) = SETS.get(txn, &item.set())? {
            for p in &state.participants {
                STATEMENTS.del(txn, &(item.id(), *p))?;
            }
        }
        item.end_attempt(SignAttemptEnd {
            attempt: item.attempt,
            selected: item.selected.clone(),
            outcome,
        });
        item.stage = SignStage::Completed;
        let id = item.id();
        ITEMS.put(txn, &id, item)?;
        ACTIVE.del(txn, &id)?;
        Ok(())
    }

    fn prune(&self, txn: &mut WriteTxn, item: &SignItem) -> Result<(), SimError> {
        let Some(state) = SETS.get(txn, &item.set())? else { return Ok(()) };
        for p in &state.participants {
            let key = (item.id(), item.attempt, *p);
            PREPROCESSES.del(txn, &key)?;
            SHARES.del(txn, &key)?;
        }
        Ok(())
    }

    /// Ends the current attempt and starts the next without `culprits` (unless that
    /// leaves fewer than `t`), telling every key holder.
    fn reattempt(
        &self,
        txn: &mut WriteTxn,
        signer: &Signer,
        item: &mut SignItem,
        culprits: Vec<Participant>,
        outcome: String,
    ) -> Result<(), SimError> {
        let Some(next) = item.attempt.checked_add(1) else {
            tracing::error!("no attempt numbers left; the item is stuck");
            return Ok(());
        };
        self.prune(txn, item)?;
        item.end_attempt(SignAttemptEnd {
            attempt: item.attempt,
            selected: item.selected.clone(),
            outcome,
        });
        let holders = signer.holders();
        let t = usize::from(signer.state.threshold);
        let mut culprits: Vec<Participant> =
            culprits.into_iter().filter(|p| holders.contains(p)).collect();
        culprits.sort_unstable();
        culprits.dedup();
        // An item's exclusions accumulate over its attempts: a key holder that answers
        // first and then withholds is out for the rest of the item, so two such holders
        // cannot take turns stalling it. While fewer than `t` would remain, only this
        // attempt's culprits are; if even that is too many, nobody.
        let mut excluded = item.excluded.clone();
        excluded.extend(culprits.iter().copied());
        excluded.sort_unstable();
        excluded.dedup();
        if holders.len() - excluded.len() < t {
            excluded = culprits;
        }
        if holders.len() - excluded.len() < t {
            tracing::warn!(?excluded, "excluding them would leave fewer than t; excluding nobody");
            excluded.clear();
        }
        item.attempt = next;
        item.selected = signer.signing_set(&item.kind, next, &excluded);
        item.excluded = excluded;
        item.stage = SignStage::Preprocesses;
        item.last_progress_ms = self.clock.now_ms();
        for to in holders {
            let request = SignRequest::Reattempt { id: item.sign_id() };
            self.send(txn, item.network, *to, CoordinatorMessage::Sign(request))?;
        }
        self.bump(txn, item.set(), |c| c.reattempts += 1)?;
        self.metrics.reattempts.inc();
        self.metrics.attempts.inc();
        tracing::info!(attempt = next, selected = ?item.selected, excluded = ?item.excluded, "reattempting");
        Ok(())
    }

    /// Every member's stored message of the current attempt, if all are in.
    fn gather(
        &self,
        txn: &impl Get,
        item: &SignItem,
        table: Table<(ItemId, u32, Participant), Vec<u8>>,
    ) -> Result<Option<BTreeMap<Participant, Vec<u8>>>, SimError> {
        let mut out = BTreeMap::new();
        for p in &item.selected {
            match table.get(txn, &(item.id(), item.attempt, *p))? {
                Some(bytes) => out.insert(*p, bytes),
                None => return Ok(None),
            };
        }
        Ok(Some(out))
    }

    /// Handles one Batch message from `sender`, inside `txn`. On `Err`, the caller MUST
    /// drop `txn` uncommitted.
    pub fn handle_batch(
        &self,
        txn: &mut WriteTxn,
        sender: Party,
        report: &BatchReport,
    ) -> Result<SignOutcome, SimError> {
        let outcome = self.handle_batch_inner(txn, sender, report)?;
        if let SignOutcome::Ignored(reason) = outcome {
            self.metrics.ignored(reason);
        }
        Ok(outcome)
    }

    fn handle_batch_inner(
        &self,
        txn: &mut WriteTxn,
        sender: Party,
        report: &BatchReport,
    ) -> Result<SignOutcome, SimError> {
        let Party::Processor { network, validator } = sender else {
            return Ok(SignOutcome::Ignored("not_a_processor"));
        };
        let (BatchReport::Batch(batch) | BatchReport::SignedBatch { batch, .. }) = report;
        let span = tracing::info_span!("batch", %network, id = batch.id, validator);
        let _enter = span.enter();
        if batch.network != network {
            tracing::warn!(batch_network = %batch.network, "Batch for another network; ignored");
            return Ok(SignOutcome::Ignored("wrong_network"));
        }
        let mut settlement = network_settlement(txn, network)?;
        let BatchReport::SignedBatch { batch, signature } = report else {
            return self.on_batch_report(txn, settlement, validator, batch);
        };
        if batch.id < settlement.next_batch
            || VERIFIED.get(txn, &(network as u8, batch.id))?.is_some()
        {
            return Ok(SignOutcome::Ignored("batch_done"));
        }
        // The set whose confirmed key the signature verifies under.
        let mut signed_by = None;
        for config in self.sets.iter().filter(|s| s.network == network) {
            if let Ok(signer) = self.signer(txn, network, config.session)? {
                if signers::batch::verify(&signer.ristretto_key, batch, signature).is_ok() {
                    signed_by = Some(signer);
                    break;
                }
            }
        }
        let Some(signer) = signed_by else {
            settlement.bad_signatures += 1;
            NETWORKS.put(txn, &(network as u8), &settlement)?;
            self.metrics.bad_batch_signatures.inc();
            tracing::warn!(
                bad_signatures = settlement.bad_signatures,
                "a signed Batch does not verify under any confirmed key of its network; ignored"
            );
            return Ok(SignOutcome::Ignored("bad_signature"));
        };
        let set = signer.state.key();
        VERIFIED.put(txn, &(network as u8, batch.id), &(set, batch.clone()))?;
        let kind = SignKind::Batch(batch.id);
        let mut item = match ITEMS.get(txn, &item_id(set, &kind))? {
            Some(item) => item,
            None => {
                let mut item = self.new_item(&signer, kind);
                item.selected = vec![];
                item
            }
        };
        if item.stage != SignStage::Completed {
            self.complete(
                txn,
                &mut item,
                format!("signed Batch reported by validator {validator}"),
            )?;
        }
        self.bump(txn, set, |c| c.completed_batches += 1)?;
        self.metrics.completed("batch");
        tracing::info!("signed Batch verified");
        self.settle(txn, network, settlement)?;
        Ok(SignOutcome::Progress)
    }

    /// Keeps a key holder's report of a Batch it is about to sign (the first one), for
    /// checking its shares.
    fn on_batch_report(
        &self,
        txn: &mut WriteTxn,
        settlement: NetworkSettlement,
        validator: Participant,
        batch: &Batch,
    ) -> Result<SignOutcome, SimError> {
        tracing::debug!(instructions = batch.instructions.len(), "Batch reported");
        if batch.id < settlement.next_batch {
            return Ok(SignOutcome::Ignored("batch_done"));
        }
        if batch.id - settlement.next_batch > REPORT_WINDOW {
            return Ok(SignOutcome::Ignored("batch_too_far"));
        }
        let key = (batch.network as u8, batch.id, validator);
        match BATCH_REPORTS.get(txn, &key)? {
            Some(first) if first != *batch => {
                tracing::warn!(
                    "a key holder reported a second, different Batch for one id; the first is kept"
                );
                Ok(SignOutcome::Ignored("conflicting"))
            }
            Some(_) => Ok(SignOutcome::Ignored("duplicate")),
            None => {
                BATCH_REPORTS.put(txn, &key, batch)?;
                Ok(SignOutcome::Noted)
            }
        }
    }

    /// Settles `network`'s verified Batches from `settlement.next_batch` on, as long as
    /// they are contiguous.
    fn settle(
        &self,
        txn: &mut WriteTxn,
        network: NetworkId,
        mut settlement: NetworkSettlement,
    ) -> Result<(), SimError> {
        while let Some((set, batch)) = VERIFIED.get(txn, &(network as u8, settlement.next_batch))? {
            VERIFIED.del(txn, &(network as u8, batch.id))?;
            ledger::credit(txn, &batch)?;
            let settlement_block = ledger::next_block(txn)?;
            let burns = ledger::take_burns(txn, network, settlement_block)?;
            let holders = SETS.get(txn, &set)?.map(|s| s.participants).unwrap_or_default();
            for config in self.sets.iter().filter(|s| s.network == network) {
                for validator in &config.validators {
                    BATCH_REPORTS.del(txn, &(network as u8, batch.id, *validator))?;
                }
            }
            tracing::info!(
                id = batch.id,
                settlement_block,
                burns = burns.len(),
                "Batch settled; acknowledging"
            );
            self.metrics.settlement_blocks.inc();
            self.metrics.burns.inc_by(burns.len() as u64);
            for to in holders {
                let event = SettlementEvent::BlockAcknowledged {
                    settlement_block,
                    network_block: batch.block,
                    batches: vec![batch.id],
                    burns: burns.clone(),
                };
                self.send(txn, network, to, CoordinatorMessage::Settlement(event))?;
            }
            let Some(next) = settlement.next_batch.checked_add(1) else {
                tracing::error!("no Batch ids left");
                break;
            };
            settlement.next_batch = next;
        }
        NETWORKS.put(txn, &(network as u8), &settlement)?;
        Ok(())
    }

    /// Whether some item's attempt is past its deadline (read-only).
    pub fn timeout_due(&self, txn: &impl Get) -> Result<bool, SimError> {
        let now = self.clock.now_ms();
        for item in active_items(txn)? {
            if self.overdue(txn, &item, now)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Whether `item`'s attempt is past its deadline: the timeout, or
    /// [`SIGNED_TIMEOUT_FACTOR`] times it for a plan whose shares were all relayed and that
    /// a member of the set reports signed (its transaction exists, or a member's blame
    /// will say otherwise; only a crash of every honest member needs the deadline then).
    fn overdue(&self, txn: &impl Get, item: &SignItem, now: u64) -> Result<bool, SimError> {
        if !self.configured(item.set()) {
            return Ok(false);
        }
        let mut timeout = self.timeout_ms;
        if item.stage == SignStage::Completing && matches!(item.kind, SignKind::Plan(_)) {
            for member in &item.selected {
                if COMPLETION_REPORTS.get(txn, &(item.id(), *member))?.is_some() {
                    timeout = timeout.saturating_mul(SIGNED_TIMEOUT_FACTOR);
                    break;
                }
            }
        }
        Ok(now.saturating_sub(item.last_progress_ms) >= timeout)
    }

    /// Reattempts every item past its deadline, without the members that did not send
    /// what its stage needed. Returns whether anything changed.
    pub fn check_timeouts(&self, txn: &mut WriteTxn) -> Result<bool, SimError> {
        let now = self.clock.now_ms();
        let mut changed = false;
        for mut item in active_items(txn)? {
            if !self.overdue(txn, &item, now)? {
                continue;
            }
            let Ok(signer) = self.signer(txn, item.network, item.session)? else { continue };
            let silent = waiting_for(txn, &item)?;
            let span = tracing::info_span!("sign", network = %item.network, session = item.session, kind = %kind_name(&item.kind), attempt = item.attempt);
            let _enter = span.enter();
            tracing::warn!(stage = item.stage.name(), ?silent, "signing attempt timed out");
            let outcome =
                format!("timed out in the {} stage waiting for {silent:?}", item.stage.name());
            self.reattempt(txn, &signer, &mut item, silent, outcome)?;
            ITEMS.put(txn, &item.id(), &item)?;
            changed = true;
        }
        Ok(changed)
    }
}

/// What a signer stated it signs.
#[derive(Clone, PartialEq, Eq)]
enum Stated {
    Batch(Batch),
    Plan(Vec<u8>),
}

impl Stated {
    /// Its encoding, to group equal statements.
    fn key(&self) -> Vec<u8> {
        match self {
            Stated::Batch(batch) => batch.encode(),
            Stated::Plan(bytes) => bytes.clone(),
        }
    }
}

/// What the signing set signs, with the keys it signs under.
enum Statement {
    Batch { keys: PublicKeys<Ristretto>, batch: Batch },
    Bitcoin { keys: PublicKeys<Secp256k1>, statement: bitcoin_sign::check::Statement },
}

/// A judgement from public data.
enum Verdict {
    /// What was judged is valid.
    Valid,
    /// This key holder is proven at fault.
    Guilty(Participant, String),
    /// The check could not be made: nothing is proven.
    Unknown,
}

/// What an attempt's shares are checked with: what the set signs, and the members'
/// preprocesses and DKG indices (by validator).
struct Checker {
    statement: Statement,
    preprocesses: BTreeMap<Participant, Vec<u8>>,
    indices: BTreeMap<Participant, u16>,
}

impl Checker {
    fn by_index(&self) -> BTreeMap<u16, Vec<u8>> {
        self.preprocesses.iter().map(|(v, p)| (self.indices[v], p.clone())).collect()
    }

    /// Judges `member`'s share (and with it every member's preprocess).
    fn judge_share(&self, member: Participant, share: &[u8]) -> Verdict {
        let Some(index) = self.indices.get(&member).copied() else { return Verdict::Unknown };
        let preprocesses = self.by_index();
        let verdict = match &self.statement {
            Statement::Batch { keys, batch } => {
                signers::batch::check_share(keys, batch, &preprocesses, index, share)
            }
            Statement::Bitcoin { keys, statement } => {
                check_transaction_share(keys, statement, &preprocesses, index, share)
            }
        };
        match verdict {
            Ok(Ok(())) => Verdict::Valid,
            Ok(Err(Fault::Preprocess(i))) => {
                match self.indices.iter().find(|(_, j)| **j == i).map(|(v, _)| *v) {
                    Some(culprit) => Verdict::Guilty(culprit, "sent an invalid preprocess".into()),
                    None => Verdict::Unknown,
                }
            }
            Ok(Err(fault)) => {
                Verdict::Guilty(member, format!("sent a wrong signature share ({fault})"))
            }
            Err(e) => {
                tracing::warn!(error = %e, "a share could not be checked");
                Verdict::Unknown
            }
        }
    }

    /// Judges `member`'s preprocess (well formed or not).
    fn judge_preprocess(&self, member: Participant) -> Verdict {
        let Some(preprocess) = self.preprocesses.get(&member) else { return Verdict::Unknown };
        let valid = match &self.statement {
            Statement::Batch { batch, .. } => signers::batch::check_preprocess(batch, preprocess),
            Statement::Bitcoin { statement, .. } => {
                check_transaction_preprocess(statement, preprocess)
            }
        };
        if valid {
            Verdict::Valid
        } else {
            Verdict::Guilty(member, "sent an invalid preprocess".into())
        }
    }
}

/// `batch <id>` or `plan <hex>`.
pub fn kind_name(kind: &SignKind) -> String {
    match kind {
        SignKind::Batch(id) => format!("batch {id}"),
        SignKind::Plan(plan) => format!("plan {}", hex::encode(plan)),
    }
}
