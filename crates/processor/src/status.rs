//! What `processor status` and `/status` report, read from the database.

use bus::{Mailbox, INBOX};
use db::{DbError, Get};
use serde::{Deserialize, Serialize};

use key_gen::KeyGen;

use crate::handler::DEFERRED;

/// A point-in-time view of the processor's durable state.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct StatusReport {
    /// This processor.
    pub party: String,
    /// Messages received, not yet handled.
    pub inbox_pending: u64,
    /// Messages kept for handlers not yet available.
    pub deferred: u64,
    /// Messages sent, not yet acknowledged end to end.
    pub outbox_pending: u64,
    /// Per peer: highest sequence acknowledged and next sequence to assign.
    pub routes: Vec<Route>,
    /// Generated key pairs, by session.
    pub keys: Vec<KeyPair>,
    /// The scanning and signing pipeline of the newest live session (absent when no key
    /// is active).
    #[serde(default)]
    pub pipeline: Option<PipelineStatus>,
    /// Every live session's pipeline, oldest first (two during a key rotation, when this
    /// validator is in both sets).
    #[serde(default)]
    pub sessions: Vec<PipelineStatus>,
    /// Sessions retired here (their pipeline state removed; their key shares kept).
    #[serde(default)]
    pub retired: Vec<RetiredSession>,
    /// The fatal error that halted this processor, if one is recorded (it refuses to start
    /// until run with `--resume`).
    #[serde(default)]
    pub halted: Option<String>,
}

/// Where the pipeline stands.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PipelineStatus {
    /// The active session.
    pub session: u32,
    /// The first block scanned.
    pub start: Option<u64>,
    /// The last block scanned.
    pub scanned: Option<u64>,
    /// Batches made.
    pub batches: u32,
    /// Batches acknowledged (a contiguous prefix).
    pub batches_acknowledged: u32,
    /// The last block whose deposits were confirmed.
    pub confirmed_block: Option<u64>,
    /// The last settlement block handled.
    pub settlement_block: u64,
    /// Outputs available to the scheduler, and their sum.
    pub outputs: u64,
    /// Their sum, in the smallest unit.
    pub outputs_amount: u64,
    /// Payments waiting for funds.
    pub payments_queued: u64,
    /// Plans made.
    pub plans: u64,
    /// Plans whose eventuality has not been seen.
    pub plans_pending: u64,
    /// Signed transactions waiting to be published.
    pub to_publish: u64,
    /// Payments dropped as dust.
    pub dropped_payments: u64,
    /// Plans whose inputs an unplanned transaction spent (ALARM when non-zero).
    pub conflicts: u64,
    /// Fee bumps made for stuck plans: replacement versions and children paying for
    /// their parents (each also a plan, counted in `plans`).
    #[serde(default)]
    pub fee_bumps: u64,
    /// Deposits refunded, unattributed or dust.
    pub unreported_deposits: u64,
    /// Signing items with their highest attempt and whether complete.
    pub signing: Vec<SigningItem>,
    /// Payments of conflicted plans, held for the operator (ALARM when any).
    #[serde(default)]
    pub held: Vec<HeldPlan>,
    /// Set once the session hands over to a successor (docs/rotation.md).
    #[serde(default)]
    pub rotation: Option<RotationView>,
}

/// A session's hand-over to its successor, as this processor applied it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RotationView {
    /// `forwarding`, then `closing` once the close block is applied.
    pub stage: String,
    /// The successor's session.
    pub successor: u32,
    /// From this block on, deposits are refunded and the session may retire.
    pub close_block: u64,
}

/// A retired session.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RetiredSession {
    /// The session.
    pub session: u32,
    /// The last block its pipeline applied.
    pub block: u64,
    /// Its successor.
    pub successor: u32,
    /// Outputs left on its key, each worth less than forwarding it, and their sum.
    pub left: u64,
    /// Their sum, in the smallest unit.
    pub left_amount: u64,
    /// Its alarm counts when it retired: conflicts, unplanned spends, unpayable burns.
    pub alarms: (u64, u64, u64),
    /// Payments held for the operator when it retired (ALARM when any).
    #[serde(default)]
    pub held_payments: u64,
}

/// A conflicted plan's held payments.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct HeldPlan {
    /// The plan id, hex.
    pub plan: String,
    /// The conflicting transactions' ids, hex.
    pub txs: Vec<String>,
    /// The block it is in.
    pub block: u64,
    /// The payments held: settlement payment id, payee (hex of the address bytes),
    /// amount as ordered.
    pub payments: Vec<(u64, String, u64)>,
    /// The plan's inputs left locked (a network whose spends are not visible): output ids,
    /// hex.
    pub locked: Vec<String>,
}

/// One item being (or done being) signed.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SigningItem {
    /// `batch/<id>` or `plan/<hex>`.
    pub kind: String,
    /// The highest attempt this processor preprocessed.
    pub attempt: u32,
    /// Done.
    pub complete: bool,
}

/// Every live session's pipeline, oldest first.
fn sessions(txn: &impl Get) -> Result<Vec<PipelineStatus>, DbError> {
    let mut out = vec![];
    for (session, _) in crate::pipeline::state::LIVE.iter(txn)? {
        out.extend(pipeline(&db::in_scope(txn, session))?);
    }
    Ok(out)
}

fn pipeline(txn: &impl Get) -> Result<Option<PipelineStatus>, DbError> {
    use crate::pipeline::state::*;
    let Some(active) = ACTIVE.get(txn, &())? else { return Ok(None) };
    let state = SCHEDULER.get(txn, &())?.unwrap_or_default();
    let confirmed = CONFIRMED.get(txn, &())?;
    let signing = signers::Signers::attempts(txn, messages::Session(active.session))?
        .into_iter()
        .map(|(kind, attempt, complete)| SigningItem {
            kind: signers::attempts::kind_label(&kind),
            attempt,
            complete,
        })
        .filter(|i| !i.complete)
        .collect();
    Ok(Some(PipelineStatus {
        session: active.session,
        start: active.start,
        scanned: SCANNED.get(txn, &())?,
        batches: NEXT_BATCH.get(txn, &())?.unwrap_or(0),
        batches_acknowledged: ACKED_COUNT.get(txn, &())?.unwrap_or(0),
        confirmed_block: confirmed,
        settlement_block: SETTLEMENT.get(txn, &())?.unwrap_or(0),
        outputs: state.utxos.len() as u64,
        outputs_amount: state.utxos.iter().map(|u| u.amount.0).sum(),
        payments_queued: state.queue.len() as u64,
        plans: PLANS.iter(txn)?.len() as u64,
        plans_pending: PENDING.iter(txn)?.len() as u64,
        to_publish: TO_PUBLISH.len(txn)?,
        dropped_payments: DROPPED.iter(txn)?.len() as u64,
        conflicts: CONFLICTS.iter(txn)?.len() as u64,
        fee_bumps: (VERSION_OF.iter(txn)?.len() + CHILD_OF.iter(txn)?.len()) as u64,
        unreported_deposits: UNREPORTED.iter(txn)?.iter().map(|(_, v)| v.len() as u64).sum(),
        signing,
        held: HELD
            .iter(txn)?
            .into_iter()
            .map(|(plan, held)| HeldPlan {
                plan: hex::encode(plan),
                txs: held.txs.iter().map(hex::encode).collect(),
                block: held.block,
                payments: held
                    .payments
                    .iter()
                    .map(|p| (p.id, hex::encode(p.address.as_bytes()), p.amount.0))
                    .collect(),
                locked: held.locked.iter().map(|u| hex::encode(&u.id)).collect(),
            })
            .collect(),
        rotation: ROTATION.get(txn, &())?.map(|r| RotationView {
            stage: if confirmed.is_some_and(|c| c >= r.close_block) {
                "closing"
            } else {
                "forwarding"
            }
            .into(),
            successor: r.successor,
            close_block: r.close_block,
        }),
    }))
}

/// A generated key pair (public data only).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeyPair {
    /// The validator set's session.
    pub session: u32,
    /// The attempt that produced it.
    pub attempt: u32,
    /// Signers needed.
    pub threshold: u16,
    /// The validators holding shares.
    pub participants: Vec<u16>,
    /// The Ristretto group key, hex.
    pub ristretto_key: String,
    /// The network group key, hex.
    pub network_key: String,
    /// Confirmed by the coordinator: active.
    pub active: bool,
}

/// One outgoing route.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Route {
    /// The peer's database code.
    pub peer: u32,
    /// Highest sequence the peer acknowledged.
    pub acked: u64,
    /// Next sequence to assign.
    pub next: u64,
}

impl StatusReport {
    /// Reads the report in one read transaction.
    pub fn read(party: String, txn: &impl Get) -> Result<Self, DbError> {
        let sessions = sessions(txn)?;
        Ok(StatusReport {
            party,
            inbox_pending: INBOX.len(txn)?,
            deferred: DEFERRED.len(txn)?,
            outbox_pending: Mailbox::pending(txn)?.len() as u64,
            routes: Mailbox::routes(txn)?
                .into_iter()
                .map(|(peer, acked, next)| Route { peer, acked, next })
                .collect(),
            keys: KeyGen::all_generated(txn)?
                .into_iter()
                .map(|(session, g)| KeyPair {
                    session,
                    attempt: g.attempt,
                    threshold: g.threshold,
                    participants: g.participants,
                    ristretto_key: hex::encode(g.ristretto_key),
                    network_key: hex::encode(g.network_key),
                    active: g.confirmed,
                })
                .collect(),
            pipeline: sessions.last().cloned(),
            sessions,
            retired: crate::pipeline::state::RETIRED
                .iter(txn)?
                .into_iter()
                .map(|(session, r)| RetiredSession {
                    session,
                    block: r.block,
                    successor: r.successor,
                    left: r.left.len() as u64,
                    left_amount: r.left.iter().map(|(_, a)| a.0).sum(),
                    alarms: (r.conflicts, r.unplanned_spends, r.unpayable),
                    held_payments: r.held.iter().map(|(_, h)| h.payments.len() as u64).sum(),
                })
                .collect(),
            halted: crate::halt::HALT.get(txn, &())?.map(|h| h.to_string()),
        })
    }

    /// Lines for a terminal.
    pub fn human(&self) -> String {
        let mut out = format!(
            "processor      {}\ninbox pending  {}\ndeferred       {}\noutbox pending {}\n",
            self.party, self.inbox_pending, self.deferred, self.outbox_pending
        );
        if let Some(halt) = &self.halted {
            out += &format!("HALTED         {halt}\n");
        }
        for k in &self.keys {
            out += &format!(
                "session {} key ({}-of-{:?}, attempt {}){}: ristretto {} network {}\n",
                k.session,
                k.threshold,
                k.participants,
                k.attempt,
                if self.retired.iter().any(|r| r.session == k.session) {
                    " RETIRED"
                } else if k.active {
                    " ACTIVE"
                } else {
                    " awaiting confirmation"
                },
                k.ristretto_key,
                k.network_key
            );
        }
        for p in &self.sessions {
            out += &format!(
                "pipeline       session {}, scanned {} (from {}), batches {} ({} acknowledged), confirmed block {}, settlement block {}\n\
                 scheduler      {} outputs ({} units), {} payments queued, {} dropped as dust\n\
                 plans          {} made, {} pending, {} to publish, {} fee bumps, {} conflicts{}\n\
                 deposits       {} not reported (refund, unattributed or dust)\n",
                p.session,
                p.scanned.map_or("-".into(), |s| s.to_string()),
                p.start.map_or("-".into(), |s| s.to_string()),
                p.batches,
                p.batches_acknowledged,
                p.confirmed_block.map_or("-".into(), |s| s.to_string()),
                p.settlement_block,
                p.outputs,
                p.outputs_amount,
                p.payments_queued,
                p.dropped_payments,
                p.plans,
                p.plans_pending,
                p.to_publish,
                p.fee_bumps,
                p.conflicts,
                if p.conflicts > 0 { " (ALARM)" } else { "" },
                p.unreported_deposits,
            );
            if let Some(r) = &p.rotation {
                out += &format!(
                    "rotation       {}: to session {}, closing at block {}\n",
                    r.stage, r.successor, r.close_block
                );
            }
            for i in &p.signing {
                out += &format!("signing        {} attempt {}\n", i.kind, i.attempt);
            }
            for h in &p.held {
                let total: u64 = h.payments.iter().map(|(_, _, amount)| amount).sum();
                out += &format!(
                    "held (ALARM)   plan {}: {} payments ({} units) after conflicting tx {} in block {}; see docs/operations.md (Held payments)\n",
                    h.plan,
                    h.payments.len(),
                    total,
                    h.txs.join(", "),
                    h.block
                );
                for output in &h.locked {
                    out += &format!(
                        "                 input {output} left locked (spends not visible)\n"
                    );
                }
                for (id, address, amount) in &h.payments {
                    out += &format!("                 payment {id}: {amount} units to {address}\n");
                }
            }
        }
        for r in &self.retired {
            out += &format!(
                "retired        session {} at block {} (to session {}); {} outputs ({} units) left behind; alarms (conflicts, unplanned spends, unpayable) {:?}; {} payments held{}\n",
                r.session,
                r.block,
                r.successor,
                r.left,
                r.left_amount,
                r.alarms,
                r.held_payments,
                if r.held_payments > 0 { " (ALARM)" } else { "" }
            );
        }
        for r in &self.routes {
            out +=
                &format!("route to {:#010x}: acked through {}, next {}\n", r.peer, r.acked, r.next);
        }
        out
    }
}

/// One planned transaction, as `/plans` shows it: what it pays and what it cost.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PlanView {
    /// The session whose key signs it.
    #[serde(default)]
    pub session: u32,
    /// The plan id (hex).
    pub id: String,
    /// Outputs spent.
    pub inputs: usize,
    /// Payments made directly.
    pub payments: Vec<PaidView>,
    /// Branch outputs (funding later transactions of a payment tree).
    pub branches: usize,
    /// Change back to the group.
    pub change: Option<u64>,
    /// The transaction's fee.
    pub fee: u64,
    /// Whether its eventuality was seen on chain.
    pub completed: bool,
    /// The transaction that completed it (hex of the network's id), once seen: for a plan
    /// with fee-bump versions, the version that was mined (the others are superseded).
    #[serde(default)]
    pub tx: Option<String>,
    /// Set on a fee-bump version: its original plan (hex). A version has its plan's
    /// inputs, payments and branches at a higher fee: count a plan's payments once.
    #[serde(default)]
    pub version_of: Option<String>,
    /// Set on a child paying for a stuck plan: that plan (hex).
    #[serde(default)]
    pub child_of: Option<String>,
}

/// One payment of a plan.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PaidView {
    /// The payment's position in the settlement layer's order.
    pub payment: u64,
    /// The payee (the network's address encoding, hex).
    pub address: String,
    /// What was owed.
    pub amount: u64,
    /// Its fee share.
    pub fee: u64,
    /// What the payee receives.
    pub net: u64,
}

/// Every plan of every live session, by session and id: the inspection API (`GET
/// /plans`) that tools read instead of the processor's tables.
pub fn plans(txn: &impl Get) -> Result<Vec<PlanView>, DbError> {
    let mut out = vec![];
    for (session, _) in crate::pipeline::state::LIVE.iter(txn)? {
        out.extend(session_plans(&db::in_scope(txn, session), session)?);
    }
    Ok(out)
}

fn session_plans(txn: &impl Get, session: u32) -> Result<Vec<PlanView>, DbError> {
    use crate::pipeline::state::{CHILD_OF, PLANS, VERSION_OF};
    let mut out = vec![];
    for (id, record) in PLANS.iter(txn)? {
        out.push(PlanView {
            session,
            id: hex::encode(id),
            inputs: record.tx.inputs.len(),
            payments: record
                .tx
                .payments
                .iter()
                .map(|p| PaidView {
                    payment: p.payment.id,
                    address: hex::encode(p.payment.address.as_bytes()),
                    amount: p.payment.amount.0,
                    fee: p.fee.0,
                    net: p.net.0,
                })
                .collect(),
            branches: record.tx.branches.len(),
            change: record.tx.change.map(|c| c.0),
            fee: record.tx.fee.0,
            completed: record.completed.is_some(),
            tx: record.completed.as_ref().map(hex::encode),
            version_of: VERSION_OF.get(txn, &id)?.map(hex::encode),
            child_of: CHILD_OF.get(txn, &id)?.map(hex::encode),
        });
    }
    Ok(out)
}
