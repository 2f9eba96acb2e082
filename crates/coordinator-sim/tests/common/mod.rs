//! An in-process network: the real simulator ([`Sim`], its tasks) and n processors
//! running the real `key_gen::KeyGen`, each with its own redb database and mailbox, over
//! the in-memory broker.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::{
    collections::BTreeMap,
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use bus::{BusMetrics, Mailbox, MemoryTransport, ReceiverTask, SenderTask, Transport, INBOX};
use coordinator_sim::{
    clock::ManualClock, config::SetConfig, status::StatusReport, Settings, Sim, Timing, SCHEMA,
};
use db::{Db, Schema};
use key_gen::{store::Generated, GeneratedKeys, KeyGen, Malice, Sealer};
use messages::{
    CoordinatorMessage, Identity, KeyRegistry, Party, ProcessorMessage, Session, SettlementEvent,
};
use primitives::{codec::Versioned, NetworkId};
use rand_core::OsRng;
use task::{FatalError, RunConfig, Shutdown, Task, TaskError, TaskStats, TaskWaker};
use tokio::task::JoinSet;

const PROCESSOR_SCHEMA: Schema = Schema { app: "test-processor", version: 1 };

/// What to run.
pub struct Spec {
    pub network: NetworkId,
    pub session: u32,
    pub threshold: u16,
    pub validators: Vec<u16>,
    pub malice: BTreeMap<u16, Malice>,
    /// Processors that never run (their messages wait in the broker).
    pub silent: Vec<u16>,
    pub timeout: Duration,
}

impl Spec {
    pub fn honest(network: NetworkId, threshold: u16, n: u16) -> Self {
        Spec {
            network,
            session: 0,
            threshold,
            validators: (1..=n).collect(),
            malice: BTreeMap::new(),
            silent: vec![],
            timeout: Duration::from_secs(5),
        }
    }
}

/// One processor: its database, key generation and mailbox.
pub struct Node {
    pub validator: u16,
    pub party: Party,
    pub db: Db,
    pub keygen: Arc<KeyGen>,
    pub mailbox: Mailbox,
    pub sender_waker: TaskWaker,
    other: Arc<std::sync::atomic::AtomicU64>,
}

impl Node {
    /// A processor with its database in `dir`, running its bus tasks and a key-generation
    /// handler over `transport` until `shutdown`.
    #[allow(clippy::too_many_arguments)]
    pub fn spawn<T: Transport>(
        dir: &Path,
        party: Party,
        identity: Arc<Identity>,
        coordinator_registry: Arc<KeyRegistry>,
        malice: Malice,
        transport: T,
        shutdown: &Shutdown,
        tasks: &mut JoinSet<Result<(), FatalError>>,
    ) -> Node
    where
        T::Subscription: std::fmt::Debug,
    {
        let Party::Processor { network, validator } = party else { panic!("not a processor") };
        let db = Db::open(dir.join(format!("{party}.redb")), PROCESSOR_SCHEMA).unwrap();
        let sealer = Arc::new(Sealer::unlock(&db, b"some secret 123456").unwrap());
        let keygen = Arc::new(KeyGen::open(&db, sealer, network, validator, malice).unwrap());
        let mailbox = Mailbox::new(party, identity, coordinator_registry, BusMetrics::default());
        let (sender_waker, handler_waker) = (TaskWaker::new(), TaskWaker::new());
        let sender = SenderTask::new(
            db.clone(),
            transport.clone(),
            mailbox.clone(),
            Duration::from_millis(300),
        );
        let receiver = ReceiverTask::new(
            db.clone(),
            transport,
            mailbox.clone(),
            Duration::from_millis(20),
            handler_waker.clone(),
        );
        let other = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let handler = ProcessorHandler {
            db: db.clone(),
            keygen: keygen.clone(),
            mailbox: mailbox.clone(),
            other: other.clone(),
        };
        let stats = || Arc::new(TaskStats::default());
        let idle = Duration::from_millis(50);
        tasks.spawn(task::run(
            sender,
            fast(idle),
            sender_waker.clone(),
            vec![],
            shutdown.clone(),
            stats(),
        ));
        tasks.spawn(task::run(
            receiver,
            fast(Duration::ZERO),
            TaskWaker::new(),
            vec![],
            shutdown.clone(),
            stats(),
        ));
        tasks.spawn(task::run(
            handler,
            fast(idle),
            handler_waker,
            vec![sender_waker.clone()],
            shutdown.clone(),
            stats(),
        ));
        Node { validator, party, db, keygen, mailbox, sender_waker, other }
    }

    /// Signing and settlement messages received so far.
    pub fn other_messages(&self) -> u64 {
        self.other.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn generated(&self, session: u32) -> Option<Generated> {
        KeyGen::generated(&self.db.read().unwrap(), Session(session)).unwrap()
    }

    pub fn keys(&self, session: u32) -> GeneratedKeys {
        self.keygen.keys(&self.db.read().unwrap(), Session(session)).unwrap().unwrap()
    }
}

/// The processor's inbox consumer, reduced to key generation: what the processor daemon
/// does with these messages.
#[derive(Debug)]
struct ProcessorHandler {
    db: Db,
    keygen: Arc<KeyGen>,
    mailbox: Mailbox,
    other: Arc<std::sync::atomic::AtomicU64>,
}

impl Task for ProcessorHandler {
    fn name(&self) -> &str {
        "test-processor-handler"
    }

    async fn run_iteration(&mut self) -> Result<bool, TaskError> {
        let mut txn = self.db.write().unwrap();
        let Some((_, received)) = INBOX.pop(&mut txn).unwrap() else { return Ok(false) };
        let result = match received.coordinator_message().unwrap() {
            CoordinatorMessage::KeyGen(request) => {
                self.keygen.handle(&mut txn, &request).map(|response| {
                    if let Some(response) = response {
                        let message = ProcessorMessage::KeyGen(response).encode();
                        self.mailbox.send(&mut txn, Party::Coordinator, message).unwrap();
                    }
                })
            }
            CoordinatorMessage::Settlement(SettlementEvent::ConfirmKeyPair {
                session,
                ristretto_key,
                network_key,
                ..
            }) => self.keygen.confirm(&mut txn, session, ristretto_key, &network_key).map(|_| ()),
            // Signing and settlement: what the real processor does with them is not
            // this harness's concern; they are counted and consumed.
            CoordinatorMessage::Sign(_) | CoordinatorMessage::Settlement(_) => {
                self.other.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok(())
            }
            other => panic!("unexpected message {other:?}"),
        };
        if let Err(e) = result {
            // Refused requests change nothing; consume the message all the same.
            tracing::warn!(error = %e, "processor refused a request");
            drop(txn);
            txn = self.db.write().unwrap();
            INBOX.pop(&mut txn).unwrap();
        }
        txn.commit().unwrap();
        Ok(true)
    }
}

pub struct Harness {
    _dir: tempfile::TempDir,
    pub spec: Spec,
    pub transport: MemoryTransport,
    pub clock: ManualClock,
    pub sim: Sim,
    pub nodes: BTreeMap<u16, Node>,
    shutdown: Shutdown,
    tasks: JoinSet<Result<(), FatalError>>,
}

fn fast(idle: Duration) -> RunConfig {
    RunConfig { idle_poll: idle, ..RunConfig::default() }
}

impl Harness {
    pub fn start(spec: Spec) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let transport = MemoryTransport::new(7, Duration::from_secs(10));
        let clock = ManualClock::new(1_700_000_000_000);
        let shutdown = Shutdown::new();
        let mut tasks = JoinSet::new();
        let coordinator = Arc::new(Identity::generate(&mut OsRng));
        let mut coordinator_registry = KeyRegistry::new();
        coordinator_registry.insert(Party::Coordinator, coordinator.public());
        let coordinator_registry = Arc::new(coordinator_registry);

        let mut registry = KeyRegistry::new();
        let mut nodes = BTreeMap::new();
        for v in &spec.validators {
            let party = Party::Processor { network: spec.network, validator: *v };
            let identity = Arc::new(Identity::generate(&mut OsRng));
            registry.insert(party, identity.public());
            if spec.silent.contains(v) {
                continue;
            }
            let malice = spec.malice.get(v).copied().unwrap_or(Malice::None);
            let node = Node::spawn(
                dir.path(),
                party,
                identity,
                coordinator_registry.clone(),
                malice,
                transport.clone(),
                &shutdown,
                &mut tasks,
            );
            nodes.insert(*v, node);
        }

        let db = Db::open(dir.path().join("coordinator-sim.redb"), SCHEMA).unwrap();
        let set = SetConfig {
            network: spec.network,
            session: spec.session,
            threshold: spec.threshold,
            validators: spec.validators.clone(),
        };
        let settings = Settings { keygen_timeout: spec.timeout, ..Settings::new(vec![set]) };
        let sim = Sim::new(
            db,
            coordinator,
            registry,
            settings,
            Arc::new(clock.clone()),
            &mut prometheus_client::registry::Registry::default(),
        );
        sim.start().unwrap();
        let timing = Timing {
            resend_after: Duration::from_millis(300),
            receive_wait: Duration::from_millis(20),
            idle_poll: Duration::from_millis(50),
            timeout_poll: Duration::from_millis(10),
        };
        sim.spawn(transport.clone(), timing, &shutdown, &mut tasks);
        Harness { _dir: dir, spec, transport, clock, sim, nodes, shutdown, tasks }
    }

    pub fn status(&self) -> StatusReport {
        StatusReport::read(&self.sim.db().read().unwrap()).unwrap()
    }

    /// Polls the simulator's status until `done` holds (60 s at most).
    pub async fn wait_for(
        &mut self,
        what: &str,
        done: impl Fn(&StatusReport) -> bool,
    ) -> StatusReport {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let status = self.status();
            if done(&status) {
                return status;
            }
            self.check_tasks();
            assert!(Instant::now() < deadline, "timed out waiting for {what}; status: {status:#?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Fails the test if any task stopped (a fatal error or a panic).
    fn check_tasks(&mut self) {
        if let Some(joined) = self.tasks.try_join_next() {
            match joined {
                Ok(Ok(())) => panic!("a task stopped before shutdown"),
                Ok(Err(fatal)) => panic!("a task failed: {fatal}"),
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            }
        }
    }

    pub fn generated(&self, v: u16) -> Option<Generated> {
        self.nodes[&v].generated(self.spec.session)
    }

    pub fn keys(&self, v: u16) -> GeneratedKeys {
        self.nodes[&v].keys(self.spec.session)
    }

    /// Waits until each of `validators` has activated the key pair the simulator
    /// confirmed, and checks they all hold that same pair.
    pub async fn wait_confirmed_by(&mut self, validators: &[u16]) {
        let status = self.wait_for("confirmation", |s| s.sets[0].confirmed.is_some()).await;
        let confirmed = status.sets[0].confirmed.clone().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        for v in validators {
            while !self.generated(*v).is_some_and(|g| g.confirmed) {
                self.check_tasks();
                assert!(Instant::now() < deadline, "validator {v} never activated its keys");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let generated = self.generated(*v).unwrap();
            assert_eq!(
                hex::encode(generated.ristretto_key),
                confirmed.ristretto_key,
                "validator {v}"
            );
            assert_eq!(hex::encode(&generated.network_key), confirmed.network_key, "validator {v}");
            assert_eq!(generated.attempt, confirmed.attempt, "validator {v}");
        }
    }

    /// Has processor `v` send `message` (as if it misbehaved), through its real outbox.
    pub fn send_as(&self, v: u16, message: ProcessorMessage) {
        let node = &self.nodes[&v];
        let mut txn = node.db.write().unwrap();
        node.mailbox.send(&mut txn, Party::Coordinator, message.encode()).unwrap();
        txn.commit().unwrap();
        node.sender_waker.wake();
    }

    /// The next sequence the simulator would assign on each route: unchanged iff it sent
    /// nothing.
    pub fn sim_routes(&self) -> Vec<(u32, u64)> {
        Mailbox::routes(&self.sim.db().read().unwrap())
            .unwrap()
            .into_iter()
            .map(|(route, _, next)| (route, next))
            .collect()
    }

    pub async fn stop(mut self) {
        self.check_tasks();
        self.shutdown.trigger();
        while let Some(joined) = self.tasks.join_next().await {
            match joined {
                Ok(result) => result.unwrap(),
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            }
        }
    }
}
