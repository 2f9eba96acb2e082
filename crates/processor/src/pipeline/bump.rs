//! Fee bumps: a published plan that the market outgrew is replaced by a version paying a
//! higher fee, decided from chain data alone so that every processor makes the same
//! version at the same block.
//!
//! The rule, applied to each block the acknowledgement task applies (block `n`, its
//! recorded fee rate `r`, bounded as plans use it), for each pending plan whose network
//! can replace transactions ([`scanner::Network::replaceable`]):
//! - its latest version (the plan itself, or its last replacement) was made when block
//!   `m` was applied, `n >= m + confirmations + STUCK_AFTER` (it could be mined from block
//!   `m + confirmations` on), and it pays less than `r`: it is stuck;
//! - the new version pays `max(1.25 r, 1.5 × its rate, its rate + the network's floor)`, at most
//!   the network's ceiling (`max_fee_rate`): the floor as the increment meets BIP125's
//!   relay-fee rule wherever the incremental relay fee is the minimum relay fee (the nodes'
//!   default);
//! - at most [`MAX_VERSIONS`] replacements per plan.
//!
//! **The fee budget.** A version has the plan's inputs, payments and branches; only the
//! change pays for the higher fee (the payees receive what they were planned to, their
//! fee shares unchanged). So a bump spends at most the plan's change, and its rate at most
//! the network's ceiling, set alike on every processor of a set. A plan without change
//! cannot be bumped: it is logged once per [`STUCK_AFTER`] blocks.
//!
//! **Where the network cannot replace** (Litecoin's nodes refuse replacements by
//! default), the bump is one child per plan: a plan spending the stuck plan's change
//! output before it is mined, whose fee lifts the two together to the new rate (child
//! pays for parent). The parent's change is locked for the child and never becomes funds.
//!
//! A version is a plan of its own: recorded, signed under the nonce rule, published and
//! checked like any plan (its id is derived from the original's). Once a version is
//! published, the older ones are no longer re-broadcast (publish.rs). Whichever version
//! is mined completes the plan; the others are then superseded, not conflicts.
use db::WriteTxn;
use key_gen::GeneratedKeys;
use messages::SignKind;
use primitives::{codec::encode_body, Amount};
use task::TaskError;

use super::state::*;
use super::{Pipeline, PipelineNetwork};

/// Final blocks a version waits, unmined, before it may be replaced.
pub const STUCK_AFTER: u64 = 6;
/// Replacements at most per plan.
pub const MAX_VERSIONS: usize = 4;

/// The id of a plan's `version`th replacement (1-based).
pub fn version_id(plan: &[u8; 32], version: u32) -> [u8; 32] {
    primitives::hash(b"tc/processor/v1/plan-version", &[plan, &version.to_le_bytes()])
}

/// The original plan of `plan` (itself, unless it is a replacement version).
pub fn root(txn: &impl db::Get, plan: &[u8; 32]) -> Result<[u8; 32], TaskError> {
    Ok(VERSION_OF.get(txn, plan)?.unwrap_or(*plan))
}

/// Every version of the plan `root` (the original first).
pub fn family(txn: &impl db::Get, root: &[u8; 32]) -> Result<Vec<[u8; 32]>, TaskError> {
    let mut all = vec![*root];
    all.extend(VERSIONS.get(txn, root)?.unwrap_or_default());
    Ok(all)
}

impl<N: PipelineNetwork> Pipeline<N> {
    /// Makes, and starts signing, a replacement version (or, where the network cannot
    /// replace, a child paying for it) for every stuck pending plan, as of block `number`
    /// whose bounded fee rate is `rate` (the rule is in the module's doc).
    pub fn bump_stuck(
        &self,
        txn: &mut WriteTxn,
        keys: &GeneratedKeys,
        number: u64,
        rate: u64,
    ) -> Result<(), TaskError> {
        let replaceable = self.network.replaceable();
        if !replaceable && !self.network.children_pay() {
            return Ok(());
        }
        let params = self.network.params();
        let mut roots = vec![];
        for (plan, ()) in PENDING.iter(txn)? {
            let original = VERSION_OF.get(txn, &plan)?.is_none();
            let child = CHILD_OF.get(txn, &plan)?.is_some();
            let has_child = CHILD.get(txn, &plan)?.is_some();
            if original && !child && !has_child {
                roots.push(plan);
            }
        }
        // A version made when block `made` was applied is published once that block is
        // final, so it can be mined no earlier than `made + confirmations`: it is stuck
        // once STUCK_AFTER more blocks went by without it.
        let wait = params.confirmations.saturating_add(STUCK_AFTER);
        for root in roots {
            let versions = VERSIONS.get(txn, &root)?.unwrap_or_default();
            let latest = versions.last().copied().unwrap_or(root);
            let Some(made) = PLAN_MADE.get(txn, &latest)? else { continue };
            if versions.len() >= MAX_VERSIONS || number < made.saturating_add(wait) {
                continue;
            }
            let latest_record = PLANS
                .get(txn, &latest)?
                .ok_or_else(|| TaskError::fatal("a pending plan without its record"))?;
            if rate <= latest_record.rate {
                continue;
            }
            let old = latest_record.rate;
            // Above the block's median by a quarter: level with it, it may wait on.
            let new_rate = rate
                .saturating_add(rate / 4)
                .max(old.saturating_mul(3) / 2)
                .max(old.saturating_add(params.min_fee_rate))
                .min(params.max_fee_rate);
            // Below the relay rule's increment (the ceiling reached), nodes refuse it.
            if new_rate < old.saturating_add(params.min_fee_rate) {
                continue;
            }
            if !replaceable {
                // A child pays for the original only (a plan with versions was bumped by
                // replacement, under an earlier setting: its change may never exist).
                if versions.is_empty() {
                    self.child_pays(txn, keys, number, root, new_rate)?;
                }
                continue;
            }
            let original = PLANS
                .get(txn, &root)?
                .ok_or_else(|| TaskError::fatal("a pending plan without its record"))?;
            let key = self.key(keys)?;
            let plan = self.network_plan(txn, &original.tx)?;
            let planned = match self.network.plan(&key, &plan, new_rate) {
                Ok(planned) if planned.fee > latest_record.tx.fee => planned,
                outcome => {
                    let why = match outcome {
                        Ok(_) => "no change to pay a higher fee from".to_string(),
                        Err(e) => e.to_string(),
                    };
                    tracing::warn!(plan = %hex::encode(root), rate = old, block_rate = rate, %why, "a stuck plan cannot be bumped");
                    // Not again before another STUCK_AFTER blocks.
                    PLAN_MADE.put(txn, &latest, &number)?;
                    continue;
                }
            };
            // Funds are conserved: the higher fee comes out of the change, nothing else.
            let kept =
                |fee: Amount, change: Option<Amount>| fee.0.checked_add(change.map_or(0, |c| c.0));
            if kept(planned.fee, Some(planned.change)) != kept(original.tx.fee, original.tx.change)
            {
                return Err(TaskError::fatal(format!(
                    "the fee bump of plan {} moves funds other than its change (fee {} change {}, was fee {} change {:?}): this build is inconsistent",
                    hex::encode(root),
                    planned.fee.0,
                    planned.change.0,
                    original.tx.fee.0,
                    original.tx.change
                )));
            }
            let index = u32::try_from(versions.len() + 1).unwrap_or(u32::MAX);
            let id = version_id(&root, index);
            let mut tx = original.tx.clone();
            tx.id = id;
            tx.fee = planned.fee;
            tx.change = (planned.change > Amount::ZERO).then_some(planned.change);
            let record = PlanRecord {
                tx,
                rate: new_rate,
                eventuality: encode_body(&planned.eventuality),
                completed: None,
            };
            tracing::info!(
                plan = %hex::encode(root),
                version = index,
                rate = new_rate,
                was = old,
                block_rate = rate,
                extra_fee = planned.fee.0 - original.tx.fee.0,
                "fee bump: a replacement at a higher rate"
            );
            PLANS.put(txn, &id, &record)?;
            PENDING.put(txn, &id, &())?;
            PLAN_MADE.put(txn, &id, &number)?;
            VERSION_OF.put(txn, &id, &root)?;
            let mut versions = versions;
            versions.push(id);
            VERSIONS.put(txn, &root, &versions)?;
            if let Some(branches) = BRANCHES.get(txn, &root)? {
                BRANCHES.put(txn, &id, &branches)?;
            }
            self.metrics.fee_bumps.inc();
            let machine = self.plan_machine(keys, planned.signable, id)?;
            self.start_signing(txn, SignKind::Plan(id), machine)?;
        }
        Ok(())
    }

    /// On a network that cannot replace: a child plan spending the stuck plan's change
    /// (before it is mined) into new change, whose fee lifts the two together to `rate`
    /// (child pays for parent). The parent's change is then locked for the child: it never
    /// becomes funds when the parent is mined. One child per plan.
    fn child_pays(
        &self,
        txn: &mut WriteTxn,
        keys: &GeneratedKeys,
        number: u64,
        root: [u8; 32],
        rate: u64,
    ) -> Result<(), TaskError> {
        let record = PLANS
            .get(txn, &root)?
            .ok_or_else(|| TaskError::fatal("a pending plan without its record"))?;
        let key = self.key(keys)?;
        let parent = self.plan(txn, &key, &record.tx, record.rate)?;
        let change = self.network.change_of(&key, &parent);
        let Some(change) =
            change.filter(|c| Some(scanner::ReceivedOutput::amount(c)) == record.tx.change)
        else {
            tracing::warn!(plan = %hex::encode(root), "a stuck plan without change: no child can pay for it");
            PLAN_MADE.put(txn, &root, &number)?;
            return Ok(());
        };
        // Sizes from the fee model at 1 unit per unit of size.
        let shape = self.network_plan(txn, &record.tx)?;
        let addresses: Vec<_> = shape.payments.iter().map(|p| &p.address).collect();
        let parent_size = self.network.fee(
            shape.inputs.len(),
            &addresses,
            shape.branches.len(),
            shape.change,
            1000,
        );
        let child_size = self.network.fee(1, &[], 0, true, 1000);
        let package = (parent_size.0 + child_size.0).saturating_mul(rate).div_ceil(1000);
        let child_fee = package.saturating_sub(record.tx.fee.0).max(1);
        // At most the ceiling (the nodes refuse a fee rate far above it): the lift is then
        // smaller than asked, never refused.
        let params = self.network.params();
        let child_rate =
            child_fee.saturating_mul(1000).div_ceil(child_size.0.max(1)).min(params.max_fee_rate);
        let plan = scanner::Plan {
            inputs: vec![change.clone()],
            payments: vec![],
            branches: vec![],
            change: true,
        };
        // The child must keep change of at least dust: without an output it is invalid, and
        // the parent's change would stay locked for it.
        let planned = match self.network.plan(&key, &plan, child_rate) {
            Ok(planned) if planned.change > Amount::ZERO => planned,
            outcome => {
                let why = match outcome {
                    Ok(_) => "its change would leave less than dust".to_string(),
                    Err(e) => e.to_string(),
                };
                tracing::warn!(plan = %hex::encode(root), %why, "a stuck plan's change cannot pay for a child");
                PLAN_MADE.put(txn, &root, &number)?;
                return Ok(());
            }
        };
        let input = scanner::ReceivedOutput::amount(&change);
        if planned.fee.0.checked_add(planned.change.0) != Some(input.0) {
            return Err(TaskError::fatal(format!(
                "the child of plan {} moves funds other than the parent's change: this build is inconsistent",
                hex::encode(root)
            )));
        }
        let id = primitives::hash(b"tc/processor/v1/plan-child", &[&root]);
        let output_id = scanner::ReceivedOutput::id(&change);
        let tx = scheduler::Tx {
            id,
            inputs: vec![scheduler::Utxo { id: output_id.clone(), amount: input }],
            payments: vec![],
            branches: vec![],
            change: (planned.change > Amount::ZERO).then_some(planned.change),
            fee: planned.fee,
        };
        tracing::info!(
            plan = %hex::encode(root),
            child = %hex::encode(id),
            rate,
            child_fee = planned.fee.0,
            "fee bump: a child pays for a stuck plan"
        );
        UNCONFIRMED.put(txn, &output_id, &borsh::to_vec(&change).map_err(TaskError::fatal)?)?;
        let record = PlanRecord {
            tx,
            rate: child_rate,
            eventuality: encode_body(&planned.eventuality),
            completed: None,
        };
        PLANS.put(txn, &id, &record)?;
        PENDING.put(txn, &id, &())?;
        PLAN_MADE.put(txn, &id, &number)?;
        PLAN_BY_INPUT.put(txn, &output_id, &id)?;
        CHILD.put(txn, &root, &id)?;
        CHILD_OF.put(txn, &id, &root)?;
        self.metrics.fee_bumps.inc();
        let machine = self.plan_machine(keys, planned.signable, id)?;
        self.start_signing(txn, SignKind::Plan(id), machine)
    }
}
