//! Monero for `devnet up --network monero`: monerod in regtest on a copy of the test
//! history (1,600 blocks, mined once per machine), detached like the other processes, and
//! a deposit wallet (the history's coinbase outputs) whose spent outputs are remembered in
//! the devnet directory, so each `devnet deposit` spends fresh ones.
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use monero_network::instruction;
use monero_network::rpc::Node as Rpc;
use monero_network::testing::node::{self as test_node, read_outputs};
use monero_network::testing::wallet::{random_pair, TestWallet};
use monero_wallet::address::{MoneroAddress, Network as AddressNetwork};
use primitives::{InInstruction, SettlementAccount};

use crate::{io, spawn_logged, DevnetError};

/// How long monerod may take to answer after it starts.
const STARTUP: Duration = Duration::from_secs(60);
/// The file, in the node's data directory, counting the deposit wallet's spent outputs.
const SPENT: &str = "deposit-wallet-spent";

fn runtime() -> Result<tokio::runtime::Runtime, DevnetError> {
    tokio::runtime::Runtime::new().map_err(io("starting a Tokio runtime"))
}

/// Starts monerod (regtest) on a copy of the history in `datadir`, detached, logging to
/// `log`; `started` records it as soon as it runs. Returns it and its RPC URL.
pub fn start_node(
    datadir: &Path,
    log: &Path,
    mut started: impl FnMut(&Child, u16) -> Result<(), DevnetError>,
) -> Result<(Child, String), DevnetError> {
    let rt = runtime()?;
    let history = rt.block_on(test_node::history());
    test_node::copy_history(&history, datadir);
    let port = bus::testing::free_port();
    let command = test_node::command(&test_node::binary(), datadir, port);
    let mut child = spawn_logged(command, log, true).map_err(|e| {
        DevnetError::Failed(format!(
            "{e}: install monerod (scripts/devnet does: apt-get install -y monero) or set \
             MONEROD=/path/to/monerod"
        ))
    })?;
    started(&child, port)?;
    let url = format!("http://127.0.0.1:{port}");
    let rpc = Rpc::new(url.clone(), Duration::from_secs(5));
    let deadline = Instant::now() + STARTUP;
    loop {
        if rt.block_on(rpc.tip()).is_ok() {
            return Ok((child, url));
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(DevnetError::Failed(format!(
                "monerod exited ({status}); see {}",
                datadir.join("monerod.log").display()
            )));
        }
        if Instant::now() > deadline {
            return Err(DevnetError::Failed(format!(
                "monerod did not answer within {STARTUP:?}; see {}",
                datadir.join("monerod.log").display()
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A fresh address of nobody's (to mine to, or to pay burns to).
pub fn fresh_address() -> String {
    random_pair().legacy_address(AddressNetwork::Mainnet).to_string()
}

/// Pays `amount` piconero to `address` with an instruction crediting `account`, from the
/// deposit wallet of the node whose data directory is `datadir`; returns the transaction
/// id. The transaction is published, not mined.
pub fn deposit(
    datadir: &Path,
    rpc_url: &str,
    address: &str,
    account: [u8; 32],
    amount: u64,
) -> Result<String, DevnetError> {
    let to = MoneroAddress::from_str(AddressNetwork::Mainnet, address)
        .map_err(|e| DevnetError::Failed(format!("the deposit address {address}: {e}")))?;
    let outputs = read_outputs(&datadir.join("outputs.bin"));
    let spent_file = datadir.join(SPENT);
    let spent: usize =
        std::fs::read_to_string(&spent_file).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
    let left: Vec<_> = outputs.into_iter().skip(spent).collect();
    if left.is_empty() {
        return Err(DevnetError::Failed("the deposit wallet has spent all its outputs".into()));
    }
    let wallet = TestWallet::new(left);
    let before = wallet.unspent();
    let data = instruction::encode(&InInstruction {
        account: SettlementAccount(account),
        return_address: None,
    })
    .map_err(|e| DevnetError::Failed(format!("the instruction: {e}")))?;
    let rt = runtime()?;
    let rpc = Rpc::new(rpc_url.to_string(), Duration::from_secs(60));
    // The test wallet stops at the first error (an amount beyond its outputs, a node that
    // refuses): that is a refused deposit here, not a crash.
    let paid = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(wallet.pay(&rpc, to, amount, Some(data)))
    }))
    .map_err(|panic| {
        let reason = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unknown".into());
        DevnetError::Failed(format!("the deposit was not made: {reason}"))
    })?;
    let spent = spent + (before - wallet.unspent());
    write_atomically(&spent_file, spent.to_string().as_bytes())?;
    Ok(hex::encode(paid))
}

/// Mines `blocks` blocks (pooled transactions in the first) to a fresh address; returns
/// the new tip.
pub fn mine(rpc_url: &str, blocks: u64) -> Result<u64, DevnetError> {
    let rt = runtime()?;
    let rpc = Rpc::new(rpc_url.to_string(), Duration::from_secs(60));
    let to = random_pair().legacy_address(AddressNetwork::Mainnet);
    rt.block_on(test_node::mine(&rpc, blocks, &to));
    rt.block_on(rpc.tip()).map_err(|e| DevnetError::Failed(e.to_string()))
}

/// The node's best height.
pub fn tip(rpc_url: &str) -> Option<u64> {
    let rt = runtime().ok()?;
    rt.block_on(Rpc::new(rpc_url.to_string(), Duration::from_secs(5)).tip()).ok()
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), DevnetError> {
    let staged = PathBuf::from(format!("{}.new", path.display()));
    std::fs::write(&staged, bytes).map_err(io(format!("writing {}", staged.display())))?;
    std::fs::rename(&staged, path).map_err(io(format!("renaming {}", staged.display())))
}
