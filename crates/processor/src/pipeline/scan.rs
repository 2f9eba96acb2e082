//! The scanner task: index the next final block, scan it for our outputs, record what it
//! means for the scheduler (applied at acknowledgement), and report its deposits as
//! Batches.
use bitcoin::hashes::Hash;
use db::Db;
use messages::{BatchReport, ProcessorMessage, SignKind};
use primitives::codec::encode_body;
use primitives::{Batch, BlockHash};
use scanner::disposition::{dispose, Disposition};
use scanner::index::Index;
use scanner::{ChainBlock, Network, ReceivedOutput};
use task::{Task, TaskError};

use super::glue::Pipeline;
use super::state::*;
use super::Net;
use crate::db_error;

/// Scans one final block per iteration (one commit each).
#[derive(Debug)]
pub struct ScanTask {
    db: Db,
    pipeline: Pipeline,
}

impl ScanTask {
    /// A scanner over `pipeline`'s network.
    pub fn new(db: Db, pipeline: Pipeline) -> Self {
        ScanTask { db, pipeline }
    }
}

/// The first block the node does not report final: the first that can hold outputs to a
/// key activated now.
async fn first_unfinalized(network: &Net) -> Result<u64, TaskError> {
    Ok(network.latest_finalized().await?.map_or(0, |f| f + 1))
}

impl Task for ScanTask {
    fn name(&self) -> &str {
        "scanner"
    }

    async fn run_iteration(&mut self) -> Result<bool, TaskError> {
        let p = &self.pipeline;
        let network = &*p.network;
        let read = self.db.read().map_err(db_error)?;
        let Some(mut active) = p.active(&read)? else {
            // No key yet: keep this processor's proposal for the next key's activation
            // block current (the first block that can hold outputs to a new key).
            p.proposal.set(first_unfinalized(network).await?);
            return Ok(false);
        };
        let Some(start) = active.start else {
            // The confirmation carried no agreed block (no participant proposed one): the
            // first block not final here. Other processors may pick another block, and
            // then their Batches differ from ours.
            let first = first_unfinalized(network).await?;
            let mut txn = self.db.write().map_err(db_error)?;
            active.start = Some(first);
            ACTIVE.put(&mut txn, &(), &active).map_err(db_error)?;
            txn.commit().map_err(db_error)?;
            tracing::warn!(
                session = active.session,
                first,
                "no activation block was agreed for the key: scanning from this node's first non-final block"
            );
            return Ok(true);
        };
        // Bounded window ahead of acknowledgements.
        let made = NEXT_BATCH.get(&read, &()).map_err(db_error)?.unwrap_or(0);
        let acked = ACKED_COUNT.get(&read, &()).map_err(db_error)?.unwrap_or(0);
        if made.saturating_sub(acked) >= p.window {
            return Ok(false);
        }
        let index = Index::new(start);
        let scanned = SCANNED.get(&read, &()).map_err(db_error)?;
        let number = scanned.map_or(start, |s| s + 1);
        let tip = index.tip(&read).map_err(db_error)?;
        drop(read);
        if tip < Some(number) && index.advance(network, &self.db).await?.is_none() {
            return Ok(false);
        }
        let keys = p.keys(&self.db.read().map_err(db_error)?, active.session)?;
        let key = p.group_key(&keys)?;
        let block = network.block(number).await?;
        let outputs = network.scan(&block, &key).await?;
        let rate = network.block_fee_rate(&block).await?;

        let mut txn = self.db.write().map_err(db_error)?;
        assert_eq!(
            SCANNED.get(&txn, &()).map_err(db_error)?,
            scanned,
            "the scanner is the only writer of its cursor"
        );
        index.expect(&txn, network, &block)?;
        for o in &outputs {
            OUTPUTS.put(&mut txn, &o.id(), &encode_body(o)).map_err(db_error)?;
        }
        let mut events = BlockEvents { rate, ..BlockEvents::default() };
        // Our outputs this block spends (outputs created earlier in it included).
        for tx in &block.block.txdata {
            let txid = tx.compute_txid().to_byte_array();
            for input in &tx.input {
                let mut id = input.previous_output.txid.to_byte_array().to_vec();
                id.extend(input.previous_output.vout.to_le_bytes());
                if OUTPUTS.get(&txn, &id).map_err(db_error)?.is_some() {
                    events.spends.push((id, txid));
                }
            }
        }

        // Deposits, and our own outputs (change, branches) coming back.
        let params = network.params().clone();
        let mut instructions = vec![];
        let mut unreported = vec![];
        for o in &outputs {
            match dispose(params.network, params.dust, o) {
                Disposition::Report(i) => {
                    instructions.push(i);
                    events.reported.push(o.id());
                }
                Disposition::Refund { to, .. } => {
                    events.refunds.push((o.id(), to.clone()));
                    unreported.push(Unreported::Refund { output: o.id(), to });
                }
                Disposition::Unattributed { .. } => {
                    unreported.push(Unreported::Unattributed { output: o.id() })
                }
                Disposition::Dust { .. } => unreported.push(Unreported::Dust { output: o.id() }),
                Disposition::Internal => {
                    events.internal.push((o.id(), o.kind as u8, o.value, o.txid));
                }
            }
        }
        if !unreported.is_empty() {
            tracing::info!(
                block = number,
                count = unreported.len(),
                "deposits not reported (refund, unattributed or dust)"
            );
            UNREPORTED.put(&mut txn, &number, &unreported).map_err(db_error)?;
        }
        // Batches: for deposits, refunds to confirm, or as a progress update when none was
        // made for a confirmation window.
        let last = LAST_BATCH_BLOCK.get(&txn, &()).map_err(db_error)?;
        let quiet = last.map_or(number + 1 - start, |l| number - l) >= params.confirmations;
        if !instructions.is_empty() || !events.refunds.is_empty() || quiet {
            let first = NEXT_BATCH.get(&txn, &()).map_err(db_error)?.unwrap_or(0);
            let hash = BlockHash(block.block_ref().id);
            let batches = Batch::split(params.network, first, hash, instructions);
            for batch in &batches {
                BATCHES.put(&mut txn, &batch.id, &(batch.clone(), number)).map_err(db_error)?;
                events.batches.push(batch.id);
                tracing::info!(
                    batch = batch.id,
                    block = number,
                    instructions = batch.instructions.len(),
                    "batch made"
                );
                p.metrics.batches.inc();
                p.send(&mut txn, ProcessorMessage::Batch(BatchReport::Batch(batch.clone())))?;
                p.start_signing(
                    &mut txn,
                    SignKind::Batch(batch.id),
                    signers::batch_machine(keys.ristretto.clone(), batch),
                )?;
            }
            let made = u32::try_from(batches.len()).unwrap_or(u32::MAX);
            NEXT_BATCH.put(&mut txn, &(), &(first + made)).map_err(db_error)?;
            LAST_BATCH_BLOCK.put(&mut txn, &(), &number).map_err(db_error)?;
        }
        BLOCK_EVENTS.put(&mut txn, &number, &events).map_err(db_error)?;
        if !events.batches.is_empty() {
            super::settle::drain_waiting(p, &mut txn)?;
        }
        SCANNED.put(&mut txn, &(), &number).map_err(db_error)?;
        txn.commit().map_err(db_error)?;
        p.metrics.scanned_height.set(i64::try_from(number).unwrap_or(i64::MAX));
        Ok(true)
    }
}
