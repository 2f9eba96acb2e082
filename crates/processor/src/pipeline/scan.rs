//! The scanner task: index the next final block, scan it for our outputs, settle the
//! plans it completes, and report its deposits as Batches.
use bitcoin::hashes::Hash;
use db::Db;
use messages::{BatchReport, ProcessorMessage, SignKind};
use primitives::codec::encode_body;
use primitives::{Batch, BlockHash};
use scanner::disposition::{dispose, Disposition};
use scanner::index::Index;
use scanner::{ChainBlock, Completion, Network, OutputKind, ReceivedOutput};
use task::{Task, TaskError};

use super::glue::{eventuality, Pipeline};
use super::state::*;
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

impl Task for ScanTask {
    fn name(&self) -> &str {
        "scanner"
    }

    async fn run_iteration(&mut self) -> Result<bool, TaskError> {
        let p = &self.pipeline;
        let network = &*p.network;
        let read = self.db.read().map_err(db_error)?;
        let Some(mut active) = p.active(&read)? else { return Ok(false) };
        let Some(start) = active.start else {
            // The first block that can hold outputs to the new key: the first not final.
            let first = network.latest_finalized().await?.map_or(0, |f| f + 1);
            let mut txn = self.db.write().map_err(db_error)?;
            active.start = Some(first);
            ACTIVE.put(&mut txn, &(), &active).map_err(db_error)?;
            txn.commit().map_err(db_error)?;
            tracing::info!(session = active.session, first, "scanning from block");
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
        FEE_RATE.put(&mut txn, &number, &rate).map_err(db_error)?;
        for o in &outputs {
            OUTPUTS.put(&mut txn, &o.id(), &encode_body(o)).map_err(db_error)?;
        }

        // Plans this block completes; branch outputs fund their next transactions.
        let pending: Vec<[u8; 32]> =
            PENDING.iter(&txn).map_err(db_error)?.into_iter().map(|(id, ())| id).collect();
        let mut eventualities = vec![];
        for id in &pending {
            let record = PLANS
                .get(&txn, id)
                .map_err(db_error)?
                .ok_or_else(|| TaskError::fatal("pending plan without record"))?;
            eventualities.push(eventuality(&record)?);
        }
        let mut state = SCHEDULER.get(&txn, &()).map_err(db_error)?.unwrap_or_default();
        let mut funded = vec![];
        for completion in network.check(&block, &eventualities) {
            match completion {
                Completion::Completed { index, tx } => {
                    let plan = pending[index];
                    let mut record = PLANS
                        .get(&txn, &plan)
                        .map_err(db_error)?
                        .ok_or_else(|| TaskError::fatal("completed plan without record"))?;
                    record.completed = Some(tx.clone());
                    PLANS.put(&mut txn, &plan, &record).map_err(db_error)?;
                    PENDING.del(&mut txn, &plan).map_err(db_error)?;
                    p.metrics.plans_completed.inc();
                    tracing::info!(plan = %hex::encode(plan), tx = %bitcoin::Txid::from_slice(&tx).map(|t| t.to_string()).unwrap_or_default(), block = number, "plan completed on chain");
                    {
                        let mut guard = p
                            .signers
                            .lock()
                            .map_err(|_| TaskError::fatal("signers lock poisoned"))?;
                        if let Some(signers) = guard.as_mut() {
                            signers.complete(&mut txn, SignKind::Plan(plan)).map_err(db_error)?;
                        }
                    }
                    // Its branch outputs, in output order, fund its branches in order.
                    if let Some(branches) = BRANCHES.get(&txn, &plan).map_err(db_error)? {
                        let outs: Vec<_> = outputs
                            .iter()
                            .filter(|o| o.kind == OutputKind::Branch && o.txid.to_vec() == tx)
                            .collect();
                        if outs.len() != branches.len() {
                            return Err(TaskError::fatal(format!(
                                "plan {} completed with {} branch outputs, {} planned",
                                hex::encode(plan),
                                outs.len(),
                                branches.len()
                            )));
                        }
                        for (branch, o) in branches.into_iter().zip(outs) {
                            let s = scheduler::fund_branch(
                                branch,
                                scheduler::Utxo { id: o.id(), amount: o.amount() },
                                p.limits(),
                                &p.fees(rate),
                            )
                            .map_err(|e| TaskError::fatal(format!("scheduler: {e}")))?;
                            for d in &s.dropped {
                                DROPPED.put(&mut txn, &d.payment.id, d).map_err(db_error)?;
                                p.metrics.dropped_payments.inc();
                            }
                            state
                                .add_utxos(s.unused)
                                .map_err(|e| TaskError::fatal(format!("scheduler: {e}")))?;
                            funded.extend(s.txs);
                        }
                        BRANCHES.del(&mut txn, &plan).map_err(db_error)?;
                    }
                }
                Completion::Conflict { index, tx } => {
                    let plan = pending[index];
                    p.metrics.conflicts.inc();
                    CONFLICTS.put(&mut txn, &plan, &tx).map_err(db_error)?;
                }
            }
        }

        // Deposits, and our own change coming back.
        let params = network.params().clone();
        let mut instructions = vec![];
        let mut deposits = BlockDeposits::default();
        let mut unreported = vec![];
        for o in &outputs {
            match dispose(params.network, params.dust, o) {
                Disposition::Report(i) => {
                    instructions.push(i);
                    deposits.reported.push(o.id());
                }
                Disposition::Refund { to, .. } => {
                    deposits.refunds.push((o.id(), to.clone()));
                    unreported.push(Unreported::Refund { output: o.id(), to });
                }
                Disposition::Unattributed { .. } => {
                    unreported.push(Unreported::Unattributed { output: o.id() })
                }
                Disposition::Dust { .. } => unreported.push(Unreported::Dust { output: o.id() }),
                Disposition::Internal => {
                    // Change and forwarded funds are ours at once; branch outputs were
                    // matched to their plan above.
                    if matches!(o.kind, OutputKind::Change | OutputKind::Forwarded) {
                        state
                            .add_utxos([scheduler::Utxo { id: o.id(), amount: o.amount() }])
                            .map_err(|e| TaskError::fatal(format!("scheduler: {e}")))?;
                    }
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
        if !instructions.is_empty() || !deposits.refunds.is_empty() || quiet {
            let first = NEXT_BATCH.get(&txn, &()).map_err(db_error)?.unwrap_or(0);
            let hash = BlockHash(block.block_ref().id);
            let batches = Batch::split(params.network, first, hash, instructions);
            let ristretto = keys.ristretto.clone();
            for batch in &batches {
                BATCHES.put(&mut txn, &batch.id, &(batch.clone(), number)).map_err(db_error)?;
                deposits.batches.push(batch.id);
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
                    signers::batch_machine(ristretto.clone(), batch),
                )?;
            }
            NEXT_BATCH
                .put(&mut txn, &(), &(first + u32::try_from(batches.len()).unwrap_or(u32::MAX)))
                .map_err(db_error)?;
            LAST_BATCH_BLOCK.put(&mut txn, &(), &number).map_err(db_error)?;
            BLOCK_DEPOSITS.put(&mut txn, &number, &deposits).map_err(db_error)?;
        }
        SCHEDULER.put(&mut txn, &(), &state).map_err(db_error)?;
        p.new_plans(&mut txn, &keys, funded, rate)?;
        SCANNED.put(&mut txn, &(), &number).map_err(db_error)?;
        txn.commit().map_err(db_error)?;
        p.metrics.scanned_height.set(i64::try_from(number).unwrap_or(i64::MAX));
        Ok(true)
    }
}
