//! `processor`: run the daemon, show its status, or make an identity key.

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use processor::{
    config::{Config, Overrides},
    status::StatusReport,
};

#[derive(Parser, Debug)]
#[command(
    name = "processor",
    version,
    about = "Threshold-custody processor for one external network"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the processor until SIGINT/SIGTERM.
    Run {
        /// The TOML config file.
        #[arg(long, env = "PROCESSOR_CONFIG")]
        config: PathBuf,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Check a config and its secrets (identity key, sealing secret, coordinator key,
    /// `[node]` settings) without starting anything or touching the database; exits 0 and
    /// prints a summary if they are usable.
    CheckConfig {
        /// The TOML config file.
        #[arg(long, env = "PROCESSOR_CONFIG")]
        config: PathBuf,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Remove the halt a fatal error recorded (after fixing its cause), so that the next
    /// `run` tries the failed work again. A halted processor refuses to run (exit 78).
    Resume {
        /// The TOML config file.
        #[arg(long, env = "PROCESSOR_CONFIG")]
        config: PathBuf,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Forget the held payments of one conflicted plan (the processor must be stopped),
    /// once the operators have settled them as docs/operations.md (Held payments) says.
    /// Prints what it removes. Touches nothing else: no plan, no payment queue.
    ReleaseHeld {
        /// The TOML config file.
        #[arg(long, env = "PROCESSOR_CONFIG")]
        config: PathBuf,
        #[command(flatten)]
        overrides: Overrides,
        /// The plan id (hex), as `status` shows it.
        #[arg(long)]
        plan: String,
    },
    /// Show the processor's durable state (from the database, or from the running
    /// processor's /status endpoint when it holds the database).
    Status {
        /// The TOML config file.
        #[arg(long, env = "PROCESSOR_CONFIG")]
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
    let party = config.party().map_err(|e| e.to_string())?.to_string();
    let report = service::client::read_status(
        &config.db_path(),
        processor::SCHEMA,
        config.http.listen,
        "processor",
        |txn| StatusReport::read(party, txn),
    )
    .await
    .map_err(|e| e.to_string())?;
    service::cli::print_report(&report, json, StatusReport::human).map_err(|e| e.to_string())
}

/// Reads every secret the config names (as `run` would, without keeping them) and prints
/// what the processor would run as.
fn check(config: &Config) -> Result<(), String> {
    let party = config.party().map_err(|e| e.to_string())?;
    let identity = config.identity().map_err(|e| e.to_string())?;
    drop(config.db_secret().map_err(|e| e.to_string())?);
    let bus = config.bus.nats(processor::config::BUS_PASSWORD_ENV).map_err(|e| e.to_string())?;
    println!(
        "ok: {party} (identity {}), data in {}, NATS {} ({:?}{}), {}",
        hex::encode(identity.public().as_bytes()),
        config.db_path().display(),
        config.bus.nats_url,
        bus.auth,
        if bus.tls.is_some() { ", TLS" } else { "" },
        match &config.node {
            Some(node) => format!("node {} on {}", node.rpc_url, node.chain),
            None => "no [node]: key generation only".to_string(),
        }
    );
    Ok(())
}

/// Removes one held plan's record, saying what it was.
fn release_held(config: &Config, plan: &str) -> Result<(), String> {
    let plan: [u8; 32] = hex::decode(plan)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| format!("--plan {plan:?} is not a 32-byte hex plan id"))?;
    let db =
        db::Db::open_existing(config.db_path(), processor::SCHEMA).map_err(|e| e.to_string())?;
    match processor::pipeline::release_held(&db, plan).map_err(|e| e.to_string())? {
        Some(held) => {
            println!(
                "released plan {}: {} payments held since conflicting tx {} in block {}:",
                hex::encode(plan),
                held.payments.len(),
                held.txs.iter().map(hex::encode).collect::<Vec<_>>().join(", "),
                held.block
            );
            for p in &held.payments {
                println!(
                    "  payment {}: {} units to {}",
                    p.id,
                    p.amount.0,
                    hex::encode(p.address.as_bytes())
                );
            }
        }
        None => return Err(format!("no held payments for plan {}", hex::encode(plan))),
    }
    Ok(())
}

/// Removes the recorded halt, saying what it was.
fn resume(config: &Config) -> Result<(), String> {
    let db =
        db::Db::open_existing(config.db_path(), processor::SCHEMA).map_err(|e| e.to_string())?;
    match processor::halt::resume(&db).map_err(|e| e.to_string())? {
        Some(halt) => println!(
            "removed the halt recorded at {} (unix seconds) by task {}: {}\nthe next run tries the failed work again",
            halt.at_unix, halt.task, halt.error
        ),
        None => println!("not halted: nothing to do"),
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config, overrides } => match Config::load(&config, &overrides) {
            Err(e) => Err(e.to_string()),
            Ok(config) => {
                let ran = service::cli::run_daemon(&config.log.clone(), |shutdown| {
                    processor::run(config, shutdown)
                })
                .await;
                if let Err(service::cli::DaemonError::Run(processor::RunError::Halted(halt))) = &ran
                {
                    eprintln!("error: {halt}");
                    return ExitCode::from(processor::halt::EXIT_HALTED);
                }
                ran.map_err(|e| e.to_string())
            }
        },
        Command::Status { config, overrides, json } => match Config::load(&config, &overrides) {
            Err(e) => Err(e.to_string()),
            Ok(config) => status(&config, json).await,
        },
        Command::CheckConfig { config, overrides } => {
            Config::load(&config, &overrides).map_err(|e| e.to_string()).and_then(|c| check(&c))
        }
        Command::Resume { config, overrides } => match Config::load(&config, &overrides) {
            Err(e) => Err(e.to_string()),
            Ok(config) => resume(&config),
        },
        Command::ReleaseHeld { config, overrides, plan } => {
            match Config::load(&config, &overrides) {
                Err(e) => Err(e.to_string()),
                Ok(config) => release_held(&config, &plan),
            }
        }
        Command::NewIdentity { out } => service::cli::new_identity(&out).map_err(|e| e.to_string()),
    };
    service::cli::exit(result)
}
