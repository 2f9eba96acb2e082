//! A monerod regtest node for tests.
//!
//! Decoy selection needs about 1,600 blocks of history, which take two minutes to mine.
//! [`Node::start`] mines them once per machine (under the system temp dir, in
//! `tc-monero-regtest-v2`, one maker at a time under a file lock, built in a scratch dir
//! and renamed into place, so nobody sees half of it), with every coinbase paid to the test wallet
//! ([`crate::testing::wallet`]), and records the wallet's spendable coinbase outputs
//! beside it. Each node then runs on its own copy, on free loopback ports, and is stopped
//! (SIGTERM, then SIGKILL) and deleted on drop.
//!
//! `$MONEROD` names the binary (default `monerod` on `PATH`; `scripts/test` installs
//! Debian's `monero` package).
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use monero_wallet::address::MoneroAddress;
use monero_wallet::WalletOutput;

use crate::rpc::{Daemon, Node as Rpc};
use crate::testing::wallet::TestWallet;

/// Blocks of history every node starts with.
pub const HISTORY: u64 = 1_600;
/// Coinbase outputs of the history the test wallet records (each about 35 XMR).
const RECORDED: u64 = 1_200;
/// Blocks mined per `generateblocks` call (larger calls time out).
const CHUNK: u64 = 100;
const STARTUP: Duration = Duration::from_secs(60);
const SHUTDOWN: Duration = Duration::from_secs(20);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The monerod binary.
pub fn binary() -> PathBuf {
    std::env::var_os("MONEROD").map_or_else(|| PathBuf::from("monerod"), PathBuf::from)
}

/// The command line of a regtest node on `port` with data in `dir`: offline, fixed
/// difficulty, hard fork 16 from block 1, unrestricted RPC on loopback, and the chain kept
/// across restarts (without `--keep-fakechain` a regtest node starts from genesis again).
pub fn command(binary: &Path, dir: &Path, port: u16) -> Command {
    let mut c = Command::new(binary);
    c.args([
        "--regtest",
        "--keep-fakechain",
        "--offline",
        "--fixed-difficulty",
        "1",
        "--non-interactive",
        "--no-zmq",
    ])
    .args(["--rpc-bind-ip", "127.0.0.1", "--rpc-bind-port", &port.to_string()])
    .args(["--p2p-bind-ip", "127.0.0.1", "--p2p-bind-port", &free_port().to_string()])
    .args(["--log-level", "0", "--max-log-files", "1"])
    .arg("--data-dir")
    .arg(dir)
    .arg("--log-file")
    .arg(dir.join("monerod.log"))
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    c
}

/// The shared history directory.
fn history_dir() -> PathBuf {
    std::env::temp_dir().join("tc-monero-regtest-v2")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else if entry.file_name() != "monerod.log" {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The shared history's directory, made first if this machine has none (see the module
/// docs). A node's data directory is a copy of it (`outputs.bin` in it lists the test
/// wallet's coinbase outputs, [`read_outputs`]).
pub async fn history() -> PathBuf {
    let history = history_dir();
    if !history.join("outputs.bin").exists() {
        // One maker at a time, machine-wide (tests of one binary run in parallel, and
        // test binaries may too): the others wait on the lock, then find it made. The
        // kernel drops the lock of a process that dies.
        let lock = std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(std::env::temp_dir().join("tc-monero-regtest-v2.lock"))
            .unwrap();
        let lock = tokio::task::spawn_blocking(move || {
            use std::os::fd::AsRawFd;
            // SAFETY: `flock` on a file descriptor we own, open for the call's duration.
            #[allow(unsafe_code)]
            let locked = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
            assert_eq!(locked, 0, "cannot lock the Monero history");
            lock
        })
        .await
        .unwrap();
        if !history.join("outputs.bin").exists() {
            Node::make_history(&history).await;
        }
        drop(lock);
    }
    history
}

/// Copies the history (or any node's data directory) to `to`, without its log.
pub fn copy_history(from: &Path, to: &Path) {
    copy_dir(from, to)
}

/// Makes every transaction in `rpc`'s pool eligible for the next block. monerod keeps a
/// transaction submitted over RPC in Dandelion++'s stem phase, out of block templates,
/// for a random embargo of tens of seconds; a transaction submitted with `do_not_relay`
/// is local and eligible at once. So each pooled transaction is taken out of the pool
/// and submitted again that way (those a popped block returned too: monerod may leave
/// them out of templates as well).
pub async fn release_pool(rpc: &Rpc) {
    let daemon = rpc.daemon().await.unwrap();
    let pool = daemon.rpc_call("get_transaction_pool", None, 1 << 26).await.unwrap();
    let pool: serde_json::Value = serde_json::from_str(&pool).unwrap();
    let Some(txs) = pool["transactions"].as_array().filter(|t| !t.is_empty()) else { return };
    let txs: Vec<(String, String)> = txs
        .iter()
        .map(|t| {
            (t["id_hash"].as_str().unwrap().to_string(), t["tx_blob"].as_str().unwrap().to_string())
        })
        .collect();
    let ids: Vec<&String> = txs.iter().map(|(id, _)| id).collect();
    let flush = serde_json::json!({ "txids": ids }).to_string();
    daemon.json_rpc_call("flush_txpool", Some(flush), 1 << 16).await.unwrap();
    for (id, blob) in &txs {
        let params = serde_json::json!({ "tx_as_hex": blob, "do_not_relay": true, "do_sanity_checks": false });
        let answer = daemon
            .rpc_call("send_raw_transaction", Some(params.to_string()), 1 << 16)
            .await
            .unwrap();
        // Someone may have published it again between the flush and now (a processor
        // re-broadcasting): it is in the pool then, as wanted.
        let hash = hex::decode(id).ok().and_then(|h| <[u8; 32]>::try_from(h).ok());
        let known = match hash {
            Some(hash) => rpc.knows(hash).await.unwrap_or(false),
            None => false,
        };
        assert!(
            answer.contains("\"OK\"") || known,
            "re-submitting pool transaction {id}: {answer}"
        );
    }
}

/// Mines `n` blocks on `rpc`'s node paying `address`, in chunks; the first includes every
/// transaction in the pool.
pub async fn mine(rpc: &Rpc, n: u64, address: &MoneroAddress) {
    release_pool(rpc).await;
    let daemon = rpc.daemon().await.unwrap();
    let mut left = n;
    while left > 0 {
        let now = left.min(CHUNK);
        let params = format!(r#"{{ "wallet_address": "{address}", "amount_of_blocks": {now} }}"#);
        daemon.json_rpc_call("generateblocks", Some(params), 1 << 20).await.unwrap();
        left -= now;
    }
}

/// A running regtest monerod.
#[derive(Debug)]
pub struct Node {
    child: Child,
    rpc: Rpc,
    port: u16,
    /// Declared last: removed after the process is gone.
    dir: tempfile::TempDir,
}

impl Node {
    async fn spawn(dir: tempfile::TempDir) -> Node {
        let port = free_port();
        let child = command(&binary(), dir.path(), port).spawn().unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}): install monerod (scripts/test does: apt-get install -y monero) \
                 or set MONEROD=/path/to/monerod",
                binary().display()
            )
        });
        let rpc = Rpc::new(format!("http://127.0.0.1:{port}"), Duration::from_secs(120));
        let node = Node { child, rpc, port, dir };
        let start = Instant::now();
        loop {
            if Rpc::new(format!("http://127.0.0.1:{port}"), Duration::from_secs(5))
                .tip()
                .await
                .is_ok()
            {
                break;
            }
            assert!(
                start.elapsed() < STARTUP,
                "monerod did not answer within {STARTUP:?}; its log:\n{}",
                node.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        node
    }

    /// Starts a node on a copy of the shared history (mining it first if this machine has
    /// none), and the test wallet that owns the history's coinbase outputs.
    pub async fn start() -> (Node, TestWallet) {
        let history = history().await;
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&history, dir.path());
        let outputs = read_outputs(&dir.path().join("outputs.bin"));
        let node = Node::spawn(dir).await;
        assert_eq!(node.tip().await, HISTORY, "the history copy starts at its tip");
        let wallet = TestWallet::new(outputs);
        (node, wallet)
    }

    async fn make_history(history: &Path) {
        let scratch = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
        eprintln!("mining {HISTORY} blocks of Monero regtest history (once per machine)...");
        let started = Instant::now();
        let mut node = Node::spawn(tempfile::tempdir_in(scratch.path()).unwrap()).await;
        let wallet = TestWallet::new(vec![]);
        node.mine_to(HISTORY, &wallet.address()).await;
        let outputs = wallet.scan_coinbase(node.rpc(), 1..=RECORDED).await;
        assert!(outputs.len() as u64 >= RECORDED, "expected a coinbase output per block");
        node.stop();
        let data = node.dir.path().to_path_buf();
        let mut bytes = vec![];
        for o in &outputs {
            let s = o.serialize();
            bytes.extend(u32::try_from(s.len()).unwrap().to_le_bytes());
            bytes.extend(s);
        }
        std::fs::write(data.join("outputs.bin"), bytes).unwrap();
        // Into place in one rename; a concurrent maker's rename wins, ours is dropped.
        let staged = scratch.path().join("history");
        copy_dir(&data, &staged);
        let _ = std::fs::rename(&staged, history);
        eprintln!("history ready in {:.0?}", started.elapsed());
    }

    /// The RPC client.
    pub fn rpc(&self) -> &Rpc {
        &self.rpc
    }

    /// The raw monero-daemon-rpc client.
    pub async fn daemon(&self) -> &Daemon {
        self.rpc.daemon().await.unwrap()
    }

    /// `http://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The best block's height.
    pub async fn tip(&self) -> u64 {
        self.rpc.tip().await.unwrap()
    }

    /// [`release_pool`] on this node.
    pub async fn release_pool(&self) {
        release_pool(&self.rpc).await
    }

    /// [`mine`] on this node.
    pub async fn mine_to(&self, n: u64, address: &MoneroAddress) {
        mine(&self.rpc, n, address).await
    }

    /// Removes the last `n` blocks (their transactions go back to the pool).
    pub async fn pop(&self, n: u64) {
        let daemon = self.daemon().await;
        daemon
            .rpc_call("pop_blocks", Some(format!(r#"{{ "nblocks": {n} }}"#)), 1 << 16)
            .await
            .unwrap();
    }

    /// The end of the node's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("monerod.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn stop(&mut self) {
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: `kill` has no memory-safety preconditions; the pid is our unreaped
            // child, so it cannot name another process.
            #[allow(unsafe_code)]
            let _ = unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let start = Instant::now();
        while start.elapsed() < SHUTDOWN {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The test wallet's coinbase outputs listed in a history's `outputs.bin`.
pub fn read_outputs(path: &Path) -> Vec<WalletOutput> {
    let bytes = std::fs::read(path).unwrap();
    let mut reader = bytes.as_slice();
    let mut outputs = vec![];
    while !reader.is_empty() {
        let len = u32::from_le_bytes(reader[..4].try_into().unwrap()) as usize;
        outputs.push(WalletOutput::read(&mut &reader[4..4 + len]).unwrap());
        reader = &reader[4 + len..];
    }
    outputs
}
