//! The binary as a devnet runs it: a real nats-server, `coordinator-sim` in its own
//! process, and this test playing three processors (real `key_gen::KeyGen`, real
//! mailboxes over NATS).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use bus::{
    testing::{free_port, http_get, NatsServer},
    NatsConfig, NatsTransport,
};
use common::Node;
use coordinator_sim::status::StatusReport;
use key_gen::{testing::sign_and_verify_both, Malice};
use messages::{Identity, KeyRegistry, Party};
use primitives::NetworkId;
use rand_core::OsRng;
use task::Shutdown;
use tokio::task::JoinSet;

const BIN: &str = env!("CARGO_BIN_EXE_coordinator-sim");

fn sim(args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args).env_remove("COORDINATOR_IDENTITY_KEY");
    c
}

struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
    http: u16,
    coordinator_public: String,
    processors: Vec<Arc<Identity>>,
}

/// A config for a 2-of-3 Litecoin set, session 3, with a key made by `new-identity`.
fn setup(nats_url: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("identity.key");
    let out = sim(&["new-identity", "--out"]).arg(&key).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let coordinator_public = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(coordinator_public.len(), 64);
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    // Never overwrites a key.
    assert!(!sim(&["new-identity", "--out"]).arg(&key).output().unwrap().status.success());

    let processors: Vec<_> = (0..3).map(|_| Arc::new(Identity::generate(&mut OsRng))).collect();
    let entries: String = processors
        .iter()
        .enumerate()
        .map(|(i, p)| {
            format!(
                "[[sets.processors]]\nvalidator = {}\npublic_key = \"{}\"\n",
                i + 1,
                hex::encode(p.public().as_bytes())
            )
        })
        .collect();
    let http = free_port();
    let config = dir.path().join("coordinator-sim.toml");
    std::fs::write(
        &config,
        format!(
            r#"data_dir = "{data}"
keygen_timeout_ms = 60000

[bus]
nats_url = "{nats_url}"
namespace = "simtest"
resend_after_ms = 1000

[secrets]
identity_key_file = "{key}"

[http]
listen = "127.0.0.1:{http}"

[[sets]]
network = "litecoin"
session = 3
threshold = 2
{entries}"#,
            data = dir.path().join("data").display(),
            key = key.display(),
        ),
    )
    .unwrap();
    Setup { dir, config, http, coordinator_public, processors }
}

fn status_json(config: &Path) -> StatusReport {
    let out = sim(&["status", "--json", "--config"]).arg(config).output().unwrap();
    assert!(out.status.success(), "status failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn ledger_json(config: &Path) -> coordinator_sim::ledger::LedgerReport {
    let out = sim(&["ledger", "--json", "--config"]).arg(config).output().unwrap();
    assert!(out.status.success(), "ledger failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

struct Daemon(Child);
impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generates_keys_over_nats_and_reports_them_online_and_offline() {
    let nats = NatsServer::start();
    let s = setup(&nats.url());
    let daemon =
        Daemon(sim(&["run", "--config"]).arg(&s.config).stderr(Stdio::null()).spawn().unwrap());
    wait_until("/health", || http_get(s.http, "/health").is_some_and(|(c, _)| c == 200)).await;

    // Three processors, pinning the coordinator's key as printed by new-identity.
    let mut coordinator = KeyRegistry::new();
    let key = coordinator_sim::config::parse_public_key(&s.coordinator_public).unwrap();
    coordinator.insert(Party::Coordinator, key);
    let coordinator = Arc::new(coordinator);
    let transport = NatsTransport::connect(NatsConfig::new(nats.url(), "simtest")).await.unwrap();
    let shutdown = Shutdown::new();
    let mut tasks = JoinSet::new();
    let nodes: Vec<Node> = s
        .processors
        .iter()
        .enumerate()
        .map(|(i, identity)| {
            let party = Party::Processor { network: NetworkId::Litecoin, validator: i as u16 + 1 };
            Node::spawn(
                s.dir.path(),
                party,
                identity.clone(),
                coordinator.clone(),
                Malice::None,
                transport.clone(),
                &shutdown,
                &mut tasks,
            )
        })
        .collect();

    wait_until("every processor's activated key", || {
        nodes.iter().all(|n| n.generated(3).is_some_and(|g| g.confirmed))
    })
    .await;
    // While it runs, `status` asks the daemon over HTTP.
    let online = status_json(&s.config);
    let set = &online.sets[0];
    assert_eq!((set.network.as_str(), set.session, set.threshold), ("litecoin", 3, 2));
    assert_eq!((set.attempt, set.stage.as_str()), (0, "confirmed"));
    assert_eq!(set.participants, vec![1, 2, 3]);
    assert!(set.excluded.is_empty() && !set.failed);
    assert_eq!(online.conflicts, 0);
    let keys = set.confirmed.clone().unwrap();
    for node in &nodes {
        assert_eq!(hex::encode(node.generated(3).unwrap().ristretto_key), keys.ristretto_key);
    }
    let signers: Vec<_> = nodes[1..].iter().map(|n| n.keys(3)).collect();
    sign_and_verify_both(&signers, b"over nats");

    // The settlement chain's CLI goes to the running daemon: an empty ledger, and burns
    // refused with the daemon's reason (no balance yet; an address of another chain).
    let ledger = ledger_json(&s.config);
    assert!(ledger.accounts.is_empty() && ledger.burns_queued.is_empty());
    assert_eq!(ledger.last_settlement_block, 0);
    let burn = |to: &str, amount: &str| {
        let out = sim(&["burn", "--network", "litecoin", "--account", &"ab".repeat(32)])
            .args(["--to", to, "--amount", amount, "--config"])
            .arg(&s.config)
            .output()
            .unwrap();
        assert!(!out.status.success(), "a burn without balance was accepted");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    // A Litecoin regtest P2WPKH address.
    let mut script = vec![0x00, 0x14];
    script.extend([7u8; 20]);
    let params = bitcoin_address::AddressParams::from_names("litecoin", "regtest").unwrap();
    let to = bitcoin_address::Address::from_script(bitcoin::ScriptBuf::from_bytes(script))
        .unwrap()
        .display(&params);
    let err = burn(&to, "5");
    assert!(err.contains("400") && err.contains("insufficient balance"), "{err}");
    let err = burn("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", "5");
    assert!(err.contains("bad address"), "{err}");
    assert_eq!(ledger_json(&s.config), ledger);

    let (_, metrics) = http_get(s.http, "/metrics").unwrap();
    assert!(metrics.contains("coordinator_sim_keygen_confirmed_total 1"), "{metrics}");
    assert!(metrics.contains("coordinator_sim_keygen_conflicts_total 0"), "{metrics}");
    assert!(metrics.contains("coordinator_sim_keygen_sets{stage=\"confirmed\"} 1"), "{metrics}");

    // SIGTERM: a clean exit; then `status` reads the database itself.
    let mut daemon = daemon;
    Command::new("kill").args(["-TERM", &daemon.0.id().to_string()]).status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = daemon.0.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "coordinator-sim did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success());
    let offline = status_json(&s.config);
    assert_eq!(offline.sets, online.sets);
    assert_eq!(ledger_json(&s.config).last_settlement_block, 0, "read from the database");

    shutdown.trigger();
    while let Some(joined) = tasks.join_next().await {
        joined.unwrap().unwrap();
    }
}

fn refusal(config: &Path) -> String {
    let out = sim(&["run", "--config"]).arg(config).output().unwrap();
    assert!(!out.status.success(), "it ran");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn refuses_a_readable_key_bad_configs_and_a_missing_database() {
    use std::os::unix::fs::PermissionsExt;
    // No broker is needed: each refusal comes before the bus is touched.
    let s = setup("nats://127.0.0.1:1");
    let key = s.dir.path().join("identity.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = refusal(&s.config);
    assert!(err.contains("chmod 600"), "{err}");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();

    // `status` on a data directory never run: says so rather than report an empty state.
    let out = sim(&["status", "--config"]).arg(&s.config).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no database"));

    let text = std::fs::read_to_string(&s.config).unwrap();
    for (bad, expected) in [
        (text.replace("keygen_timeout_ms", "keygen_timeout"), "unknown field"),
        (text.replace("keygen_timeout_ms = 60000", "sign_timeout_ms = 0"), "sign_timeout_ms"),
        (text.replace("keygen_timeout_ms = 60000", "chain = \"moonnet\""), "moonnet"),
        (text.replace("\"litecoin\"", "\"dogecoin\""), "dogecoin"),
        (text.replace("threshold = 2", "threshold = 4"), "threshold"),
        (text.replace("validator = 3", "validator = 2"), "listed twice"),
        (text.replace("public_key = \"", "public_key = \"00"), "public_key"),
    ] {
        std::fs::write(&s.config, bad).unwrap();
        let err = refusal(&s.config);
        assert!(err.contains(expected), "expected {expected:?} in {err}");
    }
    assert!(!s.dir.path().join("data").exists(), "a refused start wrote the data directory");
}
