//! `coordinator-sim`: the devnet stand-in for the coordinator and the settlement chain
//! (DESIGN §1, §5). It drives key generation and signing among each configured set's
//! processors, verifies signed Batches, credits them in its ledger, accepts Burns
//! (`POST /burn`) and acknowledges external blocks with them.
//!
//! Guarantees:
//! - All state is in the simulator's own database (`<data_dir>/coordinator-sim.redb`,
//!   schema `tc-coordinator-sim` v3). Each handled message is one write transaction, and
//!   the messages it causes are queued with [`bus::Mailbox::send`] in that transaction, so
//!   a crash at any point loses nothing and sends nothing twice in effect.
//! - Key generation, per set (see [`keygen::KeyGenCoordinator`]): an attempt's round is
//!   relayed only once every participant answered it; a blame is judged with
//!   [`key_gen::dkg::judge`] and its culprit (the accused, or a false accuser) is
//!   excluded; a round silent for `keygen_timeout_ms` after the attempt's start or last
//!   progress is restarted without the silent participants; the key pair is confirmed
//!   (`ConfirmKeyPair` to every participant) only when every participant reported the
//!   same one and the same settings (a participant whose settings differ from the set's
//!   is excluded, named with them: see [`keygen::mismatched_settings`]). A set left with
//!   fewer than `threshold` participants fails, loudly.
//! - Signing, per item (see [`signing::SignCoordinator`]): the signing set of each attempt
//!   is a deterministic choice of `t` key holders ([`signing::signing_set`]); a round is
//!   relayed only once every member answered it; a blame reattempts at once without the
//!   accused, and an attempt without progress for `sign_timeout_ms` reattempts without
//!   the silent members (`Reattempt` to every key holder). A complete item (a verified
//!   signed Batch, a plan reported `Completed`, relayed once to the other key holders) is
//!   never reattempted.
//! - Settlement: a signed Batch changes state only if it verifies under the set's
//!   confirmed Ristretto key. Verified Batches are settled strictly in id order per
//!   network; each one credits its instructions and makes one settlement block, whose
//!   `BlockAcknowledged` carries every burn of the network accepted since the previous
//!   one, in order, exactly once. A burn is refused (changing nothing) unless the
//!   network, address and amount are valid and the balance covers it; an accepted burn
//!   is debited and queued in one transaction.
//! - A second, different message from one sender for one (session, attempt, round) is
//!   counted (`conflicts`), logged as an error, and otherwise ignored. Messages for
//!   unknown sessions or from validators outside the set change nothing.
//! - Startup refuses a config that does not parse, a missing or group/world-readable
//!   identity key file, a database of another application or schema, and a set whose
//!   threshold or validators differ from what the database recorded.
#![deny(missing_docs)]

pub mod client;
pub mod clock;
pub mod config;
pub mod handler;
pub mod http;
pub mod keygen;
pub mod ledger;
pub mod metrics;
pub mod rotation;
pub mod signing;
pub mod state;
pub mod status;

use std::{sync::Arc, time::Duration};

use bus::{BusMetrics, Mailbox, NatsTransport, ReceiverTask, SenderTask, Transport};
use db::{Db, DbError, Schema};
use messages::{Identity, KeyRegistry, Party};
use task::{FatalError, RunConfig, Shutdown, TaskStats, TaskWaker};
use tokio::task::JoinSet;

use crate::{
    clock::{Clock, SystemClock},
    config::{Config, ConfigError, SetConfig},
    handler::{InboxHandler, TimeoutTask},
    http::NamedStats,
    keygen::{KeyGenCoordinator, SimError},
    ledger::Burner,
    metrics::{KeyGenMetrics, SignMetrics},
    signing::SignCoordinator,
};

/// The simulator database's application name and schema version.
/// Version 2: key pairs are recorded with the participant's settings.
pub const SCHEMA: Schema = Schema { app: "tc-coordinator-sim", version: 4 };

/// Why the simulator stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Misconfiguration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The database could not be used.
    #[error(transparent)]
    Db(#[from] DbError),
    /// Key generation could not start.
    #[error(transparent)]
    Sim(#[from] SimError),
    /// The data directory could not be created.
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The broker could not be reached at startup.
    #[error(transparent)]
    Transport(#[from] bus::TransportError),
    /// The HTTP endpoint failed.
    #[error("HTTP endpoint on {listen}: {source}")]
    Http {
        /// The address.
        listen: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A task failed fatally.
    #[error(transparent)]
    Task(#[from] FatalError),
}

pub use service::db_error;

/// Opens the simulator's database, creating the data directory if needed.
pub fn open_db(config: &Config) -> Result<Db, RunError> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|source| RunError::DataDir { path: config.data_dir.clone(), source })?;
    Ok(Db::open(config.db_path(), SCHEMA)?)
}

/// How often the tasks poll.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// Re-publish an unacknowledged message after this.
    pub resend_after: Duration,
    /// How long the receiver waits for a delivery per iteration.
    pub receive_wait: Duration,
    /// Idle poll of the sender and the inbox handler.
    pub idle_poll: Duration,
    /// Tick of the round timer.
    pub timeout_poll: Duration,
}

impl Timing {
    /// The timing for a resend delay and the shortest timeout: the timer ticks at a
    /// quarter of the timeout, between 10 ms and 1 s.
    pub fn new(resend_after: Duration, timeout: Duration) -> Self {
        Timing {
            resend_after,
            receive_wait: Duration::from_millis(500),
            idle_poll: Duration::from_millis(500),
            timeout_poll: (timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(1)),
        }
    }
}

/// What the simulator runs: its sets, its timeouts and the chain of burn addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// The validator sets.
    pub sets: Vec<SetConfig>,
    /// The key-generation round timeout.
    pub keygen_timeout: Duration,
    /// The signing attempt timeout.
    pub sign_timeout: Duration,
    /// How signing sets are chosen.
    pub selection: config::Selection,
    /// `mainnet`, `testnet` or `regtest`.
    pub chain: String,
    /// A rotation's grace period, in external blocks after the successor's activation.
    pub rotation_close_after: u64,
}

impl Settings {
    /// `sets` with the default timeouts (60 s, 30 s) on regtest.
    pub fn new(sets: Vec<SetConfig>) -> Self {
        Settings {
            sets,
            keygen_timeout: Duration::from_secs(60),
            sign_timeout: Duration::from_secs(30),
            selection: config::Selection::Responsive,
            chain: "regtest".into(),
            rotation_close_after: 20,
        }
    }

    /// From a validated config.
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        Ok(Settings {
            sets: config.set_configs()?,
            keygen_timeout: Duration::from_millis(config.keygen_timeout_ms),
            sign_timeout: Duration::from_millis(config.sign_timeout_ms),
            selection: config.signing_selection,
            chain: config.chain.clone(),
            rotation_close_after: config.rotation_close_after,
        })
    }
}

/// The simulator's state and logic, independent of the transport and of HTTP: what the
/// binary runs, and what in-process tests drive.
#[derive(Debug)]
pub struct Sim {
    db: Db,
    keygen: Arc<KeyGenCoordinator>,
    sign: Arc<SignCoordinator>,
    burner: Burner,
    timeout_tick: Duration,
}

impl Sim {
    /// The coordinator over `db`, signing with `identity`, accepting the processors in
    /// `registry`, and running `settings`. Registers its metrics in `metrics`.
    pub fn new(
        db: Db,
        identity: Arc<Identity>,
        registry: KeyRegistry,
        settings: Settings,
        clock: Arc<dyn Clock>,
        metrics: &mut prometheus_client::registry::Registry,
    ) -> Self {
        let bus_metrics = BusMetrics::registered(metrics);
        let mailbox = Mailbox::new(Party::Coordinator, identity, Arc::new(registry), bus_metrics);
        let keygen_metrics = KeyGenMetrics::registered(metrics);
        let sign_metrics = SignMetrics::registered(metrics);
        let Settings { sets, keygen_timeout, sign_timeout, selection, chain, rotation_close_after } =
            settings;
        let burner = Burner::new(chain, sets.iter().map(|s| s.network).collect());
        let sign = SignCoordinator::new(
            sets.clone(),
            mailbox.clone(),
            clock.clone(),
            sign_timeout,
            selection,
            sign_metrics,
        )
        .with_rotation_close_after(rotation_close_after);
        let keygen = KeyGenCoordinator::new(sets, mailbox, clock, keygen_timeout, keygen_metrics)
            .with_rotation_close_after(rotation_close_after);
        Sim {
            db,
            keygen: Arc::new(keygen),
            sign: Arc::new(sign),
            burner,
            timeout_tick: keygen_timeout.min(sign_timeout),
        }
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The key-generation logic.
    pub fn keygen(&self) -> &Arc<KeyGenCoordinator> {
        &self.keygen
    }

    /// The signing and settlement logic.
    pub fn sign(&self) -> &Arc<SignCoordinator> {
        &self.sign
    }

    /// What accepts burns.
    pub fn burner(&self) -> &Burner {
        &self.burner
    }

    /// The shorter of the two timeouts: what the timer's tick is derived from.
    pub fn shortest_timeout(&self) -> Duration {
        self.timeout_tick
    }

    /// Starts key generation for sets the database does not know yet, and gives attempts
    /// whose deadline passed while stopped a full timeout, in one committed transaction
    /// (see [`KeyGenCoordinator::start`], [`SignCoordinator::start`]).
    pub fn start(&self) -> Result<(), SimError> {
        let mut txn = self.db.write()?;
        self.keygen.start(&mut txn)?;
        self.sign.start(&mut txn)?;
        txn.commit()?;
        Ok(())
    }

    /// Spawns the bus sender and receiver, the inbox handler and the round timer into
    /// `tasks`; returns their statistics.
    pub fn spawn<T: Transport>(
        &self,
        transport: T,
        timing: Timing,
        shutdown: &Shutdown,
        tasks: &mut JoinSet<Result<(), FatalError>>,
    ) -> Vec<NamedStats>
    where
        T::Subscription: std::fmt::Debug,
    {
        let mailbox = self.keygen.mailbox().clone();
        let (sender_waker, handler_waker) = (TaskWaker::new(), TaskWaker::new());
        let stats: Vec<NamedStats> = ["bus-sender", "bus-receiver", "inbox-handler", "timeouts"]
            .into_iter()
            .map(|n| (n.to_string(), Arc::new(TaskStats::default())))
            .collect();
        let run_config = RunConfig { idle_poll: timing.idle_poll, ..RunConfig::default() };
        let sender = SenderTask::new(
            self.db.clone(),
            transport.clone(),
            mailbox.clone(),
            timing.resend_after,
        );
        let receiver = ReceiverTask::new(
            self.db.clone(),
            transport,
            mailbox,
            timing.receive_wait,
            handler_waker.clone(),
        );
        tasks.spawn(task::run(
            sender,
            run_config,
            sender_waker.clone(),
            vec![],
            shutdown.clone(),
            stats[0].1.clone(),
        ));
        tasks.spawn(task::run(
            receiver,
            RunConfig { idle_poll: Duration::ZERO, ..run_config },
            TaskWaker::new(),
            vec![],
            shutdown.clone(),
            stats[1].1.clone(),
        ));
        tasks.spawn(task::run(
            InboxHandler::new(self.db.clone(), self.keygen.clone(), self.sign.clone()),
            run_config,
            handler_waker,
            vec![sender_waker.clone()],
            shutdown.clone(),
            stats[2].1.clone(),
        ));
        tasks.spawn(task::run(
            TimeoutTask::new(self.db.clone(), self.keygen.clone(), self.sign.clone()),
            RunConfig { idle_poll: timing.timeout_poll, ..run_config },
            TaskWaker::new(),
            vec![sender_waker],
            shutdown.clone(),
            stats[3].1.clone(),
        ));
        stats
    }
}

/// Runs the simulator until `shutdown` triggers or a task fails fatally.
pub async fn run(config: Config, shutdown: Shutdown) -> Result<(), RunError> {
    let settings = Settings::from_config(&config)?;
    let registry = config.registry()?;
    let identity = Arc::new(config.identity()?);
    let db = open_db(&config)?;
    tracing::info!(version = env!("CARGO_PKG_VERSION"), db = %config.db_path().display(), identity = %hex::encode(identity.public().as_bytes()), sets = settings.sets.len(), chain = %settings.chain, "starting");

    let mut metrics = prometheus_client::registry::Registry::with_prefix("coordinator_sim");
    let sim =
        Sim::new(db.clone(), identity, registry, settings, Arc::new(SystemClock), &mut metrics);
    sim.start()?;

    let nats = config.bus.nats(config::BUS_PASSWORD_ENV)?;
    let transport = NatsTransport::connect(nats).await?;

    // Bind first: a taken port must stop us before any task consumed anything.
    let listen = config.http.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| RunError::Http { listen, source })?;
    let mut tasks = JoinSet::new();
    let timing =
        Timing::new(Duration::from_millis(config.bus.resend_after_ms), sim.shortest_timeout());
    let stats = sim.spawn(transport, timing, &shutdown, &mut tasks);

    let http_state = http::HttpState::new(db, sim.burner().clone(), metrics, stats);
    http::supervise(tasks, listener, http_state, shutdown).await.map_err(|e| match e {
        service::run::Stopped::Task(fatal) => RunError::Task(fatal),
        service::run::Stopped::Http(source) => RunError::Http { listen, source },
    })
}
