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
            BATCH_REPORTS.get(txn, &(item.network as u8, id, member))?.map(Stated::Batch)
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
