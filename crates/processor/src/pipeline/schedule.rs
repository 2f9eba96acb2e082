//! Scheduling: the scheduler's fee model and limits for this network, and turning the
//! scheduler's transactions into plans the network builds, records and signs.
use borsh::BorshDeserialize;
use db::{Get, WriteTxn};
use key_gen::GeneratedKeys;
use messages::SignKind;
use primitives::codec::encode_body;
use primitives::{Amount, ExternalAddress};
use scanner::{Network, Plan, Planned, PlannedPayment};
use scheduler::{FeeModel, Limits, Tx};
use signers::Machine;
use task::TaskError;

use super::state::*;
use super::{Pipeline, PipelineNetwork};

/// The scheduler's fee model: exactly what the network's planner charges.
#[derive(Debug)]
pub struct Fees<'a, N> {
    network: &'a N,
    rate: u64,
}

impl<N: Network> FeeModel for Fees<'_, N> {
    fn fee(
        &self,
        inputs: usize,
        payments: &[&ExternalAddress],
        branches: usize,
        change: bool,
    ) -> Amount {
        // Payments are validated before they are queued, so every address parses.
        let addresses: Vec<N::Address> =
            payments.iter().filter_map(|a| self.network.address(a)).collect();
        let refs: Vec<&N::Address> = addresses.iter().collect();
        self.network.fee(inputs, &refs, branches, change, self.rate)
    }
}

/// A scheduler error: its kernels are total over valid states, so one is fatal.
pub fn scheduler_error(e: scheduler::ScheduleError) -> TaskError {
    TaskError::fatal(format!("scheduler: {e}"))
}

impl<N: PipelineNetwork> Pipeline<N> {
    /// The fee model at `rate`.
    pub fn fees(&self, rate: u64) -> Fees<'_, N> {
        Fees { network: &self.network, rate }
    }

    /// The scheduler's limits.
    pub fn limits(&self) -> Limits {
        let p = self.network.params();
        Limits { max_inputs: p.max_inputs, max_outputs: p.max_outputs, dust: p.dust }
    }

    /// A recorded block fee rate, within this network's floor and ceiling (the same on
    /// every processor of a set), as plans use it.
    pub fn plan_rate(&self, rate: u64) -> u64 {
        self.network.params().clamp_fee_rate(rate)
    }

    /// A transaction id as the network's tools show it.
    pub fn network_tx(&self, id: &[u8]) -> String {
        self.network.display_transaction_id(id)
    }

    /// The network plan a scheduler transaction describes.
    pub fn network_plan(
        &self,
        txn: &impl Get,
        tx: &Tx,
    ) -> Result<Plan<N::Output, N::Address>, TaskError> {
        let inputs = tx
            .inputs
            .iter()
            .map(|u| stored_output::<N>(txn, &u.id))
            .collect::<Result<Vec<_>, _>>()?;
        let payments = tx
            .payments
            .iter()
            .map(|p| {
                let address = self.network.address(&p.payment.address).ok_or_else(|| {
                    TaskError::fatal(format!(
                        "plan {} pays an address this network cannot parse",
                        hex::encode(tx.id)
                    ))
                })?;
                Ok(PlannedPayment { address, amount: p.net })
            })
            .collect::<Result<Vec<_>, TaskError>>()?;
        Ok(Plan {
            inputs,
            payments,
            branches: tx.branches.iter().map(|b| b.amount).collect(),
            change: tx.change.is_some(),
        })
    }

    /// The signable transaction and eventuality of a scheduler transaction, checked to
    /// agree with the scheduler to the unit. A disagreement would mean the scheduler's
    /// accounting is not what is signed: a fatal error naming the plan (never a panic,
    /// which would repeat inside the same transaction on every restart).
    pub fn plan(
        &self,
        txn: &impl Get,
        key: &N::Key,
        tx: &Tx,
        rate: u64,
    ) -> Result<Planned<N::Signable, N::Eventuality>, TaskError> {
        let plan = self.network_plan(txn, tx)?;
        let planned = self.network.plan(key, &plan, rate).map_err(|e| {
            TaskError::fatal(format!("the network cannot build plan {}: {e}", hex::encode(tx.id)))
        })?;
        let change = tx.change.unwrap_or(Amount::ZERO);
        if planned.fee != tx.fee || planned.change != change {
            return Err(TaskError::fatal(format!(
                "the planner (fee {}, change {}) disagrees with the scheduler (fee {}, change {}) on plan {}: \
                 this processor's build is inconsistent; stop it and report the plan",
                planned.fee.0, planned.change.0, tx.fee.0, change.0, hex::encode(tx.id)
            )));
        }
        Ok(planned)
    }

    /// The signing machine of a plan.
    pub fn plan_machine(
        &self,
        keys: &GeneratedKeys,
        signable: N::Signable,
        plan: [u8; 32],
    ) -> Result<Box<dyn Machine>, TaskError> {
        self.network
            .sign(self.network_keys(keys)?, signable)
            .map_err(|e| TaskError::fatal(format!("cannot sign plan {}: {e}", hex::encode(plan))))
    }

    /// Records new plans and starts signing each.
    pub fn new_plans(
        &self,
        txn: &mut WriteTxn,
        keys: &GeneratedKeys,
        txs: Vec<Tx>,
        rate: u64,
    ) -> Result<(), TaskError> {
        let key = self.key(keys)?;
        for tx in txs {
            if PLANS.get(txn, &tx.id)?.is_some() {
                // The scheduler never spends an output twice, so an existing id is a bug.
                return Err(TaskError::fatal(format!(
                    "plan {} made twice: the scheduler's state is inconsistent",
                    hex::encode(tx.id)
                )));
            }
            let planned = self.plan(txn, &key, &tx, rate)?;
            tracing::info!(plan = %hex::encode(tx.id), inputs = tx.inputs.len(), payments = tx.payments.len(), branches = tx.branches.len(), fee = tx.fee.0, "planned");
            if !tx.branches.is_empty() {
                BRANCHES.put(txn, &tx.id, &tx.branches)?;
            }
            let record = PlanRecord {
                tx: tx.clone(),
                rate,
                eventuality: encode_body(&planned.eventuality),
                completed: None,
            };
            PLANS.put(txn, &tx.id, &record)?;
            PENDING.put(txn, &tx.id, &())?;
            // When it was made, for the fee-bump rule: the same block on every processor.
            PLAN_MADE.put(txn, &tx.id, &CONFIRMED.get(txn, &())?.unwrap_or(0))?;
            for input in &tx.inputs {
                PLAN_BY_INPUT.put(txn, &input.id, &tx.id)?;
            }
            self.metrics.plans.inc();
            self.metrics.plan_publish_seconds.start(self.session, &tx.id);
            self.metrics.plan_final_seconds.start(self.session, &tx.id);
            let machine = self.plan_machine(keys, planned.signable, tx.id)?;
            self.start_signing(txn, SignKind::Plan(tx.id), machine)?;
        }
        Ok(())
    }

    /// Records payments the scheduler dropped as dust.
    pub fn record_dropped(
        &self,
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
            self.metrics.dropped_payments.inc();
            DROPPED.put(txn, &d.payment.id, d)?;
        }
        Ok(())
    }
}

/// A stored output of ours.
pub fn stored_output<N: Network>(txn: &impl Get, id: &[u8]) -> Result<N::Output, TaskError> {
    // A parent's change a child plan spends is known before it is scanned.
    let bytes = match OUTPUTS.get(txn, &id.to_vec())? {
        Some(bytes) => bytes,
        None => UNCONFIRMED
            .get(txn, &id.to_vec())?
            .ok_or_else(|| TaskError::fatal(format!("unknown output {}", hex::encode(id))))?,
    };
    N::Output::try_from_slice(&bytes).map_err(TaskError::fatal)
}

/// A plan's stored eventuality.
pub fn eventuality<N: Network>(record: &PlanRecord) -> Result<N::Eventuality, TaskError> {
    N::Eventuality::try_from_slice(&record.eventuality).map_err(TaskError::fatal)
}
