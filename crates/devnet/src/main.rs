//! `devnet`: a local network on one machine, and the demo scenario.
//!
//! `devnet demo` starts litecoind (regtest; `--network monero`: monerod), nats-server,
//! `n` processors and coordinator-sim, runs the scenario of [`devnet::scenario`] (or
//! [`devnet::scenario::monero`]) with live progress, prints the verification table, and
//! exits 0 only if every check passed.
//!
//! `devnet up` starts the same processes and leaves them running in a directory;
//! `status`, `deposit`, `mine` and `down` drive and stop them ([`devnet::commands`]).
use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use devnet::{
    commands::{self, Down, UpOptions},
    record::Stopped,
    scenario::monero::{self, MoneroScenario},
    scenario::{kept_in, run, Scenario},
    DevnetError,
};

#[derive(Parser)]
#[command(name = "devnet", version, about = "A local threshold-custody network and its demo")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Key generation, deposits, Batches, credits, burns, payouts, eventualities; then a
    /// table checked against the node's own RPC.
    Demo {
        /// `litecoin` (litecoind) or `monero` (monerod), in regtest.
        #[arg(long, default_value = "litecoin")]
        network: String,
        /// Processors.
        #[arg(long, default_value_t = 3)]
        validators: u16,
        /// Signers needed.
        #[arg(long, default_value_t = 2)]
        threshold: u16,
        /// Deposits (from 4 senders to 4 accounts).
        #[arg(long, default_value_t = 20)]
        deposits: u64,
        /// Burns to fresh addresses.
        #[arg(long, default_value_t = 30)]
        burns: u64,
        /// Outputs per transaction (low, so payment trees form).
        #[arg(long, default_value_t = 4)]
        max_outputs: usize,
        /// SIGKILL and restart random processors throughout, with this seed.
        #[arg(long)]
        chaos_seed: Option<u64>,
        /// Keep the working directory (configs, logs, databases) even when every check
        /// passes; it is always kept when one fails.
        #[arg(long)]
        keep: bool,
        /// Skip the key rotation the Litecoin demo makes mid-payouts (a 3-of-4 set of the
        /// last validator and three new ones takes custody over; docs/rotation.md).
        #[arg(long)]
        no_rotation: bool,
    },
    /// Start a devnet in DIR and leave it running: litecoind (regtest), nats-server, the
    /// processors and coordinator-sim, until `devnet down`.
    Up {
        #[command(flatten)]
        dir: Dir,
        /// The network: litecoin (litecoind) or monero (monerod, with a 1,600-block
        /// history mined once per machine).
        #[arg(long, default_value = "litecoin")]
        network: String,
        /// Processors.
        #[arg(long, default_value_t = 3)]
        validators: u16,
        /// Signers needed.
        #[arg(long, default_value_t = 2)]
        threshold: u16,
        /// Confirmations before a block is final (default: 3 on Litecoin, whose own is
        /// 12; 19 on Monero, the least it accepts).
        #[arg(long)]
        confirmations: Option<u64>,
        /// Outputs per transaction (default: the network's).
        #[arg(long)]
        max_outputs: Option<usize>,
    },
    /// Each process, and each processor's status side by side, the chain tip and the
    /// ledger. Exits 1 if a process is not running, 2 if no devnet is up.
    Status {
        #[command(flatten)]
        dir: Dir,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Stop every process `up` started (SIGTERM, SIGKILL after 10 s) and check each is
    /// gone; keeps the logs.
    Down {
        #[command(flatten)]
        dir: Dir,
        /// Also remove DIR.
        #[arg(long)]
        purge: bool,
    },
    /// Deposit from the node's wallet to the group, with an instruction crediting an
    /// account. Mines nothing: see `devnet mine`.
    Deposit {
        #[command(flatten)]
        dir: Dir,
        /// The settlement account: 64 hex characters, or a name of up to 32 printable
        /// ASCII characters (its bytes, zero-padded to 32: `alice` is 616c696365 00..00).
        #[arg(long)]
        account: String,
        /// In the network's base unit (litoshis; piconero on Monero).
        #[arg(long)]
        amount: u64,
    },
    /// Elect the network's next validator set in a running devnet (a key rotation,
    /// docs/rotation.md): starts a processor for each new validator, adds the set to
    /// coordinator-sim's config and restarts it, and waits for the new key. The old set
    /// then forwards its funds to the new key and retires; `devnet status` shows the
    /// stages, and `devnet deposit` pays the new key.
    Rotate {
        #[command(flatten)]
        dir: Dir,
        /// The new set's validators, e.g. 3,4,5,6 (new numbers get new processors).
        #[arg(long, value_delimiter = ',', required = true)]
        validators: Vec<u16>,
        /// Signers needed in the new set.
        #[arg(long)]
        threshold: u16,
        /// The grace period: blocks after the new key's activation until the old set
        /// stops crediting deposits and may retire.
        #[arg(long, default_value_t = 20)]
        close_after: u64,
    },
    /// Write a network's identities, secrets and configs for processes on other hosts or
    /// containers (deploy/compose.yaml runs it first): they listen on every interface at
    /// their default ports and reach the broker and the node by the URLs given. Does
    /// nothing if DIR already holds a layout.
    Layout {
        #[command(flatten)]
        dir: Dir,
        /// `litecoin` or `monero`.
        #[arg(long, default_value = "litecoin")]
        network: String,
        /// Processors.
        #[arg(long, default_value_t = 3)]
        validators: u16,
        /// Signers needed.
        #[arg(long, default_value_t = 2)]
        threshold: u16,
        /// The broker's URL, as the processes reach it.
        #[arg(long)]
        nats: String,
        /// The node's RPC URL, as the processors reach it.
        #[arg(long)]
        node_url: String,
        /// The node's cookie file, as the processors see it (litecoind).
        #[arg(long)]
        cookie: Option<PathBuf>,
        /// Confirmations before a block is final.
        #[arg(long, default_value_t = 3)]
        confirmations: u64,
    },
    /// Mine blocks (to the node's wallet), so deposits and payments confirm.
    Mine {
        #[command(flatten)]
        dir: Dir,
        /// Blocks (default: the confirmation depth).
        #[arg(long)]
        blocks: Option<u64>,
    },
}

#[derive(clap::Args)]
struct Dir {
    /// The devnet's directory: configs, data, logs and devnet.json.
    #[arg(long = "dir", env = "DEVNET_DIR", default_value = ".devnet")]
    path: PathBuf,
}

fn fail(e: &DevnetError) -> ExitCode {
    eprintln!("error: {e}");
    match e {
        DevnetError::NotUp(_) => ExitCode::from(2),
        _ => ExitCode::FAILURE,
    }
}

/// Exit status 2, with the reason, unless the processors would accept a `threshold`-of-
/// `validators` set ([`devnet::threshold_refused`]).
fn refuse_threshold(threshold: u16, validators: u16) -> Option<ExitCode> {
    devnet::threshold_refused(threshold, validators).map(|reason| {
        eprintln!("error: {reason}");
        ExitCode::from(2)
    })
}

fn main() -> ExitCode {
    let Cli { command } = Cli::parse();
    match command {
        Command::Layout {
            dir,
            network,
            validators,
            threshold,
            nats,
            node_url,
            cookie,
            confirmations,
        } => {
            if let Some(refused) = refuse_threshold(threshold, validators) {
                return refused;
            }
            let options = commands::LayoutOptions {
                network,
                validators,
                threshold,
                nats_url: nats,
                node_url,
                cookie_file: cookie,
                confirmations,
            };
            match commands::layout(&dir.path, &options) {
                Ok(true) => {
                    println!("wrote the layout in {}", dir.path.display());
                    ExitCode::SUCCESS
                }
                Ok(false) => {
                    println!("{} already holds a layout: left as it is", dir.path.display());
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e),
            }
        }
        Command::Demo {
            network,
            validators,
            threshold,
            deposits,
            burns,
            max_outputs,
            chaos_seed,
            keep,
            no_rotation,
        } => {
            if let Some(refused) = refuse_threshold(threshold, validators) {
                return refused;
            }
            let outcome = match network.as_str() {
                "litecoin" => run(&Scenario {
                    validators,
                    threshold,
                    deposits,
                    burns,
                    max_outputs,
                    chaos_seed,
                    keep,
                    rotate: !no_rotation,
                    ..Scenario::default()
                }),
                "monero" => monero::run(&MoneroScenario {
                    validators,
                    threshold,
                    deposits,
                    burns,
                    max_outputs,
                    chaos_seed,
                    keep,
                    ..MoneroScenario::default()
                }),
                other => {
                    eprintln!("error: --network {other}: the demo runs on litecoin or monero");
                    return ExitCode::from(2);
                }
            };
            match outcome {
                Ok(report) => {
                    println!("{}", report.table());
                    if report.kept {
                        println!("{}", kept_in(&report.dir));
                    }
                    if report.passed() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                }
                Err(e) => {
                    eprintln!("error: the demo could not run: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Up { dir, network, validators, threshold, confirmations, max_outputs } => {
            if let Some(refused) = refuse_threshold(threshold, validators) {
                return refused;
            }
            let confirmations = confirmations.unwrap_or(if network == "monero" {
                monero_network::network::DEFAULT_CONFIRMATIONS
            } else {
                3
            });
            let options = UpOptions {
                dir: dir.path,
                network,
                validators,
                threshold,
                confirmations,
                max_outputs,
                progress: true,
            };
            match commands::up(&options) {
                Ok(up) => {
                    println!("{}", commands::next_steps(&up));
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e),
            }
        }
        Command::Status { dir, json } => match commands::status(&dir.path) {
            Ok(status) => {
                if json {
                    match serde_json::to_string_pretty(&status) {
                        Ok(text) => println!("{text}"),
                        Err(e) => {
                            eprintln!("error: encoding the status: {e}");
                            return ExitCode::FAILURE;
                        }
                    }
                } else {
                    print!("{}", status.table());
                }
                if status.all_running() {
                    ExitCode::SUCCESS
                } else {
                    eprintln!(
                        "not every process of the devnet is running (or `up` did not finish)"
                    );
                    ExitCode::FAILURE
                }
            }
            Err(e) => fail(&e),
        },
        Command::Down { dir, purge } => match commands::down(&dir.path, purge) {
            Ok(Down::NothingUp { purged }) => {
                println!(
                    "no devnet is up in {}{}",
                    dir.path.display(),
                    if purged { "; removed it" } else { "" }
                );
                ExitCode::SUCCESS
            }
            Ok(Down::Stopped { processes, purged }) => {
                for (p, how) in &processes {
                    let how = match how {
                        Stopped::NotRunning => "was not running",
                        Stopped::Terminated => "stopped (SIGTERM)",
                        Stopped::Killed => "killed (SIGKILL after 10 s)",
                        Stopped::StillRunning => "STILL RUNNING",
                    };
                    println!("  {:<16} pid {:<8} {how}", p.name(), p.pid);
                }
                println!(
                    "devnet in {} is down: every process is gone; {}",
                    dir.path.display(),
                    if purged {
                        "the directory is removed"
                    } else {
                        "the logs are kept (--purge removes them)"
                    }
                );
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        },
        Command::Rotate { dir, validators, threshold, close_after } => {
            match commands::rotate(&dir.path, threshold, &validators, close_after) {
                Ok(r) => {
                    println!(
                        "elected session {} ({threshold}-of-{validators:?}); started processors {:?}\n\
                         its key is active: deposits go to {}\n\
                         the old set forwards its funds to it and retires once nothing is left \
                         (after {close_after} more blocks at the earliest): see `devnet status`",
                        r.session, r.started, r.deposit_address
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e),
            }
        }
        Command::Deposit { dir, account, amount } => {
            match commands::deposit(&dir.path, &account, amount) {
                Ok(d) => {
                    println!(
                        "deposited {} base units to {} for account {}\ntxid {}\n\
                         credited once final: after {} confirmations (`devnet mine` mines {} \
                         blocks), a Batch is signed and coordinator-sim credits the account",
                        d.amount,
                        d.address,
                        hex::encode(d.account),
                        d.txid,
                        d.confirmations,
                        d.confirmations
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e),
            }
        }
        Command::Mine { dir, blocks } => match commands::mine(&dir.path, blocks) {
            Ok((mined, tip)) => {
                println!("mined {mined} blocks; the tip is at height {tip}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        },
    }
}
