//! The whole flow on real processes: 3 processors (2-of-3), coordinator-sim, nats-server
//! and litecoind in regtest. Deposits with instructions become Batches, signed and
//! verified, credited in the simulator's ledger; burns become payments (a payment tree,
//! with the output limit lowered), signed, published and confirmed. Every check is made
//! against the node's own RPC.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin_network::params::{Chain, Coin, Params};
use bitcoin_network::sign::script_pubkey;
use bitcoin_network::testing::node::Node;
use bitcoin_network::Address;
use bus::testing::{http_get, http_post_json};
use ciphersuite::group::GroupEncoding;
use devnet::{Cluster, NodeOptions, Options};
use modular_frost::curve::{Ciphersuite, Secp256k1};
use primitives::{InInstruction, SettlementAccount};
use scanner::OutputKind;
use serde_json::{json, Value};

/// What the test knows about the group's keys.
struct Group {
    scripts: BTreeSet<Vec<u8>>,
    deposit: String,
}

fn group(cluster: &mut Cluster, params: &Params) -> Group {
    let key = cluster
        .wait_for(Duration::from_secs(180), "an active key pair", |c| {
            let status = c.processor_status(1).ok()?;
            status.keys.iter().find(|k| k.active).map(|k| k.network_key.clone())
        })
        .unwrap();
    let bytes = hex::decode(key).unwrap();
    let point = <Secp256k1 as Ciphersuite>::read_G(&mut bytes.as_slice()).unwrap();
    assert_eq!(point.to_bytes().as_slice(), bytes.as_slice());
    let scripts =
        OutputKind::ALL.iter().map(|k| script_pubkey(point, *k).unwrap().to_bytes()).collect();
    let deposit = Address::from_script(script_pubkey(point, OutputKind::External).unwrap())
        .unwrap()
        .display(params);
    Group { scripts, deposit }
}

fn ledger(cluster: &Cluster) -> Value {
    let (code, body) =
        http_get(cluster.coordinator_http, "/ledger").expect("coordinator-sim answers");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// The balance the simulator's ledger holds for `account` (hex), in litoshis.
fn balance(ledger: &Value, account: &str) -> u64 {
    let accounts = ledger["accounts"].as_array().cloned().unwrap_or_default();
    accounts
        .iter()
        .filter(|a| a["account"].as_str() == Some(account))
        .flat_map(|a| a["balances"].as_array().cloned().unwrap_or_default())
        .filter(|b| b["coin"].as_str().is_some_and(|c| c.eq_ignore_ascii_case("litecoin")))
        .map(|b| b["amount"].as_u64().unwrap_or(0))
        .sum()
}

/// Kills and restarts processors at random moments (SIGKILL: no chance to clean up).
struct Chaos {
    enabled: bool,
    state: u64,
    next: Instant,
    /// (validator, what it was doing).
    kills: Vec<(u16, String)>,
}

impl Chaos {
    fn new(enabled: bool, seed: u64) -> Self {
        Chaos { enabled, state: seed | 1, next: Instant::now(), kills: vec![] }
    }

    fn random(&mut self, below: u64) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state % below
    }

    /// What a processor is in the middle of, from its own status.
    fn stage(cluster: &Cluster, validator: u16, phase: &str) -> String {
        let Ok(status) = cluster.processor_status(validator) else {
            return format!("{phase}: starting");
        };
        let Some(p) = status.pipeline else { return format!("{phase}: no key yet") };
        let stage = if p.to_publish > 0 {
            "between signing and publishing"
        } else if p.plans_pending > 0 {
            "mid-payment-signing or between publish and confirm"
        } else if p.batches > p.batches_acknowledged {
            "mid-batch-signing"
        } else {
            "mid-scan"
        };
        format!("{phase}: {stage}")
    }

    fn tick(&mut self, cluster: &mut Cluster, phase: &str) {
        if !self.enabled || Instant::now() < self.next {
            return;
        }
        let validator = 1 + self.random(3) as u16;
        let stage = Self::stage(cluster, validator, phase);
        cluster.kill_processor(validator);
        std::thread::sleep(Duration::from_millis(50 + self.random(250)));
        cluster.start_processor(validator).unwrap();
        eprintln!("killed and restarted processor {validator} ({stage})");
        self.kills.push((validator, stage));
        self.next = Instant::now() + Duration::from_millis(150 + self.random(300));
    }
}

/// Every `(kind, attempt)` a processor released a preprocess for, from its log (which
/// survives its restarts): each must appear once.
fn released_preprocesses(log: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut clean = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            clean.push(c);
        }
    }
    clean
        .lines()
        .filter(|l| l.contains("preprocess released"))
        .map(|l| {
            let field = |name: &str| {
                l.split_whitespace().find_map(|w| w.strip_prefix(name)).unwrap_or("?").to_string()
            };
            format!("{} {} {}", field("session="), field("kind="), field("attempt="))
        })
        .collect()
}

/// A processor's plans, read from its database after stopping it.
fn plans_of(cluster: &mut Cluster, validator: u16) -> Vec<scheduler::Tx> {
    cluster.kill_processor(validator);
    let node = cluster.processors.iter().find(|p| p.validator == validator).unwrap();
    let path = node.config.parent().unwrap().join("data").join("processor.redb");
    let db = db::Db::open_existing(&path, processor::SCHEMA).unwrap();
    let txn = db.read().unwrap();
    let mut plans: Vec<scheduler::Tx> = processor::pipeline::state::PLANS
        .iter(&txn)
        .unwrap()
        .into_iter()
        .map(|(_, record)| record.tx)
        .collect();
    plans.sort_by_key(|t| t.id);
    plans
}

#[test]
fn deposits_batches_burns_and_payments_end_to_end() {
    scenario(Chaos::new(false, 0));
}

/// The same with a processor SIGKILLed and restarted every 0.15-0.45 s: nothing
/// is paid twice or lost, no nonce is used twice, and the run completes.
#[test]
fn the_same_through_processor_crashes() {
    let seed =
        std::env::var("TC_CHAOS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
                as u64
        });
    eprintln!("chaos seed {seed} (replay with TC_CHAOS_SEED={seed})");
    scenario(Chaos::new(true, seed));
}

fn scenario(mut chaos: Chaos) {
    let started = Instant::now();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let node = Arc::new(rt.block_on(Node::start()));
    assert!(node.is_litecoin(), "this test's amounts and params are Litecoin's");
    let params = Params::new(Coin::Litecoin, Chain::Regtest);
    let options = Options {
        node: Some(NodeOptions {
            chain: "regtest".into(),
            rpc_url: node.rpc().url(),
            cookie_file: node.datadir().join("regtest").join(".cookie"),
            confirmations: Some(3),
            max_outputs: Some(4),
            poll_ms: 200,
        }),
        coordinator_extra: "sign_timeout_ms = 5000\nchain = \"regtest\"\n".into(),
        ..Options::keys_only("litecoin", 3, 2)
    };
    let mut cluster = Cluster::start(&options).unwrap();
    let group = group(&mut cluster, &params);
    eprintln!("[{:?}] key active; deposit address {}", started.elapsed(), group.deposit);

    // Watch our addresses in a watch-only wallet, to find our transactions later.
    let watch = node.rpc().with_wallet("watch");
    for script in &group.scripts {
        let address = Address::from_script(bitcoin::ScriptBuf::from_bytes(script.clone())).unwrap();
        rt.block_on(node.watch(&address.display(&params)));
    }

    // A miner: one block every 250 ms, so blocks keep becoming final.
    let mining = Arc::new(AtomicBool::new(true));
    {
        let (node, mining) = (node.clone(), mining.clone());
        rt.spawn(async move {
            while mining.load(Ordering::Relaxed) {
                node.mine(1).await;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
    }

    // 20 deposits to 4 accounts from 4 senders (wallets of their own), in 4 rounds of 5
    // (each credited before the next).
    let accounts: Vec<[u8; 32]> = (1..=4u8).map(|i| [i; 32]).collect();
    let senders: Vec<_> =
        (0..4).map(|i| rt.block_on(node.sender(&format!("sender-{i}"), 30_000_000))).collect();
    let mut deposited: BTreeMap<[u8; 32], u64> = BTreeMap::new();
    for round in 0..4u64 {
        for i in round * 5..round * 5 + 5 {
            let account = accounts[(i % 4) as usize];
            let amount = 2_000_000 + i * 100_000;
            let instruction =
                InInstruction { account: SettlementAccount(account), return_address: None };
            let data = bitcoin_network::instruction::encode(&instruction).unwrap();
            let sender = &senders[(i % 4) as usize];
            rt.block_on(node.deposit_from(sender, &group.deposit, amount, Some(&data)));
            *deposited.entry(account).or_default() += amount;
        }
        cluster
            .wait_for(Duration::from_secs(240), "the round's deposits credited", |c| {
                chaos.tick(c, "deposits");
                let l = ledger(c);
                deposited
                    .iter()
                    .all(|(a, amount)| balance(&l, &hex::encode(a)) == *amount)
                    .then_some(())
            })
            .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs_tail(40)));
    }
    let total_deposited: u64 = deposited.values().sum();
    eprintln!("[{:?}] 20 deposits credited ({total_deposited} litoshis)", started.elapsed());

    // One burn over the balance is refused, changing nothing.
    let before = ledger(&cluster);
    let to = rt.block_on(node.new_address());
    let body = json!({"network": "litecoin", "account": hex::encode(accounts[0]), "to": to, "amount": 1_000_000_000u64}).to_string();
    let (code, _) = http_post_json(cluster.coordinator_http, "/burn", &body).unwrap();
    assert_eq!(code, 400);
    assert_eq!(ledger(&cluster), before);

    // 30 burns to fresh addresses in 3 rounds of 10; each round lands in one settlement
    // block and exceeds the 4 outputs a transaction may have: a payment tree.
    let received = |to: &str| rt.block_on(node.received_by(to));
    let mut burns = vec![];
    for round in 0..3u64 {
        for i in round * 10..round * 10 + 10 {
            let to = rt.block_on(node.new_address());
            let amount = 400_000 + i * 7_000;
            let account = hex::encode(accounts[(i % 4) as usize]);
            let body =
                json!({"network": "litecoin", "account": account, "to": to, "amount": amount})
                    .to_string();
            let (code, reply) = http_post_json(cluster.coordinator_http, "/burn", &body)
                .expect("coordinator-sim answers");
            assert_eq!(code, 200, "burn refused: {reply}");
            burns.push((to, amount));
        }
        cluster
            .wait_for(Duration::from_secs(300), "the round's payees paid", |c| {
                chaos.tick(c, "payments");
                burns.iter().all(|(to, _)| received(to) > 0).then_some(())
            })
            .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs_tail(60)));
    }
    eprintln!("[{:?}] 30 payees paid", started.elapsed());
    // Every processor applies every acknowledgement (blocks keep coming meanwhile).
    cluster
        .wait_for(Duration::from_secs(120), "every processor settled", |c| {
            let all: Vec<_> = (1..=3)
                .map(|v| c.processor_status(v).ok().and_then(|s| s.pipeline))
                .collect::<Option<Vec<_>>>()?;
            let done = all
                .iter()
                .all(|p| p.plans == all[0].plans && p.plans_pending == 0 && p.to_publish == 0);
            done.then_some(())
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs_tail(30)));
    // Let anything in flight settle, then stop mining.
    std::thread::sleep(Duration::from_secs(3));
    mining.store(false, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(500));

    // Every payee got its amount minus a fee share, exactly once.
    let mut paid_total = 0;
    for (to, amount) in &burns {
        let got = received(to);
        let txs: Vec<Value> = rt
            .block_on(node.wallet().call("listreceivedbyaddress", json!([1, false, false, to])))
            .unwrap();
        let count = txs.first().and_then(|t| t["txids"].as_array().map(Vec::len)).unwrap_or(0);
        assert_eq!(count, 1, "{to} was paid by {count} transactions");
        assert!(
            got <= *amount && got > amount - amount / 10,
            "{to}: burned {amount}, received {got}"
        );
        paid_total += got;
    }

    // Our transactions, from the node: every transaction spending one of our outputs.
    let listed: Vec<Value> =
        rt.block_on(watch.call("listtransactions", json!(["*", 10_000, 0, true]))).unwrap();
    let txids: BTreeSet<String> =
        listed.iter().filter_map(|t| t["txid"].as_str().map(String::from)).collect();
    let mut fees = 0u64;
    let mut ours_spent = 0;
    for txid in &txids {
        let tx = rt.block_on(node.rpc().raw_transaction(txid.parse().unwrap())).unwrap();
        let mut input_value = 0;
        let mut spends_ours = false;
        for input in &tx.input {
            if input.previous_output.is_null() {
                continue;
            }
            let prev = rt.block_on(node.rpc().raw_transaction(input.previous_output.txid)).unwrap();
            let spent = &prev.output[input.previous_output.vout as usize];
            spends_ours |= group.scripts.contains(spent.script_pubkey.as_bytes());
            input_value += spent.value.to_sat();
        }
        if spends_ours {
            ours_spent += 1;
            let out: u64 = tx.output.iter().map(|o| o.value.to_sat()).sum();
            fees += input_value - out;
        }
    }
    let remaining: u64 = group
        .scripts
        .iter()
        .map(|s| rt.block_on(node.utxos_of(&hex::encode(s))).iter().map(|(_, v)| v).sum::<u64>())
        .sum();
    eprintln!(
        "[{:?}] deposited {total_deposited}, paid {paid_total}, fees {fees} over {ours_spent} transactions, remaining {remaining}",
        started.elapsed()
    );
    assert!(ours_spent >= 2, "a payment tree needs several transactions");
    // Every processor planned exactly the same transactions, and each payee received
    // exactly its burn minus the fee share its plan recorded.
    let plans: Vec<Vec<scheduler::Tx>> = (1..=3).map(|v| plans_of(&mut cluster, v)).collect();
    assert!(plans.iter().all(|p| *p == plans[0]), "the processors' plans differ");
    let mut shares = BTreeMap::new();
    for tx in &plans[0] {
        for paid in &tx.payments {
            let address = Address::from_external(&paid.payment.address).unwrap().display(&params);
            assert!(shares.insert(address, (paid.net.0, paid.fee.0)).is_none(), "paid twice");
        }
    }
    for (to, amount) in &burns {
        let (net, fee) = shares[to];
        assert_eq!(net + fee, *amount, "{to}: net + fee share must be the burn");
        assert_eq!(received(to), net, "{to}: the node must show exactly the net amount");
    }
    eprintln!("{} plans, identical on the 3 processors; every payee got exactly its burn minus its fee share", plans[0].len());

    // No processor released a preprocess twice for one (item, attempt), across restarts.
    for p in &cluster.processors {
        let released = released_preprocesses(&p.log);
        let unique: BTreeSet<&String> = released.iter().collect();
        assert_eq!(
            unique.len(),
            released.len(),
            "processor {} reused a nonce: {released:?}",
            p.validator
        );
        eprintln!(
            "processor {}: {} preprocesses released, all distinct",
            p.validator,
            released.len()
        );
    }
    if chaos.enabled {
        eprintln!("{} kills: {:?}", chaos.kills.len(), chaos.kills);
        assert!(chaos.kills.len() >= 10, "only {} kill points", chaos.kills.len());
        for phase in ["deposits", "payments"] {
            assert!(
                chaos.kills.iter().any(|(_, s)| s.starts_with(phase)),
                "no kill during {phase}"
            );
        }
    }
    assert_eq!(
        remaining,
        total_deposited - paid_total - fees,
        "the group's outputs must equal deposits - payments - fees"
    );
}
