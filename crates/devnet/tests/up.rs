//! `devnet up`, `status`, `deposit`, `mine` and `down` through the binary, as the README's
//! walk-through runs them: the devnet outlives `up`, every processor shows an active key,
//! a deposit made by `deposit` and confirmed by a bare `mine` is credited in
//! coordinator-sim's ledger, `down` leaves none of the recorded processes alive, and a
//! second `up` in the same directory (with another set size) works.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    path::PathBuf,
    process::{Command, Output},
    time::{Duration, Instant},
};

use devnet::record::{Record, Role};
use serde_json::Value;

struct Devnet {
    bin: PathBuf,
    dir: PathBuf,
}

impl Devnet {
    fn run(&self, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .args(args)
            .arg("--dir")
            .arg(&self.dir)
            // Built by the test already: `up` must not run cargo again.
            .env("TC_DEVNET_PREBUILT", "1")
            .output()
            .unwrap()
    }

    /// Runs a command that must succeed; its standard output.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "devnet {args:?} failed:\n{stdout}\n{stderr}\n{}",
            self.logs()
        );
        stdout
    }

    fn record(&self) -> Record {
        Record::load(&self.dir).unwrap().expect("no devnet.json")
    }

    fn logs(&self) -> String {
        let Ok(Some(record)) = Record::load(&self.dir) else { return String::new() };
        let mut out = String::new();
        for p in &record.processes {
            let text = std::fs::read_to_string(&p.log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(15)..].join("\n");
            out += &format!("--- {} ---\n{tail}\n", p.name());
        }
        out
    }
}

/// Whatever happens, nothing this test started outlives it.
impl Drop for Devnet {
    fn drop(&mut self) {
        let _ = self.run(&["down"]);
    }
}

/// Whether the process recorded as `pid` (started at `start_time`) is gone, read from
/// `/proc` directly: no such process, a zombie (exited, not yet reaped by its new
/// parent), or another process that reuses the pid.
fn gone(pid: u32, start_time: Option<u64>) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return true };
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 1..].split_whitespace().collect();
    fields[0] == "Z" || fields[0] == "X" || Some(fields[19].parse().unwrap()) != start_time
}

fn ledger_balance(port: u16, account: &str) -> Option<u64> {
    coin_balance(port, account, "litecoin")
}

fn coin_balance(port: u16, account: &str, coin: &str) -> Option<u64> {
    let (code, body) = devnet::http_get(port, "/ledger")?;
    assert_eq!(code, 200, "{body}");
    let ledger: Value = serde_json::from_str(&body).unwrap();
    let accounts = ledger["accounts"].as_array()?;
    let a = accounts.iter().find(|a| a["account"] == account)?;
    a["balances"].as_array()?.iter().find(|b| b["coin"] == coin)?["amount"].as_u64()
}

/// `up`, then `status --json`: every process runs, every processor has the same active key.
fn up_and_check(devnet: &Devnet, validators: u16, threshold: u16) -> Record {
    up_on(devnet, "litecoin", validators, threshold)
}

fn up_on(devnet: &Devnet, network: &str, validators: u16, threshold: u16) -> Record {
    let (v, t) = (validators.to_string(), threshold.to_string());
    let stdout = devnet.ok(&["up", "--network", network, "--validators", &v, "--threshold", &t]);
    let record = devnet.record();
    assert!(record.ready);
    let address = record.deposit_address.clone().unwrap();
    assert!(stdout.contains(&address), "the deposit address is not in:\n{stdout}");
    // litecoind, nats-server, the processors and coordinator-sim, still running after
    // `up` exited.
    assert_eq!(record.processes.len(), usize::from(validators) + 3);
    for p in &record.processes {
        assert!(!gone(p.pid, p.start_time), "{} (pid {}) is not running", p.name(), p.pid);
    }

    let status: Value = serde_json::from_str(&devnet.ok(&["status", "--json"])).unwrap();
    let processors = status["processors"].as_array().unwrap();
    assert_eq!(processors.len(), usize::from(validators));
    let mut keys = vec![];
    for p in processors {
        let active = p["status"]["keys"].as_array().unwrap().iter().find(|k| k["active"] == true);
        let key = active.unwrap_or_else(|| panic!("no active key: {p}"));
        keys.push(key["network_key"].clone());
        assert_eq!(key["threshold"], threshold);
    }
    assert!(keys.iter().all(|k| *k == keys[0]), "different keys: {keys:?}");
    assert!(status["processes"].as_array().unwrap().iter().all(|p| p["running"] == true));
    assert!(status["tip"].as_u64().unwrap() > 100, "{status}");

    // The text: one column per processor, each with its key active.
    let table = devnet.ok(&["status"]);
    let key_row = table.lines().find(|l| l.trim_start().starts_with("key ")).unwrap();
    assert_eq!(key_row.matches("active").count(), usize::from(validators), "{table}");
    record
}

/// `down`: every recorded process is gone, and the record with them; the logs stay.
fn down_and_check(devnet: &Devnet, record: &Record) {
    let stdout = devnet.ok(&["down"]);
    for p in &record.processes {
        assert!(gone(p.pid, p.start_time), "{} (pid {}) survived `down`", p.name(), p.pid);
        assert!(stdout.contains(&p.name()), "{} not reported by `down`:\n{stdout}", p.name());
        assert!(p.log.exists(), "{} removed", p.log.display());
    }
    assert!(!devnet.dir.join("devnet.json").exists());
}

#[test]
fn up_status_deposit_mine_down_and_up_again() {
    let started = Instant::now();
    // Cargo built this one for the test; `devnet::binary("devnet")` would rebuild it
    // without the dev-dependencies' features, and the next `cargo test` back again.
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_devnet"));
    devnet::binary("processor").unwrap();
    devnet::binary("coordinator-sim").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let devnet = Devnet { bin, dir: tmp.path().join("devnet") };

    let record = up_and_check(&devnet, 3, 2);
    // A second `up` while this one runs is refused, and changes nothing.
    let refused = devnet.run(&["up"]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("already running") && stderr.contains("devnet down"), "{stderr}");
    assert_eq!(devnet.record(), record);

    // A deposit for `alice`, confirmed by a bare `mine` (the confirmation depth), is
    // credited to 616c696365 00..00.
    let alice = format!("{}{}", hex::encode("alice"), "00".repeat(27));
    let stdout = devnet.ok(&["deposit", "--account", "alice", "--amount", "5000000"]);
    assert!(stdout.contains(&alice), "{stdout}");
    let http = record.coordinator.as_ref().unwrap().http;
    assert_eq!(ledger_balance(http, &alice), None, "credited before any confirmation");
    devnet.ok(&["mine"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while ledger_balance(http, &alice) != Some(5_000_000) {
        assert!(
            Instant::now() < deadline,
            "the deposit was not credited within 60 s:\n{}\n{}",
            devnet.ok(&["status"]),
            devnet.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let table = devnet.ok(&["status"]);
    assert!(table.contains("(alice)  5000000 litecoin"), "{table}");

    // `rotate`: a 2-of-2 set of validator 3 and a new validator 4 takes custody over. Its
    // key becomes the deposit address; the old set forwards alice's funds to it and
    // retires as blocks are mined; `down` stops the new processor too.
    let stdout =
        devnet.ok(&["rotate", "--validators", "3,4", "--threshold", "2", "--close-after", "4"]);
    let rotated = devnet.record();
    let new_address = rotated.deposit_address.clone().unwrap();
    assert_ne!(Some(&new_address), record.deposit_address.as_ref());
    assert!(stdout.contains("elected session 1") && stdout.contains(&new_address), "{stdout}");
    assert!(rotated.processors().any(|p| p.validator == Some(4)), "processor 4 recorded");
    let bob = format!("{}{}", hex::encode("bob"), "00".repeat(29));
    devnet.ok(&["deposit", "--account", "bob", "--amount", "3000000"]);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        devnet.ok(&["mine"]);
        let (_, body) = devnet::http_get(http, "/status").unwrap();
        let sim: Value = serde_json::from_str(&body).unwrap();
        let retired = sim["sets"][0]["rotation"] == "retired";
        if retired && ledger_balance(http, &bob) == Some(3_000_000) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the old set did not retire, or bob was not credited, within 120 s:\n{}\n{}",
            devnet.ok(&["status"]),
            devnet.logs()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(ledger_balance(http, &alice), Some(5_000_000), "alice's credit is kept");
    down_and_check(&devnet, &rotated);
    // Nothing up: `down` says so and succeeds, `status` fails clearly.
    assert!(devnet.ok(&["down"]).contains("no devnet is up"));
    let status = devnet.run(&["status"]);
    assert_eq!(status.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&status.stderr).contains("no devnet is up"));

    // Again in the same directory, with another set: the previous run's files are
    // replaced (new keys, new processes).
    let again = up_and_check(&devnet, 2, 2);
    assert_ne!(again.deposit_address, record.deposit_address);
    assert!(!devnet.dir.join("processor-litecoin-3").exists());
    down_and_check(&devnet, &again);
    let roles: Vec<Role> = again.processes.iter().map(|p| p.role).collect();
    assert_eq!(roles.iter().filter(|r| **r == Role::Processor).count(), 2);
    eprintln!("done in {:.1} s", started.elapsed().as_secs_f64());
}

/// The same walk-through on Monero: `up --network monero` starts monerod on the test
/// history, and a deposit of 5 XMR made by `deposit` (monero-wallet's transaction builder,
/// the instruction in `extra`) and confirmed by a bare `mine` (19 blocks) is credited.
#[test]
fn up_deposit_mine_down_on_monero() {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_devnet"));
    devnet::binary("processor").unwrap();
    devnet::binary("coordinator-sim").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let devnet = Devnet { bin, dir: tmp.path().join("devnet") };
    let record = up_on(&devnet, "monero", 3, 2);
    assert_eq!(record.confirmations, 19);
    assert!(record.processes.iter().any(|p| p.name() == "monerod"));

    let alice = format!("{}{}", hex::encode("alice"), "00".repeat(27));
    let xmr = 1_000_000_000_000u64;
    let amount = (5 * xmr).to_string();
    let stdout = devnet.ok(&["deposit", "--account", "alice", "--amount", &amount]);
    assert!(stdout.contains(&alice), "{stdout}");
    // A second deposit spends other outputs of the deposit wallet (it remembers).
    devnet.ok(&["deposit", "--account", "alice", "--amount", &(2 * xmr).to_string()]);
    let http = record.coordinator.as_ref().unwrap().http;
    devnet.ok(&["mine"]);
    let deadline = Instant::now() + Duration::from_secs(120);
    while coin_balance(http, &alice, "monero") != Some(7 * xmr) {
        assert!(
            Instant::now() < deadline,
            "the deposits were not credited within 120 s:\n{}\n{}",
            devnet.ok(&["status"]),
            devnet.logs()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    // A deposit the wallet cannot make is refused with the reason, not a crash.
    let refused = devnet.run(&["deposit", "--account", "alice", "--amount", &u64::MAX.to_string()]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("the deposit was not made"), "{stderr}");
    let table = devnet.ok(&["status"]);
    assert!(table.contains("monero regtest"), "{table}");
    down_and_check(&devnet, &record);
}

/// Every binary of the workspace answers `--version` with the workspace's version.
#[test]
fn every_binary_prints_its_version() {
    for name in ["processor", "coordinator-sim", "devnet"] {
        let bin = devnet::binary(name).unwrap();
        let out = Command::new(&bin).arg("--version").output().unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{name} --version failed");
        assert_eq!(said.trim(), format!("{name} {}", env!("CARGO_PKG_VERSION")));
    }
}
