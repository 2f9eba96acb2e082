//! The processor binary as operators run it: a real nats-server, the binary in its own
//! process, and this test playing the coordinator.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use bus::{
    testing::{free_port, http_get, NatsServer},
    BusMetrics, Mailbox, NatsConfig, NatsTransport, ReceiverTask, SenderTask, Transport, INBOX,
};
use db::{Db, Schema};
use messages::{
    envelope::{seal, Body},
    CoordinatorMessage, Identity, KeyGenId, KeyGenRequest, KeyGenResponse, KeyRegistry, Party,
    ProcessorMessage, Session, SignId, SignKind, SignRequest, Status, PROTOCOL_VERSION,
};
use primitives::{codec::Versioned, NetworkId};
use processor::status::StatusReport;
use rand_core::OsRng;
use task::{RunConfig, Shutdown, TaskStats, TaskWaker};

const ME: Party = Party::Processor { network: NetworkId::Litecoin, validator: 2 };
const BIN: &str = env!("CARGO_BIN_EXE_processor");

struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
    http: u16,
    coordinator: Identity,
    processor_public: messages::envelope::VerifyingKey,
}

fn setup(nats_url: &str, key_mode: u32) -> Setup {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("identity.key");
    let identity = processor::config::write_identity_file(&key_file).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(key_mode)).unwrap();
    let secret_file = dir.path().join("db.secret");
    std::fs::write(&secret_file, "a long enough sealing secret\n").unwrap();
    std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let coordinator = Identity::generate(&mut OsRng);
    let http = free_port();
    let config = dir.path().join("processor.toml");
    std::fs::write(
        &config,
        format!(
            r#"network = "litecoin"
validator = 2
data_dir = "{data}"

[bus]
nats_url = "{nats_url}"
namespace = "daemontest"
resend_after_ms = 1000

[coordinator]
public_key = "{coordinator}"

[secrets]
identity_key_file = "{key}"
db_secret_file = "{secret}"

[http]
listen = "127.0.0.1:{http}"
"#,
            data = dir.path().join("data").display(),
            coordinator = hex::encode(coordinator.public().as_bytes()),
            key = key_file.display(),
            secret = secret_file.display(),
        ),
    )
    .unwrap();
    Setup { dir, config, http, coordinator, processor_public: identity.public() }
}

fn processor(args: &[&str], config: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .arg("--config")
        .arg(config)
        .env_remove("PROCESSOR_IDENTITY_KEY")
        .env_remove("PROCESSOR_DB_SECRET");
    c
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn metric(port: u16, line_prefix: &str) -> Option<f64> {
    let (_, body) = http_get(port, "/metrics")?;
    body.lines().find(|l| l.starts_with(line_prefix))?.rsplit(' ').next()?.parse().ok()
}

fn status_json(config: &Path) -> StatusReport {
    let out = processor(&["status", "--json"], config).output().unwrap();
    assert!(out.status.success(), "status failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

struct Daemon(Child);
impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_pings_counts_forgeries_and_stops_gracefully() {
    let nats = NatsServer::start();
    let s = setup(&nats.url(), 0o600);
    let mut daemon = Daemon(processor(&["run"], &s.config).stderr(Stdio::null()).spawn().unwrap());
    wait_until("/health", || matches!(http_get(s.http, "/health"), Some((200, _))));

    // This test is the coordinator.
    let cdir = tempfile::tempdir().unwrap();
    let cdb = Db::open(cdir.path().join("c.redb"), Schema { app: "coordinator-test", version: 1 })
        .unwrap();
    let mut registry = KeyRegistry::new();
    registry.insert(ME, s.processor_public);
    let coordinator = Arc::new(Identity::from_secret(&s.coordinator.secret()));
    let mailbox =
        Mailbox::new(Party::Coordinator, coordinator, Arc::new(registry), BusMetrics::default());
    let mut nc = NatsConfig::new(nats.url(), "daemontest");
    nc.ack_wait = Duration::from_secs(2);
    let transport = NatsTransport::connect(nc).await.unwrap();
    let shutdown = Shutdown::new();
    let fast = RunConfig { idle_poll: Duration::from_millis(50), ..RunConfig::default() };
    let sender_waker = TaskWaker::new();
    tokio::spawn(task::run(
        SenderTask::new(cdb.clone(), transport.clone(), mailbox.clone(), Duration::from_secs(1)),
        fast,
        sender_waker.clone(),
        vec![],
        shutdown.clone(),
        Arc::new(TaskStats::default()),
    ));
    tokio::spawn(task::run(
        ReceiverTask::new(
            cdb.clone(),
            transport.clone(),
            mailbox.clone(),
            Duration::from_millis(100),
            TaskWaker::new(),
        ),
        fast,
        TaskWaker::new(),
        vec![],
        shutdown.clone(),
        Arc::new(TaskStats::default()),
    ));

    // Ping -> Pong, end to end through the processor's inbox, handler and outbox.
    let mut txn = cdb.write().unwrap();
    mailbox
        .send(&mut txn, ME, CoordinatorMessage::Status(Status::Ping { nonce: 42 }).encode())
        .unwrap();
    txn.commit().unwrap();
    sender_waker.wake();
    wait_until("the pong", || INBOX.len(&cdb.read().unwrap()).unwrap() == 1);
    let (_, pong) = INBOX.items(&cdb.read().unwrap()).unwrap().remove(0);
    assert_eq!(pong.sender, ME);
    assert_eq!(
        pong.processor_message().unwrap(),
        ProcessorMessage::Status(Status::Pong {
            nonce: 42,
            protocol_version: PROTOCOL_VERSION.into()
        })
    );
    wait_until("our ping acknowledged end to end", || {
        Mailbox::pending(&cdb.read().unwrap()).unwrap().is_empty()
    });
    wait_until("the processor's pong acknowledged", || status_json(&s.config).outbox_pending == 0);
    assert_eq!(metric(s.http, "processor_bus_received_messages_total"), Some(1.0));

    // A forgery (claims to be the coordinator, signed by someone else) and garbage: counted,
    // nothing changes.
    let before = status_json(&s.config);
    let impostor = Identity::generate(&mut OsRng);
    let forged = seal(
        &impostor,
        Party::Coordinator,
        ME,
        2,
        Body::Message(CoordinatorMessage::Status(Status::Ping { nonce: 1 }).encode()),
    );
    transport.publish(ME, [0xf0; 32], forged.encode()).await.unwrap();
    // Its first byte is not a known envelope version.
    transport.publish(ME, [0xf1; 32], b"not an envelope".to_vec()).await.unwrap();
    wait_until("the forgery to be counted", || {
        metric(s.http, "processor_bus_rejected_envelopes_total{reason=\"bad_signature\"}")
            == Some(1.0)
            && metric(s.http, "processor_bus_rejected_envelopes_total{reason=\"unknown_version\"}")
                == Some(1.0)
    });
    assert_eq!(status_json(&s.config), before, "a rejected envelope changed state");
    assert_eq!(metric(s.http, "processor_bus_received_messages_total"), Some(1.0));

    // A key-generation request is answered with round-1 commitments.
    let mut txn = cdb.write().unwrap();
    let keygen = KeyGenRequest::GenerateKey {
        id: KeyGenId { session: Session(0), attempt: 0 },
        network: NetworkId::Litecoin,
        threshold: 2,
        participants: vec![1, 2, 3],
        me: 2,
    };
    mailbox.send(&mut txn, ME, CoordinatorMessage::KeyGen(keygen).encode()).unwrap();
    // One the processor must refuse (it is not validator 3): counted, nothing else.
    let foreign = KeyGenRequest::GenerateKey {
        id: KeyGenId { session: Session(1), attempt: 0 },
        network: NetworkId::Litecoin,
        threshold: 2,
        participants: vec![1, 2, 3],
        me: 3,
    };
    mailbox.send(&mut txn, ME, CoordinatorMessage::KeyGen(foreign).encode()).unwrap();
    // A message without a handler yet is kept, not dropped.
    let reattempt = SignRequest::Reattempt {
        id: SignId { session: Session(0), kind: SignKind::Batch(0), attempt: 1 },
    };
    mailbox.send(&mut txn, ME, CoordinatorMessage::Sign(reattempt).encode()).unwrap();
    txn.commit().unwrap();
    sender_waker.wake();
    wait_until("the commitments", || INBOX.len(&cdb.read().unwrap()).unwrap() == 2);
    let (_, reply) = INBOX.items(&cdb.read().unwrap()).unwrap().remove(1);
    assert!(
        matches!(
            reply.processor_message().unwrap(),
            ProcessorMessage::KeyGen(KeyGenResponse::Commitments {
                id: KeyGenId { session: Session(0), attempt: 0 },
                ..
            })
        ),
        "{reply:?}"
    );
    wait_until("the deferred message", || status_json(&s.config).deferred == 1);
    assert_eq!(metric(s.http, "processor_rejected_requests_total"), Some(1.0));

    // SIGTERM: stops cleanly; then status reads the database directly.
    Command::new("kill").args(["-TERM", &daemon.0.id().to_string()]).status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let code = loop {
        if let Some(code) = daemon.0.try_wait().unwrap() {
            break code;
        }
        assert!(Instant::now() < deadline, "processor did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(code.success(), "exit status {code}");
    let offline = status_json(&s.config);
    assert_eq!(offline.deferred, 1);
    assert_eq!(offline.inbox_pending, 0);
    assert_eq!(offline.party, ME.to_string());

    // Restarted with a node: the kept message is handled first (here refused, no key
    // being active: counted), not left behind.
    let node = bitcoin_network::testing::node::Node::start().await;
    let text = std::fs::read_to_string(&s.config).unwrap();
    std::fs::write(
        &s.config,
        format!(
            "{text}\n[node]\nchain = \"regtest\"\nrpc_url = \"{}\"\nrpc_cookie_file = \"{}\"\n",
            node.rpc().url(),
            node.datadir().join("regtest").join(".cookie").display()
        ),
    )
    .unwrap();
    let _daemon = Daemon(processor(&["run"], &s.config).stderr(Stdio::null()).spawn().unwrap());
    wait_until("the kept message handled", || {
        metric(s.http, "processor_rejected_requests_total") == Some(1.0)
    });
    assert_eq!(status_json(&s.config).deferred, 0);
    shutdown.trigger();
    drop(s.dir);
}

fn run_expecting_failure(config: &Path) -> String {
    let Output { status, stderr, .. } = processor(&["run"], config).output().unwrap();
    assert!(!status.success());
    String::from_utf8_lossy(&stderr).into_owned()
}

#[test]
fn refuses_a_world_readable_identity_key() {
    let s = setup("nats://127.0.0.1:1", 0o644);
    let err = run_expecting_failure(&s.config);
    assert!(err.contains("mode 644") && err.contains("chmod 600"), "{err}");
    assert!(!s.dir.path().join("data").exists(), "wrote state before refusing");
}

#[test]
fn refuses_a_missing_identity_key_and_never_prints_one() {
    let s = setup("nats://127.0.0.1:1", 0o600);
    let key_file = s.dir.path().join("identity.key");
    let secret = std::fs::read_to_string(&key_file).unwrap();
    std::fs::remove_file(&key_file).unwrap();
    let err = run_expecting_failure(&s.config);
    assert!(err.contains("cannot read secret file") && err.contains("identity.key"), "{err}");
    assert!(!err.contains(secret.trim()));
}

#[test]
fn refuses_an_incompatible_database() {
    let s = setup("nats://127.0.0.1:1", 0o600);
    let data = s.dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    drop(
        Db::open(data.join("processor.redb"), Schema { app: "tc-processor", version: 99 }).unwrap(),
    );
    let err = run_expecting_failure(&s.config);
    let expected = format!("version {}", processor::SCHEMA.version);
    assert!(err.contains("version 99") && err.contains(&expected), "{err}");
}

#[test]
fn refuses_unknown_config_fields_and_networks() {
    let s = setup("nats://127.0.0.1:1", 0o600);
    let text = std::fs::read_to_string(&s.config).unwrap();
    std::fs::write(&s.config, text.replace("validator = 2", "validator = 2\nvalidatr = 3"))
        .unwrap();
    let err = run_expecting_failure(&s.config);
    assert!(err.contains("validatr"), "{err}");
    std::fs::write(&s.config, text.replace("\"litecoin\"", "\"dogecoin\"")).unwrap();
    let err = run_expecting_failure(&s.config);
    assert!(err.contains("dogecoin"), "{err}");
}

/// Litecoin's mainnet and testnet have MWEB active; its blocks decode (issue 16), so a
/// processor configured for them is accepted (it was refused while they did not).
#[test]
fn accepts_litecoin_where_mweb_is_active() {
    let s = setup("nats://127.0.0.1:1", 0o600);
    let text = std::fs::read_to_string(&s.config).unwrap();
    for chain in ["mainnet", "testnet"] {
        std::fs::write(
            &s.config,
            format!(
                "{text}\n[node]\nchain = \"{chain}\"\nrpc_url = \"http://127.0.0.1:1\"\n\
                 rpc_cookie_file = \"/nonexistent\"\n"
            ),
        )
        .unwrap();
        let out = processor(&["check-config"], &s.config).output().unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(said.contains(&format!("node http://127.0.0.1:1 on {chain}")), "{said}");
    }
}

#[test]
fn refuses_a_fee_rate_floor_above_its_ceiling() {
    let s = setup("nats://127.0.0.1:1", 0o600);
    let text = std::fs::read_to_string(&s.config).unwrap();
    let node = |min: u64, max: u64| {
        format!(
            "{text}\n[node]\nchain = \"regtest\"\nrpc_url = \"http://127.0.0.1:1\"\n\
             rpc_cookie_file = \"/nonexistent\"\nmin_fee_rate = {min}\nmax_fee_rate = {max}\n"
        )
    };
    std::fs::write(&s.config, node(20_000, 10_000)).unwrap();
    let err = run_expecting_failure(&s.config);
    assert!(err.contains("min_fee_rate 20000 is above max_fee_rate 10000"), "{err}");
    assert!(!s.dir.path().join("data").exists(), "wrote state before refusing");
}

#[test]
fn refuses_a_window_of_zero() {
    let s = setup("nats://127.0.0.1:1", 0o600);
    let text = std::fs::read_to_string(&s.config).unwrap();
    std::fs::write(&s.config, format!("{text}\n[pipeline]\nwindow = 0\n")).unwrap();
    let err = run_expecting_failure(&s.config);
    assert!(err.contains("pipeline.window"), "{err}");
    assert!(!s.dir.path().join("data").exists(), "wrote state before refusing");
}

#[test]
fn status_on_a_wrong_data_dir_says_so_and_creates_nothing() {
    let s = setup("nats://127.0.0.1:1", 0o600);
    let out = processor(&["status"], &s.config).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no database at"), "{err}");
    assert!(!s.dir.path().join("data").exists(), "status created the data directory");
}

#[test]
fn refuses_a_wrong_sealing_secret() {
    use std::os::unix::fs::PermissionsExt;
    let s = setup("nats://127.0.0.1:1", 0o600);
    // Seal the database with one secret...
    let data = s.dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let db = Db::open(data.join("processor.redb"), processor::SCHEMA).unwrap();
    key_gen::Sealer::unlock(&db, b"the original sealing secret").unwrap();
    drop(db);
    // ...then start with another.
    let secret_file = s.dir.path().join("db.secret");
    std::fs::write(&secret_file, "a different sealing secret").unwrap();
    std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let err = run_expecting_failure(&s.config);
    assert!(err.contains("does not match"), "{err}");
    assert!(!err.contains("a different sealing secret"), "printed the secret");
}

#[test]
fn refuses_to_run_without_a_sealing_secret() {
    let s = setup("nats://127.0.0.1:1", 0o600);
    std::fs::remove_file(s.dir.path().join("db.secret")).unwrap();
    let err = run_expecting_failure(&s.config);
    assert!(err.contains("db.secret"), "{err}");
}

/// A fatal error halts the daemon once: a message in its inbox that does not decode (a
/// corrupt database) stops it (exit 1) with a halt recorded that names the message; the
/// next start refuses at once with exit code 78, the recorded error and what to do, and
/// writes nothing; `status` shows the halt; `processor resume` removes it, and the next
/// run meets the same message and halts again with the same error.
#[test]
fn a_fatal_error_halts_the_daemon_until_resumed() {
    let nats = NatsServer::start();
    let s = setup(&nats.url(), 0o600);
    let data = s.dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let path = data.join("processor.redb");
    let bad = bus::Received {
        sender: Party::Coordinator,
        sequence: 1,
        intent: messages::Intent([7; 32]),
        message: vec![0xff, 0xfe, 0xfd],
    };
    {
        let db = Db::open(&path, processor::SCHEMA).unwrap();
        let mut txn = db.write().unwrap();
        INBOX.push(&mut txn, &bad).unwrap();
        txn.commit().unwrap();
    }
    let run = || processor(&["run"], &s.config).stdout(Stdio::null()).output().unwrap();
    let Output { status, stderr, .. } = run();
    let err = String::from_utf8_lossy(&stderr);
    assert_eq!(status.code(), Some(1), "{err}");
    // Logs to a pipe: plain text, no colour codes; the version on the startup line.
    assert!(!err.contains('\u{1b}'), "colour codes in a log that is not a terminal: {err}");
    let starting = err.lines().find(|l| l.contains("starting")).unwrap_or_default();
    assert!(starting.contains(env!("CARGO_PKG_VERSION")), "{starting}");
    let named = format!("handling inbox message {}: it does not decode", "07".repeat(32));
    let halted = status_json(&s.config).halted.unwrap_or_else(|| panic!("no halt: {err}"));
    assert!(halted.contains("task inbox-handler") && halted.contains(&named), "{halted}");

    let Output { status, stderr, .. } = run();
    let err = String::from_utf8_lossy(&stderr);
    assert_eq!(status.code(), Some(i32::from(processor::halt::EXIT_HALTED)), "{err}");
    assert!(err.contains(&named) && err.contains("processor resume"), "{err}");
    let out = processor(&["status"], &s.config).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("HALTED"));
    // A halted start stopped before anything: the first halt is kept as it was.
    assert_eq!(status_json(&s.config).halted.as_deref(), Some(halted.as_str()));

    let out = processor(&["resume"], &s.config).output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && said.contains("removed the halt"), "{said}");
    assert_eq!(status_json(&s.config).halted, None);
    let out = processor(&["resume"], &s.config).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("not halted"));

    // The cause is still there: halted again, with the same error.
    let Output { status, .. } = run();
    assert_eq!(status.code(), Some(1));
    let again = status_json(&s.config).halted.unwrap();
    assert!(again.contains(&named), "{again}");
}

/// `check-config` reads the config and every secret it names without starting anything:
/// a usable one prints what the processor would run as and creates no data directory; a
/// missing sealing secret is named, and nothing is printed as usable.
#[test]
fn check_config_reads_every_secret_and_writes_nothing() {
    let s = setup("nats://127.0.0.1:1", 0o600);
    let out = processor(&["check-config"], &s.config).output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(said.starts_with("ok: processor-litecoin-2") && said.contains("no [node]"), "{said}");
    assert!(!s.dir.path().join("data").exists(), "check-config created the data directory");

    std::fs::remove_file(s.dir.path().join("db.secret")).unwrap();
    let out = processor(&["check-config"], &s.config).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("db.secret"), "{err}");
    assert!(out.stdout.is_empty());
}

/// The node's RPC password comes from `PROCESSOR_RPC_PASSWORD` or from
/// `rpc_password_file`, like every secret; with neither, the error names both.
#[test]
fn the_rpc_password_comes_from_the_environment_or_its_file() {
    let s = setup("nats://127.0.0.1:1", 0o600);
    let text = std::fs::read_to_string(&s.config).unwrap();
    std::fs::write(
        &s.config,
        format!(
            "{text}\n[node]\nchain = \"regtest\"\nrpc_url = \"http://127.0.0.1:1\"\n\
             rpc_user = \"operator\"\n"
        ),
    )
    .unwrap();
    let out = processor(&["check-config"], &s.config).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains("PROCESSOR_RPC_PASSWORD")
            && err.contains("node.rpc_password_file"),
        "{err}"
    );
    let out = processor(&["check-config"], &s.config)
        .env("PROCESSOR_RPC_PASSWORD", "a password")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(said.contains("node http://127.0.0.1:1 on regtest"), "{said}");
}
