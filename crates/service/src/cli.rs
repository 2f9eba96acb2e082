//! The parts of a daemon binary's `main` that do not depend on the daemon.

use std::{fmt::Display, future::Future, path::Path, process::ExitCode};

use serde::Serialize;
use task::Shutdown;

use crate::{
    config::{ConfigError, LogConfig},
    log::LogInitError,
};

/// Why `run` failed: before the daemon started, or the daemon's own error `E`.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError<E> {
    /// Logging could not be set up.
    #[error(transparent)]
    Log(#[from] LogInitError),
    /// Signal handlers could not be installed.
    #[error("installing signal handlers: {0}")]
    Signals(#[source] std::io::Error),
    /// The daemon stopped abnormally.
    #[error(transparent)]
    Run(E),
}

/// Sets up logging as `log` says, makes SIGINT/SIGTERM trigger a shutdown, and runs
/// `daemon` with it.
pub async fn run_daemon<F, Fut, E>(log: &LogConfig, daemon: F) -> Result<(), DaemonError<E>>
where
    F: FnOnce(Shutdown) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    crate::log::init(log.format, &log.level)?;
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals().map_err(DaemonError::Signals)?;
    daemon(shutdown).await.map_err(DaemonError::Run)
}

/// Prints `report` to standard output: pretty JSON if `json`, else `human(report)`.
pub fn print_report<T: Serialize>(
    report: &T,
    json: bool,
    human: impl FnOnce(&T) -> String,
) -> Result<(), serde_json::Error> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print!("{}", human(report));
    }
    Ok(())
}

/// Writes a new identity key file at `out` (see [`crate::config::write_identity_file`])
/// and prints its public key, hex.
pub fn new_identity(out: &Path) -> Result<(), ConfigError> {
    let identity = crate::config::write_identity_file(out)?;
    println!("{}", hex::encode(identity.public().as_bytes()));
    Ok(())
}

/// The process exit code for `result`; an error is printed to standard error first.
pub fn exit(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
