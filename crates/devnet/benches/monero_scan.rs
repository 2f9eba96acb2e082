//! Scanning Monero, in one run over the same blocks: the processor's scanner
//! (`Monero::block` then `Monero::scan`, what its pipeline runs for every final block,
//! rings of our outputs included) against the reference, monero-wallet-rpc's `refresh` of
//! a view-only wallet of the same address and view key.
//!
//! The chain: monerod regtest with its 1,600-block history (coinbase only), then `txs`
//! transactions of the test wallet, each paying 14 random addresses and the group's
//! deposit address (16 outputs with the change), mined 10 per block. Both scanners cover
//! the blocks from the first of those to the tip and must find the same outputs of ours.
//!
//! `cargo bench -p tc-devnet --bench monero_scan` makes 300 transactions; under
//! `cargo test` (no `--bench` flag) 10, as a smoke test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use devnet::wallet_rpc::WalletRpc;
use monero_network::testing::node::Node;
use monero_network::testing::wallet::random_pair;
use monero_network::{Monero, Params};
use monero_wallet::address::Network as AddressNetwork;
use scanner::{Network, OutputKind};

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let txs = std::env::var("TC_BENCH_TXS").ok().and_then(|t| t.parse().ok()).unwrap_or(if full {
        300
    } else {
        10
    });
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (node, wallet) = rt.block_on(Node::start());
    let network = Monero::new(
        monero_network::rpc::Node::new(node.url(), Duration::from_secs(120)),
        Params::from_chain("regtest").unwrap(),
    );
    let keys = network.key(&monero_network::testing::dkg(2, 3, 7)[0]);
    let ours = keys.address(OutputKind::External);

    // The reference wallet, made before the blocks it will scan, its background refresh off.
    let from = rt.block_on(node.rpc().tip()).unwrap() + 1;
    let wallets = WalletRpc::start(&node.url()).unwrap();
    let view_key = hex::encode(<[u8; 32]>::from(*keys.view_key()));
    wallets.view_only("group", &ours.to_string(), &view_key, from).unwrap();
    wallets.no_auto_refresh().unwrap();
    wallets.refresh().unwrap();

    // The chain to scan.
    let miner = random_pair().legacy_address(AddressNetwork::Mainnet);
    let made = Instant::now();
    for i in 0..txs {
        let mut payments: Vec<_> = (0..14)
            .map(|_| (random_pair().legacy_address(AddressNetwork::Mainnet), 10_000_000_000))
            .collect();
        payments.push((ours, 20_000_000_000 + i as u64));
        rt.block_on(wallet.pay_many(node.rpc(), payments, None));
        if i % 10 == 9 {
            rt.block_on(node.mine_to(1, &miner));
        }
    }
    // Every output of ours unlocked and its ring's block final.
    rt.block_on(node.mine_to(network.params().confirmations + 1, &miner));
    let to = rt.block_on(node.rpc().tip()).unwrap();
    eprintln!("{txs} transactions made in {:.1?}; scanning blocks {from}..={to}", made.elapsed());

    // The reference: the view-only wallet's refresh over the new blocks.
    let started = Instant::now();
    let fetched = wallets.refresh().unwrap();
    let reference = started.elapsed();
    let reference_found = wallets.listed().unwrap().len();

    // The processor's scanner.
    let started = Instant::now();
    let (mut found, mut outputs, mut transactions) = (0, 0, 0);
    for number in from..=to {
        let block = rt.block_on(network.block(number)).unwrap();
        transactions += block.block.transactions.len();
        outputs += block.block.transactions.iter().map(|t| t.prefix().outputs.len()).sum::<usize>()
            + block.block.block.miner_transaction().prefix().outputs.len();
        found += rt.block_on(network.scan(&block, &keys)).unwrap().len();
    }
    let ours_took = started.elapsed();

    let blocks = to - from + 1;
    assert_eq!(found, txs, "the processor's scanner found {found} of {txs} outputs of ours");
    assert_eq!(reference_found, txs, "monero-wallet-rpc found {reference_found} of {txs}");
    let rate = |d: Duration, n: u64| n as f64 / d.as_secs_f64();
    println!("monero scan: blocks {from}..={to} ({blocks} blocks, {transactions} transactions, {outputs} outputs, {txs} ours)");
    println!("  {:<28} {:>10} {:>12} {:>12}", "", "time", "blocks/s", "outputs/s");
    for (name, took) in [("monero-wallet-rpc refresh", reference), ("processor scanner", ours_took)]
    {
        println!(
            "  {name:<28} {:>9.2}s {:>12.0} {:>12.0}",
            took.as_secs_f64(),
            rate(took, blocks),
            rate(took, outputs as u64)
        );
    }
    println!(
        "  processor / wallet-rpc speed: {:.2}x (the wallet fetched {fetched} blocks; goal >= 3x)",
        reference.as_secs_f64() / ours_took.as_secs_f64()
    );
}
