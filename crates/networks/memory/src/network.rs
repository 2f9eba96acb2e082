//! [`scanner::Network`] over a [`Chain`].

use modular_frost::algorithm::{IetfSchnorr, SchnorrSignature};
use modular_frost::curve::{IetfSecp256k1Hram, Secp256k1};
use modular_frost::ThresholdKeys;
use primitives::{Amount, ExternalAddress, Versioned};
use scanner::utxo;
use scanner::{
    BlockRef, ChainBlock, Completion, Instruction, Network, NetworkError, NetworkParams,
    OutputKind, Plan, PlanError, Planned, Spend,
};
use signers::{FrostMachine, SignFailure};

use crate::chain::Chain;
use crate::types::{
    self, addresses_of, decode_instruction, key_bytes, output_id, Address, Block, Eventuality,
    GroupKey, Output, Signable, Transaction, TransactionBody, TxOutput,
};

/// How many blocks the scanner reads ahead on this network.
pub const READ_AHEAD: usize = 3;

/// The size model's fixed part of a transaction.
pub const TX_OVERHEAD: u64 = 10;
/// The size model's cost of one input.
pub const INPUT_SIZE: u64 = 58;
/// The size model's cost of one output, besides its address bytes.
pub const OUTPUT_OVERHEAD: u64 = 9;

/// A transaction's size in the model: [`TX_OVERHEAD`], [`INPUT_SIZE`] per input, and
/// [`OUTPUT_OVERHEAD`] plus the address length per output (our own addresses are 34
/// bytes, so a branch or change output counts 43).
pub fn vsize<'a>(inputs: usize, outputs: impl IntoIterator<Item = &'a [u8]>) -> u64 {
    let outputs: u64 =
        outputs.into_iter().map(|a| OUTPUT_OVERHEAD.saturating_add(a.len() as u64)).sum();
    TX_OVERHEAD.saturating_add((inputs as u64).saturating_mul(INPUT_SIZE)).saturating_add(outputs)
}

/// The fee of `vsize` at `rate` per 1000 units of size, rounded up.
pub fn fee_for(vsize: u64, rate: u64) -> u64 {
    vsize.saturating_mul(rate).div_ceil(1000)
}

/// A view of a [`Chain`] implementing [`scanner::Network`]. Cheap to clone; every view of
/// a chain sees (and publishes to) the same chain.
#[derive(Clone, Debug)]
pub struct MemoryNetwork {
    chain: Chain,
    /// This view's own parameters, when they differ from the chain's (a processor
    /// configured unlike the others).
    params: Option<NetworkParams>,
}

impl MemoryNetwork {
    pub(crate) fn new(chain: Chain) -> Self {
        MemoryNetwork { chain, params: None }
    }

    /// A view of `chain` with parameters of its own (confirmations, limits, fee bounds):
    /// what a processor configured unlike the rest of its set sees.
    pub fn with_params(chain: &Chain, params: NetworkParams) -> Self {
        MemoryNetwork { chain: chain.clone(), params: Some(params) }
    }

    /// The chain this is a view of.
    pub fn chain(&self) -> &Chain {
        &self.chain
    }

    fn fault(&self, call: &str) -> Result<(), NetworkError> {
        if self.chain.take_failure() {
            return Err(NetworkError::Transient(format!("injected failure of {call}").into()));
        }
        Ok(())
    }

    fn block_at<T>(&self, number: u64, f: impl FnOnce(&Block) -> T) -> Result<T, NetworkError> {
        self.chain.read(|blocks, _| {
            let block = usize::try_from(number).ok().and_then(|n| blocks.get(n));
            block.map(f).ok_or_else(|| {
                NetworkError::Transient(
                    format!("block {number} is above the tip {}", blocks.len() - 1).into(),
                )
            })
        })
    }
}

impl Network for MemoryNetwork {
    type Curve = Secp256k1;
    type Key = GroupKey;
    type Block = Block;
    type Output = Output;
    type Address = Address;
    type Signable = Signable;
    type Transaction = Transaction;
    type Eventuality = Eventuality;

    fn params(&self) -> &NetworkParams {
        self.params.as_ref().unwrap_or_else(|| self.chain.params())
    }

    fn key(&self, keys: &ThresholdKeys<Secp256k1>) -> GroupKey {
        keys.group_key()
    }

    fn sign(
        &self,
        keys: ThresholdKeys<Secp256k1>,
        signable: Signable,
    ) -> Result<Box<dyn signers::Machine>, PlanError> {
        let key = keys.group_key();
        if signable.tx.signer != Some(key_bytes(&key)) {
            return Err(PlanError::Key("the transaction is not signed by this key".into()));
        }
        let id = signable.id();
        let body = signable.tx;
        let finish = move |signature: SchnorrSignature<Secp256k1>| {
            if !types::verify(&key, &id, &signature) {
                return Err(SignFailure::Failed(format!(
                    "BUG: the aggregated signature of {} does not verify",
                    hex::encode(id)
                )));
            }
            Ok(Transaction { body, signature: Some(signature.serialize()) }.encode())
        };
        let algorithm = IetfSchnorr::<Secp256k1, IetfSecp256k1Hram>::ietf();
        // What it signs, stated (the transaction's id): the coordinator counts only the
        // key holders that state the same, though it cannot check these shares.
        Ok(Box::new(FrostMachine::new(algorithm, keys, id.to_vec(), finish).stating(id.to_vec())))
    }

    fn encode_transaction(&self, tx: &Transaction) -> Vec<u8> {
        tx.encode()
    }

    fn decode_transaction(&self, bytes: &[u8]) -> Result<Transaction, scanner::BoxError> {
        Ok(Transaction::decode(bytes)?)
    }

    fn transaction_id(&self, tx: &Transaction) -> Vec<u8> {
        tx.id().to_vec()
    }

    fn replaceable(&self) -> bool {
        !self.chain.refuses_replacements()
    }

    fn children_pay(&self) -> bool {
        true
    }

    fn change_of(
        &self,
        key: &GroupKey,
        planned: &Planned<Signable, Eventuality>,
    ) -> Option<Output> {
        let change = types::address_of(key, OutputKind::Change);
        let outputs = &planned.signable.tx.outputs;
        let index = outputs.iter().position(|o| o.address == change)?;
        Some(Output {
            tx: planned.eventuality.tx,
            index: u32::try_from(index).ok()?,
            amount: outputs[index].amount,
            kind: OutputKind::Change,
            instruction: Instruction::Missing,
            refund: None,
        })
    }

    fn spends_visible(&self) -> bool {
        !self.chain.hides_spends()
    }

    fn spends(&self, block: &Block) -> Vec<Spend> {
        let mut spends = vec![];
        if self.chain.hides_spends() {
            return spends;
        }
        for tx in &block.txs {
            let id = tx.id().to_vec();
            for input in &tx.body.inputs {
                spends.push(Spend { output: input.clone(), tx: id.clone() });
            }
        }
        spends
    }

    async fn latest_finalized(&self) -> Result<Option<u64>, NetworkError> {
        self.fault("latest_finalized")?;
        let height = self.chain.height();
        Ok((height + 1).checked_sub(self.params().confirmations))
    }

    async fn block_ref(&self, number: u64) -> Result<BlockRef, NetworkError> {
        self.fault("block_ref")?;
        self.block_at(number, Block::block_ref)
    }

    async fn block(&self, number: u64) -> Result<Block, NetworkError> {
        self.fault("block")?;
        self.block_at(number, Block::clone)
    }

    /// A few blocks at a time, so that every pipeline test runs the scanner's read-ahead
    /// (with the injected failures and reorgs).
    fn read_ahead(&self) -> usize {
        READ_AHEAD
    }

    async fn scan(&self, block: &Block, key: &GroupKey) -> Result<Vec<Output>, NetworkError> {
        self.fault("scan")?;
        let ours = addresses_of(key);
        let mut found = vec![];
        for tx in &block.txs {
            let id = self.chain.reported_tx(tx.id());
            for (index, output) in (0u32..).zip(&tx.body.outputs) {
                let Some((_, kind)) = ours.iter().find(|(a, _)| *a == output.address) else {
                    continue;
                };
                let external = *kind == OutputKind::External;
                found.push(Output {
                    tx: id,
                    index,
                    amount: output.amount,
                    kind: *kind,
                    instruction: if external {
                        decode_instruction(tx.body.data.as_deref())
                    } else {
                        Instruction::Missing
                    },
                    refund: if external { tx.body.from.clone() } else { None },
                });
            }
        }
        Ok(found)
    }

    async fn fee_rate(&self) -> Result<u64, NetworkError> {
        self.fault("fee_rate")?;
        Ok(self.chain.read(|_, rate| rate))
    }

    async fn block_fee_rate(&self, block: &Block) -> Result<u64, NetworkError> {
        self.fault("block_fee_rate")?;
        Ok(self.params().clamp_fee_rate(block.fee_rate))
    }

    fn fee(
        &self,
        inputs: usize,
        payments: &[&Address],
        branches: usize,
        change: bool,
        rate: u64,
    ) -> Amount {
        // Only lengths matter: any 34-byte address stands for ours.
        let ours = [0u8; 34];
        let own = branches + usize::from(change);
        let outputs = payments.iter().map(|a| a.0.as_slice()).chain((0..own).map(|_| &ours[..]));
        Amount(fee_for(vsize(inputs, outputs), rate))
    }

    fn address(&self, address: &ExternalAddress) -> Option<Address> {
        Some(Address(address.as_bytes().to_vec()))
    }

    fn forward_address(&self, successor: &[u8]) -> Option<ExternalAddress> {
        let key =
            <Secp256k1 as modular_frost::curve::Ciphersuite>::read_G(&mut &*successor).ok()?;
        ExternalAddress::new(types::address_of(&key, OutputKind::Forwarded)).ok()
    }

    fn owns(&self, key: &GroupKey, address: &Address) -> bool {
        addresses_of(key).iter().any(|(ours, _)| *ours == address.0)
    }

    fn plan(
        &self,
        key: &GroupKey,
        plan: &Plan<Output, Address>,
        fee_rate: u64,
    ) -> Result<Planned<Signable, Eventuality>, PlanError> {
        let limits = self.params();
        utxo::check_shape(plan, limits)?;
        let branch = types::address_of(key, OutputKind::Branch);
        let change_address = types::address_of(key, OutputKind::Change);
        let skew = self.chain().plan_skew();

        let inputs = utxo::checked_sum(plan.inputs.iter().map(|o| o.amount.0))?;
        let paid = utxo::checked_sum(
            plan.payments.iter().map(|p| p.amount.0).chain(plan.branches.iter().map(|a| a.0)),
        )?;
        let mut body_outputs: Vec<TxOutput> = plan
            .payments
            .iter()
            .map(|p| TxOutput { address: p.address.0.clone(), amount: p.amount })
            .chain(plan.branches.iter().map(|a| TxOutput { address: branch.clone(), amount: *a }))
            .collect();
        let size = |change: bool| {
            let addresses = body_outputs.iter().map(|o| o.address.as_slice());
            let change = change.then_some(change_address.as_slice());
            vsize(plan.inputs.len(), addresses.chain(change))
        };

        let (change, fee) = utxo::change_and_fee(
            inputs,
            paid,
            plan.change,
            limits.dust.0,
            || fee_for(size(true), fee_rate) + skew,
            || fee_for(size(false), fee_rate) + skew,
        )?;
        if let Some(change) = change {
            body_outputs.push(TxOutput { address: change_address, amount: Amount(change) });
        }
        // Shuffled, as Monero's transactions are: the processor may rely on no order.
        body_outputs.sort_by_cached_key(|o| {
            primitives::hash(b"tc-memory/v1/output-order", &[&o.address, &o.amount.0.to_le_bytes()])
        });
        let tx = TransactionBody {
            inputs: plan.inputs.iter().map(|o| output_id(&o.tx, o.index)).collect(),
            outputs: body_outputs,
            data: None,
            from: None,
            signer: Some(key_bytes(key)),
        };
        let eventuality = Eventuality { tx: tx.id(), spends: tx.inputs.clone() };
        Ok(Planned {
            signable: Signable { tx },
            eventuality,
            fee: Amount(fee),
            change: Amount(change.unwrap_or(0)),
        })
    }

    async fn publish(&self, tx: &Transaction) -> Result<(), NetworkError> {
        self.fault("publish")?;
        self.chain.publish(tx).map_err(|why| {
            tracing::warn!(tx = %hex::encode(tx.id()), %why, "publish refused");
            NetworkError::Transient(Box::new(why))
        })
    }

    fn check(&self, block: &Block, pending: &[Eventuality]) -> Vec<Completion> {
        let txs = block.txs.iter().map(|tx| (tx.id(), tx.body.inputs.clone()));
        utxo::spends_against(txs, pending.iter().map(|e| (&e.tx, e.spends.as_slice())))
    }
}
