//! Scanning Monero, in one run over the same blocks, against the reference:
//! monero-wallet-rpc's `refresh` of a view-only wallet of the group's address and view key.
//! Measured beside it:
//! - monero-wallet's own `Scanner` and `GuaranteedScanner` on blocks fetched one by one
//!   (what the processor ran before its own scan);
//! - the processor's search: blocks fetched `READ_AHEAD` at a time in one `get_blocks.bin`
//!   request and searched concurrently by the fast scan (`monero_network::scan`), whose
//!   outputs must be exactly monero-wallet's;
//! - the processor's scanner as its pipeline runs it: the same, plus the ring of every
//!   output of ours, chosen when it is scanned.
//!
//! The chain: monerod regtest with its 1,600-block history (coinbase only), then `txs`
//! transactions of the test wallet, each paying 14 random addresses and the group's
//! deposit address (16 outputs with the change), mined 10 per block. Every scanner covers
//! the blocks from the first of those to the tip and must find the same outputs of ours.
//!
//! `cargo bench -p tc-devnet --bench monero_scan` makes 300 transactions (`TC_BENCH_TXS`
//! sets another number); under `cargo test` (no `--bench` flag) 10, as a smoke test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use devnet::wallet_rpc::WalletRpc;
use monero_network::network::READ_AHEAD;
use monero_network::scan;
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

    // monero-wallet's own scanners as they are, on blocks fetched one by one (what the
    // processor ran before its own scan).
    let started = Instant::now();
    let (mut crate_found, mut outputs, mut transactions) = (vec![], 0, 0);
    for number in from..=to {
        let block = rt.block_on(network.node().scannable_block(number)).unwrap();
        transactions += block.transactions.len();
        let found = scan::reference(&block, &keys).unwrap();
        outputs += found.outputs;
        crate_found.extend(found.unlocked().iter().map(|o| o.serialize()));
    }
    let crate_took = started.elapsed();

    // The processor's search: blocks read ahead (one get_blocks.bin request each
    // READ_AHEAD blocks) and searched concurrently by the fast scan.
    let started = Instant::now();
    let mut fast_found = vec![];
    for first in (from..=to).step_by(READ_AHEAD) {
        let last = (first + READ_AHEAD as u64 - 1).min(to);
        let blocks = rt.block_on(network.blocks(first, last)).unwrap();
        let searches: Vec<_> = blocks
            .into_iter()
            .map(|b| {
                let keys = keys.clone();
                std::thread::spawn(move || scan::ours(&b.block, &keys).unwrap().unlocked())
            })
            .collect();
        for search in searches {
            fast_found.extend(search.join().unwrap().iter().map(|o| o.serialize()));
        }
    }
    let find_took = started.elapsed();
    assert_eq!(fast_found, crate_found, "the fast scan must find exactly what monero-wallet finds");

    // Its parts: the fetch alone, and the search alone (blocks in memory, one thread).
    let started = Instant::now();
    let mut fetched_blocks = vec![];
    for first in (from..=to).step_by(READ_AHEAD) {
        let last = (first + READ_AHEAD as u64 - 1).min(to);
        fetched_blocks.extend(rt.block_on(network.blocks(first, last)).unwrap());
    }
    let fetch_took = started.elapsed();
    let started = Instant::now();
    let mut shown = 0;
    for b in &fetched_blocks {
        shown += scan::ours(&b.block, &keys).unwrap().passed;
    }
    let search_took = started.elapsed();

    // The processor's scanner as its pipeline runs it: the same, plus the ring of each
    // output of ours (chosen when it is scanned, with the node's decoys).
    let started = Instant::now();
    let mut found = 0;
    for first in (from..=to).step_by(network.read_ahead()) {
        let last = (first + network.read_ahead() as u64 - 1).min(to);
        let blocks = rt.block_on(network.blocks(first, last)).unwrap();
        let scans = futures::future::try_join_all(blocks.iter().map(|b| network.scan(b, &keys)));
        found += rt.block_on(scans).unwrap().iter().map(Vec::len).sum::<usize>();
    }
    let ours_took = started.elapsed();

    let blocks = to - from + 1;
    assert_eq!(found, txs, "the processor's scanner found {found} of {txs} outputs of ours");
    assert_eq!(
        crate_found.len(),
        txs,
        "monero-wallet's scanners found {} of {txs}",
        crate_found.len()
    );
    assert_eq!(reference_found, txs, "monero-wallet-rpc found {reference_found} of {txs}");
    let rate = |d: Duration, n: u64| n as f64 / d.as_secs_f64();
    println!("monero scan: blocks {from}..={to} ({blocks} blocks, {transactions} transactions, {outputs} outputs, {txs} ours)");
    println!(
        "  {:<44} {:>8} {:>9} {:>10} {:>14}",
        "", "time", "blocks/s", "outputs/s", "vs wallet-rpc"
    );
    for (name, took) in [
        ("monero-wallet-rpc refresh (reference)", reference),
        ("monero-wallet Scanner, blocks one by one", crate_took),
        ("processor: fetch + find (read-ahead, fast)", find_took),
        ("processor: fetch + find + rings (pipeline)", ours_took),
        ("  of which: fetch alone (get_blocks.bin)", fetch_took),
        ("  of which: find alone (1 thread)", search_took),
    ] {
        println!(
            "  {name:<44} {:>7.3}s {:>9.0} {:>10.0} {:>13.2}x",
            took.as_secs_f64(),
            rate(took, blocks),
            rate(took, outputs as u64),
            reference.as_secs_f64() / took.as_secs_f64()
        );
    }
    println!("  {shown} of {outputs} outputs passed the view-tag filter");
    println!(
        "  (the wallet fetched {fetched} blocks; goal: the processor >= 3x the wallet; the fast \
         scan found the same {} outputs as monero-wallet's Scanner)",
        crate_found.len()
    );
}
