//! The scenario on Monero (monerod regtest): key generation with an Ed25519 network key,
//! deposits with instructions in their transactions' `extra` (paid by the test wallet of
//! `monero_network::testing`, since monero-wallet-rpc cannot write arbitrary data),
//! Batches, credited accounts, a deposit without an instruction kept unattributed (Monero
//! shows no sender to refund), burns to fresh payees through payment trees, and checks
//! against witnesses that are not the processors' code: monero-wallet-rpc (Monero's own
//! wallet) with a view-only wallet per payee and one for the group, and monerod for each
//! transaction's fee. Each payee received exactly its burn minus its fee share, in one
//! transfer; the group received exactly the deposits; the fees on chain are exactly the
//! fee shares the payees bore; so the group keeps exactly credited + unattributed -
//! burned. Plans are identical on every processor, and no signer sent two preprocesses
//! for one attempt. (Waiting for payments scans the payees' view keys with
//! monero-wallet's scanner, which is faster to poll; the checks use the wallet RPC.)
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bus::testing::http_post_json;
use monero_network::keys::Keys;
use monero_network::testing::node::Node;
use monero_network::testing::wallet::{random_pair, random_payee, TestWallet};
use monero_network::{instruction, Address};
use monero_wallet::address::Network as AddressNetwork;
use monero_wallet::{Scanner, ViewPair};
use primitives::{InInstruction, SettlementAccount};
use scanner::OutputKind;
use serde_json::json;

use super::{balance_of, ledger, say, steps, with_logs, Chaos, Report, Standing};
use crate::progress::Bar;
use crate::wallet_rpc::WalletRpc;
use crate::{Cluster, DevnetError, NodeOptions, Options};

/// One piconero-denominated XMR.
const XMR: u64 = 1_000_000_000_000;

/// What to run on Monero.
#[derive(Clone, Debug)]
pub struct MoneroScenario {
    /// Processors.
    pub validators: u16,
    /// Signers needed.
    pub threshold: u16,
    /// Deposits with instructions, over 4 accounts.
    pub deposits: u64,
    /// Burns to fresh payees, over `burn_rounds` rounds.
    pub burns: u64,
    /// Rounds of burns.
    pub burn_rounds: u64,
    /// The processors' output limit (low, so payment trees form; Monero's own is 16).
    pub max_outputs: usize,
    /// Confirmations before a block is final (at least 19).
    pub confirmations: u64,
    /// SIGKILL and restart random processors throughout, with this seed.
    pub chaos_seed: Option<u64>,
    /// Print progress on standard error.
    pub progress: bool,
    /// Keep the working directory even when every check passes.
    pub keep: bool,
}

impl Default for MoneroScenario {
    fn default() -> Self {
        MoneroScenario {
            validators: 3,
            threshold: 2,
            deposits: 8,
            burns: 12,
            burn_rounds: 2,
            max_outputs: 4,
            confirmations: monero_network::network::DEFAULT_CONFIRMATIONS,
            chaos_seed: None,
            progress: true,
            keep: false,
        }
    }
}

/// The payees' view keys, scanned block by block as the chain grows.
struct Payees {
    pairs: Vec<(String, ViewPair)>,
    /// Each payee's secret view key (hex) and the height it was made at.
    view_keys: BTreeMap<String, (String, u64)>,
    /// Outputs found per payee: their amounts.
    found: BTreeMap<String, Vec<u64>>,
    next: u64,
}

impl Payees {
    /// Scans every block from the last one scanned to the node's tip.
    fn scan(&mut self, rt: &tokio::runtime::Runtime, node: &Node) {
        let Ok(tip) = rt.block_on(node.rpc().tip()) else { return };
        while self.next <= tip {
            let Ok(block) = rt.block_on(node.rpc().scannable_block(self.next)) else { return };
            for (address, pair) in &self.pairs {
                let mut scanner = Scanner::new(pair.clone());
                if let Ok(outputs) = scanner.scan(block.clone()) {
                    for o in outputs.ignore_additional_timelock() {
                        self.found.entry(address.clone()).or_default().push(o.commitment().amount);
                    }
                }
            }
            self.next += 1;
        }
    }

    fn received(&self, address: &str) -> u64 {
        self.found.get(address).map_or(0, |f| f.iter().sum())
    }
}

/// Runs the Monero scenario; see the module documentation.
pub fn run(s: &MoneroScenario) -> Result<Report, DevnetError> {
    let started = Instant::now();
    let rt = tokio::runtime::Runtime::new().map_err(crate::io("starting a Tokio runtime"))?;
    say(s.progress, started, "starting monerod (regtest, with its 1,600-block history)");
    let (node, wallet) = rt.block_on(Node::start());
    let node = Arc::new(node);
    let options = Options {
        node: Some(NodeOptions {
            chain: "regtest".into(),
            rpc_url: node.url(),
            cookie_file: None,
            confirmations: Some(s.confirmations),
            max_outputs: Some(s.max_outputs),
            poll_ms: 200,
        }),
        coordinator_extra: "sign_timeout_ms = 10000\nchain = \"regtest\"\n".into(),
        listen: crate::Listen::Loopback,
        ..Options::keys_only("monero", s.validators, s.threshold)
    };
    say(
        s.progress,
        started,
        format!("starting nats-server, {} processors and coordinator-sim", s.validators),
    );
    let mut cluster = Cluster::start(&options)?;
    cluster.dir.disable_cleanup(true);
    let dir = cluster.dir.path().to_path_buf();
    let mining = Arc::new(AtomicBool::new(true));
    let result = exercise(s, started, &rt, &node, &wallet, &mut cluster, &mining);
    mining.store(false, Ordering::Relaxed);
    match result {
        Ok(mut report) => {
            report.kept = s.keep || !report.passed();
            cluster.dir.disable_cleanup(report.kept);
            report.dir = dir;
            Ok(report)
        }
        Err(e) => Err(DevnetError::Failed(format!("{e}\n{}", super::kept_in(&dir)))),
    }
}

fn exercise(
    s: &MoneroScenario,
    started: Instant,
    rt: &tokio::runtime::Runtime,
    node: &Arc<Node>,
    wallet: &TestWallet,
    cluster: &mut Cluster,
    mining: &Arc<AtomicBool>,
) -> Result<Report, DevnetError> {
    let say = |m: String| say(s.progress, started, m);
    let mut report =
        Report { network: "monero (regtest)".into(), unit: "piconero".into(), ..Report::default() };
    let mut chaos = Chaos {
        state: s.chaos_seed.map(|seed| seed | 1),
        validators: s.validators,
        next: Instant::now(),
        kills: vec![],
    };
    let holders: Vec<u16> = (1..=s.validators).collect();

    // The key, and the group's deposit address.
    say(format!("key generation ({}-of-{}, Ed25519)", s.threshold, s.validators));
    let key = cluster
        .wait_for(Duration::from_secs(180), "an active key pair", |c| {
            let status = c.processor_status(1).ok()?;
            status.keys.iter().find(|k| k.active).map(|k| k.network_key.clone())
        })
        .map_err(with_logs(cluster))?;
    let keys = group_keys(&key)?;
    let deposit = keys.address(OutputKind::External);
    say(format!("key active; the group's deposit address is {deposit}"));

    // Mining, continuously.
    {
        let (node, mining) = (node.clone(), mining.clone());
        rt.spawn(async move {
            let miner = random_pair().legacy_address(AddressNetwork::Mainnet);
            while mining.load(Ordering::Relaxed) {
                node.mine_to(1, &miner).await;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
    }

    // Deposits with instructions, and one without.
    let deposits_from = rt.block_on(node.rpc().tip()).unwrap_or(0);
    let accounts: Vec<[u8; 32]> = (1..=4u8).map(|i| [i; 32]).collect();
    let mut deposited: BTreeMap<[u8; 32], u64> = BTreeMap::new();
    for i in 0..s.deposits {
        let account = accounts[(i % 4) as usize];
        let amount = XMR + i * XMR / 100;
        let data = instruction::encode(&InInstruction {
            account: SettlementAccount(account),
            return_address: None,
        })
        .map_err(|e| DevnetError::Failed(e.to_string()))?;
        rt.block_on(wallet.pay(node.rpc(), deposit, amount, Some(data)));
        *deposited.entry(account).or_default() += amount;
    }
    let unattributed = XMR / 2;
    rt.block_on(wallet.pay(node.rpc(), deposit, unattributed, None));
    report.unattributed = unattributed;
    report.deposited = deposited.values().sum::<u64>() + unattributed;
    say(format!(
        "{} deposits sent (and one without an instruction); waiting for Batches",
        s.deposits
    ));
    let expected: u64 = deposited.values().sum();
    chaos.wait(
        cluster,
        Duration::from_secs(300),
        ("deposits credited", "deposits"),
        Bar::new(s.progress, started, "credited", "piconero"),
        |c| {
            let l = ledger(c).unwrap_or_default();
            let credited = |(a, _): (&[u8; 32], &u64)| balance_of(&l, &hex::encode(a), "monero");
            Standing {
                over: deposited.iter().all(|d| credited(d) == *d.1),
                count: deposited.iter().map(credited).sum(),
                of: expected,
            }
        },
    )?;
    let l = ledger(cluster).unwrap_or_default();
    report.credited = accounts.iter().map(|a| balance_of(&l, &hex::encode(a), "monero")).sum();
    report.check(
        "every deposit credited to its account",
        deposited.iter().all(|(a, amount)| balance_of(&l, &hex::encode(a), "monero") == *amount),
        format!("{} accounts, {} piconero", deposited.len(), report.credited),
    );
    report.check(
        "the deposit without an instruction credited nowhere (no sender to refund)",
        balance_of(&l, "*", "monero") == report.credited,
        format!("ledger total {}", balance_of(&l, "*", "monero")),
    );

    // Burns to fresh payees, in rounds.
    let burns_from = rt.block_on(node.rpc().tip()).unwrap_or(0);
    let mut payees = Payees {
        pairs: vec![],
        view_keys: BTreeMap::new(),
        found: BTreeMap::new(),
        next: burns_from,
    };
    let mut burns: Vec<(String, u64)> = vec![];
    let per_round = s.burns.div_ceil(s.burn_rounds.max(1));
    while (burns.len() as u64) < s.burns {
        let first = burns.len() as u64;
        for i in first..(first + per_round).min(s.burns) {
            let (pair, view_key) = random_payee();
            let to = pair.legacy_address(AddressNetwork::Mainnet).to_string();
            payees.view_keys.insert(to.clone(), (hex::encode(view_key), burns_from));
            let amount = XMR / 10 + i * XMR / 1000;
            let account = hex::encode(accounts[(i % 4) as usize]);
            let body = json!({"network": "monero", "account": account, "to": to, "amount": amount})
                .to_string();
            match http_post_json(cluster.coordinator_http, "/burn", &body) {
                Some((200, _)) => burns.push((to.clone(), amount)),
                other => return Err(DevnetError::Failed(format!("burn refused: {other:?}"))),
            }
            payees.pairs.push((to, pair));
        }
        say(format!("{}/{} burns ordered; waiting for the payments", burns.len(), s.burns));
        chaos.wait(
            cluster,
            Duration::from_secs(400),
            ("payees paid", "payments"),
            Bar::new(s.progress, started, "paid", "payees"),
            |_| {
                payees.scan(rt, node);
                Standing::counted(
                    burns.iter().filter(|(to, _)| payees.received(to) > 0).count(),
                    burns.len(),
                )
            },
        )?;
    }
    report.burned = burns.iter().map(|(_, a)| a).sum();
    say(format!("{} payees paid; settling", burns.len()));
    steps::settled(cluster, &holders)?;
    payees.scan(rt, node);

    // The checks: Monero's own wallet and node are the witnesses (the chain at rest).
    mining.store(false, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(500));
    say("checking with monero-wallet-rpc (view-only wallets) and monerod".into());
    let wallets = WalletRpc::start(&node.url())?;
    let mut received: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (i, (to, _)) in burns.iter().enumerate() {
        let (view_key, from) = &payees.view_keys[to];
        let name = format!("payee-{i}");
        let incoming = wallets.received(&name, to, view_key, *from)?;
        received.insert(to.clone(), incoming.iter().map(|t| t.amount).collect());
    }
    report.paid = received.values().flatten().sum();
    report.check(
        "every payee paid by exactly one transfer (its view-only wallet)",
        burns.iter().all(|(to, _)| received.get(to).map(Vec::len) == Some(1)),
        format!("{} payees", burns.len()),
    );
    let plans = super::same_plans(cluster, &holders, &mut report)?;
    let shares = super::fee_shares(&plans, |a| {
        Address::from_external(AddressNetwork::Mainnet, a).ok().map(|address| address.to_string())
    });
    let got = |to: &str| received.get(to).map_or(0, |r| r.iter().sum::<u64>());
    let exact = burns.iter().all(|(to, amount)| match shares.get(to).map(Vec::as_slice) {
        Some([(net, fee)]) => net + fee == *amount && got(to) == *net,
        _ => false,
    });
    report.check(
        "each payee received exactly its burn minus its fee share",
        exact,
        format!("fee shares total {}", report.burned - report.paid),
    );
    // Our transactions, their fees from the node, and what the group's wallet saw.
    let ours: Vec<String> = plans.iter().filter_map(|p| p.tx.clone()).collect();
    report.transactions = ours.len();
    for txid in &ours {
        let hash: [u8; 32] =
            hex::decode(txid).ok().and_then(|b| b.try_into().ok()).unwrap_or_default();
        let fee =
            rt.block_on(node.rpc().fee_of(hash)).map_err(|e| DevnetError::Failed(e.to_string()))?;
        report.fees += fee.ok_or_else(|| {
            DevnetError::Failed(format!("monerod does not know our transaction {txid}"))
        })?;
    }
    let view_key = hex::encode(<[u8; 32]>::from(*keys.view_key()));
    let group = wallets.received("group", &deposit.to_string(), &view_key, deposits_from)?;
    let deposits_in: u64 = group.iter().filter(|t| !ours.contains(&t.txid)).map(|t| t.amount).sum();
    report.check(
        "the group's view-only wallet received exactly the deposits",
        deposits_in == report.deposited,
        format!("{deposits_in} of {} deposited", report.deposited),
    );
    report.check(
        "the fees on chain are exactly the fee shares the payees bore",
        report.fees == report.burned - report.paid,
        format!(
            "node: {} over {} transactions; shares {}",
            report.fees,
            ours.len(),
            report.burned - report.paid
        ),
    );
    // What our transactions spent is what they paid out, returned to us, and the fee:
    // the group keeps the deposits less the payments and the fees.
    report.remaining = deposits_in.saturating_sub(report.paid + report.fees);
    report.check(
        "the group keeps exactly credited + unattributed - burned",
        report.remaining + report.burned == report.credited + report.unattributed,
        format!(
            "{} = {} + {} - {}",
            report.remaining, report.credited, report.unattributed, report.burned
        ),
    );
    steps::nonce_rule(cluster, &mut report);
    report.kills = chaos.kills;
    report.elapsed = started.elapsed();
    Ok(report)
}

/// The group's keys from the network key `processor status` shows (hex).
/// The group's Monero keys from the network key coordinator-sim and `status` show (hex).
pub(crate) fn group_keys(key: &str) -> Result<Keys, DevnetError> {
    let bytes: [u8; 32] =
        hex::decode(key).ok().and_then(|b| b.try_into().ok()).ok_or_else(|| {
            DevnetError::Failed(format!("the network key {key} is not 32 bytes of hex"))
        })?;
    let point = curve25519_dalek::edwards::CompressedEdwardsY(bytes)
        .decompress()
        .ok_or_else(|| DevnetError::Failed(format!("the network key {key} is not a point")))?;
    Keys::new(point, AddressNetwork::Mainnet).map_err(|e| DevnetError::Failed(e.to_string()))
}
