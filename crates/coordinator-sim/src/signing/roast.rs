//! Concurrent signing sessions, after ROAST (Ruffing et al., CCS 2022), on top of the
//! attempt numbers ([`crate::config::Selection::Roast`]).
//!
//! As soon as an attempt's set is fixed, that attempt runs on as an *open session* and the
//! next attempt starts forming at once: every eligible key holder that owes no share is
//! asked for a fresh preprocess (`Reattempt`), and each member of an open session is asked
//! as soon as its valid share arrives. The next set is fixed, as always, from the first
//! `t` eligible key holders that answered. So a member that preprocessed and then
//! withholds its share costs no timeout: the others are free again after sharing, and
//! sign the next session without it. Each key holder keeps at most one unused preprocess
//! (the processor drops an older unused one when it releases a newer), so it is in at most
//! one forming set; a share is checked before anyone sees it, and a wrong one convicts its
//! sender and ends that session only. The first session whose shares are all in is relayed
//! and signs; no set is fixed after that. Liveness needs only `t` honest, responsive key
//! holders; the timeout remains for fewer than that.
use std::collections::BTreeMap;

use db::{Get, WriteTxn};
use messages::{CoordinatorMessage, Participant, SignId, SignRequest, SignResponse};

use super::*;
use crate::keygen::SimError;

impl SignCoordinator {
    /// `item`'s current attempt had its set fixed: it runs on as an open session, and the
    /// next attempt forms now; every eligible key holder that owes no share is asked for
    /// its preprocess.
    pub(super) fn fork(
        &self,
        txn: &mut WriteTxn,
        signer: &Signer,
        item: &mut SignItem,
    ) -> Result<(), SimError> {
        let Some(next) = item.attempt.checked_add(1) else {
            tracing::error!("no attempt numbers left; the item stays on its open sessions");
            return Ok(());
        };
        item.open.push(OpenSession {
            attempt: item.attempt,
            selected: item.selected.clone(),
            stage: SignStage::Shares,
        });
        item.attempt = next;
        item.stage = SignStage::Preprocesses;
        item.selected = signer.signing_set(&item.kind, next, &item.excluded);
        self.metrics.attempts.inc();
        let owe = self.owe(txn, item)?;
        for holder in signer.eligible_for(&item.excluded) {
            if !owe.contains(&holder) {
                self.ask(txn, item, holder)?;
            }
        }
        tracing::info!(attempt = next, open = ?item.open.iter().map(|o| o.attempt).collect::<Vec<_>>(), "next attempt forming beside the open sessions");
        Ok(())
    }

    /// The members of `item`'s open sessions still waiting for their share: each holds
    /// that session's nonces (asking it for another preprocess would drop them), and joins
    /// no other set until it shared.
    pub(super) fn owe(
        &self,
        txn: &impl Get,
        item: &SignItem,
    ) -> Result<Vec<Participant>, SimError> {
        Ok(self.owing(txn, item)?.into_values().flatten().collect())
    }

    /// Asks `holder` for its preprocess of `item`'s forming attempt.
    fn ask(
        &self,
        txn: &mut WriteTxn,
        item: &SignItem,
        holder: Participant,
    ) -> Result<(), SimError> {
        let request = SignRequest::Reattempt { id: item.sign_id() };
        self.send(txn, item.network, holder, CoordinatorMessage::Sign(request))
    }

    /// `item` as its open session `index` sees it (its attempt, set and stage).
    fn view(item: &SignItem, index: usize) -> SignItem {
        let session = &item.open[index];
        SignItem {
            attempt: session.attempt,
            selected: session.selected.clone(),
            stage: session.stage,
            open: vec![],
            ..item.clone()
        }
    }

    /// A share or a blame for `item`'s open session `index`.
    pub(super) fn on_session(
        &self,
        txn: &mut WriteTxn,
        signer: &Signer,
        item: &mut SignItem,
        index: usize,
        validator: Participant,
        response: &SignResponse,
    ) -> Result<SignOutcome, SimError> {
        let view = Self::view(item, index);
        let session = SignId { attempt: view.attempt, ..item.sign_id() };
        let span = tracing::info_span!("session", attempt = session.attempt);
        let _enter = span.enter();
        match response {
            SignResponse::Share { share, .. } => {
                match self.take_share(txn, signer, &view, validator, share)? {
                    Taken::Ignored(reason) => return Ok(SignOutcome::Ignored(reason)),
                    Taken::Convicted { signer, outcome, .. } => {
                        self.end_session(txn, &signer, item, index, outcome)?;
                        return Ok(SignOutcome::Progress);
                    }
                    Taken::Stored => {}
                }
                if item.open.iter().any(|o| o.stage == SignStage::Completing) {
                    // Another session already signs: this one is not relayed (one signed
                    // result per item), and nobody is asked for more.
                    return Ok(SignOutcome::Stored);
                }
                item.last_progress_ms = self.clock.now_ms();
                if self.relay_shares(txn, &view)? {
                    item.open[index].stage = SignStage::Completing;
                    tracing::info!("all shares of an open session in; relayed");
                    return Ok(SignOutcome::Progress);
                }
                // Its share is in: it is free for the forming attempt.
                if !self.owe(txn, item)?.contains(&validator) {
                    self.ask(txn, item, validator)?;
                }
                Ok(SignOutcome::Progress)
            }
            SignResponse::Blame { accused, .. } => {
                let accuser = validator;
                if !view.selected.contains(&accuser) {
                    return Ok(SignOutcome::Ignored("not_selected"));
                }
                if accused == &accuser || !view.selected.contains(accused) {
                    return Ok(SignOutcome::Ignored("bad_blame"));
                }
                let (signer, culprits, outcome) =
                    self.judge_blame(txn, signer, &view, accuser, *accused)?;
                // Disputed twice: both sit the item's next sets out.
                for culprit in culprits.into_iter().filter(|c| !signer.barred.contains(c)) {
                    if !item.excluded.contains(&culprit) {
                        item.excluded.push(culprit);
                    }
                }
                item.excluded.sort_unstable();
                self.end_session(txn, &signer, item, index, outcome)?;
                Ok(SignOutcome::Progress)
            }
            _ => Ok(SignOutcome::Ignored("unreachable")),
        }
    }

    /// Ends `item`'s open session `index` (a conviction or a dispute): its data is pruned,
    /// and its members, now free, are asked for the forming attempt (except the convicted
    /// and the excluded).
    fn end_session(
        &self,
        txn: &mut WriteTxn,
        signer: &Signer,
        item: &mut SignItem,
        index: usize,
        outcome: String,
    ) -> Result<(), SimError> {
        let session = item.open.remove(index);
        self.prune_attempt(txn, item, session.attempt)?;
        item.end_attempt(SignAttemptEnd {
            attempt: session.attempt,
            selected: session.selected.clone(),
            outcome,
        });
        item.last_progress_ms = self.clock.now_ms();
        self.bump(txn, item.set(), |c| c.reattempts += 1)?;
        self.metrics.reattempts.inc();
        // Every eligible key holder owing nothing is asked (a conviction can make the
        // eligibility rule admit key holders excluded before); a duplicate request is
        // ignored by its processor.
        let owe = self.owe(txn, item)?;
        for holder in signer.eligible_for(&item.excluded) {
            if !owe.contains(&holder) {
                self.ask(txn, item, holder)?;
            }
        }
        // The forming attempt may now have what it needs (a conviction bars a member).
        if item.stage == SignStage::Preprocesses {
            self.try_fix_set(txn, signer, item)?;
        }
        Ok(())
    }

    /// Ends every open session of `item` (it completed, or a timeout starts afresh).
    pub(super) fn close_sessions(
        &self,
        txn: &mut WriteTxn,
        item: &mut SignItem,
    ) -> Result<(), SimError> {
        for session in std::mem::take(&mut item.open) {
            self.prune_attempt(txn, item, session.attempt)?;
        }
        Ok(())
    }

    /// The members of `item`'s open sessions still waiting for their share, by session.
    pub(super) fn owing(
        &self,
        txn: &impl Get,
        item: &SignItem,
    ) -> Result<BTreeMap<u32, Vec<Participant>>, SimError> {
        let mut out = BTreeMap::new();
        for session in item.open.iter().filter(|o| o.stage == SignStage::Shares) {
            let mut waiting = vec![];
            for member in &session.selected {
                if SHARES.get(txn, &(item.id(), session.attempt, *member))?.is_none() {
                    waiting.push(*member);
                }
            }
            out.insert(session.attempt, waiting);
        }
        Ok(out)
    }
}
