//! JSON-RPC client and block sources for Bitcoin Core-compatible nodes (Bitcoin Core,
//! Litecoin Core 0.21).
//!
//! Contract:
//! - Every request MUST use a fresh TCP connection (`Connection: close`): keep-alive
//!   stalled ~30 ms per call against these nodes, and a fresh connection re-reads the
//!   cookie file, which the node rewrites on every restart.
//! - Only transient failures are retried ([`RpcError::is_transient`]), after delays from
//!   the task crate's [`Backoff`] (doubling from 100 ms to 5 s, equal jitter): one retry
//!   policy for the whole processor. A failure after the request may have reached the node (timeout,
//!   reset) is not retried for methods that are unsafe to run twice (wallet sends,
//!   mining); a refused connection, HTTP 503 and RPC code -28 (warming up) are always
//!   retried because the node did not execute anything.
//! - Everything decoded from the node is checked: a block's header hash MUST equal the
//!   hash asked for, a transaction's txid the txid asked for.
//! - Credentials are never printed (`Debug` redacts them) and are zeroized after use
//!   (except the copy hyper encodes into its write buffer, freed with the connection).
//! - The HTTP client is hyper's (HTTP/1.1, `client::conn::http1`); bodies over 256 MiB
//!   are refused.

use std::{
    fmt,
    future::Future,
    io,
    path::PathBuf,
    str::FromStr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use bitcoin::{
    block::Header, consensus::Decodable, Amount, BlockHash, Denomination, Transaction, Txid,
};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{
    header::{HeaderValue, AUTHORIZATION, CONNECTION, CONTENT_TYPE, HOST},
    Method, Request,
};
use rand_core::OsRng;
use serde::{de::DeserializeOwned, Deserialize};
use serde_json::{json, Value};
use task::Backoff;
use zeroize::Zeroizing;

use crate::mweb::{self, NodeBlock};

mod http;
mod rest;

pub use rest::RestBlocks;

/// Upper bound of the delay before the first retry; it doubles with each further attempt.
const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
/// Upper bound of the delay between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How much of an unexpected HTTP body an error keeps.
const ERROR_BODY_CHARS: usize = 200;
/// RPC code: the node is starting (loading the block index, verifying blocks).
const RPC_IN_WARMUP: i64 = -28;
/// RPC code: invalid address or key; also "block not found", "transaction not in mempool".
const RPC_INVALID_ADDRESS_OR_KEY: i64 = -5;
/// RPC code: the transaction is already in the chain.
const RPC_VERIFY_ALREADY_IN_CHAIN: i64 = -27;

/// How the client authenticates (HTTP Basic).
#[derive(Clone)]
pub enum RpcAuth {
    /// The node's cookie file (`<datadir>/<chain>/.cookie`), read before every request
    /// because the node writes a new one each time it starts.
    Cookie(PathBuf),
    /// `-rpcuser`/`-rpcpassword` (or an `-rpcauth` entry).
    UserPass {
        /// User name.
        user: String,
        /// Password; never printed.
        password: String,
    },
}

impl fmt::Debug for RpcAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RpcAuth::Cookie(path) => f.debug_tuple("Cookie").field(path).finish(),
            RpcAuth::UserPass { user, .. } => f
                .debug_struct("UserPass")
                .field("user", user)
                .field("password", &"<redacted>")
                .finish(),
        }
    }
}

/// Where the node is and how to talk to it.
#[derive(Clone, Debug)]
pub struct RpcConfig {
    /// `http://host:port`, optionally with a path such as `/wallet/NAME`.
    pub url: String,
    /// Credentials.
    pub auth: RpcAuth,
    /// Bound on one attempt (connect, send, receive the whole reply).
    pub timeout: Duration,
    /// Further attempts after a transient failure.
    pub retries: u32,
}

impl RpcConfig {
    /// A 30 s timeout per attempt and 3 retries.
    pub fn new(url: impl Into<String>, auth: RpcAuth) -> Self {
        RpcConfig { url: url.into(), auth, timeout: Duration::from_secs(30), retries: 3 }
    }
}

/// Why a call failed. [`is_transient`](Self::is_transient) tells whether trying again
/// later can help.
#[derive(thiserror::Error, Debug)]
pub enum RpcError {
    /// No TCP connection (refused, unreachable): the node is down or restarting.
    #[error("cannot connect to {url}: {source}")]
    Connect {
        /// The node's URL.
        url: String,
        /// The socket error.
        source: io::Error,
    },
    /// The connection failed mid-request (reset, closed before the reply was complete).
    #[error("connection to {url} failed during `{method}`: {source}")]
    Io {
        /// The node's URL.
        url: String,
        /// The RPC method or REST request.
        method: String,
        /// The socket error.
        source: io::Error,
    },
    /// One attempt took longer than the configured timeout.
    #[error("`{method}` timed out after {after:?}")]
    Timeout {
        /// The RPC method or REST request.
        method: String,
        /// The timeout that elapsed.
        after: Duration,
    },
    /// HTTP 401: wrong credentials.
    #[error(
        "{url} rejected the credentials (HTTP 401): check the cookie file (the node's \
         datadir, -rpccookiefile) or -rpcuser/-rpcpassword"
    )]
    Unauthorized {
        /// The node's URL.
        url: String,
    },
    /// An HTTP status without a JSON-RPC error in the body (503: work queue full).
    #[error("HTTP {status}: {body}")]
    Http {
        /// HTTP status code.
        status: u16,
        /// The start of the body (about 200 characters).
        body: String,
    },
    /// The node executed the call and returned a JSON-RPC error.
    #[error("`{method}` failed with RPC error {code}: {message}")]
    Rpc {
        /// The RPC method.
        method: String,
        /// Bitcoin Core's error code (`RPCErrorCode`, e.g. -5, -8, -28).
        code: i64,
        /// The node's message.
        message: String,
    },
    /// The node does not have this block (RPC code -5, REST 404).
    #[error("block {hash} not found")]
    BlockNotFound {
        /// The block asked for.
        hash: BlockHash,
    },
    /// The reply did not have the expected shape or content.
    #[error("cannot decode the reply to `{method}`: {reason}")]
    Decode {
        /// The RPC method or REST request.
        method: String,
        /// What was wrong.
        reason: String,
    },
    /// The bytes received were not a valid HTTP response.
    #[error("malformed HTTP response from {url}: {reason}")]
    Protocol {
        /// The node's URL.
        url: String,
        /// What was wrong.
        reason: String,
    },
    /// The configured URL is unusable.
    #[error("invalid node URL: {0}")]
    InvalidUrl(String),
    /// The cookie file could not be read.
    #[error("cannot read the RPC cookie file {}: {source}", path.display())]
    Cookie {
        /// The cookie file.
        path: PathBuf,
        /// The file system error.
        source: io::Error,
    },
}

impl RpcError {
    /// Whether the same call can succeed later without any change: the node is down,
    /// restarting, warming up or overloaded, or the network failed. A missing cookie file
    /// is transient (the node deletes it on shutdown and writes it once its RPC server
    /// is up).
    pub fn is_transient(&self) -> bool {
        match self {
            RpcError::Connect { .. } | RpcError::Io { .. } | RpcError::Timeout { .. } => true,
            RpcError::Http { status, .. } => *status == 503,
            RpcError::Rpc { code, .. } => *code == RPC_IN_WARMUP,
            RpcError::Cookie { source, .. } => source.kind() == io::ErrorKind::NotFound,
            RpcError::Unauthorized { .. }
            | RpcError::BlockNotFound { .. }
            | RpcError::Decode { .. }
            | RpcError::Protocol { .. }
            | RpcError::InvalidUrl(_) => false,
        }
    }

    /// The JSON-RPC error code when the node answered with one.
    pub fn rpc_code(&self) -> Option<i64> {
        match self {
            RpcError::Rpc { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether the node may have executed the request before this failure.
    fn may_have_executed(&self) -> bool {
        matches!(self, RpcError::Io { .. } | RpcError::Timeout { .. })
    }
}

/// Methods whose second execution differs from the first (they spend or mine): not
/// retried once the request may have reached the node.
fn unsafe_to_repeat(method: &str) -> bool {
    matches!(
        method,
        "sendtoaddress"
            | "sendmany"
            | "send"
            | "sendall"
            | "bumpfee"
            | "psbtbumpfee"
            | "generatetoaddress"
            | "generatetodescriptor"
            | "generateblock"
    )
}

/// The delays between attempts: within [50, 100] ms first, doubling up to [2.5, 5] s.
fn retry_backoff() -> Backoff {
    Backoff::new(INITIAL_BACKOFF, MAX_BACKOFF)
}

/// Runs `attempt` until it succeeds, fails permanently or `retries` are spent.
async fn with_retries<T, F, Fut>(
    retries: u32,
    label: &str,
    repeatable: bool,
    mut attempt: F,
) -> Result<T, RpcError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, RpcError>>,
{
    let mut backoff = retry_backoff();
    loop {
        match attempt().await {
            Err(error)
                if backoff.failures() < retries
                    && error.is_transient()
                    && (repeatable || !error.may_have_executed()) =>
            {
                let delay = backoff.next_delay(&mut OsRng);
                tracing::debug!(request = label, attempt = backoff.failures(), ?delay, %error, "retrying");
                tokio::time::sleep(delay).await;
            }
            result => return result,
        }
    }
}

/// A validated `http://host:port/path` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Endpoint {
    /// Host name or IP address, IPv6 without brackets.
    host: String,
    port: u16,
    /// Request target, starting with `/`.
    path: String,
}

impl Endpoint {
    fn parse(url: &str) -> Result<Endpoint, RpcError> {
        let invalid = |why: &str| RpcError::InvalidUrl(format!("{url:?}: {why}"));
        let rest = url
            .get(..7)
            .filter(|scheme| scheme.eq_ignore_ascii_case("http://"))
            .map(|_| &url[7..])
            .ok_or_else(|| invalid("only http:// URLs are supported"))?;
        let (authority, path) = rest.find('/').map_or((rest, "/"), |i| rest.split_at(i));
        if authority.contains('@') {
            return Err(invalid("credentials in the URL are not supported: use RpcAuth"));
        }
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let (host, after) = bracketed.split_once(']').ok_or_else(|| invalid("missing ']'"))?;
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(invalid("invalid IPv6 address"));
            }
            (host, after.strip_prefix(':').ok_or_else(|| invalid("missing :port"))?)
        } else {
            let (host, port) =
                authority.rsplit_once(':').ok_or_else(|| invalid("missing :port"))?;
            let valid = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_');
            if host.is_empty() || !host.bytes().all(valid) {
                return Err(invalid("invalid host"));
            }
            (host, port)
        };
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|port| *port != 0)
            .ok_or_else(|| invalid("invalid port"))?;
        if path.contains(['?', '#']) || !path.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid("the path must be plain printable ASCII without query"));
        }
        Ok(Endpoint { host: host.to_string(), port, path: path.to_string() })
    }

    /// `host:port`, IPv6 in brackets, as in the `Host` header.
    fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    fn url(&self) -> String {
        format!("http://{}{}", self.authority(), self.path)
    }

    /// A request for `target` (a path on this endpoint) on a connection of its own.
    fn request(
        &self,
        method: Method,
        target: &str,
        authorization: Option<HeaderValue>,
        body: Bytes,
    ) -> Result<Request<Full<Bytes>>, RpcError> {
        let mut request = Request::builder()
            .method(method)
            .uri(target)
            .header(HOST, self.authority())
            .header(CONNECTION, "close");
        if let Some(authorization) = authorization {
            request = request.header(AUTHORIZATION, authorization);
        }
        if !body.is_empty() {
            request = request.header(CONTENT_TYPE, "application/json");
        }
        request
            .body(Full::new(body))
            .map_err(|e| RpcError::InvalidUrl(format!("request target {target:?}: {e}")))
    }

    /// Sends one request and maps transport failures.
    async fn send(
        &self,
        request: Request<Full<Bytes>>,
        label: &str,
        timeout: Duration,
    ) -> Result<http::Response, RpcError> {
        let sending = http::send(&self.host, self.port, request, http::MAX_BODY);
        let sent = tokio::time::timeout(timeout, sending)
            .await
            .map_err(|_| RpcError::Timeout { method: label.to_string(), after: timeout })?;
        sent.map_err(|error| match error {
            http::TransportError::Connect(source) => RpcError::Connect { url: self.url(), source },
            // Also the node closing the connection early: a crash or restart, like a reset.
            http::TransportError::Io(source) => {
                RpcError::Io { url: self.url(), method: label.to_string(), source }
            }
            http::TransportError::Protocol(reason) => {
                RpcError::Protocol { url: self.url(), reason }
            }
        })
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters (for wallet names).
fn percent_encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The first ~200 characters of a body, for error messages.
fn truncate_body(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out: String = text.chars().take(ERROR_BODY_CHARS).collect();
    if text.chars().nth(ERROR_BODY_CHARS).is_some() {
        out.push('…');
    }
    out
}

/// Converts a BTC (or LTC) amount as the node prints it (8 decimals, parsed into an
/// `f64` by `serde_json`) to satoshis, rounding to the nearest satoshi: `0.29` is
/// `0.28999999999999998` in binary, and truncating `0.29 * 1e8` loses a satoshi. Exact for
/// amounts below 2^24 BTC (16.7 million, where an `f64` parsed from 8 decimals is
/// within half a satoshi); `None` for negative, non-finite or absurd (over 2^53 sat)
/// amounts.
pub fn btc_to_sats(btc: f64) -> Option<u64> {
    const MAX_BTC: f64 = 90_071_992.547_409_92; // 2^53 sat
                                                // Also -0.0, which would print as a negative amount.
    if btc == 0.0 {
        return Some(0);
    }
    // Also rejects NaN.
    if !(0.0..=MAX_BTC).contains(&btc) {
        return None;
    }
    // Rust formats the exact binary value correctly rounded to 8 decimals: the decimal
    // the node printed. `Amount::from_btc` parses the shortest decimal that reads back as
    // the same `f64` instead (`0.30000000000000004` for `0.1 + 0.2`) and refuses it as
    // too precise.
    Amount::from_str_in(&format!("{btc:.8}"), Denomination::Bitcoin).ok().map(Amount::to_sat)
}

/// Formats satoshis as an exact decimal BTC amount (`"0.00012000"`), the form the node
/// accepts for amounts without floating-point error.
pub fn format_btc(sats: u64) -> String {
    format!("{:.8}", Amount::from_sat(sats).display_in(Denomination::Bitcoin))
}

/// A JSON-RPC 1.0 reply as Bitcoin Core sends it.
#[derive(Deserialize)]
struct Reply {
    #[serde(default)]
    result: Value,
    #[serde(default)]
    error: Option<ReplyError>,
    #[serde(default)]
    id: Value,
}

#[derive(Deserialize)]
struct ReplyError {
    code: i64,
    #[serde(default)]
    message: String,
}

/// Maps an HTTP response to the call's result. Bitcoin Core answers RPC errors with HTTP
/// 500 (404 for an unknown method, 400 for an invalid request) and a JSON-RPC body, bad
/// credentials with 401 and an empty body, and a full work queue with 503.
fn interpret(
    method: &str,
    url: &str,
    id: u64,
    response: &http::Response,
) -> Result<Value, RpcError> {
    if response.status == 401 {
        return Err(RpcError::Unauthorized { url: url.to_string() });
    }
    let reply = match serde_json::from_slice::<Reply>(&response.body) {
        Ok(Reply { error: Some(error), .. }) => {
            return Err(RpcError::Rpc {
                method: method.to_string(),
                code: error.code,
                message: error.message,
            })
        }
        _ if response.status != 200 => {
            return Err(RpcError::Http {
                status: response.status,
                body: truncate_body(&response.body),
            })
        }
        reply => reply
            .map_err(|e| RpcError::Decode { method: method.to_string(), reason: e.to_string() })?,
    };
    if reply.id != json!(id) {
        return Err(RpcError::Decode {
            method: method.to_string(),
            reason: format!("reply id {} does not match request id {id}", reply.id),
        });
    }
    Ok(reply.result)
}

fn hex_bytes(method: &str, hex: &str) -> Result<Vec<u8>, RpcError> {
    hex::decode(hex).map_err(|e| RpcError::Decode {
        method: method.to_string(),
        reason: format!("invalid hex: {e}"),
    })
}

fn decode_hex<T: Decodable>(method: &str, hex: &str) -> Result<T, RpcError> {
    bitcoin::consensus::deserialize(&hex_bytes(method, hex)?)
        .map_err(|e| RpcError::Decode { method: method.to_string(), reason: e.to_string() })
}

fn parse_hash<T: FromStr>(method: &str, text: &str) -> Result<T, RpcError>
where
    T::Err: fmt::Display,
{
    text.parse().map_err(|e: T::Err| RpcError::Decode {
        method: method.to_string(),
        reason: format!("invalid hash {text:?}: {e}"),
    })
}

/// Checks that a decoded block is the one asked for.
fn check_block(label: &str, hash: &BlockHash, block: NodeBlock) -> Result<NodeBlock, RpcError> {
    let got = block.block.block_hash();
    if got != *hash {
        return Err(RpcError::Decode {
            method: label.to_string(),
            reason: format!("asked for block {hash}, got block {got}"),
        });
    }
    Ok(block)
}

/// A JSON-RPC client for one node (and optionally one of its wallets). Cheap to clone;
/// clones share the request-id counter.
#[derive(Clone, Debug)]
pub struct Rpc {
    endpoint: Endpoint,
    auth: Arc<RpcAuth>,
    timeout: Duration,
    retries: u32,
    next_id: Arc<AtomicU64>,
}

impl Rpc {
    /// A client for `config`; fails on an unusable URL (not `http://host:port[/path]`).
    /// Does not connect.
    pub fn new(config: RpcConfig) -> Result<Rpc, RpcError> {
        Ok(Rpc {
            endpoint: Endpoint::parse(&config.url)?,
            auth: Arc::new(config.auth),
            timeout: config.timeout,
            retries: config.retries,
            next_id: Arc::new(AtomicU64::new(1)),
        })
    }

    /// The same node, addressing wallet `name` (path `/wallet/<name>`).
    pub fn with_wallet(&self, name: &str) -> Rpc {
        let mut rpc = self.clone();
        rpc.endpoint.path = format!("/wallet/{}", percent_encode(name));
        rpc
    }

    /// Replaces the per-attempt timeout and the retry count.
    pub fn with_timeout(mut self, timeout: Duration, retries: u32) -> Rpc {
        self.timeout = timeout;
        self.retries = retries;
        self
    }

    /// The URL requests go to.
    pub fn url(&self) -> String {
        self.endpoint.url()
    }

    /// The `Authorization` header (`Basic <base64(user:password)>`), the cookie file read
    /// afresh.
    async fn credentials(&self) -> Result<HeaderValue, RpcError> {
        match &*self.auth {
            RpcAuth::Cookie(path) => {
                let cookie_error = |source| RpcError::Cookie { path: path.clone(), source };
                let cookie =
                    Zeroizing::new(tokio::fs::read_to_string(path).await.map_err(cookie_error)?);
                let cookie = cookie.trim_end();
                if !cookie.contains(':') {
                    let malformed =
                        io::Error::new(io::ErrorKind::InvalidData, "no ':' in the cookie");
                    return Err(cookie_error(malformed));
                }
                Ok(http::basic_auth(cookie))
            }
            RpcAuth::UserPass { user, password } => {
                Ok(http::basic_auth(&Zeroizing::new(format!("{user}:{password}"))))
            }
        }
    }

    async fn call_once(&self, method: &str, params: &Value) -> Result<Value, RpcError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body =
            json!({ "jsonrpc": "1.0", "id": id, "method": method, "params": params }).to_string();
        let credentials = self.credentials().await?;
        let request = self.endpoint.request(
            Method::POST,
            &self.endpoint.path,
            Some(credentials),
            Bytes::from(body),
        )?;
        let response = self.endpoint.send(request, method, self.timeout).await?;
        interpret(method, &self.endpoint.url(), id, &response)
    }

    /// Calls `method` with `params` (a JSON array of positional parameters, an object of
    /// named ones, or `null` for none) and decodes the `result`. Transient failures are
    /// retried (see the module documentation).
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        params: Value,
    ) -> Result<T, RpcError> {
        let params = if params.is_null() { json!([]) } else { params };
        let repeatable = !unsafe_to_repeat(method);
        let result =
            with_retries(self.retries, method, repeatable, || self.call_once(method, &params))
                .await?;
        serde_json::from_value(result)
            .map_err(|e| RpcError::Decode { method: method.to_string(), reason: e.to_string() })
    }

    async fn call_hex<T: Decodable>(&self, method: &str, params: Value) -> Result<T, RpcError> {
        let hex: String = self.call(method, params).await?;
        decode_hex(method, &hex)
    }

    /// Height of the best chain's tip (`getblockcount`).
    pub async fn block_count(&self) -> Result<u64, RpcError> {
        self.call("getblockcount", json!([])).await
    }

    /// Hash of the best chain's block at `height` (`getblockhash`; RPC code -8 beyond
    /// the tip).
    pub async fn block_hash(&self, height: u64) -> Result<BlockHash, RpcError> {
        let hash: String = self.call("getblockhash", json!([height])).await?;
        parse_hash("getblockhash", &hash)
    }

    /// A block header (`getblockheader <hash> false`).
    pub async fn block_header(&self, hash: BlockHash) -> Result<Header, RpcError> {
        let header: Header = self
            .call_hex("getblockheader", json!([hash.to_string(), false]))
            .await
            .map_err(|e| block_not_found(e, hash))?;
        if header.block_hash() != hash {
            return Err(RpcError::Decode {
                method: "getblockheader".into(),
                reason: format!("asked for header {hash}, got {}", header.block_hash()),
            });
        }
        Ok(header)
    }

    /// A block (`getblock <hash> 0`, MWEB-aware), checked to hash to `hash`.
    pub async fn block(&self, hash: BlockHash) -> Result<NodeBlock, RpcError> {
        let hex: String = self
            .call("getblock", json!([hash.to_string(), 0]))
            .await
            .map_err(|e| block_not_found(e, hash))?;
        let bytes = hex_bytes("getblock", &hex)?;
        let block = mweb::decode_block(&bytes)
            .map_err(|e| RpcError::Decode { method: "getblock".into(), reason: e.to_string() })?;
        check_block("getblock", &hash, block)
    }

    /// A transaction (`getrawtransaction <txid> false`): mempool and wallet transactions
    /// always, confirmed ones only with `-txindex`.
    pub async fn raw_transaction(&self, txid: Txid) -> Result<Transaction, RpcError> {
        let hex: String = self.call("getrawtransaction", json!([txid.to_string(), false])).await?;
        let bytes = hex_bytes("getrawtransaction", &hex)?;
        let tx = mweb::decode_transaction(&bytes).map_err(|e| RpcError::Decode {
            method: "getrawtransaction".into(),
            reason: format!("transaction {txid}: {e}"),
        })?;
        if tx.compute_txid() != txid {
            return Err(RpcError::Decode {
                method: "getrawtransaction".into(),
                reason: format!("asked for {txid}, got {}", tx.compute_txid()),
            });
        }
        Ok(tx)
    }

    /// Publishes `tx` (`sendrawtransaction`). Idempotent: a transaction already in the
    /// mempool or already confirmed (RPC code -27, detected while one of its outputs is
    /// unspent) is a success.
    pub async fn send_raw_transaction(&self, tx: &Transaction) -> Result<Txid, RpcError> {
        let hex = bitcoin::consensus::encode::serialize_hex(tx);
        let expected = tx.compute_txid();
        match self.call::<String>("sendrawtransaction", json!([hex])).await {
            Ok(txid) => {
                let txid: Txid = parse_hash("sendrawtransaction", &txid)?;
                if txid != expected {
                    return Err(RpcError::Decode {
                        method: "sendrawtransaction".into(),
                        reason: format!("sent {expected}, the node reported {txid}"),
                    });
                }
                Ok(txid)
            }
            Err(e) if e.rpc_code() == Some(RPC_VERIFY_ALREADY_IN_CHAIN) => Ok(expected),
            Err(e) => Err(e),
        }
    }

    /// The fee rate for confirmation within `conf_target` blocks (`estimatesmartfee`), in
    /// satoshis per 1000 virtual bytes; `None` while the node has no estimate (it replies
    /// with `errors` and no `feerate`, e.g. on a fresh regtest chain).
    pub async fn estimate_smart_fee(&self, conf_target: u16) -> Result<Option<u64>, RpcError> {
        #[derive(Deserialize)]
        struct Estimate {
            feerate: Option<f64>,
            #[serde(default)]
            errors: Vec<String>,
        }
        let estimate: Estimate = self.call("estimatesmartfee", json!([conf_target])).await?;
        let Some(feerate) = estimate.feerate.filter(|rate| *rate >= 0.0) else {
            tracing::debug!(conf_target, errors = ?estimate.errors, "no fee estimate");
            return Ok(None);
        };
        btc_to_sats(feerate).map(Some).ok_or_else(|| RpcError::Decode {
            method: "estimatesmartfee".into(),
            reason: format!("invalid feerate {feerate}"),
        })
    }

    /// Whether `txid` is in the node's mempool (`getmempoolentry`).
    pub async fn mempool_contains(&self, txid: Txid) -> Result<bool, RpcError> {
        match self.call::<Value>("getmempoolentry", json!([txid.to_string()])).await {
            Ok(_) => Ok(true),
            Err(e) if e.rpc_code() == Some(RPC_INVALID_ADDRESS_OR_KEY) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Marks a block invalid, reorganizing away from it (`invalidateblock`).
    pub async fn invalidate_block(&self, hash: BlockHash) -> Result<(), RpcError> {
        self.call("invalidateblock", json!([hash.to_string()]))
            .await
            .map_err(|e| block_not_found(e, hash))
    }

    /// Undoes [`invalidate_block`](Self::invalidate_block) (`reconsiderblock`).
    pub async fn reconsider_block(&self, hash: BlockHash) -> Result<(), RpcError> {
        self.call("reconsiderblock", json!([hash.to_string()]))
            .await
            .map_err(|e| block_not_found(e, hash))
    }
}

/// RPC code -5 on a block lookup means the node does not know the block.
fn block_not_found(error: RpcError, hash: BlockHash) -> RpcError {
    if error.rpc_code() == Some(RPC_INVALID_ADDRESS_OR_KEY) {
        RpcError::BlockNotFound { hash }
    } else {
        error
    }
}

/// Where full blocks come from: RPC, REST, or (later) P2P.
pub trait BlockSource: Send + Sync {
    /// The block with this hash (with its MWEB extension's header, if any), checked to
    /// hash to it; [`RpcError::BlockNotFound`] if the node does not have it.
    fn block(&self, hash: &BlockHash) -> impl Future<Output = Result<NodeBlock, RpcError>> + Send;
}

impl BlockSource for Rpc {
    async fn block(&self, hash: &BlockHash) -> Result<NodeBlock, RpcError> {
        Rpc::block(self, *hash).await
    }
}

#[cfg(test)]
mod tests;
