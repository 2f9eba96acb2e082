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

use bus::Mailbox;
use db::{DbError, Get, Table, WriteTxn};
use messages::{
    CoordinatorMessage, Participant, Party, Session, SignKind, SignRequest, SignResponse,
};
use primitives::{codec::encode_body, codec::Versioned, NetworkId};

use crate::{
    clock::Clock,
    config::{Selection, SetConfig},
    keygen::SimError,
    metrics::SignMetrics,
    state::{set_key, SetKey, SetState, SETS},
};

mod items;
mod judge;
mod roast;
mod select;
mod settle;
mod timeouts;

pub use items::*;
use judge::Taken;
pub use select::{disputeless, eligible, signing_set, signing_set_avoiding, SEARCH_STEPS};

/// An item's table key: `hash("tc/sim/v1/sign-item", [network, session LE, borsh(kind)])`.
pub type ItemId = [u8; 32];

/// The key of `kind` signed by `set`.
pub fn item_id(set: SetKey, kind: &SignKind) -> ItemId {
    primitives::hash(b"tc/sim/v1/sign-item", &[&[set.0], &set.1.to_le_bytes(), &encode_body(kind)])
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
    close_after: u64,
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
        SignCoordinator { sets, mailbox, clock, timeout_ms, selection, metrics, close_after: 20 }
    }

    /// A rotation's grace period, for rotations started when a set retires (see
    /// [`crate::rotation::reconcile`]; default 20 blocks).
    pub fn with_rotation_close_after(mut self, blocks: u64) -> Self {
        self.close_after = blocks;
        self
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
        if attempt != item.attempt
            && matches!(response, SignResponse::Share { .. } | SignResponse::Blame { .. })
        {
            if let Some(index) = item.open.iter().position(|o| o.attempt == attempt) {
                let outcome =
                    self.on_session(txn, &signer, &mut item, index, validator, response)?;
                if matches!(outcome, SignOutcome::Progress | SignOutcome::Stored) {
                    ITEMS.put(txn, &id, &item)?;
                }
                return Ok(outcome);
            }
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
            open: vec![],
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
            || item.open.iter().any(|o| o.stage == SignStage::Completing)
            || self.owe(txn, item)?.contains(&validator)
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
        if item.open.iter().any(|o| o.stage == SignStage::Completing) {
            // An earlier session has every share: it signs; no other set is needed.
            return Ok(());
        }
        let eligible = signer.eligible_for(&item.excluded);
        let mut answered = vec![];
        for holder in &eligible {
            if PREPROCESSES.get(txn, &(item.id(), item.attempt, *holder))?.is_some() {
                answered.push(*holder);
            }
        }
        if let Some(counting) = judge::counting(txn, item, &answered)? {
            answered.retain(|h| counting.contains(h));
        }
        // A key holder still owing a share in an open session joins no other set (it may
        // answer unasked: it still does not count), so a withholder is in one session at
        // most and open sessions stay below n - t + 2.
        let owe = self.owe(txn, item)?;
        answered.retain(|h| !owe.contains(h));
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
        item.last_progress_ms = self.clock.now_ms();
        // Every member of `set` answered: gathered in this transaction, all are there.
        let Some(all) = self.gather(txn, item, PREPROCESSES)? else { return Ok(()) };
        for to in item.selected.clone() {
            let request =
                SignRequest::Preprocesses { id: item.sign_id(), preprocesses: all.clone() };
            self.send(txn, item.network, to, CoordinatorMessage::Sign(request))?;
        }
        item.stage = SignStage::Shares;
        tracing::info!(selected = ?item.selected, "all preprocesses in; relayed");
        if self.selection == Selection::Roast {
            self.fork(txn, signer, item)?;
        }
        Ok(())
    }

    fn on_share(
        &self,
        txn: &mut WriteTxn,
        signer: &Signer,
        item: &mut SignItem,
        validator: Participant,
        share: &[u8],
    ) -> Result<SignOutcome, SimError> {
        match self.take_share(txn, signer, item, validator, share)? {
            Taken::Ignored(reason) => return Ok(SignOutcome::Ignored(reason)),
            Taken::Convicted { signer, culprit, outcome } => {
                self.reattempt(txn, &signer, item, vec![culprit], outcome)?;
                return Ok(SignOutcome::Progress);
            }
            Taken::Stored => {}
        }
        item.last_progress_ms = self.clock.now_ms();
        if self.relay_shares(txn, item)? {
            item.stage = SignStage::Completing;
            tracing::info!("all shares in; relayed");
        }
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
        let (signer, culprits, outcome) = self.judge_blame(txn, signer, item, accuser, accused)?;
        self.reattempt(txn, &signer, item, culprits, outcome)?;
        Ok(SignOutcome::Progress)
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
        self.close_sessions(txn, item)?;
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
        self.prune_attempt(txn, item, item.attempt)
    }

    /// Drops the preprocesses and shares of `item`'s `attempt`.
    fn prune_attempt(
        &self,
        txn: &mut WriteTxn,
        item: &SignItem,
        attempt: u32,
    ) -> Result<(), SimError> {
        let Some(state) = SETS.get(txn, &item.set())? else { return Ok(()) };
        for p in &state.participants {
            let key = (item.id(), attempt, *p);
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
        self.close_sessions(txn, item)?;
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
}

/// `batch <id>` or `plan <hex>`.
pub fn kind_name(kind: &SignKind) -> String {
    match kind {
        SignKind::Batch(id) => format!("batch {id}"),
        SignKind::Plan(plan) => format!("plan {}", hex::encode(plan)),
    }
}
