//! The demo scenario on a Bitcoin-family network (Litecoin regtest): key generation,
//! deposits with instructions from several senders, Batches, credited accounts, burns
//! paid through payment trees, and a final accounting checked against the node's own RPC
//! (never the processors' word alone). The `devnet demo` command and the end-to-end
//! tests run exactly this code.
//!
//! A failure to run (a node or process that does not come up, a wait that times out) is
//! an `Err`; a wrong result is a failed [`Check`] in the [`Report`].
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin_network::params::{Chain, Coin, Params};
use bitcoin_network::testing::node::Node;
use bitcoin_network::Address;
use bus::testing::{http_get, http_post_json};
use primitives::ExternalAddress;
use processor::status::PlanView;
use scanner::OutputKind;
use serde_json::{json, Value};

use crate::progress::Bar;
use crate::{chain, Cluster, DevnetError, NodeOptions, Options};

/// What to run.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Processors.
    pub validators: u16,
    /// Signers needed.
    pub threshold: u16,
    /// Deposits, spread over `deposit_rounds` rounds and 4 accounts (4 senders).
    pub deposits: u64,
    /// Rounds of deposits (each credited before the next).
    pub deposit_rounds: u64,
    /// Burns to fresh addresses, over `burn_rounds` rounds.
    pub burns: u64,
    /// Rounds of burns (each round lands in one settlement block).
    pub burn_rounds: u64,
    /// The processors' output limit (low, so payment trees form).
    pub max_outputs: usize,
    /// Confirmations before a block is final.
    pub confirmations: u64,
    /// SIGKILL and restart random processors throughout, with this seed.
    pub chaos_seed: Option<u64>,
    /// Print progress on standard error.
    pub progress: bool,
    /// Keep the devnet's working directory (configs, logs, databases) even when every
    /// check passes; it is always kept when one fails or the scenario cannot finish.
    pub keep: bool,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            validators: 3,
            threshold: 2,
            deposits: 20,
            deposit_rounds: 4,
            burns: 30,
            burn_rounds: 3,
            max_outputs: 4,
            confirmations: 3,
            chaos_seed: None,
            progress: true,
            keep: false,
        }
    }
}

/// One verified fact.
#[derive(Clone, Debug)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// Whether it held.
    pub passed: bool,
    /// The figures behind it.
    pub detail: String,
}

/// What the scenario did and found.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Wall time.
    pub elapsed: Duration,
    /// Deposited (litoshis), per the deposits made.
    pub deposited: u64,
    /// Credited in the settlement ledger.
    pub credited: u64,
    /// Burned (ordered paid).
    pub burned: u64,
    /// Received by the payees, per the node.
    pub paid: u64,
    /// Deposits without a valid instruction (refunded, never credited).
    pub unattributed: u64,
    /// Received back by their depositors, per the node.
    pub refunded: u64,
    /// Fees of every transaction spending the group's outputs, per the node.
    pub fees: u64,
    /// Those transactions.
    pub transactions: usize,
    /// The group's unspent outputs, per the node.
    pub remaining: u64,
    /// Plans made (identical on every processor).
    pub plans: usize,
    /// Preprocesses released per processor.
    pub preprocesses: Vec<(u16, usize)>,
    /// Processors killed, and what each was doing.
    pub kills: Vec<(u16, String)>,
    /// The devnet's working directory: its configs, logs and databases.
    pub dir: std::path::PathBuf,
    /// Whether `dir` was kept (a check failed, or [`Scenario::keep`]); else it is gone
    /// by the time [`run`] returns.
    pub kept: bool,
    /// Every check.
    pub checks: Vec<Check>,
}

impl Report {
    /// Whether every check held.
    pub fn passed(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.passed)
    }

    fn check(&mut self, name: impl Into<String>, passed: bool, detail: impl Into<String>) {
        self.checks.push(Check { name: name.into(), passed, detail: detail.into() });
    }

    /// The result as a table.
    pub fn table(&self) -> String {
        let mut out = String::from("litecoin (regtest)             litoshis\n");
        for (name, value) in [
            ("deposited", self.deposited),
            ("credited (settlement ledger)", self.credited),
            ("burned", self.burned),
            ("paid (node: payees received)", self.paid),
            ("unattributed deposits", self.unattributed),
            ("refunded (node: depositors got)", self.refunded),
            ("fees (node: our transactions)", self.fees),
            ("remaining (node: our outputs)", self.remaining),
        ] {
            out += &format!("  {name:<30} {value:>14}\n");
        }
        out += &format!(
            "  {:<30} {:>14}\n  {:<30} {:>14}\n",
            "our transactions", self.transactions, "plans", self.plans
        );
        if !self.kills.is_empty() {
            out += &format!("  {:<30} {:>14}\n", "processor kills", self.kills.len());
        }
        out += "\nchecks\n";
        for c in &self.checks {
            out += &format!(
                "  [{}] {} ({})\n",
                if c.passed { "PASS" } else { "FAIL" },
                c.name,
                c.detail
            );
        }
        out += &format!(
            "\n{} in {:.1} s\n",
            if self.passed() { "ALL CHECKS PASSED" } else { "SOME CHECKS FAILED" },
            self.elapsed.as_secs_f64()
        );
        out
    }
}

/// SIGKILLs and restarts random processors at random moments.
struct Chaos {
    state: Option<u64>,
    validators: u16,
    next: Instant,
    kills: Vec<(u16, String)>,
}

impl Chaos {
    fn random(&mut self, below: u64) -> u64 {
        let Some(s) = self.state.as_mut() else { return 0 };
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        *s % below
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

    fn tick(&mut self, cluster: &mut Cluster, phase: &str) -> Result<(), DevnetError> {
        if self.state.is_none() || Instant::now() < self.next {
            return Ok(());
        }
        let validator = 1 + self.random(u64::from(self.validators)) as u16;
        let stage = Self::stage(cluster, validator, phase);
        cluster.kill_processor(validator);
        std::thread::sleep(Duration::from_millis(50 + self.random(250)));
        cluster.start_processor(validator)?;
        self.kills.push((validator, stage));
        self.next = Instant::now() + Duration::from_millis(150 + self.random(300));
        Ok(())
    }

    /// Waits until `poll` says the wait is over, showing its count on `bar` and killing
    /// and restarting processors meanwhile (`phase` names what the kills interrupt).
    fn wait(
        &mut self,
        cluster: &mut Cluster,
        timeout: Duration,
        (what, phase): (&str, &str),
        mut bar: Bar,
        mut poll: impl FnMut(&mut Cluster) -> Standing,
    ) -> Result<(), DevnetError> {
        let mut failure = None;
        let mut last = (0, 0);
        let waited = cluster.wait_for(timeout, what, |c| {
            if let Err(e) = self.tick(c, phase) {
                failure = Some(e);
                return Some(());
            }
            let standing = poll(c);
            last = (standing.count, standing.of);
            bar.update(standing.count, standing.of);
            standing.over.then_some(())
        });
        bar.finish(last.0, last.1);
        waited.map_err(with_logs(cluster))?;
        failure.map_or(Ok(()), Err)
    }
}

/// Where a wait stands: over or not, and how far (`count` of `of`) for its progress bar.
struct Standing {
    over: bool,
    count: u64,
    of: u64,
}

impl Standing {
    /// A wait that is over once `count` of `of` items are done.
    fn counted(count: usize, of: usize) -> Standing {
        Standing { over: count >= of, count: count as u64, of: of as u64 }
    }
}

fn say(progress: bool, started: Instant, message: impl AsRef<str>) {
    if progress {
        eprintln!("[{:>6.1}s] {}", started.elapsed().as_secs_f64(), message.as_ref());
    }
}

fn ledger(cluster: &Cluster) -> Option<Value> {
    let (code, body) = http_get(cluster.coordinator_http, "/ledger")?;
    (code == 200).then(|| serde_json::from_str(&body).ok()).flatten()
}

/// The ledger's balance of `account` (hex; every account: `*`), in litoshis.
fn balance(ledger: &Value, account: &str) -> u64 {
    let accounts = ledger["accounts"].as_array().cloned().unwrap_or_default();
    accounts
        .iter()
        .filter(|a| account == "*" || a["account"].as_str() == Some(account))
        .flat_map(|a| a["balances"].as_array().cloned().unwrap_or_default())
        .filter(|b| b["coin"].as_str().is_some_and(|c| c.eq_ignore_ascii_case("litecoin")))
        .map(|b| b["amount"].as_u64().unwrap_or(0))
        .sum()
}

/// Every `(session, kind, attempt)` a processor released a preprocess for, from its log
/// (which survives its restarts).
pub fn released_preprocesses(log: &Path) -> Vec<String> {
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

/// A processor's plans, from its `/plans` endpoint (sorted by id).
fn plans_of(cluster: &Cluster, validator: u16) -> Result<Vec<PlanView>, String> {
    let node =
        cluster.processors.iter().find(|p| p.validator == validator).ok_or("no such processor")?;
    let (code, body) = http_get(node.http, "/plans").ok_or("no answer from /plans")?;
    if code != 200 {
        return Err(format!("/plans answered {code}: {body}"));
    }
    serde_json::from_str(&body).map_err(|e| e.to_string())
}

fn with_logs(cluster: &Cluster) -> impl Fn(DevnetError) -> DevnetError + '_ {
    move |e| DevnetError::Failed(format!("{e}\n{}", cluster.logs_tail(30)))
}

/// Runs the scenario; see the module documentation.
pub fn run(s: &Scenario) -> Result<Report, DevnetError> {
    let started = Instant::now();
    let say = |m: String| say(s.progress, started, m);
    let rt = tokio::runtime::Runtime::new().map_err(crate::io("starting a Tokio runtime"))?;
    say("starting litecoind (regtest)".into());
    let node = Arc::new(rt.block_on(Node::start()));
    if !node.is_litecoin() {
        return Err(DevnetError::Failed("the scenario's amounts and params are Litecoin's".into()));
    }
    let params = Params::new(Coin::Litecoin, Chain::Regtest);
    let options = Options {
        node: Some(NodeOptions {
            chain: "regtest".into(),
            rpc_url: node.rpc().url(),
            cookie_file: node.datadir().join("regtest").join(".cookie"),
            confirmations: Some(s.confirmations),
            max_outputs: Some(s.max_outputs),
            poll_ms: 200,
        }),
        coordinator_extra: "sign_timeout_ms = 5000\nchain = \"regtest\"\n".into(),
        ..Options::keys_only("litecoin", s.validators, s.threshold)
    };
    say(format!("starting nats-server, {} processors and coordinator-sim", s.validators));
    let mut cluster = Cluster::start(&options)?;
    // Kept unless every check passes (or always, with `keep`): a failure's logs,
    // configs and databases stay for the operator to read.
    cluster.dir.disable_cleanup(true);
    let dir = cluster.dir.path().to_path_buf();
    match exercise(s, started, &rt, &node, &params, &mut cluster) {
        Ok(mut report) => {
            report.kept = s.keep || !report.passed();
            cluster.dir.disable_cleanup(report.kept);
            report.dir = dir;
            Ok(report)
        }
        Err(e) => Err(DevnetError::Failed(format!("{e}\n{}", kept_in(&dir)))),
    }
}

/// Where a kept run's files are, as the operator is told.
pub fn kept_in(dir: &Path) -> String {
    format!(
        "the processors' and coordinator-sim's configs, logs and databases are kept in {}",
        dir.display()
    )
}

/// The scenario proper, on a started cluster.
fn exercise(
    s: &Scenario,
    started: Instant,
    rt: &tokio::runtime::Runtime,
    node: &Arc<Node>,
    params: &Params,
    cluster: &mut Cluster,
) -> Result<Report, DevnetError> {
    let say = |m: String| say(s.progress, started, m);
    let mut chaos = Chaos {
        state: s.chaos_seed.map(|seed| seed | 1),
        validators: s.validators,
        next: Instant::now(),
        kills: vec![],
    };
    let mut report = Report::default();

    // The key.
    say(format!("key generation ({}-of-{})", s.threshold, s.validators));
    let key = cluster
        .wait_for(Duration::from_secs(180), "an active key pair", |c| {
            let status = c.processor_status(1).ok()?;
            status.keys.iter().find(|k| k.active).map(|k| k.network_key.clone())
        })
        .map_err(with_logs(cluster))?;
    let mut scripts = BTreeSet::new();
    for kind in OutputKind::ALL {
        scripts.insert(chain::group_script(&key, kind)?.to_bytes());
    }
    let deposit = chain::deposit_address(&key)?;
    say(format!("key active; the group's deposit address is {deposit}"));

    // Every processor scans from the activation block the key's confirmation carried
    // (agreed by coordinator-sim from the processors' proposals), so their Batches are
    // the same. Mining goes on meanwhile: nothing waits for the processors to agree.
    let n = s.validators;
    let starts = cluster
        .wait_for(Duration::from_secs(60), "every processor's activation block", |c| {
            (1..=n)
                .map(|v| c.processor_status(v).ok()?.pipeline?.start)
                .collect::<Option<BTreeSet<u64>>>()
        })
        .map_err(with_logs(cluster))?;
    let agreed = cluster
        .coordinator_status()
        .ok()
        .and_then(|s| s["sets"][0]["confirmed"]["activation_block"].as_u64());
    report.check(
        "every processor scans from the agreed activation block",
        agreed.is_some() && starts.len() == 1 && starts.first() == agreed.as_ref(),
        format!("agreed {agreed:?}, processors {starts:?}"),
    );
    say(format!("every processor scans from block {agreed:?}"));

    // Watch our addresses, to find our transactions at the end; mine continuously.
    let watch = node.rpc().with_wallet("watch");
    for script in &scripts {
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
            rt.block_on(node.deposit_from(sender, &deposit, amount, Some(&data)));
            *deposited.entry(account).or_default() += amount;
        }
        made = (made + per_round).min(s.deposits);
        say(format!(
            "{made}/{} deposits sent; waiting for Batches to be signed and credited",
            s.deposits
        ));
        let expected: u64 = deposited.values().sum();
        chaos.wait(
            cluster,
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
    report.deposited = deposited.values().sum();

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
        rt.block_on(node.deposit_from(&wallet, &deposit, amount, data));
        refunds.push((wallet, from, amount));
    }
    let received_back = |(wallet, from, _): &(bitcoin_network::rpc::Rpc, String, u64)| -> u64 {
        let btc: f64 =
            rt.block_on(wallet.call("getreceivedbyaddress", json!([from, 1]))).unwrap_or_default();
        // Less the 10,000,000 the depositor was funded with.
        bitcoin::Amount::from_btc(btc).map_or(0, |a| a.to_sat()).saturating_sub(10_000_000)
    };
    report.unattributed = refunds.iter().map(|(_, _, amount)| amount).sum();
    report.deposited += report.unattributed;
    say(format!(
        "{} deposits without a valid instruction sent; waiting for their refunds",
        refunds.len()
    ));
    chaos.wait(
        cluster,
        Duration::from_secs(240),
        ("refunds paid", "refunds"),
        Bar::new(s.progress, started, "refunded", "depositors"),
        |_| {
            Standing::counted(
                refunds.iter().filter(|r| received_back(r) > 0).count(),
                refunds.len(),
            )
        },
    )?;
    report.refunded = refunds.iter().map(received_back).sum();
    say(format!("{} refunds paid: {} litoshis", refunds.len(), report.refunded));

    let l = ledger(cluster).unwrap_or_default();
    report.credited = accounts.iter().map(|a| balance(&l, &hex::encode(a))).sum();
    say(format!("{} deposits credited: {} litoshis", s.deposits, report.credited));
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

    // A burn over the balance is refused and changes nothing.
    let to = rt.block_on(node.new_address());
    let body = json!({"network": "litecoin", "account": hex::encode(accounts[0]), "to": to, "amount": report.deposited * 10}).to_string();
    let before = ledger(cluster);
    let refused = http_post_json(cluster.coordinator_http, "/burn", &body).map(|(code, _)| code);
    report.check(
        "a burn over the balance is refused, the ledger unchanged",
        refused == Some(400) && ledger(cluster) == before,
        refused.map_or("no answer".into(), |code| format!("HTTP {code}")),
    );

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
            match http_post_json(cluster.coordinator_http, "/burn", &body) {
                Some((200, _)) => burns.push((to, amount)),
                other => {
                    return Err(DevnetError::Failed(format!("burn refused: {other:?}")));
                }
            }
        }
        say(format!("{}/{} burns ordered; waiting for the payments", burns.len(), s.burns));
        chaos.wait(
            cluster,
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
    report.burned = burns.iter().map(|(_, a)| a).sum();
    say(format!("{} payees paid; settling", burns.len()));
    cluster
        .wait_for(Duration::from_secs(120), "every processor settled", |c| {
            let all: Vec<_> = (1..=n)
                .map(|v| c.processor_status(v).ok().and_then(|s| s.pipeline))
                .collect::<Option<Vec<_>>>()?;
            let done = all
                .iter()
                .all(|p| p.plans == all[0].plans && p.plans_pending == 0 && p.to_publish == 0);
            done.then_some(())
        })
        .map_err(with_logs(cluster))?;
    // What an operator's Prometheus would see (gauges: counters restart with a process).
    let metrics = cluster
        .processors
        .first()
        .and_then(|p| http_get(p.http, "/metrics"))
        .map(|(_, body)| body)
        .unwrap_or_default();
    let value = |name: &str| {
        metrics.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
    };
    report.check(
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
    std::thread::sleep(Duration::from_secs(2));
    mining.store(false, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(500));

    // Payees, from the node.
    let mut once = true;
    for (to, _) in &burns {
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

    // Plans, from each processor's database: identical, and each payee got exactly its
    // burn minus its recorded fee share.
    let mut plans = vec![];
    for v in 1..=n {
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
    for refund in &refunds {
        let (wallet, from, amount) = refund;
        let back = received_back(refund);
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
    report.kills = chaos.kills;
    report.elapsed = started.elapsed();
    Ok(report)
}
