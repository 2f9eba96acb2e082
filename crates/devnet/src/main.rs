//! `devnet`: a local network on one machine, and the demo scenario.
//!
//! `devnet demo` starts litecoind (regtest), nats-server, `n` processors and
//! coordinator-sim, runs the scenario of [`devnet::scenario`] with live progress, prints
//! the verification table, and exits 0 only if every check passed.
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use devnet::scenario::{run, Scenario};

#[derive(Parser)]
#[command(name = "devnet", about = "A local threshold-custody network and its demo")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Key generation, deposits, Batches, credits, burns, payouts, eventualities; then a
    /// table checked against the node's own RPC.
    Demo {
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
    },
}

fn main() -> ExitCode {
    let Cli { command } = Cli::parse();
    match command {
        Command::Demo { validators, threshold, deposits, burns, max_outputs, chaos_seed } => {
            if threshold == 0 || threshold > validators {
                eprintln!("error: need 1 <= --threshold <= --validators");
                return ExitCode::from(2);
            }
            let scenario = Scenario {
                validators,
                threshold,
                deposits,
                burns,
                max_outputs,
                chaos_seed,
                ..Scenario::default()
            };
            match run(&scenario) {
                Ok(report) => {
                    println!("{}", report.table());
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
    }
}
