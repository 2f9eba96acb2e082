//! `coordinator-sim`: run the simulator, show its status, or make an identity key.

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use coordinator_sim::{
    config::{Config, Overrides},
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
        Command::NewIdentity { out } => service::cli::new_identity(&out).map_err(|e| e.to_string()),
    };
    service::cli::exit(result)
}
