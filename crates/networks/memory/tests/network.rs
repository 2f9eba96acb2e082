//! What the conformance suite does not cover: publish refusals, fault injection, reorg
//! ids, determinism, and the planner's change/fee rules in detail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use memory_network::{
    Address, Chain, Eventuality, GroupKey, MemoryNetwork, Output, Refused, Transaction,
};
use primitives::{Amount, ExternalAddress, InInstruction, SettlementAccount, Versioned};
use scanner::{
    ChainBlock, Completion, Instruction, Network, NetworkError, OutputKind, Plan, PlanError,
    PlannedPayment, ReceivedOutput,
};

const DUST: u64 = 10_000;
const RATE: u64 = 1_000;

fn payee(tag: u8) -> Address {
    Address(vec![tag; 22])
}

fn pay(tag: u8, amount: u64) -> PlannedPayment<Address> {
    PlannedPayment { address: payee(tag), amount: Amount(amount) }
}

/// Deposits `amounts` to our External address, mines them, and returns the outputs.
async fn fund(
    chain: &Chain,
    network: &MemoryNetwork,
    key: &GroupKey,
    amounts: &[u64],
) -> Vec<Output> {
    let to = Chain::address_of(key, OutputKind::External);
    for a in amounts {
        chain.deposit(&to, Amount(*a), None, None);
    }
    chain.mine(1);
    let block = network.block(chain.height()).await.unwrap();
    network.scan(&block, key).await.unwrap()
}

/// The transient error's refusal reason.
fn refused(e: NetworkError) -> Refused {
    match e {
        NetworkError::Transient(e) => {
            e.downcast::<Refused>().map(|r| *r).expect("a refusal from the chain")
        }
        NetworkError::Fatal(e) => panic!("a refused transaction must be transient: {e}"),
    }
}

fn plan(
    inputs: Vec<Output>,
    payments: Vec<PlannedPayment<Address>>,
    change: bool,
) -> Plan<Output, Address> {
    Plan { inputs, payments, branches: vec![], change }
}

#[tokio::test]
async fn double_spend_is_refused() {
    let (chain, network, keys) = common::setup();
    let key = keys[0].group_key();
    let inputs = fund(&chain, &network, &key, &[DUST * 10]).await;
    let a = network.plan(&key, &plan(inputs.clone(), vec![pay(1, DUST * 2)], true), RATE).unwrap();
    let b = network.plan(&key, &plan(inputs, vec![pay(2, DUST * 2)], true), RATE).unwrap();
    let (a, b) = (
        common::sign(&network, &keys[..2], &a.signable),
        common::sign(&network, &keys[1..], &b.signable),
    );
    network.publish(&a).await.unwrap();
    // Against the mempool (a replacement must pay more: the same fee is refused), then
    // against the chain.
    assert!(matches!(
        refused(network.publish(&b).await.unwrap_err()),
        Refused::ReplacementFee { .. }
    ));
    chain.mine(1);
    assert!(matches!(refused(network.publish(&b).await.unwrap_err()), Refused::Spent(_)));
    network.publish(&a).await.unwrap();
    assert_eq!(chain.published(), 1);
    assert_eq!(chain.mempool_len(), 0);
    assert_eq!(chain.received(&payee(1).0), Amount(DUST * 2));
    assert_eq!(chain.received(&payee(2).0), Amount::ZERO);
}

#[tokio::test]
async fn bad_signatures_and_foreign_inputs_are_refused() {
    let (chain, network, keys) = common::setup();
    let key = keys[0].group_key();
    let inputs = fund(&chain, &network, &key, &[DUST * 10, DUST * 10]).await;
    let one =
        network.plan(&key, &plan(vec![inputs[0].clone()], vec![pay(1, DUST)], true), RATE).unwrap();
    let two =
        network.plan(&key, &plan(vec![inputs[1].clone()], vec![pay(1, DUST)], true), RATE).unwrap();
    let signed_one = common::sign(&network, &keys[..2], &one.signable);
    let signed_two = common::sign(&network, &keys[..2], &two.signable);

    let unsigned = Transaction { body: two.signable.tx.clone(), signature: None };
    assert_eq!(refused(network.publish(&unsigned).await.unwrap_err()), Refused::BadSignature);
    // A valid signature, of another transaction.
    let swapped =
        Transaction { body: two.signable.tx.clone(), signature: signed_one.signature.clone() };
    assert_eq!(refused(network.publish(&swapped).await.unwrap_err()), Refused::BadSignature);
    let mut truncated = signed_two.clone();
    truncated.signature.as_mut().unwrap().pop();
    assert_eq!(refused(network.publish(&truncated).await.unwrap_err()), Refused::BadSignature);

    // Another group signing a transaction that spends our outputs.
    let others = common::keys(2, 3, 99);
    let mut theirs = two.signable.clone();
    theirs.tx.signer = Some(memory_network::key_bytes(&others[0].group_key()));
    let theirs = common::sign(&network, &others[..2], &theirs);
    assert!(matches!(
        refused(network.publish(&theirs).await.unwrap_err()),
        Refused::NotSignersOutput(_)
    ));
    // Nor can our machines sign what names another signer.
    let mut foreign = two.signable.clone();
    foreign.tx.signer = Some(memory_network::key_bytes(&others[0].group_key()));
    assert!(matches!(network.sign(keys[0].clone(), foreign), Err(PlanError::Key(_))));

    // Spending more than the inputs, or an output that never existed.
    let mut overspend = two.signable.clone();
    overspend.tx.outputs[0].amount = Amount(DUST * 11);
    let overspend = common::sign(&network, &keys[..2], &overspend);
    assert!(matches!(
        refused(network.publish(&overspend).await.unwrap_err()),
        Refused::Overspend { .. }
    ));
    let mut unknown = two.signable.clone();
    unknown.tx.inputs[0][0] ^= 1;
    let unknown = common::sign(&network, &keys[..2], &unknown);
    assert!(matches!(
        refused(network.publish(&unknown).await.unwrap_err()),
        Refused::UnknownInput(_)
    ));

    assert_eq!(chain.published(), 0);
    network.publish(&signed_two).await.unwrap();
    assert_eq!(chain.published(), 1);
}

#[tokio::test]
async fn fail_next_fails_that_many_calls() {
    let (chain, network, keys) = common::setup();
    let key = keys[0].group_key();
    let inputs = fund(&chain, &network, &key, &[DUST * 10]).await;
    let planned = network.plan(&key, &plan(inputs, vec![pay(1, DUST)], true), RATE).unwrap();
    let tx = common::sign(&network, &keys[..2], &planned.signable);
    let block = network.block(0).await.unwrap();

    chain.fail_next(7);
    // Any view of the chain shares the failures.
    let other = chain.network();
    assert!(network.latest_finalized().await.unwrap_err().is_transient());
    assert!(other.block_ref(0).await.unwrap_err().is_transient());
    assert!(network.block(0).await.unwrap_err().is_transient());
    assert!(network.scan(&block, &key).await.unwrap_err().is_transient());
    assert!(network.block_fee_rate(&block).await.unwrap_err().is_transient());
    assert!(network.fee_rate().await.unwrap_err().is_transient());
    assert!(network.publish(&tx).await.unwrap_err().is_transient());
    assert_eq!(chain.mempool_len(), 0, "a failed publish publishes nothing");
    // The pure methods never fail.
    assert_eq!(network.fee(1, &[&payee(1)], 0, true, RATE), planned.fee);
    network.publish(&tx).await.unwrap();
    assert_eq!(network.latest_finalized().await.unwrap(), None);
    assert_eq!(chain.published(), 1);
}

#[tokio::test]
async fn reorg_changes_block_ids_and_requeues_transactions() {
    let (chain, network, keys) = common::setup();
    let key = keys[0].group_key();
    let to = Chain::address_of(&key, OutputKind::External);
    chain.mine(3);
    chain.deposit(&to, Amount(DUST * 3), None, None);
    chain.mine(1);
    chain.deposit(&to, Amount(DUST * 4), None, None);
    chain.mine(2);
    let before = block_refs(&network, 6).await;

    // Disconnect blocks 5 and 6 only: the second deposit goes back to the mempool.
    chain.reorg(2, 0);
    assert_eq!(chain.height(), 4);
    assert_eq!(chain.mempool_len(), 1);
    assert_eq!(chain.received(&to), Amount(DUST * 3));
    assert!(network.block_ref(5).await.unwrap_err().is_transient(), "above the tip");

    // Replace 4 as well and mine three blocks: same heights, different ids.
    chain.reorg(1, 3);
    assert_eq!(chain.height(), 6);
    let after = block_refs(&network, 6).await;
    assert_eq!(before[..4], after[..4], "blocks below the reorg are kept");
    for n in 4..=6 {
        assert_ne!(before[n].id, after[n].id, "block {n} was replaced");
        assert_eq!(after[n].parent, after[n - 1].id);
    }
    // Both deposits are in the first new block, in their original order.
    let block = network.block(4).await.unwrap();
    let found = network.scan(&block, &key).await.unwrap();
    let amounts: Vec<_> = found.iter().map(|o| o.amount).collect();
    assert_eq!(amounts, [Amount(DUST * 3), Amount(DUST * 4)]);
    assert_eq!(
        chain.unspent(&key),
        [(OutputKind::External, Amount(DUST * 3)), (OutputKind::External, Amount(DUST * 4))]
    );

    // A reorg of the same depth with the same contents still changes the ids.
    let tip = network.block_ref(6).await.unwrap();
    chain.reorg(1, 1);
    assert_ne!(network.block_ref(6).await.unwrap().id, tip.id);
}

async fn block_refs(network: &MemoryNetwork, to: u64) -> Vec<scanner::BlockRef> {
    let mut refs = vec![];
    for n in 0..=to {
        refs.push(network.block_ref(n).await.unwrap());
    }
    refs
}

/// Drives a chain through deposits, a signed plan, a reorg and a fee change; returns
/// every block, and the plan's eventuality.
async fn drive(chain: &Chain) -> (Vec<memory_network::Block>, Eventuality) {
    let network = chain.network();
    let keys = common::keys(2, 3, 7);
    let key = keys[0].group_key();
    let account = InInstruction { account: SettlementAccount([3; 32]), return_address: None };
    let data = Chain::encode_instruction(&account);
    let from = ExternalAddress::new(vec![9; 20]).unwrap();
    let inputs = {
        chain.deposit(
            &Chain::address_of(&key, OutputKind::External),
            Amount(DUST * 5),
            Some(data),
            Some(from),
        );
        fund(chain, &network, &key, &[DUST * 7, DUST * 9]).await
    };
    chain.set_fee_rate(2_500);
    let planned = network
        .plan(
            &key,
            &Plan {
                inputs,
                payments: vec![pay(1, DUST * 3)],
                branches: vec![Amount(DUST * 2)],
                change: true,
            },
            RATE,
        )
        .unwrap();
    network.publish(&common::sign(&network, &keys[1..], &planned.signable)).await.unwrap();
    chain.mine(2);
    chain.reorg(2, 3);
    let mut blocks = vec![];
    for n in 0..=chain.height() {
        blocks.push(network.block(n).await.unwrap());
    }
    (blocks, planned.eventuality)
}

#[tokio::test]
async fn two_chains_driven_alike_agree() {
    let (a, b) = (Chain::new(common::params()), Chain::new(common::params()));
    let (blocks_a, eventuality_a) = drive(&a).await;
    let (blocks_b, eventuality_b) = drive(&b).await;
    assert_eq!(eventuality_a, eventuality_b);
    let refs = |blocks: &[memory_network::Block]| {
        blocks.iter().map(ChainBlock::block_ref).collect::<Vec<_>>()
    };
    assert_eq!(refs(&blocks_a), refs(&blocks_b));
    let key = common::keys(2, 3, 7)[0].group_key();
    for (x, y) in blocks_a.iter().zip(&blocks_b) {
        let (sx, sy) =
            (a.network().scan(x, &key).await.unwrap(), b.network().scan(y, &key).await.unwrap());
        assert_eq!(sx, sy);
        assert_eq!(a.network().spends(x), b.network().spends(y));
    }
    assert_eq!(a.unspent(&key), b.unspent(&key));
    assert_eq!(a.fees_paid_by(&key), b.fees_paid_by(&key));
    // The plan's block completes it on both.
    let last =
        blocks_a.iter().rev().find(|b| b.txs.iter().any(|t| t.id() == eventuality_a.tx)).unwrap();
    assert!(matches!(
        a.network().check(last, &[eventuality_a])[..],
        [Completion::Completed { index: 0, .. }]
    ));
    // And the valid instruction and refund address were read.
    let deposits = a.network().scan(&blocks_a[1], &key).await.unwrap();
    assert!(
        matches!(deposits[0].instruction(), Instruction::Valid(i) if i.account == SettlementAccount([3; 32]))
    );
    assert_eq!(deposits[0].refund_address().unwrap().as_bytes(), &[9; 20]);
}

#[tokio::test]
async fn planner_change_and_fee_rules_match_bitcoin() {
    let (chain, network, keys) = common::setup();
    let key = keys[0].group_key();
    let inputs = fund(&chain, &network, &key, &[DUST * 10, DUST * 10]).await;
    let total = DUST * 20;
    let one = || vec![inputs[0].clone()];
    let p = |tag| payee(tag);
    let with_change = network.fee(1, &[&p(1)], 0, true, RATE).0;
    let without = network.fee(1, &[&p(1)], 0, false, RATE).0;
    assert_eq!(without + 43, with_change, "a change output costs 43 units at 1000/kvB");

    // Change kept: fee with change, change = inputs - paid - fee.
    let planned = network.plan(&key, &plan(one(), vec![pay(1, DUST * 5)], true), RATE).unwrap();
    assert_eq!((planned.fee.0, planned.change.0), (with_change, DUST * 5 - with_change));
    let outs = &planned.signable.tx.outputs;
    assert_eq!(outs.len(), 2);
    assert_eq!(outs[1].address, Chain::address_of(&key, OutputKind::Change));

    // Change below dust: no change output, the leftover is the fee.
    let paid = DUST * 10 - with_change - (DUST - 1);
    let planned = network.plan(&key, &plan(one(), vec![pay(1, paid)], true), RATE).unwrap();
    assert_eq!((planned.fee.0, planned.change), (DUST * 10 - paid, Amount::ZERO));
    assert_eq!(planned.signable.tx.outputs.len(), 1);
    // Exactly enough for the fee without change (not with it): still no change.
    let paid = DUST * 10 - without;
    let planned = network.plan(&key, &plan(one(), vec![pay(1, paid)], true), RATE).unwrap();
    assert_eq!((planned.fee.0, planned.change), (without, Amount::ZERO));
    // One unit short of that: insufficient, reporting the fee without change.
    let err = network.plan(&key, &plan(one(), vec![pay(1, paid + 1)], true), RATE).unwrap_err();
    assert_eq!(
        err,
        PlanError::InsufficientFunds {
            inputs: Amount(DUST * 10),
            outputs: Amount(paid + 1),
            fee: Amount(without)
        }
    );
    // No change asked: the leftover is the fee even when large.
    let planned = network.plan(&key, &plan(one(), vec![pay(1, DUST)], false), RATE).unwrap();
    assert_eq!((planned.fee.0, planned.change), (DUST * 9, Amount::ZERO));

    // Every output, shuffled (as Monero's are); the scheduler's fee model agrees.
    let long = Address(vec![7; 100]);
    let full = Plan {
        inputs: inputs.clone(),
        payments: vec![
            pay(1, DUST),
            PlannedPayment { address: long.clone(), amount: Amount(DUST) },
        ],
        branches: vec![Amount(DUST * 2), Amount(DUST * 3)],
        change: true,
    };
    let planned = network.plan(&key, &full, 7_777).unwrap();
    assert_eq!(planned.fee, network.fee(2, &[&p(1), &long], 2, true, 7_777));
    assert_eq!(planned.fee.0 + planned.change.0 + DUST * 7, total);
    let mut addresses: Vec<_> =
        planned.signable.tx.outputs.iter().map(|o| o.address.clone()).collect();
    let (branch, change) =
        (Chain::address_of(&key, OutputKind::Branch), Chain::address_of(&key, OutputKind::Change));
    let mut expected = vec![p(1).0, long.0, branch.clone(), branch, change];
    addresses.sort();
    expected.sort();
    assert_eq!(addresses, expected);
    assert_eq!(
        planned.eventuality.spends,
        inputs.iter().map(ReceivedOutput::id).collect::<Vec<_>>()
    );
    assert_eq!(planned.eventuality.tx, planned.signable.id());

    // Empty, TooLarge and Dust, as Bitcoin's planner.
    let err = |p: Plan<Output, Address>| network.plan(&key, &p, RATE).unwrap_err();
    assert_eq!(err(plan(vec![], vec![pay(1, DUST)], true)), PlanError::Empty);
    assert_eq!(err(plan(one(), vec![], false)), PlanError::Empty);
    let many = vec![pay(1, DUST); 16];
    assert!(matches!(err(plan(one(), many, true)), PlanError::TooLarge { outputs: 17, .. }));
    let dust = err(plan(one(), vec![pay(1, DUST), pay(2, DUST - 1)], true));
    assert_eq!(dust, PlanError::Dust { index: 1, amount: Amount(DUST - 1) });
}

#[tokio::test]
async fn fee_rates_are_recorded_per_block_and_clamped() {
    let (chain, network, _) = common::setup();
    chain.set_fee_rate(1);
    chain.mine(1);
    chain.set_fee_rate(10_000_000);
    chain.mine(1);
    chain.set_fee_rate(5_000);
    chain.mine(1);
    let rate = |n| {
        let network = network.clone();
        async move { network.block_fee_rate(&network.block(n).await.unwrap()).await.unwrap() }
    };
    assert_eq!(rate(0).await, 1_000, "genesis records the floor");
    assert_eq!(rate(1).await, 1_000);
    assert_eq!(rate(2).await, 100_000);
    assert_eq!(rate(3).await, 5_000);
    chain.set_fee_rate(3);
    assert_eq!(network.fee_rate().await.unwrap(), 3, "the current rate, unclamped");
}

#[tokio::test]
async fn internal_outputs_carry_no_instruction_and_deposits_without_from_no_refund() {
    let (chain, network, keys) = common::setup();
    let key = keys[0].group_key();
    let data = Some(Chain::encode_instruction(&InInstruction {
        account: SettlementAccount([1; 32]),
        return_address: None,
    }));
    let from = Some(ExternalAddress::new(vec![5; 20]).unwrap());
    chain.deposit(
        &Chain::address_of(&key, OutputKind::Change),
        Amount(DUST),
        data.clone(),
        from.clone(),
    );
    chain.deposit(&Chain::address_of(&key, OutputKind::External), Amount(DUST), data, None);
    chain.deposit(&[1, 2, 3], Amount(DUST), None, from);
    chain.mine(1);
    let found = network.scan(&network.block(1).await.unwrap(), &key).await.unwrap();
    assert_eq!(found.len(), 2, "the third deposit is not ours");
    assert_eq!(
        (found[0].kind, &found[0].instruction, &found[0].refund),
        (OutputKind::Change, &Instruction::Missing, &None)
    );
    assert!(matches!(found[1].instruction, Instruction::Valid(_)));
    assert_eq!(found[1].refund, None);
    // Each deposit is its own transaction: its output is index 0.
    assert_eq!(found[1].id(), [found[1].tx.to_vec(), 0u32.to_le_bytes().to_vec()].concat());
    assert_eq!(chain.received(&[1, 2, 3]), Amount(DUST));
}

#[tokio::test]
async fn mempool_chains_and_encodings() {
    let (chain, network, keys) = common::setup();
    let key = keys[0].group_key();
    let inputs = fund(&chain, &network, &key, &[DUST * 10]).await;
    let first = network.plan(&key, &plan(inputs, vec![pay(1, DUST)], true), RATE).unwrap();
    let first_tx = common::sign(&network, &keys[..2], &first.signable);
    network.publish(&first_tx).await.unwrap();
    // Its change, still unmined, can be spent.
    let change_index =
        first.signable.tx.outputs.iter().position(|o| o.amount == first.change).unwrap();
    let change = Output {
        tx: first_tx.id(),
        index: u32::try_from(change_index).unwrap(),
        amount: first.change,
        kind: OutputKind::Change,
        instruction: Instruction::Missing,
        refund: None,
    };
    let second = network.plan(&key, &plan(vec![change], vec![pay(2, DUST)], true), RATE).unwrap();
    let second_tx = common::sign(&network, &keys[..2], &second.signable);
    network.publish(&second_tx).await.unwrap();
    assert_eq!(chain.mempool_len(), 2);
    chain.mine(1);
    let block = network.block(chain.height()).await.unwrap();
    assert_eq!(block.txs, [first_tx.clone(), second_tx]);
    let spends = network.spends(&block);
    assert_eq!(spends.len(), 2);
    assert_eq!(
        spends[1].output,
        [first_tx.id().to_vec(), u32::try_from(change_index).unwrap().to_le_bytes().to_vec()]
            .concat()
    );
    assert_eq!(chain.fees_paid_by(&key), Amount(first.fee.0 + second.fee.0));
    assert_eq!(chain.unspent(&key).len(), 1);

    // The encoding round-trips and is strict.
    let bytes = network.encode_transaction(&first_tx);
    assert_eq!(network.decode_transaction(&bytes).unwrap(), first_tx);
    assert_eq!(bytes, first_tx.encode());
    assert!(network.decode_transaction(&[bytes.clone(), vec![0]].concat()).is_err());
    assert!(network.decode_transaction(&[&[2u8][..], &bytes[1..]].concat()).is_err());
    assert_eq!(network.transaction_id(&first_tx), first.eventuality.tx.to_vec());
}
