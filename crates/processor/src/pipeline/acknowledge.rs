//! Acknowledgements from the settlement layer: checked and queued on receipt by the
//! inbox handler ([`receive`]), applied by one task ([`AckTask`]).
//!
//! An acknowledgement names Batches (contiguous, continuing the ones before) and carries
//! the burns ordered with it. Applying it means: mark its Batches acknowledged; apply, in
//! block order and one block per commit, every scanned block up to the last block all of
//! whose Batches are acknowledged, as far as its last Batch's block
//! ([`super::eventuality::apply_block`]); then queue its burns and schedule
//! ([`apply_burns`]). An acknowledgement ahead of this processor's scanning (the others
//! may sign a Batch before this processor scanned its block) waits at the head of the
//! queue until the scanner made its Batches.
use db::{Db, Get, WriteTxn};
use key_gen::GeneratedKeys;
use primitives::Amount;
use scanner::index::Index;
use task::{Task, TaskError};

use super::schedule::{eventuality, scheduler_error};
use super::state::*;
use super::{Pipeline, PipelineNetwork, Refusal};

/// Accepts `BlockAcknowledged` (inbox handler): refused, changing nothing, without an
/// active key or unless it continues the accepted ones ([`in_order`]); otherwise queued
/// for the [`AckTask`].
pub fn receive<N: PipelineNetwork>(
    p: &Pipeline<N>,
    txn: &mut WriteTxn,
    ack: Ack,
) -> Result<Result<(), Refusal>, TaskError> {
    if p.active(txn)?.is_none() {
        return Ok(Err(Refusal::NoActiveKey));
    }
    if let Err(refusal) = in_order(txn, &ack)? {
        return Ok(Err(refusal));
    }
    let mut receipt = ACK_RECEIPT.get(txn, &())?.unwrap_or_default();
    receipt.next_batch += ack.batches.len() as u64;
    receipt.settlement_block = ack.settlement_block;
    ACK_RECEIPT.put(txn, &(), &receipt)?;
    ACKS.push(txn, &Queued::Ack(ack))?;
    Ok(Ok(()))
}

/// Whether `ack` follows every acknowledgement already accepted: a later settlement
/// block, and Batch ids continuing exactly where theirs end (the settlement layer
/// acknowledges each Batch once, in order). Checked on receipt, so that a duplicate, a
/// stale one, or one that skips or repeats Batch ids is refused instead of waiting at the
/// head of the queue and holding every later one back. One naming Batches this processor
/// has not made yet is accepted: the scanner counts accepted acknowledgements in its
/// window, so it goes on to make them (the settlement layer, not this processor, decides
/// which Batches exist; a coordinator naming ids no honest processor will ever make stalls
/// the set, and is outside what a processor can check).
pub fn in_order(txn: &impl Get, ack: &Ack) -> Result<Result<(), Refusal>, TaskError> {
    let receipt = ACK_RECEIPT.get(txn, &())?.unwrap_or_default();
    let (next, last) = (receipt.next_batch, receipt.settlement_block);
    if ack.settlement_block <= last {
        return Ok(Err(Refusal::StaleSettlement { got: ack.settlement_block, last }));
    }
    if !ack.batches.iter().map(|id| u64::from(*id)).eq(next..next + ack.batches.len() as u64) {
        return Ok(Err(Refusal::BatchesOutOfOrder { expected: next, got: ack.batches.clone() }));
    }
    Ok(Ok(()))
}

/// What the acknowledgement task does next.
enum Step<E> {
    /// Nothing (no acknowledgement, or its Batches are not all made here yet).
    Wait,
    /// Mark the head acknowledgement's Batches acknowledged.
    Mark(Ack),
    /// Apply this block, checking these pending plans' eventualities in it.
    Block { session: u32, start: u64, number: u64, pending: Vec<([u8; 32], E)> },
    /// Every block the head acknowledgement covers is applied: its burns.
    Burns { session: u32, ack: Ack },
    /// The head is the session's rotation: record it, and forward what can be.
    Rotation { session: u32, rotation: Rotation },
}

/// Applies acknowledgements, one step per commit: the only writer of every table the
/// scheduler's state lives in, and the only reader of [`ACKS`].
#[derive(Debug)]
pub struct AckTask<N: PipelineNetwork> {
    db: Db,
    pipeline: Pipeline<N>,
}

impl<N: PipelineNetwork> AckTask<N> {
    /// The task over `pipeline`.
    pub fn new(db: Db, pipeline: Pipeline<N>) -> Self {
        AckTask { db, pipeline }
    }

    fn step(&self) -> Result<Step<N::Eventuality>, TaskError> {
        let read = self.db.read()?;
        let Some(active) = self.pipeline.active(&read)? else { return Ok(Step::Wait) };
        let Some(start) = active.start else { return Ok(Step::Wait) };
        let ack = match ACKS.peek(&read)? {
            None => return Ok(Step::Wait),
            Some((_, Queued::Rotation(rotation))) => {
                return Ok(Step::Rotation { session: active.session, rotation })
            }
            Some((_, Queued::Ack(ack))) => ack,
        };
        // The last block the acknowledgement covers (every Batch it names made here).
        let mut target = None;
        for id in &ack.batches {
            let Some((_, block)) = BATCHES.get(&read, id)? else { return Ok(Step::Wait) };
            target = target.max(Some(block));
        }
        for id in &ack.batches {
            if ACKED.get(&read, id)?.is_none() {
                return Ok(Step::Mark(ack));
            }
        }
        let number = CONFIRMED.get(&read, &())?.map_or(start, |c| c + 1);
        if Some(number) <= target {
            let events = BLOCK_EVENTS.get(&read, &number)?.ok_or_else(|| {
                TaskError::fatal(format!(
                    "block {number} is covered by an acknowledgement but was never scanned"
                ))
            })?;
            let mut all_acked = true;
            for id in &events.batches {
                all_acked &= ACKED.get(&read, id)?.is_some();
            }
            if all_acked {
                let mut pending = vec![];
                for (plan, ()) in PENDING.iter(&read)? {
                    let record = PLANS
                        .get(&read, &plan)?
                        .ok_or_else(|| TaskError::fatal("a pending plan without its record"))?;
                    pending.push((plan, eventuality::<N>(&record)?));
                }
                return Ok(Step::Block { session: active.session, start, number, pending });
            }
        }
        Ok(Step::Burns { session: active.session, ack })
    }
}

impl<N: PipelineNetwork> super::SessionTask<N> for AckTask<N> {
    fn for_session(db: Db, pipeline: Pipeline<N>) -> Self {
        AckTask::new(db, pipeline)
    }
}

impl<N: PipelineNetwork> Task for AckTask<N> {
    fn name(&self) -> &str {
        "acknowledger"
    }

    async fn run_iteration(&mut self) -> Result<bool, TaskError> {
        let p = &self.pipeline;
        match self.step()? {
            Step::Wait => Ok(false),
            Step::Mark(ack) => {
                let mut txn = self.db.write()?;
                mark_acked(&mut txn, &ack)?;
                txn.commit()?;
                Ok(true)
            }
            Step::Block { session, start, number, pending } => {
                let block = p.network.block(number).await?;
                let (plans, eventualities): (Vec<_>, Vec<_>) = pending.into_iter().unzip();
                let found = p.network.check(&block, &eventualities);
                let mut txn = self.db.write()?;
                // The block must be the one scanned (a deeper reorg is fatal).
                Index::new(start).expect(&txn, &*p.network, &block)?;
                let keys = p.keys(&txn, session)?;
                super::eventuality::apply_block(p, &mut txn, &keys, number, &plans, found)
                    .map_err(|e| {
                        crate::halt::naming(e, format!("applying acknowledged block {number}"))
                    })?;
                txn.commit()?;
                Ok(true)
            }
            Step::Burns { session, ack } => {
                let mut txn = self.db.write()?;
                let keys = p.keys(&txn, session)?;
                apply_burns(p, &mut txn, &keys, &ack).map_err(|e| {
                    crate::halt::naming(
                        e,
                        format!("the burns of settlement block {}", ack.settlement_block),
                    )
                })?;
                ACKS.pop(&mut txn)?;
                let retired = super::rotation::retire_if_done(p, &mut txn)?;
                txn.commit()?;
                tracing::info!(
                    settlement_block = ack.settlement_block,
                    batches = ?ack.batches,
                    burns = ack.burns.len(),
                    retired,
                    "acknowledgement applied"
                );
                Ok(true)
            }
            Step::Rotation { session, rotation } => {
                let mut txn = self.db.write()?;
                let keys = p.keys(&txn, session)?;
                ROTATION.put(&mut txn, &(), &rotation)?;
                // What can be forwarded at once is.
                schedule_and_plan(p, &mut txn, &keys)?;
                ACKS.pop(&mut txn)?;
                txn.commit()?;
                tracing::info!(
                    session,
                    successor = rotation.successor,
                    close_block = rotation.close_block,
                    "rotation applied: forwarding to the successor from now on"
                );
                Ok(true)
            }
        }
    }
}

/// Marks `ack`'s Batches acknowledged (the scanner's window counts them).
fn mark_acked(txn: &mut WriteTxn, ack: &Ack) -> Result<(), TaskError> {
    for id in &ack.batches {
        ACKED.put(txn, id, &ack.settlement_block)?;
    }
    let mut count = ACKED_COUNT.get(txn, &())?.unwrap_or(0);
    while ACKED.get(txn, &count)?.is_some() {
        count += 1;
    }
    ACKED_COUNT.put(txn, &(), &count)?;
    Ok(())
}

/// Queues `ack`'s burns (those this network can pay; the others recorded unpayable),
/// schedules, and plans what the funds allow.
pub fn apply_burns<N: PipelineNetwork>(
    p: &Pipeline<N>,
    txn: &mut WriteTxn,
    keys: &GeneratedKeys,
    ack: &Ack,
) -> Result<(), TaskError> {
    let mut state = SCHEDULER.get(txn, &())?.unwrap_or_default();
    let mut next_payment = NEXT_PAYMENT.get(txn, &())?.unwrap_or(0);
    let params = p.network.params();
    let coin = params.network.native_coin();
    let key = p.key(keys)?;
    for (i, burn) in ack.burns.iter().enumerate() {
        // Another coin, an address this network cannot pay or one of our own (it would come
        // back as an output nobody planned), or more than can ever exist.
        let payable = p.network.address(&burn.address).is_some_and(|a| !p.network.owns(&key, &a));
        if burn.balance.coin != coin || !payable || burn.balance.amount > Amount(params.max_money) {
            tracing::error!(
                settlement_block = ack.settlement_block,
                index = i,
                ?burn,
                "burn cannot be paid on this network; recorded"
            );
            let index = u32::try_from(i).unwrap_or(u32::MAX);
            UNPAYABLE.put(txn, &(ack.settlement_block, index), burn)?;
            continue;
        }
        state.add_payments([scheduler::Payment {
            id: next_payment,
            address: burn.address.clone(),
            amount: burn.balance.amount,
        }]);
        next_payment += 1;
    }
    SCHEDULER.put(txn, &(), &state)?;
    NEXT_PAYMENT.put(txn, &(), &next_payment)?;
    SETTLEMENT.put(txn, &(), &ack.settlement_block)?;
    schedule_and_plan(p, txn, keys)
}

/// Schedules what is queued, forwards what the session no longer needs once it has a
/// successor ([`super::rotation::forward`]), and plans the result.
fn schedule_and_plan<N: PipelineNetwork>(
    p: &Pipeline<N>,
    txn: &mut WriteTxn,
    keys: &GeneratedKeys,
) -> Result<(), TaskError> {
    let params = p.network.params();
    let mut state = SCHEDULER.get(txn, &())?.unwrap_or_default();
    let mut next_payment = NEXT_PAYMENT.get(txn, &())?.unwrap_or(0);
    let rate = p.plan_rate(LAST_RATE.get(txn, &())?.unwrap_or(params.min_fee_rate));
    let mut scheduled = state.schedule(p.limits(), &p.fees(rate)).map_err(scheduler_error)?;
    if super::rotation::forward(p, txn, &mut state, &mut next_payment, rate)? {
        let more = state.schedule(p.limits(), &p.fees(rate)).map_err(scheduler_error)?;
        scheduled.txs.extend(more.txs);
        scheduled.dropped.extend(more.dropped);
    }
    p.record_dropped(txn, &scheduled.dropped)?;
    SCHEDULER.put(txn, &(), &state)?;
    NEXT_PAYMENT.put(txn, &(), &next_payment)?;
    p.new_plans(txn, keys, scheduled.txs, rate)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ack(settlement_block: u64, batches: &[u32]) -> Ack {
        Ack { settlement_block, batches: batches.to_vec(), burns: vec![] }
    }

    fn check(db: &Db, a: &Ack) -> Result<(), Refusal> {
        in_order(&db.read().unwrap(), a).unwrap()
    }

    fn accept(db: &Db, a: &Ack) {
        let mut txn = db.write().unwrap();
        let mut receipt = ACK_RECEIPT.get(&txn, &()).unwrap().unwrap_or_default();
        receipt.next_batch += a.batches.len() as u64;
        receipt.settlement_block = a.settlement_block;
        ACK_RECEIPT.put(&mut txn, &(), &receipt).unwrap();
        ACKS.push(&mut txn, &Queued::Ack(a.clone())).unwrap();
        txn.commit().unwrap();
    }

    /// An acknowledgement that could never apply is refused on receipt, so it cannot sit
    /// at the head of the queue holding back every later one.
    #[test]
    fn acknowledgements_must_continue_the_batches_and_settlement_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path().join("p.redb"), crate::SCHEMA).unwrap().scoped(0);

        // Nothing accepted yet: the first names Batch 0 (or none: burns only).
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

        // Batches 0 and 1 accepted at settlement block 5 (not applied yet: this processor
        // may not have made them): the next must name Batch 2, at a later block.
        accept(&db, &ack(5, &[0, 1]));
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

        // Applied meanwhile (the queue emptied): the receipt cursor alone decides.
        let mut txn = db.write().unwrap();
        ACKS.pop(&mut txn).unwrap();
        txn.commit().unwrap();
        accept(&db, &ack(9, &[2]));
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
