//! Settlement: Batch reports and signed Batches, verified and settled strictly in id order.
use db::WriteTxn;
use messages::{BatchReport, CoordinatorMessage, Participant, Party, SettlementEvent, SignKind};
use primitives::{Batch, NetworkId};

use super::*;
use crate::{keygen::SimError, ledger, state::SETS};

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
}
