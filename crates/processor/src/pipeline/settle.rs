//! Acknowledgements from the settlement layer, and the coordinator's signing requests.
use bitcoin_network::Output;
use borsh::BorshDeserialize;
use db::{Get, WriteTxn};
use messages::{BatchReport, ProcessorMessage, SignKind, SignRequest, SignResponse};
use primitives::{Amount, Payment as Burn};
use scanner::{Network, OutputKind, ReceivedOutput};
use signers::Handled;
use task::TaskError;

use super::glue::{eventuality, Pipeline};
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
    /// Batches that do not continue, in order, from the last ones acknowledged.
    #[error("batches {got:?} do not continue from batch {expected}")]
    BatchesOutOfOrder {
        /// The id the next acknowledgement must start with.
        expected: u64,
        /// Received.
        got: Vec<u32>,
    },
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

/// Handles `BlockAcknowledged`: marks the Batches acknowledged, then applies, in block
/// order, every scanned block up to the last one whose Batch this acknowledgement covers
/// (completed plans, conflicts, change, branch outputs funding their payments, confirmed
/// deposits, refunds), queues the burns, and plans what the outputs fund.
///
/// Block effects are applied here and not when scanned: every processor of the set sees
/// the same acknowledgements in the same order, but scans at its own pace, so this is what
/// keeps their schedulers, and so their plans, identical.
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
    let mut target = None;
    for id in batches {
        let Some((_, block)) = BATCHES.get(txn, id).map_err(db_error)? else {
            return Ok(Err(Refusal::UnknownBatch(*id)));
        };
        target = target.max(Some(block));
    }
    for id in batches {
        ACKED.put(txn, id, &settlement_block).map_err(db_error)?;
    }
    let mut count = ACKED_COUNT.get(txn, &()).map_err(db_error)?.unwrap_or(0);
    while ACKED.get(txn, &count).map_err(db_error)?.is_some() {
        count += 1;
    }
    ACKED_COUNT.put(txn, &(), &count).map_err(db_error)?;

    let keys = p.keys(txn, active.session)?;
    let mut state = SCHEDULER.get(txn, &()).map_err(db_error)?.unwrap_or_default();
    let mut next_payment = NEXT_PAYMENT.get(txn, &()).map_err(db_error)?.unwrap_or(0);
    let mut payments = vec![];
    let scheduler_error = |e: scheduler::ScheduleError| TaskError::fatal(format!("scheduler: {e}"));
    for (block, events) in BLOCK_EVENTS.iter(txn).map_err(db_error)? {
        if Some(block) > target {
            break;
        }
        // Bounded here too, not only when scanned: a rate recorded by an older build or
        // under other bounds must not make this processor's plans differ from the set's.
        let rate = p.plan_rate(events.rate);
        let mut all_acked = true;
        for id in &events.batches {
            all_acked &= ACKED.get(txn, id).map_err(db_error)?.is_some();
        }
        if !all_acked {
            break;
        }
        // Spends of our outputs: plans completed, or conflicts.
        let mut completed: Vec<([u8; 32], [u8; 32])> = vec![];
        for (output, spender) in &events.spends {
            state.utxos.retain(|u| &u.id != output);
            match PLAN_BY_INPUT.get(txn, output).map_err(db_error)? {
                Some(plan) => {
                    let mut record = PLANS
                        .get(txn, &plan)
                        .map_err(db_error)?
                        .ok_or_else(|| TaskError::fatal("a plan input without its plan"))?;
                    if eventuality(&record)?.txid == *spender {
                        if record.completed.is_none() {
                            record.completed = Some(spender.to_vec());
                            PLANS.put(txn, &plan, &record).map_err(db_error)?;
                            PENDING.del(txn, &plan).map_err(db_error)?;
                            BROADCAST.del(txn, &plan).map_err(db_error)?;
                            p.metrics.plans_completed.inc();
                            completed.push((plan, *spender));
                            p.complete_signing(txn, SignKind::Plan(plan))?;
                            tracing::info!(plan = %hex::encode(plan), tx = %display_txid(spender), block, "plan completed on chain");
                        }
                    } else {
                        tracing::error!(plan = %hex::encode(plan), tx = %display_txid(spender), block, "ALARM: a transaction we did not plan spent a planned input");
                        p.metrics.conflicts.inc();
                        CONFLICTS.put(txn, &plan, &spender.to_vec()).map_err(db_error)?;
                        BROADCAST.del(txn, &plan).map_err(db_error)?;
                    }
                }
                None => {
                    tracing::error!(output = %hex::encode(output), tx = %display_txid(spender), block, "ALARM: one of our outputs was spent without a plan");
                    p.metrics.conflicts.inc();
                    UNPLANNED_SPENDS.put(txn, output, spender).map_err(db_error)?;
                }
            }
        }
        // Our own outputs: change and forwarded funds are available; branch outputs
        // fund, in output order, the branches of the plan that made them.
        let mut funded = vec![];
        for (plan, tx) in &completed {
            let Some(branches) = BRANCHES.get(txn, plan).map_err(db_error)? else { continue };
            let outs: Vec<_> = events
                .internal
                .iter()
                .filter(|(_, kind, _, creator)| *kind == OutputKind::Branch as u8 && creator == tx)
                .collect();
            if outs.len() != branches.len() {
                return Err(TaskError::fatal(format!(
                    "plan {} completed with {} branch outputs, {} planned",
                    hex::encode(plan),
                    outs.len(),
                    branches.len()
                )));
            }
            for (branch, (id, _, amount, _)) in branches.into_iter().zip(outs) {
                let utxo = scheduler::Utxo { id: id.clone(), amount: Amount(*amount) };
                let s = scheduler::fund_branch(branch, utxo, p.limits(), &p.fees(rate))
                    .map_err(scheduler_error)?;
                record_dropped(p, txn, &s.dropped)?;
                state.add_utxos(s.unused).map_err(scheduler_error)?;
                funded.extend(s.txs);
            }
            BRANCHES.del(txn, plan).map_err(db_error)?;
        }
        let branch_tx = |creator: &[u8; 32]| completed.iter().any(|(_, tx)| tx == creator);
        for (id, kind, amount, creator) in &events.internal {
            let is_branch = *kind == OutputKind::Branch as u8;
            if !is_branch || !branch_tx(creator) {
                if is_branch {
                    tracing::warn!(output = %hex::encode(id), "a branch output no plan made: kept as funds");
                }
                state
                    .add_utxos([scheduler::Utxo { id: id.clone(), amount: Amount(*amount) }])
                    .map_err(scheduler_error)?;
            }
        }
        // Deposits confirmed; refunds queued.
        for id in &events.reported {
            state.add_utxos([utxo(&output(txn, id)?)]).map_err(scheduler_error)?;
        }
        for (id, to) in &events.refunds {
            let o = output(txn, id)?;
            state.add_utxos([utxo(&o)]).map_err(scheduler_error)?;
            payments.push(scheduler::Payment {
                id: next_payment,
                address: to.clone(),
                amount: o.amount(),
            });
            next_payment += 1;
        }
        LAST_RATE.put(txn, &(), &rate).map_err(db_error)?;
        BLOCK_EVENTS.del(txn, &block).map_err(db_error)?;
        CONFIRMED.put(txn, &(), &block).map_err(db_error)?;
        if !events.reported.is_empty() || !events.refunds.is_empty() {
            tracing::info!(
                block,
                reported = events.reported.len(),
                refunds = events.refunds.len(),
                "deposits confirmed"
            );
        }
        p.new_plans(txn, &keys, funded, rate)?;
    }
    let coin = p.network.params().network.native_coin();
    let max_money = p.network.chain_params().max_money;
    for (i, burn) in burns.iter().enumerate() {
        // Another coin, an address this network cannot pay, or more than can ever exist.
        if burn.balance.coin != coin
            || p.network.address(&burn.address).is_none()
            || burn.balance.amount.0 > max_money
        {
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
    let rate = p.plan_rate(
        LAST_RATE.get(txn, &()).map_err(db_error)?.unwrap_or(p.network.chain_params().min_fee_rate),
    );
    let scheduled = state.schedule(p.limits(), &p.fees(rate)).map_err(scheduler_error)?;
    record_dropped(p, txn, &scheduled.dropped)?;
    SCHEDULER.put(txn, &(), &state).map_err(db_error)?;
    NEXT_PAYMENT.put(txn, &(), &next_payment).map_err(db_error)?;
    SETTLEMENT.put(txn, &(), &settlement_block).map_err(db_error)?;
    p.new_plans(txn, &keys, scheduled.txs, rate)?;
    Ok(Ok(()))
}

fn record_dropped(
    p: &Pipeline,
    txn: &mut WriteTxn,
    dropped: &[scheduler::Dropped],
) -> Result<(), TaskError> {
    for d in dropped {
        tracing::warn!(
            payment = d.payment.id,
            amount = d.payment.amount.0,
            fee = d.fee.0,
            "payment below dust after its fee share: dropped"
        );
        p.metrics.dropped_payments.inc();
        DROPPED.put(txn, &d.payment.id, d).map_err(db_error)?;
    }
    Ok(())
}

fn display_txid(txid: &[u8; 32]) -> String {
    use bitcoin::hashes::Hash;
    bitcoin::Txid::from_byte_array(*txid).to_string()
}

/// Handles `BlockAcknowledged` in order: applied at once if this processor made every
/// Batch it names and nothing is waiting before it; otherwise queued until the scanner
/// catches up ([`drain_waiting`]).
pub fn receive_ack(
    p: &Pipeline,
    txn: &mut WriteTxn,
    ack: WaitingAck,
) -> Result<Result<(), Refusal>, TaskError> {
    if p.active(txn)?.is_none() {
        return Ok(Err(Refusal::NoActiveKey));
    }
    if let Err(refusal) = in_order(txn, &ack)? {
        return Ok(Err(refusal));
    }
    if WAITING_ACKS.is_empty(txn).map_err(db_error)? && made_all(txn, &ack.batches)? {
        return acknowledge(p, txn, ack.settlement_block, &ack.batches, &ack.burns);
    }
    tracing::info!(settlement_block = ack.settlement_block, batches = ?ack.batches, "acknowledgement ahead of this processor's scanning: waiting");
    WAITING_ACKS.push(txn, &ack).map_err(db_error)?;
    Ok(Ok(()))
}

/// Whether `ack` follows every acknowledgement already applied or waiting: a later
/// settlement block, and Batch ids continuing exactly where theirs end (the settlement
/// layer acknowledges each Batch once, in order). Checked on receipt, so that an
/// acknowledgement that can never apply (a Batch id that will never exist, a settlement
/// block from the far future) is refused instead of waiting at the head of the queue
/// and holding every later one back.
pub fn in_order(txn: &impl Get, ack: &WaitingAck) -> Result<Result<(), Refusal>, TaskError> {
    let mut next = u64::from(ACKED_COUNT.get(txn, &()).map_err(db_error)?.unwrap_or(0));
    let mut last = SETTLEMENT.get(txn, &()).map_err(db_error)?.unwrap_or(0);
    for (_, waiting) in WAITING_ACKS.items(txn).map_err(db_error)? {
        next += waiting.batches.len() as u64;
        last = last.max(waiting.settlement_block);
    }
    if ack.settlement_block <= last {
        return Ok(Err(Refusal::StaleSettlement { got: ack.settlement_block, last }));
    }
    if !ack.batches.iter().map(|id| u64::from(*id)).eq(next..next + ack.batches.len() as u64) {
        return Ok(Err(Refusal::BatchesOutOfOrder { expected: next, got: ack.batches.clone() }));
    }
    Ok(Ok(()))
}

fn made_all(txn: &WriteTxn, batches: &[u32]) -> Result<bool, TaskError> {
    let made = NEXT_BATCH.get(txn, &()).map_err(db_error)?.unwrap_or(0);
    Ok(batches.iter().all(|id| *id < made))
}

/// Applies waiting acknowledgements, in order, while this processor has made every
/// Batch they name. Called by the scanner after it makes Batches.
pub fn drain_waiting(p: &Pipeline, txn: &mut WriteTxn) -> Result<(), TaskError> {
    while let Some((_, ack)) = WAITING_ACKS.peek(txn).map_err(db_error)? {
        if !made_all(txn, &ack.batches)? {
            break;
        }
        WAITING_ACKS.pop(txn).map_err(db_error)?;
        if let Err(refusal) = acknowledge(p, txn, ack.settlement_block, &ack.batches, &ack.burns)? {
            tracing::warn!(settlement_block = ack.settlement_block, error = %refusal, "waiting acknowledgement refused");
        }
    }
    Ok(())
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
        let mut guard = p.lock_signers()?;
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
            p.complete_signing(txn, id.kind)?;
        }
        Handled::Failed { id, reason } => {
            tracing::warn!(
                ?id,
                reason,
                "signing attempt failed without a culprit; waiting for a reattempt"
            );
        }
        Handled::Ignored(reason) => {
            tracing::info!(?id, reason, "signing request ignored");
        }
    }
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ack(settlement_block: u64, batches: &[u32]) -> WaitingAck {
        WaitingAck { settlement_block, batches: batches.to_vec(), burns: vec![] }
    }

    fn check(db: &db::Db, a: &WaitingAck) -> Result<(), Refusal> {
        in_order(&db.read().unwrap(), a).unwrap()
    }

    /// An acknowledgement that could never apply is refused on receipt, so it cannot sit
    /// at the head of the waiting queue holding back every later one.
    #[test]
    fn acknowledgements_must_continue_the_batches_and_settlement_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let db = db::Db::open(dir.path().join("p.redb"), crate::SCHEMA).unwrap();

        // Nothing acknowledged yet: the first names Batch 0 (or none: burns only).
        assert!(check(&db, &ack(1, &[0])).is_ok());
        assert!(check(&db, &ack(1, &[])).is_ok());
        assert!(check(&db, &ack(1, &[0, 1])).is_ok());
        for bad in [&[1][..], &[u32::MAX], &[0, 2], &[1, 0], &[0, 0]] {
            assert!(
                matches!(
                    check(&db, &ack(1, bad)),
                    Err(Refusal::BatchesOutOfOrder { expected: 0, .. })
                ),
                "{bad:?} accepted"
            );
        }
        assert!(matches!(check(&db, &ack(0, &[0])), Err(Refusal::StaleSettlement { .. })));

        // Batches 0 and 1 waiting at settlement block 5 (this processor has not made them
        // yet): the next must name Batch 2, at a later block.
        let mut txn = db.write().unwrap();
        WAITING_ACKS.push(&mut txn, &ack(5, &[0, 1])).unwrap();
        txn.commit().unwrap();
        assert!(check(&db, &ack(6, &[2])).is_ok());
        assert!(check(&db, &ack(6, &[])).is_ok());
        assert!(matches!(
            check(&db, &ack(6, &[0])),
            Err(Refusal::BatchesOutOfOrder { expected: 2, .. })
        ));
        assert!(matches!(
            check(&db, &ack(6, &[3])),
            Err(Refusal::BatchesOutOfOrder { expected: 2, .. })
        ));
        assert!(matches!(
            check(&db, &ack(5, &[2])),
            Err(Refusal::StaleSettlement { got: 5, last: 5 })
        ));

        // Applied: 3 Batches acknowledged, the last at settlement block 9.
        let mut txn = db.write().unwrap();
        WAITING_ACKS.pop(&mut txn).unwrap();
        ACKED_COUNT.put(&mut txn, &(), &3).unwrap();
        SETTLEMENT.put(&mut txn, &(), &9).unwrap();
        txn.commit().unwrap();
        assert!(check(&db, &ack(10, &[3])).is_ok());
        assert!(matches!(
            check(&db, &ack(10, &[2])),
            Err(Refusal::BatchesOutOfOrder { expected: 3, .. })
        ));
        assert!(matches!(
            check(&db, &ack(9, &[3])),
            Err(Refusal::StaleSettlement { got: 9, last: 9 })
        ));
        // A settlement block from the far future is fine by itself (the settlement layer
        // numbers its blocks); only its order matters.
        assert!(check(&db, &ack(u64::MAX, &[3])).is_ok());
    }
}
