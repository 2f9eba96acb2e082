//! A session's hand-over to its successor (docs/rotation.md): the rotation received,
//! funds forwarded, deposits refunded once closing, and retirement.
//!
//! Every decision here is made by the acknowledgement task while it applies the
//! session's acknowledgements, from what they carry and the session's own state, so every
//! processor of the set forwards the same outputs, refunds the same deposits and retires
//! at the same acknowledgement.
use db::{Get, WriteTxn};
use messages::{ProcessorMessage, SettlementReport};
use scheduler::State;
use task::TaskError;

use super::state::*;
use super::{Pipeline, PipelineNetwork, Refusal};

/// Accepts `Rotation` (inbox handler, in the session's scope): queued behind the
/// acknowledgements already accepted. Refused, changing nothing, if the session already
/// has one, if the successor is not a later session, or if its key is not one of this
/// network.
pub fn receive<N: PipelineNetwork>(
    p: &Pipeline<N>,
    txn: &mut WriteTxn,
    successor: u32,
    successor_key: &[u8],
    close_block: u64,
) -> Result<Result<(), Refusal>, TaskError> {
    if successor <= p.session {
        return Ok(Err(Refusal::BadRotation(format!(
            "successor session {successor} is not after {}",
            p.session
        ))));
    }
    let Some(forward_to) = p.network.forward_address(successor_key) else {
        return Ok(Err(Refusal::BadRotation(format!(
            "the successor's key {} is not a key of this network",
            hex::encode(successor_key)
        ))));
    };
    let queued = ACKS.items(txn)?.into_iter().any(|(_, q)| matches!(q, Queued::Rotation(_)));
    if queued || ROTATION.get(txn, &())?.is_some() {
        return Ok(Err(Refusal::BadRotation("the session already has a successor".into())));
    }
    let rotation = Rotation { successor, forward_to, close_block };
    ACKS.push(txn, &Queued::Rotation(rotation))?;
    tracing::info!(
        session = p.session,
        successor,
        close_block,
        "rotation received: this session's funds go to its successor"
    );
    Ok(Ok(()))
}

/// Whether block `number`, being applied, is in the session's closing stage: its deposits
/// are refunded, not credited (the settlement layer credits none of them).
pub fn closing(txn: &impl Get, number: u64) -> Result<bool, TaskError> {
    Ok(ROTATION.get(txn, &())?.is_some_and(|r| number >= r.close_block))
}

/// Once the session has a successor and owes nothing more: queues one payment moving the
/// best outputs to the successor's Forwarded address (the scheduler then spends exactly
/// those, fee taken from the amount). Returns whether it queued one.
pub fn forward<N: PipelineNetwork>(
    p: &Pipeline<N>,
    txn: &impl Get,
    state: &mut State,
    next_payment: &mut u64,
    rate: u64,
) -> Result<bool, TaskError> {
    let Some(rotation) = ROTATION.get(txn, &())? else { return Ok(false) };
    if !state.queue.is_empty() {
        return Ok(false);
    }
    let Some((outputs, amount)) =
        state.forwardable(p.limits(), &p.fees(rate), &rotation.forward_to)
    else {
        return Ok(false);
    };
    state.add_payments([scheduler::Payment {
        id: *next_payment,
        address: rotation.forward_to.clone(),
        amount,
    }]);
    *next_payment += 1;
    p.metrics.forwards.inc();
    tracing::info!(
        session = p.session,
        successor = rotation.successor,
        outputs = outputs.len(),
        amount = amount.0,
        "forwarding to the successor"
    );
    Ok(true)
}

/// Retires the session if it is closing and nothing is left: no payment queued, no plan
/// pending or waiting to be published, no output worth forwarding. Reports it, records
/// it in [`RETIRED`], removes it from [`LIVE`] and deletes its pipeline state (every
/// [`SCOPED`] table of its scope). Returns whether it retired.
pub fn retire_if_done<N: PipelineNetwork>(
    p: &Pipeline<N>,
    txn: &mut WriteTxn,
) -> Result<bool, TaskError> {
    let Some(rotation) = ROTATION.get(txn, &())? else { return Ok(false) };
    let Some(block) = CONFIRMED.get(txn, &())? else { return Ok(false) };
    if block < rotation.close_block {
        return Ok(false);
    }
    let state = SCHEDULER.get(txn, &())?.unwrap_or_default();
    let rate = p.plan_rate(LAST_RATE.get(txn, &())?.unwrap_or(p.network.params().min_fee_rate));
    let busy = !state.queue.is_empty()
        || !PENDING.iter(txn)?.is_empty()
        || !TO_PUBLISH.is_empty(txn)?
        || state.forwardable(p.limits(), &p.fees(rate), &rotation.forward_to).is_some();
    if busy {
        return Ok(false);
    }
    let left: Vec<(Vec<u8>, primitives::Amount)> =
        state.utxos.iter().map(|u| (u.id.clone(), u.amount)).collect();
    let session = messages::Session(p.session);
    p.send(txn, ProcessorMessage::Settlement(SettlementReport::Retired { session, block }))?;
    let scope = txn.scope().ok_or_else(|| TaskError::fatal("retiring outside a scope"))?;
    if scope != p.session {
        return Err(TaskError::fatal(format!("retiring session {} in scope {scope}", p.session)));
    }
    RETIRED.put(
        txn,
        &p.session,
        &Retired { block, successor: rotation.successor, left: left.clone() },
    )?;
    LIVE.del(txn, &p.session)?;
    let mut removed = 0;
    for prefix in SCOPED {
        removed += txn.del_range_raw(&db::scope_namespace(prefix, p.session))?;
    }
    tracing::info!(
        session = p.session,
        successor = rotation.successor,
        block,
        left = left.len(),
        removed,
        "session retired: everything forwarded or paid; its pipeline state is removed (its key shares are kept)"
    );
    Ok(true)
}
