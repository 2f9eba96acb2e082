//! The processor's main job on any network: scan final blocks, report their deposits as
//! Batches, and, once the settlement layer acknowledges them, schedule and sign the
//! payments it orders, publish them, and watch for their eventualities.
//!
//! The pipeline is written once, generic over [`scanner::Network`]: no chain type, output
//! id format or transaction id format is known here. A deposit's path reads down this
//! folder, one stage per file:
//!
//! | stage        | file              | task                                         |
//! |--------------|-------------------|----------------------------------------------|
//! | scan         | [`scan`]          | [`scan::ScanTask`]: index, scan, record       |
//! | report       | [`report`]        | (the scanner) Batches of a scanned block      |
//! | acknowledge  | [`acknowledge`]   | receipt (inbox handler); [`acknowledge::AckTask`] applies |
//! | eventuality  | [`eventuality`]   | (AckTask) a block's completions, conflicts, outputs |
//! | schedule     | [`schedule`]      | (AckTask) scheduler, plans, fee model         |
//! | sign         | [`sign`]          | (inbox handler) the coordinator's requests    |
//! | publish      | [`publish`]       | [`publish::PublishTask`]                      |
//!
//! Guarantees:
//! - Every step is one DB transaction: a scanned block (its outputs, Batches) commits at
//!   once; an acknowledgement is applied in steps of one commit each: its Batches marked
//!   acknowledged; each block it covers (completed plans, conflicts, confirmed outputs,
//!   funded branches, queued refunds); its burns (queued payments, new plans). Messages
//!   caused by a step are queued in its transaction (the outbox), so a crash loses
//!   nothing and repeats nothing in effect.
//! - Network I/O (blocks, fee rates, publishing) happens before a write transaction
//!   opens, never while it is open.
//! - Plans are a deterministic function of the acknowledged blocks, the burns and the
//!   final blocks' fee rates, so every processor of the set derives the same ones. Block
//!   effects are applied by one task ([`acknowledge::AckTask`]), in block order, only as
//!   acknowledgements cover them.
//! - Completions and conflicts come only from [`scanner::Network::check`], run on each
//!   block as it is applied, against the plans pending at that point: a plan made when
//!   block `b` is applied (or with `b` the last applied block) is signed by processors
//!   whose nodes already had `b` final, so its transaction is mined in a later block.
//! - The scanner starts no block while `window` Batches or more are not yet acknowledged
//!   (accepted acknowledgements count); one block may still make several.
//! - A payment is planned exactly once: it leaves the scheduler's queue in the same
//!   transaction that records the plan paying it.
//! - Data that reaches the pipeline from a peer or the chain never panics it: a plan the
//!   network cannot build, or a planner that disagrees with the scheduler, is a fatal
//!   error naming the plan.

pub mod acknowledge;
pub mod bump;
pub mod eventuality;
pub mod metrics;
pub mod publish;
pub mod report;
pub mod rotation;
pub mod scan;
pub mod schedule;
pub mod sessions;
pub mod sign;
pub mod state;

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc, Mutex,
};

use bus::Mailbox;
use db::{Get, WriteTxn};
use key_gen::{CurveKeys, GeneratedKeys, KeyGen, KeyGenError};
use messages::{Participant, Party, ProcessorMessage, Session};
use modular_frost::ThresholdKeys;
use primitives::codec::Versioned;
use scanner::Network;
use signers::Signers;
use task::TaskError;

pub use eventuality::release_held;
pub use metrics::PipelineMetrics;
pub use sessions::{PerSession, Pipelines, SessionTask};
use state::{Active, ACTIVE};

/// A network the pipeline runs on: any [`Network`] whose curve the key generation makes
/// keys on.
pub trait PipelineNetwork: Network<Curve: CurveKeys> {}
impl<N: Network<Curve: CurveKeys>> PipelineNetwork for N {}

/// Why a coordinator request changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// No key is active yet.
    #[error("no active key")]
    NoActiveKey,
    /// The settlement block is not after the last one received.
    #[error("settlement block {got} is not after {last}")]
    StaleSettlement {
        /// Received.
        got: u64,
        /// Last received.
        last: u64,
    },
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
    /// A rotation that cannot be applied.
    #[error("rotation refused: {0}")]
    BadRotation(String),
    /// A request for a session whose pipeline does not run here (not confirmed, retired,
    /// or not one this validator holds a share of).
    #[error("request for session {got}, which has no pipeline here (live: {live:?})")]
    UnknownSession {
        /// Received.
        got: u32,
        /// The live sessions.
        live: Vec<u32>,
    },
}

/// One session's pipeline: what its tasks share. Every session's pipeline shares the
/// network, the bus and the metrics; each has its own signers, and works in database
/// transactions scoped to its session ([`sessions`]).
pub struct Pipeline<N: PipelineNetwork> {
    /// The session whose key this pipeline scans for and signs with.
    pub session: u32,
    /// The network.
    pub network: Arc<N>,
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

impl<N: PipelineNetwork> Clone for Pipeline<N> {
    fn clone(&self) -> Self {
        Pipeline {
            session: self.session,
            network: self.network.clone(),
            keygen: self.keygen.clone(),
            signers: self.signers.clone(),
            mailbox: self.mailbox.clone(),
            window: self.window,
            validator: self.validator,
            metrics: self.metrics.clone(),
            proposal: self.proposal.clone(),
        }
    }
}

impl<N: PipelineNetwork> std::fmt::Debug for Pipeline<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("session", &self.session)
            .field("network", &self.network.params().network)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
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

/// A key error inside the pipeline: DB errors keep their class, the others are fatal
/// (the shares cannot be unsealed).
pub fn key_error(e: KeyGenError) -> TaskError {
    match e {
        KeyGenError::Db(e) => e.into(),
        e => TaskError::fatal(e),
    }
}

impl<N: PipelineNetwork> Pipeline<N> {
    /// The active key, if any.
    pub fn active(&self, txn: &impl Get) -> Result<Option<Active>, TaskError> {
        Ok(ACTIVE.get(txn, &())?)
    }

    /// The unsealed key shares of `session`.
    pub fn keys(&self, txn: &impl Get, session: u32) -> Result<GeneratedKeys, TaskError> {
        self.keygen
            .keys(txn, Session(session))
            .map_err(key_error)?
            .ok_or_else(|| TaskError::fatal(format!("the active session {session} has no keys")))
    }

    /// The session's threshold keys on this network's curve.
    pub fn network_keys(&self, keys: &GeneratedKeys) -> Result<ThresholdKeys<N::Curve>, TaskError> {
        <N::Curve as CurveKeys>::keys(&keys.network).ok_or_else(|| {
            TaskError::fatal(format!(
                "the session's network key ({:?}) is not on {}'s curve",
                keys.network,
                self.network.params().network
            ))
        })
    }

    /// Our key on this network (what outputs are paid to).
    pub fn key(&self, keys: &GeneratedKeys) -> Result<N::Key, TaskError> {
        Ok(self.network.key(&self.network_keys(keys)?))
    }

    /// Queues a message to the coordinator in `txn`.
    pub fn send(&self, txn: &mut WriteTxn, message: ProcessorMessage) -> Result<(), TaskError> {
        self.mailbox
            .send(txn, Party::Coordinator, message.encode())
            .map(|_| ())
            .map_err(service::send_error)
    }

    /// Our participant index.
    pub fn me(active: &Active) -> Result<Participant, TaskError> {
        if active.me == 0 {
            return Err(TaskError::fatal("participant index 0"));
        }
        Ok(active.me)
    }
}

/// What the inbox handler asks of the pipeline, whatever its network: the handler holds
/// it as a trait object, so key generation runs the same with or without a node.
pub trait Handle: Send + Sync + std::fmt::Debug {
    /// A signing request from the coordinator ([`sign::sign`]).
    fn sign(
        &self,
        txn: &mut WriteTxn,
        request: &messages::SignRequest,
    ) -> Result<Result<(), Refusal>, TaskError>;
    /// A block acknowledgement for `session` ([`acknowledge::receive`]).
    fn acknowledge(
        &self,
        txn: &mut WriteTxn,
        session: Session,
        ack: state::Ack,
    ) -> Result<Result<(), Refusal>, TaskError>;
    /// A rotation of `session` to its successor ([`rotation::receive`]).
    fn rotate(
        &self,
        txn: &mut WriteTxn,
        session: Session,
        successor: Session,
        successor_key: &[u8],
        close_block: u64,
    ) -> Result<Result<(), Refusal>, TaskError>;
    /// This processor's proposal for a new key's activation block, once known.
    fn proposal(&self) -> Option<u64>;
    /// The settings the set must share (reported with the key pair).
    fn settings(&self) -> messages::ChainSettings;
    /// Starts signing for a newly active key.
    fn activate(&self, session: Session, me: Participant) -> Result<(), TaskError>;
}

/// The settings of `params` every processor of a set must share.
pub fn settings_of(p: &scanner::NetworkParams) -> messages::ChainSettings {
    let wide = |v: usize| u64::try_from(v).unwrap_or(u64::MAX);
    messages::ChainSettings {
        confirmations: p.confirmations,
        max_inputs: wide(p.max_inputs),
        max_outputs: wide(p.max_outputs),
        dust: p.dust.0,
        min_fee_rate: p.min_fee_rate,
        max_fee_rate: p.max_fee_rate,
        max_money: p.max_money,
    }
}
