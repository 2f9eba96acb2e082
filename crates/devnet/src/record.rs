//! `devnet.json`: what `devnet up` started, so that `status`, `deposit`, `mine` and `down`
//! (separate invocations) find every process, port and file again.
//!
//! A process is identified by its pid and its start time (`/proc/<pid>/stat`, field 22),
//! so a pid reused by an unrelated process after a reboot or a crash is never signalled.
//! The record is rewritten (atomically: a temp file renamed) after every process starts,
//! so an interrupted `devnet up` leaves a record that `devnet down` can stop.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

use crate::{io, DevnetError};

/// The record's file name in the devnet directory.
pub const RECORD: &str = "devnet.json";
/// The file that marks a directory as made by `devnet up`: only such a directory is
/// cleared for a new devnet or purged.
pub const MARKER: &str = ".devnet-dir";
/// The record's format version.
pub const VERSION: u32 = 1;

/// What a recorded process is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// The network's node (litecoind or monerod, regtest).
    Node,
    /// `nats-server -js`.
    Nats,
    /// A processor.
    Processor,
    /// coordinator-sim.
    CoordinatorSim,
}

/// One process `devnet up` started.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRecord {
    /// What it is.
    pub role: Role,
    /// The processor's validator index.
    #[serde(default)]
    pub validator: Option<u16>,
    /// Its pid.
    pub pid: u32,
    /// Its start time in clock ticks since boot (Linux), to tell it from a later process
    /// with the same pid.
    #[serde(default)]
    pub start_time: Option<u64>,
    /// Its config file (processors and coordinator-sim).
    #[serde(default)]
    pub config: Option<PathBuf>,
    /// Its log file.
    pub log: PathBuf,
    /// Its HTTP (or, for the node, RPC; for NATS, client) port.
    pub port: u16,
    /// The node's program (`litecoind` when absent, as records before Monero).
    #[serde(default)]
    pub program: Option<String>,
}

impl ProcessRecord {
    /// `processor-2`, `coordinator-sim`, …
    pub fn name(&self) -> String {
        match (self.role, self.validator) {
            (Role::Node, _) => self.program.clone().unwrap_or_else(|| "litecoind".into()),
            (Role::Nats, _) => "nats-server".into(),
            (Role::Processor, Some(v)) => format!("processor-{v}"),
            (Role::Processor, None) => "processor".into(),
            (Role::CoordinatorSim, _) => "coordinator-sim".into(),
        }
    }

    /// Whether the recorded process is still running (and is the one recorded).
    pub fn running(&self) -> bool {
        running(self.pid, self.start_time)
    }
}

/// The node, as the processors and `devnet deposit`/`mine` reach it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// The RPC URL (REST on the same port).
    pub rpc_url: String,
    /// The RPC cookie file (none for monerod, whose RPC is open on loopback here).
    #[serde(default)]
    pub cookie_file: Option<PathBuf>,
    /// The data directory.
    pub datadir: PathBuf,
    /// The wallet deposits are paid from (funded with mature coinbase outputs).
    pub wallet: String,
    /// Where `devnet mine` sends coinbase outputs (an address of that wallet), once funded.
    #[serde(default)]
    pub mining_address: Option<String>,
}

/// coordinator-sim, as `status` and the user's `coordinator-sim burn`/`ledger` reach it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoordinatorRecord {
    /// Its config file (`coordinator-sim ledger --config <this>`).
    pub config: PathBuf,
    /// Its HTTP port (`/status`, `/ledger`, `/burn`).
    pub http: u16,
}

/// Everything `devnet up` started, in `<dir>/devnet.json`. The parts that exist only
/// once a step of `up` is done are options, as the record is saved after every step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// [`VERSION`].
    pub version: u32,
    /// The devnet directory (absolute).
    pub dir: PathBuf,
    /// The external network (`litecoin`).
    pub network: String,
    /// Processors.
    pub validators: u16,
    /// Signers needed.
    pub threshold: u16,
    /// Confirmations before a block is final (the processors' `[node] confirmations`).
    pub confirmations: u64,
    /// The `processor` binary the processors run (and `status` asks).
    pub processor_bin: PathBuf,
    /// The `coordinator-sim` binary.
    pub coordinator_bin: PathBuf,
    /// The node, once started.
    #[serde(default)]
    pub node: Option<NodeRecord>,
    /// The broker's URL, once started.
    #[serde(default)]
    pub nats_url: Option<String>,
    /// coordinator-sim, once its config is written.
    #[serde(default)]
    pub coordinator: Option<CoordinatorRecord>,
    /// The group's deposit address, once the key is active.
    #[serde(default)]
    pub deposit_address: Option<String>,
    /// `devnet up` finished: the key is active and every processor scans.
    #[serde(default)]
    pub ready: bool,
    /// Every process started, in start order.
    pub processes: Vec<ProcessRecord>,
}

fn unfinished(what: &str) -> DevnetError {
    DevnetError::Failed(format!(
        "`devnet up` did not get as far as {what}: run `devnet down`, then `devnet up` again"
    ))
}

impl Record {
    /// `<dir>/devnet.json`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(RECORD)
    }

    /// Reads `<dir>/devnet.json`: `Ok(None)` when there is none.
    pub fn load(dir: &Path) -> Result<Option<Record>, DevnetError> {
        let path = Record::path(dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(format!("reading {}", path.display()))(e)),
        };
        let record: Record = serde_json::from_str(&text)
            .map_err(|source| DevnetError::Output { what: path.display().to_string(), source })?;
        if record.version != VERSION {
            return Err(DevnetError::Failed(format!(
                "{} has format version {}; this devnet reads version {VERSION}",
                path.display(),
                record.version
            )));
        }
        Ok(Some(record))
    }

    /// Writes `<dir>/devnet.json` atomically.
    pub fn save(&self) -> Result<(), DevnetError> {
        let path = Record::path(&self.dir);
        let tmp = self.dir.join(format!("{RECORD}.tmp"));
        let text = serde_json::to_string_pretty(self).map_err(|source| DevnetError::Output {
            what: "encoding devnet.json".into(),
            source,
        })?;
        std::fs::write(&tmp, text).map_err(io(format!("writing {}", tmp.display())))?;
        std::fs::rename(&tmp, &path).map_err(io(format!("writing {}", path.display())))
    }

    /// The recorded processes still running.
    pub fn running(&self) -> Vec<&ProcessRecord> {
        self.processes.iter().filter(|p| p.running()).collect()
    }

    /// The processors, by validator.
    pub fn processors(&self) -> impl Iterator<Item = &ProcessRecord> {
        self.processes.iter().filter(|p| p.role == Role::Processor)
    }

    /// The node, or why there is none.
    pub fn node(&self) -> Result<&NodeRecord, DevnetError> {
        self.node.as_ref().ok_or_else(|| unfinished("starting the node"))
    }

    /// coordinator-sim, or why there is none.
    pub fn coordinator(&self) -> Result<&CoordinatorRecord, DevnetError> {
        self.coordinator.as_ref().ok_or_else(|| unfinished("writing the configs"))
    }

    /// The deposit address, or why there is none.
    pub fn deposit_address(&self) -> Result<&str, DevnetError> {
        self.deposit_address.as_deref().ok_or_else(|| unfinished("an active key"))
    }
}

/// `(state, start time)` of a process, from `/proc/<pid>/stat`; `None` if there is no
/// such process (or no `/proc`).
fn proc_stat(pid: u32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ...`: comm may contain spaces and parentheses, so split after the
    // last ')'. Then field 3 (state) is the first, field 22 (starttime) the 20th.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

fn has_proc() -> bool {
    Path::new("/proc/self/stat").exists()
}

/// The start time to record for a process just started (`None` without `/proc`).
pub fn start_time(pid: u32) -> Option<u64> {
    proc_stat(pid).map(|(_, start)| start)
}

/// Whether `pid` is running and, when `start_time` is known, started then. A zombie (it
/// exited, and its new parent has not reaped it yet) is not running.
pub fn running(pid: u32, start_time: Option<u64>) -> bool {
    if !has_proc() {
        // Without /proc (not Linux): `kill -0`, which cannot tell a reused pid.
        return signal(pid, "0");
    }
    match proc_stat(pid) {
        None => false,
        Some(('Z' | 'X' | 'x', _)) => false,
        Some((_, start)) => start_time.is_none_or(|recorded| recorded == start),
    }
}

/// Sends `kill -s <signal> <pid>`; whether it was delivered.
pub fn signal(pid: u32, signal: &str) -> bool {
    Command::new("kill")
        .args(["-s", signal, &pid.to_string()])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// How stopping one process went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stopped {
    /// It was not running any more.
    NotRunning,
    /// It exited after SIGTERM.
    Terminated,
    /// It was SIGKILLed after not exiting within the grace period.
    Killed,
    /// It is still running, even after SIGKILL.
    StillRunning,
}

/// The processes [`stop_all`] could not stop, named for a message: `name (pid N)`.
pub fn still_running(stopped: &[(ProcessRecord, Stopped)]) -> Vec<String> {
    stopped
        .iter()
        .filter(|(_, s)| *s == Stopped::StillRunning)
        .map(|(p, _)| format!("{} (pid {})", p.name(), p.pid))
        .collect()
}

/// Stops every recorded process: SIGTERM to all (the last started first), up to `grace`
/// for them to exit, SIGKILL to what is left, and a last check. Returns each process's
/// outcome, in the record's order.
pub fn stop_all(processes: &[ProcessRecord], grace: Duration) -> Vec<(ProcessRecord, Stopped)> {
    let mut outcome: Vec<(ProcessRecord, Stopped)> = processes
        .iter()
        .map(|p| (p.clone(), if p.running() { Stopped::Terminated } else { Stopped::NotRunning }))
        .collect();
    // Reverse start order: coordinator-sim and the processors before the broker and the
    // node they talk to, so their logs end with a clean shutdown, not connection errors.
    for (p, state) in outcome.iter().rev() {
        if *state == Stopped::Terminated {
            signal(p.pid, "TERM");
        }
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && outcome.iter().any(|(p, _)| p.running()) {
        std::thread::sleep(Duration::from_millis(50));
    }
    for (p, state) in &mut outcome {
        if p.running() {
            signal(p.pid, "KILL");
            *state = Stopped::Killed;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline && outcome.iter().any(|(p, _)| p.running()) {
        std::thread::sleep(Duration::from_millis(50));
    }
    for (p, state) in &mut outcome {
        if p.running() {
            *state = Stopped::StillRunning;
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_running_and_a_wrong_start_time_is_not() {
        let pid = std::process::id();
        let start = start_time(pid);
        assert!(start.is_some(), "no /proc/<pid>/stat on this machine");
        assert!(running(pid, start));
        assert!(!running(pid, start.map(|s| s + 1)), "a reused pid counted as ours");
    }

    #[test]
    fn an_exited_child_is_not_running() {
        let mut child = Command::new("true").spawn().expect("true");
        let pid = child.id();
        let start = start_time(pid);
        let _ = child.wait();
        assert!(!running(pid, start));
    }
}
