//! The fast scan (`monero_network::scan::ours`) finds exactly what monero-wallet's own
//! scanners find, on real blocks of a monerod regtest chain made to hold every case: our
//! main address and our guaranteed subaddresses paid, alone and beside others' outputs,
//! with and without additional transaction keys (a subaddress among the payees), a
//! standard payment to one of our subaddresses (not ours), a coinbase paid to us
//! (timelocked), and blocks of others' transactions only. Then on blocks edited the way
//! no honest wallet makes them: an output of ours without a view tag, and one whose view
//! tag was changed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use curve25519_dalek::Scalar as DalekScalar;
use monero_network::keys::Keys;
use monero_network::rpc::Node as Rpc;
use monero_network::scan::{self, Found};
use monero_network::testing::wallet::{random_pair, TestWallet};
use monero_network::testing::{self, node::Node};
use monero_network::{instruction, Monero, Params};
use monero_wallet::address::{Network as AddressNetwork, SubaddressIndex};
use monero_wallet::interface::prelude::ScannableBlock;
use monero_wallet::primitives::keccak256;
use monero_wallet::ringct::EncryptedAmount;
use monero_wallet::transaction::Transaction;
use primitives::InInstruction;
use scanner::{Network, OutputKind};

const NET: AddressNetwork = AddressNetwork::Mainnet;

/// Monero's hash to a scalar (Keccak-256, reduced).
fn hash_to_scalar(data: &[u8]) -> DalekScalar {
    DalekScalar::from_bytes_mod_order(keccak256(data))
}

/// A found set as bytes, for equality (monero-wallet's outputs have no `PartialEq`).
fn bytes(found: &Found) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    (
        found.external.iter().map(|o| o.serialize()).collect(),
        found.internal.iter().map(|o| o.serialize()).collect(),
    )
}

/// Both scans of `block`; asserts they agree and returns the fast one.
fn agree(block: &ScannableBlock, keys: &Keys, what: &str) -> Found {
    let fast = scan::ours(block, keys).unwrap();
    let reference = scan::reference(block, keys).unwrap();
    assert_eq!(
        bytes(&fast),
        bytes(&reference),
        "{what}: the fast scan differs from monero-wallet's"
    );
    assert_eq!(fast.outputs, reference.outputs, "{what}: outputs counted differently");
    fast
}

/// A node on the test history, the network over it, and a group's keys (from `seed`).
async fn start(seed: u64) -> (Node, TestWallet, Monero, Keys) {
    let (node, wallet) = Node::start().await;
    let network = Monero::new(
        Rpc::new(node.url(), Duration::from_secs(60)),
        Params::from_chain("regtest").unwrap(),
    );
    let keys = network.key(&testing::dkg(2, 3, seed)[0]);
    (node, wallet, network, keys)
}

#[tokio::test]
async fn the_fast_scan_finds_exactly_what_monero_wallet_finds() {
    let (node, wallet, network, keys) = start(11).await;
    let dust = network.params().dust.0;
    let main = keys.address(OutputKind::External);
    let others = || random_pair().legacy_address(NET);
    let others_subaddress = || random_pair().subaddress(NET, SubaddressIndex::new(0, 5).unwrap());
    let data = instruction::encode(&InInstruction {
        account: primitives::SettlementAccount([7; 32]),
        return_address: None,
    })
    .unwrap();
    let rpc = node.rpc();
    let from = node.tip().await + 1;

    // A block of every case (one transaction each, so each is its own case).
    let mut expected = (0usize, 0usize);
    // Ours alone, with an instruction.
    wallet.pay(rpc, main, 3 * dust, Some(data.clone())).await;
    expected.0 += 1;
    // Ours among 13 others (one transaction key for all).
    let mut many: Vec<_> = (0..13).map(|_| (others(), dust)).collect();
    many.push((main, 4 * dust));
    wallet.pay_many(rpc, many, None).await;
    expected.0 += 1;
    // Ours beside another's subaddress: additional keys, one per output.
    wallet.pay_many(rpc, vec![(others_subaddress(), dust), (main, 5 * dust)], None).await;
    expected.0 += 1;
    // Our guaranteed subaddresses, together and beside a deposit.
    wallet
        .pay_many(
            rpc,
            vec![
                (keys.address(OutputKind::Branch), 6 * dust),
                (keys.address(OutputKind::Change), 7 * dust),
                (others(), dust),
            ],
            None,
        )
        .await;
    expected.1 += 2;
    wallet
        .pay_many(
            rpc,
            vec![(keys.address(OutputKind::Forwarded), 8 * dust), (main, 9 * dust)],
            None,
        )
        .await;
    expected.0 += 1;
    expected.1 += 1;
    // Our main address in the guaranteed form (anyone can derive it from the public
    // keys): the crate's guaranteed scanner finds it without a subaddress, and the
    // processor reports neither it nor, from the standard scanner, a deposit.
    let guaranteed_main = keys.guaranteed().address(NET, None, None);
    wallet.pay(rpc, guaranteed_main, 11 * dust, Some(data.clone())).await;
    // One of our subaddresses paid the standard way: not ours (nor found by either).
    let standard = keys
        .view_pair()
        .subaddress(NET, monero_network::keys::subaddress(OutputKind::Change).unwrap());
    wallet.pay(rpc, standard, 10 * dust, None).await;
    // Others only.
    wallet.pay_many(rpc, vec![(others(), dust), (others_subaddress(), dust)], None).await;
    // The transactions in one block, then a block whose coinbase pays us.
    node.mine_to(1, &others()).await;
    node.mine_to(1, &main).await;
    let to = node.tip().await;

    let (mut external, mut internal, mut outputs, mut passed) = (0, 0, 0, 0);
    let mut ours_block = None;
    for number in from..=to {
        let block = rpc.scannable_block(number).await.unwrap();
        let found = agree(&block, &keys, &format!("block {number}"));
        if !found.external.is_empty() && found.internal.len() == expected.1 {
            ours_block = Some(block.clone());
        }
        external += found.external.len();
        internal += found.internal.len();
        outputs += found.outputs;
        passed += found.passed;
    }
    // The deposits, our own outputs, and the coinbase (timelocked: found, never unlocked).
    assert_eq!((external, internal), (expected.0 + 1, expected.1), "what both scans found");
    eprintln!("{outputs} outputs in blocks {from}..={to}; {passed} passed the view-tag filter");
    // The filter stops what is not ours: a bug that filters nothing would pass the equality.
    assert!(
        passed < (expected.0 + expected.1 + 1) * 2 + outputs / 16,
        "{passed} of {outputs} outputs passed the view-tag filter"
    );

    // Edited blocks. Our first deposit's output: without a view tag the crate tries it
    // in full (and so must we); with another view tag the crate skips it.
    let block = ours_block.expect("the block with our transactions");
    let found = scan::ours(&block, &keys).unwrap();
    let first = &found.external[0];
    let (tx, index) = (first.transaction(), usize::try_from(first.index_in_transaction()).unwrap());
    let position = block.block.transactions.iter().position(|h| *h == tx).unwrap();
    let edit = |tag: Option<u8>| {
        let mut edited = block.clone();
        edited.transactions[position].prefix_mut().outputs[index].view_tag = tag;
        edited
    };
    let untagged = agree(&edit(None), &keys, "our output without a view tag");
    assert_eq!(
        untagged.external.len(),
        found.external.len(),
        "an untagged output of ours is found"
    );
    // Its amount in the original (pre-2019) encryption: still found, with the same
    // commitment; and an amount that does not open the commitment: skipped by both.
    let set_amount = |amount: EncryptedAmount| {
        let mut edited = block.clone();
        let Transaction::V2 { proofs: Some(proofs), .. } = &mut edited.transactions[position]
        else {
            panic!("a RingCT transaction")
        };
        proofs.base.encrypted_amounts[index] = amount;
        edited
    };
    let shared: DalekScalar = first.key_offset().into();
    let mask_pad = hash_to_scalar(&shared.to_bytes());
    let amount_pad = hash_to_scalar(&mask_pad.to_bytes());
    let commitment = first.commitment();
    let original = EncryptedAmount::Original {
        mask: (commitment.mask.into() + mask_pad).to_bytes(),
        amount: (DalekScalar::from(commitment.amount) + amount_pad).to_bytes(),
    };
    let reencrypted = agree(&set_amount(original), &keys, "the original amount encryption");
    assert_eq!(reencrypted.external.len(), found.external.len(), "an original-format amount opens");
    let wrong = agree(
        &set_amount(EncryptedAmount::Compact { amount: [1; 8] }),
        &keys,
        "an amount that does not open its commitment",
    );
    assert_eq!(wrong.external.len(), found.external.len() - 1, "a wrong amount is not ours");
    let tag = block.transactions[position].prefix().outputs[index].view_tag.unwrap();
    let retagged =
        agree(&edit(Some(tag.wrapping_add(1))), &keys, "our output with another view tag");
    assert_eq!(retagged.external.len(), found.external.len() - 1, "a wrong view tag hides it");
}

/// The fast scan of the history's coinbase-only blocks agrees too, and with no output of
/// ours, almost nothing passes its view-tag filter.
#[tokio::test]
async fn blocks_with_nothing_of_ours_agree_and_show_nothing() {
    let (node, _wallet, _network, keys) = start(12).await;
    let tip = node.tip().await;
    let (mut outputs, mut passed) = (0, 0);
    for number in tip - 99..=tip {
        let block = node.rpc().scannable_block(number).await.unwrap();
        let found = agree(&block, &keys, &format!("block {number}"));
        assert!(found.external.is_empty() && found.internal.is_empty());
        outputs += found.outputs;
        passed += found.passed;
    }
    assert!(outputs >= 100, "{outputs} outputs in 100 blocks");
    assert!(passed <= outputs / 16, "{passed} of {outputs} outputs passed the view-tag filter");
}

/// A block as bytes: the block, its transactions (pruned) and its first RingCT output's
/// index.
fn block_bytes(block: &ScannableBlock) -> (Vec<u8>, Vec<Vec<u8>>, Option<u64>) {
    (
        block.block.serialize(),
        block.transactions.iter().map(|t| t.serialize()).collect(),
        block.output_index_for_first_ringct_output,
    )
}

/// Many blocks in one `get_blocks.bin` request are the blocks fetched one by one; an
/// answer cut short, or read as other blocks than those asked for, is refused.
#[tokio::test]
async fn blocks_fetched_at_once_are_the_blocks_fetched_one_by_one() {
    let (node, wallet, _network, keys) = start(13).await;
    let rpc = node.rpc();
    let from = node.tip().await - 20;
    // Transactions of every shape in the last blocks: one output, many, additional keys.
    wallet.pay(rpc, keys.address(OutputKind::External), 10_000_000_000, None).await;
    let mut many: Vec<_> = (0..14).map(|_| (random_pair().legacy_address(NET), 1)).collect();
    many.push((random_pair().subaddress(NET, SubaddressIndex::new(1, 1).unwrap()), 1));
    wallet.pay_many(rpc, many, None).await;
    node.mine_to(1, &random_pair().legacy_address(NET)).await;
    wallet.pay(rpc, keys.address(OutputKind::Change), 10_000_000_000, None).await;
    node.mine_to(2, &random_pair().legacy_address(NET)).await;
    let to = node.tip().await;

    let at_once = rpc.scannable_blocks(from, to).await.unwrap();
    assert_eq!(at_once.len() as u64, to - from + 1);
    let mut transactions = 0;
    for (number, block) in (from..).zip(&at_once) {
        let alone = rpc.scannable_block(number).await.unwrap();
        assert_eq!(block_bytes(block), block_bytes(&alone), "block {number}");
        transactions += block.transactions.len();
    }
    assert!(transactions >= 3, "{transactions} transactions in the blocks compared");
    // And the genesis block, which get_blocks.bin cannot start from.
    let first = rpc.scannable_blocks(0, 1).await.unwrap();
    assert_eq!(block_bytes(&first[1]), block_bytes(&rpc.scannable_block(1).await.unwrap()));

    // The raw answer, refused when it is not what was asked for.
    let daemon = rpc.daemon().await.unwrap();
    let count = to - from + 1;
    let answer = daemon
        .bin_call("get_blocks.bin", monero_network::blocks::request(from, count), 1 << 26)
        .await
        .unwrap();
    let count = usize::try_from(count).unwrap();
    assert_eq!(monero_network::blocks::parse(&answer, from, count).unwrap().len(), count);
    // Fewer asked for than sent (monerod 0.18.0.0 sends up to its tip): the first ones.
    let two = monero_network::blocks::parse(&answer, from, 2).unwrap();
    assert_eq!(
        two.iter().map(block_bytes).collect::<Vec<_>>(),
        at_once[..2].iter().map(block_bytes).collect::<Vec<_>>()
    );
    let err = monero_network::blocks::parse(&answer, from + 1, count).unwrap_err();
    assert!(err.to_string().contains("was asked for"), "{err}");
    for cut in [answer.len() / 3, answer.len() / 2, answer.len() - 1] {
        assert!(
            monero_network::blocks::parse(&answer[..cut], from, count).is_err(),
            "cut at {cut}"
        );
    }
    // A transaction's byte changed (in its extra): it no longer hashes as its block lists.
    let tx = at_once.iter().flat_map(|b| &b.transactions).last().unwrap().prefix().extra.clone();
    let at = answer.windows(tx.len()).position(|w| w == tx.as_slice()).unwrap();
    let mut edited = answer.clone();
    edited[at + tx.len() - 1] ^= 1;
    let err = monero_network::blocks::parse(&edited, from, count).unwrap_err();
    assert!(err.to_string().contains("the block lists"), "{err}");
}

/// The rings the scanner chooses (with its cache of decoy timelocks, height and output
/// distribution) are the rings monero-wallet chooses asking the node for everything, with
/// the same seed: on a chain whose recent outputs include timelocked coinbase outputs.
#[tokio::test]
async fn rings_chosen_with_the_cache_are_the_rings_chosen_without() {
    use rand_core::SeedableRng;
    let (node, wallet, network, keys) = start(14).await;
    let dust = network.params().dust.0;
    for i in 0..4 {
        wallet.pay(node.rpc(), keys.address(OutputKind::External), dust * (2 + i), None).await;
    }
    wallet.pay(node.rpc(), keys.address(OutputKind::Branch), dust * 9, None).await;
    node.mine_to(1, &random_pair().legacy_address(NET)).await;
    let number = node.tip().await;
    node.mine_to(network.params().confirmations, &random_pair().legacy_address(NET)).await;

    let block = network.block(number).await.unwrap();
    let scanned = network.scan(&block, &keys).await.unwrap();
    assert_eq!(scanned.len(), 5);
    let found = scan::ours(&block.block, &keys).unwrap().unlocked();
    let daemon = node.rpc().daemon().await.unwrap();
    let height = usize::try_from(number + monero_network::network::LOCK - 1).unwrap();
    for (output, wallet_output) in scanned.iter().zip(found) {
        let seed = primitives::hash(
            b"tc-monero/v1/ring",
            &[&wallet_output.key().compress().to_bytes(), &number.to_le_bytes()],
        );
        let mut rng = rand_chacha::ChaCha20Rng::from_seed(seed);
        let direct = monero_wallet::OutputWithDecoys::fingerprintable_deterministic_new(
            &mut rng,
            daemon,
            monero_network::fee::RING_LEN,
            height,
            wallet_output,
        )
        .await
        .unwrap();
        assert_eq!(output.spendable, direct.serialize(), "the ring of {}", hex::encode(output.key));
    }
}
