//! [`scanner::Network`] for Monero.
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::StreamExt;

use borsh::{BorshDeserialize, BorshSerialize};
use modular_frost::curve::Ed25519;
use modular_frost::ThresholdKeys;
use monero_wallet::address::{MoneroAddress, Network as AddressNetwork};
use monero_wallet::interface::prelude::{FeeRate, ScannableBlock};
use monero_wallet::ringct::RctType;
use monero_wallet::send::{Change, Eventuality as MoneroEventuality, SignableTransaction};
use monero_wallet::transaction::Transaction;
use monero_wallet::{OutputWithDecoys, ScanError, WalletOutput};
use primitives::{Amount, ExternalAddress, NetworkId};
use rand_core::SeedableRng;
use scanner::utxo;
use scanner::{
    BlockRef, ChainBlock, Completion, Instruction, Network, NetworkError, NetworkParams,
    OutputKind, Plan, PlanError, Planned, ReceivedOutput,
};
use zeroize::Zeroizing;

use crate::decoys::{DecoyCache, Timelocks};
use crate::fee::{self, Shape, RING_LEN};
use crate::instruction;
use crate::keys::{self, Keys};
use crate::rpc::{Node, RpcError};
use crate::sign::PlanMachine;
use crate::Address;

/// Which Monero network, and the constants the processor runs with on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    /// Whose addresses (regtest uses mainnet's).
    pub address_network: AddressNetwork,
    /// The shared network constants.
    pub network: NetworkParams,
}

/// Monero's 10-block spend lock: an output of block `b` can be spent, and serve as a
/// decoy, from block `b + 9` on (monerod's rule, as monero-wallet evaluates it).
pub const LOCK: u64 = monero_wallet::DEFAULT_LOCK_WINDOW as u64;
/// The fewest confirmations accepted, and the default: the 10 confirmations Monero's
/// wallets wait for, plus the 9 blocks of the spend lock, so that the rings of a final
/// block's outputs are chosen from blocks with 10 confirmations themselves. With fewer, a
/// one-block reorg between two processors' scans could give them different rings, so
/// different transactions to sign.
pub const MIN_CONFIRMATIONS: u64 = 2 * LOCK - 1;
/// The default confirmations.
pub const DEFAULT_CONFIRMATIONS: u64 = MIN_CONFIRMATIONS;
/// The most outputs a transaction may have (Bulletproofs+ aggregate at most 16).
pub const MAX_OUTPUTS: usize = 16;
/// The most inputs our transactions spend: 64 CLSAG inputs of ring 16 weigh about
/// 100,000, below the 149,400 relay limit with 16 outputs.
pub const MAX_INPUTS: usize = 64;

impl Params {
    /// The defaults for `chain` (`mainnet`, `stagenet`, `testnet` or `regtest`).
    pub fn from_chain(chain: &str) -> Option<Params> {
        let address_network = match chain {
            // Regtest uses mainnet's address format.
            "mainnet" | "regtest" => AddressNetwork::Mainnet,
            "stagenet" => AddressNetwork::Stagenet,
            "testnet" => AddressNetwork::Testnet,
            _ => return None,
        };
        Some(Params {
            address_network,
            network: NetworkParams {
                network: NetworkId::Monero,
                confirmations: DEFAULT_CONFIRMATIONS,
                max_inputs: MAX_INPUTS,
                max_outputs: MAX_OUTPUTS,
                // 0.01 XMR: several times a transaction's fee even at regtest's early
                // (35 XMR) block reward, where the minimum rate is about 1.2M per weight.
                dust: Amount(10_000_000_000),
                // Mainnet's tail-emission minimum; the ceiling is 100 times that, above
                // regtest's early rate.
                min_fee_rate: 20_000,
                max_fee_rate: 2_000_000,
                // Monero has a tail emission: no supply cap; a u64 bounds every amount.
                max_money: u64::MAX,
            },
        })
    }
}

/// A final block with its transactions (pruned) and height.
#[derive(Clone, Debug)]
pub struct Block {
    /// Height.
    pub number: u64,
    /// The block, its transactions and its first RingCT output's index.
    pub block: ScannableBlock,
}

impl ChainBlock for Block {
    fn block_ref(&self) -> BlockRef {
        BlockRef {
            number: self.number,
            id: self.block.block.hash(),
            parent: self.block.block.header.previous,
        }
    }
}

/// An output paid to one of our addresses.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Output {
    /// Its one-time key: the id (two outputs with one key can be spent only once).
    pub key: [u8; 32],
    /// The transaction that created it.
    pub tx: [u8; 32],
    /// The block it was found in.
    pub block: u64,
    /// Its amount, in piconero.
    pub value: u64,
    /// Which of our addresses it pays.
    pub kind: OutputKind,
    /// The instruction ([`Instruction::Missing`] for our own outputs).
    pub instruction: Instruction,
    /// monero-wallet's `OutputWithDecoys`: the key offset, the commitment and the ring
    /// it is always spent with (empty for a deposit below dust, which is never spent).
    pub spendable: Vec<u8>,
}

impl Output {
    /// The output as monero-wallet spends it.
    pub fn spendable(&self) -> Result<OutputWithDecoys, PlanError> {
        OutputWithDecoys::read(&mut self.spendable.as_slice()).map_err(|e| {
            PlanError::Key(format!("stored output {} is corrupt: {e}", hex::encode(self.key)))
        })
    }
}

impl ReceivedOutput for Output {
    fn id(&self) -> Vec<u8> {
        self.key.to_vec()
    }
    fn kind(&self) -> OutputKind {
        self.kind
    }
    fn amount(&self) -> Amount {
        Amount(self.value)
    }
    fn instruction(&self) -> &Instruction {
        &self.instruction
    }
    /// Monero shows no sender: nothing is refunded to one (a valid instruction's own
    /// return address goes with its report).
    fn refund_address(&self) -> Option<&ExternalAddress> {
        None
    }
    fn transaction(&self) -> Vec<u8> {
        self.tx.to_vec()
    }
}

/// What completes a plan: monero-wallet's Eventuality, and the one-time keys of the
/// outputs the plan spends (another plan completed with one of them is a conflict).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Eventuality {
    /// The keys of the outputs spent, in plan order.
    pub inputs: Vec<[u8; 32]>,
    /// monero-wallet's serialized `Eventuality`.
    pub eventuality: Vec<u8>,
}

/// Monero over a monerod node.
#[derive(Debug)]
pub struct Monero {
    node: Node,
    params: Params,
    /// What decoy selection learnt that never changes (see [`crate::decoys`]).
    decoys: Timelocks,
    /// Blocks choosing rings at once (see [`RING_BLOCKS_AT_ONCE`]).
    ring_blocks: tokio::sync::Semaphore,
}

impl Monero {
    /// Monero through `node`, with `params`.
    pub fn new(node: Node, params: Params) -> Monero {
        Monero {
            node,
            params,
            decoys: Timelocks::default(),
            ring_blocks: tokio::sync::Semaphore::new(RING_BLOCKS_AT_ONCE),
        }
    }

    /// The node connection.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// The network parameters.
    pub fn monero_params(&self) -> &Params {
        &self.params
    }

    /// A Monero address of this network as the settlement layer carries it.
    pub fn external(&self, address: &MoneroAddress) -> Option<ExternalAddress> {
        Address::new(*address).ok().map(|a| a.to_external())
    }

    /// The ring of an output found in block `number`: chosen deterministically (seeded by
    /// the output's key) among the outputs unlocked at block `number + 9`, the first at
    /// which it is itself spendable (that block has `confirmations - 9` confirmations
    /// when `number` is final, and every processor of the set sees the same chain up to
    /// it). `daemon` is the block's [`DecoyCache`].
    async fn ring(
        &self,
        daemon: &DecoyCache<'_>,
        output: WalletOutput,
        number: u64,
    ) -> Result<OutputWithDecoys, NetworkError> {
        let seed = primitives::hash(
            b"tc-monero/v1/ring",
            &[&output.key().compress().to_bytes(), &number.to_le_bytes()],
        );
        let mut rng = rand_chacha::ChaCha20Rng::from_seed(seed);
        let height =
            usize::try_from(number + LOCK - 1).map_err(|e| NetworkError::Fatal(Box::new(e)))?;
        OutputWithDecoys::fingerprintable_deterministic_new(
            &mut rng, daemon, RING_LEN, height, output,
        )
        .await
        .map_err(|e| {
            NetworkError::Transient(Box::new(RpcError::Call {
                url: self.node.url().to_string(),
                what: "ring selection",
                error: e.to_string(),
            }))
        })
    }

    fn shape_fee(&self, shape: &Shape<'_>, rate: u64) -> Result<u64, PlanError> {
        fee::shape_fee(shape, rate).ok_or(PlanError::TooLarge {
            inputs: shape.inputs,
            outputs: shape.payments.len() + shape.branches + usize::from(shape.change),
            max_inputs: self.params.network.max_inputs,
            max_outputs: self.params.network.max_outputs,
        })
    }
}

/// The secret the planner seeds a transaction's keys with: bound to the view key, the
/// inputs and everything the plan pays, so that two different plans over the same inputs
/// never share transaction keys.
fn outgoing_view_key(
    keys: &Keys,
    inputs: &[[u8; 32]],
    payments: &[(MoneroAddress, u64)],
    change: bool,
    rate: u64,
) -> Zeroizing<[u8; 32]> {
    let view = keys.view_key();
    let view_bytes = Zeroizing::new(<[u8; 32]>::from(*view));
    let mut parts: Vec<Vec<u8>> = vec![view_bytes.to_vec()];
    parts.extend(inputs.iter().map(|i| i.to_vec()));
    for (address, amount) in payments {
        let mut p = address.spend().compress().to_bytes().to_vec();
        p.extend(address.view().compress().to_bytes());
        p.push(u8::from(address.is_subaddress()));
        p.extend(amount.to_le_bytes());
        parts.push(p);
    }
    parts.push(vec![u8::from(change)]);
    parts.push(rate.to_le_bytes().to_vec());
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    Zeroizing::new(primitives::hash(b"tc-monero/v1/outgoing-view-key", &refs))
}

/// A stored eventuality. One that does not read is a corrupt database or an incompatible
/// build: checking blocks without it would never see its plan complete, so it stops the
/// processor (a bug, not an input: every eventuality was written by [`Monero::plan`]).
fn read_eventuality(e: &Eventuality) -> MoneroEventuality {
    MoneroEventuality::read(&mut e.eventuality.as_slice()).unwrap_or_else(|err| {
        panic!(
            "a stored Monero eventuality (spending {}) does not read ({err}): the database is \
             corrupt or was written by an incompatible build",
            e.inputs.iter().map(hex::encode).collect::<Vec<_>>().join(", ")
        )
    })
}

impl Network for Monero {
    type Curve = Ed25519;
    type Key = Keys;
    type Block = Block;
    type Output = Output;
    type Address = Address;
    type Signable = SignableTransaction;
    type Transaction = Transaction;
    type Eventuality = Eventuality;

    fn params(&self) -> &NetworkParams {
        &self.params.network
    }

    fn key(&self, keys: &ThresholdKeys<Ed25519>) -> Keys {
        // modular-frost's Ed25519 keys are prime-order points: a key generation key is
        // always a valid spend key.
        Keys::new(keys.group_key().0, self.params.address_network)
            .expect("a key generation key is torsion-free and not the identity")
    }

    fn sign(
        &self,
        keys: ThresholdKeys<Ed25519>,
        signable: SignableTransaction,
    ) -> Result<Box<dyn signers::Machine>, PlanError> {
        let machine = signable.multisig(keys).map_err(|e| {
            PlanError::Key(format!("cannot sign this transaction with the set's key: {e}"))
        })?;
        Ok(Box::new(PlanMachine(machine)))
    }

    fn encode_transaction(&self, tx: &Transaction) -> Vec<u8> {
        tx.serialize()
    }

    fn decode_transaction(&self, bytes: &[u8]) -> Result<Transaction, scanner::BoxError> {
        let mut reader = bytes;
        let tx = Transaction::read(&mut reader)?;
        if !reader.is_empty() {
            return Err("trailing bytes after a Monero transaction".into());
        }
        Ok(tx)
    }

    fn transaction_id(&self, tx: &Transaction) -> Vec<u8> {
        tx.hash().to_vec()
    }

    async fn latest_finalized(&self) -> Result<Option<u64>, NetworkError> {
        let tip = self.node.tip().await?;
        Ok((tip + 1).checked_sub(self.params.network.confirmations))
    }

    async fn block_ref(&self, number: u64) -> Result<BlockRef, NetworkError> {
        let block = self.node.block(number).await?;
        Ok(BlockRef { number, id: block.hash(), parent: block.header.previous })
    }

    async fn block(&self, number: u64) -> Result<Block, NetworkError> {
        let block = self.node.scannable_block(number).await?;
        if block.block.number() as u64 != number {
            return Err(NetworkError::Transient(
                format!("monerod returned block {} when asked for {number}", block.block.number())
                    .into(),
            ));
        }
        Ok(Block { number, block })
    }

    async fn blocks(&self, from: u64, to: u64) -> Result<Vec<Block>, NetworkError> {
        match self.node.scannable_blocks(from, to).await {
            Ok(blocks) => {
                Ok((from..).zip(blocks).map(|(number, block)| Block { number, block }).collect())
            }
            // A pruned node cannot send pruned blocks' transactions in full, and an answer
            // may exceed what is read: the blocks are fetched one by one then (three
            // requests each, pruned transactions checked against their prunable hashes).
            Err(e) => {
                tracing::warn!(from, to, error = %e, "get_blocks.bin failed: fetching the blocks one by one");
                let mut blocks = Vec::new();
                for number in from..=to {
                    blocks.push(self.block(number).await?);
                }
                Ok(blocks)
            }
        }
    }

    fn read_ahead(&self) -> usize {
        READ_AHEAD
    }

    async fn scan(&self, block: &Block, key: &Keys) -> Result<Vec<Output>, NetworkError> {
        // Deposits: the main address, as any wallet pays it. Our own outputs: the
        // guaranteed subaddresses, which only outputs derived from their own transaction's
        // inputs match. The search is CPU work: off the async threads, so that blocks
        // scanned at once use every core.
        let number = block.number;
        let (scannable, keys) = (block.block.clone(), key.clone());
        let found = tokio::task::spawn_blocking(move || crate::scan::ours(&scannable, &keys))
            .await
            .map_err(|e| NetworkError::Fatal(format!("the scan of block {number} failed: {e}").into()))?
            .map_err(|e| match e {
                // A hard fork this build does not know: retrying cannot help.
                ScanError::UnsupportedProtocol(_) => NetworkError::Fatal(
                    format!("block {number} follows a protocol this build does not support ({e}): upgrade the processor").into(),
                ),
                e => NetworkError::Transient(format!("block {number} cannot be scanned: {e}").into()),
            })?;
        let decoys = DecoyCache::new(self.node.daemon().await?, &self.decoys);
        let mut seen = BTreeSet::new();
        let mut outputs = vec![];
        let mut rings = vec![];
        for output in found.unlocked() {
            let Some(kind) = keys::kind_of(output.subaddress()) else { continue };
            let id = output.key().compress().to_bytes();
            // Two outputs with one key can be spent once: the first is the one.
            if !seen.insert(id) {
                tracing::warn!(output = %hex::encode(id), "a second output with the same key in one block: ignored (burning bug)");
                continue;
            }
            let instruction = if kind == OutputKind::External {
                instruction::of_data(self.params.address_network, output.arbitrary_data())
            } else {
                Instruction::Missing
            };
            let value = output.commitment().amount;
            outputs.push(Output {
                key: id,
                tx: output.transaction(),
                block: number,
                value,
                kind,
                instruction,
                spendable: vec![],
            });
            // A deposit below dust is recorded and never spent: it needs no ring (and a
            // flood of them must not cost a ring selection each).
            if kind != OutputKind::External || value >= self.params.network.dust.0 {
                rings.push((outputs.len() - 1, output));
            }
        }
        if rings.is_empty() {
            return Ok(outputs);
        }
        // The rings of the block's outputs, a few at once (each asks the node for its
        // decoys; the answers are taken in order), in a few blocks at once: each block's
        // selection holds the chain's output distribution, and each ring a copy of it
        // (about 17 MB each on mainnet).
        let _turn =
            self.ring_blocks.acquire().await.map_err(|e| NetworkError::Fatal(Box::new(e)))?;
        let decoys = &decoys;
        let chosen: Vec<_> = futures::stream::iter(
            rings
                .into_iter()
                .map(|(i, output)| async move { (i, self.ring(decoys, output, number).await) }),
        )
        .buffered(RINGS_AT_ONCE)
        .collect()
        .await;
        for (i, ring) in chosen {
            outputs[i].spendable = ring?.serialize();
        }
        Ok(outputs)
    }

    async fn fee_rate(&self) -> Result<u64, NetworkError> {
        Ok(self.node.fee_rate().await?.per_weight())
    }

    async fn block_fee_rate(&self, block: &Block) -> Result<u64, NetworkError> {
        let rate = fee::block_rate(&block.block).ok_or_else(|| {
            NetworkError::Transient(
                format!("block {}'s miner transaction mints less than its fees", block.number)
                    .into(),
            )
        })?;
        Ok(self.params.network.clamp_fee_rate(rate))
    }

    fn fee(
        &self,
        inputs: usize,
        payments: &[&Address],
        branches: usize,
        change: bool,
        rate: u64,
    ) -> Amount {
        let payments: Vec<MoneroAddress> = payments.iter().map(|a| a.monero()).collect();
        let shape = Shape { inputs, payments: &payments, branches, change };
        // A shape beyond monero-wallet's limits is refused by `plan` (the scheduler keeps
        // within the params' limits, which are within them).
        Amount(fee::shape_fee(&shape, rate).unwrap_or(u64::MAX))
    }

    fn address(&self, address: &ExternalAddress) -> Option<Address> {
        Address::from_external(self.params.address_network, address).ok()
    }

    fn forward_address(&self, successor: &[u8]) -> Option<ExternalAddress> {
        use modular_frost::curve::Ciphersuite;
        let point = Ed25519::read_G(&mut &*successor).ok()?;
        let keys = Keys::new(point.0, self.params.address_network).ok()?;
        self.external(&keys.address(OutputKind::Forwarded))
    }

    fn owns(&self, key: &Keys, address: &Address) -> bool {
        key.kind_of_address(&address.monero()).is_some()
    }

    fn plan(
        &self,
        key: &Keys,
        plan: &Plan<Output, Address>,
        fee_rate: u64,
    ) -> Result<Planned<SignableTransaction, Eventuality>, PlanError> {
        let params = &self.params.network;
        utxo::check_shape(plan, params)?;
        let inputs = plan.inputs.iter().map(Output::spendable).collect::<Result<Vec<_>, _>>()?;
        let input_keys: Vec<[u8; 32]> = plan.inputs.iter().map(|o| o.key).collect();
        let total = utxo::checked_sum(plan.inputs.iter().map(|o| o.value))?;
        let mut payments: Vec<(MoneroAddress, u64)> =
            plan.payments.iter().map(|p| (p.address.monero(), p.amount.0)).collect();
        let branch = key.address(OutputKind::Branch);
        payments.extend(plan.branches.iter().map(|b| (branch, b.0)));
        let paid = utxo::checked_sum(payments.iter().map(|(_, a)| *a))?;
        let addresses: Vec<MoneroAddress> =
            plan.payments.iter().map(|p| p.address.monero()).collect();
        let shape = |change| Shape {
            inputs: inputs.len(),
            payments: &addresses,
            branches: plan.branches.len(),
            change,
        };
        // Each fee only when its shape can be: a consolidation (no payment, no branch) has
        // no transaction without change.
        let with_change =
            if plan.change { Some(self.shape_fee(&shape(true), fee_rate)?) } else { None };
        let (change, fee) = utxo::change_and_fee(
            total,
            paid,
            plan.change,
            params.dust.0,
            || with_change.unwrap_or(u64::MAX),
            || fee::shape_fee(&shape(false), fee_rate).unwrap_or(u64::MAX),
        )?;
        if shape(change.is_some()).needs_filler() {
            let seed = primitives::hash(b"tc-monero/v1/filler", &[&input_keys.concat()]);
            payments.push((fee::filler_address(&seed), 0));
        }
        let (change_spec, mask) = match (change, with_change) {
            (Some(_), Some(with_change)) => (
                Change::guaranteed(key.guaranteed().clone(), keys::subaddress(OutputKind::Change)),
                with_change,
            ),
            // No change: everything left is the fee (at least the shape's).
            _ => (Change::fingerprintable(None), self.shape_fee(&shape(false), fee_rate)?),
        };
        let rate = FeeRate::new(fee_rate.max(1), mask.max(1)).ok_or(PlanError::Overflow)?;
        let ovk = outgoing_view_key(key, &input_keys, &payments, change.is_some(), fee_rate);
        let signable = SignableTransaction::new(
            RctType::ClsagBulletproofPlus,
            ovk,
            inputs,
            payments,
            change_spec,
            vec![],
            rate,
        )
        .map_err(|e| PlanError::Key(format!("monero-wallet refused the plan: {e}")))?;
        // The fee monero-wallet computes must be the one charged (see `fee`).
        if signable.necessary_fee() != mask {
            return Err(PlanError::Key(format!(
                "monero-wallet charges {} where the shape's fee is {mask}",
                signable.necessary_fee()
            )));
        }
        let eventuality = Eventuality {
            inputs: input_keys,
            eventuality: MoneroEventuality::from(signable.clone()).serialize(),
        };
        Ok(Planned { signable, eventuality, fee: Amount(fee), change: Amount(change.unwrap_or(0)) })
    }

    async fn publish(&self, tx: &Transaction) -> Result<(), NetworkError> {
        Ok(self.node.publish(tx).await?)
    }

    fn check(&self, block: &Block, pending: &[Eventuality]) -> Vec<Completion> {
        // Index the pending eventualities by the extra any completing transaction carries.
        let parsed: Vec<MoneroEventuality> = pending.iter().map(read_eventuality).collect();
        let mut by_extra: BTreeMap<Vec<u8>, Vec<usize>> = BTreeMap::new();
        for (index, e) in parsed.iter().enumerate() {
            by_extra.entry(e.extra()).or_default().push(index);
        }
        let mut found = vec![];
        let mut settled = BTreeSet::new();
        let txs = block.block.block.transactions.iter().zip(&block.block.transactions);
        for (hash, tx) in txs {
            let Some(candidates) = by_extra.get(&tx.prefix().extra) else { continue };
            for &index in candidates {
                if settled.contains(&index) || !parsed[index].matches(tx) {
                    continue;
                }
                settled.insert(index);
                found.push(Completion::Completed { index, tx: hash.to_vec() });
                // Every other pending plan spending one of these outputs can never complete.
                let spent: BTreeSet<&[u8; 32]> = pending[index].inputs.iter().collect();
                for (other, p) in pending.iter().enumerate() {
                    if other != index
                        && !settled.contains(&other)
                        && p.inputs.iter().any(|i| spent.contains(i))
                    {
                        settled.insert(other);
                        found.push(Completion::Conflict { index: other, tx: hash.to_vec() });
                    }
                }
            }
        }
        found
    }
}

/// How many final blocks the scanner fetches in one request and scans at once: a few
/// megabytes of mainnet blocks with their transactions.
pub const READ_AHEAD: usize = 16;

/// How many rings of one block are chosen at once (requests to the node in flight).
const RINGS_AT_ONCE: usize = 4;
/// How many blocks choose rings at once. With [`RINGS_AT_ONCE`], at most 2 × (1 + 4)
/// copies of the chain's output distribution are held at once (about 170 MB on mainnet).
const RING_BLOCKS_AT_ONCE: usize = 2;

/// The default timeout of one monerod request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
