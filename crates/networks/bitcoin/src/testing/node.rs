//! A litecoind/bitcoind regtest node for tests.
//!
//! [`Node::start`] runs `$BITCOIND` (default `litecoind` on `PATH`) in a temp dir on a
//! free loopback port, with REST and `-txindex`, and leaves a legacy (or, on a recent
//! bitcoind, descriptor) wallet `miner` funded with at least 101 mature coinbase outputs,
//! so about a hundred deposits can be made before mining without chaining unconfirmed
//! change.
//!
//! litecoind runs on its defaults, so MWEB activates at height 432 as on mainnet (where it
//! has been active since block 2,265,984). Its first block needs a peg-in (a HogEx without
//! inputs is invalid: mining stops at 431 otherwise), so `start` mines 431 blocks, pegs
//! coins in from `miner` to the wallet `mweb`, and mines on: every test sees MWEB blocks,
//! with a peg-in and a peg-out ([`Node::mweb_traffic`]) in the last ones mined.
//! Watch-only imports go to a separate wallet `watch` (private keys disabled), which
//! works with both wallet kinds. The node is stopped (SIGTERM, then SIGKILL) on drop.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    str::FromStr,
    time::{Duration, Instant},
};

use bitcoin::{BlockHash, OutPoint, Transaction, Txid};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::rpc::{btc_to_sats, format_btc, RestBlocks, Rpc, RpcAuth, RpcConfig, RpcError};

/// How long the node may take to answer RPC after it is started.
const STARTUP: Duration = Duration::from_secs(30);
/// How long the node may take to exit after SIGTERM before it is killed.
const SHUTDOWN: Duration = Duration::from_secs(5);
/// Coinbase outputs are spendable after this many confirmations.
pub const COINBASE_MATURITY: u64 = 100;
/// The first block with MWEB rules on Litecoin regtest (the third 144-block period).
pub const MWEB_ACTIVATION: u64 = crate::params::LITECOIN_REGTEST_MWEB;
/// The wallet that pegs coins in: it holds canonical coins of exactly 1 LTC only, so each
/// peg-in spends one whole and leaves no change (a wallet holding MWEB coins pays an MWEB
/// address from them instead: no peg-in).
pub const PEGIN_WALLET: &str = "pegin";
/// The wallet that receives the peg-ins and pays the peg-outs (it holds MWEB coins only).
pub const MWEB_WALLET: &str = "mweb";
/// How many 1 LTC coins the peg-in wallet is given at a time.
const PEGIN_COINS: usize = 25;
/// Lines of `debug.log` shown when the node fails.
const LOG_TAIL: usize = 30;

/// A free loopback TCP port (bound, read, released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The node binary: `$BITCOIND`, else `litecoind` on `PATH`.
pub fn binary() -> PathBuf {
    std::env::var_os("BITCOIND").map_or_else(|| PathBuf::from("litecoind"), PathBuf::from)
}

/// The command line [`Node::start`] runs: regtest in the foreground, RPC (and REST) on
/// loopback `port`, `-txindex`, no P2P, data in `datadir`. `devnet up` runs the same,
/// detached, for a node that outlives it. Consensus rules are the node's defaults (MWEB
/// activates on Litecoin).
pub fn command(binary: &Path, datadir: &Path, port: u16) -> Command {
    let mut command = Command::new(binary);
    command
        .args(["-regtest", "-server", "-rest", "-txindex", "-listen=0", "-daemon=0"])
        .args(["-printtoconsole=0", "-rpcbind=127.0.0.1", "-rpcallowip=127.0.0.1"])
        .arg("-fallbackfee=0.0002")
        // The default keypool (1000 keys each for external, change and MWEB) makes
        // creating the wallet take 2 s instead of 0.1 s; the pool refills as used.
        .arg("-keypool=20")
        .arg(format!("-datadir={}", datadir.display()))
        .arg(format!("-rpcport={port}"));
    command
}

/// Whether `binary` is Litecoin Core, remembered per process (`-version` takes 0.3 s).
fn is_litecoin_binary(binary: &Path) -> bool {
    static KNOWN: std::sync::Mutex<Vec<(PathBuf, bool)>> = std::sync::Mutex::new(Vec::new());
    let mut known = KNOWN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, litecoin)) = known.iter().find(|(path, _)| path == binary) {
        return *litecoin;
    }
    let litecoin = run_version(binary);
    known.push((binary.to_path_buf(), litecoin));
    litecoin
}

/// Whether `binary -version` prints "Litecoin Core version ..." (else Bitcoin Core).
fn run_version(binary: &Path) -> bool {
    let output = Command::new(binary).arg("-version").output().unwrap_or_else(|e| {
        panic!(
            "cannot run {} ({e}): install litecoind (scripts/test does: apt-get install -y \
             litecoind) or set BITCOIND=/path/to/bitcoind",
            binary.display()
        )
    });
    let version = String::from_utf8_lossy(&output.stdout);
    let first = version.lines().next().unwrap_or_default();
    assert!(first.contains("Core"), "{} -version printed {first:?}", binary.display());
    first.contains("Litecoin")
}

/// The last `lines` lines of a file, or why it cannot be read.
fn tail(path: &Path, lines: usize) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("({}: {e})", path.display()),
    }
}

/// Litecoin regtest: creates the MWEB wallets and mines, to `mining_address`, through
/// MWEB's activation, with a peg-in in its first block (the first HogEx needs one: mining
/// stops at 431 otherwise) and a peg-in and a peg-out in the next: the tip ends at
/// `MWEB_ACTIVATION + 1` (from a chain below it), `miner` with mature coins.
pub async fn activate_mweb(rpc: &Rpc, miner: &Rpc, mining_address: &str) -> Result<(), RpcError> {
    for wallet in [PEGIN_WALLET, MWEB_WALLET] {
        let _: Value = rpc.call("createwallet", json!([wallet])).await?;
    }
    let mine = |n: u64| async move {
        let _: Vec<String> = rpc.call("generatetoaddress", json!([n, mining_address])).await?;
        Ok::<_, RpcError>(())
    };
    let height: u64 = rpc.call("getblockcount", json!([])).await?;
    let mature = COINBASE_MATURITY + 1;
    if height < mature {
        mine(mature - height).await?;
    }
    fund_pegins(rpc, miner).await?;
    let height: u64 = rpc.call("getblockcount", json!([])).await?;
    if height + 1 < MWEB_ACTIVATION {
        mine(MWEB_ACTIVATION - 1 - height).await?;
    }
    for _ in 0..2 {
        mweb_traffic(rpc, miner).await?;
        mine(1).await?;
    }
    Ok(())
}

/// Gives the peg-in wallet [`PEGIN_COINS`] coins of 1 LTC from `miner`.
async fn fund_pegins(rpc: &Rpc, miner: &Rpc) -> Result<(), RpcError> {
    let pegin = rpc.with_wallet(PEGIN_WALLET);
    let mut outputs = Map::new();
    for _ in 0..PEGIN_COINS {
        let address: String = pegin.call("getnewaddress", json!(["", "bech32"])).await?;
        outputs.insert(address, json!(1.0));
    }
    let _: String = miner.call("sendmany", json!(["", outputs])).await?;
    Ok(())
}

/// Litecoin with MWEB active: publishes, without mining, a peg-in (a confirmed 1 LTC coin
/// of the peg-in wallet, whole, to an MWEB address of the MWEB wallet) and, once the MWEB
/// wallet has confirmed coins, a peg-out (0.5 LTC from it to a canonical `miner` address).
/// The next block's HogEx takes the peg-in and pays the peg-out. Refills the peg-in wallet
/// from `miner` when it runs low (usable once mined). Returns the peg-in's txid.
pub async fn mweb_traffic(rpc: &Rpc, miner: &Rpc) -> Result<Txid, RpcError> {
    let pegin = rpc.with_wallet(PEGIN_WALLET);
    let mweb = rpc.with_wallet(MWEB_WALLET);
    let into: String = mweb.call("getnewaddress", json!(["", "mweb"])).await?;
    // Subtracting the fee from the amount makes one coin pay exactly, without change.
    let txid: String = pegin.call("sendtoaddress", json!([into, 1.0, "", "", true])).await?;
    let left: f64 = pegin.call("getbalance", json!(["*", 1])).await?;
    if left < 5.0 {
        fund_pegins(rpc, miner).await?;
    }
    let confirmed: f64 = mweb.call("getbalance", json!(["*", 1])).await?;
    if confirmed >= 0.6 {
        let back: String = miner.call("getnewaddress", json!(["", "bech32"])).await?;
        let _: String = mweb.call("sendtoaddress", json!([back, 0.5])).await?;
    }
    Ok(Txid::from_str(&txid).unwrap_or_else(|e| panic!("sendtoaddress returned {txid:?}: {e}")))
}

/// A regtest node in a temp dir, stopped and deleted on drop.
#[derive(Debug)]
pub struct Node {
    child: Child,
    rpc: Rpc,
    wallet: Rpc,
    watch: Rpc,
    port: u16,
    litecoin: bool,
    /// Where [`mine`](Self::mine) sends coinbase outputs (a `miner` wallet address).
    mining_address: String,
    /// Declared last: removed after the process is gone.
    dir: tempfile::TempDir,
}

impl Node {
    /// Starts a node and funds its `miner` wallet with mature coins. Panics, with the end
    /// of the node's log, if it does not answer within 30 s.
    pub async fn start() -> Node {
        Node::start_with(&[]).await
    }

    /// [`Node::start`], with `extra` arguments for the node (for example
    /// `-mempoolreplacement=1`, which Litecoin Core needs to accept BIP125 replacements).
    pub async fn start_with(extra: &[&str]) -> Node {
        let binary = binary();
        let litecoin = is_litecoin_binary(&binary);
        // A port picked here can be taken by someone else before the node binds it: the
        // node then exits, and another port is tried.
        let mut failures = Vec::new();
        let mut node = loop {
            match Node::spawn(&binary, litecoin, extra).await {
                Ok(node) => break node,
                Err(why) if failures.len() < 2 => failures.push(why),
                Err(why) => panic!(
                    "{} did not start, 3 times:\n{}\n{why}",
                    binary.display(),
                    failures.join("\n")
                ),
            }
        };
        node.setup().await;
        node
    }

    /// Starts the process and waits until RPC answers; on failure, why (with the log).
    async fn spawn(binary: &Path, litecoin: bool, extra: &[&str]) -> Result<Node, String> {
        let dir = tempfile::Builder::new().prefix("tc-regtest-").tempdir().unwrap();
        let port = free_port();
        let mut command = command(binary, dir.path(), port);
        command.args(extra);
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));

        let url = format!("http://127.0.0.1:{port}");
        let cookie = dir.path().join("regtest").join(".cookie");
        let mut config = RpcConfig::new(url, RpcAuth::Cookie(cookie));
        config.timeout = Duration::from_secs(60);
        let rpc = Rpc::new(config).unwrap();
        // The miner and watch wallets are created by `setup`.
        let (wallet, watch) = (rpc.with_wallet("miner"), rpc.with_wallet("watch"));
        let mut node =
            Node { child, rpc, wallet, watch, port, litecoin, mining_address: String::new(), dir };
        let probe = node.rpc.clone().with_timeout(Duration::from_secs(2), 0);
        let deadline = Instant::now() + STARTUP;
        loop {
            let error = match probe.call::<Value>("getblockchaininfo", json!([])).await {
                Ok(_) => return Ok(node),
                Err(error) => error,
            };
            if let Ok(Some(status)) = node.child.try_wait() {
                return Err(format!("the node exited ({status}):\n{}", node.logs()));
            }
            if Instant::now() > deadline {
                let why = format!("no RPC answer within {STARTUP:?} ({error}):\n{}", node.logs());
                return Err(why);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Creates the wallets and mines mature coins to `miner`.
    async fn setup(&mut self) {
        let _: Value = self.rpc.call("createwallet", json!(["miner"])).await.unwrap();
        // Private keys disabled and blank: accepts watch-only imports in both wallet kinds.
        let _: Value = self.rpc.call("createwallet", json!(["watch", true, true])).await.unwrap();
        self.mining_address = self.new_address().await;
        if self.litecoin {
            if let Err(e) = activate_mweb(&self.rpc, &self.wallet, &self.mining_address).await {
                self.fail("activating MWEB", e);
            }
        } else {
            self.mine(COINBASE_MATURITY).await;
            self.mature().await;
        }
    }

    /// Litecoin only: a peg-in and a peg-out in the mempool (see [`mweb_traffic`]).
    /// Returns the peg-in's txid.
    pub async fn mweb_traffic(&self) -> Txid {
        assert!(self.litecoin, "MWEB is Litecoin's");
        match mweb_traffic(&self.rpc, &self.wallet).await {
            Ok(pegin) => pegin,
            Err(e) => self.fail("MWEB traffic", e),
        }
    }

    /// The end of `debug.log` and of stderr, for failure messages.
    pub fn logs(&self) -> String {
        let debug_log = self.dir.path().join("regtest").join("debug.log");
        format!(
            "--- {} (last {LOG_TAIL} lines)\n{}\n--- stderr\n{}",
            debug_log.display(),
            tail(&debug_log, LOG_TAIL),
            tail(&self.dir.path().join("stderr.log"), LOG_TAIL)
        )
    }

    /// Node-level RPC (no wallet).
    pub fn rpc(&self) -> &Rpc {
        &self.rpc
    }

    /// RPC for the funded `miner` wallet.
    pub fn wallet(&self) -> &Rpc {
        &self.wallet
    }

    /// Base URL of the REST interface (the RPC port): `http://127.0.0.1:<port>`.
    pub fn rest_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A REST block source for this node.
    pub fn rest_blocks(&self) -> RestBlocks {
        RestBlocks::new(self.rest_url()).unwrap()
    }

    /// The data directory (with `regtest/debug.log`).
    pub fn datadir(&self) -> &Path {
        self.dir.path()
    }

    /// The segwit address prefix: `rltc` on Litecoin regtest, `bcrt` on Bitcoin regtest.
    pub fn hrp(&self) -> &'static str {
        if self.litecoin {
            "rltc"
        } else {
            "bcrt"
        }
    }

    /// Whether the node is litecoind (else bitcoind).
    pub fn is_litecoin(&self) -> bool {
        self.litecoin
    }

    fn fail(&self, what: &str, error: RpcError) -> ! {
        panic!("{what}: {error}\n{}", self.logs())
    }

    /// Mines `n` blocks to the `miner` wallet.
    pub async fn mine(&self, n: u64) -> Vec<BlockHash> {
        let address = self.mining_address.clone();
        self.mine_to(n, &address).await
    }

    /// Mines `n` blocks paying their coinbase to `address`.
    pub async fn mine_to(&self, n: u64, address: &str) -> Vec<BlockHash> {
        let hashes: Vec<String> =
            match self.rpc.call("generatetoaddress", json!([n, address])).await {
                Ok(hashes) => hashes,
                Err(e) => self.fail(&format!("mining {n} blocks to {address}"), e),
            };
        hashes.iter().map(|hash| BlockHash::from_str(hash).unwrap()).collect()
    }

    /// Mines `COINBASE_MATURITY + 1` blocks: at least one more coinbase output of the
    /// `miner` wallet becomes spendable. [`start`](Self::start) already did this.
    pub async fn mature(&self) {
        self.mine(COINBASE_MATURITY + 1).await;
    }

    /// A new bech32 (P2WPKH) address of the `miner` wallet.
    pub async fn new_address(&self) -> String {
        match self.wallet.call("getnewaddress", json!(["", "bech32"])).await {
            Ok(address) => address,
            Err(e) => self.fail("getnewaddress", e),
        }
    }

    /// Publishes, without mining, a `miner` wallet transaction paying `sats` to
    /// `address`, with an OP_RETURN output carrying `op_return` if given (at most 80
    /// bytes are standard).
    pub async fn deposit(&self, address: &str, sats: u64, op_return: Option<&[u8]>) -> Txid {
        self.deposit_from(&self.wallet, address, sats, op_return).await
    }

    /// A funded wallet of its own, named `name` (a distinct depositor: its coins, and so
    /// its deposits' refund addresses, are its own). Funded with `sats` from the miner and
    /// one block mined.
    pub async fn sender(&self, name: &str, sats: u64) -> Rpc {
        let created = self.rpc.call::<Value>("createwallet", json!([name])).await;
        if let Err(e) = created {
            self.fail(&format!("createwallet {name}"), e);
        }
        let wallet = self.rpc.with_wallet(name);
        let address: String = match wallet.call("getnewaddress", json!(["", "bech32"])).await {
            Ok(a) => a,
            Err(e) => self.fail("getnewaddress", e),
        };
        self.deposit(&address, sats, None).await;
        self.mine(1).await;
        // The node tells its wallets about a block after `generatetoaddress` returns: wait
        // until this one sees its coin confirmed, or its first payment may find no funds.
        for _ in 0..200 {
            let balance: f64 = wallet.call("getbalance", json!(["*", 1])).await.unwrap_or(0.0);
            if btc_to_sats(balance).is_some_and(|b| b >= sats) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        wallet
    }

    /// A wallet named `name` holding `count` confirmed outputs of `each` sats, none of
    /// them coinbase outputs: its payments survive reorgs (a coinbase output near
    /// maturity becomes immature when blocks are disconnected, and the node then drops
    /// what spends it), and it can pay many times before a block without long chains of
    /// unconfirmed transactions. The funding is buried under 40 blocks, so that a test's
    /// reorg does not disconnect it (its own inputs are coinbase outputs).
    pub async fn many_coins(&self, name: &str, count: usize, each: u64) -> Rpc {
        if let Err(e) = self.rpc.call::<Value>("createwallet", json!([name])).await {
            self.fail(&format!("createwallet {name}"), e);
        }
        let wallet = self.rpc.with_wallet(name);
        let mut outputs = Map::new();
        for _ in 0..count {
            let address: String = match wallet.call("getnewaddress", json!(["", "bech32"])).await {
                Ok(a) => a,
                Err(e) => self.fail("getnewaddress", e),
            };
            outputs.insert(address, json!(format_btc(each)));
        }
        if let Err(e) = self.wallet.call::<String>("sendmany", json!(["", outputs])).await {
            self.fail("sendmany", e);
        }
        self.mine(40).await;
        wallet
    }

    /// Like [`deposit`](Self::deposit), paid by `wallet`'s coins.
    pub async fn deposit_from(
        &self,
        wallet: &Rpc,
        address: &str,
        sats: u64,
        op_return: Option<&[u8]>,
    ) -> Txid {
        let signed = self.signed_payment(wallet, address, sats, op_return).await;
        let context = format!("depositing {sats} sat to {address}");
        match self.send_raw(&signed).await {
            Ok(txid) => txid,
            Err(e) => self.fail(&context, e),
        }
    }

    /// A transaction paying `sats` to `address` (and an OP_RETURN output carrying
    /// `op_return`), funded and signed by `wallet`, not sent.
    pub async fn signed_payment(
        &self,
        wallet: &Rpc,
        address: &str,
        sats: u64,
        op_return: Option<&[u8]>,
    ) -> Transaction {
        #[derive(Deserialize)]
        struct Hex {
            hex: String,
        }
        #[derive(Deserialize)]
        struct Signed {
            hex: String,
            complete: bool,
        }
        let mut payment = Map::new();
        payment.insert(address.to_string(), json!(format_btc(sats)));
        let mut outputs = vec![Value::Object(payment)];
        if let Some(data) = op_return {
            outputs.push(json!({ "data": hex::encode(data) }));
        }
        let context = format!("a payment of {sats} sat to {address}");
        let result = async {
            let raw: String = wallet.call("createrawtransaction", json!([[], outputs])).await?;
            let funded: Hex = wallet.call("fundrawtransaction", json!([raw])).await?;
            let signed: Signed =
                wallet.call("signrawtransactionwithwallet", json!([funded.hex])).await?;
            assert!(signed.complete, "{context}: the wallet could not sign every input");
            Ok::<_, RpcError>(signed.hex)
        };
        match result.await {
            Ok(hex) => bitcoin::consensus::encode::deserialize_hex(&hex)
                .unwrap_or_else(|e| panic!("{context}: the signed transaction: {e}")),
            Err(e) => self.fail(&context, e),
        }
    }

    /// Publishes `tx` (see [`Rpc::send_raw_transaction`]).
    pub async fn send_raw(&self, tx: &Transaction) -> Result<Txid, RpcError> {
        self.rpc.send_raw_transaction(tx).await
    }

    /// Satoshis received by `address` in transactions with at least one confirmation
    /// (`getreceivedbyaddress`). The address must be a `miner` wallet address or have been
    /// [`watch`](Self::watch)ed before the transactions.
    pub async fn received_by(&self, address: &str) -> u64 {
        let params = json!([address, 1]);
        let btc = match self.wallet.call::<f64>("getreceivedbyaddress", params.clone()).await {
            Ok(btc) => btc,
            // -4: "Address not found in wallet": not the miner's, maybe watched.
            Err(e) if e.rpc_code() == Some(-4) => {
                match self.watch.call::<f64>("getreceivedbyaddress", params).await {
                    Ok(btc) => btc,
                    Err(e) => self.fail(&format!("{address} is not watched (call watch)"), e),
                }
            }
            Err(e) => self.fail(&format!("getreceivedbyaddress {address}"), e),
        };
        btc_to_sats(btc).unwrap()
    }

    /// Imports `address` watch-only into the `watch` wallet, without rescanning: only
    /// transactions seen afterwards count in [`received_by`](Self::received_by).
    pub async fn watch(&self, address: &str) {
        let legacy = self.watch.call::<Value>("importaddress", json!([address, "", false])).await;
        let Err(legacy_error) = legacy else { return };
        // A descriptor wallet (recent bitcoind): -4 "Only legacy wallets are supported",
        // or -32601 once the legacy RPCs are gone.
        if !matches!(legacy_error.rpc_code(), Some(-4 | -32601)) {
            self.fail(&format!("importaddress {address}"), legacy_error);
        }
        #[derive(Deserialize)]
        struct Info {
            descriptor: String,
        }
        #[derive(Deserialize)]
        struct Imported {
            success: bool,
            #[serde(default)]
            error: Value,
        }
        let info: Info =
            match self.rpc.call("getdescriptorinfo", json!([format!("addr({address})")])).await {
                Ok(info) => info,
                Err(e) => self.fail(&format!("getdescriptorinfo addr({address})"), e),
            };
        let request = json!([[{ "desc": info.descriptor, "timestamp": "now" }]]);
        let imported: Vec<Imported> = match self.watch.call("importdescriptors", request).await {
            Ok(imported) => imported,
            Err(e) => self.fail(&format!("importdescriptors addr({address})"), e),
        };
        for result in imported {
            assert!(result.success, "importing {address}: {}", result.error);
        }
    }

    /// Confirmed unspent outputs paying `target` (an address, or a scriptPubKey in hex),
    /// sorted, from the UTXO set (`scantxoutset`; the mempool is not included).
    pub async fn utxos_of(&self, target: &str) -> Vec<(OutPoint, u64)> {
        #[derive(Deserialize)]
        struct Unspent {
            txid: String,
            vout: u32,
            amount: f64,
        }
        #[derive(Deserialize)]
        struct Scan {
            success: bool,
            unspents: Vec<Unspent>,
        }
        let is_script = hex::decode(target).is_ok();
        let descriptor =
            if is_script { format!("raw({target})") } else { format!("addr({target})") };
        let scan: Scan = match self.rpc.call("scantxoutset", json!(["start", [descriptor]])).await {
            Ok(scan) => scan,
            Err(e) => self.fail(&format!("scantxoutset {descriptor}"), e),
        };
        assert!(scan.success, "scantxoutset {descriptor} did not complete");
        let mut utxos: Vec<(OutPoint, u64)> = scan
            .unspents
            .iter()
            .map(|u| {
                let outpoint = OutPoint { txid: Txid::from_str(&u.txid).unwrap(), vout: u.vout };
                (outpoint, btc_to_sats(u.amount).unwrap())
            })
            .collect();
        utxos.sort();
        utxos
    }

    /// Marks `hash` invalid: the chain reorganizes to its parent (`invalidateblock`).
    pub async fn invalidate(&self, hash: BlockHash) {
        if let Err(e) = self.rpc.invalidate_block(hash).await {
            self.fail(&format!("invalidateblock {hash}"), e);
        }
    }

    /// Undoes [`invalidate`](Self::invalidate) (`reconsiderblock`).
    pub async fn reconsider(&self, hash: BlockHash) {
        if let Err(e) = self.rpc.reconsider_block(hash).await {
            self.fail(&format!("reconsiderblock {hash}"), e);
        }
    }

    /// Height and hash of the best block, read atomically (`getblockchaininfo`).
    pub async fn tip(&self) -> (u64, BlockHash) {
        #[derive(Deserialize)]
        struct Info {
            blocks: u64,
            bestblockhash: String,
        }
        let info: Info = match self.rpc.call("getblockchaininfo", json!([])).await {
            Ok(info) => info,
            Err(e) => self.fail("getblockchaininfo", e),
        };
        (info.blocks, BlockHash::from_str(&info.bestblockhash).unwrap())
    }

    /// Stops the node: SIGTERM, then SIGKILL if it has not exited within 5 s.
    fn stop(&mut self) {
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: `kill` has no memory-safety preconditions; the pid is our unreaped
            // child's, so it cannot have been reused by another process.
            #[allow(unsafe_code)]
            let _ = unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + SHUTDOWN;
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                _ => return,
            }
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
