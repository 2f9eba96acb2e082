//! A session's hand-over to its successor (docs/rotation.md): the rotation received,
//! funds forwarded, deposits refunded once closing, and retirement.
//!
//! Every decision here is made by the acknowledgement task while it applies the
//! session's acknowledgements, from what they carry and the session's own state, so every
//! processor of the set forwards the same outputs, refunds the same deposits and retires
//! at the same acknowledgement.
use db::{Get, WriteTxn};
use messages::{ProcessorMessage, SettlementReport};
use scanner::ReceivedOutput;
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

/// Where a deposit to a closing session goes back to: the return address its instruction
/// names, else the address it came from (as for a deposit without a valid instruction),
/// if this network can pay it and it is not one of ours. `None`: kept (and forwarded).
pub fn refund_to<N: PipelineNetwork>(
    p: &Pipeline<N>,
    key: &N::Key,
    output: &N::Output,
) -> Option<primitives::ExternalAddress> {
    let named = match output.instruction() {
        scanner::Instruction::Valid(i) => i.return_address.clone(),
        _ => None,
    };
    [named, output.refund_address().cloned()]
        .into_iter()
        .flatten()
        .find(|to| p.network.address(to).is_some_and(|a| !p.network.owns(key, &a)))
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
/// pending, no output worth forwarding (payments held for the operator are kept in the
/// record); all of it the same on
/// every key holder (nothing local, such as the publish queue, decides). Reports it,
/// records it in [`RETIRED`] and removes it from [`LIVE`]; its tasks then stop, and the
/// last of them to stop deletes its pipeline state ([`prune`]). Returns whether it
/// retired.
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
    // Payments held for the operator do not count: each operator releases them on its own
    // processor, so they would make the processors retire at different points. They are
    // kept in the retirement record instead.
    let busy = !state.queue.is_empty()
        || !PENDING.iter(txn)?.is_empty()
        || state.forwardable(p.limits(), &p.fees(rate), &rotation.forward_to).is_some();
    if busy {
        return Ok(false);
    }
    let scope = txn.scope().ok_or_else(|| TaskError::fatal("retiring outside a scope"))?;
    if scope != p.session {
        return Err(TaskError::fatal(format!("retiring session {} in scope {scope}", p.session)));
    }
    let left: Vec<(Vec<u8>, primitives::Amount)> =
        state.utxos.iter().map(|u| (u.id.clone(), u.amount)).collect();
    let retired = Retired {
        block,
        successor: rotation.successor,
        left: left.clone(),
        conflicts: CONFLICTS.iter(txn)?.len() as u64,
        unplanned_spends: UNPLANNED_SPENDS.iter(txn)?.len() as u64,
        unpayable: UNPAYABLE.iter(txn)?.len() as u64,
        held: HELD.iter(txn)?,
    };
    let session = messages::Session(p.session);
    p.send(txn, ProcessorMessage::Settlement(SettlementReport::Retired { session, block }))?;
    RETIRED.put(txn, &p.session, &retired)?;
    LIVE.del(txn, &p.session)?;
    tracing::info!(
        session = p.session,
        successor = rotation.successor,
        block,
        left = left.len(),
        "session retired: everything forwarded or paid; its pipeline stops and its state is removed (its key shares are kept)"
    );
    Ok(true)
}

/// Deletes a retired session's pipeline state: every [`SCOPED`] table and queue of its
/// scope. Idempotent. Run once none of its tasks runs any more (the last to stop, or at
/// start-up, for a session that retired before a restart). Returns the entries removed.
pub fn prune(db: &db::Db, session: u32) -> Result<u64, TaskError> {
    let mut txn = db.write()?;
    let mut removed = 0;
    for prefix in SCOPED {
        removed += txn.del_range_raw(&db::scope_namespace(prefix, session))?;
    }
    if removed > 0 {
        txn.commit()?;
        tracing::info!(session, removed, "a retired session's pipeline state removed");
    }
    Ok(removed)
}

/// [`prune`] for every retired session (at start-up, before any task runs).
pub fn prune_retired(db: &db::Db) -> Result<(), TaskError> {
    for (session, _) in RETIRED.iter(&db.read()?)? {
        prune(db, session)?;
    }
    Ok(())
}
