//! `coordinator-sim`: run the simulator, show its status, or make an identity key.

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use coordinator_sim::{
    config::{Config, LogFormat, Overrides},
    status::StatusReport,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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

fn init_logs(format: LogFormat, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn http_status(listen: std::net::SocketAddr) -> Result<StatusReport, String> {
    let mut stream = tokio::net::TcpStream::connect(listen).await.map_err(|e| e.to_string())?;
    stream
        .write_all(b"GET /status HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&response);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).ok_or("malformed HTTP response")?;
    serde_json::from_str(body).map_err(|e| format!("unexpected /status response: {e}"))
}

async fn status(config: &Config, json: bool) -> Result<(), String> {
    let report = match db::Db::open_existing(config.db_path(), coordinator_sim::SCHEMA) {
        Ok(db) => StatusReport::read(&db.read().map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?,
        Err(db_error) => http_status(config.http.listen).await.map_err(|http_error| {
            format!(
                "cannot read the database ({db_error}) nor reach the running simulator at {} ({http_error})",
                config.http.listen
            )
        })?,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?);
    } else {
        print!("{}", report.human());
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
                init_logs(config.log.format, &config.log.level);
                let shutdown = task::Shutdown::new();
                match shutdown.trigger_on_signals() {
                    Err(e) => Err(format!("installing signal handlers: {e}")),
                    Ok(()) => {
                        coordinator_sim::run(config, shutdown).await.map_err(|e| e.to_string())
                    }
                }
            }
        },
        Command::Status { config, overrides, json } => match Config::load(&config, &overrides) {
            Err(e) => Err(e.to_string()),
            Ok(config) => status(&config, json).await,
        },
        Command::NewIdentity { out } => coordinator_sim::config::write_identity_file(&out)
            .map(|identity| println!("{}", hex::encode(identity.public().as_bytes())))
            .map_err(|e| e.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
