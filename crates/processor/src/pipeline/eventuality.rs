//! Eventualities and a block's effects: applied by the acknowledgement task, one block per
//! commit, in block order, once acknowledgements cover the block.
//!
//! A block's completions and conflicts are what [`scanner::Network::check`] finds for the
//! plans pending when the block is applied; its change and forwarded outputs become funds;
//! the branch outputs of a completed plan fund the payments it fanned out to; its deposits
//! are confirmed and its refunds queued.
use std::collections::BTreeSet;

use db::WriteTxn;
use key_gen::GeneratedKeys;
use messages::SignKind;
use primitives::Amount;
use scanner::{Completion, OutputKind, ReceivedOutput};
use scheduler::{State, Utxo};
use task::TaskError;

use super::schedule::{scheduler_error, stored_output};
use super::state::*;
use super::{bump, Pipeline, PipelineNetwork};

/// A plan completed on chain, with the transaction that completed it.
type CompletedPlan = ([u8; 32], Vec<u8>);
/// A plan conflicted on chain, with the transactions that spent its inputs.
type ConflictedPlan = ([u8; 32], Vec<Vec<u8>>);

/// Records what `check` found in block `number` for the `pending` plans (in the order
/// their eventualities were given). Returns the plans completed and the plans conflicted,
/// each with its transaction.
fn completions<N: PipelineNetwork>(
    p: &Pipeline<N>,
    txn: &mut WriteTxn,
    number: u64,
    pending: &[[u8; 32]],
    found: Vec<Completion>,
) -> Result<(Vec<CompletedPlan>, Vec<ConflictedPlan>), TaskError> {
    let mut named = vec![];
    for completion in found {
        let (Completion::Completed { index, .. } | Completion::Conflict { index, .. }) =
            &completion;
        let plan = *pending.get(*index).ok_or_else(|| {
            TaskError::fatal(format!(
                "the network's check named eventuality {index} of {}",
                pending.len()
            ))
        })?;
        named.push((plan, completion));
    }
    // A plan and its fee-bump versions spend the same inputs: once one of them is mined,
    // the others' spends are their sibling's, not a conflict.
    let mut done = BTreeSet::new();
    for (plan, completion) in &named {
        if matches!(completion, Completion::Completed { .. }) {
            done.insert(bump::root(txn, plan)?);
        }
    }
    let session = |p: &Pipeline<N>, txn: &WriteTxn| -> Result<u32, TaskError> {
        Ok(p.active(txn)?
            .ok_or_else(|| TaskError::fatal("a plan completed without an active key"))?
            .session)
    };
    let mut completed = vec![];
    let mut conflicted: Vec<ConflictedPlan> = vec![];
    for (plan, completion) in named {
        let root = bump::root(txn, &plan)?;
        match completion {
            Completion::Completed { tx, .. } => {
                let mut record = PLANS
                    .get(txn, &plan)?
                    .ok_or_else(|| TaskError::fatal("a pending plan without its record"))?;
                if record.completed.is_some() {
                    continue;
                }
                record.completed = Some(tx.clone());
                PLANS.put(txn, &plan, &record)?;
                PENDING.del(txn, &plan)?;
                BROADCAST.del(txn, &plan)?;
                p.metrics.plans_completed.inc();
                p.metrics.plan_final_seconds.end(p.session, &plan);
                p.complete_signing(txn, SignKind::Plan(plan))?;
                tracing::info!(plan = %hex::encode(plan), tx = %p.network_tx(&tx), block = number, "plan completed on chain");
                // Reported once seen here, final (by the signers again, after their report
                // at publication): the coordinator believes a plan complete once a
                // threshold of key holders report the same transaction.
                let session = session(p, txn)?;
                p.send(txn, super::sign::completed(session, plan, tx.clone()))?;
                if plan != root {
                    let original = PLANS
                        .get(txn, &root)?
                        .ok_or_else(|| TaskError::fatal("a fee bump without its plan"))?;
                    let extra = record.tx.fee.0.saturating_sub(original.tx.fee.0);
                    p.metrics.fee_bump_paid.inc_by(extra);
                    tracing::info!(plan = %hex::encode(root), version = %hex::encode(plan), extra_fee = extra, "a fee bump was mined");
                }
                for sibling in bump::family(txn, &root)? {
                    if sibling != plan {
                        supersede(p, txn, session, sibling, &tx)?;
                    }
                }
                // A child spending the original's change, when a version was mined
                // instead: that change never exists.
                if plan != root {
                    if let Some(child) = CHILD.get(txn, &root)? {
                        supersede(p, txn, session, child, &tx)?;
                    }
                }
                if CHILD_OF.get(txn, &plan)?.is_some() {
                    // A child's whole fee is what it paid to lift its parent.
                    p.metrics.fee_bump_paid.inc_by(record.tx.fee.0);
                }
                completed.push((plan, tx));
            }
            Completion::Conflict { tx, .. } => {
                if done.contains(&root) {
                    continue;
                }
                // Several inputs of one plan spent in one block are one conflict, with
                // every conflicting transaction recorded.
                if let Some((_, txs)) = conflicted.iter_mut().find(|(r, _)| *r == root) {
                    if !txs.contains(&tx) {
                        txs.push(tx);
                    }
                    continue;
                }
                tracing::error!(plan = %hex::encode(root), tx = %p.network_tx(&tx), block = number, "ALARM: a transaction we did not plan spent a planned input");
                p.metrics.conflicts.inc();
                // It can never complete now: no more checks, no more signing, and the
                // coordinator is told which transaction ended it (every key holder names
                // the same one, from the same block), so it stops asking for attempts.
                let session = session(p, txn)?;
                // Its versions, and a child spending its change (which will never exist).
                let mut members = bump::family(txn, &root)?;
                members.extend(CHILD.get(txn, &root)?);
                for member in members {
                    CONFLICTS.put(txn, &member, &tx)?;
                    BROADCAST.del(txn, &member)?;
                    PENDING.del(txn, &member)?;
                    p.complete_signing(txn, SignKind::Plan(member))?;
                    p.send(txn, super::sign::completed(session, member, tx.clone()))?;
                }
                conflicted.push((root, vec![tx]));
            }
        }
    }
    Ok((completed, conflicted))
}

/// A version of a plan another version completed: done, by that transaction.
fn supersede<N: PipelineNetwork>(
    p: &Pipeline<N>,
    txn: &mut WriteTxn,
    session: u32,
    plan: [u8; 32],
    tx: &[u8],
) -> Result<(), TaskError> {
    let Some(mut record) = PLANS.get(txn, &plan)? else { return Ok(()) };
    if record.completed.is_some() {
        return Ok(());
    }
    record.completed = Some(tx.to_vec());
    PLANS.put(txn, &plan, &record)?;
    PENDING.del(txn, &plan)?;
    BROADCAST.del(txn, &plan)?;
    BRANCHES.del(txn, &plan)?;
    p.complete_signing(txn, SignKind::Plan(plan))?;
    p.send(txn, super::sign::completed(session, plan, tx.to_vec()))?;
    tracing::info!(plan = %hex::encode(plan), tx = %p.network_tx(tx), "superseded by another version of its plan");
    Ok(())
}

/// Forgets the held payments of `plan` (`processor release-held`, the processor stopped).
/// Returns what was held, if anything.
pub fn release_held(db: &db::Db, plan: [u8; 32]) -> Result<Option<Held>, db::DbError> {
    let mut txn = db.write()?;
    // The plan's session is whichever live one holds it.
    for (session, _) in LIVE.iter(&txn)? {
        txn.set_scope(Some(session));
        let held = HELD.get(&txn, &plan)?;
        if held.is_some() {
            HELD.del(&mut txn, &plan)?;
            txn.commit()?;
            return Ok(held);
        }
    }
    Ok(None)
}

/// What a conflict leaves of a plan, decided from the block alone so that every
/// processor decides the same: its inputs the block did not spend are funds again (the
/// planned transaction can never be mined), and its payments, with those its branch
/// outputs were to fund, are held for the operator ([`HELD`]). They are not re-queued:
/// the conflicting transaction was signed with the group's keys outside the protocol, and
/// whether it (or another like it) paid them is not visible to the generic pipeline
/// (Monero hides payees), so re-queuing could pay twice. Where spends are not visible
/// ([`scanner::Network::spends_visible`]), no input is freed: which were spent is unknown.
/// docs/operations.md says what the operators do.
fn hold_conflicted<N: PipelineNetwork>(
    p: &Pipeline<N>,
    txn: &mut WriteTxn,
    number: u64,
    conflicted: &[ConflictedPlan],
    events: &BlockEvents,
    state: &mut State,
) -> Result<(), TaskError> {
    let spent: BTreeSet<&Vec<u8>> = events.spends.iter().map(|s| &s.output).collect();
    let visible = p.network.spends_visible();
    for (plan, txs) in conflicted {
        let record = PLANS
            .get(txn, plan)?
            .ok_or_else(|| TaskError::fatal("a conflicted plan without its record"))?;
        let (mut released, mut locked) = (vec![], vec![]);
        for input in &record.tx.inputs {
            if !visible {
                locked.push(input.clone());
            } else if !spent.contains(&input.id) {
                PLAN_BY_INPUT.del(txn, &input.id)?;
                released.push(input.clone());
            }
        }
        state.add_utxos(released.clone()).map_err(scheduler_error)?;
        // As the settlement layer ordered them: a branch's payments carry their amounts
        // net of the fee shares taken before it.
        let mut payments: Vec<scheduler::Payment> =
            record.tx.payments.iter().map(|paid| paid.payment.clone()).collect();
        for branch in BRANCHES.get(txn, plan)?.unwrap_or_default() {
            for (mut payment, fee) in branch.payments.into_iter().zip(branch.fees_so_far) {
                payment.amount = Amount(payment.amount.0.saturating_add(fee.0));
                payments.push(payment);
            }
        }
        for member in bump::family(txn, plan)? {
            BRANCHES.del(txn, &member)?;
        }
        let total: u64 = payments.iter().map(|payment| payment.amount.0).sum();
        p.metrics.payments_held.inc_by(payments.len() as u64);
        let shown: Vec<String> = txs.iter().map(|tx| p.network_tx(tx)).collect();
        tracing::error!(
            plan = %hex::encode(plan),
            txs = ?shown,
            block = number,
            payments = payments.len(),
            total,
            released = released.len(),
            locked = locked.len(),
            "ALARM: payments held: the conflicting transaction may have paid them, so they are not re-queued; check on chain, then see docs/operations.md (Held payments); `processor status` lists them"
        );
        let held = Held { txs: txs.clone(), block: number, payments, released, locked };
        HELD.put(txn, plan, &held)?;
    }
    Ok(())
}

/// Our outputs the block spends: gone from the scheduler; an ALARM for any no plan of
/// ours spends (a planned one's completion or conflict comes from the eventuality check).
fn spends<N: PipelineNetwork>(
    p: &Pipeline<N>,
    txn: &mut WriteTxn,
    number: u64,
    events: &BlockEvents,
    state: &mut State,
) -> Result<(), TaskError> {
    for spend in &events.spends {
        state.utxos.retain(|u| u.id != spend.output);
        if PLAN_BY_INPUT.get(txn, &spend.output)?.is_none() {
            tracing::error!(output = %hex::encode(&spend.output), tx = %p.network_tx(&spend.tx), block = number, "ALARM: one of our outputs was spent without a plan");
            p.metrics.conflicts.inc();
            UNPLANNED_SPENDS.put(txn, &spend.output, &spend.tx)?;
        }
    }
    Ok(())
}

/// The branch outputs of each completed plan fund the branches it planned: each planned
/// branch, in plan order, takes the first output of its transaction to our branch key
/// with exactly its amount not taken yet (in the order the block lists them). No order of
/// outputs is assumed (Monero's transactions shuffle theirs), and two outputs of one
/// amount are interchangeable: either funds the same branch exactly. An output to our
/// branch key left over (a payment someone ordered to our own branch address) is kept as
/// funds by the caller. Returns the transactions funded and the outputs used.
fn fund_branches<N: PipelineNetwork>(
    p: &Pipeline<N>,
    txn: &mut WriteTxn,
    completed: &[CompletedPlan],
    events: &BlockEvents,
    rate: u64,
    state: &mut State,
) -> Result<(Vec<scheduler::Tx>, BTreeSet<Vec<u8>>), TaskError> {
    let mut funded = vec![];
    let mut used = BTreeSet::new();
    for (plan, tx) in completed {
        let Some(branches) = BRANCHES.get(txn, plan)? else { continue };
        let outs: Vec<&Internal> = events
            .internal
            .iter()
            .filter(|o| o.kind == OutputKind::Branch && &o.tx == tx)
            .collect();
        let mut taken = vec![false; outs.len()];
        for branch in branches {
            let Some(position) =
                (0..outs.len()).find(|i| !taken[*i] && outs[*i].amount == branch.amount)
            else {
                // The completing transaction is the planned one (its eventuality matched),
                // so it has the planned outputs: one missing must not fund the wrong
                // payments.
                return Err(TaskError::fatal(format!(
                    "plan {} completed without a branch output of {} (its transaction has {:?}): its transaction is not the planned one",
                    hex::encode(plan),
                    branch.amount.0,
                    outs.iter().map(|o| o.amount.0).collect::<Vec<_>>()
                )));
            };
            taken[position] = true;
            let out = outs[position];
            let utxo = Utxo { id: out.output.clone(), amount: out.amount };
            let s = scheduler::fund_branch(branch, utxo, p.limits(), &p.fees(rate))
                .map_err(scheduler_error)?;
            p.record_dropped(txn, &s.dropped)?;
            state.add_utxos(s.unused).map_err(scheduler_error)?;
            funded.extend(s.txs);
            used.insert(out.output.clone());
        }
        let extra = taken.iter().filter(|t| !**t).count();
        if extra > 0 {
            tracing::warn!(plan = %hex::encode(plan), extra, "a plan paid our own branch key: the extra outputs are kept as funds");
        }
        BRANCHES.del(txn, plan)?;
    }
    Ok((funded, used))
}

/// Applies block `number`: `found` is what the eventuality check found in it for the
/// `pending` plans. Everything in `txn`; the caller commits.
pub fn apply_block<N: PipelineNetwork>(
    p: &Pipeline<N>,
    txn: &mut WriteTxn,
    keys: &GeneratedKeys,
    number: u64,
    pending: &[[u8; 32]],
    found: Vec<Completion>,
) -> Result<(), TaskError> {
    let events = BLOCK_EVENTS
        .get(txn, &number)?
        .ok_or_else(|| TaskError::fatal(format!("block {number} applied but never scanned")))?;
    let mut state = SCHEDULER.get(txn, &())?.unwrap_or_default();
    // Bounded here too, not only when scanned: a rate recorded by an older build or under
    // other bounds must not make this processor's plans differ from the set's.
    let rate = p.plan_rate(events.rate);

    let (completed, conflicted) = completions(p, txn, number, pending, found)?;
    spends(p, txn, number, &events, &mut state)?;
    hold_conflicted(p, txn, number, &conflicted, &events, &mut state)?;
    let (funded, used) = fund_branches(p, txn, &completed, &events, rate, &mut state)?;
    // Change, forwarded funds, and branch outputs no plan of ours made, are funds.
    for o in events.internal.iter().filter(|o| !used.contains(&o.output)) {
        // A change output a child plan spends (planned before it existed) is not funds.
        if PLAN_BY_INPUT.get(txn, &o.output)?.is_some() {
            continue;
        }
        if o.kind == OutputKind::Branch {
            tracing::warn!(output = %hex::encode(&o.output), "a branch output no plan made: kept as funds");
        }
        state
            .add_utxos([Utxo { id: o.output.clone(), amount: o.amount }])
            .map_err(scheduler_error)?;
    }
    // Deposits confirmed; refunds queued (paid when the acknowledgement's burns are). A
    // closing session's deposits were credited by nobody: refunded where the depositor is
    // known, kept (and forwarded) otherwise.
    let closing = super::rotation::closing(txn, number)?;
    let key = p.key(keys)?;
    let mut refunds = events.refunds.clone();
    for id in &events.reported {
        let o = stored_output::<N>(txn, id)?;
        match closing.then(|| super::rotation::refund_to(p, &key, &o)).flatten() {
            Some(to) => {
                p.metrics.closing_refunds.inc();
                tracing::info!(output = %hex::encode(id), block = number, "a deposit to a closing session: refunded");
                refunds.push((id.clone(), to));
            }
            None => {
                state
                    .add_utxos([Utxo { id: o.id(), amount: o.amount() }])
                    .map_err(scheduler_error)?;
            }
        }
    }
    let mut next_payment = NEXT_PAYMENT.get(txn, &())?.unwrap_or(0);
    for (id, to) in &refunds {
        let o = stored_output::<N>(txn, id)?;
        state.add_utxos([Utxo { id: o.id(), amount: o.amount() }]).map_err(scheduler_error)?;
        state.add_payments([scheduler::Payment {
            id: next_payment,
            address: to.clone(),
            amount: o.amount(),
        }]);
        next_payment += 1;
    }
    if !events.reported.is_empty() || !events.refunds.is_empty() {
        tracing::info!(
            block = number,
            reported = events.reported.len(),
            refunds = events.refunds.len(),
            "deposits confirmed"
        );
    }
    NEXT_PAYMENT.put(txn, &(), &next_payment)?;
    SCHEDULER.put(txn, &(), &state)?;
    LAST_RATE.put(txn, &(), &rate)?;
    BLOCK_EVENTS.del(txn, &number)?;
    CONFIRMED.put(txn, &(), &number)?;
    p.new_plans(txn, keys, funded, rate)?;
    p.bump_stuck(txn, keys, number, rate)
}
