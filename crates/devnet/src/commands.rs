//! `devnet up`, `status`, `deposit`, `mine` and `down`: a devnet left running in a
//! directory for exploration by hand.
//!
//! `up` starts litecoind (regtest), nats-server, the processors and coordinator-sim, each
//! detached (its own process group, standard error to its own log in the directory), and
//! records every process in [`Record`] (`devnet.json`) as it starts it. It returns once
//! the group key is active and every processor scans, leaving them running. The other
//! commands are separate invocations that read the record:
//! - `down` stops every recorded process (SIGTERM, then SIGKILL after a grace period) and
//!   checks each is gone, by pid and start time, before removing the record;
//! - a new `up` refuses to start while a recorded process still runs, and otherwise clears
//!   the directory of the previous run (only a directory `up` made: it carries
//!   [`MARKER`]).
//!
//! If `up` fails part way, it stops what it started; if it is interrupted, the record
//! names what it started, for `down`.

use std::{
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command},
    time::{Duration, Instant},
};

use processor::status::StatusReport;
use serde::Serialize;
use serde_json::Value;

use crate::{
    binary,
    chain::{self, NodeClient},
    http_get, io, json_status, poll,
    record::{
        self, CoordinatorRecord, NodeRecord, ProcessRecord, Record, Role, Stopped, MARKER, VERSION,
    },
    spawn, spawn_logged, DevnetError, Layout, NodeOptions, Options,
};

/// The grace period between SIGTERM and SIGKILL in `down`.
pub const GRACE: Duration = Duration::from_secs(10);

/// What `devnet up` starts.
#[derive(Clone, Debug)]
pub struct UpOptions {
    /// The devnet directory.
    pub dir: PathBuf,
    /// `litecoin` or `monero`.
    pub network: String,
    /// Processors.
    pub validators: u16,
    /// Signers needed.
    pub threshold: u16,
    /// Confirmations before a block is final.
    pub confirmations: u64,
    /// The processors' output limit (default: the network's).
    pub max_outputs: Option<usize>,
    /// Print progress on standard error.
    pub progress: bool,
}

/// A devnet `up` left running.
#[derive(Clone, Debug)]
pub struct Up {
    /// Its record (as saved in `devnet.json`).
    pub record: Record,
    /// A fresh address of the node's wallet, to burn to.
    pub payee: String,
    /// How long `up` took.
    pub elapsed: Duration,
}

fn not_up(dir: &Path) -> DevnetError {
    DevnetError::NotUp(dir.to_path_buf())
}

/// The record of the devnet in `dir`, or [`DevnetError::NotUp`].
pub fn require(dir: &Path) -> Result<Record, DevnetError> {
    if !dir.is_dir() {
        return Err(not_up(dir));
    }
    Record::load(dir)?.ok_or_else(|| not_up(dir))
}

/// Makes `dir` ready for a new devnet: refuses while a recorded process runs, or when it
/// holds files `up` did not make; clears a previous run's files; returns it absolute.
fn prepare_dir(dir: &Path) -> Result<PathBuf, DevnetError> {
    if dir.is_dir() {
        if let Some(previous) = Record::load(dir)? {
            let running = previous.running();
            if !running.is_empty() {
                let names: Vec<String> =
                    running.iter().map(|p| format!("{} (pid {})", p.name(), p.pid)).collect();
                return Err(DevnetError::Failed(format!(
                    "a devnet is already running in {}; `devnet down` first ({})",
                    dir.display(),
                    names.join(", ")
                )));
            }
        }
        let entries: Vec<_> = std::fs::read_dir(dir)
            .map_err(io(format!("reading {}", dir.display())))?
            .collect::<Result<_, _>>()
            .map_err(io(format!("reading {}", dir.display())))?;
        if !entries.is_empty() && !dir.join(MARKER).exists() {
            return Err(DevnetError::Failed(format!(
                "{} is not empty and was not made by `devnet up`; choose another --dir",
                dir.display()
            )));
        }
        // The previous run's files (its processes are gone): a new devnet has new keys.
        for entry in entries {
            let path = entry.path();
            if entry.file_name() == MARKER {
                continue;
            }
            let removed = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            removed.map_err(io(format!("removing {}", path.display())))?;
        }
    } else {
        std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    }
    std::fs::write(dir.join(MARKER), "made by `devnet up`; `devnet down --purge` removes it\n")
        .map_err(io(format!("writing {}", dir.join(MARKER).display())))?;
    dir.canonicalize().map_err(io(format!("resolving {}", dir.display())))
}

/// A process `up` started, while it waits on it.
struct Started {
    name: String,
    child: Child,
    log: PathBuf,
}

/// Fails if one of `started` has exited (naming it and its log).
fn check_alive(started: &mut [Started]) -> Result<(), DevnetError> {
    for s in started {
        if let Ok(Some(status)) = s.child.try_wait() {
            return Err(DevnetError::Failed(format!(
                "{} exited ({status}); see {}:\n{}",
                s.name,
                s.log.display(),
                tail(&s.log, 15)
            )));
        }
    }
    Ok(())
}

/// Polls `f` until it returns `Some`, failing early if a started process exits.
fn wait(
    started: &mut [Started],
    timeout: Duration,
    what: &str,
    mut f: impl FnMut() -> Option<()>,
) -> Result<(), DevnetError> {
    let mut exited = None;
    poll(timeout, what, || {
        if let Err(e) = check_alive(started) {
            exited = Some(e);
            return Some(());
        }
        f()
    })?;
    exited.map_or(Ok(()), Err)
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn record_process(
    record: &mut Record,
    role: Role,
    validator: Option<u16>,
    child: &Child,
    config: Option<&Path>,
    log: &Path,
    port: u16,
) -> Result<(), DevnetError> {
    let program = (role == Role::Node).then(|| node_program(&record.network).to_string());
    record.processes.push(ProcessRecord {
        role,
        validator,
        pid: child.id(),
        start_time: record::start_time(child.id()),
        config: config.map(Path::to_path_buf),
        log: log.to_path_buf(),
        port,
        program,
    });
    record.save()
}

/// The node program of `network`.
fn node_program(network: &str) -> &'static str {
    if network == "monero" {
        "monerod"
    } else {
        "litecoind"
    }
}

/// `devnet up`: see the module documentation.
pub fn up(o: &UpOptions) -> Result<Up, DevnetError> {
    if let Some(reason) = crate::threshold_refused(o.threshold, o.validators) {
        return Err(DevnetError::Failed(reason));
    }
    if o.confirmations == 0 {
        return Err(DevnetError::Failed("--confirmations must be at least 1".into()));
    }
    let monero = match o.network.as_str() {
        "litecoin" => false,
        "monero" => true,
        other => {
            return Err(DevnetError::Failed(format!(
                "--network {other}: expected litecoin or monero"
            )))
        }
    };
    if monero && o.confirmations < monero_network::network::MIN_CONFIRMATIONS {
        return Err(DevnetError::Failed(format!(
            "--confirmations {} on Monero: at least {} (10, plus the 9 blocks of the spend lock)",
            o.confirmations,
            monero_network::network::MIN_CONFIRMATIONS
        )));
    }
    let started_at = Instant::now();
    let say = |m: &str| {
        if o.progress {
            eprintln!("[{:>6.1}s] {m}", started_at.elapsed().as_secs_f64());
        }
    };
    let dir = prepare_dir(&o.dir)?;
    say("checking the processor and coordinator-sim binaries");
    let processor_bin = binary("processor")?;
    let coordinator_bin = binary("coordinator-sim")?;
    let mut record = Record {
        version: VERSION,
        dir: dir.clone(),
        network: o.network.clone(),
        validators: o.validators,
        threshold: o.threshold,
        confirmations: o.confirmations,
        processor_bin,
        coordinator_bin,
        node: None,
        nats_url: None,
        coordinator: None,
        deposit_address: None,
        ready: false,
        processes: vec![],
    };
    record.save()?;
    match start(&mut record, o, &say) {
        Ok(payee) => Ok(Up { record, payee, elapsed: started_at.elapsed() }),
        Err(e) => {
            let stopped = record::stop_all(&record.processes, GRACE);
            let left = record::still_running(&stopped);
            let cleanup = if left.is_empty() {
                let _ = std::fs::remove_file(Record::path(&dir));
                format!(
                    "`devnet up` stopped every process it had started ({}); the logs are in {}",
                    stopped.len(),
                    dir.display()
                )
            } else {
                format!("still running: {}; `devnet down` will retry", left.join(", "))
            };
            Err(DevnetError::Failed(format!("{e}\n{cleanup}")))
        }
    }
}

/// The processes `up` starts, in order; on error the caller stops what is recorded.
fn start(record: &mut Record, o: &UpOptions, say: &dyn Fn(&str)) -> Result<String, DevnetError> {
    let dir = record.dir.clone();
    let mut started: Vec<Started> = vec![];

    let monero = record.network == "monero";
    let (rpc_url, cookie_file, client) = if monero {
        say("starting monerod (regtest, with its 1,600-block history)");
        let datadir = dir.join("monerod");
        let node_log = dir.join("monerod.stderr.log");
        let (child, rpc_url) =
            crate::monero_node::start_node(&datadir, &node_log, |child, port| {
                record_process(
                    record,
                    Role::Node,
                    None,
                    child,
                    None,
                    &datadir.join("monerod.log"),
                    port,
                )
            })?;
        started.push(Started { name: "monerod".into(), child, log: datadir.join("monerod.log") });
        record.node = Some(NodeRecord {
            rpc_url: rpc_url.clone(),
            cookie_file: None,
            datadir,
            wallet: "the history's coinbase outputs".into(),
            mining_address: Some(crate::monero_node::fresh_address()),
        });
        record.save()?;
        (rpc_url, None, None)
    } else {
        say("starting litecoind (regtest)");
        let datadir = dir.join("litecoind");
        let node_log = dir.join("litecoind.log");
        let (node, client) = chain::start_node(&datadir, &node_log, |child, port| {
            // A try that exited (its port was taken) stays out of the record.
            record.processes.retain(|p| p.role != Role::Node || p.running());
            record_process(record, Role::Node, None, child, None, &node_log, port)
        })?;
        started.push(Started { name: "litecoind".into(), child: node.child, log: node_log });
        record.node = Some(NodeRecord {
            rpc_url: node.rpc_url.clone(),
            cookie_file: Some(node.cookie_file.clone()),
            datadir,
            wallet: chain::WALLET.into(),
            mining_address: None,
        });
        record.save()?;
        say("funding its wallet with mature coins");
        let mining_address = client.fund()?;
        if let Some(node) = record.node.as_mut() {
            node.mining_address = Some(mining_address);
        }
        record.save()?;
        (node.rpc_url, Some(node.cookie_file), Some(client))
    };

    say("starting nats-server");
    let nats_port = bus::testing::free_port();
    let nats_log = dir.join("nats.log");
    let nats_bin = std::env::var("NATS_SERVER").unwrap_or_else(|_| "nats-server".into());
    let mut command = Command::new(&nats_bin);
    command
        .args(["-js", "-a", "127.0.0.1", "-p", &nats_port.to_string(), "-sd"])
        .arg(dir.join("nats"));
    let child = spawn_logged(command, &nats_log, true).map_err(|e| {
        DevnetError::Failed(format!(
            "{e}: install nats-server (scripts/devnet does: apt-get install -y nats-server) \
             or set NATS_SERVER=/path/to/nats-server"
        ))
    })?;
    record_process(record, Role::Nats, None, &child, None, &nats_log, nats_port)?;
    started.push(Started { name: "nats-server".into(), child, log: nats_log });
    wait(&mut started, Duration::from_secs(20), "nats-server to listen", || {
        TcpStream::connect(("127.0.0.1", nats_port)).ok().map(|_| ())
    })?;
    let nats_url = format!("nats://127.0.0.1:{nats_port}");
    record.nats_url = Some(nats_url.clone());
    record.save()?;

    let options = Options {
        node: Some(NodeOptions {
            chain: "regtest".into(),
            rpc_url,
            cookie_file,
            confirmations: Some(o.confirmations),
            max_outputs: o.max_outputs,
            poll_ms: 250,
        }),
        // Monero's CLSAG signing takes longer than a Schnorr signature.
        coordinator_extra: format!(
            "sign_timeout_ms = {}\nchain = \"regtest\"\n",
            if monero { 10_000 } else { 5_000 }
        ),
        ..Options::keys_only(&record.network, o.validators, o.threshold)
    };
    let layout = Layout::write(
        &dir,
        &options,
        &crate::Broker { url: nats_url.clone(), secured: None },
        &record.processor_bin,
        &record.coordinator_bin,
    )?;
    record.coordinator = Some(CoordinatorRecord {
        config: layout.coordinator_config.clone(),
        http: layout.coordinator_http,
    });
    record.save()?;

    say(&format!("starting {} processors", o.validators));
    for p in &layout.processors {
        let child = spawn(&record.processor_bin, &p.config, &p.log, true)?;
        let v = Some(p.validator);
        record_process(record, Role::Processor, v, &child, Some(&p.config), &p.log, p.http)?;
        let name = format!("processor-{}", p.validator);
        started.push(Started { name, child, log: p.log.clone() });
    }
    let healthy = || {
        layout
            .processors
            .iter()
            .all(|p| http_get(p.http, "/health").is_some_and(|(code, _)| code == 200))
            .then_some(())
    };
    wait(&mut started, Duration::from_secs(60), "every processor's /health", healthy)?;

    say(&format!("starting coordinator-sim: key generation ({}-of-{})", o.threshold, o.validators));
    let child =
        spawn(&record.coordinator_bin, &layout.coordinator_config, &layout.coordinator_log, true)?;
    let (config, log) = (&layout.coordinator_config, &layout.coordinator_log);
    record_process(
        record,
        Role::CoordinatorSim,
        None,
        &child,
        Some(config),
        log,
        layout.coordinator_http,
    )?;
    started.push(Started { name: "coordinator-sim".into(), child, log: log.clone() });

    // The key holders are the participants of the set's confirmed key generation: a
    // processor excluded from it (silent, blamed or misconfigured) holds no key, and the
    // devnet runs without it.
    let sim_http = layout.coordinator_http;
    let mut ready = None;
    wait(&mut started, Duration::from_secs(180), "an active key on every key holder", || {
        let sim: Value = serde_json::from_str(&http_get(sim_http, "/status")?.1).ok()?;
        let keys: Vec<(u16, Option<StatusReport>)> = record
            .processors()
            .filter_map(|p| Some((p.validator?, processor_status(record, p).ok())))
            .collect();
        ready = key_holders_ready(&sim, &keys);
        ready.is_some().then_some(())
    })?;
    let Some(ready) = ready else { return Err(DevnetError::Failed("no key reported".into())) };
    for (v, reason) in &ready.excluded {
        say(&format!("validator {v} was excluded from key generation: {reason}"));
    }
    let address = if monero {
        crate::scenario::monero::group_keys(&ready.key)?
            .address(scanner::OutputKind::External)
            .to_string()
    } else {
        chain::deposit_address(&ready.key)?
    };
    record.deposit_address = Some(address.clone());
    record.save()?;
    say(&format!("key active; the group's deposit address is {address}"));

    // Every key holder scans from the activation block the key's confirmation carried:
    // `up` returns once each has recorded it, so scanning is under way, and the blocks the
    // user mines next are scanned by all.
    let mut starts = None;
    wait(&mut started, Duration::from_secs(60), "every key holder's activation block", || {
        let fixed: std::collections::BTreeSet<u64> = record
            .processors()
            .filter(|p| p.validator.is_some_and(|v| ready.holders.contains(&v)))
            .map(|p| processor_status(record, p).ok()?.pipeline?.start)
            .collect::<Option<_>>()?;
        starts = Some(fixed);
        Some(())
    })?;
    if let Some(starts) = starts.filter(|s| s.len() != 1) {
        return Err(DevnetError::Failed(format!(
            "the processors start scanning at different blocks {starts:?}: their Batches would \
             differ"
        )));
    }

    let payee = match &client {
        Some(client) => client.new_address()?,
        None => crate::monero_node::fresh_address(),
    };
    record.ready = true;
    record.save()?;
    say("ready");
    Ok(payee)
}

fn processor_status(record: &Record, p: &ProcessRecord) -> Result<StatusReport, DevnetError> {
    let config = p
        .config
        .as_deref()
        .ok_or_else(|| DevnetError::Failed(format!("{} has no config in devnet.json", p.name())))?;
    json_status(&record.processor_bin, config, format!("{} status", p.name()))
}

/// The "what next" text after `up`.
pub fn next_steps(up: &Up) -> String {
    let r = &up.record;
    let dir = r.dir.display();
    let coordinator = r.coordinator.as_ref();
    let config = coordinator.map_or("?".into(), |c| c.config.display().to_string());
    let sim = r.coordinator_bin.display();
    let devnet =
        std::env::current_exe().ok().map_or_else(|| "devnet".into(), |p| p.display().to_string());
    let dir_arg = format!(" --dir {dir}");
    format!(
        "devnet up in {dir} ({:.1} s): {node} (regtest), nats-server, {n} processors \
         ({t}-of-{n}) and coordinator-sim, running until `devnet down`\n\
         \n  deposit address  {address}\
         \n  confirmations    {c}\
         \n  a payee address  {payee}\
         \n  logs             {dir}/*.log, {dir}/processor-{network}-*/processor.log\
         \n\nnext:\
         \n  {devnet} status{dir_arg}\
         \n  {devnet} deposit{dir_arg} --account alice --amount {deposit}\
         \n  {devnet} mine{dir_arg}          # {c} blocks: the deposit is final, a Batch is signed and credited\
         \n  {sim} ledger --config {config}\
         \n  {sim} burn --config {config} \\\
         \n      --network {network} --account {alice} --to {payee} --amount {burn}\
         \n  {devnet} mine{dir_arg}          # again, until `status` shows no plan pending\
         \n  {devnet} down{dir_arg}          # --purge also removes {dir}\n",
        up.elapsed.as_secs_f64(),
        n = r.validators,
        t = r.threshold,
        address = r.deposit_address.as_deref().unwrap_or("?"),
        c = r.confirmations,
        payee = up.payee,
        alice = chain::parse_account("alice").map(hex::encode).unwrap_or_default(),
        node = node_program(&r.network),
        network = r.network,
        // 0.05 LTC and 0.01 LTC; 5 XMR and 1 XMR (above Monero's dust of 0.01 XMR).
        deposit = if r.network == "monero" { 5_000_000_000_000u64 } else { 5_000_000 },
        burn = if r.network == "monero" { 1_000_000_000_000u64 } else { 1_000_000 },
    )
}

/// One process in [`DevnetStatus`].
#[derive(Clone, Debug, Serialize)]
pub struct ProcessState {
    /// `litecoind`, `nats-server`, `processor-<v>`, `coordinator-sim`.
    pub name: String,
    /// Its pid.
    pub pid: u32,
    /// Whether it runs.
    pub running: bool,
    /// Its port (RPC, client or HTTP).
    pub port: u16,
    /// Its log.
    pub log: PathBuf,
}

/// One processor's own report in [`DevnetStatus`].
#[derive(Clone, Debug, Serialize)]
pub struct ProcessorState {
    /// Its validator index.
    pub validator: u16,
    /// `processor status --json`, when it answered.
    pub status: Option<StatusReport>,
    /// Why it did not.
    pub error: Option<String>,
}

/// What `devnet status` shows.
#[derive(Clone, Debug, Serialize)]
pub struct DevnetStatus {
    /// The devnet directory.
    pub dir: PathBuf,
    /// The network (`litecoin`, `monero`).
    pub network: String,
    /// Whether `up` finished.
    pub ready: bool,
    /// Processors.
    pub validators: u16,
    /// Signers needed.
    pub threshold: u16,
    /// Confirmations before a block is final.
    pub confirmations: u64,
    /// The group's deposit address.
    pub deposit_address: Option<String>,
    /// Every recorded process.
    pub processes: Vec<ProcessState>,
    /// Each processor's report.
    pub processors: Vec<ProcessorState>,
    /// The node's best height, if it answered.
    pub tip: Option<u64>,
    /// coordinator-sim's `GET /ledger`, if it answered.
    pub ledger: Option<Value>,
}

impl DevnetStatus {
    /// Whether every recorded process runs.
    pub fn all_running(&self) -> bool {
        self.ready && self.processes.iter().all(|p| p.running)
    }
}

/// `devnet status`: every recorded process, and what each processor, the node and
/// coordinator-sim report.
pub fn status(dir: &Path) -> Result<DevnetStatus, DevnetError> {
    let record = require(dir)?;
    let processes = record
        .processes
        .iter()
        .map(|p| ProcessState {
            name: p.name(),
            pid: p.pid,
            running: p.running(),
            port: p.port,
            log: p.log.clone(),
        })
        .collect();
    let processors = record
        .processors()
        .map(|p| {
            let (status, error) = match processor_status(&record, p) {
                Ok(s) => (Some(s), None),
                Err(e) => (None, Some(e.to_string())),
            };
            ProcessorState { validator: p.validator.unwrap_or(0), status, error }
        })
        .collect();
    let tip = match &record.node {
        Some(node) if record.network == "monero" => crate::monero_node::tip(&node.rpc_url),
        Some(node) => NodeClient::connect(node).ok().and_then(|c| c.tip().ok()),
        None => None,
    };
    let ledger = record
        .coordinator
        .as_ref()
        .and_then(|c| http_get(c.http, "/ledger"))
        .filter(|(code, _)| *code == 200)
        .and_then(|(_, body)| serde_json::from_str(&body).ok());
    Ok(DevnetStatus {
        dir: record.dir.clone(),
        network: record.network.clone(),
        ready: record.ready,
        validators: record.validators,
        threshold: record.threshold,
        confirmations: record.confirmations,
        deposit_address: record.deposit_address.clone(),
        processes,
        processors,
        tip,
        ledger,
    })
}

/// Width of the row labels of the processors' table.
const LABEL: usize = 25;
/// Width of a processor's column.
const COLUMN: usize = 16;

impl DevnetStatus {
    /// The status as text: processes, the processors side by side, the chain, the ledger.
    pub fn table(&self) -> String {
        let mut out = format!(
            "devnet in {}: {} regtest, {}-of-{}, {} confirmations{}\n",
            self.dir.display(),
            self.network,
            self.threshold,
            self.validators,
            self.confirmations,
            if self.ready { "" } else { " (STARTING, or `up` failed)" }
        );
        if let Some(address) = &self.deposit_address {
            out += &format!("deposit address {address}\n");
        }
        out += "\nprocesses\n";
        for p in &self.processes {
            out += &format!(
                "  {:<16} pid {:<8} {:<12} port {:<6} {}\n",
                p.name,
                p.pid,
                if p.running { "running" } else { "NOT RUNNING" },
                p.port,
                p.log.display()
            );
        }
        out += &format!("\n{:<LABEL$}", "processor");
        for p in &self.processors {
            out += &format!("{:>COLUMN$}", p.validator);
        }
        out += "\n";
        for (label, cell) in ROWS {
            out += &format!("  {:<w$}", label, w = LABEL - 2);
            for p in &self.processors {
                let text = match (&p.status, &p.error) {
                    (Some(s), _) => cell(s),
                    (None, Some(_)) => "error".into(),
                    (None, None) => "-".into(),
                };
                out += &format!("{text:>COLUMN$}");
            }
            out += "\n";
        }
        for p in &self.processors {
            if let Some(e) = &p.error {
                let first = e.lines().next().unwrap_or_default();
                out += &format!("  processor {}: {first}\n", p.validator);
            }
        }
        out += &format!(
            "\nchain tip        {}\n",
            self.tip.map_or("(the node does not answer)".into(), |t| t.to_string())
        );
        out += &match &self.ledger {
            Some(ledger) => ledger_text(ledger),
            None => "ledger           (coordinator-sim does not answer)\n".into(),
        };
        out
    }
}

type Cell = fn(&StatusReport) -> String;

fn pipeline_cell(
    s: &StatusReport,
    f: impl Fn(&processor::status::PipelineStatus) -> String,
) -> String {
    s.pipeline.as_ref().map_or("-".into(), f)
}

fn opt(v: Option<u64>) -> String {
    v.map_or("-".into(), |v| v.to_string())
}

/// The processors' table: one row per fact, one column per processor.
const ROWS: &[(&str, Cell)] = &[
    ("key", |s| match s.keys.iter().max_by_key(|k| k.session) {
        Some(k) if k.active => {
            format!("active {}", k.network_key.chars().take(6).collect::<String>())
        }
        Some(_) => "awaiting confirm".into(),
        None => "none".into(),
    }),
    ("session", |s| pipeline_cell(s, |p| p.session.to_string())),
    ("scanned (from)", |s| pipeline_cell(s, |p| format!("{} ({})", opt(p.scanned), opt(p.start)))),
    ("confirmed block", |s| pipeline_cell(s, |p| opt(p.confirmed_block))),
    ("batches made/acked", |s| {
        pipeline_cell(s, |p| format!("{}/{}", p.batches, p.batches_acknowledged))
    }),
    ("settlement block", |s| pipeline_cell(s, |p| p.settlement_block.to_string())),
    ("outputs", |s| pipeline_cell(s, |p| p.outputs.to_string())),
    ("outputs (base units)", |s| pipeline_cell(s, |p| p.outputs_amount.to_string())),
    ("payments queued", |s| pipeline_cell(s, |p| p.payments_queued.to_string())),
    ("plans made/pending", |s| pipeline_cell(s, |p| format!("{}/{}", p.plans, p.plans_pending))),
    ("to publish", |s| pipeline_cell(s, |p| p.to_publish.to_string())),
    ("signing open (attempt)", |s| {
        pipeline_cell(s, |p| match p.signing.iter().map(|i| i.attempt).max() {
            Some(attempt) => format!("{} ({attempt})", p.signing.len()),
            None => "0".into(),
        })
    }),
    ("unreported deposits", |s| pipeline_cell(s, |p| p.unreported_deposits.to_string())),
    ("conflicts (ALARM)", |s| pipeline_cell(s, |p| p.conflicts.to_string())),
    ("inbox/outbox", |s| format!("{}/{}", s.inbox_pending, s.outbox_pending)),
];

/// coordinator-sim's ledger (its `GET /ledger` JSON), briefly.
fn ledger_text(ledger: &Value) -> String {
    let mut out = format!(
        "ledger           last settlement block {}\n",
        ledger["last_settlement_block"].as_u64().unwrap_or(0)
    );
    let accounts = ledger["accounts"].as_array().cloned().unwrap_or_default();
    if accounts.is_empty() {
        out += "  (no account credited yet)\n";
    }
    for a in &accounts {
        let account = a["account"].as_str().unwrap_or("?");
        let name = hex::decode(account)
            .ok()
            .and_then(|bytes| chain::account_name(&bytes).map(|n| format!(" ({n})")))
            .unwrap_or_default();
        let balances: Vec<String> = a["balances"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|b| {
                format!(
                    "{} {}",
                    b["amount"].as_u64().unwrap_or(0),
                    b["coin"].as_str().unwrap_or("?")
                )
            })
            .collect();
        out += &format!("  {account}{name}  {}\n", balances.join(", "));
    }
    let count = |key: &str| ledger[key].as_array().map_or(0, Vec::len);
    out += &format!("  burns: {} queued, {} made\n", count("burns_queued"), count("burns_made"));
    out
}

/// What `devnet down` did.
#[derive(Clone, Debug)]
pub enum Down {
    /// No devnet was recorded in the directory.
    NothingUp {
        /// The directory was removed (`--purge`).
        purged: bool,
    },
    /// Every recorded process is gone.
    Stopped {
        /// Each process and how it stopped.
        processes: Vec<(ProcessRecord, Stopped)>,
        /// The directory was removed (`--purge`); else only `devnet.json`.
        purged: bool,
    },
}

/// `devnet down`: stops every recorded process, checks each is gone, removes the record
/// (and with `purge` the directory, if `up` made it). Fails, keeping the record, if a
/// process survives SIGKILL.
pub fn down(dir: &Path, purge: bool) -> Result<Down, DevnetError> {
    let purge_dir = |purge: bool| -> Result<bool, DevnetError> {
        if purge && dir.join(MARKER).exists() {
            std::fs::remove_dir_all(dir).map_err(io(format!("removing {}", dir.display())))?;
            return Ok(true);
        }
        Ok(false)
    };
    let record = match require(dir) {
        Ok(record) => record,
        Err(DevnetError::NotUp(_)) => return Ok(Down::NothingUp { purged: purge_dir(purge)? }),
        Err(e) => return Err(e),
    };
    let processes = record::stop_all(&record.processes, GRACE);
    let left = record::still_running(&processes);
    if !left.is_empty() {
        return Err(DevnetError::Failed(format!(
            "still running after SIGKILL: {}; {} kept",
            left.join(", "),
            Record::path(dir).display()
        )));
    }
    let path = Record::path(dir);
    std::fs::remove_file(&path).map_err(io(format!("removing {}", path.display())))?;
    Ok(Down::Stopped { processes, purged: purge_dir(purge)? })
}

/// A deposit `devnet deposit` made.
#[derive(Clone, Debug)]
pub struct Deposit {
    /// Its transaction.
    pub txid: String,
    /// The group's deposit address.
    pub address: String,
    /// The account credited.
    pub account: [u8; 32],
    /// In the network's base unit (litoshis, piconero).
    pub amount: u64,
    /// Confirmations before it is final.
    pub confirmations: u64,
}

/// The recorded node, or why it is not running.
fn node_running(record: &Record) -> Result<&NodeRecord, DevnetError> {
    let node = record.node()?;
    let process = record.processes.iter().find(|p| p.role == Role::Node);
    if !process.is_some_and(ProcessRecord::running) {
        let (name, log) =
            process.map_or(("the node".into(), record.dir.clone()), |p| (p.name(), p.log.clone()));
        return Err(DevnetError::Failed(format!(
            "{name} is not running (see {}); `devnet down`, then `devnet up`",
            log.display()
        )));
    }
    Ok(node)
}

fn running_node(record: &Record) -> Result<NodeClient, DevnetError> {
    NodeClient::connect(node_running(record)?)
}

/// `devnet deposit`: pays `amount` base units (litoshis from the node's wallet; piconero
/// from the history's coinbase outputs on Monero) to the group's deposit
/// address with an OP_RETURN instruction crediting `account` (see
/// [`chain::parse_account`]). Mines nothing.
pub fn deposit(dir: &Path, account: &str, amount: u64) -> Result<Deposit, DevnetError> {
    let record = require(dir)?;
    let account = chain::parse_account(account)?;
    if amount == 0 {
        return Err(DevnetError::Failed("--amount must be above 0".into()));
    }
    let address = record.deposit_address()?.to_string();
    let txid = if record.network == "monero" {
        let node = node_running(&record)?;
        crate::monero_node::deposit(&node.datadir, &node.rpc_url, &address, account, amount)?
    } else {
        let client = running_node(&record)?;
        client.deposit(&address, amount, &chain::instruction(account)?)?
    };
    Ok(Deposit { txid, address, account, amount, confirmations: record.confirmations })
}

/// `devnet mine`: mines `blocks` blocks (default: the confirmation depth) to the node's
/// wallet; returns the number mined and the new tip.
pub fn mine(dir: &Path, blocks: Option<u64>) -> Result<(u64, u64), DevnetError> {
    let record = require(dir)?;
    let blocks = blocks.unwrap_or(record.confirmations);
    if record.network == "monero" {
        let node = node_running(&record)?;
        return Ok((blocks, crate::monero_node::mine(&node.rpc_url, blocks)?));
    }
    let client = running_node(&record)?;
    let address = record.node()?.mining_address.clone().ok_or_else(|| {
        DevnetError::Failed("`devnet up` did not get as far as funding the wallet".into())
    })?;
    // Litecoin as on mainnet: the blocks scanned carry peg-ins and peg-outs too.
    client.mweb_traffic()?;
    Ok((blocks, client.mine(blocks, &address)?))
}

/// The set's key, once coordinator-sim confirmed it and every key holder's processor shows
/// it active.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyReady {
    /// The network key (hex).
    pub key: String,
    /// The validators holding it.
    pub holders: Vec<u16>,
    /// The validators excluded from key generation, with coordinator-sim's reason.
    pub excluded: Vec<(u16, String)>,
}

/// Whether the key is ready: coordinator-sim's `/status` (`sim`) shows the first set's key
/// confirmed, and every participant of it among `processors` (validator, its status if it
/// answered) shows that key active. Processors outside the participants (excluded) are
/// not waited for.
pub fn key_holders_ready(
    sim: &Value,
    processors: &[(u16, Option<StatusReport>)],
) -> Option<KeyReady> {
    let set = sim.get("sets")?.get(0)?;
    let key = set.get("confirmed")?.get("network_key")?.as_str()?.to_string();
    let holders: Vec<u16> = set
        .get("participants")?
        .as_array()?
        .iter()
        .map(|v| v.as_u64().and_then(|v| u16::try_from(v).ok()))
        .collect::<Option<_>>()?;
    for v in &holders {
        let (_, status) = processors.iter().find(|(p, _)| p == v)?;
        let active = status.as_ref()?.keys.iter().find(|k| k.active)?;
        if active.network_key != key {
            return None;
        }
    }
    let excluded = set
        .get("excluded")
        .and_then(Value::as_array)
        .map(|all| {
            all.iter()
                .filter_map(|e| {
                    let v = u16::try_from(e.get("validator")?.as_u64()?).ok()?;
                    let reason = e.get("reason").and_then(Value::as_str).unwrap_or("");
                    Some((v, reason.to_string()))
                })
                .filter(|(v, _)| !holders.contains(v))
                .collect()
        })
        .unwrap_or_default();
    Some(KeyReady { key, holders, excluded })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn processor(key: Option<&str>) -> Option<StatusReport> {
        let keys = key
            .map(|k| {
                serde_json::json!([{ "session": 0, "attempt": 0, "threshold": 3,
                    "participants": [1, 3, 4], "ristretto_key": "r", "network_key": k,
                    "active": true }])
            })
            .unwrap_or(serde_json::json!([]));
        serde_json::from_value(serde_json::json!({
            "party": "p", "inbox_pending": 0, "deferred": 0, "outbox_pending": 0,
            "routes": [], "keys": keys
        }))
        .ok()
    }

    /// Validator 2 of 4 was excluded from key generation: `up` waits for the three key
    /// holders only, and names the excluded one; a key holder without the key, or with
    /// another, is still waited for.
    #[test]
    fn up_waits_for_the_key_holders_not_for_an_excluded_validator() {
        let sim = serde_json::json!({ "sets": [{
            "participants": [1, 3, 4],
            "confirmed": { "network_key": "02ab" },
            "excluded": [{ "validator": 2, "attempt": 0, "reason": "silent in round commitments" }]
        }]});
        let mut processors = vec![
            (1, processor(Some("02ab"))),
            (2, processor(None)),
            (3, processor(Some("02ab"))),
            (4, processor(Some("02ab"))),
        ];
        let ready = key_holders_ready(&sim, &processors).unwrap();
        assert_eq!(ready.key, "02ab");
        assert_eq!(ready.holders, vec![1, 3, 4]);
        assert_eq!(ready.excluded, vec![(2, "silent in round commitments".to_string())]);
        processors[3].1 = processor(None);
        assert_eq!(key_holders_ready(&sim, &processors), None, "a key holder without the key");
        processors[3].1 = processor(Some("03cd"));
        assert_eq!(key_holders_ready(&sim, &processors), None, "another key");
        processors[3].1 = None;
        assert_eq!(key_holders_ready(&sim, &processors), None, "not answering");
        let unconfirmed = serde_json::json!({ "sets": [{ "participants": [1, 3, 4] }] });
        processors[3].1 = processor(Some("02ab"));
        assert_eq!(key_holders_ready(&unconfirmed, &processors), None);
    }
}

/// What `devnet layout` writes: a network's configs for processes on other hosts.
#[derive(Clone, Debug)]
pub struct LayoutOptions {
    /// `litecoin` or `monero`.
    pub network: String,
    /// Processors.
    pub validators: u16,
    /// Signers needed.
    pub threshold: u16,
    /// The broker, as the processes reach it (`nats://nats:4222`).
    pub nats_url: String,
    /// The node's RPC URL, as the processors reach it.
    pub node_url: String,
    /// The node's cookie file, as the processors see it (Bitcoin family).
    pub cookie_file: Option<PathBuf>,
    /// Confirmations before a block is final.
    pub confirmations: u64,
}

/// `devnet layout`: writes the identities, sealing secrets and configs of a network's
/// processors and coordinator-sim under `dir` (as [`Layout::write`] does for `up`), for
/// processes that each run on their own host or container: they listen on every
/// interface at their default ports, and reach the broker and the node by the URLs
/// given. Writes nothing, and returns `false`, if `dir` already holds a layout: identities
/// are never replaced.
pub fn layout(dir: &Path, o: &LayoutOptions) -> Result<bool, DevnetError> {
    if dir.join("coordinator-sim.toml").exists() {
        return Ok(false);
    }
    std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    let options = Options {
        node: Some(NodeOptions {
            chain: "regtest".into(),
            rpc_url: o.node_url.clone(),
            cookie_file: o.cookie_file.clone(),
            confirmations: Some(o.confirmations),
            max_outputs: None,
            poll_ms: 1000,
        }),
        coordinator_extra: "chain = \"regtest\"\n".into(),
        listen: crate::Listen::Everywhere,
        ..Options::keys_only(&o.network, o.validators, o.threshold)
    };
    let bins = crate::bin_dir();
    Layout::write(
        dir,
        &options,
        &crate::Broker { url: o.nats_url.clone(), secured: None },
        &bins.join("processor"),
        &bins.join("coordinator-sim"),
    )?;
    Ok(true)
}

/// What `devnet rotate` did.
#[derive(Debug)]
pub struct Rotated {
    /// The new set's session.
    pub session: u32,
    /// The validators whose processors were started for it.
    pub started: Vec<u16>,
    /// The new key's deposit address (what `devnet deposit` pays from now on).
    pub deposit_address: String,
}

/// `devnet rotate`: elects the network's next set, `threshold`-of-`validators`, in a devnet
/// `up` left running, as an operator would (docs/operations.md, "Rotating to a new set"):
/// starts a processor for each validator that has none (new identity, sealing secret and
/// config, recorded for `down`), adds the set to coordinator-sim's config with the grace
/// period `close_after`, restarts coordinator-sim, and waits for the new key. The old set
/// then forwards its funds to it and retires on its own (`devnet status` shows the
/// stages).
pub fn rotate(
    dir: &Path,
    threshold: u16,
    validators: &[u16],
    close_after: u64,
) -> Result<Rotated, DevnetError> {
    let n = u16::try_from(validators.len()).unwrap_or(u16::MAX);
    if let Some(reason) = crate::threshold_refused(threshold, n) {
        return Err(DevnetError::Failed(reason));
    }
    let mut record = Record::load(dir)?.ok_or_else(|| {
        DevnetError::Failed(format!("no devnet in {}: run `devnet up` first", dir.display()))
    })?;
    if !record.ready {
        return Err(DevnetError::Failed(
            "the devnet is not ready: `devnet up` did not finish".into(),
        ));
    }
    let coordinator = record.coordinator()?.clone();
    let node = record.node()?.clone();
    let nats_url =
        record.nats_url.clone().ok_or_else(|| DevnetError::Failed("no broker recorded".into()))?;
    // Every processor pins the coordinator's key: a new one too.
    let any_config = record
        .processors()
        .find_map(|p| p.config.clone())
        .ok_or_else(|| DevnetError::Failed("no processor config recorded".into()))?;
    let text = std::fs::read_to_string(&any_config).map_err(io("reading a processor config"))?;
    let coordinator_public = text
        .split("[coordinator]")
        .nth(1)
        .and_then(|rest| rest.lines().find_map(|l| l.trim().strip_prefix("public_key = ")))
        .map(|k| k.trim_matches('"').to_string())
        .ok_or_else(|| DevnetError::Failed("no coordinator key in a processor config".into()))?;
    let monero = record.network == "monero";
    let options = Options {
        node: Some(NodeOptions {
            chain: "regtest".into(),
            rpc_url: node.rpc_url.clone(),
            cookie_file: node.cookie_file.clone(),
            confirmations: Some(record.confirmations),
            max_outputs: None,
            poll_ms: 250,
        }),
        ..Options::keys_only(&record.network, n, threshold)
    };
    let broker = crate::Broker { url: nats_url, secured: None };
    let mut publics = vec![];
    let mut started = vec![];
    for &v in validators {
        if record.processors().any(|p| p.validator == Some(v)) {
            continue;
        }
        let (files, public) = crate::write_processor(
            &record.dir.clone(),
            &options,
            &broker,
            &record.processor_bin,
            v,
            &coordinator_public,
        )?;
        let child = spawn(&record.processor_bin, &files.config, &files.log, true)?;
        let (config, log) = (files.config.clone(), files.log.clone());
        record_process(
            &mut record,
            Role::Processor,
            Some(v),
            &child,
            Some(&config),
            &log,
            files.http,
        )?;
        publics.push((v, public));
        started.push((v, files.http));
    }
    poll(Duration::from_secs(60), "the new processors' /health", || {
        started
            .iter()
            .all(|(_, http)| http_get(*http, "/health").is_some_and(|(code, _)| code == 200))
            .then_some(())
    })?;
    let session = crate::add_set(
        &coordinator.config,
        &record.network,
        threshold,
        validators,
        &publics,
        close_after,
    )?;
    // coordinator-sim reads its sets at start.
    let sim: Vec<ProcessRecord> =
        record.processes.iter().filter(|p| p.role == Role::CoordinatorSim).cloned().collect();
    let left = record::still_running(&record::stop_all(&sim, GRACE));
    if !left.is_empty() {
        return Err(DevnetError::Failed(format!(
            "coordinator-sim did not stop: {}",
            left.join(", ")
        )));
    }
    record.processes.retain(|p| p.role != Role::CoordinatorSim);
    let log = sim
        .first()
        .map(|p| p.log.clone())
        .unwrap_or_else(|| record.dir.join("coordinator-sim.log"));
    let child = spawn(&record.coordinator_bin, &coordinator.config, &log, true)?;
    record_process(
        &mut record,
        Role::CoordinatorSim,
        None,
        &child,
        Some(&coordinator.config),
        &log,
        coordinator.http,
    )?;
    let index = usize::try_from(session).unwrap_or(usize::MAX);
    let key = poll(Duration::from_secs(180), "the new set's key", || {
        let status: Value = serde_json::from_str(&http_get(coordinator.http, "/status")?.1).ok()?;
        status["sets"][index]["confirmed"]["network_key"].as_str().map(String::from)
    })?;
    let deposit_address = if monero {
        crate::scenario::monero::group_keys(&key)?
            .address(scanner::OutputKind::External)
            .to_string()
    } else {
        chain::deposit_address(&key)?
    };
    record.deposit_address = Some(deposit_address.clone());
    record.validators = record.validators.max(validators.iter().copied().max().unwrap_or(0));
    record.save()?;
    Ok(Rotated { session, started: started.into_iter().map(|(v, _)| v).collect(), deposit_address })
}
