//! The pipeline's shared context: keys, signing machines, plans and the scheduler's fee
//! model, over the Bitcoin-family network.
use std::collections::HashMap;
use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc, Mutex,
};

use bitcoin_network::sign::{SignError, SignableTransaction, TransactionMachine};
use bitcoin_network::{Address, Eventuality, GroupKey, Output};
use borsh::BorshDeserialize;
use bus::Mailbox;
use db::{Get, WriteTxn};
use key_gen::{GeneratedKeys, KeyGen, KeyGenError, NetworkKeys};
use messages::{Participant, Party, ProcessorMessage, Session, SignKind, SignResponse};
use modular_frost::curve::Secp256k1;
use modular_frost::ThresholdKeys;
use primitives::codec::{encode_body, Versioned};
use primitives::{Amount, ExternalAddress};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use scanner::{Network, Plan, PlannedPayment};
use scheduler::{FeeModel, Limits, Tx};
use signers::{Completing, Machine, SignFailure, Signers, Signing};
use task::TaskError;

use super::state::*;
use super::Net;
use crate::db_error;

/// Counters and gauges of the pipeline.
#[derive(Clone, Debug, Default)]
pub struct PipelineMetrics {
    /// The last scanned block.
    pub scanned_height: Gauge,
    /// Batches made.
    pub batches: Counter,
    /// Batches signed by this processor.
    pub batches_signed: Counter,
    /// Plans made.
    pub plans: Counter,
    /// Plans whose eventuality was seen.
    pub plans_completed: Counter,
    /// Signed transactions published.
    pub published: Counter,
    /// Signing attempts started (preprocesses released).
    pub attempts: Counter,
    /// Attempts started on a coordinator's reattempt.
    pub reattempts: Counter,
    /// Transactions spending our planned inputs that we did not plan (ALARM).
    pub conflicts: Counter,
    /// Payments dropped as dust.
    pub dropped_payments: Counter,
}

impl PipelineMetrics {
    /// Registers every metric.
    pub fn register(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register("scanned_height", "The last scanned block", self.scanned_height.clone());
        registry.register("batches", "Batches made", self.batches.clone());
        registry.register(
            "batches_signed",
            "Batches signed by this processor",
            self.batches_signed.clone(),
        );
        registry.register("plans", "Transactions planned", self.plans.clone());
        registry.register(
            "plans_completed",
            "Planned transactions seen on chain",
            self.plans_completed.clone(),
        );
        registry.register("published", "Signed transactions published", self.published.clone());
        registry.register("signing_attempts", "Signing attempts started", self.attempts.clone());
        registry.register(
            "signing_reattempts",
            "Signing attempts started on a reattempt",
            self.reattempts.clone(),
        );
        registry.register(
            "conflicts",
            "ALARM: our planned inputs spent by a transaction we did not plan",
            self.conflicts.clone(),
        );
        registry.register(
            "dropped_payments",
            "Payments dropped as dust",
            self.dropped_payments.clone(),
        );
    }
}

/// What every pipeline task shares.
#[derive(Clone)]
pub struct Pipeline {
    /// The network.
    pub network: Arc<Net>,
    /// Key generation (for the key shares).
    pub keygen: Arc<KeyGen>,
    /// The signing attempts of the active session (nonces live here, in memory).
    pub signers: Arc<Mutex<Option<Signers>>>,
    /// Outbound messages.
    pub mailbox: Mailbox,
    /// Most unacknowledged Batches the scanner runs ahead.
    pub window: u32,
    /// This processor's validator index.
    pub validator: u16,
    /// Metrics.
    pub metrics: PipelineMetrics,
    /// This processor's proposal for the next key's activation block.
    pub proposal: Arc<ActivationProposal>,
}

/// The first block the node did not report final at the scanner's last look while no key
/// was active: this processor's proposal for a new key's activation block.
#[derive(Debug)]
pub struct ActivationProposal(AtomicU64);

impl Default for ActivationProposal {
    fn default() -> Self {
        // Not known until the scanner has heard from the node.
        ActivationProposal(AtomicU64::new(u64::MAX))
    }
}

impl ActivationProposal {
    /// Records the node's first non-final block.
    pub fn set(&self, first_unfinalized: u64) {
        self.0.store(first_unfinalized, Ordering::Relaxed);
    }

    /// The proposal, if the scanner has heard from the node.
    pub fn get(&self) -> Option<u64> {
        Some(self.0.load(Ordering::Relaxed)).filter(|b| *b != u64::MAX)
    }
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline").field("window", &self.window).finish()
    }
}

/// A DB or key error inside the pipeline: DB errors keep their class, key errors are
/// fatal (the shares cannot be unsealed).
pub fn key_error(e: KeyGenError) -> TaskError {
    match e {
        KeyGenError::Db(e) => db_error(e),
        e => TaskError::fatal(e),
    }
}

/// The scheduler's fee model: exactly what the network's planner charges.
#[derive(Debug)]
pub struct Fees<'a> {
    network: &'a Net,
    rate: u64,
}

impl FeeModel for Fees<'_> {
    fn fee(
        &self,
        inputs: usize,
        payments: &[&ExternalAddress],
        branches: usize,
        change: bool,
    ) -> Amount {
        // Payments are validated before they are queued, so every address parses.
        let addresses: Vec<Address> =
            payments.iter().filter_map(|a| Address::from_external(a).ok()).collect();
        let refs: Vec<&Address> = addresses.iter().collect();
        self.network.fee(inputs, &refs, branches, change, self.rate)
    }
}

impl Pipeline {
    /// The signing attempts, locked (a poisoned lock means a task panicked: fatal).
    pub fn lock_signers(&self) -> Result<std::sync::MutexGuard<'_, Option<Signers>>, TaskError> {
        self.signers.lock().map_err(|_| TaskError::fatal("signers lock poisoned"))
    }

    /// Marks `kind` done, if a session is active.
    pub fn complete_signing(&self, txn: &mut WriteTxn, kind: SignKind) -> Result<(), TaskError> {
        if let Some(signers) = self.lock_signers()?.as_mut() {
            signers.complete(txn, kind).map_err(db_error)?;
        }
        Ok(())
    }

    /// The fee model at `rate`.
    pub fn fees(&self, rate: u64) -> Fees<'_> {
        Fees { network: &self.network, rate }
    }

    /// The scheduler's limits.
    pub fn limits(&self) -> Limits {
        let p = self.network.params();
        Limits { max_inputs: p.max_inputs, max_outputs: p.max_outputs, dust: p.dust }
    }

    /// The active key, if any.
    pub fn active(&self, txn: &impl Get) -> Result<Option<Active>, TaskError> {
        ACTIVE.get(txn, &()).map_err(db_error)
    }

    /// The unsealed key shares of `session`.
    pub fn keys(&self, txn: &impl Get, session: u32) -> Result<GeneratedKeys, TaskError> {
        self.keygen
            .keys(txn, Session(session))
            .map_err(key_error)?
            .ok_or_else(|| TaskError::fatal(format!("the active session {session} has no keys")))
    }

    /// The network keys of `session`.
    pub fn network_keys(
        &self,
        keys: &GeneratedKeys,
    ) -> Result<ThresholdKeys<Secp256k1>, TaskError> {
        match &keys.network {
            NetworkKeys::Secp256k1(k) => Ok(k.clone()),
            NetworkKeys::Ed25519(_) => {
                Err(TaskError::fatal("a Bitcoin-family processor holds an Ed25519 key"))
            }
        }
    }

    /// The group key outputs are paid to.
    pub fn group_key(&self, keys: &GeneratedKeys) -> Result<GroupKey, TaskError> {
        Ok(self.network_keys(keys)?.group_key())
    }

    /// Queues a message to the coordinator in `txn`.
    pub fn send(&self, txn: &mut WriteTxn, message: ProcessorMessage) -> Result<(), TaskError> {
        self.mailbox
            .send(txn, Party::Coordinator, message.encode())
            .map(|_| ())
            .map_err(service::send_error)
    }

    /// Starts signing `kind` (attempt 0) unless already attempted; sends the preprocess.
    pub fn start_signing(
        &self,
        txn: &mut WriteTxn,
        kind: SignKind,
        machine: Box<dyn Machine>,
    ) -> Result<(), TaskError> {
        let response = {
            let mut guard = self.lock_signers()?;
            let Some(signers) = guard.as_mut() else {
                return Err(TaskError::fatal("signing without an active session"));
            };
            signers.start(txn, kind, machine).map_err(db_error)?
        };
        if let Some(response) = response {
            self.metrics.attempts.inc();
            self.send(txn, ProcessorMessage::Sign(response))?;
        }
        Ok(())
    }

    /// The network plan a scheduler transaction describes.
    pub fn network_plan(
        &self,
        txn: &impl Get,
        tx: &Tx,
    ) -> Result<Plan<Output, Address>, TaskError> {
        let inputs = tx
            .inputs
            .iter()
            .map(|u| {
                let bytes = OUTPUTS.get(txn, &u.id).map_err(db_error)?.ok_or_else(|| {
                    TaskError::fatal(format!("plan spends unknown output {}", hex::encode(&u.id)))
                })?;
                Output::try_from_slice(&bytes).map_err(TaskError::fatal)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let payments = tx
            .payments
            .iter()
            .map(|p| {
                let address =
                    Address::from_external(&p.payment.address).map_err(TaskError::fatal)?;
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
    /// agree with the scheduler to the unit (a disagreement is a bug: it would mean the
    /// scheduler's accounting is not what is signed).
    pub fn plan(
        &self,
        txn: &impl Get,
        key: &GroupKey,
        tx: &Tx,
        rate: u64,
    ) -> Result<(SignableTransaction, Eventuality), TaskError> {
        let plan = self.network_plan(txn, tx)?;
        let planned = self.network.plan(key, &plan, rate).map_err(TaskError::fatal)?;
        let change = tx.change.unwrap_or(Amount::ZERO);
        assert!(
            planned.fee == tx.fee && planned.change == change,
            "the planner (fee {}, change {}) disagrees with the scheduler (fee {}, change {}) on plan {}",
            planned.fee, planned.change, tx.fee, change, hex::encode(tx.id)
        );
        Ok((planned.signable, planned.eventuality))
    }

    /// A recorded block fee rate, within this network's floor and ceiling (the same on
    /// every processor of a set), as plans use it.
    pub fn plan_rate(&self, rate: u64) -> u64 {
        let c = self.network.chain_params();
        rate.clamp(c.min_fee_rate, c.max_fee_rate)
    }

    /// Records new plans and starts signing each.
    pub fn new_plans(
        &self,
        txn: &mut WriteTxn,
        keys: &GeneratedKeys,
        txs: Vec<Tx>,
        rate: u64,
    ) -> Result<(), TaskError> {
        let key = self.group_key(keys)?;
        let network_keys = self.network_keys(keys)?;
        for tx in txs {
            if PLANS.get(txn, &tx.id).map_err(db_error)?.is_some() {
                // The scheduler never spends an output twice, so an existing id is a bug.
                panic!("plan {} made twice", hex::encode(tx.id));
            }
            let (signable, eventuality) = self.plan(txn, &key, &tx, rate)?;
            tracing::info!(plan = %hex::encode(tx.id), txid = %signable.txid(), inputs = tx.inputs.len(), payments = tx.payments.len(), branches = tx.branches.len(), fee = tx.fee.0, "planned");
            if !tx.branches.is_empty() {
                BRANCHES.put(txn, &tx.id, &tx.branches).map_err(db_error)?;
            }
            PLANS
                .put(
                    txn,
                    &tx.id,
                    &PlanRecord {
                        tx: tx.clone(),
                        rate,
                        eventuality: encode_body(&eventuality),
                        completed: None,
                    },
                )
                .map_err(db_error)?;
            PENDING.put(txn, &tx.id, &()).map_err(db_error)?;
            for input in &tx.inputs {
                PLAN_BY_INPUT.put(txn, &input.id, &tx.id).map_err(db_error)?;
            }
            self.metrics.plans.inc();
            let machine = TransactionMachine::new(network_keys.clone(), signable)
                .map_err(TaskError::fatal)?;
            self.start_signing(txn, SignKind::Plan(tx.id), Box::new(PlanMachine(machine)))?;
        }
        Ok(())
    }

    /// A fresh machine for `kind`, if it is still to be signed.
    pub fn machine(
        &self,
        txn: &impl Get,
        active: &Active,
        kind: SignKind,
    ) -> Result<Option<Box<dyn Machine>>, TaskError> {
        let keys = self.keys(txn, active.session)?;
        match kind {
            SignKind::Batch(id) => {
                let Some((batch, _)) = BATCHES.get(txn, &id).map_err(db_error)? else {
                    return Ok(None);
                };
                Ok(Some(signers::batch_machine(keys.ristretto.clone(), &batch)))
            }
            SignKind::Plan(id) => {
                let Some(record) = PLANS.get(txn, &id).map_err(db_error)? else { return Ok(None) };
                if record.completed.is_some() {
                    return Ok(None);
                }
                let (signable, _) =
                    self.plan(txn, &self.group_key(&keys)?, &record.tx, record.rate)?;
                let machine = TransactionMachine::new(self.network_keys(&keys)?, signable)
                    .map_err(TaskError::fatal)?;
                Ok(Some(Box::new(PlanMachine(machine))))
            }
        }
    }

    /// Our participant index.
    pub fn me(active: &Active) -> Result<Participant, TaskError> {
        if active.me == 0 {
            return Err(TaskError::fatal("participant index 0"));
        }
        Ok(active.me)
    }
}

/// The FROST participant of a wire index (0 is no participant: dropped, which makes the
/// set incomplete and the attempt fail without a culprit).
fn frost_map(map: HashMap<Participant, Vec<u8>>) -> HashMap<modular_frost::Participant, Vec<u8>> {
    map.into_iter()
        .filter_map(|(i, v)| modular_frost::Participant::new(i).map(|p| (p, v)))
        .collect()
}

/// A Bitcoin transaction's signing machines behind the signers' object-safe traits.
struct PlanMachine(TransactionMachine);
struct PlanSigning(bitcoin_network::sign::TransactionSignMachine);
struct PlanCompleting(bitcoin_network::sign::TransactionSignatureMachine);

fn failure(e: SignError) -> SignFailure {
    match e {
        SignError::InvalidPreprocess(p) | SignError::InvalidShare(p) => {
            SignFailure::Blame(u16::from(p))
        }
        e => SignFailure::Failed(e.to_string()),
    }
}

impl Machine for PlanMachine {
    fn preprocess(self: Box<Self>) -> (Box<dyn Signing>, Vec<u8>) {
        let (machine, preprocess) = self.0.preprocess(&mut rand_core::OsRng);
        (Box::new(PlanSigning(machine)), preprocess)
    }
}

impl Signing for PlanSigning {
    fn sign(
        self: Box<Self>,
        others: HashMap<Participant, Vec<u8>>,
    ) -> Result<(Box<dyn Completing>, Vec<u8>), SignFailure> {
        let (machine, share) = self.0.sign(frost_map(others)).map_err(failure)?;
        Ok((Box::new(PlanCompleting(machine)), share))
    }
}

impl Completing for PlanCompleting {
    fn complete(
        self: Box<Self>,
        shares: HashMap<Participant, Vec<u8>>,
    ) -> Result<Vec<u8>, SignFailure> {
        let tx = self.0.complete(frost_map(shares)).map_err(failure)?;
        Ok(bitcoin::consensus::serialize(&tx))
    }
}

/// Decodes a stored eventuality.
pub fn eventuality(record: &PlanRecord) -> Result<Eventuality, TaskError> {
    Eventuality::try_from_slice(&record.eventuality).map_err(TaskError::fatal)
}

/// Our own Completed message for a plan.
pub fn completed(session: u32, plan: [u8; 32], tx: Vec<u8>) -> ProcessorMessage {
    ProcessorMessage::Sign(SignResponse::Completed { session: Session(session), plan, tx })
}
