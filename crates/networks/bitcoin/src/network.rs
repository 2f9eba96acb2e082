//! [`scanner::Network`] for Bitcoin and Litecoin.
use std::collections::HashMap;

use bitcoin::absolute::LockTime;
use bitcoin::hashes::Hash;
use bitcoin::transaction::Version;
use bitcoin::{
    Amount as Sats, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Txid, Witness,
};
use borsh::{BorshDeserialize, BorshSerialize};
use modular_frost::curve::{Ciphersuite, Secp256k1};
use modular_frost::ThresholdKeys;
use primitives::{Amount, ExternalAddress};
use scanner::utxo;
use scanner::{
    BlockRef, ChainBlock, Completion, Instruction, Network, NetworkError, NetworkParams,
    OutputKind, Plan, PlanError, Planned, ReceivedOutput, Spend,
};

use crate::address::Address;
use crate::instruction;
use crate::mweb::NodeBlock;
use crate::params::{MwebRule, Params};
use crate::rpc::{BlockSource, Rpc, RpcError};
use crate::sign::{script_pubkey, PlanMachine, SignableTransaction, TransactionMachine};

/// The group's public key (the untweaked DKG key).
pub type GroupKey = <Secp256k1 as Ciphersuite>::G;

/// A block and its height.
#[derive(Clone, Debug)]
pub struct Block {
    /// Height.
    pub number: u64,
    /// The block (canonical transactions only).
    pub block: bitcoin::Block,
    /// Litecoin with MWEB active: the block has an extension block and its last
    /// transaction is the HogEx, whose outputs after the first are peg-outs.
    pub hogex: bool,
}

impl ChainBlock for Block {
    fn block_ref(&self) -> BlockRef {
        BlockRef {
            number: self.number,
            id: self.block.block_hash().to_byte_array(),
            parent: self.block.header.prev_blockhash.to_byte_array(),
        }
    }
}

/// An output paid to one of our keys.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Output {
    /// Transaction id (internal byte order) and output index.
    pub txid: [u8; 32],
    /// Output index.
    pub vout: u32,
    /// Value in the smallest unit.
    pub value: u64,
    /// Which of our keys it pays.
    pub kind: OutputKind,
    /// The instruction ([`Instruction::Missing`] for our own outputs).
    pub instruction: Instruction,
    /// The spender's address (the first input's script), when standard.
    pub refund: Option<ExternalAddress>,
}

impl Output {
    /// The outpoint.
    pub fn outpoint(&self) -> OutPoint {
        OutPoint { txid: Txid::from_byte_array(self.txid), vout: self.vout }
    }
}

impl ReceivedOutput for Output {
    fn id(&self) -> Vec<u8> {
        let mut id = self.txid.to_vec();
        id.extend(self.vout.to_le_bytes());
        id
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
    fn refund_address(&self) -> Option<&ExternalAddress> {
        self.refund.as_ref()
    }
    fn transaction(&self) -> Vec<u8> {
        self.txid.to_vec()
    }
}

/// What completes a plan: the transaction with this id (segwit ids exclude witnesses, so
/// it is known before signing and commits to every input and output), spending these
/// outpoints. Any other transaction spending one of them is a conflict.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Eventuality {
    /// The planned transaction's id.
    pub txid: [u8; 32],
    /// The outpoints it spends, as `(txid, vout)`.
    pub spends: Vec<([u8; 32], u32)>,
}

/// Bitcoin or Litecoin over a Bitcoin Core-compatible node.
#[derive(Debug)]
pub struct Bitcoin<B> {
    rpc: Rpc,
    blocks: B,
    params: Params,
}

fn transient(e: RpcError) -> NetworkError {
    if e.is_transient() {
        NetworkError::Transient(Box::new(e))
    } else {
        // The node answered, but not what we need: retrying later may still help (a
        // node restarting, a block not yet there), so only configuration errors are
        // fatal.
        match e {
            RpcError::Unauthorized { .. } | RpcError::InvalidUrl(_) => {
                NetworkError::Fatal(Box::new(e))
            }
            e => NetworkError::Transient(Box::new(e)),
        }
    }
}

impl<B: BlockSource> Bitcoin<B> {
    /// A network over `rpc` (headers, fees, publishing) and `blocks` (block bodies).
    pub fn new(rpc: Rpc, blocks: B, params: Params) -> Self {
        Bitcoin { rpc, blocks, params }
    }

    /// The chain parameters.
    pub fn chain_params(&self) -> &Params {
        &self.params
    }

    /// The RPC client.
    pub fn rpc(&self) -> &Rpc {
        &self.rpc
    }

    /// Our address of `kind` for `key`.
    pub fn address_of(&self, key: &GroupKey, kind: OutputKind) -> Result<Address, NetworkError> {
        let script = script_pubkey(*key, kind).map_err(|e| NetworkError::Fatal(Box::new(e)))?;
        Address::from_script(script).map_err(|e| NetworkError::Fatal(Box::new(e)))
    }

    fn scripts(&self, key: &GroupKey) -> Result<HashMap<ScriptBuf, OutputKind>, NetworkError> {
        OutputKind::ALL
            .into_iter()
            .map(|kind| Ok((self.address_of(key, kind)?.script().clone(), kind)))
            .collect()
    }

    async fn refund_of(&self, tx: &Transaction) -> Result<Option<ExternalAddress>, NetworkError> {
        let Some(first) = tx.input.first() else { return Ok(None) };
        if tx.is_coinbase() {
            return Ok(None);
        }
        let prev = self.rpc.raw_transaction(first.previous_output.txid).await.map_err(transient)?;
        let Some(spent) = prev.output.get(first.previous_output.vout as usize) else {
            return Err(NetworkError::Fatal(
                format!(
                    "the node returned transaction {} without output {}",
                    first.previous_output.txid, first.previous_output.vout
                )
                .into(),
            ));
        };
        Ok(Address::from_script(spent.script_pubkey.clone()).ok().map(|a| a.to_external()))
    }
}

/// The unsigned transaction a plan describes, with dummy witnesses when `with_witness`
/// (for exact size computation).
fn build(
    plan: &Plan<Output, Address>,
    change: Option<(ScriptBuf, u64)>,
    branch: &ScriptBuf,
    with_witness: bool,
) -> Transaction {
    let witness = if with_witness { Witness::from_slice(&[[0u8; 64]]) } else { Witness::new() };
    let input = plan
        .inputs
        .iter()
        .map(|o| TxIn {
            previous_output: o.outpoint(),
            script_sig: ScriptBuf::new(),
            // BIP125 opt-in replacement where the coin's nodes allow it (Params::replaceable):
            // a stuck payout is replaced by a version of its plan at a higher fee (the
            // processor's fee bumps); only the group can sign one.
            sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
            witness: witness.clone(),
        })
        .collect();
    let mut output: Vec<TxOut> = plan
        .payments
        .iter()
        .map(|p| TxOut {
            value: Sats::from_sat(p.amount.0),
            script_pubkey: p.address.script().clone(),
        })
        .collect();
    output.extend(
        plan.branches
            .iter()
            .map(|a| TxOut { value: Sats::from_sat(a.0), script_pubkey: branch.clone() }),
    );
    if let Some((script, value)) = change {
        output.push(TxOut { value: Sats::from_sat(value), script_pubkey: script });
    }
    Transaction { version: Version::TWO, lock_time: LockTime::ZERO, input, output }
}

/// The fee for `tx` (built with dummy witnesses) at `rate` sat/kvB, rounded up.
fn fee_for(tx: &Transaction, rate: u64) -> u64 {
    let vsize = tx.vsize() as u64;
    (vsize * rate).div_ceil(1000)
}

impl<B: BlockSource + 'static> Network for Bitcoin<B> {
    type Curve = Secp256k1;
    type Key = GroupKey;
    type Block = Block;
    type Output = Output;
    type Address = Address;
    type Signable = SignableTransaction;
    type Transaction = Transaction;
    type Eventuality = Eventuality;

    fn params(&self) -> &NetworkParams {
        &self.params.network
    }

    fn display_block_id(&self, id: &[u8; 32]) -> String {
        bitcoin::BlockHash::from_byte_array(*id).to_string()
    }

    fn key(&self, keys: &ThresholdKeys<Secp256k1>) -> GroupKey {
        keys.group_key()
    }

    fn sign(
        &self,
        keys: ThresholdKeys<Secp256k1>,
        signable: SignableTransaction,
    ) -> Result<Box<dyn signers::Machine>, PlanError> {
        let machine =
            TransactionMachine::new(keys, signable).map_err(|e| PlanError::Key(e.to_string()))?;
        Ok(Box::new(PlanMachine(machine)))
    }

    fn encode_transaction(&self, tx: &Transaction) -> Vec<u8> {
        bitcoin::consensus::serialize(tx)
    }

    fn decode_transaction(&self, bytes: &[u8]) -> Result<Transaction, scanner::BoxError> {
        Ok(bitcoin::consensus::deserialize(bytes)?)
    }

    fn transaction_id(&self, tx: &Transaction) -> Vec<u8> {
        tx.compute_txid().to_byte_array().to_vec()
    }

    fn display_transaction_id(&self, id: &[u8]) -> String {
        match <[u8; 32]>::try_from(id) {
            Ok(id) => Txid::from_byte_array(id).to_string(),
            Err(_) => hex::encode(id),
        }
    }

    fn replaceable(&self) -> bool {
        self.params.replaceable
    }

    fn children_pay(&self) -> bool {
        true
    }

    fn change_of(
        &self,
        key: &GroupKey,
        planned: &Planned<SignableTransaction, Eventuality>,
    ) -> Option<Output> {
        // The change is the last output (`build`), and a segwit txid is known unsigned.
        if planned.change.0 == 0 {
            return None;
        }
        let change = script_pubkey(*key, OutputKind::Change).ok()?;
        let tx = &planned.signable.tx;
        let vout = tx.output.iter().rposition(|o| o.script_pubkey == change)?;
        Some(Output {
            txid: planned.eventuality.txid,
            vout: u32::try_from(vout).ok()?,
            value: tx.output[vout].value.to_sat(),
            kind: OutputKind::Change,
            instruction: Instruction::Missing,
            refund: None,
        })
    }

    fn spends_visible(&self) -> bool {
        true
    }

    fn spends(&self, block: &Block) -> Vec<Spend> {
        let mut spends = vec![];
        for tx in &block.block.txdata {
            if tx.is_coinbase() {
                continue;
            }
            let txid = tx.compute_txid().to_byte_array().to_vec();
            for input in &tx.input {
                let mut output = input.previous_output.txid.to_byte_array().to_vec();
                output.extend(input.previous_output.vout.to_le_bytes());
                spends.push(Spend { output, tx: txid.clone() });
            }
        }
        spends
    }

    async fn latest_finalized(&self) -> Result<Option<u64>, NetworkError> {
        let height = self.rpc.block_count().await.map_err(transient)?;
        Ok((height + 1).checked_sub(self.params.network.confirmations))
    }

    async fn block_ref(&self, number: u64) -> Result<BlockRef, NetworkError> {
        let hash = self.rpc.block_hash(number).await.map_err(transient)?;
        let header = self.rpc.block_header(hash).await.map_err(transient)?;
        if header.block_hash() != hash {
            return Err(NetworkError::Fatal(
                format!("the node's header for block {hash} hashes to {}", header.block_hash())
                    .into(),
            ));
        }
        Ok(BlockRef {
            number,
            id: hash.to_byte_array(),
            parent: header.prev_blockhash.to_byte_array(),
        })
    }

    async fn block(&self, number: u64) -> Result<Block, NetworkError> {
        let hash = self.rpc.block_hash(number).await.map_err(transient)?;
        let NodeBlock { block, extension } = self.blocks.block(&hash).await.map_err(transient)?;
        // Never trust the transport: the body must hash to what we asked for and match
        // its merkle root (the decoder checked the extension against the HogEx).
        if block.block_hash() != hash || !block.check_merkle_root() {
            return Err(NetworkError::Transient(
                format!(
                    "block {hash} from the block source does not match its hash or merkle root"
                )
                .into(),
            ));
        }
        let refused = |why: String| {
            Err(NetworkError::Transient(format!("block {hash} at height {number}: {why}").into()))
        };
        match (self.params.mweb, extension) {
            (_, Some(e)) if e.height != number => {
                return refused(format!("its MWEB extension block is for height {}", e.height))
            }
            (MwebRule::Never, Some(_)) => {
                return refused("it carries an MWEB extension block, and this coin has none".into())
            }
            (MwebRule::From(from), Some(_)) if number < from => {
                return refused(format!(
                    "it carries an MWEB extension block before MWEB's activation at {from}"
                ))
            }
            (MwebRule::From(from), None) if number >= from => {
                return refused(format!(
                    "it has no HogEx and extension block, which MWEB requires from {from}"
                ))
            }
            _ => {}
        }
        Ok(Block { number, block, hogex: extension.is_some() })
    }

    async fn scan(&self, block: &Block, key: &GroupKey) -> Result<Vec<Output>, NetworkError> {
        let scripts = self.scripts(key)?;
        let mut found = vec![];
        let last = block.block.txdata.len().saturating_sub(1);
        for (index, tx) in block.block.txdata.iter().enumerate() {
            let ours: Vec<_> = tx
                .output
                .iter()
                .enumerate()
                .filter_map(|(vout, o)| scripts.get(&o.script_pubkey).map(|kind| (vout, o, *kind)))
                .collect();
            if ours.is_empty() {
                continue;
            }
            let txid = tx.compute_txid().to_byte_array();
            let external = ours.iter().any(|(_, _, kind)| *kind == OutputKind::External);
            // A HogEx's outputs after the first are peg-outs: their sender is inside the
            // extension block and unknown (its inputs are the previous HogEx and this
            // block's peg-ins), so there is no address to refund.
            let pegout = block.hogex && index == last;
            let (instruction, refund) = if external && pegout {
                (instruction::of_transaction(tx), None)
            } else if external {
                (instruction::of_transaction(tx), self.refund_of(tx).await?)
            } else {
                (Instruction::Missing, None)
            };
            for (vout, o, kind) in ours {
                let external = kind == OutputKind::External;
                found.push(Output {
                    txid,
                    vout: u32::try_from(vout).unwrap_or(u32::MAX),
                    value: o.value.to_sat(),
                    kind,
                    instruction: if external { instruction.clone() } else { Instruction::Missing },
                    refund: if external { refund.clone() } else { None },
                });
            }
        }
        Ok(found)
    }

    async fn fee_rate(&self) -> Result<u64, NetworkError> {
        let estimate =
            self.rpc.estimate_smart_fee(self.params.fee_target_blocks).await.map_err(transient)?;
        match (estimate, self.params.fallback_fee_rate) {
            (Some(rate), _) => Ok(rate),
            (None, Some(fallback)) => Ok(fallback),
            (None, None) => Err(NetworkError::Transient(
                "the node has no fee estimate yet and no fallback is configured".into(),
            )),
        }
    }

    async fn block_fee_rate(&self, block: &Block) -> Result<u64, NetworkError> {
        #[derive(serde::Deserialize)]
        struct Stats {
            feerate_percentiles: [u64; 5],
        }
        let hash = block.block.block_hash();
        let stats: Stats = self
            .rpc
            .call("getblockstats", serde_json::json!([hash.to_string(), ["feerate_percentiles"]]))
            .await
            .map_err(transient)?;
        // The block's median fee rate (sat/vB), within the floor and the ceiling.
        let median = stats.feerate_percentiles[2].saturating_mul(1000);
        Ok(self.params.network.clamp_fee_rate(median))
    }

    fn fee(
        &self,
        inputs: usize,
        payments: &[&Address],
        branches: usize,
        change: bool,
        rate: u64,
    ) -> Amount {
        // Only sizes matter: dummy inputs, and P2TR scripts for our own outputs.
        let ours = ScriptBuf::from_bytes([&[0x51, 0x20][..], &[0u8; 32]].concat());
        let plan = Plan {
            inputs: (0..inputs)
                .map(|i| Output {
                    txid: [0; 32],
                    vout: u32::try_from(i).unwrap_or(u32::MAX),
                    value: 0,
                    kind: OutputKind::External,
                    instruction: Instruction::Missing,
                    refund: None,
                })
                .collect(),
            payments: payments
                .iter()
                .map(|a| scanner::PlannedPayment { address: (*a).clone(), amount: Amount::ZERO })
                .collect(),
            branches: vec![Amount::ZERO; branches],
            change,
        };
        let change = change.then(|| (ours.clone(), 0));
        Amount(fee_for(&build(&plan, change, &ours, true), rate))
    }

    fn address(&self, address: &ExternalAddress) -> Option<Address> {
        Address::from_external(address).ok()
    }

    fn forward_address(&self, successor: &[u8]) -> Option<ExternalAddress> {
        let key = Secp256k1::read_G(&mut &*successor).ok()?;
        let script = script_pubkey(key, OutputKind::Forwarded).ok()?;
        Address::from_script(script).ok().map(|a| a.to_external())
    }

    fn owns(&self, key: &GroupKey, address: &Address) -> bool {
        OutputKind::ALL
            .into_iter()
            .any(|kind| script_pubkey(*key, kind).is_ok_and(|s| &s == address.script()))
    }

    fn plan(
        &self,
        key: &GroupKey,
        plan: &Plan<Output, Address>,
        fee_rate: u64,
    ) -> Result<Planned<SignableTransaction, Eventuality>, PlanError> {
        let limits = &self.params.network;
        utxo::check_shape(plan, limits)?;
        let script = |kind| script_pubkey(*key, kind).map_err(|e| PlanError::Key(e.to_string()));
        let branch = script(OutputKind::Branch)?;
        let change_script = script(OutputKind::Change)?;

        let inputs = utxo::checked_sum(plan.inputs.iter().map(|o| o.value))?;
        let paid = utxo::checked_sum(
            plan.payments.iter().map(|p| p.amount.0).chain(plan.branches.iter().map(|a| a.0)),
        )?;
        let (change, fee) = utxo::change_and_fee(
            inputs,
            paid,
            plan.change,
            limits.dust.0,
            || fee_for(&build(plan, Some((change_script.clone(), 0)), &branch, true), fee_rate),
            || fee_for(&build(plan, None, &branch, true), fee_rate),
        )?;
        let change = change.map(|value| (change_script, value));
        let change_value = change.as_ref().map_or(0, |(_, v)| *v);
        let tx = build(plan, change, &branch, false);
        let prevouts = plan
            .inputs
            .iter()
            .map(|o| Ok(TxOut { value: Sats::from_sat(o.value), script_pubkey: script(o.kind)? }))
            .collect::<Result<Vec<_>, PlanError>>()?;
        let kinds = plan.inputs.iter().map(|o| o.kind).collect();
        let eventuality = Eventuality {
            txid: tx.compute_txid().to_byte_array(),
            spends: plan.inputs.iter().map(|o| (o.txid, o.vout)).collect(),
        };
        let signable = SignableTransaction::new(tx, prevouts, kinds)
            .map_err(|e| PlanError::Key(e.to_string()))?;
        Ok(Planned { signable, eventuality, fee: Amount(fee), change: Amount(change_value) })
    }

    async fn publish(&self, tx: &Transaction) -> Result<(), NetworkError> {
        let txid = tx.compute_txid();
        match self.rpc.send_raw_transaction(tx).await {
            Ok(_) => Ok(()),
            Err(e) => {
                // Already in the mempool or in the chain is success; ask rather than
                // parse error strings, which differ between node versions.
                let known = self.rpc.mempool_contains(txid).await.unwrap_or(false)
                    || self.rpc.raw_transaction(txid).await.is_ok();
                if known {
                    Ok(())
                } else {
                    Err(transient(e))
                }
            }
        }
    }

    fn check(&self, block: &Block, pending: &[Eventuality]) -> Vec<Completion> {
        let txs = block.block.txdata.iter().map(|tx| {
            let spent = tx
                .input
                .iter()
                .map(|i| (i.previous_output.txid.to_byte_array(), i.previous_output.vout));
            (tx.compute_txid().to_byte_array(), spent.collect())
        });
        utxo::spends_against(txs, pending.iter().map(|e| (&e.txid, e.spends.as_slice())))
    }
}
