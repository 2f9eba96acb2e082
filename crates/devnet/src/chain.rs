//! The node side of `devnet up`: a litecoind in regtest that outlives the command (the
//! flags of [`bitcoin_network::testing::node`]), its funded wallet, deposits with an
//! OP_RETURN instruction, mining, and the group's deposit address.
//!
//! Every call returns a [`DevnetError`] naming the RPC method that failed; nothing here
//! panics on what the node answers.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command},
    time::{Duration, Instant},
};

use bitcoin::ScriptBuf;
use bitcoin_network::{
    params::{Chain, Coin, Params},
    rpc::{format_btc, Rpc, RpcAuth, RpcConfig, RpcError},
    sign::script_pubkey,
    testing::node,
    Address,
};
use ciphersuite::group::GroupEncoding;
use modular_frost::curve::{Ciphersuite, Secp256k1};
use primitives::{InInstruction, SettlementAccount};
use scanner::OutputKind;
use serde::{de::DeserializeOwned, Deserialize};
use serde_json::{json, Map, Value};

use crate::{io, record::NodeRecord, spawn_logged, DevnetError};

/// The wallet `devnet up` funds and pays deposits from.
pub const WALLET: &str = "miner";
/// How long the node may take to answer RPC.
const STARTUP: Duration = Duration::from_secs(30);

/// Litecoin regtest, the devnet's chain.
pub fn params() -> Params {
    Params::new(Coin::Litecoin, Chain::Regtest)
}

/// A client of a running node and its [`WALLET`].
#[derive(Debug)]
pub struct NodeClient {
    rt: tokio::runtime::Runtime,
    rpc: Rpc,
    wallet: Rpc,
}

impl NodeClient {
    /// A client for the node at `rpc_url` (cookie authentication). Does not connect.
    pub fn new(rpc_url: &str, cookie_file: &Path) -> Result<NodeClient, DevnetError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(io("starting a Tokio runtime"))?;
        let mut config = RpcConfig::new(rpc_url, RpcAuth::Cookie(cookie_file.to_path_buf()));
        config.timeout = Duration::from_secs(60);
        let rpc = Rpc::new(config).map_err(rpc_error(format!("the node URL {rpc_url}")))?;
        let wallet = rpc.with_wallet(WALLET);
        Ok(NodeClient { rt, rpc, wallet })
    }

    /// A client for a recorded node.
    pub fn connect(node: &NodeRecord) -> Result<NodeClient, DevnetError> {
        let cookie = node.cookie_file.as_deref().ok_or_else(|| {
            DevnetError::Failed(format!("the node at {} has no RPC cookie file", node.rpc_url))
        })?;
        NodeClient::new(&node.rpc_url, cookie)
    }

    fn call<T: DeserializeOwned>(
        &self,
        wallet: bool,
        method: &str,
        params: Value,
    ) -> Result<T, DevnetError> {
        let rpc = if wallet { &self.wallet } else { &self.rpc };
        self.rt.block_on(rpc.call(method, params)).map_err(rpc_error(format!("`{method}`")))
    }

    /// Whether the node answers RPC (one quick attempt).
    fn answers(&self) -> Result<(), RpcError> {
        let probe = self.rpc.clone().with_timeout(Duration::from_secs(2), 0);
        self.rt.block_on(probe.call::<Value>("getblockchaininfo", json!([]))).map(|_| ())
    }

    /// The height of the best block.
    pub fn tip(&self) -> Result<u64, DevnetError> {
        self.call(false, "getblockcount", json!([]))
    }

    /// Mines `blocks` blocks to `address`; returns the new tip's height.
    pub fn mine(&self, blocks: u64, address: &str) -> Result<u64, DevnetError> {
        let _: Vec<String> = self.call(false, "generatetoaddress", json!([blocks, address]))?;
        self.tip()
    }

    /// A new bech32 address of the wallet (a payee for `coordinator-sim burn`).
    pub fn new_address(&self) -> Result<String, DevnetError> {
        self.call(true, "getnewaddress", json!(["", "bech32"]))
    }

    /// Creates the wallets and mines until the deposit wallet holds mature coinbase
    /// outputs and MWEB is active, as on mainnet: MWEB's first block (432) needs a peg-in,
    /// and the next one also carries a peg-out. Returns the mining address.
    pub fn fund(&self) -> Result<String, DevnetError> {
        let _: Value = self.call(false, "createwallet", json!([WALLET]))?;
        let address = self.new_address()?;
        self.rt
            .block_on(node::activate_mweb(&self.rpc, &self.wallet, &address))
            .map_err(rpc_error("activating MWEB".into()))?;
        Ok(address)
    }

    /// Publishes, without mining, a peg-in and a peg-out (see
    /// [`node::mweb_traffic`]): the next block carries both.
    pub fn mweb_traffic(&self) -> Result<(), DevnetError> {
        self.rt
            .block_on(node::mweb_traffic(&self.rpc, &self.wallet))
            .map(|_| ())
            .map_err(rpc_error("MWEB traffic".into()))
    }

    /// The wallet's spendable balance, in litoshis.
    pub fn balance(&self) -> Result<u64, DevnetError> {
        let btc: f64 = self.call(true, "getbalance", json!([]))?;
        bitcoin_network::rpc::btc_to_sats(btc)
            .ok_or_else(|| DevnetError::Failed(format!("the wallet's balance {btc} is not valid")))
    }

    /// Publishes (without mining) a wallet transaction paying `sats` to `address`, with an
    /// OP_RETURN output carrying `data`; returns its txid.
    pub fn deposit(&self, address: &str, sats: u64, data: &[u8]) -> Result<String, DevnetError> {
        #[derive(Deserialize)]
        struct Funded {
            hex: String,
        }
        #[derive(Deserialize)]
        struct Signed {
            hex: String,
            complete: bool,
        }
        let mut payment = Map::new();
        payment.insert(address.to_string(), json!(format_btc(sats)));
        let outputs = json!([payment, { "data": hex::encode(data) }]);
        let raw: String = self.call(true, "createrawtransaction", json!([[], outputs]))?;
        let funded: Funded = self.call(true, "fundrawtransaction", json!([raw]))?;
        let signed: Signed =
            self.call(true, "signrawtransactionwithwallet", json!([funded.hex]))?;
        if !signed.complete {
            return Err(DevnetError::Failed(format!(
                "the `{WALLET}` wallet could not sign every input of the deposit"
            )));
        }
        self.call(false, "sendrawtransaction", json!([signed.hex]))
    }
}

fn rpc_error(what: String) -> impl FnOnce(RpcError) -> DevnetError {
    move |source| DevnetError::Rpc { what, source }
}

/// The node binary (`$BITCOIND`, else `litecoind`), checked to be Litecoin Core.
pub fn node_binary() -> Result<PathBuf, DevnetError> {
    let binary = node::binary();
    let out = Command::new(&binary).arg("-version").output().map_err(|e| {
        DevnetError::Failed(format!(
            "cannot run {} ({e}): install litecoind (scripts/devnet does: apt-get install -y \
             litecoind) or set BITCOIND=/path/to/litecoind",
            binary.display()
        ))
    })?;
    let version = String::from_utf8_lossy(&out.stdout);
    if !version.lines().next().is_some_and(|l| l.contains("Litecoin Core")) {
        return Err(DevnetError::Failed(format!(
            "{} is not Litecoin Core (the devnet's amounts and addresses are Litecoin's)",
            binary.display()
        )));
    }
    Ok(binary)
}

/// A node process started by [`start_node`].
#[derive(Debug)]
pub struct StartedNode {
    /// The process (detached: it outlives the caller).
    pub child: Child,
    /// Its RPC port.
    pub port: u16,
    /// Its RPC URL.
    pub rpc_url: String,
    /// Its cookie file.
    pub cookie_file: PathBuf,
}

/// Starts the node, detached, with its data in `datadir` and standard error appended to
/// `log`, on a free loopback port. `started` is called with the process as soon as it
/// exists (to record it), then this waits until RPC answers. A port picked here can be
/// taken before the node binds it: the node then exits, and another port is tried.
pub fn start_node(
    datadir: &Path,
    log: &Path,
    mut started: impl FnMut(&Child, u16) -> Result<(), DevnetError>,
) -> Result<(StartedNode, NodeClient), DevnetError> {
    let binary = node_binary()?;
    std::fs::create_dir_all(datadir).map_err(io(format!("creating {}", datadir.display())))?;
    let mut failures = vec![];
    loop {
        let port = bus::testing::free_port();
        let command = node::command(&binary, datadir, port);
        let mut child = spawn_logged(command, log, true)?;
        started(&child, port)?;
        let rpc_url = format!("http://127.0.0.1:{port}");
        let cookie_file = datadir.join("regtest").join(".cookie");
        let client = NodeClient::new(&rpc_url, &cookie_file)?;
        let deadline = Instant::now() + STARTUP;
        let failure = loop {
            let error = match client.answers() {
                Ok(()) => {
                    let node = StartedNode { child, port, rpc_url, cookie_file };
                    return Ok((node, client));
                }
                Err(error) => error,
            };
            if let Ok(Some(status)) = child.try_wait() {
                break format!("litecoind exited ({status})");
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break format!("no RPC answer within {STARTUP:?} ({error})");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        failures.push(failure);
        if failures.len() == 3 {
            return Err(DevnetError::Failed(format!(
                "litecoind did not start, 3 times ({}); see {} and {}",
                failures.join("; "),
                log.display(),
                datadir.join("regtest").join("debug.log").display()
            )));
        }
    }
}

/// The group's deposit address (its External key's taproot address) from the network
/// key a processor reports (hex, compressed).
pub fn deposit_address(network_key: &str) -> Result<String, DevnetError> {
    let script = group_script(network_key, OutputKind::External)?;
    let address = Address::from_script(script)
        .map_err(|e| DevnetError::Failed(format!("the reported key {network_key}: {e}")))?;
    Ok(address.display(&params()))
}

/// The group's output script of `kind` from the network key a processor reports (hex,
/// compressed).
pub fn group_script(network_key: &str, kind: OutputKind) -> Result<ScriptBuf, DevnetError> {
    let bad = |why: String| DevnetError::Failed(format!("the reported key {network_key}: {why}"));
    let bytes = hex::decode(network_key).map_err(|e| bad(e.to_string()))?;
    let point = <Secp256k1 as Ciphersuite>::read_G(&mut bytes.as_slice())
        .map_err(|e| bad(format!("not a point ({e})")))?;
    debug_assert_eq!(point.to_bytes().as_slice(), bytes.as_slice());
    script_pubkey(point, kind).map_err(|e| bad(e.to_string()))
}

/// Longest account name.
pub const MAX_NAME: usize = 32;

/// A settlement account from the command line: 64 hex characters, or a name of 1 to 32
/// printable ASCII characters, which is its bytes padded with zeros (`alice` is
/// `616c696365` followed by 27 zero bytes), so the ledger's hex shows the name.
pub fn parse_account(s: &str) -> Result<[u8; 32], DevnetError> {
    if s.len() == 64 {
        if let Ok(bytes) = hex::decode(s) {
            let mut account = [0; 32];
            account.copy_from_slice(&bytes);
            return Ok(account);
        }
    }
    if s.is_empty() || s.len() > MAX_NAME || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(DevnetError::Failed(format!(
            "{s:?} is not an account: give 64 hex characters, or a name of 1 to {MAX_NAME} \
             printable ASCII characters (no spaces)"
        )));
    }
    let mut account = [0; 32];
    account[..s.len()].copy_from_slice(s.as_bytes());
    Ok(account)
}

/// The name an account was made from by [`parse_account`], if it was.
pub fn account_name(account: &[u8]) -> Option<&str> {
    let end = account.iter().position(|b| *b == 0).unwrap_or(account.len());
    let (name, rest) = account.split_at(end);
    let plausible = !name.is_empty() && name.iter().all(u8::is_ascii_graphic);
    (plausible && rest.iter().all(|b| *b == 0)).then(|| std::str::from_utf8(name).ok()).flatten()
}

/// The OP_RETURN data crediting `account` (no return address), as the scenario sends.
pub fn instruction(account: [u8; 32]) -> Result<Vec<u8>, DevnetError> {
    let instruction = InInstruction { account: SettlementAccount(account), return_address: None };
    bitcoin_network::instruction::encode(&instruction)
        .map_err(|e| DevnetError::Failed(format!("encoding the instruction: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_are_hex_or_padded_names() {
        let hex64 = "ab".repeat(32);
        assert_eq!(parse_account(&hex64).ok(), Some([0xab; 32]));
        let alice = parse_account("alice").ok();
        let mut expected = [0u8; 32];
        expected[..5].copy_from_slice(b"alice");
        assert_eq!(alice, Some(expected));
        assert_eq!(account_name(&expected), Some("alice"));
        assert_eq!(account_name(&[0xab; 32]), None);
        assert_eq!(account_name(&[0; 32]), None);
        let mut gap = expected;
        gap[10] = 1;
        assert_eq!(account_name(&gap), None);
        for bad in ["", "two words", &"x".repeat(33), "é"] {
            assert!(parse_account(bad).is_err(), "{bad:?} accepted");
        }
        // 64 characters that are not hex are too long for a name.
        assert!(parse_account(&"z".repeat(64)).is_err());
    }

    #[test]
    fn the_instruction_decodes_to_the_account() {
        let data = instruction([7; 32]).ok().unwrap_or_default();
        let expected = InInstruction { account: SettlementAccount([7; 32]), return_address: None };
        assert_eq!(
            bitcoin_network::instruction::decode(&data),
            scanner::Instruction::Valid(expected)
        );
    }
}
