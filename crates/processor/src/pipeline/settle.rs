//! Acknowledgements from the settlement layer, and the coordinator's signing requests.
use bitcoin_network::Output;
use borsh::BorshDeserialize;
use db::WriteTxn;
use messages::{BatchReport, ProcessorMessage, SignKind, SignRequest, SignResponse};
use primitives::{Amount, Payment as Burn};
use scanner::{Network, ReceivedOutput};
use signers::Handled;
use task::TaskError;

use super::glue::Pipeline;
use super::state::*;
use crate::db_error;

/// Why a coordinator request changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// No key is active yet.
    #[error("no active key")]
    NoActiveKey,
    /// The settlement block is not after the last one handled.
    #[error("settlement block {got} is not after {last}")]
    StaleSettlement {
        /// Received.
        got: u64,
        /// Last handled.
        last: u64,
    },
    /// A Batch id this processor never made.
    #[error("unknown batch {0}")]
    UnknownBatch(u32),
    /// A request for another session.
    #[error("request for session {got}, the active one is {active}")]
    WrongSession {
        /// Received.
        got: u32,
        /// Active.
        active: u32,
    },
}

fn output(txn: &WriteTxn, id: &[u8]) -> Result<Output, TaskError> {
    let bytes = OUTPUTS
        .get(txn, &id.to_vec())
        .map_err(db_error)?
        .ok_or_else(|| TaskError::fatal(format!("unknown output {}", hex::encode(id))))?;
    Output::try_from_slice(&bytes).map_err(TaskError::fatal)
}

fn utxo(o: &Output) -> scheduler::Utxo {
    scheduler::Utxo { id: o.id(), amount: o.amount() }
}

/// Handles `BlockAcknowledged`: marks the Batches acknowledged, confirms the deposits of
/// every block whose Batches are all acknowledged (in block order), queues refunds and
/// burns, and plans what the confirmed outputs fund.
pub fn acknowledge(
    p: &Pipeline,
    txn: &mut WriteTxn,
    settlement_block: u64,
    batches: &[u32],
    burns: &[Burn],
) -> Result<Result<(), Refusal>, TaskError> {
    let Some(active) = p.active(txn)? else { return Ok(Err(Refusal::NoActiveKey)) };
    let last = SETTLEMENT.get(txn, &()).map_err(db_error)?.unwrap_or(0);
    if settlement_block <= last {
        return Ok(Err(Refusal::StaleSettlement { got: settlement_block, last }));
    }
    let mut rate_block = None;
    for id in batches {
        let Some((_, block)) = BATCHES.get(txn, id).map_err(db_error)? else {
            return Ok(Err(Refusal::UnknownBatch(*id)));
        };
        ACKED.put(txn, id, &settlement_block).map_err(db_error)?;
        rate_block = rate_block.max(Some(block));
    }
    let mut count = ACKED_COUNT.get(txn, &()).map_err(db_error)?.unwrap_or(0);
    while ACKED.get(txn, &count).map_err(db_error)?.is_some() {
        count += 1;
    }
    ACKED_COUNT.put(txn, &(), &count).map_err(db_error)?;

    let mut state = SCHEDULER.get(txn, &()).map_err(db_error)?.unwrap_or_default();
    let mut next_payment = NEXT_PAYMENT.get(txn, &()).map_err(db_error)?.unwrap_or(0);
    let mut payments = vec![];
    // Confirm blocks in order, while all of a block's Batches are acknowledged.
    for (block, deposits) in BLOCK_DEPOSITS.iter(txn).map_err(db_error)? {
        let mut all = true;
        for id in &deposits.batches {
            all &= ACKED.get(txn, id).map_err(db_error)?.is_some();
        }
        if !all {
            break;
        }
        let mut utxos = vec![];
        for id in &deposits.reported {
            utxos.push(utxo(&output(txn, id)?));
        }
        for (id, to) in &deposits.refunds {
            let o = output(txn, id)?;
            utxos.push(utxo(&o));
            payments.push(scheduler::Payment {
                id: next_payment,
                address: to.clone(),
                amount: o.amount(),
            });
            next_payment += 1;
        }
        state.add_utxos(utxos).map_err(|e| TaskError::fatal(format!("scheduler: {e}")))?;
        BLOCK_DEPOSITS.del(txn, &block).map_err(db_error)?;
        CONFIRMED.put(txn, &(), &block).map_err(db_error)?;
        rate_block = rate_block.max(Some(block));
        tracing::info!(
            block,
            reported = deposits.reported.len(),
            refunds = deposits.refunds.len(),
            "deposits confirmed"
        );
    }
    let coin = p.network.params().network.native_coin();
    for (i, burn) in burns.iter().enumerate() {
        if burn.balance.coin != coin || p.network.address(&burn.address).is_none() {
            tracing::error!(
                settlement_block,
                index = i,
                ?burn,
                "burn cannot be paid on this network; recorded"
            );
            let index = u32::try_from(i).unwrap_or(u32::MAX);
            UNPAYABLE.put(txn, &(settlement_block, index), burn).map_err(db_error)?;
            continue;
        }
        payments.push(scheduler::Payment {
            id: next_payment,
            address: burn.address.clone(),
            amount: burn.balance.amount,
        });
        next_payment += 1;
    }
    state.add_payments(payments);
    let rate = match rate_block {
        Some(block) => FEE_RATE.get(txn, &block).map_err(db_error)?,
        None => None,
    }
    .ok_or_else(|| TaskError::fatal("no fee rate recorded for the acknowledged block"))?;
    let scheduled = state
        .schedule(p.limits(), &p.fees(rate))
        .map_err(|e| TaskError::fatal(format!("scheduler: {e}")))?;
    for d in &scheduled.dropped {
        tracing::warn!(
            payment = d.payment.id,
            amount = d.payment.amount.0,
            fee = d.fee.0,
            "payment below dust after its fee share: dropped"
        );
        p.metrics.dropped_payments.inc();
        DROPPED.put(txn, &d.payment.id, d).map_err(db_error)?;
    }
    SCHEDULER.put(txn, &(), &state).map_err(db_error)?;
    NEXT_PAYMENT.put(txn, &(), &next_payment).map_err(db_error)?;
    SETTLEMENT.put(txn, &(), &settlement_block).map_err(db_error)?;
    let keys = p.keys(txn, active.session)?;
    p.new_plans(txn, &keys, scheduled.txs, rate)?;
    Ok(Ok(()))
}

/// Handles a signing request from the coordinator.
pub fn sign(
    p: &Pipeline,
    txn: &mut WriteTxn,
    request: &SignRequest,
) -> Result<Result<(), Refusal>, TaskError> {
    let Some(active) = p.active(txn)? else { return Ok(Err(Refusal::NoActiveKey)) };
    let id = match request {
        SignRequest::Preprocesses { id, .. }
        | SignRequest::Shares { id, .. }
        | SignRequest::Reattempt { id } => *id,
        SignRequest::Completed { session, plan, tx } => {
            // Another signer published it; we stop once we see it on chain ourselves.
            tracing::info!(session = session.0, plan = %hex::encode(plan), tx = %hex::encode(tx), "a signer reports the plan completed");
            return Ok(Ok(()));
        }
    };
    if id.session.0 != active.session {
        return Ok(Err(Refusal::WrongSession { got: id.session.0, active: active.session }));
    }
    let machine = match request {
        SignRequest::Reattempt { .. } => p.machine(txn, &active, id.kind)?,
        _ => None,
    };
    let handled = {
        let mut guard = p.signers.lock().map_err(|_| TaskError::fatal("signers lock poisoned"))?;
        let Some(signers) = guard.as_mut() else { return Ok(Err(Refusal::NoActiveKey)) };
        signers.handle(txn, request, |_| machine).map_err(db_error)?
    };
    match handled {
        Handled::Reply(response) => {
            if matches!(response, SignResponse::Preprocess { .. }) {
                p.metrics.attempts.inc();
                p.metrics.reattempts.inc();
            }
            p.send(txn, ProcessorMessage::Sign(response))?;
        }
        Handled::Signed { id, signed } => {
            match id.kind {
                SignKind::Batch(batch_id) => {
                    let (batch, _) =
                        BATCHES.get(txn, &batch_id).map_err(db_error)?.ok_or_else(|| {
                            TaskError::fatal(format!("signed unknown batch {batch_id}"))
                        })?;
                    let signature: [u8; 64] = signed
                        .try_into()
                        .map_err(|_| TaskError::fatal("a Batch signature is not 64 bytes"))?;
                    tracing::info!(batch = batch_id, attempt = id.attempt, "batch signed");
                    p.metrics.batches_signed.inc();
                    p.send(
                        txn,
                        ProcessorMessage::Batch(BatchReport::SignedBatch { batch, signature }),
                    )?;
                }
                SignKind::Plan(plan) => {
                    tracing::info!(plan = %hex::encode(plan), attempt = id.attempt, "transaction signed");
                    TO_PUBLISH.push(txn, &(plan, signed)).map_err(db_error)?;
                }
            }
            let mut guard =
                p.signers.lock().map_err(|_| TaskError::fatal("signers lock poisoned"))?;
            if let Some(signers) = guard.as_mut() {
                signers.complete(txn, id.kind).map_err(db_error)?;
            }
        }
        Handled::Failed { id, reason } => {
            tracing::warn!(
                ?id,
                reason,
                "signing attempt failed without a culprit; waiting for a reattempt"
            );
        }
        Handled::Ignored(reason) => {
            tracing::debug!(?id, reason, "signing request ignored");
        }
    }
    Ok(Ok(()))
}

/// The amount a set of outputs holds (for status).
pub fn total(outputs: &[scheduler::Utxo]) -> Amount {
    Amount(outputs.iter().map(|u| u.amount.0).sum())
}
