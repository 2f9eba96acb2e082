//! The processor daemon, as a library so that tests drive exactly what the binary runs.
//!
//! Guarantees:
//! - Startup refuses, with a message naming what to fix, a config that does not parse, a
//!   secret that is missing or in a file readable by others, and a database of another
//!   application or schema version. Nothing is written before those checks pass.
//! - Secrets are never logged or printed; the identity key is zeroized on drop.
//! - Every task commits once per iteration (see the `task` and `db` crates); a `SIGINT`
//!   or `SIGTERM` stops the tasks between iterations.
#![deny(missing_docs)]

pub mod config;
pub mod halt;
pub mod handler;
pub mod http;
pub mod networks;
pub mod pipeline;
pub mod status;

use std::{sync::Arc, time::Duration};

use bus::{BusMetrics, Mailbox, NatsTransport, ReceiverTask, SenderTask};
use db::{Db, DbError, Schema};
use messages::{KeyRegistry, Party};
use task::{RunConfig, Shutdown, TaskStats, TaskWaker};

use crate::config::{Config, ConfigError};

/// The processor database's application name and schema version.
/// Version 2: the pipeline generic over its network (acknowledgements applied by one
/// task, eventualities checked per applied block; see docs/db-schema.md). Version 3: the
/// pipeline's tables scoped by session (one pipeline per live session, docs/rotation.md).
pub const SCHEMA: Schema = Schema { app: "tc-processor", version: 3 };

/// Why the processor stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Misconfiguration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The database could not be used.
    #[error(transparent)]
    Db(#[from] DbError),
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
    Task(#[from] task::FatalError),
    /// The sealing secret is wrong, or sealed data is corrupt.
    #[error(transparent)]
    Seal(#[from] key_gen::SealError),
    /// Key generation state could not be loaded.
    #[error(transparent)]
    KeyGen(#[from] key_gen::KeyGenError),
    /// The pipeline could not start.
    #[error("pipeline: {0}")]
    Pipeline(String),
    /// A fatal error was recorded by an earlier run (see [`halt`]); nothing was started.
    #[error("{0}")]
    Halted(halt::Halt),
    /// Signal handlers could not be installed.
    #[error("installing signal handlers: {0}")]
    Signals(#[source] std::io::Error),
}

pub use service::db_error;

/// Opens the processor's database, creating the data directory if needed.
pub fn open_db(config: &Config) -> Result<Db, RunError> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|source| RunError::DataDir { path: config.data_dir.clone(), source })?;
    Ok(Db::open(config.db_path(), SCHEMA)?)
}

/// Runs the processor until `shutdown` triggers or a task fails fatally (recorded: later
/// runs refuse to start until `processor resume`, see [`halt`]).
pub async fn run(config: Config, shutdown: Shutdown) -> Result<(), RunError> {
    let me: Party = config.party()?;
    let identity = Arc::new(config.identity()?);
    let db_secret = config.db_secret()?;
    let malice = config.malice()?;
    let mut registry = KeyRegistry::new();
    registry.insert(Party::Coordinator, config.coordinator_key()?);
    let db = open_db(&config)?;
    if let Some(halt) = halt::check(&db)? {
        return Err(RunError::Halted(halt));
    }
    let sealer = Arc::new(key_gen::Sealer::unlock(&db, db_secret.as_bytes())?);
    drop(db_secret);
    let keygen = Arc::new(
        key_gen::KeyGen::open(&db, sealer, config.network()?, config.validator, malice)?
            .with_policy(config.keygen.policy()?),
    );
    if malice != key_gen::Malice::None {
        tracing::warn!(?malice, "TEST MISBEHAVIOUR ENABLED");
    }
    tracing::info!(version = env!("CARGO_PKG_VERSION"), %me, db = %config.db_path().display(), identity = %hex::encode(identity.public().as_bytes()), "starting");

    let mut metrics_registry = prometheus_client::registry::Registry::with_prefix("processor");
    register_build_info(&mut metrics_registry);
    let bus_metrics = BusMetrics::registered(&mut metrics_registry);
    let mailbox = Mailbox::new(me, identity, Arc::new(registry), bus_metrics);

    let nats = config.bus.nats(config::BUS_PASSWORD_ENV)?;
    let transport = NatsTransport::connect(nats).await?;

    let (sender_waker, handler_waker) = (TaskWaker::new(), TaskWaker::new());
    let stats: Vec<(String, Arc<TaskStats>)> =
        ["bus-sender", "bus-receiver", "inbox-handler", "scanner", "acknowledger", "publisher"]
            .into_iter()
            .map(|n| (n.to_string(), Arc::new(TaskStats::default())))
            .collect();
    let run_config = RunConfig { idle_poll: Duration::from_millis(500), ..RunConfig::default() };

    let sender = SenderTask::new(
        db.clone(),
        transport.clone(),
        mailbox.clone(),
        Duration::from_millis(config.bus.resend_after_ms),
    );
    let receiver = ReceiverTask::new(
        db.clone(),
        transport,
        mailbox.clone(),
        Duration::from_millis(500),
        handler_waker.clone(),
    );
    let handler_metrics = handler::HandlerMetrics::default();
    metrics_registry.register(
        "rejected_requests",
        "Coordinator requests refused as invalid (nothing changed)",
        handler_metrics.rejected_requests.clone(),
    );
    // The scanning and signing pipeline, when a node is configured: the one place a
    // network implementation is chosen.
    let wired = match networks::node(&config)? {
        None => None,
        Some(networks::Node::BitcoinFamily(network)) => {
            Some(wire(network, &config, &db, &keygen, &mailbox, &mut metrics_registry)?)
        }
        Some(networks::Node::Monero(network)) => {
            Some(wire(network, &config, &db, &keygen, &mailbox, &mut metrics_registry)?)
        }
    };
    let handle = wired.as_ref().map(|w| w.handle.clone());
    // The handler wakes the sender (replies) and the acknowledgement task (new ones).
    let mut handler_dependents = vec![sender_waker.clone()];
    handler_dependents.extend(wired.as_ref().map(|w| w.ack_waker.clone()));
    let handler = handler::InboxHandler::new(db.clone(), mailbox, keygen, handler_metrics, handle);

    // Bind first: a taken port must stop us before any task consumed anything.
    let listen = config.http.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| RunError::Http { listen, source })?;
    let mut tasks = tokio::task::JoinSet::new();
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
        handler,
        run_config,
        handler_waker,
        handler_dependents,
        shutdown.clone(),
        stats[2].1.clone(),
    ));

    if let Some(wired) = wired {
        let tasks_of = |i: usize| stats[i].1.clone();
        let spawn = TaskSpawn {
            config: RunConfig {
                idle_poll: Duration::from_millis(config.pipeline.poll_ms),
                ..run_config
            },
            dependents: vec![sender_waker.clone()],
            shutdown: shutdown.clone(),
            stats: [tasks_of(3), tasks_of(4), tasks_of(5)],
        };
        (wired.spawn)(&mut tasks, spawn);
    }

    let http_state = http::HttpState::new(
        db.clone(),
        http::ProcessorReporter::new(me.to_string()),
        metrics_registry,
        stats,
    );
    let app = http::router(http_state, db.clone());
    // The first fatal error or panic is recorded once every task has stopped, if the work
    // that met it stays queued (see `halt`).
    let record = |first: &task::FatalError, panicked: bool| {
        if halt::halts(&*first.source, panicked) {
            halt::record(&db, &first.task, &task::error_chain(&*first.source));
        }
    };
    let stopped = service::run::supervise_recording(tasks, listener, app, shutdown, record).await;
    stopped.map_err(|e| match e {
        service::run::Stopped::Task(fatal) => RunError::Task(fatal),
        service::run::Stopped::Http(source) => RunError::Http { listen, source },
    })
}

/// How the pipeline's tasks run.
#[derive(Debug)]
pub struct TaskSpawn {
    /// The runner's settings (idle poll: the node polling interval).
    pub config: RunConfig,
    /// Woken after progress (the bus sender).
    pub dependents: Vec<TaskWaker>,
    /// Stops them.
    pub shutdown: Shutdown,
    /// The scanner's, acknowledger's and publisher's statistics.
    pub stats: [Arc<TaskStats>; 3],
}

type Tasks = tokio::task::JoinSet<Result<(), task::FatalError>>;

/// Spawns the pipeline's tasks.
type Spawn = Box<dyn FnOnce(&mut Tasks, TaskSpawn) + Send>;

/// A pipeline wired to the handler, with its tasks ready to spawn.
struct Wired {
    handle: Arc<dyn pipeline::Handle>,
    ack_waker: TaskWaker,
    spawn: Spawn,
}

/// Builds the pipeline over `network` (generic: everything below is the same for every
/// network).
fn wire<N: pipeline::PipelineNetwork>(
    network: N,
    config: &Config,
    db: &Db,
    keygen: &Arc<key_gen::KeyGen>,
    mailbox: &Mailbox,
    registry: &mut prometheus_client::registry::Registry,
) -> Result<Wired, RunError> {
    handler::backfill_active(db, config.validator)
        .map_err(|e| RunError::Pipeline(e.to_string()))?;
    handler::check_settings(db, &pipeline::settings_of(scanner::Network::params(&network)))
        .map_err(RunError::Pipeline)?;
    let metrics = pipeline::PipelineMetrics::default();
    metrics.register(registry);
    let base = pipeline::Pipeline {
        // Each live session's pipeline is this one with its own session and signers.
        session: u32::MAX,
        network: Arc::new(network),
        keygen: keygen.clone(),
        signers: Arc::new(std::sync::Mutex::new(None)),
        mailbox: mailbox.clone(),
        window: config.pipeline.window,
        validator: config.validator,
        metrics,
        proposal: Arc::default(),
    };
    // A session that retired before a restart may have left state its tasks had not
    // deleted yet.
    pipeline::rotation::prune_retired(db).map_err(|e| RunError::Pipeline(e.to_string()))?;
    let pipelines =
        pipeline::Pipelines::load(base, db).map_err(|e| RunError::Pipeline(e.to_string()))?;
    let db = db.clone();
    let handle: Arc<dyn pipeline::Handle> = Arc::new(pipelines.clone());
    let ack_waker = TaskWaker::new();
    let waker = ack_waker.clone();
    let spawn = move |tasks: &mut Tasks, s: TaskSpawn| {
        use pipeline::{acknowledge::AckTask, publish::PublishTask, scan::ScanTask, PerSession};
        let [scan_stats, ack_stats, publish_stats] = s.stats;
        let ack_waker = waker;
        // The scanner wakes the acknowledger (Batches it waits for) and the sender.
        let mut scan_dependents = s.dependents.clone();
        scan_dependents.push(ack_waker.clone());
        tasks.spawn(task::run(
            PerSession::<N, ScanTask<N>>::new("scanner", db.clone(), pipelines.clone()),
            s.config,
            TaskWaker::new(),
            scan_dependents,
            s.shutdown.clone(),
            scan_stats,
        ));
        tasks.spawn(task::run(
            PerSession::<N, AckTask<N>>::new("acknowledger", db.clone(), pipelines.clone()),
            s.config,
            ack_waker,
            s.dependents.clone(),
            s.shutdown.clone(),
            ack_stats,
        ));
        tasks.spawn(task::run(
            PerSession::<N, PublishTask<N>>::new("publisher", db, pipelines),
            s.config,
            TaskWaker::new(),
            s.dependents,
            s.shutdown,
            publish_stats,
        ));
    };
    Ok(Wired { handle, ack_waker, spawn: Box::new(spawn) })
}

/// `processor_build_info{version="…"} 1`: which build answers.
fn register_build_info(registry: &mut prometheus_client::registry::Registry) {
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;
    let info: Family<Vec<(String, String)>, Gauge> = Family::default();
    info.get_or_create(&vec![("version".to_string(), env!("CARGO_PKG_VERSION").to_string())])
        .set(1);
    registry.register("build_info", "The processor's version (always 1)", info);
}
