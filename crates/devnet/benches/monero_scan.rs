//! Scanning Monero, in one run over the same blocks, against the reference:
//! monero-wallet-rpc's `refresh` of a view-only wallet of the group's address and view key.
//! Measured beside it, on the same blocks:
//! - monero-wallet's own `Scanner` and `GuaranteedScanner` on blocks fetched one by one
//!   (what the processor ran before its own scan);
//! - the processor's scan: blocks fetched `READ_AHEAD` at a time in one `get_blocks.bin`
//!   request (the next request in flight while these are searched) and searched on every
//!   core by `monero_network::scan`, whose outputs must be exactly monero-wallet's; this is
//!   what the wallet's refresh does (fetch, find the outputs, decrypt their amounts);
//! - the same plus the ring of every output of ours, chosen when it is scanned (the
//!   processor's scan stage; the wallet chooses rings when it spends, not when it
//!   refreshes);
//! - the fetch alone, and the search alone on one thread.
//!
//! Two chains, one after the other on one monerod regtest (after its 1,600-block history),
//! each of `txs` transactions of 16 outputs (14 to random addresses, the change, and one
//! more), mined 10 per block:
//! - "1 in 10 ours": one transaction in ten pays the group's deposit address;
//! - "all ours": every transaction does (the heaviest case for the processor, whose cost
//!   per output of its own is higher than per output of others').
//!
//! `cargo bench -p tc-devnet --bench monero_scan` makes 400 transactions per chain
//! (`TC_BENCH_TXS` sets another number); under `cargo test` (no `--bench` flag) 10, as a
//! smoke test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use devnet::wallet_rpc::WalletRpc;
use monero_network::keys::Keys;
use monero_network::network::READ_AHEAD;
use monero_network::testing::node::Node;
use monero_network::testing::wallet::{random_pair, TestWallet};
use monero_network::{scan, Block, Monero, Params};
use monero_wallet::address::Network as AddressNetwork;
use scanner::{Network, OutputKind};
use tokio::runtime::Runtime;

struct Bench {
    rt: Runtime,
    node: Node,
    wallet: TestWallet,
    network: Arc<Monero>,
    keys: Keys,
    wallets: WalletRpc,
    listed: usize,
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let txs = std::env::var("TC_BENCH_TXS").ok().and_then(|t| t.parse().ok()).unwrap_or(if full {
        400
    } else {
        10
    });
    let rt = Runtime::new().unwrap();
    let (node, wallet) = rt.block_on(Node::start());
    let network = Arc::new(Monero::new(
        monero_network::rpc::Node::new(node.url(), Duration::from_secs(120)),
        Params::from_chain("regtest").unwrap(),
    ));
    let keys = network.key(&monero_network::testing::dkg(2, 3, 7)[0]);

    // The reference wallet, made before the blocks it will scan, its background refresh off.
    let from = rt.block_on(node.rpc().tip()).unwrap() + 1;
    let wallets = WalletRpc::start(&node.url()).unwrap();
    let view_key = hex::encode(<[u8; 32]>::from(*keys.view_key()));
    let address = keys.address(OutputKind::External).to_string();
    wallets.view_only("group", &address, &view_key, from).unwrap();
    wallets.no_auto_refresh().unwrap();
    wallets.refresh().unwrap();
    let mut bench = Bench { rt, node, wallet, network, keys, wallets, listed: 0 };
    bench.chain("1 in 10 ours", txs, 10);
    bench.chain("all ours", txs, 1);
}

impl Bench {
    /// Makes a chain of `txs` transactions, one in `every` paying us, and measures every
    /// scanner over it.
    fn chain(&mut self, name: &str, txs: usize, every: usize) {
        let Bench { rt, node, wallet, network, keys, .. } = self;
        let ours = keys.address(OutputKind::External);
        let from = rt.block_on(node.rpc().tip()).unwrap() + 1;
        let miner = random_pair().legacy_address(AddressNetwork::Mainnet);
        let made = Instant::now();
        let mut paid = 0;
        for i in 0..txs {
            let mut payments: Vec<_> = (0..14)
                .map(|_| (random_pair().legacy_address(AddressNetwork::Mainnet), 10_000_000_000))
                .collect();
            let to_us = i % every == 0;
            let last =
                if to_us { ours } else { random_pair().legacy_address(AddressNetwork::Mainnet) };
            payments.push((last, 20_000_000_000 + i as u64));
            paid += usize::from(to_us);
            rt.block_on(wallet.pay_many(node.rpc(), payments, None));
            if i % 10 == 9 {
                rt.block_on(node.mine_to(1, &miner));
            }
        }
        // Every output of ours unlocked and its ring's block final.
        rt.block_on(node.mine_to(network.params().confirmations + 1, &miner));
        let to = rt.block_on(node.rpc().tip()).unwrap();
        eprintln!(
            "{name}: {txs} transactions made in {:.1?}; blocks {from}..={to}",
            made.elapsed()
        );

        // The reference: the view-only wallet's refresh over the new blocks.
        let started = Instant::now();
        let fetched = self.wallets.refresh().unwrap();
        let reference = started.elapsed();
        let listed = self.wallets.listed().unwrap().len();
        let reference_found = listed - self.listed;
        self.listed = listed;
        let Bench { rt, network, keys, .. } = self;

        // monero-wallet's own scanners as they are, on blocks fetched one by one.
        let started = Instant::now();
        let (mut crate_found, mut outputs, mut transactions) = (vec![], 0, 0);
        for number in from..=to {
            let block = rt.block_on(network.node().scannable_block(number)).unwrap();
            transactions += block.transactions.len();
            let found = scan::reference(&block, keys).unwrap();
            outputs += found.outputs;
            crate_found.extend(found.unlocked().iter().map(|o| o.serialize()));
        }
        let crate_took = started.elapsed();

        // The processor's scan: read-ahead fetches, one in flight while the blocks before
        // are searched on every core.
        let chunks: Vec<(u64, u64)> = (from..=to)
            .step_by(READ_AHEAD)
            .map(|first| (first, (first + READ_AHEAD as u64 - 1).min(to)))
            .collect();
        let fetch = |(first, last): (u64, u64)| {
            let network = network.clone();
            rt.spawn(async move { network.blocks(first, last).await })
        };
        let started = Instant::now();
        let mut fast_found = vec![];
        let mut next = Some(fetch(chunks[0]));
        for i in 0..chunks.len() {
            let blocks = rt.block_on(next.take().unwrap()).unwrap().unwrap();
            next = chunks.get(i + 1).map(|c| fetch(*c));
            fast_found.extend(search_on_every_core(&blocks, keys));
        }
        let find_took = started.elapsed();
        assert_eq!(
            fast_found, crate_found,
            "the fast scan must find exactly what monero-wallet finds"
        );

        // The same with rings: `Network::scan` of each block, as the pipeline's read-ahead
        // runs it (the blocks of a read-ahead at once, the next read-ahead in flight).
        let job = |(first, last): (u64, u64)| {
            let (network, keys) = (network.clone(), keys.clone());
            rt.spawn(async move {
                let blocks = network.blocks(first, last).await.unwrap();
                let scans = blocks.iter().map(|b| network.scan(b, &keys));
                futures::future::try_join_all(scans)
                    .await
                    .unwrap()
                    .iter()
                    .map(Vec::len)
                    .sum::<usize>()
            })
        };
        let started = Instant::now();
        let mut found = 0;
        let mut next = Some(job(chunks[0]));
        for i in 0..chunks.len() {
            let this = next.take().unwrap();
            next = chunks.get(i + 1).map(|c| job(*c));
            found += rt.block_on(this).unwrap();
        }
        let ours_took = started.elapsed();

        // Its parts: the fetch alone, and the search alone (blocks in memory, one thread).
        let started = Instant::now();
        let mut blocks = vec![];
        for (first, last) in &chunks {
            blocks.extend(rt.block_on(network.blocks(*first, *last)).unwrap());
        }
        let fetch_took = started.elapsed();
        let started = Instant::now();
        let mut passed = 0;
        for b in &blocks {
            passed += scan::ours(&b.block, keys).unwrap().passed;
        }
        let search_took = started.elapsed();

        let blocks = to - from + 1;
        assert_eq!(found, paid, "the processor's scanner found {found} of {paid} outputs of ours");
        assert_eq!(crate_found.len(), paid, "monero-wallet's scanners found {}", crate_found.len());
        assert_eq!(reference_found, paid, "monero-wallet-rpc found {reference_found} of {paid}");
        let rate = |d: Duration, n: u64| n as f64 / d.as_secs_f64();
        println!(
            "monero scan, {name}: blocks {from}..={to} ({blocks} blocks, {transactions} transactions, {outputs} outputs, {paid} ours)"
        );
        println!(
            "  {:<46} {:>8} {:>9} {:>10} {:>14}",
            "", "time", "blocks/s", "outputs/s", "vs wallet-rpc"
        );
        for (name, took) in [
            ("monero-wallet-rpc refresh (reference)", reference),
            ("monero-wallet Scanner, blocks one by one", crate_took),
            ("processor scan: fetch + find (read-ahead)", find_took),
            ("processor scan + rings of our outputs", ours_took),
            ("  fetch alone (get_blocks.bin)", fetch_took),
            ("  find alone (1 thread)", search_took),
        ] {
            println!(
                "  {name:<46} {:>7.3}s {:>9.0} {:>10.0} {:>13.2}x",
                took.as_secs_f64(),
                rate(took, blocks),
                rate(took, outputs as u64),
                reference.as_secs_f64() / took.as_secs_f64()
            );
        }
        println!(
            "  {passed} of {outputs} outputs passed the view-tag filter; the wallet fetched {fetched} \
             blocks; the processor's scan found the same {paid} outputs as monero-wallet's Scanner \
             (goal: the processor's scan >= 3x the wallet)"
        );
    }
}

/// Our outputs in `blocks`, searched by as many threads as there are cores, each taking
/// the next block; in block order, serialized.
fn search_on_every_core(blocks: &[Block], keys: &Keys) -> Vec<Vec<u8>> {
    let next = AtomicUsize::new(0);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut found: Vec<(usize, Vec<Vec<u8>>)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut mine = vec![];
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(block) = blocks.get(i) else { break mine };
                        let outputs = scan::ours(&block.block, keys).unwrap().unlocked();
                        mine.push((i, outputs.iter().map(|o| o.serialize()).collect()));
                    }
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap()).collect()
    });
    found.sort_by_key(|(i, _)| *i);
    found.into_iter().flat_map(|(_, o)| o).collect()
}
