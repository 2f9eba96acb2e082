//! The conformance suite: what every [`Network`] implementation must do against its real
//! node. A network's tests implement [`TestChain`] over a node they started, then call
//! each check; every check panics with a description of what went wrong.
//!
//! Checks: deposits are scanned with their kind, amount and instruction, and only once
//! final; branch and change outputs are told apart from deposits; a plan is signed,
//! published, mined and recognised by its eventuality; publishing again is success; a
//! conflicting spend of a plan's inputs is reported; a reorg shallower than the
//! confirmation depth changes nothing already indexed, and a deeper one is a fatal
//! [`IndexError::DeepReorg`]; a key rotation's forwarding pays the successor's Forwarded
//! address, which only the successor scans, as Forwarded.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::future::Future;

use db::{Db, Schema};
use primitives::{Amount, InInstruction, SettlementAccount};

use crate::disposition::{self, Disposition};
use crate::index::{Index, IndexError};
use crate::{
    BlockRef, ChainBlock, Completion, Instruction, Network, OutputKind, Plan, PlannedPayment,
    ReceivedOutput,
};

type Addr<C> = <<C as TestChain>::N as Network>::Address;
type Out<C> = <<C as TestChain>::N as Network>::Output;

/// A network implementation plus control over its (regtest) node.
pub trait TestChain: Send + Sync {
    /// The implementation under test.
    type N: Network;
    /// It.
    fn network(&self) -> &Self::N;
    /// Our group key.
    fn key(&self) -> <Self::N as Network>::Key;
    /// Mines `n` blocks on the best chain (including pending transactions).
    fn mine(&self, n: u64) -> impl Future<Output = ()> + Send;
    /// The node's best height.
    fn height(&self) -> impl Future<Output = u64> + Send;
    /// Pays `amount` to our `kind` address from a funded test wallet, with `data` as the
    /// network's instruction payload (raw bytes, possibly invalid) when given. Not mined.
    fn deposit(
        &self,
        kind: OutputKind,
        amount: Amount,
        data: Option<Vec<u8>>,
    ) -> impl Future<Output = ()> + Send;
    /// The network's instruction payload for `instruction`.
    fn encode_instruction(&self, instruction: &InInstruction) -> Vec<u8>;
    /// Signs a planned transaction with a signing set of the group.
    fn sign(
        &self,
        signable: <Self::N as Network>::Signable,
    ) -> impl Future<Output = <Self::N as Network>::Transaction> + Send;
    /// A fresh address of the test wallet.
    fn payee(&self) -> impl Future<Output = Addr<Self>> + Send;
    /// What the node says `address` received in the best chain, mined transactions only.
    fn received(&self, address: &Addr<Self>) -> impl Future<Output = Amount> + Send;
    /// Disconnects block `height` and everything above it, then mines `blocks` new ones.
    fn reorg(&self, height: u64, blocks: u64) -> impl Future<Output = ()> + Send;
    /// Another group's key (a successor set's, made as [`TestChain::key`]'s was), and its
    /// group key in the encoding key generation reports (`GeneratedKeys::network_key`).
    fn successor(&self) -> (<Self::N as Network>::Key, Vec<u8>);
    /// Whether the chain shows a deposit's sender (Bitcoin: the spent output's script).
    /// Where it does not (Monero), a deposit without a valid instruction has nobody to be
    /// refunded to.
    fn shows_senders(&self) -> bool {
        true
    }
}

async fn finalized<C: TestChain>(chain: &C) -> Option<u64> {
    chain.network().latest_finalized().await.unwrap()
}

/// Mines until the current tip is final; returns the range of blocks that became final.
async fn finalize<C: TestChain>(chain: &C) -> std::ops::RangeInclusive<u64> {
    let from = finalized(chain).await.map_or(0, |f| f + 1);
    let tip = chain.height().await;
    let confirmations = chain.network().params().confirmations;
    chain.mine(confirmations - 1).await;
    assert_eq!(
        finalized(chain).await,
        Some(tip),
        "the tip should be final after {confirmations} confirmations"
    );
    from..=tip
}

/// Every output paid to us in the given blocks, fetched at once ([`Network::blocks`], as
/// the scanner reads ahead), each checked to be the block [`Network::block`] gives.
async fn scan_range<C: TestChain>(chain: &C, range: std::ops::RangeInclusive<u64>) -> Vec<Out<C>> {
    let network = chain.network();
    let mut found = vec![];
    if range.is_empty() {
        return found;
    }
    let blocks = network.blocks(*range.start(), *range.end()).await.unwrap();
    assert_eq!(blocks.len() as u64, range.end() - range.start() + 1, "blocks fetched at once");
    for (number, block) in range.zip(blocks) {
        let alone = network.block(number).await.unwrap();
        assert_eq!(block.block_ref(), alone.block_ref(), "block {number} fetched at once");
        let outputs = network.scan(&block, &chain.key()).await.unwrap();
        let alone = network.scan(&alone, &chain.key()).await.unwrap();
        let ids = |o: &[Out<C>]| o.iter().map(|o| (o.id(), o.amount())).collect::<Vec<_>>();
        assert_eq!(ids(&outputs), ids(&alone), "block {number}: scans differ");
        found.extend(outputs);
    }
    found
}

fn instruction(seed: u8) -> InInstruction {
    InInstruction { account: SettlementAccount([seed; 32]), return_address: None }
}

/// Deposits with a valid, an invalid and a missing instruction are scanned with the
/// right kind, amount and instruction; none is visible before it is final.
pub async fn deposits_are_scanned<C: TestChain>(chain: &C) {
    let dust = chain.network().params().dust;
    let amounts = [Amount(dust.0 * 3), Amount(dust.0 * 5), Amount(dust.0 * 7)];
    let valid = instruction(7);
    chain.deposit(OutputKind::External, amounts[0], Some(chain.encode_instruction(&valid))).await;
    chain.deposit(OutputKind::External, amounts[1], Some(b"not an instruction".to_vec())).await;
    chain.deposit(OutputKind::External, amounts[2], None).await;
    let small = Amount(dust.0 / 2);
    chain
        .deposit(OutputKind::External, small, Some(chain.encode_instruction(&instruction(8))))
        .await;
    chain.mine(1).await;
    let height = chain.height().await;
    // Not final yet: no scanner may read the block.
    let confirmations = chain.network().params().confirmations;
    chain.mine(confirmations - 2).await;
    assert!(
        finalized(chain).await < Some(height),
        "a block with {} confirmations was reported final",
        confirmations - 1
    );
    chain.mine(1).await;
    assert!(finalized(chain).await >= Some(height));
    let found = scan_range(chain, height..=height).await;
    assert_eq!(found.len(), 4, "expected the 4 deposits, found {}", found.len());
    let by_amount = |a: Amount| found.iter().find(|o| o.amount() == a).expect("deposit missing");
    let o = by_amount(amounts[0]);
    assert_eq!(o.kind(), OutputKind::External);
    assert_eq!(o.instruction(), &Instruction::Valid(valid));
    assert_eq!(by_amount(amounts[1]).instruction(), &Instruction::Invalid);
    assert_eq!(by_amount(amounts[2]).instruction(), &Instruction::Missing);
    let senders = chain.shows_senders();
    for o in &found {
        assert_eq!(
            o.refund_address().is_some(),
            senders,
            "a wallet's deposit has a standard refund address exactly where senders show"
        );
    }
    // What the processor does with each: report, refund (or keep, recorded, where no
    // sender shows) twice, and record the dust.
    let network = chain.network().params().network;
    let dispose = |a| disposition::dispose(network, dust, by_amount(a));
    assert!(
        matches!(dispose(amounts[0]), Disposition::Report(r) if r.balance.amount == amounts[0])
    );
    for a in [amounts[1], amounts[2]] {
        if senders {
            assert!(matches!(dispose(a), Disposition::Refund { amount, .. } if amount == a));
        } else {
            assert_eq!(dispose(a), Disposition::Unattributed { amount: a });
        }
    }
    assert_eq!(dispose(small), Disposition::Dust { amount: small });
}

/// Outputs to the Branch and Change keys are scanned as such, not as deposits.
pub async fn kinds_are_told_apart<C: TestChain>(chain: &C) {
    let dust = chain.network().params().dust;
    for (i, kind) in OutputKind::ALL.into_iter().enumerate() {
        chain.deposit(kind, Amount(dust.0 * 2 + i as u64), None).await;
    }
    chain.mine(1).await;
    let range = finalize(chain).await;
    let found = scan_range(chain, range).await;
    for (i, kind) in OutputKind::ALL.into_iter().enumerate() {
        let o = found
            .iter()
            .find(|o| o.amount() == Amount(dust.0 * 2 + i as u64))
            .unwrap_or_else(|| panic!("the {kind:?} output was not found"));
        assert_eq!(o.kind(), kind);
    }
}

/// An output of every kind is spent in one transaction (each kind has its own key, so
/// each input is signed with a different tweak of the group key).
pub async fn spend_every_kind<C: TestChain>(chain: &C) -> Confirmed {
    let dust = chain.network().params().dust;
    let amount = |i: usize| Amount(dust.0 * 6 + 100 + i as u64);
    for (i, kind) in OutputKind::ALL.into_iter().enumerate() {
        chain.deposit(kind, amount(i), None).await;
    }
    chain.mine(1).await;
    let range = finalize(chain).await;
    let found = scan_range(chain, range).await;
    let inputs: Vec<_> = OutputKind::ALL
        .into_iter()
        .enumerate()
        .map(|(i, kind)| {
            found
                .iter()
                .find(|o| o.kind() == kind && o.amount() == amount(i))
                .unwrap_or_else(|| panic!("the {kind:?} output was not found"))
                .clone()
        })
        .collect();
    plan_sign_publish_confirm(chain, inputs).await
}

/// Creates `n` final outputs of ours (deposits) and returns them.
pub async fn outputs<C: TestChain>(chain: &C, n: usize, each: Amount) -> Vec<Out<C>> {
    for _ in 0..n {
        chain.deposit(OutputKind::External, each, None).await;
    }
    chain.mine(1).await;
    let range = finalize(chain).await;
    let found: Vec<_> =
        scan_range(chain, range).await.into_iter().filter(|o| o.amount() == each).collect();
    assert_eq!(found.len(), n, "expected {n} outputs of {each:?}");
    found
}

/// What [`plan_sign_publish_confirm`] observed.
#[derive(Debug)]
pub struct Confirmed {
    /// The fee paid.
    pub fee: Amount,
    /// The change returned.
    pub change: Amount,
    /// The block that completed the plan.
    pub block: BlockRef,
}

/// Plans a transaction spending `inputs` to two payees with change, signs and publishes
/// it, and checks the mined block completes its eventuality, pays exactly, and returns
/// the change to our Change key. Publishing again afterwards is success.
pub async fn plan_sign_publish_confirm<C: TestChain>(chain: &C, inputs: Vec<Out<C>>) -> Confirmed {
    let network = chain.network();
    let dust = network.params().dust;
    let total: u64 = inputs.iter().map(|o| o.amount().0).sum();
    let (a, b) = (chain.payee().await, chain.payee().await);
    let payments = vec![
        PlannedPayment { address: a.clone(), amount: Amount(dust.0 * 2) },
        PlannedPayment { address: b.clone(), amount: Amount(dust.0 + 1) },
    ];
    let plan = Plan { inputs, payments, branches: vec![], change: true };
    let tip = network.block(chain.height().await).await.unwrap();
    let rate = network.block_fee_rate(&tip).await.unwrap();
    assert_eq!(
        rate,
        network.block_fee_rate(&tip).await.unwrap(),
        "the block fee rate is deterministic"
    );
    assert!(network.fee_rate().await.unwrap() > 0);
    let planned = network.plan(&chain.key(), &plan, rate).unwrap();
    // The fee model the scheduler uses is what the planner charges.
    let inputs_n = plan.inputs.len();
    let addresses: Vec<_> = plan.payments.iter().map(|p| &p.address).collect();
    if planned.change != Amount::ZERO {
        assert_eq!(network.fee(inputs_n, &addresses, 0, true, rate), planned.fee);
    }
    assert_eq!(
        planned.fee.0 + planned.change.0 + dust.0 * 3 + 1,
        total,
        "inputs must equal payments + change + fee"
    );
    // Planning is deterministic.
    let again = network.plan(&chain.key(), &plan, rate).unwrap();
    assert_eq!(again.eventuality, planned.eventuality);

    let tx = chain.sign(planned.signable).await;
    network.publish(&tx).await.unwrap();
    // Publishing again while in the mempool is success.
    network.publish(&tx).await.unwrap();
    let block = mined_and_completed(chain, &planned.eventuality, "the mined plan").await;
    // And publishing a mined transaction is success too.
    network.publish(&tx).await.unwrap();

    assert_eq!(chain.received(&a).await, Amount(dust.0 * 2));
    assert_eq!(chain.received(&b).await, Amount(dust.0 + 1));
    let change: Vec<_> = network
        .scan(&block, &chain.key())
        .await
        .unwrap()
        .into_iter()
        .filter(|o| o.kind() == OutputKind::Change)
        .collect();
    if planned.change == Amount::ZERO {
        assert!(change.is_empty(), "no change was planned, found {change:?}");
    } else {
        assert_eq!(change.len(), 1, "one change output expected");
        assert_eq!(change[0].amount(), planned.change);
    }
    Confirmed { fee: planned.fee, change: planned.change, block: block.block_ref() }
}

/// Mines a block, finalizes it, and checks it completes `eventuality` (`what`, in the
/// message otherwise). Returns the block.
async fn mined_and_completed<C: TestChain>(
    chain: &C,
    eventuality: &<C::N as Network>::Eventuality,
    what: &str,
) -> <C::N as Network>::Block {
    let network = chain.network();
    chain.mine(1).await;
    let height = chain.height().await;
    finalize(chain).await;
    let block = network.block(height).await.unwrap();
    let completions = network.check(&block, std::slice::from_ref(eventuality));
    assert!(
        matches!(completions.as_slice(), [Completion::Completed { index: 0, .. }]),
        "{what} was not recognised: {completions:?}"
    );
    block
}

/// A transaction spending a plan's input other than the planned one is a conflict.
pub async fn conflicting_spend_is_reported<C: TestChain>(chain: &C) {
    let network = chain.network();
    let dust = network.params().dust;
    let input = outputs(chain, 1, Amount(dust.0 * 10)).await;
    let tip = network.block(chain.height().await).await.unwrap();
    let rate = network.block_fee_rate(&tip).await.unwrap();
    let plan_for = |address| Plan {
        inputs: input.clone(),
        payments: vec![PlannedPayment { address, amount: Amount(dust.0 * 2) }],
        branches: vec![],
        change: true,
    };
    let planned = network.plan(&chain.key(), &plan_for(chain.payee().await), rate).unwrap();
    let other = network.plan(&chain.key(), &plan_for(chain.payee().await), rate).unwrap();
    let tx = chain.sign(other.signable).await;
    network.publish(&tx).await.unwrap();
    chain.mine(1).await;
    let height = chain.height().await;
    finalize(chain).await;
    let block = network.block(height).await.unwrap();
    let completions = network.check(&block, &[planned.eventuality, other.eventuality]);
    assert!(
        completions
            .contains(&Completion::Completed { index: 1, tx: completions_tx(&completions, 1) })
            && completions.iter().any(|c| matches!(c, Completion::Conflict { index: 0, .. })),
        "expected the other plan completed and ours in conflict: {completions:?}"
    );
}

/// A rotation's forwarding: the successor's Forwarded address, from its reported key
/// encoding, is the successor's and not ours; garbage is no key; a plan moving two of our
/// outputs there (one payment of their sum less the fee, no change) completes, and the
/// block holds exactly one output for the successor, of kind Forwarded and that amount,
/// and none for us.
pub async fn forwarding_to_a_successor<C: TestChain>(chain: &C) {
    let network = chain.network();
    let dust = network.params().dust;
    let (successor, encoded) = chain.successor();
    assert_eq!(network.forward_address(&[]), None, "no bytes are no key");
    assert_eq!(network.forward_address(&[0xff; 33]), None, "garbage is no key");
    let external = network.forward_address(&encoded).expect("the successor's key is a key");
    let to = network.address(&external).expect("a forward address is payable");
    assert!(!network.owns(&chain.key(), &to), "the successor's address is not ours");
    assert!(network.owns(&successor, &to), "the successor's address is the successor's");

    let inputs = outputs(chain, 2, Amount(dust.0 * 10)).await;
    let total: u64 = inputs.iter().map(|o| o.amount().0).sum();
    let tip = network.block(chain.height().await).await.unwrap();
    let rate = network.block_fee_rate(&tip).await.unwrap();
    let fee = network.fee(inputs.len(), &[&to], 0, false, rate);
    let amount = Amount(total - fee.0);
    let plan = Plan {
        inputs,
        payments: vec![PlannedPayment { address: to, amount }],
        branches: vec![],
        change: false,
    };
    let planned = network.plan(&chain.key(), &plan, rate).unwrap();
    assert_eq!(planned.fee, fee, "the forward's fee is the model's");
    assert_eq!(planned.change, Amount::ZERO);
    let tx = chain.sign(planned.signable).await;
    network.publish(&tx).await.unwrap();
    let block = mined_and_completed(chain, &planned.eventuality, "the forward").await;
    let theirs = network.scan(&block, &successor).await.unwrap();
    assert_eq!(theirs.len(), 1, "one output for the successor: {theirs:?}");
    assert_eq!(theirs[0].kind(), OutputKind::Forwarded);
    assert_eq!(theirs[0].amount(), amount);
    let ours = network.scan(&block, &chain.key()).await.unwrap();
    assert!(ours.is_empty(), "nothing came back to us: {ours:?}");
}

/// A plan spending one fresh output of 20 × dust, paying 3 × dust to a fresh payee with
/// change back, and the tip's fee rate: what the fee-bump cases start from.
async fn one_payment_with_change<C: TestChain>(chain: &C) -> (Plan<Out<C>, Addr<C>>, Addr<C>, u64) {
    let network = chain.network();
    let dust = network.params().dust;
    let inputs = outputs(chain, 1, Amount(dust.0 * 20)).await;
    let payee = chain.payee().await;
    let payments = vec![PlannedPayment { address: payee.clone(), amount: Amount(dust.0 * 3) }];
    let plan = Plan { inputs, payments, branches: vec![], change: true };
    let tip = network.block(chain.height().await).await.unwrap();
    let rate = network.block_fee_rate(&tip).await.unwrap();
    (plan, payee, rate)
}

/// A published plan replaced, before it is mined, by a version with the same inputs and
/// payments at a higher fee (the processor's fee bump): the network accepts the
/// replacement, only it is mined, its check completes the version (the original's is
/// then a conflict the pipeline knows is its sibling's), and each payee is paid once.
/// Networks that cannot replace ([`Network::replaceable`] false) refuse the replacement.
pub async fn replacement_at_a_higher_fee<C: TestChain>(chain: &C) {
    let network = chain.network();
    let params = network.params();
    let (plan, payee, rate) = one_payment_with_change(chain).await;
    let first = network.plan(&chain.key(), &plan, rate).unwrap();
    let higher = params.clamp_fee_rate(rate * 2 + params.min_fee_rate);
    let second = network.plan(&chain.key(), &plan, higher).unwrap();
    assert!(second.fee > first.fee);
    assert_eq!(
        second.fee.0 + second.change.0,
        first.fee.0 + first.change.0,
        "only the change pays"
    );
    let original = chain.sign(first.signable).await;
    network.publish(&original).await.unwrap();
    let replacement = chain.sign(second.signable).await;
    let published = network.publish(&replacement).await;
    if !network.replaceable() {
        assert!(published.is_err(), "a network that cannot replace accepted a replacement");
        return;
    }
    published.unwrap();
    chain.mine(1).await;
    let height = chain.height().await;
    finalize(chain).await;
    let block = network.block(height).await.unwrap();
    let completions = network.check(&block, &[first.eventuality, second.eventuality]);
    assert!(
        completions
            .contains(&Completion::Completed { index: 1, tx: completions_tx(&completions, 1) })
            && !completions.iter().any(|c| matches!(c, Completion::Completed { index: 0, .. })),
        "expected the replacement mined, not the original: {completions:?}"
    );
    assert_eq!(chain.received(&payee).await, Amount(params.dust.0 * 3), "paid once");
    // The original can no longer be published: its input is spent.
    assert!(network.publish(&original).await.is_err());
}

/// A child paying for its parent (the processor's fee bump where replacement is
/// refused): the network names the parent's change output before it is mined
/// ([`Network::change_of`]), a child spending it is accepted while the parent is
/// unconfirmed, both are mined, both complete, the payee is paid once, and the child's
/// change is found as change.
pub async fn child_pays_for_parent<C: TestChain>(chain: &C) {
    let network = chain.network();
    let params = network.params();
    let (plan, payee, rate) = one_payment_with_change(chain).await;
    let parent = network.plan(&chain.key(), &plan, rate).unwrap();
    let change = network.change_of(&chain.key(), &parent).expect("the parent has change");
    assert_eq!(change.amount(), parent.change);
    assert_eq!(change.kind(), OutputKind::Change);
    let child_plan =
        Plan { inputs: vec![change.clone()], payments: vec![], branches: vec![], change: true };
    let child = network.plan(&chain.key(), &child_plan, params.clamp_fee_rate(rate * 4)).unwrap();
    let signed = chain.sign(parent.signable).await;
    network.publish(&signed).await.unwrap();
    let signed_child = chain.sign(child.signable).await;
    network.publish(&signed_child).await.unwrap();
    chain.mine(1).await;
    let height = chain.height().await;
    finalize(chain).await;
    let block = network.block(height).await.unwrap();
    let completions = network.check(&block, &[parent.eventuality, child.eventuality]);
    let completed: Vec<usize> = completions
        .iter()
        .filter_map(|c| match c {
            Completion::Completed { index, .. } => Some(*index),
            _ => None,
        })
        .collect();
    assert_eq!(completed, vec![0, 1], "both mined: {completions:?}");
    assert_eq!(chain.received(&payee).await, Amount(params.dust.0 * 3), "paid once");
    let found = network.scan(&block, &chain.key()).await.unwrap();
    let ids: Vec<Vec<u8>> = found.iter().map(|o| o.id()).collect();
    assert!(ids.contains(&change.id()), "the parent's change is the output the child spent");
    assert!(
        found.iter().any(|o| o.kind() == OutputKind::Change && o.amount() == child.change),
        "the child's change: {found:?}"
    );
}

fn completions_tx(completions: &[Completion], index: usize) -> Vec<u8> {
    completions
        .iter()
        .find_map(|c| match c {
            Completion::Completed { index: i, tx } if *i == index => Some(tx.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

fn temp_db(dir: &tempfile::TempDir) -> Db {
    // The index is scoped by session, as the processor keeps one per session.
    Db::open(dir.path().join("index.redb"), Schema { app: "conformance", version: 1 })
        .unwrap()
        .scoped(0)
}

async fn index_all<N: Network>(
    index: &Index,
    network: &N,
    db: &Db,
) -> Result<Vec<BlockRef>, IndexError> {
    let mut indexed = vec![];
    while let Some(block) = index.advance(network, db).await? {
        indexed.push(block);
    }
    Ok(indexed)
}

/// A fresh index (in a temp DB) over the last `2 * confirmations` blocks, advanced to the
/// final tip; the blocks it indexed.
async fn indexed<C: TestChain>(chain: &C) -> (tempfile::TempDir, Db, Index, Vec<BlockRef>) {
    let confirmations = chain.network().params().confirmations;
    let dir = tempfile::tempdir().unwrap();
    let db = temp_db(&dir);
    let start = chain.height().await.saturating_sub(2 * confirmations).max(1);
    let index = Index::new(start);
    let before = index_all(&index, chain.network(), &db).await.unwrap();
    (dir, db, index, before)
}

/// A reorg shallower than the confirmation depth changes nothing already indexed, and a
/// deposit in an orphaned block is scanned exactly once, from the block that replaced it.
pub async fn shallow_reorg_changes_nothing<C: TestChain>(chain: &C) {
    let network = chain.network();
    let confirmations = network.params().confirmations;
    let (_dir, db, index, before) = indexed(chain).await;
    let final_tip = before.last().expect("the chain is long enough to index").number;

    let dust = network.params().dust;
    let amount = Amount(dust.0 * 4 + 17);
    chain
        .deposit(OutputKind::External, amount, Some(chain.encode_instruction(&instruction(9))))
        .await;
    chain.mine(1).await;
    let tip = chain.height().await;
    // Replace every block that is not final yet (a reorg of depth confirmations - 1),
    // the deposit's block included, with one more block than was there.
    let final_now = finalized(chain).await.unwrap();
    assert!(final_now >= final_tip && tip - final_now < confirmations);
    chain.reorg(final_now + 1, tip - final_now + 1).await;

    let after =
        index_all(&index, network, &db).await.expect("a shallow reorg must not stop the index");
    let txn = db.read().unwrap();
    for b in &before {
        assert_eq!(
            index.get(&txn, b.number).unwrap(),
            Some(*b),
            "indexed block {} changed",
            b.number
        );
    }
    drop(txn);
    // Scan everything newly final: the deposit appears exactly once.
    chain.mine(confirmations).await;
    let newly = index_all(&index, network, &db).await.unwrap();
    let range = after.first().or(newly.first()).map(|b| b.number).unwrap_or(final_tip + 1)
        ..=newly.last().map_or(final_tip, |b| b.number);
    let found = scan_range(chain, range).await;
    let hits = found.iter().filter(|o| o.amount() == amount).count();
    assert_eq!(hits, 1, "the reorged deposit must be scanned exactly once, found {hits}");
}

/// A reorg deeper than the confirmation depth stops the index with
/// [`IndexError::DeepReorg`] and writes nothing.
pub async fn deep_reorg_is_fatal<C: TestChain>(chain: &C) {
    let network = chain.network();
    let confirmations = network.params().confirmations;
    let (_dir, db, index, before) = indexed(chain).await;
    let final_tip = before.last().expect("the chain is long enough to index").number;
    // Disconnect the last final block: a reorg of depth `confirmations`.
    chain.reorg(final_tip, confirmations + 1).await;
    let err = index_all(&index, network, &db).await.expect_err("a deep reorg must stop the index");
    assert!(matches!(err, IndexError::DeepReorg { .. }), "unexpected error: {err}");
    eprintln!("deep reorg refused: {err}");
    assert!(!err.is_transient());
    // Blocks read ahead, indexed from what was fetched, are refused the same way.
    let latest = finalized(chain).await.unwrap();
    let ahead = network.blocks(final_tip, latest).await.unwrap();
    let refs: Vec<BlockRef> = ahead.iter().map(|b| b.block_ref()).collect();
    let err = index.extend(&db, network, &refs).expect_err("blocks read ahead past a deep reorg");
    assert!(matches!(err, IndexError::DeepReorg { .. }), "unexpected error: {err}");
    assert!(err.to_string().contains("reorganized deeper than the confirmation depth"), "{err}");
    let txn = db.read().unwrap();
    assert_eq!(
        index.tip(&txn).unwrap(),
        Some(final_tip),
        "nothing may be indexed past a deep reorg"
    );
    // Scanning the replaced final block is refused too.
    let replaced = network.block(final_tip).await.unwrap();
    assert!(matches!(index.expect(&txn, network, &replaced), Err(IndexError::DeepReorg { .. })));
}
