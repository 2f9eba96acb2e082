//! The traits at the network seam.
use borsh::{BorshDeserialize, BorshSerialize};

pub use primitives::OutputKind;

use std::future::Future;

use modular_frost::curve::Curve;
use modular_frost::ThresholdKeys;
use primitives::{Amount, ExternalAddress, InInstruction, NetworkId};
use signers::Machine;

/// Any error a network implementation wraps.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error from the network seam, classified for the task runner.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// Retrying may help: the node is unreachable, busy or still syncing.
    #[error("transient network error: {0}")]
    Transient(BoxError),
    /// Retrying cannot help: misconfiguration, a node on the wrong chain, or a chain that
    /// contradicts what was already finalized.
    #[error("fatal network error: {0}")]
    Fatal(BoxError),
}

impl NetworkError {
    /// Whether retrying may help.
    pub fn is_transient(&self) -> bool {
        matches!(self, NetworkError::Transient(_))
    }
}

impl From<NetworkError> for task::TaskError {
    fn from(e: NetworkError) -> Self {
        match e {
            NetworkError::Transient(e) => task::TaskError::Transient(e),
            NetworkError::Fatal(e) => task::TaskError::Fatal(e),
        }
    }
}

/// The constants a network runs with (chosen per deployment, e.g. lowered in tests).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkParams {
    /// Which network.
    pub network: NetworkId,
    /// A block is final once it has this many confirmations (itself included).
    pub confirmations: u64,
    /// The most inputs one of our transactions may spend.
    pub max_inputs: usize,
    /// The most outputs (payments, branches and change) one of our transactions may have.
    pub max_outputs: usize,
    /// Outputs below this are not worth receiving or paying (recorded, then ignored).
    pub dust: Amount,
    /// The lowest fee rate plans use, in the network's fee unit (at least what the
    /// network's nodes relay).
    pub min_fee_rate: u64,
    /// The highest fee rate plans use, whatever a block says: one block stuffed with a
    /// high-fee transaction must not make the set drop payments as dust, overpay, or sign
    /// transactions the nodes refuse to relay.
    pub max_fee_rate: u64,
    /// Every unit that can ever exist: a burn above it is a lie, recorded and never
    /// scheduled.
    pub max_money: u64,
}

impl NetworkParams {
    /// `rate` within the floor and the ceiling: plans use nothing else.
    pub fn clamp_fee_rate(&self, rate: u64) -> u64 {
        rate.clamp(self.min_fee_rate, self.max_fee_rate.max(self.min_fee_rate))
    }
}

/// Where a block sits in the chain: enough to check the chain links up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct BlockRef {
    /// Height.
    pub number: u64,
    /// The block's id.
    pub id: [u8; 32],
    /// Its parent's id.
    pub parent: [u8; 32],
}

/// A block as a network implementation fetched it.
pub trait ChainBlock {
    /// Its position and links.
    fn block_ref(&self) -> BlockRef;
}

/// What a deposit said it was for.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Instruction {
    /// A valid instruction.
    Valid(InInstruction),
    /// The transaction carried no instruction.
    Missing,
    /// The transaction carried data that is not a valid instruction.
    Invalid,
}

/// An output paid to one of our keys.
pub trait ReceivedOutput {
    /// A unique, canonical id (for Bitcoin the outpoint).
    fn id(&self) -> Vec<u8>;
    /// Which of our keys it was paid to.
    fn kind(&self) -> OutputKind;
    /// Its value.
    fn amount(&self) -> Amount;
    /// For [`OutputKind::External`] outputs: the instruction it carried.
    fn instruction(&self) -> &Instruction;
    /// Where it came from, when that is a standard address funds can be returned to.
    fn refund_address(&self) -> Option<&ExternalAddress>;
    /// The id of the transaction that created it, in the encoding [`Completion`]s use:
    /// a plan's branch outputs are the ones its completing transaction created.
    fn transaction(&self) -> Vec<u8>;
}

/// One of the block's spends of a previous output, by the network's output and
/// transaction ids (the encodings of [`ReceivedOutput::id`] and [`Completion`]).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Spend {
    /// The output spent.
    pub output: Vec<u8>,
    /// The transaction spending it.
    pub tx: Vec<u8>,
}

/// A payment a plan makes, in the network's own address type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedPayment<A> {
    /// The payee.
    pub address: A,
    /// The exact amount the payee receives.
    pub amount: Amount,
}

/// What the scheduler decided one transaction does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan<O, A> {
    /// The outputs spent, in the order they are spent.
    pub inputs: Vec<O>,
    /// Payments to external addresses, in order.
    pub payments: Vec<PlannedPayment<A>>,
    /// Outputs to our own [`OutputKind::Branch`] key, funding later transactions.
    pub branches: Vec<Amount>,
    /// Whether whatever is left after payments, branches and the fee goes back to our
    /// [`OutputKind::Change`] key (it is dropped to the fee when below dust).
    pub change: bool,
}

/// A transaction ready to be signed, and how to recognise it on chain.
#[derive(Clone, Debug)]
pub struct Planned<S, E> {
    /// What the signers sign.
    pub signable: S,
    /// The on-chain fact that proves the plan completed.
    pub eventuality: E,
    /// The fee the transaction pays.
    pub fee: Amount,
    /// The change it returns to us (zero when none).
    pub change: Amount,
}

/// Why a plan cannot become a transaction.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    /// The inputs do not cover payments, branches and the fee.
    #[error("inputs of {inputs} do not cover {outputs} paid out plus a fee of {fee}")]
    InsufficientFunds {
        /// Sum of the inputs.
        inputs: Amount,
        /// Sum of payments and branches.
        outputs: Amount,
        /// The fee the transaction needs.
        fee: Amount,
    },
    /// More inputs or outputs than the network's limits.
    #[error("a transaction of {inputs} inputs and {outputs} outputs exceeds the limits ({max_inputs} in, {max_outputs} out)")]
    TooLarge {
        /// Inputs asked for.
        inputs: usize,
        /// Outputs asked for (change included).
        outputs: usize,
        /// The network's input limit.
        max_inputs: usize,
        /// The network's output limit.
        max_outputs: usize,
    },
    /// A plan with no inputs or nothing to do.
    #[error("a plan needs at least one input and one output")]
    Empty,
    /// A payment below the network's dust threshold.
    #[error("payment {index} of {amount} is below dust")]
    Dust {
        /// Its position in the plan.
        index: usize,
        /// Its amount.
        amount: Amount,
    },
    /// An amount overflowed.
    #[error("amount overflow")]
    Overflow,
    /// Our own key could not produce an address (a bug or a corrupt key).
    #[error("cannot derive our own address: {0}")]
    Key(String),
}

/// What a block says about a pending eventuality.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Completion {
    /// The planned transaction is in the block: the plan is done.
    Completed {
        /// The eventuality's position in the slice given to [`Network::check`].
        index: usize,
        /// The transaction's id.
        tx: Vec<u8>,
    },
    /// A different transaction spent the plan's inputs: the key signed, or someone
    /// holds, something we did not plan. Operators MUST be alerted.
    Conflict {
        /// The eventuality's position in the slice given to [`Network::check`].
        index: usize,
        /// The conflicting transaction's id.
        tx: Vec<u8>,
    },
}

/// One external network, as the processor sees it. Reading methods are async (they talk
/// to the node); deciding methods are pure.
///
/// Everything the processor's pipeline needs from a network goes through this trait, and
/// nothing network-specific passes it: outputs, transactions and eventualities reach the
/// pipeline only as the associated types and their encodings here, and completions and
/// conflicts only through [`Network::check`].
pub trait Network: Send + Sync + 'static {
    /// The curve the network's transactions are signed on (the key generation's network
    /// key).
    type Curve: Curve;
    /// Our group public key on this network (everything scanning and planning need).
    type Key: Clone + Send + Sync;
    /// A fetched block.
    type Block: ChainBlock + Send + Sync;
    /// An output paid to us; its borsh encoding is what the processor stores.
    type Output: ReceivedOutput
        + Clone
        + std::fmt::Debug
        + Send
        + Sync
        + BorshSerialize
        + BorshDeserialize;
    /// An address payments can go to.
    type Address: Clone + PartialEq + std::fmt::Debug + Send + Sync;
    /// An unsigned transaction, the signers' input.
    type Signable: Send + Sync;
    /// A signed transaction.
    type Transaction: Send + Sync;
    /// The on-chain fact that completes a plan; its borsh encoding is what the processor
    /// stores.
    type Eventuality: Clone
        + PartialEq
        + std::fmt::Debug
        + Send
        + Sync
        + BorshSerialize
        + BorshDeserialize;

    /// The network's constants.
    fn params(&self) -> &NetworkParams;

    /// Our key on this network, from the key generation's threshold keys.
    fn key(&self, keys: &ThresholdKeys<Self::Curve>) -> Self::Key;

    /// The machine that signs `signable` with `keys` (one attempt; consumed as it goes).
    /// It completes with the signed transaction's encoding
    /// ([`Network::encode_transaction`]), after checking the signatures.
    fn sign(
        &self,
        keys: ThresholdKeys<Self::Curve>,
        signable: Self::Signable,
    ) -> Result<Box<dyn Machine>, PlanError>;

    /// A signed transaction's encoding (what is stored and published).
    fn encode_transaction(&self, tx: &Self::Transaction) -> Vec<u8>;

    /// Decodes [`Network::encode_transaction`]'s bytes.
    fn decode_transaction(&self, bytes: &[u8]) -> Result<Self::Transaction, BoxError>;

    /// A signed transaction's id, as [`Completion`]s carry it.
    fn transaction_id(&self, tx: &Self::Transaction) -> Vec<u8>;

    /// A transaction id as the node's own tools show it (for errors and logs).
    fn display_transaction_id(&self, id: &[u8]) -> String {
        hex::encode(id)
    }

    /// Whether a child spending a planned transaction's change before it is mined is
    /// accepted (the processor's fee bump where replacement is not), and
    /// [`Network::change_of`] names that change. False by default (Monero: outputs
    /// unlock after 10 blocks).
    fn children_pay(&self) -> bool {
        false
    }

    /// The change output a planned transaction creates, as scanning will report it once
    /// it is mined (a child paying for a stuck parent spends it before), or `None` if it
    /// has none. MUST be derived from the plan alone: the same on every processor.
    fn change_of(
        &self,
        _key: &Self::Key,
        _planned: &Planned<Self::Signable, Self::Eventuality>,
    ) -> Option<Self::Output> {
        None
    }

    /// Whether a published transaction can be replaced by one spending the same inputs at
    /// a higher fee (BIP125 opt-in replacement; the processor's fee bumps). MUST be the
    /// same answer on every processor of a set. Monero's cannot: false by default.
    fn replaceable(&self) -> bool {
        false
    }

    /// Whether [`Network::spends`] lists every spend of a previous output (a UTXO chain's
    /// inputs). Where it does not (Monero shows key images only), which of a conflicted
    /// plan's inputs were spent is unknown, and the processor frees none of them. MUST be
    /// the same answer on every processor of a set (it decides what is funds).
    fn spends_visible(&self) -> bool {
        false
    }

    /// Every spend of a previous output in `block`, where the network shows them (the
    /// processor raises an alarm when one of ours is spent by no plan of ours). A network
    /// whose spends are not visible (Monero) returns none: its conflicts come from
    /// [`Network::check`] alone.
    fn spends(&self, _block: &Self::Block) -> Vec<Spend> {
        vec![]
    }

    /// A block id as the node's own tools show it (for errors and logs).
    fn display_block_id(&self, id: &[u8; 32]) -> String {
        hex::encode(id)
    }

    /// The highest block with [`NetworkParams::confirmations`] confirmations, if any.
    fn latest_finalized(&self) -> impl Future<Output = Result<Option<u64>, NetworkError>> + Send;

    /// The links of block `number` of the node's current best chain.
    fn block_ref(&self, number: u64)
        -> impl Future<Output = Result<BlockRef, NetworkError>> + Send;

    /// The block `number` of the node's current best chain.
    fn block(&self, number: u64) -> impl Future<Output = Result<Self::Block, NetworkError>> + Send;

    /// Blocks `from..=to` of the node's current best chain, in order, each as
    /// [`Network::block`] gives it. The default asks for them one by one; a network
    /// whose node serves many blocks per request overrides it.
    fn blocks(
        &self,
        from: u64,
        to: u64,
    ) -> impl Future<Output = Result<Vec<Self::Block>, NetworkError>> + Send {
        async move {
            let mut blocks = Vec::new();
            for number in from..=to {
                blocks.push(self.block(number).await?);
            }
            Ok(blocks)
        }
    }

    /// How many final blocks the scanner fetches at once ([`Network::blocks`]) and scans
    /// concurrently, ahead of the one it records; 1 (the default) is one at a time. Each
    /// is still checked against the index of the chain before anything of it is written.
    fn read_ahead(&self) -> usize {
        1
    }

    /// Every output of `block` paid to `key` (any kind), in block order. May ask the node
    /// about the spent outputs (for refund addresses).
    fn scan(
        &self,
        block: &Self::Block,
        key: &Self::Key,
    ) -> impl Future<Output = Result<Vec<Self::Output>, NetworkError>> + Send;

    /// The node's current fee estimate, in the network's unit (sat/kvB for Bitcoin). For
    /// display and tools: plans use [`Network::block_fee_rate`].
    fn fee_rate(&self) -> impl Future<Output = Result<u64, NetworkError>> + Send;

    /// The fee rate for plans made when `block` is acknowledged: a deterministic function
    /// of that final block (and the network's configured floor and ceiling), so that every processor
    /// derives the same plans.
    fn block_fee_rate(
        &self,
        block: &Self::Block,
    ) -> impl Future<Output = Result<u64, NetworkError>> + Send;

    /// The fee [`Network::plan`] charges a transaction of this shape at `rate`.
    fn fee(
        &self,
        inputs: usize,
        payments: &[&Self::Address],
        branches: usize,
        change: bool,
        rate: u64,
    ) -> Amount;

    /// Parses an address payments may go to.
    fn address(&self, address: &ExternalAddress) -> Option<Self::Address>;

    /// The address that pays `successor`'s [`OutputKind::Forwarded`] outputs, as a
    /// payment carries it, from the successor's group key in the encoding key generation
    /// reports (`GeneratedKeys::network_key`). `None` when the bytes are not a key of
    /// this network's curve. A retiring key forwards its funds there (docs/rotation.md).
    fn forward_address(&self, successor: &[u8]) -> Option<ExternalAddress>;

    /// Whether `address` is one of `key`'s own (any [`OutputKind`]). The processor never
    /// pays or refunds to its own addresses: such a payment would come back as a deposit,
    /// change or branch output nobody planned.
    fn owns(&self, key: &Self::Key, address: &Self::Address) -> bool;

    /// Turns a plan into a signable transaction. Pure: every processor derives the same
    /// transaction from the same plan and fee rate.
    ///
    /// The transaction MUST have an output to our [`OutputKind::Branch`] key of each
    /// branch's exact amount, attributed to it by [`ReceivedOutput::transaction`], in any
    /// order (Monero shuffles outputs): the processor funds each branch, in plan order,
    /// with the first such output of its amount not yet taken, and stops (fatal) if one
    /// is missing.
    fn plan(
        &self,
        key: &Self::Key,
        plan: &Plan<Self::Output, Self::Address>,
        fee_rate: u64,
    ) -> Result<Planned<Self::Signable, Self::Eventuality>, PlanError>;

    /// Publishes a signed transaction. Already in the mempool or already in the chain is
    /// success.
    fn publish(
        &self,
        tx: &Self::Transaction,
    ) -> impl Future<Output = Result<(), NetworkError>> + Send;

    /// Which of `pending` the block completes or conflicts with. Each eventuality is
    /// reported at most once per transaction, in block order.
    fn check(&self, block: &Self::Block, pending: &[Self::Eventuality]) -> Vec<Completion>;
}
