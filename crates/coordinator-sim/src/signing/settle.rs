//! Settlement: Batch reports and signed Batches, verified and settled strictly in id order.
use db::WriteTxn;
use messages::{BatchReport, CoordinatorMessage, Participant, Party, SettlementEvent, SignKind};
use primitives::{Batch, NetworkId};

use super::*;
use crate::{
    keygen::SimError,
    ledger,
    state::{set_key, ROTATIONS, SETS},
};

impl SignCoordinator {
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
        let set = set_key(network, batch.session);
        let mut settlement = set_settlement(txn, set)?;
        let BatchReport::SignedBatch { batch, signature } = report else {
            return self.on_batch_report(txn, settlement, validator, batch);
        };
        if batch.id < settlement.next_batch || VERIFIED.get(txn, &(set, batch.id))?.is_some() {
            return Ok(SignOutcome::Ignored("batch_done"));
        }
        // Each session's Batches are signed by its own confirmed key.
        let signer = match self.signer(txn, network, batch.session)? {
            Ok(signer)
                if signers::batch::verify(&signer.ristretto_key, batch, signature).is_ok() =>
            {
                signer
            }
            Ok(_) | Err(_) => {
                settlement.bad_signatures += 1;
                SETTLEMENTS.put(txn, &set, &settlement)?;
                self.metrics.bad_batch_signatures.inc();
                tracing::warn!(
                    session = batch.session,
                    bad_signatures = settlement.bad_signatures,
                    "a signed Batch does not verify under its session's confirmed key; ignored"
                );
                return Ok(SignOutcome::Ignored("bad_signature"));
            }
        };
        VERIFIED.put(txn, &(set, batch.id), batch)?;
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
        self.settle(txn, network, settlement, set)?;
        Ok(SignOutcome::Progress)
    }

    /// Keeps a key holder's report of a Batch it is about to sign (the first one), for
    /// checking its shares.
    fn on_batch_report(
        &self,
        txn: &mut WriteTxn,
        settlement: SetSettlement,
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
        let key = (set_key(batch.network, batch.session), batch.id, validator);
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

    /// Settles `set`'s verified Batches from `settlement.next_batch` on, as long as they
    /// are contiguous. A set rotating out credits nothing for blocks from its close block
    /// on, and only the network's newest confirmed set is ordered burns
    /// (docs/rotation.md).
    fn settle(
        &self,
        txn: &mut WriteTxn,
        network: NetworkId,
        mut settlement: SetSettlement,
        set: SetKey,
    ) -> Result<(), SimError> {
        let rotation = ROTATIONS.get(txn, &set)?;
        let newest = self.newest_confirmed(txn, network)? == Some(set.1);
        while let Some(batch) = VERIFIED.get(txn, &(set, settlement.next_batch))? {
            VERIFIED.del(txn, &(set, batch.id))?;
            let closing = rotation.as_ref().is_some_and(|r| batch.number >= r.close_block);
            if closing {
                if !batch.instructions.is_empty() {
                    tracing::info!(
                        session = set.1,
                        id = batch.id,
                        block = batch.number,
                        instructions = batch.instructions.len(),
                        "a closing set's Batch: nothing credited (its processors refund the deposits)"
                    );
                }
            } else {
                ledger::credit(txn, &batch)?;
            }
            let settlement_block = ledger::next_block(txn)?;
            let burns = if newest && rotation.is_none() {
                ledger::take_burns(txn, network, settlement_block)?
            } else {
                vec![]
            };
            let holders = SETS.get(txn, &set)?.map(|s| s.participants).unwrap_or_default();
            for config in self.sets.iter().filter(|s| s.key() == set) {
                for validator in &config.validators {
                    BATCH_REPORTS.del(txn, &(set, batch.id, *validator))?;
                }
            }
            tracing::info!(
                session = set.1,
                id = batch.id,
                settlement_block,
                burns = burns.len(),
                "Batch settled; acknowledging"
            );
            self.metrics.settlement_blocks.inc();
            self.metrics.burns.inc_by(burns.len() as u64);
            for to in holders {
                let event = SettlementEvent::BlockAcknowledged {
                    session: Session(set.1),
                    settlement_block,
                    network_block: batch.block,
                    batches: vec![batch.id],
                    burns: burns.clone(),
                };
                self.send(txn, network, to, CoordinatorMessage::Settlement(event))?;
            }
            settlement.last_block = Some(batch.number);
            let Some(next) = settlement.next_batch.checked_add(1) else {
                tracing::error!("no Batch ids left");
                break;
            };
            settlement.next_batch = next;
        }
        SETTLEMENTS.put(txn, &set, &settlement)?;
        Ok(())
    }

    /// The newest (highest) confirmed session of `network` among the configured sets.
    fn newest_confirmed(
        &self,
        txn: &impl Get,
        network: NetworkId,
    ) -> Result<Option<u32>, SimError> {
        let mut newest = None;
        for config in self.sets.iter().filter(|s| s.network == network) {
            let confirmed = SETS.get(txn, &config.key())?.is_some_and(|s| s.confirmed.is_some());
            if confirmed {
                newest = newest.max(Some(config.session));
            }
        }
        Ok(newest)
    }

    /// Handles a settlement report from `sender`, inside `txn`.
    pub fn handle_settlement(
        &self,
        txn: &mut WriteTxn,
        sender: Party,
        report: &messages::SettlementReport,
    ) -> Result<SignOutcome, SimError> {
        let Party::Processor { network, validator } = sender else {
            return Ok(SignOutcome::Ignored("not_a_processor"));
        };
        let messages::SettlementReport::Retired { session, block } = report;
        let set = set_key(network, session.0);
        let Some(mut rotation) = ROTATIONS.get(txn, &set)? else {
            tracing::warn!(%sender, session = session.0, "a retirement of a set that has no successor; ignored");
            return Ok(SignOutcome::Ignored("not_rotating"));
        };
        let holder = SETS.get(txn, &set)?.is_some_and(|s| s.participants.contains(&validator));
        if !holder {
            return Ok(SignOutcome::Ignored("not_a_key_holder"));
        }
        if rotation.retired.insert(validator, *block).is_some() {
            return Ok(SignOutcome::Ignored("duplicate"));
        }
        tracing::info!(%sender, session = session.0, block, retired = rotation.retired.len(), "a key holder retired the session's key");
        ROTATIONS.put(txn, &set, &rotation)?;
        // A set waiting for this one to retire may hand over now.
        let threshold = SETS.get(txn, &set)?.map_or(u16::MAX, |s| s.threshold);
        if crate::rotation::retired(&rotation, threshold) {
            crate::rotation::reconcile(txn, &self.sets, &self.mailbox, network, self.close_after)?;
        }
        Ok(SignOutcome::Noted)
    }
}
