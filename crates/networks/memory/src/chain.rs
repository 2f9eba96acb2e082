//! The shared chain: blocks, mempool, faucet, and the test controls.
use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use modular_frost::algorithm::SchnorrSignature;
use modular_frost::curve::Secp256k1;
use primitives::{Amount, ExternalAddress, InInstruction};
use scanner::{NetworkParams, OutputKind};

use crate::network::MemoryNetwork;
use crate::types::{
    self, addresses_of, output_id, parse_key, Block, GroupKey, Transaction, TransactionBody,
    TxOutput, FAUCET_DOMAIN,
};

/// Why a transaction was not accepted into the mempool (or dropped when mining).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refused {
    /// It spends nothing.
    #[error("the transaction has no inputs")]
    NoInputs,
    /// It spends the same output twice.
    #[error("input {0} is spent twice by the transaction")]
    DuplicateInput(String),
    /// An input is neither on the best chain, nor created in the mempool, nor a faucet
    /// output.
    #[error("input {0} does not exist")]
    UnknownInput(String),
    /// An input is already spent on the best chain or in the mempool.
    #[error("input {0} is already spent")]
    Spent(String),
    /// Published transactions must say which group key signs them.
    #[error("the transaction has no signer")]
    NoSigner,
    /// The signer is not a valid key.
    #[error("the signer is not a valid key")]
    InvalidSigner,
    /// An input is not paid to one of the signer's addresses.
    #[error("input {0} is not paid to the signer")]
    NotSignersOutput(String),
    /// The signature is missing, malformed, or does not verify under the signer.
    #[error("the signature does not verify under the signer")]
    BadSignature,
    /// The outputs exceed the inputs.
    #[error("the outputs ({outputs}) exceed the inputs ({inputs})")]
    Overspend {
        /// Sum of the inputs.
        inputs: u128,
        /// Sum of the outputs.
        outputs: u128,
    },
    /// It spends what a mempool transaction of ours spends, without paying more.
    #[error("a replacement must pay more than the {replaced} it replaces, not {offered}")]
    ReplacementFee {
        /// What the replaced transactions pay.
        replaced: u64,
        /// What it pays.
        offered: u64,
    },
}

/// Everything behind the lock.
#[derive(Debug)]
struct State {
    /// The best chain; `blocks[n].number == n`.
    blocks: Vec<Block>,
    /// Transactions not yet mined, in arrival order, with their ids.
    mempool: Vec<([u8; 32], Transaction)>,
    /// The fee rate recorded in blocks mined from now on.
    fee_rate: u64,
    /// How many reorgs happened (mixed into block ids).
    reorgs: u64,
    /// How many faucet outputs were minted.
    deposits: u64,
    /// Every faucet output ever minted: outside the chain, so reorgs leave them alone.
    faucet: HashMap<Vec<u8>, TxOutput>,
    /// How many Network calls still fail.
    fail: u32,
    /// Added by `plan` to every fee it computes (a planner out of step with `fee`).
    plan_skew: u64,
    /// Spends are not shown (as on Monero): see [`Chain::hide_spends`].
    hide_spends: bool,
    /// Transactions of ours paying less (per 1,000 units of size) stay in the mempool
    /// when mining: see [`Chain::set_mining_floor`].
    mining_floor: u64,
    /// Replacements are refused, as Litecoin Core's default: see
    /// [`Chain::refuse_replacements`].
    no_replacement: bool,
    /// Ids of the transactions `publish` accepted.
    published: BTreeSet<[u8; 32]>,
    /// Every output created on the best chain, spent or not.
    outputs: HashMap<Vec<u8>, TxOutput>,
    /// Output id (faucet outputs included) → the best-chain transaction spending it.
    spent: HashMap<Vec<u8>, [u8; 32]>,
    /// Id → height of every best-chain transaction.
    mined: HashMap<[u8; 32], u64>,
    /// Transactions whose outputs scanning reports under another's ids.
    aliases: HashMap<[u8; 32], [u8; 32]>,
}

impl State {
    fn tip(&self) -> &Block {
        // The genesis block is never disconnected.
        &self.blocks[self.blocks.len() - 1]
    }

    fn connect(&mut self, block: Block) {
        for tx in &block.txs {
            let id = tx.id();
            for input in &tx.body.inputs {
                self.spent.insert(input.clone(), id);
            }
            for (index, output) in (0u32..).zip(&tx.body.outputs) {
                self.outputs.insert(output_id(&id, index), output.clone());
            }
            self.mined.insert(id, block.number);
        }
        self.blocks.push(block);
    }

    fn reindex(&mut self) {
        let blocks = std::mem::take(&mut self.blocks);
        self.outputs.clear();
        self.spent.clear();
        self.mined.clear();
        for block in blocks {
            self.connect(block);
        }
    }

    /// The outputs `body` spends, each of which must exist (on the best chain, in
    /// `pending`: outputs of unmined transactions before it, or in the faucet) and be
    /// unspent (on the best chain and in `pending_spent`), once each; and its outputs
    /// must not exceed them.
    fn check_inputs(
        &self,
        body: &TransactionBody,
        pending: &HashMap<Vec<u8>, TxOutput>,
        pending_spent: &HashSet<Vec<u8>>,
    ) -> Result<Vec<TxOutput>, Refused> {
        if body.inputs.is_empty() {
            return Err(Refused::NoInputs);
        }
        let mut seen = HashSet::new();
        let mut spent = Vec::with_capacity(body.inputs.len());
        for input in &body.inputs {
            let shown = || hex::encode(input);
            if !seen.insert(input) {
                return Err(Refused::DuplicateInput(shown()));
            }
            let output = self
                .outputs
                .get(input)
                .or_else(|| pending.get(input))
                .or_else(|| self.faucet.get(input))
                .ok_or_else(|| Refused::UnknownInput(shown()))?;
            if self.spent.contains_key(input) || pending_spent.contains(input) {
                return Err(Refused::Spent(shown()));
            }
            spent.push(output.clone());
        }
        let inputs: u128 = spent.iter().map(|o| u128::from(o.amount.0)).sum();
        let outputs: u128 = body.outputs.iter().map(|o| u128::from(o.amount.0)).sum();
        if outputs > inputs {
            return Err(Refused::Overspend { inputs, outputs });
        }
        Ok(spent)
    }

    /// The mempool's effect on top of the best chain: outputs it creates, outputs it
    /// spends.
    fn pending(&self) -> (HashMap<Vec<u8>, TxOutput>, HashSet<Vec<u8>>) {
        let mut created = HashMap::new();
        let mut spent = HashSet::new();
        for (id, tx) in &self.mempool {
            spent.extend(tx.body.inputs.iter().cloned());
            for (index, output) in (0u32..).zip(&tx.body.outputs) {
                created.insert(output_id(id, index), output.clone());
            }
        }
        (created, spent)
    }

    /// Mines one block holding every mempool transaction still valid, in mempool order;
    /// the others are dropped.
    fn mine_one(&mut self) {
        let mut created = HashMap::new();
        let mut spent = HashSet::new();
        let mut txs = vec![];
        // Parents the transactions spending their outputs lift to the floor, from the
        // mempool as it is before mining.
        let lifted: HashSet<[u8; 32]> = self
            .mempool
            .iter()
            .filter(|(id, tx)| self.package_rate(id, &tx.body) >= self.mining_floor)
            .map(|(id, _)| *id)
            .collect();
        let mut kept = vec![];
        for (id, tx) in std::mem::take(&mut self.mempool) {
            let inputs = match self.check_inputs(&tx.body, &created, &spent) {
                Ok(inputs) => inputs,
                Err(why) => {
                    tracing::debug!(tx = %hex::encode(id), %why, "dropped from the mempool");
                    continue;
                }
            };
            if tx.body.signer.is_some()
                && fee_rate_of(&tx.body, &inputs) < self.mining_floor
                && !lifted.contains(&id)
            {
                kept.push((id, tx));
                continue;
            }
            spent.extend(tx.body.inputs.iter().cloned());
            for (index, output) in (0u32..).zip(&tx.body.outputs) {
                created.insert(output_id(&id, index), output.clone());
            }
            txs.push(tx);
        }
        self.mempool = kept;
        let tip = self.tip();
        let (parent, number) = (tip.id, tip.number + 1);
        let id = Block::compute_id(&parent, number, self.fee_rate, self.reorgs, &txs);
        self.connect(Block { number, id, parent, txs, fee_rate: self.fee_rate });
    }

    /// What `body` (id `id`, its inputs on the chain) and the mempool transactions
    /// spending its outputs pay together, per 1,000 units of their sizes: a child paying
    /// for its parent.
    fn package_rate(&self, id: &[u8; 32], body: &TransactionBody) -> u64 {
        let created: Vec<Vec<u8>> = (0..body.outputs.len())
            .map(|i| output_id(id, u32::try_from(i).unwrap_or(u32::MAX)))
            .collect();
        let (mut fee, mut vsize) = (self.fee_of(body), size_of(body));
        for (_, child) in &self.mempool {
            if child.body.inputs.iter().any(|i| created.contains(i)) {
                let from_parent: u64 = child
                    .body
                    .inputs
                    .iter()
                    .filter_map(|i| created.iter().position(|c| c == i))
                    .map(|k| body.outputs[k].amount.0)
                    .sum();
                let child_out: u64 = child.body.outputs.iter().map(|o| o.amount.0).sum();
                fee = fee.saturating_add(from_parent.saturating_sub(child_out));
                vsize = vsize.saturating_add(size_of(&child.body));
            }
        }
        fee.saturating_mul(1000) / vsize.max(1)
    }

    /// Removes from the mempool the transactions of `signer` that spend any input of
    /// `body` (a replacement), if `body` pays more than all of them together; the
    /// mempool is unchanged otherwise.
    fn replace(&mut self, body: &TransactionBody) -> Result<(), Refused> {
        let conflicting: Vec<usize> = (0..self.mempool.len())
            .filter(|i| {
                let other = &self.mempool[*i].1.body;
                other.signer.is_some()
                    && other.signer == body.signer
                    && other.inputs.iter().any(|input| body.inputs.contains(input))
            })
            .collect();
        if conflicting.is_empty() {
            return Ok(());
        }
        if self.no_replacement {
            let input = body.inputs.first().map(hex::encode).unwrap_or_default();
            return Err(Refused::Spent(input));
        }
        let mut rest = self.mempool.clone();
        let mut replaced = 0u64;
        for i in conflicting.iter().rev() {
            let (_, tx) = rest.remove(*i);
            replaced = replaced.saturating_add(self.fee_of(&tx.body));
        }
        let offered = self.fee_of(body);
        if offered <= replaced {
            return Err(Refused::ReplacementFee { replaced, offered });
        }
        self.mempool = rest;
        Ok(())
    }

    /// What `body` pays in fees (0 if its inputs are unknown).
    fn fee_of(&self, body: &TransactionBody) -> u64 {
        let known = |input: &Vec<u8>| {
            self.outputs.get(input).or_else(|| self.faucet.get(input)).map(|o| o.amount.0)
        };
        let inputs: u64 = body.inputs.iter().filter_map(known).sum();
        let outputs: u64 = body.outputs.iter().map(|o| o.amount.0).sum();
        inputs.saturating_sub(outputs)
    }

    /// Checks a transaction of ours for the mempool (`publish`): spendable inputs, all
    /// paid to the signer, a valid signature, no overspend.
    fn validate(&self, tx: &Transaction) -> Result<(), Refused> {
        let signer = tx.body.signer.ok_or(Refused::NoSigner)?;
        let key = parse_key(&signer).ok_or(Refused::InvalidSigner)?;
        let (created, spent) = self.pending();
        let inputs = self.check_inputs(&tx.body, &created, &spent)?;
        let ours = addresses_of(&key);
        for (input, output) in tx.body.inputs.iter().zip(&inputs) {
            if !ours.iter().any(|(address, _)| *address == output.address) {
                return Err(Refused::NotSignersOutput(hex::encode(input)));
            }
        }
        let signature = tx
            .signature
            .as_deref()
            .and_then(|bytes| {
                let mut reader = bytes;
                let signature = SchnorrSignature::<Secp256k1>::read(&mut reader).ok();
                signature.filter(|_| reader.is_empty())
            })
            .ok_or(Refused::BadSignature)?;
        if !types::verify(&key, &tx.id(), &signature) {
            return Err(Refused::BadSignature);
        }
        Ok(())
    }
}

/// The shared chain. Clones are the same chain: an `Arc<Mutex<..>>` (std) inside, never
/// held across an `.await`.
#[derive(Clone)]
pub struct Chain {
    state: Arc<Mutex<State>>,
    params: Arc<NetworkParams>,
}

impl fmt::Debug for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Chain");
        d.field("network", &self.params.network);
        if let Ok(state) = self.state.try_lock() {
            d.field("height", &state.tip().number).field("mempool", &state.mempool.len());
        }
        d.finish_non_exhaustive()
    }
}

impl Chain {
    /// A chain with only a genesis block (number 0) whose blocks record `min_fee_rate`
    /// until [`Chain::set_fee_rate`].
    pub fn new(params: NetworkParams) -> Chain {
        let fee_rate = params.min_fee_rate;
        let genesis = Block {
            number: 0,
            id: Block::compute_id(&[0; 32], 0, fee_rate, 0, &[]),
            parent: [0; 32],
            txs: vec![],
            fee_rate,
        };
        let mut state = State {
            blocks: vec![],
            mempool: vec![],
            fee_rate,
            reorgs: 0,
            deposits: 0,
            faucet: HashMap::new(),
            fail: 0,
            plan_skew: 0,
            hide_spends: false,
            mining_floor: 0,
            no_replacement: false,
            published: BTreeSet::new(),
            outputs: HashMap::new(),
            spent: HashMap::new(),
            mined: HashMap::new(),
            aliases: HashMap::new(),
        };
        state.connect(genesis);
        Chain { state: Arc::new(Mutex::new(state)), params: Arc::new(params) }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock (a failing test) leaves the state consistent:
        // every mutation completes before anything can panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn params(&self) -> &NetworkParams {
        &self.params
    }

    /// A view implementing [`scanner::Network`] over this chain (cheap; many may exist).
    pub fn network(&self) -> MemoryNetwork {
        MemoryNetwork::new(self.clone())
    }

    /// The tip's number.
    pub fn height(&self) -> u64 {
        self.state().tip().number
    }

    /// Mines `n` blocks; the first includes every mempool transaction still valid (in
    /// mempool order; the others are dropped), later ones are empty.
    pub fn mine(&self, n: u64) {
        let mut state = self.state();
        for _ in 0..n {
            state.mine_one();
        }
    }

    /// Puts into the mempool a transaction from outside the group paying `amount` to `to`
    /// (raw address bytes), carrying `data` (instruction payload bytes, `None` = no data),
    /// spent from the outside address `from` (`None` = no refund address known). Returns
    /// its id. It spends a fresh faucet output of exactly `amount` (so it pays no fee and
    /// is always valid).
    pub fn deposit(
        &self,
        to: &[u8],
        amount: Amount,
        data: Option<Vec<u8>>,
        from: Option<ExternalAddress>,
    ) -> [u8; 32] {
        let mut state = self.state();
        let n = state.deposits;
        state.deposits += 1;
        let faucet = output_id(&primitives::hash(FAUCET_DOMAIN, &[&n.to_le_bytes()]), 0);
        let from_bytes = from.as_ref().map(|a| a.as_bytes().to_vec()).unwrap_or_default();
        state.faucet.insert(faucet.clone(), TxOutput { address: from_bytes, amount });
        let body = TransactionBody {
            inputs: vec![faucet],
            outputs: vec![TxOutput { address: to.to_vec(), amount }],
            data,
            from,
            signer: None,
        };
        let id = body.id();
        state.mempool.push((id, Transaction { body, signature: None }));
        id
    }

    /// Our address bytes for `kind` of `key` (what [`Chain::deposit`] should be given to
    /// pay us).
    pub fn address_of(key: &GroupKey, kind: OutputKind) -> Vec<u8> {
        types::address_of(key, kind)
    }

    /// The instruction payload `scan` reads as `Instruction::Valid`.
    pub fn encode_instruction(instruction: &InInstruction) -> Vec<u8> {
        types::encode_instruction(instruction)
    }

    /// The sum the best chain paid to `address` (raw bytes), mined transactions only.
    pub fn received(&self, address: &[u8]) -> Amount {
        let state = self.state();
        let paid = state.blocks.iter().flat_map(|b| &b.txs).flat_map(|tx| &tx.body.outputs);
        let paid = paid.filter(|o| o.address == address);
        Amount(paid.fold(0u64, |sum, o| sum.saturating_add(o.amount.0)))
    }

    /// Every output on the best chain paid to any of `key`'s kinds and not spent on the
    /// best chain (mempool spends do not count), in chain order: (kind, amount).
    pub fn unspent(&self, key: &GroupKey) -> Vec<(OutputKind, Amount)> {
        let ours = addresses_of(key);
        let state = self.state();
        let mut found = vec![];
        for tx in state.blocks.iter().flat_map(|b| &b.txs) {
            let id = tx.id();
            for (index, output) in (0u32..).zip(&tx.body.outputs) {
                let Some((_, kind)) = ours.iter().find(|(a, _)| *a == output.address) else {
                    continue;
                };
                if !state.spent.contains_key(&output_id(&id, index)) {
                    found.push((*kind, output.amount));
                }
            }
        }
        found
    }

    /// The fees paid by every mined transaction spending outputs of `key` (sum of inputs
    /// minus sum of outputs).
    pub fn fees_paid_by(&self, key: &GroupKey) -> Amount {
        let ours = addresses_of(key);
        let state = self.state();
        let mut fees = 0u64;
        for tx in state.blocks.iter().flat_map(|b| &b.txs) {
            let spent: Vec<_> =
                tx.body.inputs.iter().filter_map(|i| state.outputs.get(i)).collect();
            if !spent.iter().any(|o| ours.iter().any(|(a, _)| *a == o.address)) {
                continue;
            }
            let inputs: u128 = spent.iter().map(|o| u128::from(o.amount.0)).sum();
            let outputs: u128 = tx.body.outputs.iter().map(|o| u128::from(o.amount.0)).sum();
            let fee = u64::try_from(inputs.saturating_sub(outputs)).unwrap_or(u64::MAX);
            fees = fees.saturating_add(fee);
        }
        Amount(fees)
    }

    /// Disconnects the top `depth` blocks (never the genesis block: `depth` is capped at
    /// the height); all their transactions go back to the front of the mempool, in chain
    /// order. Then mines `blocks` new blocks (the first re-including the mempool). The
    /// reorg counter is mixed into every later block id, so no new block has the id of a
    /// disconnected one.
    pub fn reorg(&self, depth: u64, blocks: u64) {
        let mut state = self.state();
        let depth = depth.min(state.tip().number);
        let keep = state.blocks.len() - usize::try_from(depth).unwrap_or(usize::MAX);
        let disconnected = state.blocks.split_off(keep);
        let mut mempool: Vec<_> =
            disconnected.into_iter().flat_map(|b| b.txs).map(|tx| (tx.id(), tx)).collect();
        mempool.append(&mut state.mempool);
        state.mempool = mempool;
        state.reorgs += 1;
        state.reindex();
        tracing::debug!(depth, blocks, reorgs = state.reorgs, "reorg");
        for _ in 0..blocks {
            state.mine_one();
        }
    }

    /// The fee rate recorded in blocks mined from now on (what `block_fee_rate` reads,
    /// before clamping to the params' bounds, and what `fee_rate` returns).
    pub fn set_fee_rate(&self, rate: u64) {
        self.state().fee_rate = rate;
    }

    /// The next `n` calls of the async Network methods (`latest_finalized`, `block_ref`,
    /// `block`, `scan`, `block_fee_rate`, `fee_rate`, `publish`), on any view of this
    /// chain, fail with `NetworkError::Transient` (replacing any count left; 0 cancels).
    /// A failed `publish` publishes nothing.
    pub fn fail_next(&self, n: u32) {
        self.state().fail = n;
    }

    /// How many transactions `publish` accepted into the mempool (each id counted once,
    /// however often it was published).
    pub fn published(&self) -> usize {
        self.state().published.len()
    }

    /// How many transactions are in the mempool (not yet mined).
    pub fn mempool_len(&self) -> usize {
        self.state().mempool.len()
    }

    /// From now on, a transaction spending what a mempool transaction spends is refused
    /// whatever it pays (Litecoin Core's default), and the network says it cannot replace.
    pub fn refuse_replacements(&self, refuse: bool) {
        self.state().no_replacement = refuse;
    }

    pub(crate) fn refuses_replacements(&self) -> bool {
        self.state().no_replacement
    }

    /// From now on, mining leaves in the mempool every transaction of ours paying less
    /// than `rate` per 1,000 units of size (a payout the market outgrew), unless the
    /// transactions spending its outputs lift the package to it; 0 mines all.
    pub fn set_mining_floor(&self, rate: u64) {
        self.state().mining_floor = rate;
    }

    /// Takes the first transaction of ours (one with a signer) out of the mempool and puts
    /// in its place one spending its first input whole to `to`: what a transaction signed
    /// with the group's keys outside the protocol does to a plan. (The chain checks no
    /// signature when mining, only when publishing, so this one is not signed.) Returns
    /// the planned transaction's id and the conflicting one's, or `None` if no transaction
    /// of ours is in the mempool.
    pub fn conflict_with_first_planned(&self, to: &[u8]) -> Option<([u8; 32], [u8; 32])> {
        let mut state = self.state();
        let position = state.mempool.iter().position(|(_, tx)| tx.body.signer.is_some())?;
        let (planned, tx) = state.mempool.remove(position);
        let input = tx.body.inputs.first()?.clone();
        let (created, spent) = state.pending();
        let mut body = TransactionBody {
            inputs: vec![input],
            outputs: vec![],
            data: None,
            from: None,
            signer: None,
        };
        let spent_output = state.check_inputs(&body, &created, &spent).ok()?.pop()?;
        body.outputs.push(TxOutput { address: to.to_vec(), amount: spent_output.amount });
        let id = body.id();
        state.mempool.insert(position, (id, Transaction { body, signature: None }));
        Some((planned, id))
    }

    /// From now on, `plan` on any view of this chain adds `extra` units to every fee it
    /// computes, while `fee` (the scheduler's fee model) does not: a planner that disagrees
    /// with its scheduler, as a broken build would. 0 restores agreement.
    pub fn skew_planner(&self, extra: u64) {
        self.state().plan_skew = extra;
    }

    /// From now on, scanning reports the outputs of transaction `tx` under the ids of
    /// transaction `as_tx`'s outputs (same index): Monero's "burning bug", a later output
    /// reusing an earlier one's key, and so its id. Only one of the two can ever be spent.
    pub fn alias_outputs(&self, tx: [u8; 32], as_tx: [u8; 32]) {
        self.state().aliases.insert(tx, as_tx);
    }

    /// The transaction id scanning reports `tx`'s outputs under.
    pub(crate) fn reported_tx(&self, tx: [u8; 32]) -> [u8; 32] {
        self.state().aliases.get(&tx).copied().unwrap_or(tx)
    }

    /// From now on, the network shows no spends of previous outputs and says so
    /// (`spends_visible` false), as Monero, whose chain shows key images only.
    pub fn hide_spends(&self, hide: bool) {
        self.state().hide_spends = hide;
    }

    pub(crate) fn hides_spends(&self) -> bool {
        self.state().hide_spends
    }

    pub(crate) fn plan_skew(&self) -> u64 {
        self.state().plan_skew
    }

    /// Consumes one injected failure, if any is left: whether this call must fail.
    pub(crate) fn take_failure(&self) -> bool {
        let mut state = self.state();
        let fail = state.fail > 0;
        state.fail = state.fail.saturating_sub(1);
        fail
    }

    /// Runs `f` on the best chain's blocks and the current fee rate.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&[Block], u64) -> T) -> T {
        let state = self.state();
        f(&state.blocks, state.fee_rate)
    }

    /// Accepts `tx` into the mempool, or says why not. Already in the mempool or on the
    /// best chain is success.
    pub(crate) fn publish(&self, tx: &Transaction) -> Result<(), Refused> {
        let mut state = self.state();
        let id = tx.id();
        if state.mined.contains_key(&id) || state.mempool.iter().any(|(m, _)| *m == id) {
            return Ok(());
        }
        // Opt-in replacement, as BIP125: a transaction of ours spending what a mempool
        // transaction of ours spends replaces it if it pays more; checked in full first.
        let before = state.mempool.clone();
        state.replace(&tx.body)?;
        if let Err(why) = state.validate(tx) {
            state.mempool = before;
            return Err(why);
        }
        state.mempool.push((id, tx.clone()));
        state.published.insert(id);
        Ok(())
    }
}

/// `body`'s size in the model ([`crate::network::vsize`]).
fn size_of(body: &TransactionBody) -> u64 {
    crate::network::vsize(body.inputs.len(), body.outputs.iter().map(|o| &o.address[..]))
}

/// What `body` pays per 1,000 units of its size, its inputs being `inputs`.
fn fee_rate_of(body: &TransactionBody, inputs: &[TxOutput]) -> u64 {
    let paid: u64 = inputs.iter().map(|o| o.amount.0).sum();
    let out: u64 = body.outputs.iter().map(|o| o.amount.0).sum();
    paid.saturating_sub(out).saturating_mul(1000) / size_of(body).max(1)
}
