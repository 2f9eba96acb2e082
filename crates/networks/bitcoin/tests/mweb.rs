//! Litecoin with MWEB active (litecoind on its defaults): blocks carrying peg-ins,
//! peg-outs and the HogEx are fetched, checked and scanned, and every deposit is found
//! exactly once, with the right instruction and refund address, wherever it sits.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use bitcoin::hashes::Hash;
use bitcoin::Txid;
use bitcoin_network::address::Address;
use bitcoin_network::params::{Chain, Coin, Params};
use bitcoin_network::rpc::{RestBlocks, Rpc};
use bitcoin_network::testing::{keys, node::Node};
use bitcoin_network::{instruction, Bitcoin, Output};
use primitives::{ExternalAddress, InInstruction, SettlementAccount};
use scanner::{Instruction, Network, OutputKind};
use serde_json::{json, Value};

fn account(byte: u8) -> InInstruction {
    InInstruction { account: SettlementAccount([byte; 32]), return_address: None }
}

/// A new wallet named `name`, with its first canonical address.
async fn wallet(node: &Node, name: &str) -> (Rpc, String) {
    let _: Value = node.rpc().call("createwallet", json!([name])).await.unwrap();
    let wallet = node.rpc().with_wallet(name);
    let address = wallet.call("getnewaddress", json!(["", "bech32"])).await.unwrap();
    (wallet, address)
}

/// Mines one block, then scans it through the network seam.
async fn mine_and_scan(
    node: &Node,
    network: &Bitcoin<RestBlocks>,
    key: &bitcoin_network::GroupKey,
) -> (bitcoin_network::Block, Vec<Output>) {
    node.mine(1).await;
    let height = node.tip().await.0;
    let block = network.block(height).await.unwrap();
    let found = network.scan(&block, key).await.unwrap();
    (block, found)
}

#[tokio::test]
async fn deposits_among_pegins_and_pegouts_are_found_exactly() {
    let node = Node::start().await;
    if !node.is_litecoin() {
        eprintln!("BITCOIND is not litecoind: no MWEB to test");
        return;
    }
    let params = Params::new(Coin::Litecoin, Chain::Regtest);
    let network = Bitcoin::new(node.rpc().clone(), node.rest_blocks(), params.clone());
    let key = keys::dkg(2, 3, 432)[0].group_key();
    let ours = network.address_of(&key, OutputKind::External).unwrap().display(&params);
    node.watch(&ours).await;
    let mweb = node.rpc().with_wallet("mweb");

    // Block A: an ordinary deposit with an instruction; a peg-out straight to our
    // address (paid by the HogEx, no instruction, no visible sender); and an unrelated
    // peg-in and peg-out.
    let (sender, sender_address) = wallet(&node, "sender").await;
    let _: String =
        node.wallet().call("sendtoaddress", json!([sender_address, 5.0])).await.unwrap();
    node.mine(1).await;
    let ordinary = node
        .deposit_from(&sender, &ours, 120_000_000, Some(&instruction::encode(&account(1)).unwrap()))
        .await;
    let _: String = mweb.call("sendtoaddress", json!([ours, 0.3])).await.unwrap();
    node.mweb_traffic().await;
    let (block_a, found_a) = mine_and_scan(&node, &network, &key).await;
    assert!(block_a.hogex, "block A has an extension block");
    let hogex = block_a.block.txdata.last().unwrap();
    assert!(hogex.input.len() >= 2, "the HogEx takes the previous HogEx's output and a peg-in");
    assert!(hogex.output.len() >= 2, "the HogEx pays our peg-out");

    let by_tx: BTreeMap<Txid, &Output> =
        found_a.iter().map(|o| (Txid::from_byte_array(o.txid), o)).collect();
    assert_eq!(found_a.len(), 2, "{found_a:?}");
    let first = by_tx[&ordinary];
    assert_eq!((first.value, first.kind), (120_000_000, OutputKind::External));
    assert_eq!(first.instruction, Instruction::Valid(account(1)));
    let refund = Address::parse(&params, &sender_address).unwrap().to_external();
    assert_eq!(first.refund.as_ref(), Some(&refund), "refunds go to the depositor's input");
    let pegout = by_tx[&hogex.compute_txid()];
    assert_eq!((pegout.value, pegout.kind), (30_000_000, OutputKind::External));
    assert_eq!(pegout.instruction, Instruction::Missing);
    assert_eq!(pegout.refund, None, "a peg-out's sender is inside MWEB: nothing to refund to");

    // Block B: a depositor whose coins came out of MWEB (a peg-out to its address) pays
    // us: its refund address is found through the HogEx that paid it.
    let (pegged, pegged_address) = wallet(&node, "pegged").await;
    let _: String = mweb.call("sendtoaddress", json!([pegged_address, 0.4])).await.unwrap();
    let (block_b, found_b) = mine_and_scan(&node, &network, &key).await;
    assert!(block_b.hogex);
    assert_eq!(found_b, vec![], "the peg-out to another address is not ours");
    // Peg-outs are spendable after PEGOUT_MATURITY (6) blocks, like a short coinbase.
    node.mine(6).await;
    let funded_by_pegout = node
        .deposit_from(&pegged, &ours, 20_000_000, Some(&instruction::encode(&account(2)).unwrap()))
        .await;
    let spent =
        node.rpc().raw_transaction(funded_by_pegout).await.unwrap().input[0].previous_output;
    assert_eq!(spent.txid, block_b.block.txdata.last().unwrap().compute_txid(), "spends a peg-out");
    node.mweb_traffic().await;
    let (block_c, found_c) = mine_and_scan(&node, &network, &key).await;
    assert!(block_c.hogex);
    assert_eq!(found_c.len(), 1, "{found_c:?}");
    assert_eq!(Txid::from_byte_array(found_c[0].txid), funded_by_pegout);
    assert_eq!(found_c[0].value, 20_000_000);
    assert_eq!(found_c[0].instruction, Instruction::Valid(account(2)));
    let refund: ExternalAddress = Address::parse(&params, &pegged_address).unwrap().to_external();
    assert_eq!(found_c[0].refund, Some(refund));

    // The node's own accounting agrees: our address received exactly these three.
    let received = node.received_by(&ours).await;
    assert_eq!(received, 120_000_000 + 30_000_000 + 20_000_000);

    // Transactions the node serves by txid decode too: a HogEx, a mined peg-in.
    let hogex_txid = block_c.block.txdata.last().unwrap().compute_txid();
    assert_eq!(node.rpc().raw_transaction(hogex_txid).await.unwrap().compute_txid(), hogex_txid);
    // A peg-in pays the peg-in script (witness version 9).
    let pegin = block_c
        .block
        .txdata
        .iter()
        .find(|tx| tx.output.iter().any(|o| o.script_pubkey.as_bytes().first() == Some(&0x59)));
    let pegin = pegin.expect("block C has a peg-in");
    assert_eq!(&node.rpc().raw_transaction(pegin.compute_txid()).await.unwrap(), pegin);
}

/// What a lying block source changes in what it serves.
#[derive(Clone, Copy)]
enum Lie {
    /// The extension's height, off by one.
    Height,
    /// No extension: a post-activation block served as if MWEB did not exist.
    Strip,
    /// An extension on a block before activation.
    Add,
}

struct Lying(RestBlocks, Lie);

impl bitcoin_network::rpc::BlockSource for Lying {
    async fn block(
        &self,
        hash: &bitcoin::BlockHash,
    ) -> Result<bitcoin_network::mweb::NodeBlock, bitcoin_network::rpc::RpcError> {
        let mut block = self.0.block(hash).await?;
        match self.1 {
            Lie::Height => block.extension.iter_mut().for_each(|e| e.height += 1),
            Lie::Strip => block.extension = None,
            Lie::Add => {
                block.extension =
                    Some(bitcoin_network::mweb::Extension { height: 100, hash: [0; 32] })
            }
        }
        Ok(block)
    }
}

/// The decoder ties the extension to the HogEx; the network ties it to the height asked
/// for and to MWEB's activation, so that a node can neither strip a HogEx (and with it
/// the peg-outs' missing refund addresses) nor make one of an ordinary transaction.
#[tokio::test]
async fn an_extension_stripped_added_or_for_another_height_is_refused() {
    let node = Node::start().await;
    if !node.is_litecoin() {
        return;
    }
    let params = Params::new(Coin::Litecoin, Chain::Regtest);
    let tip = node.tip().await.0;
    for (lie, height, said) in [
        (Lie::Height, tip, "extension block is for height"),
        (Lie::Strip, tip, "MWEB requires from 432"),
        (Lie::Add, 100, "before MWEB's activation at 432"),
    ] {
        let honest = Bitcoin::new(node.rpc().clone(), node.rest_blocks(), params.clone());
        honest.block(height).await.unwrap();
        let lying = Lying(node.rest_blocks(), lie);
        let network = Bitcoin::new(node.rpc().clone(), lying, params.clone());
        let error = network.block(height).await.unwrap_err().to_string();
        assert!(error.contains(said), "{error}");
    }
    // Bitcoin has no MWEB: an extension is refused whatever the height.
    let bitcoin = Params::new(Coin::Bitcoin, Chain::Regtest);
    let network = Bitcoin::new(node.rpc().clone(), node.rest_blocks(), bitcoin);
    let error = network.block(tip).await.unwrap_err().to_string();
    assert!(error.contains("this coin has none"), "{error}");
}
