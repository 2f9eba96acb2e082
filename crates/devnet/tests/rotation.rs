//! Key rotation end to end on litecoind (regtest, MWEB active), over real processes:
//! set A (2-of-3, validators 1-3) hands custody to set B (3-of-4, validators 3-6;
//! validator 3 in both), elected by adding it to coordinator-sim's config as an operator
//! would (`Cluster::elect`). Deposits go to both keys and burns are ordered before and
//! after the election; the node is the judge: every payee paid once, A's key left empty.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bitcoin_network::testing::node::Node;
use bus::testing::{http_get, http_post_json};
use devnet::{chain, Cluster, NodeOptions, Options};
use scanner::OutputKind;
use serde_json::{json, Value};

const CONFIRMATIONS: u64 = 2;
/// The rotation's grace period: long enough (20 s of blocks) for the forwarding stage's
/// deposits and burns to settle before it ends.
const CLOSE_AFTER: u64 = 80;

fn ledger_balance(cluster: &Cluster, account: [u8; 32]) -> u64 {
    let Some((200, body)) = http_get(cluster.coordinator_http, "/ledger") else { return 0 };
    let ledger: Value = serde_json::from_str(&body).unwrap_or_default();
    let hex = hex::encode(account);
    ledger["accounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["account"].as_str() == Some(hex.as_str()))
        .flat_map(|a| a["balances"].as_array().cloned().unwrap_or_default())
        .map(|b| b["amount"].as_u64().unwrap_or(0))
        .sum()
}

/// Polls `done` every 100 ms until it holds, for at most `timeout` (panics then).
fn poll_until(timeout: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The network key of set `index` of coordinator-sim's status, once confirmed.
fn confirmed_key(cluster: &mut Cluster, index: usize) -> String {
    cluster
        .wait_for(Duration::from_secs(240), "a confirmed key", |c| {
            let status = c.coordinator_http_status()?;
            status["sets"][index]["confirmed"]["network_key"].as_str().map(String::from)
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs_tail(40)))
}

#[test]
fn a_rotation_on_litecoind_pays_once_credits_once_and_empties_the_old_key() {
    rotation(false);
}

/// The same, with a processor of each set SIGKILLed and restarted in every stage: A
/// alone, B's key generation, forwarding (validator 3, in both sets, among them) and
/// closing.
#[test]
fn the_same_with_processors_of_both_sets_killed_in_every_stage() {
    let kills = rotation(true);
    assert!(kills >= 6, "{kills} kills");
}

/// SIGKILLs validator `v`'s processor and starts it again (if `on`); counts it.
fn kill(cluster: &mut Cluster, v: u16, on: bool, kills: &mut u32) {
    if on {
        cluster.kill_processor(v);
        std::thread::sleep(Duration::from_millis(300));
        cluster.start_processor(v).unwrap();
        *kills += 1;
    }
}

/// The scenario; returns how many processors it killed.
fn rotation(chaos: bool) -> u32 {
    let mut kills = 0;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let node = Arc::new(rt.block_on(Node::start()));
    let mut options = Options::keys_only("litecoin", 3, 2);
    options.node = Some(NodeOptions::regtest(&node, CONFIRMATIONS));
    options.coordinator_extra = "sign_timeout_ms = 10000\n".into();
    let mut cluster = Cluster::start(&options).unwrap();
    // A block every 250 ms, as the demo mines.
    let mining = Arc::new(AtomicBool::new(true));
    let paused = Arc::new(AtomicBool::new(false));
    {
        let (node, mining, paused) = (node.clone(), mining.clone(), paused.clone());
        rt.spawn(async move {
            while mining.load(Ordering::Relaxed) {
                if !paused.load(Ordering::Relaxed) {
                    node.mine(1).await;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
    }
    let sender = rt.block_on(node.sender("rotation-sender", 60_000_000));
    let mut credited: BTreeMap<[u8; 32], u64> = BTreeMap::new();
    let mut burned: BTreeMap<[u8; 32], u64> = BTreeMap::new();
    let mut payees: Vec<(String, u64)> = vec![];
    let deposit = |to: &str, account: u8, amount: u64, credited: &mut BTreeMap<[u8; 32], u64>| {
        let data = chain::instruction([account; 32]).unwrap();
        rt.block_on(node.deposit_from(&sender, to, amount, Some(&data)));
        *credited.entry([account; 32]).or_default() += amount;
    };
    let wait_credited = |cluster: &mut Cluster,
                         credited: &BTreeMap<[u8; 32], u64>,
                         burned: &BTreeMap<[u8; 32], u64>| {
        cluster
            .wait_for(Duration::from_secs(240), "deposits credited", |c| {
                credited
                    .iter()
                    .all(|(a, v)| ledger_balance(c, *a) == v - burned.get(a).copied().unwrap_or(0))
                    .then_some(())
            })
            .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs_tail(40)));
    };
    let burn = |cluster: &Cluster,
                account: u8,
                amount: u64,
                payees: &mut Vec<(String, u64)>,
                burned: &mut BTreeMap<[u8; 32], u64>| {
        let to = rt.block_on(node.new_address());
        let body = json!({"network": "litecoin", "account": hex::encode([account; 32]), "to": to, "amount": amount}).to_string();
        let answer = http_post_json(cluster.coordinator_http, "/burn", &body);
        assert!(matches!(answer, Some((200, _))), "burn refused: {answer:?}");
        payees.push((to, amount));
        *burned.entry([account; 32]).or_default() += amount;
    };

    // A alone: deposits, credited; burns A pays.
    let key_a = confirmed_key(&mut cluster, 0);
    let address_a = chain::deposit_address(&key_a).unwrap();
    deposit(&address_a, 1, 5_000_000, &mut credited);
    deposit(&address_a, 2, 4_000_000, &mut credited);
    kill(&mut cluster, 1, chaos, &mut kills);
    wait_credited(&mut cluster, &credited, &burned);
    burn(&cluster, 1, 1_000_000, &mut payees, &mut burned);
    burn(&cluster, 2, 900_000, &mut payees, &mut burned);
    kill(&mut cluster, 2, chaos, &mut kills);

    // B elected (coordinator-sim restarted with the set added), its key confirmed; A
    // forwards from then on. Deposits to both keys; burns now B's.
    let session = cluster.elect(3, &[3, 4, 5, 6], CLOSE_AFTER).unwrap();
    assert_eq!(session, 1);
    // While B generates its key: a deposit to A and a burn (A's, or B's if B is
    // confirmed by the time it settles).
    deposit(&address_a, 5, 1_500_000, &mut credited);
    burn(&cluster, 1, 500_000, &mut payees, &mut burned);
    kill(&mut cluster, 5, chaos, &mut kills);
    let key_b = confirmed_key(&mut cluster, 1);
    assert_ne!(key_a, key_b);
    let address_b = chain::deposit_address(&key_b).unwrap();
    deposit(&address_a, 3, 3_000_000, &mut credited);
    deposit(&address_b, 4, 2_500_000, &mut credited);
    kill(&mut cluster, 3, chaos, &mut kills);
    wait_credited(&mut cluster, &credited, &burned);
    burn(&cluster, 3, 1_200_000, &mut payees, &mut burned);
    burn(&cluster, 4, 700_000, &mut payees, &mut burned);
    kill(&mut cluster, 1, chaos, &mut kills);
    kill(&mut cluster, 4, chaos, &mut kills);
    // Closing, from the close block on. The miner stops just before it, so that a deposit
    // to A lands in the close block itself: A refunds it (to the return address its
    // instruction names) before it can retire, and credits it to nobody.
    let close_block = cluster
        .wait_for(Duration::from_secs(60), "A's close block", |c| {
            c.coordinator_http_status()?["sets"][0]["successor"]["close_block"].as_u64()
        })
        .unwrap();
    poll_until(Duration::from_secs(240), "the chain near A's close block", || {
        rt.block_on(node.tip()).0 + 3 >= close_block
    });
    paused.store(true, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(600));
    let (tip, _) = rt.block_on(node.tip());
    assert!(tip < close_block, "the grace period ended before the test got there: {tip}");
    if close_block - 1 > tip {
        rt.block_on(node.mine(close_block - 1 - tip));
    }
    let returned = rt.block_on(node.new_address());
    let return_script =
        bitcoin_network::Address::parse(&chain::params(), &returned).unwrap().to_external();
    let late = primitives::InInstruction {
        account: primitives::SettlementAccount([9; 32]),
        return_address: Some(return_script),
    };
    let data = bitcoin_network::instruction::encode(&late).unwrap();
    rt.block_on(node.deposit_from(&sender, &address_a, 1_000_000, Some(&data)));
    rt.block_on(node.mine(1));
    paused.store(false, Ordering::Relaxed);
    kill(&mut cluster, 3, chaos, &mut kills);
    kill(&mut cluster, 6, chaos, &mut kills);
    // And a deposit to B and a burn (B's).
    deposit(&address_b, 6, 1_800_000, &mut credited);
    wait_credited(&mut cluster, &credited, &burned);
    burn(&cluster, 5, 600_000, &mut payees, &mut burned);

    // A retires once closing with nothing left; every payee is paid.
    cluster
        .wait_for(Duration::from_secs(400), "A retired and every payee paid", |c| {
            let status = c.coordinator_http_status()?;
            let retired = status["sets"][0]["rotation"].as_str() == Some("retired");
            let paid = payees.iter().all(|(to, _)| rt.block_on(node.received_by(to)) > 0);
            let refunded = rt.block_on(node.received_by(&returned)) > 0;
            (retired && paid && refunded).then_some(())
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs_tail(60)));
    mining.store(false, Ordering::Relaxed);

    // Every deposit credited once; every burn debited once.
    for (account, c) in &credited {
        assert_eq!(
            ledger_balance(&cluster, *account),
            c - burned.get(account).copied().unwrap_or(0),
            "account {}",
            hex::encode(account)
        );
    }
    // Every payee paid once, by the node: its burn less a fee share (twice would be
    // nearly double).
    for (to, amount) in &payees {
        let received = rt.block_on(node.received_by(to));
        assert!(received < *amount && received + 100_000 > *amount, "{to}: {received} of {amount}");
    }
    // The closing deposit: refunded (less its fee), credited nobody.
    let refunded = rt.block_on(node.received_by(&returned));
    assert!(refunded < 1_000_000 && refunded > 900_000, "refunded {refunded}");
    assert_eq!(ledger_balance(&cluster, [9; 32]), 0, "the closing deposit is credited nobody");
    // A's key holds nothing; B's holds what was deposited less what was paid and the fees.
    let held = |key: &str| -> u64 {
        OutputKind::ALL
            .iter()
            .map(|kind| {
                let script = chain::group_script(key, *kind).unwrap();
                rt.block_on(node.utxos_of(&hex::encode(script.as_bytes())))
                    .iter()
                    .map(|(_, v)| v)
                    .sum::<u64>()
            })
            .sum()
    };
    assert_eq!(held(&key_a), 0, "A's key is empty");
    let deposited: u64 = credited.values().sum();
    // What left the group, net of the closing deposit it sent back.
    let paid: u64 = payees.iter().map(|(to, _)| rt.block_on(node.received_by(to))).sum::<u64>()
        + refunded
        - 1_000_000;
    let held_b = held(&key_b);
    assert!(held_b > 0 && held_b < deposited - paid, "B holds {held_b}");
    assert!(deposited - paid - held_b < 200_000, "fees of a handful of transactions");
    // The processors: A's gone from validators 1-2, validator 3 runs B only.
    for v in [1u16, 2] {
        let status = cluster.processor_status(v).unwrap();
        assert!(status.sessions.is_empty(), "validator {v} runs {:?}", status.sessions);
    }
    for v in 3u16..=6 {
        let status = cluster.processor_status(v).unwrap();
        let sessions: Vec<u32> = status.sessions.iter().map(|s| s.session).collect();
        assert_eq!(sessions, vec![1], "validator {v}");
    }
    kills
}
