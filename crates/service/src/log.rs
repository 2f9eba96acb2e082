//! Log output to standard error, human-readable or JSON.

use crate::config::LogFormat;

/// The global log subscriber could not be installed (one already is).
#[derive(Debug, thiserror::Error)]
#[error("installing the log subscriber: {0}")]
pub struct LogInitError(#[source] Box<dyn std::error::Error + Send + Sync>);

/// Installs the global subscriber: `RUST_LOG` if set, else `level`. Colours only when
/// standard error is a terminal: a log file or journal gets plain text.
pub fn init(format: LogFormat, level: &str) -> Result<(), LogInitError> {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    }
    .map_err(LogInitError)
}
