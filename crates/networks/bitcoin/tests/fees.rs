//! The fee rate plans use, from a final block, against a real litecoind (or `$BITCOIND`)
//! in regtest: a block stuffed with one high-fee transaction does not raise it past the
//! ceiling, and an empty block does not lower it past the floor.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bitcoin_network::params::{Chain, Coin, Params};
use bitcoin_network::rpc::RestBlocks;
use bitcoin_network::testing::node::Node;
use bitcoin_network::Bitcoin;
use scanner::Network;
use serde_json::json;

#[tokio::test]
async fn a_block_median_is_kept_within_the_floor_and_the_ceiling() {
    let node = Node::start().await;
    let coin = if node.is_litecoin() { Coin::Litecoin } else { Coin::Bitcoin };
    let params = Params::new(coin, Chain::Regtest);
    let network =
        Bitcoin::new(node.rpc().clone(), RestBlocks::new(node.rest_url()).unwrap(), params.clone());

    // A block whose only transaction pays 20,000 sat/vB: its median is 20,000,000 per
    // 1,000 vbytes, 20 times the ceiling.
    let to = node.new_address().await;
    let _: serde_json::Value = node
        .wallet()
        .call("sendtoaddress", json!([to, 0.1, "", "", false, true, null, "unset", null, 20_000]))
        .await
        .unwrap();
    node.mine(1).await;
    let (height, _) = node.tip().await;
    let block = network.block(height).await.unwrap();
    let rate = network.block_fee_rate(&block).await.unwrap();
    assert_eq!(rate, params.network.max_fee_rate, "a stuffed block's median is capped");
    assert!(params.network.max_fee_rate < 20_000_000);

    // An empty block (coinbase only): the floor.
    node.mine(1).await;
    let block = network.block(height + 1).await.unwrap();
    assert_eq!(network.block_fee_rate(&block).await.unwrap(), params.network.min_fee_rate);
}
