//! monero-wallet-rpc, Monero's own wallet, as the independent witness of the Monero
//! scenario: view-only wallets (an address and its view key) say what each payee and the
//! group received, without the processors' code or the monero-oxide crates.
//!
//! Started on a free loopback port with wallets in a temp dir (`$MONERO_WALLET_RPC`, or
//! `monero-wallet-rpc` from Debian's `monero` package); killed on drop.
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::{io, spawn_logged, DevnetError};

/// One incoming transfer a wallet saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incoming {
    /// The transaction's hash (hex).
    pub txid: String,
    /// The amount, in piconero.
    pub amount: u64,
    /// The subaddress it paid: `(account, index)`.
    pub subaddress: (u32, u32),
}

/// A running monero-wallet-rpc.
#[derive(Debug)]
pub struct WalletRpc {
    child: Child,
    port: u16,
    /// Declared last: removed after the process is gone.
    dir: tempfile::TempDir,
}

fn binary() -> PathBuf {
    std::env::var_os("MONERO_WALLET_RPC")
        .map_or_else(|| PathBuf::from("monero-wallet-rpc"), PathBuf::from)
}

impl WalletRpc {
    /// Starts a wallet RPC server on `daemon` (`http://host:port`), trusted (regtest).
    pub fn start(daemon: &str) -> Result<WalletRpc, DevnetError> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(io("finding a free port"))?
            .port();
        let dir = tempfile::tempdir().map_err(io("creating the wallets' directory"))?;
        let daemon = daemon.trim_start_matches("http://");
        let mut command = Command::new(binary());
        command
            .args(["--daemon-address", daemon, "--trusted-daemon", "--disable-rpc-login"])
            .args(["--rpc-bind-ip", "127.0.0.1", "--rpc-bind-port", &port.to_string()])
            .args(["--non-interactive", "--log-level", "0"])
            .arg("--wallet-dir")
            .arg(dir.path())
            .arg("--log-file")
            .arg(dir.path().join("wallet-rpc.log"));
        let child = spawn_logged(command, &dir.path().join("stderr.log"), false)?;
        let rpc = WalletRpc { child, port, dir };
        let start = Instant::now();
        while rpc.call("get_version", json!({})).is_err() {
            if start.elapsed() > Duration::from_secs(30) {
                return Err(DevnetError::Failed(
                    "monero-wallet-rpc did not answer within 30 s".into(),
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(rpc)
    }

    fn call(&self, method: &str, params: Value) -> Result<Value, DevnetError> {
        let body = json!({"jsonrpc": "2.0", "id": "0", "method": method, "params": params});
        let (code, text) = post(self.port, &body.to_string()).ok_or_else(|| {
            DevnetError::Failed(format!("monero-wallet-rpc: no answer to {method}"))
        })?;
        let answer: Value = serde_json::from_str(&text).map_err(|e| {
            DevnetError::Failed(format!("monero-wallet-rpc {method}: HTTP {code}: {e}"))
        })?;
        if let Some(error) = answer.get("error") {
            return Err(DevnetError::Failed(format!("monero-wallet-rpc {method}: {error}")));
        }
        Ok(answer["result"].clone())
    }

    /// Creates (and opens) view-only wallet `name` for `address` with the secret view key
    /// `view_key` (hex), scanning from block `from`.
    pub fn view_only(
        &self,
        name: &str,
        address: &str,
        view_key: &str,
        from: u64,
    ) -> Result<(), DevnetError> {
        self.call(
            "generate_from_keys",
            json!({"filename": name, "address": address, "viewkey": view_key, "password": "", "restore_height": from, "autosave_current": false}),
        )?;
        Ok(())
    }

    /// Creates view-only wallet `name` ([`WalletRpc::view_only`]) and lists what it
    /// received (confirmed only). Opening a wallet file costs seconds (its key
    /// derivation), so the new wallet is read while it is open.
    pub fn received(
        &self,
        name: &str,
        address: &str,
        view_key: &str,
        from: u64,
    ) -> Result<Vec<Incoming>, DevnetError> {
        self.view_only(name, address, view_key, from)?;
        self.incoming_open()
    }

    /// Stops the open wallet's background refresh (every 20 s by default), so that only
    /// [`WalletRpc::refresh`] scans (for timing it).
    pub fn no_auto_refresh(&self) -> Result<(), DevnetError> {
        self.call("auto_refresh", json!({"enable": false}))?;
        Ok(())
    }

    /// Refreshes the open wallet; returns the blocks it fetched.
    pub fn refresh(&self) -> Result<u64, DevnetError> {
        let answer = self.call("refresh", json!({}))?;
        Ok(answer["blocks_fetched"].as_u64().unwrap_or(0))
    }

    /// Refreshes the open wallet and lists what it received (confirmed only).
    fn incoming_open(&self) -> Result<Vec<Incoming>, DevnetError> {
        // The wallet checks its daemon connection with a short timeout: a busy regtest
        // node can fail it once or twice.
        let mut tries = 0;
        while let Err(e) = self.call("refresh", json!({})) {
            tries += 1;
            if tries == 20 {
                return Err(e);
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        self.listed()
    }

    /// What the open wallet received, as of its last refresh (confirmed only).
    pub fn listed(&self) -> Result<Vec<Incoming>, DevnetError> {
        let transfers = self.call("get_transfers", json!({"in": true, "all_accounts": true}))?;
        let listed = transfers["in"].as_array().cloned().unwrap_or_default();
        Ok(listed
            .iter()
            .map(|t| Incoming {
                txid: t["txid"].as_str().unwrap_or_default().to_string(),
                amount: t["amount"].as_u64().unwrap_or(0),
                subaddress: (
                    t["subaddr_index"]["major"].as_u64().unwrap_or(0) as u32,
                    t["subaddr_index"]["minor"].as_u64().unwrap_or(0) as u32,
                ),
            })
            .collect())
    }

    /// The end of its log (for failures).
    pub fn log_tail(&self) -> String {
        let text =
            std::fs::read_to_string(self.dir.path().join("wallet-rpc.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

/// One HTTP/1.1 POST to `/json_rpc`, reading exactly the announced body. The connection
/// stays open: the wallet RPC server does not close it (reading to the end would wait for
/// its timeout), and asked to close, it cuts long bodies short.
fn post(port: u16, body: &str) -> Option<(u16, String)> {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    // A refresh over many blocks takes a while.
    stream.set_read_timeout(Some(Duration::from_secs(120))).ok()?;
    write!(
        stream,
        "POST /json_rpc HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status).ok()?;
    let code = status.get(9..12)?.parse().ok()?;
    let mut length = None;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse::<usize>().ok();
            }
        }
    }
    let bytes = match length {
        Some(length) => {
            let mut bytes = vec![0; length];
            reader.read_exact(&mut bytes).ok()?;
            bytes
        }
        // No length: the body ends with the connection.
        None => {
            let mut bytes = vec![];
            reader.read_to_end(&mut bytes).ok()?;
            bytes
        }
    };
    Some((code, String::from_utf8(bytes).ok()?))
}

impl Drop for WalletRpc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
