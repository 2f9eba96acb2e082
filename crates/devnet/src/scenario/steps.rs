//! The steps of [`super::exercise`], in the order it takes them. Each one waits, checks
//! and reports exactly as the scenario always has: a step's check names and details are
//! what `docs/demo.md` shows and the tests compare.
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bitcoin_network::rpc::Rpc;
use bitcoin_network::Address;
use bus::testing::{http_get, http_post_json};
use primitives::ExternalAddress;
use scanner::OutputKind;
use serde_json::{json, Value};
use tokio::runtime::Runtime;

use super::{balance, ledger, plans_of, released_preprocesses, with_logs, Ctx, Standing};
use crate::progress::Bar;
use crate::{chain, DevnetError};

/// The group's key: its scripts (one per output kind) and its deposit address.
pub(super) struct Group {
    scripts: BTreeSet<Vec<u8>>,
    deposit: String,
}

/// The accounts deposited to, and what each was sent.
pub(super) struct Deposits {
    accounts: Vec<[u8; 32]>,
    deposited: BTreeMap<[u8; 32], u64>,
}

/// A deposit without a valid instruction: its depositor's wallet, the address it came
/// from (where its refund goes) and its amount.
pub(super) type Refund = (Rpc, String, u64);

/// The key, and the activation block every processor scans from.
pub(super) fn key_and_activation(ctx: &mut Ctx) -> Result<Group, DevnetError> {
    let s = ctx.s;
    // The key.
    ctx.say(format!("key generation ({}-of-{})", s.threshold, s.validators));
    let key = ctx
        .cluster
        .wait_for(Duration::from_secs(180), "an active key pair", |c| {
            let status = c.processor_status(1).ok()?;
            status.keys.iter().find(|k| k.active).map(|k| k.network_key.clone())
        })
        .map_err(with_logs(ctx.cluster))?;
    let mut scripts = BTreeSet::new();
    for kind in OutputKind::ALL {
        scripts.insert(chain::group_script(&key, kind)?.to_bytes());
    }
    let deposit = chain::deposit_address(&key)?;
    ctx.say(format!("key active; the group's deposit address is {deposit}"));

    // Every processor scans from the activation block the key's confirmation carried
    // (agreed by coordinator-sim from the processors' proposals), so their Batches are
    // the same. Mining goes on meanwhile: nothing waits for the processors to agree.
    let n = s.validators;
    let starts = ctx
        .cluster
        .wait_for(Duration::from_secs(60), "every processor's activation block", |c| {
            (1..=n)
                .map(|v| c.processor_status(v).ok()?.pipeline?.start)
                .collect::<Option<BTreeSet<u64>>>()
        })
        .map_err(with_logs(ctx.cluster))?;
    let agreed = ctx
        .cluster
        .coordinator_status()
        .ok()
        .and_then(|s| s["sets"][0]["confirmed"]["activation_block"].as_u64());
    ctx.report.check(
        "every processor scans from the agreed activation block",
        agreed.is_some() && starts.len() == 1 && starts.first() == agreed.as_ref(),
        format!("agreed {agreed:?}, processors {starts:?}"),
    );
    ctx.say(format!("every processor scans from block {agreed:?}"));
    Ok(Group { scripts, deposit })
}

/// Watches the group's addresses and starts mining; returns the watching wallet and the
/// flag that keeps the miner going.
pub(super) fn watch_and_mine(
    ctx: &Ctx,
    group: &Group,
) -> Result<(Rpc, Arc<AtomicBool>), DevnetError> {
    let (rt, node, params) = (ctx.rt, ctx.node, ctx.params);
    // Watch our addresses, to find our transactions at the end; mine continuously.
    let watch = node.rpc().with_wallet("watch");
    for script in &group.scripts {
        let address = Address::from_script(bitcoin::ScriptBuf::from_bytes(script.clone()))
            .map_err(|e| DevnetError::Failed(e.to_string()))?;
        rt.block_on(node.watch(&address.display(params)));
    }
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
    Ok((watch, mining))
}

/// Deposits with instructions, round by round, each round credited before the next.
pub(super) fn deposits(ctx: &mut Ctx, group: &Group) -> Result<Deposits, DevnetError> {
    let (s, started, rt, node) = (ctx.s, ctx.started, ctx.rt, ctx.node);
    // Deposits: 4 accounts, 4 senders with wallets of their own.
    let accounts: Vec<[u8; 32]> = (1..=4u8).map(|i| [i; 32]).collect();
    let senders: Vec<_> =
        (0..4).map(|i| rt.block_on(node.sender(&format!("sender-{i}"), 50_000_000))).collect();
    let mut deposited: BTreeMap<[u8; 32], u64> = BTreeMap::new();
    let per_round = s.deposits.div_ceil(s.deposit_rounds.max(1));
    let mut made = 0;
    while made < s.deposits {
        for i in made..(made + per_round).min(s.deposits) {
            let account = accounts[(i % 4) as usize];
            let amount = 2_000_000 + i * 100_000;
            let data = chain::instruction(account)?;
            let sender = &senders[(i % 4) as usize];
            rt.block_on(node.deposit_from(sender, &group.deposit, amount, Some(&data)));
            *deposited.entry(account).or_default() += amount;
        }
        made = (made + per_round).min(s.deposits);
        ctx.say(format!(
            "{made}/{} deposits sent; waiting for Batches to be signed and credited",
            s.deposits
        ));
        let expected: u64 = deposited.values().sum();
        ctx.chaos.wait(
            ctx.cluster,
            Duration::from_secs(240),
            ("deposits credited", "deposits"),
            Bar::new(s.progress, started, "credited", "litoshis"),
            |c| {
                let l = ledger(c).unwrap_or_default();
                let credited = |(a, _): (&[u8; 32], &u64)| balance(&l, &hex::encode(a));
                Standing {
                    over: deposited.iter().all(|d| credited(d) == *d.1),
                    count: deposited.iter().map(credited).sum(),
                    of: expected,
                }
            },
        )?;
    }
    ctx.report.deposited = deposited.values().sum();
    Ok(Deposits { accounts, deposited })
}

/// Deposits without a valid instruction, and the wait for their refunds.
pub(super) fn refunds(ctx: &mut Ctx, group: &Group) -> Result<Vec<Refund>, DevnetError> {
    let (s, started, rt, node) = (ctx.s, ctx.started, ctx.rt, ctx.node);
    // Deposits without a valid instruction (none; bytes that are not one), each from a
    // depositor of its own: never credited, refunded to the script of their first input
    // once their block is acknowledged.
    let failed = |e: bitcoin_network::rpc::RpcError| DevnetError::Failed(e.to_string());
    let mut refunds = vec![];
    for (i, data) in [None, Some(b"not an instruction".as_slice())].into_iter().enumerate() {
        let wallet = rt.block_on(node.sender(&format!("refundee-{i}"), 10_000_000));
        let coins: Vec<Value> =
            rt.block_on(wallet.call("listunspent", json!([0]))).map_err(failed)?;
        let from = coins
            .first()
            .and_then(|c| c["address"].as_str())
            .map(String::from)
            .ok_or_else(|| DevnetError::Failed("the depositor has no coin".into()))?;
        let amount = 3_000_000 + i as u64 * 500_000;
        rt.block_on(node.deposit_from(&wallet, &group.deposit, amount, data));
        refunds.push((wallet, from, amount));
    }
    let report = &mut ctx.report;
    report.unattributed = refunds.iter().map(|(_, _, amount)| amount).sum();
    report.deposited += report.unattributed;
    ctx.say(format!(
        "{} deposits without a valid instruction sent; waiting for their refunds",
        refunds.len()
    ));
    ctx.chaos.wait(
        ctx.cluster,
        Duration::from_secs(240),
        ("refunds paid", "refunds"),
        Bar::new(s.progress, started, "refunded", "depositors"),
        |_| {
            Standing::counted(
                refunds.iter().filter(|r| received_back(r, rt) > 0).count(),
                refunds.len(),
            )
        },
    )?;
    ctx.report.refunded = refunds.iter().map(|r| received_back(r, rt)).sum();
    ctx.say(format!("{} refunds paid: {} litoshis", refunds.len(), ctx.report.refunded));
    Ok(refunds)
}

/// What a depositor without an instruction got back, per the node.
fn received_back((wallet, from, _): &Refund, rt: &Runtime) -> u64 {
    let btc: f64 =
        rt.block_on(wallet.call("getreceivedbyaddress", json!([from, 1]))).unwrap_or_default();
    // Less the 10,000,000 the depositor was funded with.
    bitcoin::Amount::from_btc(btc).map_or(0, |a| a.to_sat()).saturating_sub(10_000_000)
}

/// The ledger: every deposit with an instruction credited, and nothing else.
pub(super) fn credited_check(ctx: &mut Ctx, deposits: &Deposits) {
    let Deposits { accounts, deposited } = deposits;
    let l = ledger(ctx.cluster).unwrap_or_default();
    ctx.report.credited = accounts.iter().map(|a| balance(&l, &hex::encode(a))).sum();
    ctx.say(format!("{} deposits credited: {} litoshis", ctx.s.deposits, ctx.report.credited));
    let report = &mut ctx.report;
    report.check(
        "every deposit credited to its account",
        deposited.iter().all(|(a, amount)| balance(&l, &hex::encode(a)) == *amount),
        format!("{} accounts, {} litoshis", deposited.len(), report.credited),
    );
    report.check(
        "deposits without a valid instruction credited nowhere",
        balance(&l, "*") == report.credited,
        format!("ledger total {} litoshis", balance(&l, "*")),
    );
}

/// A burn the account cannot pay for.
pub(super) fn refused_burn(ctx: &mut Ctx, deposits: &Deposits) {
    let (cluster, report) = (&*ctx.cluster, &mut ctx.report);
    let accounts = &deposits.accounts;
    // A burn over the balance is refused and changes nothing.
    let to = ctx.rt.block_on(ctx.node.new_address());
    let body = json!({"network": "litecoin", "account": hex::encode(accounts[0]), "to": to, "amount": report.deposited * 10}).to_string();
    let before = ledger(cluster);
    let refused = http_post_json(cluster.coordinator_http, "/burn", &body).map(|(code, _)| code);
    report.check(
        "a burn over the balance is refused, the ledger unchanged",
        refused == Some(400) && ledger(cluster) == before,
        refused.map_or("no answer".into(), |code| format!("HTTP {code}")),
    );
}

/// Burns, round by round, each round paid before the next; returns each payee's
/// address and burn.
pub(super) fn burns(ctx: &mut Ctx, deposits: &Deposits) -> Result<Vec<(String, u64)>, DevnetError> {
    let (s, started, rt, node) = (ctx.s, ctx.started, ctx.rt, ctx.node);
    let accounts = &deposits.accounts;
    // Burns, in rounds; each round is one settlement block, above the output limit.
    let received = |to: &str| rt.block_on(node.received_by(to));
    let mut burns = vec![];
    let per_round = s.burns.div_ceil(s.burn_rounds.max(1));
    while (burns.len() as u64) < s.burns {
        let first = burns.len() as u64;
        for i in first..(first + per_round).min(s.burns) {
            let to = rt.block_on(node.new_address());
            let amount = 400_000 + i * 7_000;
            let account = hex::encode(accounts[(i % 4) as usize]);
            let body =
                json!({"network": "litecoin", "account": account, "to": to, "amount": amount})
                    .to_string();
            match http_post_json(ctx.cluster.coordinator_http, "/burn", &body) {
                Some((200, _)) => burns.push((to, amount)),
                other => {
                    return Err(DevnetError::Failed(format!("burn refused: {other:?}")));
                }
            }
        }
        ctx.say(format!("{}/{} burns ordered; waiting for the payments", burns.len(), s.burns));
        ctx.chaos.wait(
            ctx.cluster,
            Duration::from_secs(300),
            ("payees paid", "payments"),
            Bar::new(s.progress, started, "paid", "payees"),
            |_| {
                Standing::counted(
                    burns.iter().filter(|(to, _)| received(to) > 0).count(),
                    burns.len(),
                )
            },
        )?;
    }
    ctx.report.burned = burns.iter().map(|(_, a)| a).sum();
    ctx.say(format!("{} payees paid; settling", burns.len()));
    Ok(burns)
}

/// Waits until every processor has the same plans, none pending or to publish.
pub(super) fn settle(ctx: &mut Ctx) -> Result<(), DevnetError> {
    let n = ctx.s.validators;
    ctx.cluster
        .wait_for(Duration::from_secs(120), "every processor settled", |c| {
            let all: Vec<_> = (1..=n)
                .map(|v| c.processor_status(v).ok().and_then(|s| s.pipeline))
                .collect::<Option<Vec<_>>>()?;
            let done = all
                .iter()
                .all(|p| p.plans == all[0].plans && p.plans_pending == 0 && p.to_publish == 0);
            done.then_some(())
        })
        .map_err(with_logs(ctx.cluster))?;
    Ok(())
}

/// The first processor's `/metrics`, once settled.
pub(super) fn metrics_check(ctx: &mut Ctx) {
    // What an operator's Prometheus would see (gauges: counters restart with a process).
    let metrics = ctx
        .cluster
        .processors
        .first()
        .and_then(|p| http_get(p.http, "/metrics"))
        .map(|(_, body)| body)
        .unwrap_or_default();
    let value = |name: &str| {
        metrics.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
    };
    ctx.report.check(
        "/metrics shows the pipeline settled, without ALARMs",
        value("processor_plans_pending") == Some(0.0)
            && value("processor_scanned_height").is_some_and(|h| h > 0.0)
            && value("processor_conflicts_total") == Some(0.0),
        format!(
            "scanned_height {:?}, plans_total {:?}, plans_pending {:?}, conflicts_total {:?}",
            value("processor_scanned_height"),
            value("processor_plans_total"),
            value("processor_plans_pending"),
            value("processor_conflicts_total")
        ),
    );
}

/// Stops the miner [`watch_and_mine`] started, after a last few blocks.
pub(super) fn stop_mining(mining: &AtomicBool) {
    std::thread::sleep(Duration::from_secs(2));
    mining.store(false, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(500));
}

/// Every payee paid, by one transaction, per the node.
pub(super) fn payees_check(ctx: &mut Ctx, burns: &[(String, u64)]) {
    let (rt, node, report) = (ctx.rt, ctx.node, &mut ctx.report);
    let received = |to: &str| rt.block_on(node.received_by(to));
    // Payees, from the node.
    let mut once = true;
    for (to, _) in burns {
        report.paid += received(to);
        let txs: Vec<Value> = rt
            .block_on(node.wallet().call("listreceivedbyaddress", json!([1, false, false, to])))
            .unwrap_or_default();
        once &= txs.first().and_then(|t| t["txids"].as_array().map(Vec::len)) == Some(1);
    }
    report.check(
        "every payee paid by exactly one transaction",
        once,
        format!("{} payees", burns.len()),
    );
}

/// The group's transactions, fees and remaining outputs, per the node, against the
/// deposits, payments and refunds.
pub(super) fn conservation(ctx: &mut Ctx, watch: &Rpc, group: &Group) -> Result<(), DevnetError> {
    let (rt, node, report) = (ctx.rt, ctx.node, &mut ctx.report);
    let scripts = &group.scripts;
    // Our transactions and outputs, from the node.
    let listed: Vec<Value> = rt
        .block_on(watch.call("listtransactions", json!(["*", 100_000, 0, true])))
        .map_err(|e| DevnetError::Failed(e.to_string()))?;
    let txids: BTreeSet<String> =
        listed.iter().filter_map(|t| t["txid"].as_str().map(String::from)).collect();
    for txid in &txids {
        let Ok(txid) = txid.parse() else { continue };
        let tx = rt
            .block_on(node.rpc().raw_transaction(txid))
            .map_err(|e| DevnetError::Failed(e.to_string()))?;
        let (mut input_value, mut ours) = (0, false);
        for input in tx.input.iter().filter(|i| !i.previous_output.is_null()) {
            let prev = rt
                .block_on(node.rpc().raw_transaction(input.previous_output.txid))
                .map_err(|e| DevnetError::Failed(e.to_string()))?;
            let Some(spent) = prev.output.get(input.previous_output.vout as usize) else {
                continue;
            };
            ours |= scripts.contains(spent.script_pubkey.as_bytes());
            input_value += spent.value.to_sat();
        }
        if ours {
            report.transactions += 1;
            let out: u64 = tx.output.iter().map(|o| o.value.to_sat()).sum();
            report.fees += input_value.saturating_sub(out);
        }
    }
    report.remaining = scripts
        .iter()
        .map(|s| rt.block_on(node.utxos_of(&hex::encode(s))).iter().map(|(_, v)| v).sum::<u64>())
        .sum();
    report.check(
        "our outputs = deposits - payments - refunds - fees, to the litoshi",
        report.remaining + report.paid + report.refunded + report.fees == report.deposited,
        format!(
            "{} = {} - {} - {} - {}",
            report.remaining, report.deposited, report.paid, report.refunded, report.fees
        ),
    );
    Ok(())
}

/// Every processor's plans, and the fee share each payee and refunded depositor bore.
pub(super) fn plans_check(
    ctx: &mut Ctx,
    burns: &[(String, u64)],
    refunds: &[Refund],
) -> Result<(), DevnetError> {
    let (rt, node, params) = (ctx.rt, ctx.node, ctx.params);
    let (cluster, report) = (&*ctx.cluster, &mut ctx.report);
    let received = |to: &str| rt.block_on(node.received_by(to));
    // Plans, from each processor's database: identical, and each payee got exactly its
    // burn minus its recorded fee share.
    let mut plans = vec![];
    for v in 1..=ctx.s.validators {
        plans.push(plans_of(cluster, v).map_err(DevnetError::Failed)?);
    }
    report.plans = plans[0].len();
    report.check(
        "every processor planned the same transactions",
        plans.iter().all(|p| *p == plans[0]),
        format!("{} plans", plans[0].len()),
    );
    let mut shares = BTreeMap::new();
    for tx in &plans[0] {
        for paid in &tx.payments {
            let external =
                hex::decode(&paid.address).ok().and_then(|b| ExternalAddress::new(b).ok());
            if let Some(address) = external.and_then(|a| Address::from_external(&a).ok()) {
                shares.entry(address.display(params)).or_insert(vec![]).push((paid.net, paid.fee));
            }
        }
    }
    let exact = burns.iter().all(|(to, amount)| match shares.get(to).map(Vec::as_slice) {
        Some([(net, fee)]) => net + fee == *amount && received(to) == *net,
        _ => false,
    });
    report.check(
        "each payee received exactly its burn minus its fee share",
        exact,
        format!("fee shares total {}", report.burned - report.paid),
    );
    let mut refunded_once = true;
    for refund in refunds {
        let (wallet, from, amount) = refund;
        let back = received_back(refund, rt);
        refunded_once &= matches!(
            shares.get(from).map(Vec::as_slice),
            Some([(net, fee)]) if net + fee == *amount && back == *net
        );
        // The funding and the refund.
        let txs: Vec<Value> = rt
            .block_on(wallet.call("listreceivedbyaddress", json!([1, false, false, from])))
            .unwrap_or_default();
        refunded_once &= txs.first().and_then(|t| t["txids"].as_array().map(Vec::len)) == Some(2);
    }
    report.check(
        "each depositor without an instruction refunded once, its deposit minus its fee share",
        refunded_once,
        format!(
            "{} refunds, fee shares total {}",
            refunds.len(),
            report.unattributed - report.refunded
        ),
    );
    Ok(())
}

/// The nonce rule, from the coordinator's count and the processors' logs.
pub(super) fn nonce_check(ctx: &mut Ctx) {
    let (cluster, report) = (&*ctx.cluster, &mut ctx.report);
    // The nonce rule, as the coordinator saw it: every preprocess that left a processor
    // arrived there, and a second, different one for the same signer and attempt would be
    // counted. (A processor logs a preprocess before its transaction commits, so a kill
    // in between can repeat a log line for a preprocess that never left: the logs only
    // give the per-processor counts.)
    for p in &cluster.processors {
        report.preprocesses.push((p.validator, released_preprocesses(&p.log).len()));
    }
    let signing = cluster.coordinator_status().ok().map(|s| s["sets"][0]["signing"].clone());
    let count = |name: &str| signing.as_ref().and_then(|s| s[name].as_u64());
    report.check(
        "no signer sent two different preprocesses for one attempt",
        count("preprocesses").is_some_and(|n| n > 0)
            && count("conflicting_preprocesses") == Some(0),
        format!(
            "coordinator received {:?}, conflicting {:?}; processors logged {:?}",
            count("preprocesses"),
            count("conflicting_preprocesses"),
            report.preprocesses.iter().map(|(_, n)| n).collect::<Vec<_>>()
        ),
    );
}
