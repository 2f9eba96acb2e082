//! `coordinator-sim`: run the simulator, show its status or ledger, order a burn, or make
//! an identity key.

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use coordinator_sim::{
    config::{Config, Overrides},
    ledger::{BurnRequest, LedgerReport},
    status::StatusReport,
};

#[derive(Parser, Debug)]
#[command(
    name = "coordinator-sim",
    version,
    about = "Devnet coordinator and settlement-chain simulator"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the simulator until SIGINT/SIGTERM.
    Run {
        /// The TOML config file.
        #[arg(long, env = "COORDINATOR_CONFIG")]
        config: PathBuf,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Show the simulator's durable state (from the database, or from the running
    /// simulator's /status endpoint when it holds the database).
    Status {
        /// The TOML config file.
        #[arg(long, env = "COORDINATOR_CONFIG")]
        config: PathBuf,
        #[command(flatten)]
        overrides: Overrides,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Order a burn on the running simulator (its `POST /burn`): debit the account and
    /// pay `amount` to `to` with the network's next acknowledgement.
    Burn {
        /// The TOML config file (for the HTTP listen address).
        #[arg(long, env = "COORDINATOR_CONFIG")]
        config: PathBuf,
        #[command(flatten)]
        overrides: Overrides,
        /// `bitcoin` or `litecoin`.
        #[arg(long)]
        network: String,
        /// The settlement account, 64 hex characters.
        #[arg(long)]
        account: String,
        /// The payee, an address of the configured chain.
        #[arg(long)]
        to: String,
        /// In the coin's smallest unit.
        #[arg(long)]
        amount: u64,
    },
    /// Show the settlement ledger (the running simulator's `GET /ledger`, or the
    /// database when the simulator is stopped).
    Ledger {
        /// The TOML config file.
        #[arg(long, env = "COORDINATOR_CONFIG")]
        config: PathBuf,
        #[command(flatten)]
        overrides: Overrides,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Create a new identity key file (mode 0600) and print its public key.
    NewIdentity {
        /// Where to write it (must not exist).
        #[arg(long)]
        out: PathBuf,
    },
}

async fn status(config: &Config, json: bool) -> Result<(), String> {
    let report = service::client::read_status(
        &config.db_path(),
        coordinator_sim::SCHEMA,
        config.http.listen,
        "simulator",
        StatusReport::read,
    )
    .await
    .map_err(|e| e.to_string())?;
    service::cli::print_report(&report, json, StatusReport::human).map_err(|e| e.to_string())
}

async fn burn(config: &Config, request: BurnRequest) -> Result<(), String> {
    let receipt = coordinator_sim::client::burn(config.http.listen, &request)
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "burn #{} queued: {} {} from {} to {} (balance left {})",
        receipt.id, receipt.amount, receipt.network, receipt.account, receipt.to, receipt.balance
    );
    Ok(())
}

async fn ledger(config: &Config, json: bool) -> Result<(), String> {
    let report = match coordinator_sim::client::ledger(config.http.listen).await {
        Ok(report) => report,
        // Not running: the database can be opened.
        Err(http @ coordinator_sim::client::ClientError::Io { .. }) => {
            let db = db::Db::open_existing(config.db_path(), coordinator_sim::SCHEMA)
                .map_err(|e| format!("{http}; and the database: {e}"))?;
            let txn = db.read().map_err(|e| e.to_string())?;
            LedgerReport::read(&txn).map_err(|e| e.to_string())?
        }
        Err(e) => return Err(e.to_string()),
    };
    service::cli::print_report(&report, json, LedgerReport::human).map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config, overrides } => match Config::load(&config, &overrides) {
            Err(e) => Err(e.to_string()),
            Ok(config) => service::cli::run_daemon(&config.log.clone(), |shutdown| {
                coordinator_sim::run(config, shutdown)
            })
            .await
            .map_err(|e| e.to_string()),
        },
        Command::Status { config, overrides, json } => match Config::load(&config, &overrides) {
            Err(e) => Err(e.to_string()),
            Ok(config) => status(&config, json).await,
        },
        Command::Burn { config, overrides, network, account, to, amount } => {
            match Config::load(&config, &overrides) {
                Err(e) => Err(e.to_string()),
                Ok(config) => burn(&config, BurnRequest { network, account, to, amount }).await,
            }
        }
        Command::Ledger { config, overrides, json } => match Config::load(&config, &overrides) {
            Err(e) => Err(e.to_string()),
            Ok(config) => ledger(&config, json).await,
        },
        Command::NewIdentity { out } => service::cli::new_identity(&out).map_err(|e| e.to_string()),
    };
    service::cli::exit(result)
}
