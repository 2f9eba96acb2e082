//! The steps of [`super::exercise`], in the order it takes them. Each one waits, checks
//! and reports exactly as the scenario always has: a step's check names and details are
//! what `docs/demo.md` shows and the tests compare.
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bitcoin_network::rpc::{BlockSource, Rpc};
use bitcoin_network::testing::node::mweb_traffic;
use bitcoin_network::Address;
use bus::testing::{http_get, http_post_json};
use processor::status::PlanView;
use scanner::OutputKind;
use serde_json::{json, Value};
use tokio::runtime::Runtime;

use super::{balance, ledger, released_preprocesses, with_logs, Ctx, Standing};
use crate::progress::Bar;
use crate::{chain, DevnetError};

/// The group's key: its scripts (one per output kind) and its deposit address (after a
/// rotation, the scripts of both keys).
pub(super) struct Group {
    scripts: BTreeSet<Vec<u8>>,
    deposit: String,
    /// The block every processor scans from.
    start: u64,
}

impl Group {
    /// Adds a rotation's new key's scripts: the checks that follow count both keys'
    /// outputs and transactions.
    pub(super) fn absorb(&mut self, new: Group) {
        self.scripts.extend(new.scripts);
    }
}

/// The new set's validators in the demo's rotation: the old set's last validator and
/// three new ones, 3-of-4.
fn new_set(validators: u16) -> Vec<u16> {
    (validators..validators + 4).collect()
}

/// The demo rotation's grace period, in blocks after the new key's activation (the miner
/// makes four a second).
pub const ROTATION_CLOSE_AFTER: u64 = 40;

/// Elects the new set mid-payouts and waits for its key; its key holders sign from now
/// on. Returns its group.
pub(super) fn rotate(ctx: &mut Ctx) -> Result<Group, DevnetError> {
    let validators = new_set(ctx.s.validators);
    ctx.say(format!(
        "rotation: electing a 3-of-4 set (validators {validators:?}); the old set forwards its funds to it"
    ));
    let session = ctx.cluster.elect(3, &validators, ROTATION_CLOSE_AFTER)?;
    let index = usize::try_from(session).unwrap_or(usize::MAX);
    let key = ctx
        .cluster
        .wait_for(Duration::from_secs(240), "the new set's key", |c| {
            let status = c.coordinator_http_status()?;
            status["sets"][index]["confirmed"]["network_key"].as_str().map(String::from)
        })
        .map_err(with_logs(ctx.cluster))?;
    let mut scripts = BTreeSet::new();
    for kind in OutputKind::ALL {
        let script = chain::group_script(&key, kind)?;
        let address =
            Address::from_script(script.clone()).map_err(|e| DevnetError::Failed(e.to_string()))?;
        ctx.rt.block_on(ctx.node.watch(&address.display(ctx.params)));
        scripts.insert(script.to_bytes());
    }
    let deposit = chain::deposit_address(&key)?;
    ctx.say(format!("new key active (session {session}); its deposit address is {deposit}"));
    ctx.holders = validators;
    ctx.chaos.validators = ctx.s.validators + 3;
    Ok(Group { scripts, deposit, start: 0 })
}

/// Waits until the old set retired (every key holder of it reported so), and checks its
/// key holds nothing and the new one received what it forwarded. Returns the old set's
/// plans, as its first key holder last showed them before retiring.
pub(super) fn retirement(
    ctx: &mut Ctx,
    old: &Group,
    new: &Group,
    old_holders: &[u16],
) -> Result<Vec<PlanView>, DevnetError> {
    let (s, started, rt, node) = (ctx.s, ctx.started, ctx.rt, ctx.node);
    let watched = old_holders.first().copied().unwrap_or(1);
    let mut snapshot: Vec<PlanView> = vec![];
    let holders = old_holders.len();
    ctx.chaos.wait(
        ctx.cluster,
        Duration::from_secs(300),
        ("the old set retired", "rotation"),
        Bar::new(s.progress, started, "retired", "key holders"),
        |c| {
            // Its plans, while it still shows them (a retired session's are removed).
            if let Ok(plans) = super::plans_of(c, watched) {
                if !plans.is_empty() {
                    snapshot = plans;
                }
            }
            let status = c.coordinator_http_status().unwrap_or_default();
            let retired = status["sets"][0]["successor"]["retired"].as_array().map_or(0, Vec::len);
            Standing {
                over: status["sets"][0]["rotation"].as_str() == Some("retired")
                    && retired == holders,
                count: retired as u64,
                of: holders as u64,
            }
        },
    )?;
    let held = |group: &Group| -> u64 {
        group
            .scripts
            .iter()
            .map(|s| {
                rt.block_on(node.utxos_of(&hex::encode(s))).iter().map(|(_, v)| v).sum::<u64>()
            })
            .sum()
    };
    let forwarded: u64 = snapshot
        .iter()
        .flat_map(|p| &p.payments)
        .filter(|paid| {
            let external = hex::decode(&paid.address)
                .ok()
                .and_then(|b| primitives::ExternalAddress::new(b).ok());
            external.is_some_and(|e| new.scripts.contains(e.as_bytes()))
        })
        .map(|paid| paid.net)
        .sum();
    let left = held(old);
    ctx.report.rotation =
        Some((format!("{}-of-{} -> 3-of-4", s.threshold, s.validators), forwarded));
    ctx.report.check(
        "the old set forwarded everything to the new key and retired; its key holds nothing",
        left == 0 && forwarded > 0,
        format!(
            "old key holds {left}; forwarded {forwarded} in {} plans of the old set",
            snapshot.len()
        ),
    );
    ctx.say(format!("the old set retired; it forwarded {forwarded} litoshis to the new key"));
    Ok(snapshot)
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
    let first = (1..=s.validators).find(|v| Some(*v) != s.silent_in_keygen).unwrap_or(1);
    let key = ctx
        .cluster
        .wait_for(Duration::from_secs(180), "an active key pair", |c| {
            let status = c.processor_status(first).ok()?;
            status.keys.iter().find(|k| k.active).map(|k| k.network_key.clone())
        })
        .map_err(with_logs(ctx.cluster))?;
    if let Some(v) = s.silent_in_keygen {
        // The key holders, as coordinator-sim confirmed them; the excluded one runs again.
        let participants = ctx.cluster.coordinator_status().ok().and_then(|s| {
            let list = s["sets"][0]["participants"].as_array()?.clone();
            list.iter().map(|p| p.as_u64().and_then(|p| u16::try_from(p).ok())).collect()
        });
        ctx.holders = participants.unwrap_or_default();
        ctx.say(format!(
            "key generated by validators {:?}; validator {v} started again",
            ctx.holders
        ));
        ctx.cluster.start_processor(v)?;
    }
    let mut scripts = BTreeSet::new();
    for kind in OutputKind::ALL {
        scripts.insert(chain::group_script(&key, kind)?.to_bytes());
    }
    let deposit = chain::deposit_address(&key)?;
    ctx.say(format!("key active; the group's deposit address is {deposit}"));

    // Every processor scans from the activation block the key's confirmation carried
    // (agreed by coordinator-sim from the processors' proposals), so their Batches are
    // the same. Mining goes on meanwhile: nothing waits for the processors to agree.
    let holders = ctx.holders.clone();
    let starts = ctx
        .cluster
        .wait_for(Duration::from_secs(60), "every processor's activation block", |c| {
            holders
                .iter()
                .map(|v| c.processor_status(*v).ok()?.pipeline?.start)
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
    let start = agreed.or_else(|| starts.first().copied()).unwrap_or(0);
    Ok(Group { scripts, deposit, start })
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
    // A congested chain is mined more slowly, so that a flood can keep its blocks full.
    let interval = if ctx.s.congestion { 1000 } else { 250 };
    {
        let (node, mining, paused) = (node.clone(), mining.clone(), ctx.paused.clone());
        rt.spawn(async move {
            // As on Litecoin's mainnet, the blocks carry MWEB peg-ins and peg-outs too: one
            // of each before every fourth block (a failure only skips them).
            let mut mined = 0u64;
            while mining.load(Ordering::Relaxed) {
                if paused.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                if mined.is_multiple_of(4) && node.is_litecoin() {
                    let _ = mweb_traffic(node.rpc(), node.wallet()).await;
                }
                node.mine(1).await;
                mined += 1;
                tokio::time::sleep(Duration::from_millis(interval)).await;
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
    // Everything but the settlement-block counter, which the chain moving on advances
    // meanwhile (acknowledgements go on): accounts, burns and totals.
    let funds = |cluster: &crate::Cluster| {
        let mut ledger = ledger(cluster);
        if let Some(fields) = ledger.as_mut().and_then(Value::as_object_mut) {
            fields.remove("last_settlement_block");
        }
        ledger
    };
    let before = funds(cluster);
    let refused = http_post_json(cluster.coordinator_http, "/burn", &body).map(|(code, _)| code);
    report.check(
        "a burn over the balance is refused, the ledger unchanged",
        refused == Some(400) && funds(cluster) == before,
        refused.map_or("no answer".into(), |code| format!("HTTP {code}")),
    );
}

/// Burns, round by round, each round paid before the next; returns each payee's
/// address and burn.
pub(super) fn burns(
    ctx: &mut Ctx,
    deposits: &Deposits,
    mut burns: Vec<(String, u64)>,
    until: u64,
) -> Result<Vec<(String, u64)>, DevnetError> {
    let (s, started, rt, node) = (ctx.s, ctx.started, ctx.rt, ctx.node);
    let accounts = &deposits.accounts;
    // Burns, in rounds; each round is one settlement block, above the output limit. Up to
    // `until` burns in all (`burns`: those ordered before).
    let received = |to: &str| rt.block_on(node.received_by(to));
    // Congestion: the flood's coins first; the flood itself once the payouts are planned
    // (planned earlier, they would take the flooded blocks' rate).
    let flood_wallet = if s.congestion {
        ctx.say("congesting the chain: small blocks, a mempool full of higher fees".into());
        // In a transaction small enough for the small blocks (the node keeps 4,000 of a
        // block's weight for the coinbase); each coin pays for a chain of flood
        // transactions through its change.
        Some(rt.block_on(node.many_coins("flood", 10, 10_000_000)))
    } else {
        None
    };
    let plans_before = ctx
        .holders
        .first()
        .and_then(|v| ctx.cluster.processor_status(*v).ok()?.pipeline)
        .map_or(0, |p| p.plans);
    let mut flooding = None;
    let per_round = s.burns.div_ceil(s.burn_rounds.max(1));
    while (burns.len() as u64) < until {
        if flood_wallet.is_some() && flooding.is_none() {
            // Nothing mined until the flood is in: the payout must not slip through.
            ctx.paused.store(true, Ordering::Relaxed);
        }
        let first = burns.len() as u64;
        for i in first..(first + per_round).min(until) {
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
        if let Some(wallet) = flood_wallet.clone().filter(|_| flooding.is_none()) {
            flooding = Some(flood(ctx, wallet, plans_before)?);
        }
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
    if let Some(flooding) = flooding {
        flooding.store(false, Ordering::Relaxed);
    }
    ctx.report.burned = burns.iter().map(|(_, a)| a).sum();
    ctx.say(format!("{} payees paid; settling", burns.len()));
    Ok(burns)
}

/// What the flood pays, in sat/vB: far above the payouts' rate (regtest's blocks pay about
/// 20), so that they are stuck behind it.
pub const FLOOD_RATE: u64 = 50;

/// Once a plan beyond `plans_before` is made (the payout), pauses the miner, fills the
/// mempool with transactions paying [`FLOOD_RATE`] from `wallet`, and resumes: the payout
/// then waits behind them. Keeps the mempool full until the returned flag is cleared.
fn flood(ctx: &mut Ctx, wallet: Rpc, plans_before: u64) -> Result<Arc<AtomicBool>, DevnetError> {
    let holder = ctx.holders.first().copied().unwrap_or(1);
    ctx.cluster
        .wait_for(Duration::from_secs(120), "the payout planned", |c| {
            let plans = c.processor_status(holder).ok()?.pipeline?.plans;
            (plans > plans_before).then_some(())
        })
        .map_err(with_logs(ctx.cluster))?;
    ctx.paused.store(true, Ordering::Relaxed);
    // The wallet's fee rate, in LTC per 1,000 vbytes.
    let per_kvb = format!("{:.8}", FLOOD_RATE as f64 * 1000.0 / 100_000_000.0);
    ctx.rt
        .block_on(
            wallet.call::<Value>("settxfee", json!([per_kvb.parse::<f64>().unwrap_or(0.0005)])),
        )
        .map_err(|e| DevnetError::Failed(format!("settxfee: {e}")))?;
    let flooding = Arc::new(AtomicBool::new(true));
    let (node, on, paused) = (ctx.node.clone(), flooding.clone(), ctx.paused.clone());
    ctx.rt.spawn(async move {
        let started = std::time::Instant::now();
        while on.load(Ordering::Relaxed) {
            let pool: Vec<String> =
                node.rpc().call("getrawmempool", json!([])).await.unwrap_or_default();
            // Whatever happens, mining resumes within 10 s.
            if pool.len() >= 40 || started.elapsed() > Duration::from_secs(10) {
                // Full: let the miner go on (blocks take about 10 of them each).
                paused.store(false, Ordering::Relaxed);
            }
            if pool.len() < 60 {
                for _ in 0..15 {
                    let Ok(to) =
                        wallet.call::<String>("getnewaddress", json!(["", "bech32"])).await
                    else {
                        break;
                    };
                    let params = json!([to, 0.0001]);
                    let _ = wallet.call::<Value>("sendtoaddress", params).await;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        paused.store(false, Ordering::Relaxed);
    });
    Ok(flooding)
}

/// On a congested chain, the payouts were stuck and lifted: some plan is a child paying
/// for its parent, mined, on every processor alike.
pub(super) fn bump_check(ctx: &mut Ctx) -> Result<(), DevnetError> {
    let (rt, node) = (ctx.rt, ctx.node);
    let mut children = vec![];
    let mut first = vec![];
    for v in ctx.holders.clone() {
        let plans = super::plans_of(ctx.cluster, v).map_err(DevnetError::Failed)?;
        let mined: Vec<String> = plans
            .iter()
            .filter(|p| p.child_of.is_some() && p.completed)
            .map(|p| p.id.clone())
            .collect();
        if first.is_empty() {
            first = plans;
        }
        children.push(mined);
    }
    let same = children.windows(2).all(|w| w[0] == w[1]);
    // A child lifted its parent if the two were mined in the same block (a parent mined
    // before its child was made was not stuck, only slow to be seen).
    let block_of = |tx: &str| -> Option<String> {
        let mut id = hex::decode(tx).ok()?;
        id.reverse();
        let info: Value = rt
            .block_on(node.rpc().call("getrawtransaction", json!([hex::encode(id), true])))
            .ok()?;
        info["blockhash"].as_str().map(String::from)
    };
    let mut lifted = 0;
    for child in first.iter().filter(|p| p.child_of.is_some() && p.completed) {
        let parent = first.iter().find(|p| Some(&p.id) == child.child_of.as_ref());
        let blocks = (
            child.tx.as_deref().and_then(block_of),
            parent.and_then(|p| p.tx.as_deref()).and_then(block_of),
        );
        if let (Some(a), Some(b)) = blocks {
            if a == b {
                lifted += 1;
            }
        }
    }
    let count = children.first().map_or(0, Vec::len);
    ctx.report.check(
        "payouts stuck behind higher fees were lifted by children, on every processor alike",
        lifted > 0 && same,
        format!("{count} children mined, {lifted} in the same block as their parent"),
    );
    Ok(())
}

/// Waits until every processor has the same plans, none pending or to publish.
pub(super) fn settle(ctx: &mut Ctx) -> Result<(), DevnetError> {
    settled(ctx.cluster, &ctx.holders)
}

/// Waits until every processor of `holders` has the same plans, none pending or to
/// publish.
pub(super) fn settled(cluster: &mut crate::Cluster, holders: &[u16]) -> Result<(), DevnetError> {
    cluster
        .wait_for(Duration::from_secs(120), "every processor settled", |c| {
            let all: Vec<_> = holders
                .iter()
                .map(|v| c.processor_status(*v).ok().and_then(|s| s.pipeline))
                .collect::<Option<Vec<_>>>()?;
            let done = all
                .iter()
                .all(|p| p.plans == all[0].plans && p.plans_pending == 0 && p.to_publish == 0);
            done.then_some(())
        })
        .map_err(with_logs(cluster))?;
    Ok(())
}

/// The first key holder's `/metrics`, once settled.
pub(super) fn metrics_check(ctx: &mut Ctx) {
    // What an operator's Prometheus would see (gauges: counters restart with a process).
    let holder = ctx.holders.first().copied().unwrap_or(1);
    let metrics = ctx
        .cluster
        .processors
        .iter()
        .find(|p| p.validator == holder)
        .and_then(|p| http_get(p.http, "/metrics"))
        .map(|(_, body)| body)
        .unwrap_or_default();
    let value = |name: &str| {
        metrics.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
    };
    let expressions =
        format!("{}\n{}", crate::metrics_doc::ALERTS_YML, crate::metrics_doc::DASHBOARD_JSON);
    let missing =
        crate::metrics_doc::missing(crate::metrics_doc::METRICS_MD, &expressions, &metrics);
    ctx.report.check(
        "every metric docs/metrics.md, docs/alerts.yml and the dashboard name is served",
        missing.is_empty(),
        if missing.is_empty() {
            format!(
                "{} metrics",
                crate::metrics_doc::documented(crate::metrics_doc::METRICS_MD).len()
            )
        } else {
            format!("not served: {missing:?}")
        },
    );
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

/// The blocks the processors scanned are MWEB blocks, as on Litecoin's mainnet: each has
/// its extension block (checked against its HogEx), and among them are peg-ins and
/// peg-outs (the HogEx's inputs after the first, and outputs after the first).
pub(super) fn mweb_check(ctx: &mut Ctx, group: &Group) -> Result<(), DevnetError> {
    let (rt, node) = (ctx.rt, ctx.node);
    let holder = ctx.holders.first().copied().unwrap_or(1);
    let scanned = ctx
        .cluster
        .processor_status(holder)
        .ok()
        .and_then(|s| s.pipeline?.scanned)
        .unwrap_or(group.start);
    let blocks = node.rest_blocks();
    let (mut extended, mut pegins, mut pegouts) = (0u64, 0usize, 0usize);
    for height in group.start..=scanned {
        let hash = rt
            .block_on(node.rpc().block_hash(height))
            .map_err(|e| DevnetError::Failed(e.to_string()))?;
        let block =
            rt.block_on(blocks.block(&hash)).map_err(|e| DevnetError::Failed(e.to_string()))?;
        if block.extension.is_some() {
            extended += 1;
            let hogex = block.block.txdata.last().map(|tx| (tx.input.len(), tx.output.len()));
            let (inputs, outputs) = hogex.unwrap_or((1, 1));
            pegins += inputs.saturating_sub(1);
            pegouts += outputs.saturating_sub(1);
        }
    }
    let count = scanned.saturating_sub(group.start) + 1;
    ctx.report.check(
        "the blocks scanned are MWEB blocks, with peg-ins and peg-outs",
        extended == count && pegins > 0 && pegouts > 0,
        format!(
            "blocks {}..={scanned}: {extended} of {count} with an extension block, {pegins} peg-ins, {pegouts} peg-outs",
            group.start
        ),
    );
    Ok(())
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
    old_plans: Vec<PlanView>,
) -> Result<(), DevnetError> {
    let (rt, node, params) = (ctx.rt, ctx.node, ctx.params);
    let (cluster, report) = (&*ctx.cluster, &mut ctx.report);
    let received = |to: &str| rt.block_on(node.received_by(to));
    // Plans, from each processor's database: identical, and each payee got exactly its
    // burn minus its recorded fee share.
    let mut plans = super::same_plans(cluster, &ctx.holders, report)?;
    // A rotated-out set's plans, as its processors last showed them before it retired.
    report.plans += old_plans.len();
    plans.extend(old_plans);
    let shares = super::fee_shares(&plans, |a| {
        Address::from_external(a).ok().map(|address| address.display(params))
    });
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
    nonce_rule(ctx.cluster, &mut ctx.report);
}

/// [`nonce_check`] on any cluster.
pub(super) fn nonce_rule(cluster: &crate::Cluster, report: &mut super::Report) {
    // The nonce rule, as the coordinator saw it: every preprocess that left a processor
    // arrived there, and a second, different one for the same signer and attempt would be
    // counted. (A processor logs a preprocess before its transaction commits, so a kill
    // in between can repeat a log line for a preprocess that never left: the logs only
    // give the per-processor counts.)
    for p in &cluster.processors {
        report.preprocesses.push((p.validator, released_preprocesses(&p.log).len()));
    }
    // Every set's signing (two after a rotation).
    let sets = cluster
        .coordinator_status()
        .ok()
        .and_then(|s| s["sets"].as_array().cloned())
        .unwrap_or_default();
    let count = |name: &str| -> Option<u64> {
        sets.iter().map(|s| s["signing"][name].as_u64()).sum::<Option<u64>>()
    };
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

/// With misbehaving validators: each was convicted from public data (a wrong share, or a
/// false blame of a Batch signer) or, where nothing could be checked (plans), set apart in
/// a dispute; no honest validator was convicted, and every dispute involves a
/// misbehaving validator.
pub(super) fn blame_check(ctx: &mut Ctx) {
    let liars: Vec<u16> = ctx.s.malice.iter().map(|(v, _)| *v).collect();
    if liars.is_empty() {
        return;
    }
    let signing = ctx.cluster.coordinator_status().ok().map(|s| s["sets"][0]["signing"].clone());
    let blames = signing.as_ref().and_then(|s| s["blames"].as_u64()).unwrap_or(0);
    let disputes: Vec<(u16, u16)> = signing
        .as_ref()
        .and_then(|s| serde_json::from_value(s["disputes"].clone()).ok())
        .unwrap_or_default();
    let convictions: Vec<(u16, String)> = signing
        .as_ref()
        .and_then(|s| s["convictions"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|c| {
            Some((u16::try_from(c["validator"].as_u64()?).ok()?, c["fault"].as_str()?.to_string()))
        })
        .collect();
    let convicted: Vec<u16> = convictions.iter().map(|(v, _)| *v).collect();
    let caught = |liar: &u16| {
        convicted.contains(liar) || disputes.iter().any(|(a, b)| a == liar || b == liar)
    };
    ctx.report.check(
        "every misbehaving validator was convicted (or disputed) and no honest one",
        liars.iter().all(caught)
            && convicted.iter().all(|v| liars.contains(v))
            && disputes.iter().all(|(a, b)| liars.contains(a) || liars.contains(b)),
        format!(
            "{blames} blames; convicted {convictions:?}; disputes {disputes:?}; misbehaving {liars:?}"
        ),
    );
}
