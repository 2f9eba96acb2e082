//! A whole network in one process, stepped deterministically: the real coordinator-sim
//! ([`Sim`]: key generation, signing sets, settlement, ledger) and `n` processors running
//! the real pipeline tasks over the in-memory chain ([`memory_network`]), each with its
//! own redb database on disk. Messages move between the parties' outboxes and inboxes
//! through their real [`Mailbox`]es (signed envelopes, sequence numbers, end-to-end acks);
//! only the broker is replaced by direct delivery, in a fixed order.
//!
//! Every commit of a processor's database is a *commit point* (counted by the `db`
//! crate's fault injection, whatever task or delivery made it). A processor can be
//! crashed right after any given commit point: its database refuses everything after
//! that commit (so nothing the crashed code does next reaches the file), then every
//! in-memory object is dropped, the database opened again and the tasks rebuilt.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bus::{BusMetrics, Mailbox, Receipt};
use coordinator_sim::clock::ManualClock;
pub use coordinator_sim::config::Selection;
use coordinator_sim::config::SetConfig;
use coordinator_sim::handler::{InboxHandler as SimHandler, TimeoutTask};
use coordinator_sim::ledger::{BurnRequest, Burner};
use coordinator_sim::{Settings, Sim};
use db::Db;
use key_gen::{KeyGen, Malice, Sealer};
use memory_network::{Chain, MemoryNetwork};
use messages::{Identity, KeyRegistry, Party};
use primitives::{Amount, ExternalAddress, InInstruction, NetworkId, SettlementAccount};
use processor::handler::InboxHandler;
use processor::pipeline::acknowledge::AckTask;
use processor::pipeline::publish::PublishTask;
use processor::pipeline::scan::ScanTask;
use processor::pipeline::state::{PlanRecord, ACTIVE, LIVE, PLANS, SCANNED};
use processor::pipeline::{Handle, PerSession, Pipeline, PipelineMetrics, Pipelines};
use rand_core::OsRng;
use scanner::{NetworkParams, OutputKind};
use task::{Task, TaskError};

/// The network every set here runs on (the burner accepts its regtest addresses).
pub const NETWORK: NetworkId = NetworkId::Litecoin;
const SECRET: &[u8] = b"a long enough sealing secret";

/// Chain parameters for the tests: small limits, so that payment trees form.
pub fn params(confirmations: u64, max_outputs: usize) -> NetworkParams {
    NetworkParams {
        network: NETWORK,
        confirmations,
        max_inputs: 8,
        max_outputs,
        dust: Amount(10_000),
        min_fee_rate: 10_000,
        max_fee_rate: 1_000_000,
        max_money: 84_000_000 * 100_000_000,
    }
}

/// One processor: everything in memory is rebuilt from its database on reload.
pub struct Processor {
    pub validator: u16,
    /// Its pipeline's metrics (shared with its tasks).
    pub metrics: PipelineMetrics,
    malice: Malice,
    /// Parameters of its own, unlike the chain's (a misconfigured operator).
    params: Option<NetworkParams>,
    /// Its operator's key-generation policy (the default if `None`).
    pub policy: Option<key_gen::KeyGenPolicy>,
    /// Run without a `[node]` (keys only): the handler has no pipeline, and the pipeline
    /// tasks do not run.
    pub keys_only: bool,
    path: PathBuf,
    identity: Arc<Identity>,
    registry: Arc<KeyRegistry>,
    pub db: Db,
    pub mailbox: Mailbox,
    pub handler: InboxHandler,
    pub scan: PerSession<MemoryNetwork, ScanTask<MemoryNetwork>>,
    pub ack: PerSession<MemoryNetwork, AckTask<MemoryNetwork>>,
    pub publish: PerSession<MemoryNetwork, PublishTask<MemoryNetwork>>,
    /// Commit points before the last reload.
    base_commits: u64,
    /// Reloads so far.
    pub reloads: u64,
    /// The halt its database records (a fatal error of an earlier run): a halted processor
    /// neither runs nor receives, as the daemon refuses to start (`processor::halt`).
    pub halted: Option<processor::halt::Halt>,
}

impl Processor {
    #[allow(clippy::too_many_arguments)]
    fn open(
        path: PathBuf,
        validator: u16,
        malice: Malice,
        params: Option<NetworkParams>,
        (policy, keys_only): (Option<key_gen::KeyGenPolicy>, bool),
        identity: Arc<Identity>,
        registry: Arc<KeyRegistry>,
        chain: &Chain,
    ) -> Processor {
        let db = Db::open(&path, processor::SCHEMA).unwrap();
        let halted = processor::halt::check(&db).unwrap();
        let sealer = Arc::new(Sealer::unlock(&db, SECRET).unwrap());
        let mut keygen = KeyGen::open(&db, sealer, NETWORK, validator, malice).unwrap();
        if let Some(policy) = policy {
            keygen = keygen.with_policy(policy);
        }
        let keygen = Arc::new(keygen);
        let party = Party::Processor { network: NETWORK, validator };
        let mailbox =
            Mailbox::new(party, identity.clone(), registry.clone(), BusMetrics::default());
        let pipeline = Pipeline {
            session: u32::MAX,
            network: Arc::new(match &params {
                Some(params) => MemoryNetwork::with_params(chain, params.clone()),
                None => chain.network(),
            }),
            keygen: keygen.clone(),
            signers: Arc::new(Mutex::new(None)),
            mailbox: mailbox.clone(),
            window: 4,
            validator,
            metrics: PipelineMetrics::default(),
            proposal: Arc::default(),
        };
        let metrics = pipeline.metrics.clone();
        processor::pipeline::rotation::prune_retired(&db).unwrap();
        let pipelines = Pipelines::load(pipeline, &db).unwrap();
        let handle: Arc<dyn Handle> = Arc::new(pipelines.clone());
        let handler = InboxHandler::new(
            db.clone(),
            mailbox.clone(),
            keygen,
            Default::default(),
            (!keys_only).then_some(handle),
        );
        Processor {
            validator,
            metrics,
            malice,
            params,
            policy,
            keys_only,
            path,
            identity,
            registry,
            scan: PerSession::new("scanner", db.clone(), pipelines.clone()),
            ack: PerSession::new("acknowledger", db.clone(), pipelines.clone()),
            publish: PerSession::with("publisher", db.clone(), pipelines, |db, pipeline| {
                PublishTask::rebroadcasting_every(db, pipeline, Duration::from_secs(3600))
            }),
            db,
            mailbox,
            handler,
            base_commits: 0,
            reloads: 0,
            halted,
        }
    }

    /// Drops everything in memory (nonces included) and opens the database again.
    pub fn reload(self, chain: &Chain) -> Processor {
        let (commits, reloads) = (self.commits(), self.reloads + 1);
        let (path, validator, malice, params, operator, identity, registry) = (
            self.path.clone(),
            self.validator,
            self.malice,
            self.params.clone(),
            (self.policy, self.keys_only),
            self.identity.clone(),
            self.registry.clone(),
        );
        // Every handle to the database lives in `self`: dropping it closes the file.
        drop(self);
        let mut p =
            Processor::open(path, validator, malice, params, operator, identity, registry, chain);
        p.base_commits = commits;
        p.reloads = reloads;
        p
    }

    /// Commit points so far, across reloads.
    pub fn commits(&self) -> u64 {
        self.base_commits + self.db.commits()
    }

    /// The plans this processor recorded, by id (every live session's).
    pub fn plans(&self) -> BTreeMap<[u8; 32], PlanRecord> {
        let read = self.db.read().unwrap();
        let mut out = BTreeMap::new();
        for (session, _) in LIVE.iter(&read).unwrap() {
            out.extend(PLANS.iter(&db::in_scope(&read, session)).unwrap());
        }
        out
    }

    /// The newest live session, if any.
    pub fn session(&self) -> Option<u32> {
        LIVE.iter(&self.db.read().unwrap()).unwrap().last().map(|(s, _)| *s)
    }

    /// A snapshot of the database, scoped to the newest live session (session 0 if none):
    /// what the pipeline's tables read through.
    pub fn read(&self) -> db::ReadTxn {
        self.db.read().unwrap().scoped(self.session().unwrap_or(0))
    }
}

/// When to reload which processor.
#[derive(Clone, Copy, Debug, Default)]
pub struct Crash {
    /// The processor (index into `Net::processors`).
    pub processor: usize,
    /// Right after its commit number `at` (1-based).
    pub at: u64,
}

/// Runs `run` once per crash point, two at a time (runs are independent: each has its own
/// chain and databases); returns a line per failed run, naming its crash point.
#[allow(dead_code)] // not every test binary reloads at every commit point
pub fn each_crash_point(
    crashes: &[Crash],
    run: impl Fn(Crash) -> Result<(), String> + Sync,
) -> Vec<String> {
    let run = &run;
    std::thread::scope(|scope| {
        let workers: Vec<_> = crashes
            .chunks(crashes.len().div_ceil(2).max(1))
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .filter_map(|crash| {
                            run(*crash).err().map(|e| {
                                format!(
                                    "reloading processor {} after commit point {}: {e}",
                                    crash.processor + 1,
                                    crash.at
                                )
                            })
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap()).collect()
    })
}

/// The coordinator, the chain and the processors.
pub struct Net {
    pub chain: Chain,
    pub sim: Sim,
    sim_handler: SimHandler,
    timeouts: TimeoutTask,
    sim_mailbox: Mailbox,
    pub clock: ManualClock,
    pub processors: Vec<Processor>,
    pub crash: Option<Crash>,
    /// Processors that neither run nor receive nor send (their messages wait).
    pub silent: Vec<usize>,
    /// Processors whose publisher does not run (a lagging one: its node refusing, or its
    /// task in backoff).
    pub hold_publish: Vec<usize>,
    sign_timeout: Duration,
    /// Coordinator timeouts that fired (each a reattempt waited for), over the run.
    pub timeouts_fired: u64,
    /// What a rebuilt coordinator-sim needs (a set elected later: [`Net::elect`]).
    coordinator: Arc<Identity>,
    coordinator_registry: Arc<KeyRegistry>,
    registry: KeyRegistry,
    settings: Settings,
    _dir: tempfile::TempDir,
}

/// A directory for the databases: in memory-backed `/dev/shm` where there is one (redb
/// on a tmpfs: the same files and commits, without waiting for a disk's fsync, so that
/// hundreds of runs fit in seconds), else the system's temporary directory.
fn temp_dir() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(dir) = tempfile::Builder::new().prefix("tc-functional-").tempdir_in(shm) {
            return dir;
        }
    }
    tempfile::tempdir().unwrap()
}

/// A task's step: progress, idle, or an error (fatal ones are returned by `settle`).
fn stepped(result: Result<bool, TaskError>) -> Result<bool, String> {
    match result {
        Ok(progress) => Ok(progress),
        Err(TaskError::Transient(_)) => Ok(false),
        Err(TaskError::Fatal(e)) => Err(task::error_chain(&*e)),
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    futures::executor::block_on(f)
}

impl Net {
    /// A `threshold`-of-`n` set over a fresh chain.
    pub fn new(threshold: u16, n: u16, params: NetworkParams) -> Net {
        Net::with_malice(threshold, n, params, &[])
    }

    /// [`Net::new`], with key-generation misbehaviour of some validators.
    pub fn with_malice(
        threshold: u16,
        n: u16,
        params: NetworkParams,
        malice: &[(u16, Malice)],
    ) -> Net {
        Net::build(threshold, n, params, malice, &[], Selection::Roast)
    }

    /// [`Net::with_malice`], with some validators configured unlike the chain.
    pub fn build(
        threshold: u16,
        n: u16,
        params: NetworkParams,
        malice: &[(u16, Malice)],
        overrides: &[(u16, NetworkParams)],
        selection: Selection,
    ) -> Net {
        let dir = temp_dir();
        let chain = Chain::new(params);
        let coordinator = Arc::new(Identity::generate(&mut OsRng));
        let mut coordinator_registry = KeyRegistry::new();
        coordinator_registry.insert(Party::Coordinator, coordinator.public());
        let coordinator_registry = Arc::new(coordinator_registry);
        let mut registry = KeyRegistry::new();
        let mut processors = vec![];
        for validator in 1..=n {
            let identity = Arc::new(Identity::generate(&mut OsRng));
            registry.insert(Party::Processor { network: NETWORK, validator }, identity.public());
            let bad = malice.iter().find(|(v, _)| *v == validator).map_or(Malice::None, |m| m.1);
            let own = overrides.iter().find(|(v, _)| *v == validator).map(|(_, p)| p.clone());
            processors.push(Processor::open(
                dir.path().join(format!("processor-{validator}.redb")),
                validator,
                bad,
                own,
                (None, false),
                identity,
                coordinator_registry.clone(),
                &chain,
            ));
        }
        let sim_db = Db::open(dir.path().join("sim.redb"), coordinator_sim::SCHEMA).unwrap();
        let set =
            SetConfig { network: NETWORK, session: 0, threshold, validators: (1..=n).collect() };
        let mut settings = Settings::new(vec![set]);
        settings.sign_timeout = Duration::from_secs(30);
        settings.keygen_timeout = Duration::from_secs(60);
        settings.selection = selection;
        let clock = ManualClock::new(1_000_000);
        let mut metrics = prometheus_client::registry::Registry::default();
        let sim = Sim::new(
            sim_db.clone(),
            coordinator.clone(),
            registry.clone(),
            settings.clone(),
            Arc::new(clock.clone()),
            &mut metrics,
        );
        sim.start().unwrap();
        let sim_mailbox = sim.keygen().mailbox().clone();
        Net {
            sim_handler: SimHandler::new(sim_db.clone(), sim.keygen().clone(), sim.sign().clone()),
            timeouts: TimeoutTask::new(sim_db, sim.keygen().clone(), sim.sign().clone()),
            sim_mailbox,
            sim,
            clock,
            chain,
            processors,
            crash: None,
            silent: vec![],
            hold_publish: vec![],
            sign_timeout: settings.sign_timeout,
            timeouts_fired: 0,
            coordinator,
            coordinator_registry,
            registry,
            settings,
            _dir: dir,
        }
    }

    /// Elects the network's next set, `threshold`-of-`validators` (a validator past the
    /// processors so far gets a new processor, with a new database): coordinator-sim is
    /// restarted with the set added to its config, as an operator would, and generates
    /// its key at the next `settle`. `close_after` is the rotation's grace period in
    /// blocks. Returns the new set's session.
    pub fn elect(&mut self, threshold: u16, validators: &[u16], close_after: u64) -> u32 {
        for &validator in validators {
            if usize::from(validator) <= self.processors.len() {
                continue;
            }
            assert_eq!(
                usize::from(validator),
                self.processors.len() + 1,
                "validators are numbered on"
            );
            let identity = Arc::new(Identity::generate(&mut OsRng));
            self.registry
                .insert(Party::Processor { network: NETWORK, validator }, identity.public());
            let path = self._dir.path().join(format!("processor-{validator}.redb"));
            self.processors.push(Processor::open(
                path,
                validator,
                Malice::None,
                None,
                (None, false),
                identity,
                self.coordinator_registry.clone(),
                &self.chain,
            ));
        }
        let session = u32::try_from(self.settings.sets.len()).unwrap();
        self.settings.sets.push(SetConfig {
            network: NETWORK,
            session,
            threshold,
            validators: validators.to_vec(),
        });
        self.settings.rotation_close_after = close_after;
        let sim_db = self.sim.db().clone();
        let mut metrics = prometheus_client::registry::Registry::default();
        let sim = Sim::new(
            sim_db.clone(),
            self.coordinator.clone(),
            self.registry.clone(),
            self.settings.clone(),
            Arc::new(self.clock.clone()),
            &mut metrics,
        );
        sim.start().unwrap();
        self.sim_mailbox = sim.keygen().mailbox().clone();
        self.sim_handler =
            SimHandler::new(sim_db.clone(), sim.keygen().clone(), sim.sign().clone());
        self.timeouts = TimeoutTask::new(sim_db, sim.keygen().clone(), sim.sign().clone());
        self.sim = sim;
        session
    }

    /// The network key of `session` (from a processor holding it).
    pub fn group_key_of(&self, session: u32) -> memory_network::GroupKey {
        for p in &self.processors {
            let sealer = Arc::new(Sealer::unlock(&p.db, SECRET).unwrap());
            let keygen = KeyGen::open(&p.db, sealer, NETWORK, p.validator, Malice::None).unwrap();
            let Some(keys) =
                keygen.keys(&p.db.read().unwrap(), messages::Session(session)).unwrap()
            else {
                continue;
            };
            match keys.network {
                key_gen::NetworkKeys::Secp256k1(k) => return k.group_key(),
                key_gen::NetworkKeys::Ed25519(_) => panic!("wrong curve"),
            }
        }
        panic!("no processor holds session {session}'s key")
    }

    /// The sessions whose pipelines processor `i` runs.
    pub fn live_sessions(&self, i: usize) -> Vec<u32> {
        LIVE.iter(&self.processors[i].db.read().unwrap())
            .unwrap()
            .into_iter()
            .map(|(s, _)| s)
            .collect()
    }

    /// Arms the crash on processor `i` (once: a reloaded processor runs on).
    fn arm(&self, i: usize) {
        if let Some(crash) = self.crash {
            let p = &self.processors[i];
            if crash.processor == i && p.reloads == 0 {
                p.db.crash_after(crash.at);
            }
        }
    }

    /// Reloads processor `i` if its database crashed; whether it did.
    fn reload_if_crashed(&mut self, i: usize) -> bool {
        if !self.processors[i].db.crashed() {
            return false;
        }
        let p = self.processors.remove(i).reload(&self.chain);
        self.processors.insert(i, p);
        true
    }

    /// Delivers every pending outbox entry of `from_db`/`from` to its recipient, and the
    /// recipient's end-to-end ack back. Returns the processors whose inbox committed.
    fn deliver(&mut self) -> Result<bool, String> {
        let mut progress = false;
        // Processors to the coordinator.
        for i in 0..self.processors.len() {
            if self.idle(i) {
                continue;
            }
            let pending = Mailbox::pending(&self.processors[i].db.read().unwrap()).unwrap();
            for (_, out) in pending {
                let receipt = self.sim_mailbox.receive(self.sim.db(), &out.envelope).unwrap();
                let Receipt::Message { sender, through, .. } = receipt else {
                    return Err(format!("coordinator refused a processor's envelope: {receipt:?}"));
                };
                let (ack, _) = self.sim_mailbox.ack_envelope(sender, through);
                let p = &self.processors[i];
                let acked = p.mailbox.receive(&p.db, &ack);
                progress = true;
                if self.reload_if_crashed(i) {
                    break;
                }
                acked.unwrap();
            }
        }
        // The coordinator to the processors.
        let pending = Mailbox::pending(&self.sim.db().read().unwrap()).unwrap();
        for (_, out) in pending {
            let Party::Processor { validator, .. } = out.recipient else { continue };
            let i = usize::from(validator) - 1;
            if self.idle(i) {
                continue;
            }
            let p = &self.processors[i];
            let receipt = p.mailbox.receive(&p.db, &out.envelope);
            let crashed = p.db.crashed();
            // A delivery that committed before the crash is acknowledged: it is in the
            // inbox on disk.
            if let Ok(receipt) = receipt {
                let Receipt::Message { sender, through, .. } = receipt else {
                    return Err(format!("processor {validator} refused an envelope: {receipt:?}"));
                };
                let (ack, _) = p.mailbox.ack_envelope(sender, through);
                self.sim_mailbox.receive(self.sim.db(), &ack).unwrap();
            } else if !crashed {
                return Err(format!("processor {validator}'s inbox failed: {receipt:?}"));
            }
            progress = true;
            self.reload_if_crashed(i);
        }
        Ok(progress)
    }

    /// Runs one iteration of processor `i`'s task number `task`.
    fn step(&mut self, i: usize, task: usize) -> Result<bool, String> {
        let p = &mut self.processors[i];
        let (name, result) = match task {
            0 => (p.handler.name().to_string(), block_on(p.handler.run_iteration())),
            1 => (p.scan.name().to_string(), block_on(p.scan.run_iteration())),
            2 => (p.ack.name().to_string(), block_on(p.ack.run_iteration())),
            _ => (p.publish.name().to_string(), block_on(p.publish.run_iteration())),
        };
        if self.reload_if_crashed(i) {
            return Ok(true);
        }
        // As the daemon does when a task stops it on queued work (`processor::halt`).
        if let Err(TaskError::Fatal(e)) = &result {
            if processor::halt::halts(&**e, false) {
                processor::halt::record(&self.processors[i].db, &name, &task::error_chain(&**e));
            }
        }
        stepped(result).map_err(|e| format!("processor {} {name}: {e}", i + 1))
    }

    /// One iteration of processor `i`'s scanner alone (`i` from 0).
    pub fn scan_once(&mut self, i: usize) -> Result<bool, String> {
        self.step(i, 1)
    }

    /// The last block processor `i`'s scanner recorded.
    pub fn scanned(&self, i: usize) -> Option<u64> {
        SCANNED.get(&self.processors[i].read(), &()).unwrap()
    }

    /// Whether processor `i` neither runs nor receives (silent, or halted).
    fn idle(&self, i: usize) -> bool {
        self.silent.contains(&i) || self.processors[i].halted.is_some()
    }

    /// Runs processor `i` without a `[node]`, or with one again (a restart).
    pub fn set_keys_only(&mut self, i: usize, keys_only: bool) {
        self.processors[i].keys_only = keys_only;
        self.restart(i, false);
    }

    /// Gives processor `i`'s operator the key-generation `policy` (a restart).
    pub fn set_policy(&mut self, i: usize, policy: key_gen::KeyGenPolicy) {
        self.processors[i].policy = Some(policy);
        self.restart(i, false);
    }

    /// Restarts processor `i` (drops everything in memory and opens its database again),
    /// `--resume`-ing a recorded halt if `resume`.
    pub fn restart(&mut self, i: usize, resume: bool) {
        if resume {
            processor::halt::resume(&self.processors[i].db).unwrap();
        }
        let p = self.processors.remove(i).reload(&self.chain);
        self.processors.insert(i, p);
    }

    /// Runs processor `i`'s tasks until none makes progress.
    fn run_processor(&mut self, i: usize) -> Result<bool, String> {
        let mut any = false;
        loop {
            let mut progress = false;
            let tasks = if self.processors[i].keys_only { 1 } else { 4 };
            let held = self.hold_publish.contains(&i);
            for task in (0..tasks).filter(|t| !(held && *t == 3)) {
                if self.step(i, task)? {
                    progress = true;
                    break;
                }
            }
            if !progress {
                return Ok(any);
            }
            any = true;
        }
    }

    /// Runs every party until nothing moves, advancing the coordinator's clock past its
    /// signing timeout whenever it waits on an attempt (a reloaded processor never
    /// answers the attempts it had started). Returns a fatal error of any task.
    pub fn settle(&mut self) -> Result<(), String> {
        for i in 0..self.processors.len() {
            self.arm(i);
        }
        let mut timeouts = 0;
        for _ in 0..10_000 {
            let mut progress = self.deliver()?;
            while stepped(block_on(self.sim_handler.run_iteration()))? {
                progress = true;
            }
            progress |= self.deliver()?;
            for i in 0..self.processors.len() {
                if !self.idle(i) {
                    progress |= self.run_processor(i)?;
                }
            }
            if progress {
                continue;
            }
            // Quiet: let the coordinator's timeouts fire, if any is pending.
            self.clock.advance(u64::try_from(self.sign_timeout.as_millis()).unwrap() + 1);
            if !stepped(block_on(self.timeouts.run_iteration()))? {
                return Ok(());
            }
            // Reattempts that never end: signing cannot complete.
            timeouts += 1;
            self.timeouts_fired += 1;
            if timeouts > 100 {
                return Err(
                    "100 coordinator timeouts in one settle: signing never completes".into()
                );
            }
        }
        Err("the network did not settle in 10,000 rounds".into())
    }

    /// The group's key (from coordinator-sim's confirmed key pair).
    pub fn group_key(&self) -> memory_network::GroupKey {
        let (p, active) = self
            .processors
            .iter()
            .find_map(|p| Some((p, ACTIVE.get(&p.read(), &()).unwrap()?)))
            .expect("no active key");
        let sealer = Arc::new(Sealer::unlock(&p.db, SECRET).unwrap());
        let keygen = KeyGen::open(&p.db, sealer, NETWORK, p.validator, Malice::None).unwrap();
        let keys =
            keygen.keys(&p.db.read().unwrap(), messages::Session(active.session)).unwrap().unwrap();
        match keys.network {
            key_gen::NetworkKeys::Secp256k1(k) => k.group_key(),
            key_gen::NetworkKeys::Ed25519(_) => panic!("wrong curve"),
        }
    }

    /// Mines `n` blocks and settles.
    pub fn mine(&mut self, n: u64) -> Result<(), String> {
        self.chain.mine(n);
        self.settle()
    }

    /// Deposits `amount` to the group for `account` (not mined).
    pub fn deposit(&self, key: &memory_network::GroupKey, account: u8, amount: u64) {
        let instruction =
            InInstruction { account: SettlementAccount([account; 32]), return_address: None };
        self.chain.deposit(
            &Chain::address_of(key, OutputKind::External),
            Amount(amount),
            Some(Chain::encode_instruction(&instruction)),
            None,
        );
    }

    /// Once the key is active: deposits each `(account, amount)`, mines, and settles until
    /// every account is credited (panics if one is not within 10 blocks). Returns the
    /// group key.
    pub fn funded(&mut self, deposits: &[(u8, u64)]) -> memory_network::GroupKey {
        self.mine(4).unwrap();
        let key = self.group_key();
        for (account, amount) in deposits {
            self.deposit(&key, *account, *amount);
        }
        self.chain.mine(1);
        let credited = |net: &Net| deposits.iter().all(|(a, amount)| net.balance(*a) == *amount);
        for _ in 0..10 {
            if credited(self) {
                break;
            }
            self.mine(1).unwrap();
        }
        assert!(credited(self), "deposits {deposits:?} not credited");
        key
    }

    /// Orders a burn from `account` to a fresh payee; returns the payee.
    pub fn burn(&self, account: u8, amount: u64, payee: u32) -> ExternalAddress {
        // A P2WPKH script, displayed as the regtest address the burner parses.
        let mut script = vec![0x00, 0x14];
        script.extend([0u8; 16]);
        script.extend(payee.to_le_bytes());
        let external = ExternalAddress::new(script).unwrap();
        self.burn_to(account, amount, &external);
        external
    }

    /// Orders a burn from `account` to `external` (a script the burner can display).
    pub fn burn_to(&self, account: u8, amount: u64, external: &ExternalAddress) {
        let params = bitcoin_network::Params::new(
            bitcoin_network::Coin::Litecoin,
            bitcoin_network::Chain::Regtest,
        );
        let to = bitcoin_network::Address::from_external(external).unwrap().display(&params);
        let burner = Burner::new("regtest".into(), vec![NETWORK]);
        burner
            .burn(
                self.sim.db(),
                &BurnRequest {
                    network: NETWORK.name().into(),
                    account: hex::encode([account; 32]),
                    to,
                    amount,
                },
            )
            .unwrap();
    }

    /// The coordinator's ledger balance of `account`.
    pub fn balance(&self, account: u8) -> u64 {
        coordinator_sim::ledger::balance(
            &self.sim.db().read().unwrap(),
            [account; 32],
            NETWORK.native_coin(),
        )
        .unwrap()
    }
}
