//! What `status` commands use: the database when the daemon is stopped, else a minimal
//! HTTP client asking the running daemon.

use std::{net::SocketAddr, path::Path};

use db::{Db, DbError, ReadTxn, Schema};

use serde::de::DeserializeOwned;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Why the running daemon's `/status` could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StatusClientError {
    /// Connecting, writing or reading failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The response had no header/body separator.
    #[error("malformed HTTP response")]
    Malformed,
    /// The body is not the expected JSON.
    #[error("unexpected /status response: {0}")]
    Json(#[source] serde_json::Error),
}

/// `GET /status` from the daemon listening on `listen`, parsed as `T`.
pub async fn get_status<T: DeserializeOwned>(listen: SocketAddr) -> Result<T, StatusClientError> {
    let mut stream = tokio::net::TcpStream::connect(listen).await?;
    stream.write_all(b"GET /status HTTP/1.0\r\nHost: localhost\r\n\r\n").await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).ok_or(StatusClientError::Malformed)?;
    serde_json::from_str(body).map_err(StatusClientError::Json)
}

/// Why a daemon's status could be read neither from its database nor from its endpoint.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The database opened but could not be read.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The database could not be opened (the running daemon holds it, or it does not
    /// exist) and the running daemon's `/status` did not answer.
    #[error("cannot read the database ({db}) nor reach the running {daemon} at {listen} ({http})")]
    Unreachable {
        /// Why the database could not be opened.
        db: DbError,
        /// What daemon, e.g. `processor`.
        daemon: &'static str,
        /// Where its `/status` was asked.
        listen: SocketAddr,
        /// Why that failed.
        http: StatusClientError,
    },
}

/// A daemon's status: read with `read` from the database at `db_path` when it can be
/// opened (the daemon is not running), else from the running `daemon`'s `/status` on
/// `listen`.
pub async fn read_status<T: DeserializeOwned>(
    db_path: &Path,
    schema: Schema,
    listen: SocketAddr,
    daemon: &'static str,
    read: impl FnOnce(&ReadTxn) -> Result<T, DbError>,
) -> Result<T, StatusError> {
    match Db::open_existing(db_path, schema) {
        Ok(db) => Ok(read(&db.read()?)?),
        Err(db) => get_status(listen).await.map_err(|http| StatusError::Unreachable {
            db,
            daemon,
            listen,
            http,
        }),
    }
}
