//! What the `burn` and `ledger` commands use: a minimal HTTP/1.0 client for the running
//! simulator's `POST /burn` and `GET /ledger` (the same approach as
//! [`service::client::get_status`]).

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::ledger::{BurnReceipt, BurnRequest, LedgerReport};

/// Why a request to the running simulator failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Connecting, writing or reading failed.
    #[error("cannot reach the simulator at {listen}: {source}")]
    Io {
        /// Where.
        listen: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The response is not HTTP.
    #[error("malformed HTTP response")]
    Malformed,
    /// The simulator refused the request (its JSON `error`).
    #[error("refused (HTTP {status}): {message}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The simulator's explanation.
        message: String,
    },
    /// The body is not the expected JSON.
    #[error("unexpected response: {0}")]
    Json(#[source] serde_json::Error),
}

/// Sends one request; returns the status code and the body.
pub async fn request(
    listen: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
) -> Result<(u16, String), ClientError> {
    let io = |source| ClientError::Io { listen, source };
    let mut stream = tokio::net::TcpStream::connect(listen).await.map_err(io)?;
    let mut head = format!("{method} {path} HTTP/1.0\r\nHost: localhost\r\n");
    if let Some(body) = body {
        head += &format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len());
    }
    head += "\r\n";
    stream.write_all(head.as_bytes()).await.map_err(io)?;
    if let Some(body) = body {
        stream.write_all(body).await.map_err(io)?;
    }
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.map_err(io)?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").ok_or(ClientError::Malformed)?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or(ClientError::Malformed)?;
    Ok((status, body.to_string()))
}

fn parse<T: serde::de::DeserializeOwned>(status: u16, body: &str) -> Result<T, ClientError> {
    if status != 200 {
        let message = serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
            .unwrap_or_else(|| body.to_string());
        return Err(ClientError::Refused { status, message });
    }
    serde_json::from_str(body).map_err(ClientError::Json)
}

/// `POST /burn`.
pub async fn burn(listen: SocketAddr, burn: &BurnRequest) -> Result<BurnReceipt, ClientError> {
    let body = serde_json::to_vec(burn).map_err(ClientError::Json)?;
    let (status, body) = request(listen, "POST", "/burn", Some(&body)).await?;
    parse(status, &body)
}

/// `GET /ledger`.
pub async fn ledger(listen: SocketAddr) -> Result<LedgerReport, ClientError> {
    let (status, body) = request(listen, "GET", "/ledger", None).await?;
    parse(status, &body)
}
