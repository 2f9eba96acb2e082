//! Every table of the pipeline, declared in one place. Writers and readers of each are
//! listed in docs/db-schema.md §3.2; the queues and the tables with more than one writer
//! say so here.
//!
//! Every table and queue here except [`LIVE`] is scoped by session
//! ([`db::Table::scoped`]): each session's pipeline has its own, in transactions scoped
//! to it (docs/rotation.md §1). [`SCOPED`] lists them, with the scanner's index, so a
//! retired session's state can be removed whole.
use borsh::{BorshDeserialize, BorshSerialize};
use db::{Queue, Table};
use primitives::{Amount, Batch, ExternalAddress};
use scanner::{OutputKind, Spend};
use scheduler::{Branch, Dropped, Tx};

/// The active key: set when the coordinator confirms a key pair.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Active {
    /// Its session.
    pub session: u32,
    /// Our 1-based participant index in it.
    pub me: u16,
    /// The first block scanned: the activation block the confirmation carried (or, if it
    /// carried none, the first block not final here when the scanner first looked).
    pub start: Option<u64>,
}

/// What the scanner recorded about one deposit that is not reported.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Unreported {
    /// Refunded to the spender once its block is acknowledged.
    Refund {
        /// Output id.
        output: Vec<u8>,
        /// Where to.
        to: ExternalAddress,
    },
    /// No instruction and no refund address: kept.
    Unattributed {
        /// Output id.
        output: Vec<u8>,
    },
    /// Below dust: ignored.
    Dust {
        /// Output id.
        output: Vec<u8>,
    },
}

/// What a scanned block means for the scheduler. Recorded when the block is scanned and
/// applied, in block order, when an acknowledgement covers the block: acknowledgements
/// are the one sequence every processor of the set sees identically, so applying block
/// effects at them (never at scan time) keeps every processor's scheduler identical.
#[derive(Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct BlockEvents {
    /// The block's Batch ids (none for most blocks).
    pub batches: Vec<u32>,
    /// Deposits reported in them, by output id.
    pub reported: Vec<Vec<u8>>,
    /// Deposits to refund, by output id, with the address.
    pub refunds: Vec<(Vec<u8>, ExternalAddress)>,
    /// Outputs to our Change, Branch and Forwarded keys.
    pub internal: Vec<Internal>,
    /// Our outputs spent in this block, where the network shows spends.
    pub spends: Vec<Spend>,
    /// The block's fee rate.
    pub rate: u64,
}

/// One of our own outputs (not a deposit) a block created.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Internal {
    /// The output's id.
    pub output: Vec<u8>,
    /// Which of our keys it pays (never [`OutputKind::External`]).
    pub kind: OutputKind,
    /// Its value.
    pub amount: Amount,
    /// The transaction that created it.
    pub tx: Vec<u8>,
}

/// A planned transaction.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct PlanRecord {
    /// What the scheduler decided.
    pub tx: Tx,
    /// The fee rate it was planned at.
    pub rate: u64,
    /// The eventuality (the network's encoding).
    pub eventuality: Vec<u8>,
    /// Set once its eventuality was seen on chain.
    pub completed: Option<Vec<u8>>,
}

/// The sessions whose pipelines run (their keys confirmed, not retired), with this
/// validator's participant index in each. Not scoped: the registry of scopes.
pub const LIVE: Table<u32, u16> = Table::new("pipeline/v3/live");

/// The active key.
pub const ACTIVE: Table<(), Active> = Table::scoped("pipeline/v1/active");
/// The last scanned block.
pub const SCANNED: Table<(), u64> = Table::scoped("pipeline/v1/scanned");
/// Every output of ours ever scanned, by id (the network's encoding).
pub const OUTPUTS: Table<Vec<u8>, Vec<u8>> = Table::scoped("pipeline/v1/outputs");
/// Per scanned block not yet applied: what it means for the scheduler. Written by the
/// scanner, read and deleted by the acknowledgement task.
pub const BLOCK_EVENTS: Table<u64, BlockEvents> = Table::scoped("pipeline/v2/block_events");
/// Which plan spends an output, by output id (a spend of ours that no plan explains is an
/// ALARM).
pub const PLAN_BY_INPUT: Table<Vec<u8>, [u8; 32]> = Table::scoped("pipeline/v1/plan_by_input");
/// Our outputs spent by a transaction we did not plan (ALARM), by output id.
pub const UNPLANNED_SPENDS: Table<Vec<u8>, Vec<u8>> = Table::scoped("pipeline/v2/unplanned_spends");
/// Deposits not reported (refunds, unattributed, dust), per block.
pub const UNREPORTED: Table<u64, Vec<Unreported>> = Table::scoped("pipeline/v1/unreported");
/// Batches by id, with their block number.
pub const BATCHES: Table<u32, (Batch, u64)> = Table::scoped("pipeline/v1/batches");
/// The highest attempt the coordinator asked for (`Reattempt`) of an item this processor
/// had not made yet (its Batch not scanned, its plan not planned), by the item's borsh
/// `SignKind`: its first preprocess is released for that attempt, not 0 (with concurrent
/// sessions the coordinator has moved on). Deleted when the item starts.
pub const SIGN_ASKED: Table<Vec<u8>, u32> = Table::scoped("pipeline/v1/sign_asked");
/// The next Batch id.
pub const NEXT_BATCH: Table<(), u32> = Table::scoped("pipeline/v1/next_batch");
/// The block of the last Batch made.
pub const LAST_BATCH_BLOCK: Table<(), u64> = Table::scoped("pipeline/v1/last_batch_block");
/// Acknowledged Batch ids (marked by the acknowledgement task when it starts applying an
/// acknowledgement).
pub const ACKED: Table<u32, u64> = Table::scoped("pipeline/v1/acked");
/// The number of Batches acknowledged (ids are contiguous, acknowledgements may not be).
pub const ACKED_COUNT: Table<(), u32> = Table::scoped("pipeline/v1/acked_count");
/// The last block whose events were applied.
pub const CONFIRMED: Table<(), u64> = Table::scoped("pipeline/v1/confirmed");
/// The fee rate of the last applied block (plans use it).
pub const LAST_RATE: Table<(), u64> = Table::scoped("pipeline/v1/last_rate");
/// The last settlement block whose acknowledgement was applied.
pub const SETTLEMENT: Table<(), u64> = Table::scoped("pipeline/v1/settlement");
/// The scheduler's state.
pub const SCHEDULER: Table<(), scheduler::State> = Table::scoped("pipeline/v1/scheduler");
/// The next payment id.
pub const NEXT_PAYMENT: Table<(), u64> = Table::scoped("pipeline/v1/next_payment");
/// Plans by id.
pub const PLANS: Table<[u8; 32], PlanRecord> = Table::scoped("pipeline/v1/plans");
/// Plans whose eventuality has not been seen yet.
pub const PENDING: Table<[u8; 32], ()> = Table::scoped("pipeline/v1/pending");
/// Branch outputs a plan creates, waiting for it to complete.
pub const BRANCHES: Table<[u8; 32], Vec<Branch>> = Table::scoped("pipeline/v1/branches");
/// Payments dropped as dust, by payment id.
pub const DROPPED: Table<u64, Dropped> = Table::scoped("pipeline/v1/dropped");
/// Burns that could not be paid (wrong coin, unparsable address), by settlement block.
pub const UNPAYABLE: Table<(u64, u32), primitives::Payment> =
    Table::scoped("pipeline/v1/unpayable");
/// Plans whose inputs a transaction we did not plan spent (ALARM), by plan id.
pub const CONFLICTS: Table<[u8; 32], Vec<u8>> = Table::scoped("pipeline/v1/conflicts");
/// When each plan, or replacement version, was made: the last confirmed block then
/// (the same on every processor). Plans made by an older build have none and are never
/// bumped.
pub const PLAN_MADE: Table<[u8; 32], u64> = Table::scoped("pipeline/v1/plan_made");
/// A plan's replacement versions (fee bumps), oldest first; absent: none. Each version
/// is a plan of its own (PLANS, PENDING, signing, publishing) with the same inputs,
/// payments and branches, and a higher fee taken from the change.
pub const VERSIONS: Table<[u8; 32], Vec<[u8; 32]>> = Table::scoped("pipeline/v1/versions");
/// A replacement version's original plan.
pub const VERSION_OF: Table<[u8; 32], [u8; 32]> = Table::scoped("pipeline/v1/version_of");
/// A stuck plan's child (on networks that cannot replace): a plan spending the stuck
/// plan's change, before it is mined, at a fee that lifts both (child pays for parent).
pub const CHILD: Table<[u8; 32], [u8; 32]> = Table::scoped("pipeline/v1/child");
/// A child plan's parent.
pub const CHILD_OF: Table<[u8; 32], [u8; 32]> = Table::scoped("pipeline/v1/child_of");
/// Outputs of ours planned before they exist (a parent's change a child spends), by id:
/// the network's encoding, as in OUTPUTS.
pub const UNCONFIRMED: Table<Vec<u8>, Vec<u8>> = Table::scoped("pipeline/v1/unconfirmed");

/// The payments of a plan a conflicting transaction made impossible, held for the
/// operator (not re-queued: the generic pipeline cannot tell whether that transaction, or
/// another like it, paid them). Removed only by `processor release-held`.
pub const HELD: Table<[u8; 32], Held> = Table::scoped("pipeline/v1/held");

/// A conflicted plan's payments, held.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Held {
    /// The conflicting transactions' ids (one, unless several spent the plan's inputs in
    /// the same block).
    pub txs: Vec<Vec<u8>>,
    /// The block they are in.
    pub block: u64,
    /// The plan's own payments, then those its branch outputs were to fund, each with the
    /// amount the settlement layer ordered (before any fee share).
    pub payments: Vec<scheduler::Payment>,
    /// The plan's inputs those transactions did not spend, returned to the funds.
    pub released: Vec<scheduler::Utxo>,
    /// The plan's inputs left locked: on a network whose spends are not visible (Monero),
    /// which ones were spent is unknown, so none is freed. The operator checks them.
    pub locked: Vec<scheduler::Utxo>,
}
/// An acknowledgement from the settlement layer, accepted and waiting to be applied.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Ack {
    /// The settlement block.
    pub settlement_block: u64,
    /// The Batches acknowledged.
    pub batches: Vec<u32>,
    /// The burns ordered.
    pub burns: Vec<primitives::Payment>,
}

/// Where accepted acknowledgements end: the next Batch id one must start with and the last
/// settlement block accepted. Written only by the inbox handler, which checks each new
/// acknowledgement against it.
#[derive(Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct AckReceipt {
    /// The first Batch id the next acknowledgement must name (if it names any).
    pub next_batch: u64,
    /// The last settlement block accepted.
    pub settlement_block: u64,
}

/// The receipt cursor (single writer: the inbox handler).
pub const ACK_RECEIPT: Table<(), AckReceipt> = Table::scoped("pipeline/v2/ack_receipt");
/// What the acknowledgement task applies, in the order the settlement layer sent it.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Queued {
    /// An acknowledgement.
    Ack(Ack),
    /// The hand-over to the next session: applied between the acknowledgements it came
    /// between, so every processor of the set applies it at the same point.
    Rotation(Rotation),
}

/// A session's hand-over to its successor (docs/rotation.md).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Rotation {
    /// The successor's session.
    pub successor: u32,
    /// Where this session's funds go: the successor's Forwarded address.
    pub forward_to: ExternalAddress,
    /// From the first applied block at or after this one, deposits are refunded, not
    /// credited, and the session may retire.
    pub close_block: u64,
}

/// Accepted acknowledgements (and a rotation), in order. Single writer: the inbox handler
/// (on receipt); single reader: the acknowledgement task, which pops one once it applied
/// it.
pub const ACKS: Queue<Queued> = Queue::scoped("pipeline/v3/acks");

/// This session's rotation, once applied.
pub const ROTATION: Table<(), Rotation> = Table::scoped("pipeline/v1/rotation");

/// A retired session: its pipeline state was removed. Not scoped (it outlives the scope).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Retired {
    /// The last block the session's pipeline applied.
    pub block: u64,
    /// Its successor.
    pub successor: u32,
    /// Outputs left behind, each worth less than the cost of forwarding it (id, value).
    pub left: Vec<(Vec<u8>, Amount)>,
    /// The session's alarm records when it retired (removed with its state): plans in
    /// conflict, unplanned spends of its outputs, burns it could not pay.
    pub conflicts: u64,
    /// See `conflicts`.
    pub unplanned_spends: u64,
    /// See `conflicts`.
    pub unpayable: u64,
    /// Payments held for the operator when it retired (a conflict's), by plan: still
    /// owed, resolved by hand (docs/operations.md, Held payments).
    pub held: Vec<([u8; 32], Held)>,
}

/// Retired sessions, by session.
pub const RETIRED: Table<u32, Retired> = Table::new("pipeline/v3/retired");
/// Signed transactions to publish: (plan id, the network's encoding). Writer: the inbox
/// handler (a signing attempt completes). Reader: the publisher, which pops the head once
/// published, and may move a head the node refuses to the back, in one transaction, so one
/// refused transaction does not hold back the others. That re-queueing is the one write
/// the reader makes; it cannot lose or duplicate an entry.
pub const TO_PUBLISH: Queue<([u8; 32], Vec<u8>)> = Queue::scoped("pipeline/v1/to_publish");
/// Signed transactions published whose plan is not yet seen completed (or conflicted)
/// on chain, by plan id: re-published periodically, in case the node dropped them.
/// Writers: the publisher (puts one it published, unless the plan is complete or
/// conflicted) and the acknowledgement task (deletes it when the plan completes or
/// conflicts); reader: the publisher. A put after the deletion cannot happen: both
/// check the plan's record in their write transaction.
pub const BROADCAST: Table<[u8; 32], Vec<u8>> = Table::scoped("pipeline/v1/broadcast");

/// Every session-scoped table and queue of a pipeline (and the scanner's index): what is
/// removed when a session retires. `every_scoped_table_is_listed` checks the list.
pub const SCOPED: &[&str] = &[
    ACTIVE.prefix(),
    SCANNED.prefix(),
    OUTPUTS.prefix(),
    BLOCK_EVENTS.prefix(),
    PLAN_BY_INPUT.prefix(),
    UNPLANNED_SPENDS.prefix(),
    UNREPORTED.prefix(),
    BATCHES.prefix(),
    SIGN_ASKED.prefix(),
    NEXT_BATCH.prefix(),
    LAST_BATCH_BLOCK.prefix(),
    ACKED.prefix(),
    ACKED_COUNT.prefix(),
    CONFIRMED.prefix(),
    LAST_RATE.prefix(),
    SETTLEMENT.prefix(),
    SCHEDULER.prefix(),
    NEXT_PAYMENT.prefix(),
    PLANS.prefix(),
    PENDING.prefix(),
    BRANCHES.prefix(),
    DROPPED.prefix(),
    UNPAYABLE.prefix(),
    CONFLICTS.prefix(),
    PLAN_MADE.prefix(),
    VERSIONS.prefix(),
    VERSION_OF.prefix(),
    CHILD.prefix(),
    CHILD_OF.prefix(),
    UNCONFIRMED.prefix(),
    HELD.prefix(),
    ACK_RECEIPT.prefix(),
    ACKS.name(),
    ROTATION.prefix(),
    TO_PUBLISH.name(),
    BROADCAST.prefix(),
    scanner::index::INDEXED.prefix(),
    scanner::index::INDEX_TIP.prefix(),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `Table::scoped(`/`Queue::scoped(` declared in this file is in [`SCOPED`] (a
    /// table missing there would survive its session's retirement).
    #[test]
    fn every_scoped_table_is_listed() {
        let source = include_str!("state.rs");
        let declared: Vec<&str> =
            source.split("::scoped(\"").skip(1).filter_map(|rest| rest.split('"').next()).collect();
        assert!(declared.len() > 30, "found {declared:?}");
        for prefix in declared {
            assert!(SCOPED.contains(&prefix), "{prefix} is scoped but not in SCOPED");
        }
        assert!(SCOPED.contains(&"scanner/v1/index"));
        let mut sorted = SCOPED.to_vec();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), SCOPED.len(), "SCOPED lists a table twice");
    }
}
