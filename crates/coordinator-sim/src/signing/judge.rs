//! Verifiable blame: what each signer stated it signs, the public data a signing set's
//! shares are checked with, verdicts, and convictions.
use std::collections::BTreeMap;

use bitcoin_sign::check::{check_transaction_preprocess, check_transaction_share};
use db::{DbError, Get, WriteTxn};
use messages::{Participant, SignKind};
use modular_frost::curve::{Ristretto, Secp256k1};
use primitives::{codec::Versioned, Batch, NetworkId};
use signers::public::{Fault, PublicKeys};

use super::*;
use crate::{keygen::SimError, state::VERIFICATION_SHARES};

/// What `member` stated it signs for `item`: the Batch it reported, or its plan
/// statement.
fn stated_by(
    txn: &impl Get,
    item: &SignItem,
    member: Participant,
) -> Result<Option<Stated>, DbError> {
    Ok(match item.kind {
        SignKind::Batch(id) => {
            BATCH_REPORTS.get(txn, &(item.set(), id, member))?.map(Stated::Batch)
        }
        SignKind::Plan(_) => STATEMENTS.get(txn, &(item.id(), member))?.map(Stated::Plan),
    })
}

/// Whether every key holder states what it signs for `item` (a Batch by its report; a
/// Bitcoin-family plan by its statement).
fn stated_kind(item: &SignItem) -> bool {
    match item.kind {
        SignKind::Batch(_) => true,
        SignKind::Plan(_) => matches!(item.network, NetworkId::Bitcoin | NetworkId::Litecoin),
    }
}

/// Which of `answered` (key holders that preprocessed the attempt) count when `item`'s set
/// is fixed, when shares can be checked (the set's verification shares are known) and
/// what is signed is stated: those that stated the same thing, the group holding the
/// preferred set if one does, else the largest (the lowest encoding among equals). A key
/// holder that stated nothing, or something else, does not count, so every set fixed can
/// be checked; a minority cannot steer it, as only a group of `t` fixes a set. `None`:
/// every answer counts.
pub(super) fn counting(
    txn: &impl Get,
    item: &SignItem,
    answered: &[Participant],
) -> Result<Option<Vec<Participant>>, DbError> {
    if VERIFICATION_SHARES.get(txn, &item.set())?.is_none() {
        return Ok(None);
    }
    let mut groups: BTreeMap<Vec<u8>, Vec<Participant>> = BTreeMap::new();
    for holder in answered {
        if let Some(stated) = stated_by(txn, item, *holder)? {
            groups.entry(stated.key()).or_default().push(*holder);
        }
    }
    if groups.is_empty() && !stated_kind(item) {
        return Ok(None);
    }
    if let Some(preferred) = groups.values().find(|g| item.selected.iter().all(|p| g.contains(p))) {
        return Ok(Some(preferred.clone()));
    }
    let mut best: Vec<Participant> = vec![];
    for (_, members) in groups {
        if members.len() > best.len() {
            best = members;
        }
    }
    Ok(Some(best))
}

impl SignCoordinator {
    /// Takes `validator`'s share of `item`'s attempt (or the open session `item` is a
    /// view of), a set in its Shares stage: ignored if it is not due, checked where it can
    /// be (a wrong one, or a malformed preprocess, convicts its culprit: the caller ends the
    /// attempt without it), else stored.
    pub(super) fn take_share(
        &self,
        txn: &mut WriteTxn,
        signer: &Signer,
        item: &SignItem,
        validator: Participant,
        share: &[u8],
    ) -> Result<Taken, SimError> {
        if !item.selected.contains(&validator) {
            return Ok(Taken::Ignored("not_selected"));
        }
        if item.stage != SignStage::Shares {
            return Ok(Taken::Ignored("out_of_order"));
        }
        let key = (item.id(), item.attempt, validator);
        if SHARES.get(txn, &key)?.is_some() {
            return Ok(Taken::Ignored("duplicate"));
        }
        // A share that can be checked is, before anyone else sees it: a wrong one convicts
        // its sender, who is left out from then on, and the item goes on without it.
        if let Some(check) = self.checker(txn, signer, item)? {
            if let Verdict::Guilty(culprit, fault) = check.judge_share(validator, share) {
                let signer = self.record_conviction(
                    txn,
                    signer,
                    item,
                    culprit,
                    &fault,
                    &check,
                    Some(share),
                )?;
                let outcome = format!("validator {culprit} convicted: {fault}");
                return Ok(Taken::Convicted { signer: Box::new(signer), culprit, outcome });
            }
        }
        SHARES.put(txn, &key, &share.to_vec())?;
        Ok(Taken::Stored)
    }

    /// Once every member of `item`'s attempt (or of the open session it is a view of)
    /// shared, relays the shares to the members; whether it did.
    pub(super) fn relay_shares(
        &self,
        txn: &mut WriteTxn,
        item: &SignItem,
    ) -> Result<bool, SimError> {
        let Some(all) = self.gather(txn, item, SHARES)? else { return Ok(false) };
        for to in item.selected.clone() {
            let request = SignRequest::Shares { id: item.sign_id(), shares: all.clone() };
            self.send(txn, item.network, to, CoordinatorMessage::Sign(request))?;
        }
        Ok(true)
    }

    /// Judges `accuser`'s blame of `accused` in `item`'s attempt (or the open session it is
    /// a view of), both members of its set after the preprocesses were relayed. Where the
    /// accusation can be checked from public data, the accused's share (or, before shares
    /// were relayed, its preprocess) decides who is convicted. Otherwise the pair is put in
    /// dispute. Returns the signer as updated, the key holders to leave out of the next
    /// attempt, and the attempt's outcome.
    pub(super) fn judge_blame(
        &self,
        txn: &mut WriteTxn,
        signer: &Signer,
        item: &SignItem,
        accuser: Participant,
        accused: Participant,
    ) -> Result<(Signer, Vec<Participant>, String), SimError> {
        self.metrics.blames.inc();
        self.bump(txn, item.set(), |c| c.blames += 1)?;
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
                let signer = self.record_conviction(
                    txn,
                    signer,
                    item,
                    culprit,
                    &fault,
                    &check,
                    share.as_deref(),
                )?;
                return Ok((
                    signer,
                    vec![culprit],
                    format!("validator {culprit} convicted: {fault}"),
                ));
            }
        }
        // Nothing here can check the accusation: one of the two lies. The pair is in
        // dispute from now on, for every item of the set: never again in one signing set
        // (while enough others remain), so neither a cheater nor a false accuser stalls
        // signing for long.
        tracing::warn!(
            accuser,
            accused,
            "blame: the pair is in dispute; reattempting without them together"
        );
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
        Ok((signer, culprits, format!("validator {accuser} blamed validator {accused}")))
    }

    /// Keeps a signer's statement of what it signs for a plan (the first one).
    pub(super) fn on_statement(
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

    /// The public data to check `item`'s current attempt with, when there is all of it:
    /// the set fixed, the key's verification shares known, and every member having stated
    /// the same thing (the same Batch, or the same plan statement of a network that can
    /// be checked). Otherwise blame falls back to disputes.
    pub(super) fn checker(
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
            let Some(this) = stated_by(txn, item, *member)? else { return Ok(None) };
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
                        tracing::debug!("the signing set's plan statement is not one this network checks; blame cannot be checked");
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

    /// Records `culprit`'s conviction in `item`'s attempt (the first one stands), and
    /// returns `signer` with it barred.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn record_conviction(
        &self,
        txn: &mut WriteTxn,
        signer: &Signer,
        item: &SignItem,
        culprit: Participant,
        fault: &str,
        check: &Checker,
        share: Option<&[u8]>,
    ) -> Result<Signer, SimError> {
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
        Ok(Signer {
            state: signer.state.clone(),
            disputes: signer.disputes.clone(),
            barred,
            ..*signer
        })
    }
}

/// What a signer stated it signs.
#[derive(Clone, PartialEq, Eq)]
pub(super) enum Stated {
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
pub(super) enum Statement {
    Batch { keys: PublicKeys<Ristretto>, batch: Batch },
    Bitcoin { keys: PublicKeys<Secp256k1>, statement: bitcoin_sign::check::Statement },
}

/// A judgement from public data.
pub(super) enum Verdict {
    /// What was judged is valid.
    Valid,
    /// This key holder is proven at fault.
    Guilty(Participant, String),
    /// The check could not be made: nothing is proven.
    Unknown,
}

/// What an attempt's shares are checked with: what the set signs, and the members'
/// preprocesses and DKG indices (by validator).
pub(super) struct Checker {
    statement: Statement,
    preprocesses: BTreeMap<Participant, Vec<u8>>,
    indices: BTreeMap<Participant, u16>,
}

impl Checker {
    fn by_index(&self) -> BTreeMap<u16, Vec<u8>> {
        self.preprocesses.iter().map(|(v, p)| (self.indices[v], p.clone())).collect()
    }

    /// Judges `member`'s share (and with it every member's preprocess).
    pub(super) fn judge_share(&self, member: Participant, share: &[u8]) -> Verdict {
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
    pub(super) fn judge_preprocess(&self, member: Participant) -> Verdict {
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

/// What [`SignCoordinator::take_share`] did with a share.
pub(super) enum Taken {
    /// Not due: why.
    Ignored(&'static str),
    /// Proven wrong: the culprit is convicted (in `signer`, returned updated).
    Convicted { signer: Box<Signer>, culprit: Participant, outcome: String },
    /// Stored.
    Stored,
}
