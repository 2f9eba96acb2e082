//! Signing with a misbehaving key holder: time from a block to its signed, verified Batch,
//! with coordinator-sim's three ways of choosing signing sets, in one run, on the same
//! machine: concurrent sessions (ROAST, `signing_selection = "roast"`, this build's
//! default), one attempt at a time from the first `t` to answer (`"responsive"`), and the
//! reference, timeout-and-retry (the `t` preferred by hash, waited for; `"preferred"`).
//!
//! Two scenarios: validator 1's processor stopped once the key is active (silent), and
//! validator 1 preprocessing every time and then withholding its share (`[testing] malice
//! = "withhold-share:0"`). Each case is a real devnet: 4 processor processes (3-of-4),
//! coordinator-sim, nats-server and litecoind in regtest, one confirmation, so every block
//! makes a Batch. Blocks are mined one at a time and each Batch's latency is measured
//! (mine to coordinator-sim's verified count moving on).
//!
//! `cargo bench -p tc-devnet --bench signing` measures 8 Batches per case; under
//! `cargo test` (no `--bench` flag) 2, ROAST only, as a smoke test of its claim: no
//! timeout waited in either scenario.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bitcoin_network::testing::node::Node;
use devnet::{Cluster, NodeOptions, Options};

/// The signing timeout of every case (coordinator-sim's `sign_timeout_ms`), measured.
const SIGN_TIMEOUT_MS: u64 = 2_000;
/// The same in the smoke run (a debug build on a loaded CI machine): long enough that
/// only a timeout really waited for shows, not a slow machine.
const SMOKE_SIGN_TIMEOUT_MS: u64 = 15_000;

struct Case {
    latencies: Vec<Duration>,
    reattempts: u64,
}

fn verified(cluster: &Cluster) -> Option<u64> {
    cluster.coordinator_http_status()?["sets"][0]["signing"]["completed_batches"].as_u64()
}

fn run(selection: &str, withholding: bool, batches: usize, timeout_ms: u64) -> Case {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let node = rt.block_on(Node::start());
    let options = Options {
        node: Some(NodeOptions { poll_ms: 100, ..NodeOptions::regtest(&node, 1) }),
        coordinator_extra: format!(
            "sign_timeout_ms = {timeout_ms}\nsigning_selection = \"{selection}\"\n"
        ),
        malice: if withholding { vec![(1, "withhold-share:0".into())] } else { vec![] },
        ..Options::keys_only("litecoin", 4, 3)
    };
    let mut cluster = Cluster::start(&options).unwrap();
    cluster
        .wait_for(Duration::from_secs(120), "the key active on every processor", |c| {
            (1..=4u16)
                .map(|v| c.processor_status(v).ok()?.keys.iter().any(|k| k.active).then_some(()))
                .collect::<Option<Vec<_>>>()
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs_tail(20)));
    if !withholding {
        cluster.kill_processor(1);
    }
    let before = verified(&cluster).unwrap_or(0);
    let mut latencies = vec![];
    for i in 1..=batches as u64 {
        let start = Instant::now();
        rt.block_on(node.mine(1));
        cluster
            .wait_for(Duration::from_secs(120), "the next Batch verified", |c| {
                verified(c).filter(|n| *n >= before + i)
            })
            .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs_tail(20)));
        latencies.push(start.elapsed());
    }
    let reattempts = cluster.coordinator_http_status().unwrap()["sets"][0]["signing"]["reattempts"]
        .as_u64()
        .unwrap_or(0);
    Case { latencies, reattempts }
}

fn median(d: &[Duration]) -> Duration {
    let mut d = d.to_vec();
    d.sort();
    d[d.len() / 2]
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let batches = if full { 8 } else { 2 };
    let timeout_ms = if full { SIGN_TIMEOUT_MS } else { SMOKE_SIGN_TIMEOUT_MS };
    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    println!(
        "block -> verified Batch, 3-of-4, validator 1 misbehaving, sign timeout {timeout_ms} ms, {batches} Batches, {profile} build"
    );
    println!(
        "{:>22} | {:>28} | {:>10} | {:>10} | {:>10} | {:>10}",
        "validator 1", "signing sets", "median", "max", "total", "reattempts"
    );
    let cases: &[(&str, &str)] = if full {
        &[
            ("preferred, wait (reference)", "preferred"),
            ("first t, one at a time", "responsive"),
            ("ROAST (this build)", "roast"),
        ]
    } else {
        &[("ROAST (this build)", "roast")]
    };
    for (scenario, withholding) in [("stopped", false), ("withholds its shares", true)] {
        let mut totals = vec![];
        for (name, selection) in cases {
            let case = run(selection, withholding, batches, timeout_ms);
            let total: Duration = case.latencies.iter().sum();
            let max = case.latencies.iter().max().copied().unwrap_or_default();
            println!(
                "{:>22} | {:>28} | {:>10.0?} | {:>10.0?} | {:>10.0?} | {:>10}",
                scenario,
                name,
                median(&case.latencies),
                max,
                total,
                case.reattempts
            );
            totals.push((*selection, total, case.reattempts));
        }
        let (_, roast_total, roast_reattempts) = totals[totals.len() - 1];
        // What the comparison rests on: with ROAST no attempt waits for the misbehaving
        // key holder.
        assert_eq!(roast_reattempts, 0, "ROAST waited for a timeout ({scenario})");
        if let Some((_, reference, reattempts)) = totals.first().filter(|_| full) {
            println!(
                "{scenario}: ROAST total {:.2}x the reference; reattempts (each a timeout waited): {reattempts} vs {roast_reattempts}",
                roast_total.as_secs_f64() / reference.as_secs_f64(),
            );
        }
    }
}
