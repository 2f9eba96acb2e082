//! The demo scenario on a Bitcoin-family network (Litecoin regtest): key generation,
//! deposits with instructions from several senders, Batches, credited accounts, burns
//! paid through payment trees, and a final accounting checked against the node's own RPC
//! (never the processors' word alone). The `devnet demo` command and the end-to-end
//! tests run exactly this code.
//!
//! A failure to run (a node or process that does not come up, a wait that times out) is
//! an `Err`; a wrong result is a failed [`Check`] in the [`Report`].
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin_network::params::{Chain, Coin, Params};
use bitcoin_network::testing::node::Node;
use bus::testing::http_get;
use processor::status::PlanView;
use serde_json::Value;

use crate::progress::Bar;
use crate::{Cluster, DevnetError, NodeOptions, Options};

pub mod monero;
mod steps;

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
    /// A validator kept down during key generation: coordinator-sim excludes it after
    /// the round timeout, the others generate the key and run the scenario; it is started
    /// again once the key is confirmed (and holds no share).
    pub silent_in_keygen: Option<u16>,
    /// A validator stopped once the key is active and kept down: it holds a share but
    /// answers nothing, so every signing goes on without it.
    pub silent_after_keygen: Option<u16>,
    /// `[testing] malice` per validator (e.g. `"false-blame:0"`: blame another signer
    /// instead of sending a share, in every signing set).
    pub malice: Vec<(u16, String)>,
    /// Congest the chain while the burns are paid: litecoind makes small blocks
    /// (`-blockmaxweight`) and a wallet keeps its mempool full of transactions paying
    /// [`FLOOD_RATE`], so the payouts, planned at the earlier blocks' rate, are stuck until
    /// the processors bump them (on Litecoin, a child pays for each).
    pub congestion: bool,
    /// Rotate custody in the middle of the payouts: after the first round of burns, a
    /// 3-of-4 set (the last validator and three new ones) is elected; the remaining burns
    /// are its to pay, and the first set forwards everything to it and retires
    /// (docs/rotation.md).
    pub rotate: bool,
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
            silent_in_keygen: None,
            silent_after_keygen: None,
            malice: vec![],
            congestion: false,
            rotate: false,
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
    /// The network and chain, as the table's heading shows them.
    pub network: String,
    /// The unit amounts are in.
    pub unit: String,
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
    /// A rotation's outcome, as the table shows it: the sets, and what the old set
    /// forwarded.
    pub rotation: Option<(String, u64)>,
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
        let mut out = format!("{:<30} {:>14}\n", self.network, self.unit);
        let rows: &[(&str, u64)] = if self.network.starts_with("monero") {
            // Monero shows no sender (nothing is refunded) and hides what is spent.
            &[
                ("deposited", self.deposited),
                ("credited (settlement ledger)", self.credited),
                ("burned", self.burned),
                ("paid (payees' wallets)", self.paid),
                ("unattributed deposits (kept)", self.unattributed),
                ("fees (node: our transactions)", self.fees),
                ("remaining (group wallet - out)", self.remaining),
            ]
        } else {
            &[
                ("deposited", self.deposited),
                ("credited (settlement ledger)", self.credited),
                ("burned", self.burned),
                ("paid (node: payees received)", self.paid),
                ("unattributed deposits", self.unattributed),
                ("refunded (node: depositors got)", self.refunded),
                ("fees (node: our transactions)", self.fees),
                ("remaining (node: our outputs)", self.remaining),
            ]
        };
        for (name, value) in rows {
            out += &format!("  {name:<30} {value:>14}\n");
        }
        out += &format!(
            "  {:<30} {:>14}\n  {:<30} {:>14}\n",
            "our transactions", self.transactions, "plans", self.plans
        );
        if !self.kills.is_empty() {
            out += &format!("  {:<30} {:>14}\n", "processor kills", self.kills.len());
        }
        if let Some((sets, forwarded)) = &self.rotation {
            out += &format!("  {:<30} {:>14}\n", format!("rotation {sets}"), "retired");
            out += &format!("  {:<30} {:>14}\n", "forwarded (node: to the new key)", forwarded);
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
    balance_of(ledger, account, "litecoin")
}

/// The ledger's balance of `account` (hex; every account: `*`) in `coin`.
fn balance_of(ledger: &Value, account: &str, coin: &str) -> u64 {
    let accounts = ledger["accounts"].as_array().cloned().unwrap_or_default();
    accounts
        .iter()
        .filter(|a| account == "*" || a["account"].as_str() == Some(account))
        .flat_map(|a| a["balances"].as_array().cloned().unwrap_or_default())
        .filter(|b| b["coin"].as_str().is_some_and(|c| c.eq_ignore_ascii_case(coin)))
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

/// Each payee's payments in `plans` as `(net, fee share)`, keyed by the address as
/// `display` shows the settlement layer's binary form (payees it cannot show are left out).
fn fee_shares(
    plans: &[PlanView],
    display: impl Fn(&primitives::ExternalAddress) -> Option<String>,
) -> std::collections::BTreeMap<String, Vec<(u64, u64)>> {
    let mut shares: std::collections::BTreeMap<String, Vec<(u64, u64)>> = Default::default();
    for tx in plans {
        for paid in &tx.payments {
            let external = hex::decode(&paid.address)
                .ok()
                .and_then(|b| primitives::ExternalAddress::new(b).ok());
            if let Some(address) = external.as_ref().and_then(&display) {
                shares.entry(address).or_default().push((paid.net, paid.fee));
            }
        }
    }
    shares
}

/// Every key holder's plans, checked to be the same on each; the first holder's.
fn same_plans(
    cluster: &Cluster,
    holders: &[u16],
    report: &mut Report,
) -> Result<Vec<PlanView>, DevnetError> {
    let mut plans = vec![];
    for v in holders {
        plans.push(plans_of(cluster, *v).map_err(DevnetError::Failed)?);
    }
    report.plans = plans[0].len();
    report.check(
        "every processor planned the same transactions",
        plans.iter().all(|p| *p == plans[0]),
        format!("{} plans", plans[0].len()),
    );
    Ok(plans.swap_remove(0))
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
    // Small blocks, so that a flood of transactions fills them (see `congestion`).
    let extra: &[&str] = if s.congestion { &["-blockmaxweight=8000"] } else { &[] };
    let node = Arc::new(rt.block_on(Node::start_with(extra)));
    if !node.is_litecoin() {
        return Err(DevnetError::Failed("the scenario's amounts and params are Litecoin's".into()));
    }
    let params = Params::new(Coin::Litecoin, Chain::Regtest);
    let options = Options {
        node: Some(NodeOptions {
            max_outputs: Some(s.max_outputs),
            ..NodeOptions::regtest(&node, s.confirmations)
        }),
        coordinator_extra: "sign_timeout_ms = 5000\nchain = \"regtest\"\n".into(),
        listen: crate::Listen::Loopback,
        // A silent validator is excluded after one round timeout: keep it short then.
        keygen_timeout: if s.silent_in_keygen.is_some() {
            Duration::from_secs(3)
        } else {
            Duration::from_secs(60)
        },
        malice: s.malice.clone(),
        ..Options::keys_only("litecoin", s.validators, s.threshold)
    };
    say(format!("starting nats-server, {} processors and coordinator-sim", s.validators));
    let mut cluster = Cluster::start(&options)?;
    if let Some(v) = s.silent_in_keygen {
        say(format!("validator {v} kept down during key generation"));
        cluster.kill_processor(v);
    }
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

/// What the steps of [`exercise`] share: the scenario, the node and the started cluster,
/// the chaos that interrupts their waits, and the report they fill in.
struct Ctx<'a> {
    s: &'a Scenario,
    started: Instant,
    rt: &'a tokio::runtime::Runtime,
    node: &'a Arc<Node>,
    params: &'a Params,
    cluster: &'a mut Cluster,
    chaos: Chaos,
    report: Report,
    /// The validators holding the key (all, unless one was excluded).
    holders: Vec<u16>,
    /// Set to pause the miner (it mines nothing while set).
    paused: Arc<AtomicBool>,
}

impl Ctx<'_> {
    /// A progress line (with `Scenario::progress`).
    fn say(&self, message: String) {
        say(self.s.progress, self.started, message);
    }
}

/// The scenario proper, on a started cluster: its steps, in order (see [`steps`]).
fn exercise(
    s: &Scenario,
    started: Instant,
    rt: &tokio::runtime::Runtime,
    node: &Arc<Node>,
    params: &Params,
    cluster: &mut Cluster,
) -> Result<Report, DevnetError> {
    let chaos = Chaos {
        state: s.chaos_seed.map(|seed| seed | 1),
        validators: s.validators,
        next: Instant::now(),
        kills: vec![],
    };
    let holders = (1..=s.validators).collect();
    let report = Report {
        network: "litecoin (regtest)".into(),
        unit: "litoshis".into(),
        ..Report::default()
    };
    let paused = Arc::new(AtomicBool::new(false));
    let mut ctx = Ctx { s, started, rt, node, params, cluster, chaos, report, holders, paused };
    let mut group = steps::key_and_activation(&mut ctx)?;
    if let Some(v) = s.silent_after_keygen {
        ctx.say(format!("validator {v} stopped: it holds a share and answers nothing"));
        ctx.cluster.kill_processor(v);
        ctx.holders.retain(|h| *h != v);
    }
    let (watch, mining) = steps::watch_and_mine(&ctx, &group)?;
    let deposits = steps::deposits(&mut ctx, &group)?;
    let refunds = steps::refunds(&mut ctx, &group)?;
    steps::credited_check(&mut ctx, &deposits);
    steps::refused_burn(&mut ctx, &deposits);
    let (burns, old_plans) = if s.rotate {
        // A round of burns, then the rotation, then the rest: the old set pays the first
        // round, the new set the rest, with the funds the old set forwards.
        let first = s.burns.div_ceil(s.burn_rounds.max(1)).min(s.burns);
        let burns = steps::burns(&mut ctx, &deposits, vec![], first)?;
        let old_holders = ctx.holders.clone();
        let new = steps::rotate(&mut ctx)?;
        let burns = steps::burns(&mut ctx, &deposits, burns, s.burns)?;
        let old_plans = steps::retirement(&mut ctx, &group, &new, &old_holders)?;
        group.absorb(new);
        (burns, old_plans)
    } else {
        (steps::burns(&mut ctx, &deposits, vec![], s.burns)?, vec![])
    };
    steps::settle(&mut ctx)?;
    steps::metrics_check(&mut ctx);
    steps::stop_mining(&mining);
    steps::payees_check(&mut ctx, &burns);
    steps::conservation(&mut ctx, &watch, &group)?;
    steps::mweb_check(&mut ctx, &group)?;
    if s.congestion {
        steps::bump_check(&mut ctx)?;
    }
    steps::plans_check(&mut ctx, &burns, &refunds, old_plans)?;
    steps::nonce_check(&mut ctx);
    steps::blame_check(&mut ctx);
    let Ctx { mut report, chaos, .. } = ctx;
    report.kills = chaos.kills;
    report.elapsed = started.elapsed();
    Ok(report)
}
