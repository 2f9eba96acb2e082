//! A local network of real processes: `nats-server -js`, `coordinator-sim` and `n`
//! processors, each with its own data directory, config file, identity key and sealing
//! secret, under one working directory with a log file per process.
//!
//! The end-to-end tests use a [`Cluster`], whose processes are killed when it is dropped.
//! `devnet up` ([`commands`]) starts the same [`Layout`] detached, records every process in
//! `devnet.json`, and leaves it running until `devnet down`.
#![deny(missing_docs)]

pub mod chain;
pub mod commands;
pub mod metrics_doc;
pub mod monero_node;
pub mod progress;
pub mod record;
pub mod scenario;
pub mod wallet_rpc;

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use bus::testing::{free_port, NatsServer};
use processor::status::StatusReport;

/// Why the cluster could not be set up or queried.
#[derive(Debug, thiserror::Error)]
pub enum DevnetError {
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// A command failed.
    #[error("{what} failed: {stderr}")]
    Command {
        /// The command.
        what: String,
        /// Its standard error.
        stderr: String,
    },
    /// A status output did not parse.
    #[error("unexpected output of {what}: {source}")]
    Output {
        /// The command.
        what: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The node refused or failed an RPC call.
    #[error("{what}: {source}")]
    Rpc {
        /// The call.
        what: String,
        /// Why.
        #[source]
        source: bitcoin_network::rpc::RpcError,
    },
    /// No devnet is recorded in the directory.
    #[error("no devnet is up in {} (no devnet.json there): start one with `devnet up`", .0.display())]
    NotUp(PathBuf),
    /// Waited too long.
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(Duration, String),
    /// The scenario could not go on.
    #[error("{0}")]
    Failed(String),
}

pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> DevnetError {
    let what = what.into();
    move |source| DevnetError::Io { what, source }
}

/// The directory holding this build's binaries (`target/<profile>`), derived from the
/// running executable (a test binary lives in `target/<profile>/deps`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.parent().map(Path::to_path_buf).unwrap_or(dir)
    } else {
        dir
    }
}

/// The path of one of the workspace's binaries, built (in this build's profile) once per
/// process: cargo does nothing when it is up to date, and a stale binary left by an
/// earlier build would test old code.
pub fn binary(name: &str) -> Result<PathBuf, DevnetError> {
    static BUILT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let dir = bin_dir();
    let path = dir.join(name);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    // `scripts/devnet` builds every binary in one cargo invocation first; building one
    // package alone again could pick other features and rebuild everything.
    let prebuilt = std::env::var_os("TC_DEVNET_PREBUILT").is_some() && path.exists();
    if !prebuilt && !built.iter().any(|b| b == name) {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        // Every binary of the workspace lives in the package `tc-<name>`.
        cmd.args(["build", "-p", &format!("tc-{name}"), "--bin", name]);
        // What `cargo test` sets for the test binary is not build configuration, but
        // build scripts that watch such variables (ring's watches CARGO_MANIFEST_DIR)
        // would see a change, and each build from a test and from the shell would
        // rebuild half the workspace for the other.
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            let set_by_cargo = ["CARGO_PKG_", "CARGO_BIN_EXE_"].iter().any(|p| key.starts_with(p))
                || [
                    "CARGO_MANIFEST_DIR",
                    "CARGO_MANIFEST_PATH",
                    "CARGO_CRATE_NAME",
                    "CARGO_PRIMARY_PACKAGE",
                    "CARGO_TARGET_TMPDIR",
                    "CARGO_MAKEFLAGS",
                ]
                .contains(&key.as_ref());
            if set_by_cargo {
                cmd.env_remove(key.as_ref());
            }
        }
        if dir.ends_with("release") {
            cmd.arg("--release");
        }
        let out = cmd.output().map_err(io(format!("building {name}")))?;
        if !out.status.success() {
            return Err(DevnetError::Command {
                what: format!("cargo build --bin {name}"),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        built.push(name.to_string());
    }
    Ok(path)
}

/// Runs `<bin> status --json --config <config>` and parses its output.
fn json_status<T: serde::de::DeserializeOwned>(
    bin: &Path,
    config: &Path,
    what: String,
) -> Result<T, DevnetError> {
    // The config may carry `[testing] malice` (see `spawn`): a release build reads it only
    // with the variable set.
    let out = Command::new(bin)
        .args(["status", "--json", "--config"])
        .arg(config)
        .env(processor::config::TESTING_MALICE_ENV, "1")
        .output()
        .map_err(io(what.clone()))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        return Err(DevnetError::Command { what, stderr });
    }
    serde_json::from_slice(&out.stdout).map_err(|source| DevnetError::Output { what, source })
}

pub use bus::testing::http_get;

fn write_secret(path: &Path, contents: &str) -> Result<(), DevnetError> {
    std::fs::write(path, contents).map_err(io(format!("writing {}", path.display())))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(io(format!("chmod {}", path.display())))
}

fn new_identity(bin: &Path, out: &Path) -> Result<String, DevnetError> {
    let output = Command::new(bin)
        .args(["new-identity", "--out"])
        .arg(out)
        .output()
        .map_err(io("creating an identity"))?;
    if !output.status.success() {
        return Err(DevnetError::Command {
            what: format!("{} new-identity", bin.display()),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// What to start.
#[derive(Clone, Debug)]
pub struct Options {
    /// `bitcoin`, `litecoin`, `monero` or `ethereum`.
    pub network: String,
    /// Processors (validators 1..=n).
    pub n: u16,
    /// Signers needed.
    pub threshold: u16,
    /// `[testing] malice` per validator (honoured in any build profile: see [`spawn`]).
    pub malice: Vec<(u16, String)>,
    /// coordinator-sim's key-generation round timeout.
    pub keygen_timeout: Duration,
    /// The network's node, for the scanning and signing pipeline (none: keys only).
    pub node: Option<NodeOptions>,
    /// Extra top-level lines for coordinator-sim's config (e.g. `sign_timeout_ms = 5000`).
    pub coordinator_extra: String,
    /// Where the processes' HTTP endpoints listen.
    pub listen: Listen,
}

/// Where the processes' HTTP endpoints (`/metrics`, `/health`, `/status`) listen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Listen {
    /// Free loopback ports, picked when the configs are written: every process on this
    /// machine.
    #[default]
    Loopback,
    /// Every interface, at each binary's default port (processor `9100 + validator - 1`,
    /// coordinator-sim 9200): one process per host or container (`devnet layout`).
    Everywhere,
}

impl Listen {
    fn processor(self, validator: u16) -> (&'static str, u16) {
        match self {
            Listen::Loopback => ("127.0.0.1", free_port()),
            Listen::Everywhere => ("0.0.0.0", 9100 + validator - 1),
        }
    }

    fn coordinator(self) -> (&'static str, u16) {
        match self {
            Listen::Loopback => ("127.0.0.1", free_port()),
            Listen::Everywhere => ("0.0.0.0", 9200),
        }
    }
}

/// The processors' `[node]` table.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// `regtest`, `testnet` or `mainnet`.
    pub chain: String,
    /// The node's RPC URL (REST on the same port).
    pub rpc_url: String,
    /// The node's cookie file (Bitcoin family; monerod has none).
    pub cookie_file: Option<PathBuf>,
    /// Confirmations override.
    pub confirmations: Option<u64>,
    /// Output limit override (lowered to exercise payment trees).
    pub max_outputs: Option<usize>,
    /// The scanner's idle poll, in ms.
    pub poll_ms: u64,
}

impl NodeOptions {
    /// A regtest `node` the tests started, at `confirmations`, the processors' other
    /// settings their defaults, polled every 200 ms.
    pub fn regtest(node: &bitcoin_network::testing::node::Node, confirmations: u64) -> Self {
        NodeOptions {
            chain: "regtest".into(),
            rpc_url: node.rpc().url(),
            cookie_file: Some(node.datadir().join("regtest").join(".cookie")),
            confirmations: Some(confirmations),
            max_outputs: None,
            poll_ms: 200,
        }
    }
}

impl Options {
    /// Key generation only, with the defaults the tests use.
    pub fn keys_only(network: &str, n: u16, threshold: u16) -> Options {
        Options {
            network: network.into(),
            n,
            threshold,
            malice: vec![],
            keygen_timeout: Duration::from_secs(60),
            node: None,
            coordinator_extra: String::new(),
            listen: Listen::Loopback,
        }
    }
}

/// The `[node]` and `[pipeline]` tables of a processor config for `node`.
pub fn node_table(node: &NodeOptions) -> String {
    let mut out = format!("\n[node]\nchain = \"{}\"\nrpc_url = \"{}\"\n", node.chain, node.rpc_url);
    if let Some(cookie) = &node.cookie_file {
        out += &format!("rpc_cookie_file = \"{}\"\n", cookie.display());
    }
    if let Some(c) = node.confirmations {
        out += &format!("confirmations = {c}\n");
    }
    if let Some(m) = node.max_outputs {
        out += &format!("max_outputs = {m}\n");
    }
    out += &format!("\n[pipeline]\npoll_ms = {}\n", node.poll_ms);
    out
}

/// One processor's files, as [`Layout::write`] made them.
#[derive(Clone, Debug)]
pub struct ProcessorFiles {
    /// Its validator index.
    pub validator: u16,
    /// Its home: identity key, sealing secret, config, data dir and log.
    pub home: PathBuf,
    /// Its config file.
    pub config: PathBuf,
    /// Its HTTP port.
    pub http: u16,
    /// Its log file.
    pub log: PathBuf,
}

/// Every config file, identity key and sealing secret of a network, under one directory:
/// `processor-<network>-<v>/{identity.key,db.secret,processor.toml,data/,processor.log}`
/// per validator, and `coordinator.key`, `coordinator-sim.toml`, `coordinator-sim/` and
/// `coordinator-sim.log`. Both the [`Cluster`] of the tests and `devnet up` start their
/// processes from one.
#[derive(Clone, Debug)]
pub struct Layout {
    /// The working directory.
    pub dir: PathBuf,
    /// The processors, by validator order.
    pub processors: Vec<ProcessorFiles>,
    /// coordinator-sim's config file.
    pub coordinator_config: PathBuf,
    /// coordinator-sim's log file.
    pub coordinator_log: PathBuf,
    /// coordinator-sim's HTTP port (`/status`, `/ledger`, `/burn`, `/metrics`).
    pub coordinator_http: u16,
    /// coordinator-sim's public identity key (hex), pinned in every processor's config.
    pub coordinator_public: String,
    /// Each processor's public identity key (hex), by validator.
    pub publics: Vec<(u16, String)>,
}

/// How the processes reach the broker: its URL and, for a secured broker, the user, the
/// password file and the CA its certificate chains to.
#[derive(Clone, Debug)]
pub struct Broker {
    /// The broker's URL.
    pub url: String,
    /// Set for a broker that requires TLS and a user and password.
    pub secured: Option<bus::testing::Secured>,
}

impl Broker {
    /// The `[bus]` table's connection lines for this broker.
    fn bus_lines(&self) -> String {
        let mut lines = format!("nats_url = \"{}\"\n", self.url);
        if let Some(s) = &self.secured {
            lines += &format!(
                "user = \"{}\"\npassword_file = \"{}\"\ntls_ca_file = \"{}\"\n",
                s.user,
                s.password_file.display(),
                s.ca_file.display()
            );
        }
        lines
    }
}

/// Adds the next set of `network`, `threshold`-of-`validators`, to coordinator-sim's
/// config file `config`, with the rotation's grace period `close_after` (a top-level
/// key): how an operator elects a set. `publics` gives each validator's identity key
/// (those of validators already in the config are read from it). Returns the new set's
/// session. coordinator-sim reads it when it is restarted.
pub fn add_set(
    config: &Path,
    network: &str,
    threshold: u16,
    validators: &[u16],
    publics: &[(u16, String)],
    close_after: u64,
) -> Result<u32, DevnetError> {
    let text = std::fs::read_to_string(config).map_err(io("reading the coordinator-sim config"))?;
    let session = u32::try_from(text.matches("[[sets]]").count()).unwrap_or(u32::MAX);
    let known = configured_publics(&text);
    let mut entries = String::new();
    for v in validators {
        let public = publics
            .iter()
            .chain(known.iter())
            .find(|(p, _)| p == v)
            .map(|(_, k)| k.clone())
            .ok_or_else(|| DevnetError::Failed(format!("no identity key for validator {v}")))?;
        entries += &set_entry(*v, &public);
    }
    // Top-level keys come before every table.
    let kept: Vec<&str> = text.lines().filter(|l| !l.starts_with("rotation_close_after")).collect();
    let text = format!(
        "rotation_close_after = {close_after}\n{}\n\n[[sets]]\nnetwork = \"{network}\"\nsession = {session}\nthreshold = {threshold}\n{entries}",
        kept.join("\n"),
    );
    std::fs::write(config, text).map_err(io("writing the coordinator-sim config"))?;
    Ok(session)
}

/// The `(validator, public_key)` of every `[[sets.processors]]` entry of a coordinator-sim
/// config (as [`set_entry`] writes them).
fn configured_publics(config: &str) -> Vec<(u16, String)> {
    let mut out = vec![];
    let mut validator = None;
    for line in config.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("validator = ") {
            validator = v.parse::<u16>().ok();
        } else if let Some(k) = line.strip_prefix("public_key = ") {
            if let Some(v) = validator.take() {
                out.push((v, k.trim_matches('"').to_string()));
            }
        }
    }
    out
}

/// A `[[sets.processors]]` entry of coordinator-sim's config.
fn set_entry(validator: u16, public: &str) -> String {
    format!("\n[[sets.processors]]\nvalidator = {validator}\npublic_key = \"{public}\"\n")
}

/// Creates validator `validator`'s identity and sealing secret and writes its config under
/// `dir`; returns its files and its public identity key.
pub fn write_processor(
    dir: &Path,
    options: &Options,
    broker: &Broker,
    processor_bin: &Path,
    validator: u16,
    coordinator_public: &str,
) -> Result<(ProcessorFiles, String), DevnetError> {
    let namespace = "devnet";
    let home = dir.join(format!("processor-{}-{validator}", options.network));
    std::fs::create_dir_all(&home).map_err(io("creating a processor directory"))?;
    let key = home.join("identity.key");
    let public = new_identity(processor_bin, &key)?;
    let secret = home.join("db.secret");
    write_secret(&secret, &format!("devnet sealing secret of validator {validator}"))?;
    let (host, http) = options.listen.processor(validator);
    let malice = options
        .malice
        .iter()
        .find(|(v, _)| *v == validator)
        .map(|(_, m)| format!("\n[testing]\nmalice = \"{m}\"\n"))
        .unwrap_or_default();
    let config = home.join("processor.toml");
    std::fs::write(
        &config,
        format!(
            "network = \"{network}\"\nvalidator = {validator}\ndata_dir = \"{data}\"\n\n\
             [bus]\n{bus}namespace = \"{namespace}\"\nresend_after_ms = 1000\nack_wait_ms = 5000\n\n\
             [coordinator]\npublic_key = \"{coordinator_public}\"\n\n\
             [secrets]\nidentity_key_file = \"{key}\"\ndb_secret_file = \"{secret}\"\n\n\
             [http]\nlisten = \"{host}:{http}\"\n{malice}{node}",
            network = options.network,
            data = home.join("data").display(),
            bus = broker.bus_lines(),
            key = key.display(),
            secret = secret.display(),
            node = options.node.as_ref().map(node_table).unwrap_or_default(),
        ),
    )
    .map_err(io("writing a processor config"))?;
    let files = ProcessorFiles { validator, log: home.join("processor.log"), home, config, http };
    Ok((files, public))
}

impl Layout {
    /// Creates the identities and secrets and writes the configs under `dir` (which must
    /// not hold an earlier layout: identity files are never overwritten), for `broker`.
    /// Ports are free loopback ports picked now.
    pub fn write(
        dir: &Path,
        options: &Options,
        broker: &Broker,
        processor_bin: &Path,
        coordinator_bin: &Path,
    ) -> Result<Layout, DevnetError> {
        let namespace = "devnet";
        let coordinator_key = dir.join("coordinator.key");
        let coordinator_public = new_identity(coordinator_bin, &coordinator_key)?;

        let mut processors = vec![];
        let mut publics = vec![];
        let mut set_entries = String::new();
        for validator in 1..=options.n {
            let (files, public) = write_processor(
                dir,
                options,
                broker,
                processor_bin,
                validator,
                &coordinator_public,
            )?;
            set_entries += &set_entry(validator, &public);
            publics.push((validator, public));
            processors.push(files);
        }

        let coordinator_config = dir.join("coordinator-sim.toml");
        let (coordinator_host, coordinator_http) = options.listen.coordinator();
        std::fs::write(
            &coordinator_config,
            format!(
                "data_dir = \"{data}\"\nkeygen_timeout_ms = {timeout}\n{extra}\n\
                 [bus]\n{bus}namespace = \"{namespace}\"\nresend_after_ms = 1000\nack_wait_ms = 5000\n\n\
                 [secrets]\nidentity_key_file = \"{key}\"\n\n\
                 [http]\nlisten = \"{host}:{http}\"\n\n\
                 [[sets]]\nnetwork = \"{network}\"\nsession = 0\nthreshold = {t}\n{set_entries}",
                data = dir.join("coordinator-sim").display(),
                timeout = options.keygen_timeout.as_millis(),
                bus = broker.bus_lines(),
                key = coordinator_key.display(),
                host = coordinator_host,
                http = coordinator_http,
                network = options.network,
                t = options.threshold,
                extra = options.coordinator_extra,
            ),
        )
        .map_err(io("writing the coordinator-sim config"))?;
        Ok(Layout {
            coordinator_public,
            publics,
            dir: dir.to_path_buf(),
            processors,
            coordinator_log: dir.join("coordinator-sim.log"),
            coordinator_config,
            coordinator_http,
        })
    }

    /// Waits until every processor answers `/health` with 200. coordinator-sim starts key
    /// generation when it starts, so it is started after this: timings then measure the
    /// protocol, not process start-up.
    pub fn wait_healthy(&self, timeout: Duration) -> Result<(), DevnetError> {
        poll(timeout, "every processor's /health", || {
            self.processors
                .iter()
                .all(|p| http_get(p.http, "/health").is_some_and(|(code, _)| code == 200))
                .then_some(())
        })
    }
}

/// Polls `f` every 100 ms until it returns `Some`, for at most `timeout`.
pub fn poll<T>(
    timeout: Duration,
    what: &str,
    mut f: impl FnMut() -> Option<T>,
) -> Result<T, DevnetError> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = f() {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            return Err(DevnetError::Timeout(timeout, what.to_string()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One processor process and its files.
#[derive(Debug)]
pub struct ProcessorNode {
    /// Its validator index.
    pub validator: u16,
    /// Its config file.
    pub config: PathBuf,
    /// Its HTTP port.
    pub http: u16,
    /// Its log file.
    pub log: PathBuf,
    child: Option<Child>,
}

/// A running network.
#[derive(Debug)]
pub struct Cluster {
    /// The working directory (removed when the cluster is dropped).
    pub dir: tempfile::TempDir,
    /// The broker.
    pub nats: NatsServer,
    /// The processors, by validator order.
    pub processors: Vec<ProcessorNode>,
    /// coordinator-sim's config file.
    pub coordinator_config: PathBuf,
    /// coordinator-sim's log file.
    pub coordinator_log: PathBuf,
    /// coordinator-sim's HTTP port (`/status`, `/metrics`).
    pub coordinator_http: u16,
    coordinator: Option<Child>,
    processor_bin: PathBuf,
    coordinator_bin: PathBuf,
    /// What new processors are configured from (a set elected later: [`Cluster::elect`]).
    options: Options,
    broker: Broker,
    coordinator_public: String,
    publics: Vec<(u16, String)>,
}

/// Starts `<bin> run --config <config>` with its standard error appended to `log`.
/// A `detached` process runs in a process group of its own: it outlives the caller, and
/// a terminal's Ctrl-C to the caller does not reach it (`devnet up`).
pub fn spawn(bin: &Path, config: &Path, log: &Path, detached: bool) -> Result<Child, DevnetError> {
    let mut command = Command::new(bin);
    command.arg("run").arg("--config").arg(config);
    // A devnet is a test network: `[testing] malice`, where a cluster's options set it,
    // is honoured whatever the build profile (processors without it are unaffected).
    command.env(processor::config::TESTING_MALICE_ENV, "1");
    spawn_logged(command, log, detached)
}

/// Starts `command` with standard input and output closed and standard error appended to
/// `log` (see [`spawn`] for `detached`).
pub fn spawn_logged(
    mut command: Command,
    log: &Path,
    detached: bool,
) -> Result<Child, DevnetError> {
    use std::os::unix::process::CommandExt;
    let log_file = std::fs::File::options()
        .create(true)
        .append(true)
        .open(log)
        .map_err(io(format!("opening {}", log.display())))?;
    if detached {
        command.process_group(0);
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .map_err(io(format!("starting {}", command.get_program().to_string_lossy())))
}

impl Cluster {
    /// Writes every config and key, and starts nats-server, the processors and
    /// coordinator-sim (which starts key generation).
    pub fn start(options: &Options) -> Result<Cluster, DevnetError> {
        let processor_bin = binary("processor")?;
        let coordinator_bin = binary("coordinator-sim")?;
        let dir = tempfile::Builder::new()
            .prefix("devnet-")
            .tempdir()
            .map_err(io("creating the working directory"))?;
        // Secured as in production: TLS (a test CA) and a user and password.
        let nats = NatsServer::start_secured();
        let broker = Broker { url: nats.url(), secured: nats.secured.clone() };
        let layout = Layout::write(dir.path(), options, &broker, &processor_bin, &coordinator_bin)?;
        let mut cluster = Cluster {
            processors: layout
                .processors
                .iter()
                .map(|p| ProcessorNode {
                    validator: p.validator,
                    config: p.config.clone(),
                    http: p.http,
                    log: p.log.clone(),
                    child: None,
                })
                .collect(),
            coordinator_config: layout.coordinator_config.clone(),
            coordinator_log: layout.coordinator_log.clone(),
            coordinator_http: layout.coordinator_http,
            dir,
            nats,
            coordinator: None,
            processor_bin,
            coordinator_bin,
            options: options.clone(),
            broker,
            coordinator_public: layout.coordinator_public.clone(),
            publics: layout.publics.clone(),
        };
        for i in 0..cluster.processors.len() {
            cluster.start_processor(cluster.processors[i].validator)?;
        }
        layout.wait_healthy(Duration::from_secs(60))?;
        cluster.coordinator = Some(spawn(
            &cluster.coordinator_bin,
            &cluster.coordinator_config,
            &cluster.coordinator_log,
            false,
        )?);
        Ok(cluster)
    }

    /// Elects the network's next set, `threshold`-of-`validators`, as an operator would
    /// (docs/operations.md, "Rotating to a new set"): a validator without a processor yet
    /// gets one (new identity, secret and config, started and healthy), the set is added
    /// to coordinator-sim's config with the next session and the rotation's grace period
    /// `close_after` (blocks), and coordinator-sim is restarted: it generates the set's
    /// key, and once it is confirmed the current set hands over. Returns the new session.
    pub fn elect(
        &mut self,
        threshold: u16,
        validators: &[u16],
        close_after: u64,
    ) -> Result<u32, DevnetError> {
        for &validator in validators {
            if self.processors.iter().any(|p| p.validator == validator) {
                continue;
            }
            let (files, public) = write_processor(
                self.dir.path(),
                &self.options,
                &self.broker,
                &self.processor_bin,
                validator,
                &self.coordinator_public,
            )?;
            self.publics.push((validator, public));
            self.processors.push(ProcessorNode {
                validator,
                config: files.config,
                http: files.http,
                log: files.log,
                child: None,
            });
            self.start_processor(validator)?;
        }
        poll(Duration::from_secs(60), "the new processors' /health", || {
            validators
                .iter()
                .filter_map(|v| self.processors.iter().find(|p| p.validator == *v))
                .all(|p| http_get(p.http, "/health").is_some_and(|(code, _)| code == 200))
                .then_some(())
        })?;
        let session = add_set(
            &self.coordinator_config,
            &self.options.network,
            threshold,
            validators,
            &self.publics,
            close_after,
        )?;
        self.restart_coordinator()?;
        Ok(session)
    }

    /// SIGKILLs coordinator-sim (crash-safe, as every process here) and starts it again.
    pub fn restart_coordinator(&mut self) -> Result<(), DevnetError> {
        if let Some(mut child) = self.coordinator.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.coordinator = Some(spawn(
            &self.coordinator_bin,
            &self.coordinator_config,
            &self.coordinator_log,
            false,
        )?);
        Ok(())
    }

    fn node(&mut self, validator: u16) -> &mut ProcessorNode {
        self.processors.iter_mut().find(|p| p.validator == validator).expect("no such validator")
    }

    /// Starts (or restarts) a processor.
    pub fn start_processor(&mut self, validator: u16) -> Result<(), DevnetError> {
        let bin = self.processor_bin.clone();
        let node = self.node(validator);
        node.child = Some(spawn(&bin, &node.config, &node.log, false)?);
        Ok(())
    }

    /// SIGKILLs a processor (as a crash would).
    pub fn kill_processor(&mut self, validator: u16) {
        if let Some(mut child) = self.node(validator).child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether a processor's process is still running.
    pub fn processor_running(&mut self, validator: u16) -> bool {
        match self.node(validator).child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// `processor status --json` of one processor.
    pub fn processor_status(&self, validator: u16) -> Result<StatusReport, DevnetError> {
        let node =
            self.processors.iter().find(|p| p.validator == validator).expect("no such validator");
        json_status(&self.processor_bin, &node.config, format!("processor {validator} status"))
    }

    /// `coordinator-sim status --json`.
    pub fn coordinator_status(&self) -> Result<serde_json::Value, DevnetError> {
        json_status(
            &self.coordinator_bin,
            &self.coordinator_config,
            "coordinator-sim status".into(),
        )
    }

    /// coordinator-sim's `/status` over HTTP (fast enough to poll in a tight loop); `None`
    /// while it is not answering.
    pub fn coordinator_http_status(&self) -> Option<serde_json::Value> {
        serde_json::from_str(&http_get(self.coordinator_http, "/status")?.1).ok()
    }

    /// Polls `f` every 100 ms until it returns `Some`, for at most `timeout`.
    pub fn wait_for<T>(
        &mut self,
        timeout: Duration,
        what: &str,
        mut f: impl FnMut(&mut Self) -> Option<T>,
    ) -> Result<T, DevnetError> {
        poll(timeout, what, || f(self))
    }

    /// The last lines of every log, for a failing test's message.
    pub fn logs_tail(&self, lines: usize) -> String {
        let mut out = String::new();
        let tail = |path: &Path| {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        };
        out += &format!("--- coordinator-sim ---\n{}\n", tail(&self.coordinator_log));
        for p in &self.processors {
            out += &format!("--- processor {} ---\n{}\n", p.validator, tail(&p.log));
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for p in &mut self.processors {
            if let Some(mut child) = p.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if let Some(mut child) = self.coordinator.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Why the processors would refuse a `threshold`-of-`validators` set, if they would: the
/// threshold must be at most `validators`, and satisfy the processors' default key
/// generation policy (at least 2, and more than half of the validators).
pub fn threshold_refused(threshold: u16, validators: u16) -> Option<String> {
    if threshold == 0 || threshold > validators {
        return Some("need 1 <= --threshold <= --validators".into());
    }
    let policy = match processor::config::KeyGenConfig::default().policy() {
        Ok(policy) => policy,
        Err(e) => return Some(e.to_string()),
    };
    policy
        .check(threshold, usize::from(validators))
        .err()
        .map(|e| format!("--threshold {threshold} of {validators}: {e}"))
}
