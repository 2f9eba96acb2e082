//! Unit tests: URL parsing, amounts, reply interpretation, and the client against a
//! scripted in-process HTTP server that models the node's faults (503, warm-up, hangs,
//! early close, chunked replies, malformed and oversized responses).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    sync::{Arc, Mutex},
    time::Instant,
};

use bitcoin::{consensus::encode::serialize, hashes::Hash, Network};
use proptest::prelude::*;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

use super::*;

#[test]
fn url_parsing() {
    let ok = |url: &str, host: &str, port: u16, path: &str| {
        let endpoint = Endpoint::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(endpoint, Endpoint { host: host.into(), port, path: path.into() }, "{url}");
    };
    ok("http://127.0.0.1:18443", "127.0.0.1", 18443, "/");
    ok("http://127.0.0.1:18443/", "127.0.0.1", 18443, "/");
    ok("HTTP://localhost:8332/wallet/miner", "localhost", 8332, "/wallet/miner");
    ok("http://[::1]:19443/wallet/a%20b", "::1", 19443, "/wallet/a%20b");
    ok("http://node-1.example_net:1", "node-1.example_net", 1, "/");
    for bad in [
        "https://127.0.0.1:8332",
        "127.0.0.1:8332",
        "http://127.0.0.1",
        "http://127.0.0.1:",
        "http://127.0.0.1:0",
        "http://127.0.0.1:65536",
        "http://127.0.0.1:80x",
        "http://:8332",
        "http://user:pass@127.0.0.1:8332",
        "http://[::1:8332",
        "http://[zz]:8332",
        "http://::1:8332",
        "http://127.0.0.1:8332/wallet/a b",
        "http://127.0.0.1:8332/?x=1",
        "http://127.0.0.1:8332/#frag",
        "",
        "http",
    ] {
        assert!(matches!(Endpoint::parse(bad), Err(RpcError::InvalidUrl(_))), "{bad:?} accepted");
    }
    let endpoint = Endpoint::parse("http://[::1]:19443").unwrap();
    assert_eq!(endpoint.authority(), "[::1]:19443");
    assert_eq!(endpoint.url(), "http://[::1]:19443/");
}

#[test]
fn with_wallet_sets_an_encoded_path() {
    let rpc = Rpc::new(RpcConfig::new("http://127.0.0.1:1/", RpcAuth::Cookie("c".into()))).unwrap();
    assert_eq!(rpc.with_wallet("miner").url(), "http://127.0.0.1:1/wallet/miner");
    assert_eq!(rpc.with_wallet("a b/ü").url(), "http://127.0.0.1:1/wallet/a%20b%2F%C3%BC");
    assert_eq!(rpc.with_wallet("x").with_wallet("").url(), "http://127.0.0.1:1/wallet/");
    // The REST base keeps a path prefix without a trailing slash.
    let rest = RestBlocks::new("http://127.0.0.1:1/proxy/").unwrap();
    assert_eq!(rest.endpoint.path, "/proxy");
}

#[test]
fn debug_does_not_leak_the_password() {
    let auth = RpcAuth::UserPass { user: "alice".into(), password: "hunter2".into() };
    let config = RpcConfig::new("http://127.0.0.1:1", auth);
    let rpc = Rpc::new(config.clone()).unwrap();
    for printed in
        [format!("{config:?}"), format!("{rpc:?}"), format!("{:#?}", rpc.with_wallet("w"))]
    {
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("alice") && printed.contains("<redacted>"), "{printed}");
    }
}

#[test]
fn btc_to_sats_rounds() {
    for (btc, sats) in [
        (0.0, Some(0)),
        (-0.0, Some(0)),
        (0.29, Some(29_000_000)),
        (0.1 + 0.2, Some(30_000_000)),
        (0.00000001, Some(1)),
        (0.000000014, Some(1)),
        (0.000000016, Some(2)),
        (0.0002, Some(20_000)),
        (50.0, Some(5_000_000_000)),
        (20_999_999.976_9, Some(2_099_999_997_690_000)),
        (84_000_000.0, Some(8_400_000_000_000_000)),
        (-0.00000001, None),
        (f64::NAN, None),
        (f64::INFINITY, None),
        (1e9, None),
    ] {
        assert_eq!(btc_to_sats(btc), sats, "{btc}");
    }
    assert_eq!(format_btc(0), "0.00000000");
    assert_eq!(format_btc(12_000), "0.00012000");
    assert_eq!(format_btc(2_100_000_000_000_000), "21000000.00000000");
}

proptest! {
    /// What the node prints, parsed as `serde_json` parses it, converts back exactly.
    #[test]
    fn btc_to_sats_inverts_format_btc(sats in 0u64..=1_670_000_000_000_000) {
        let parsed: f64 = serde_json::from_str(&format_btc(sats)).unwrap();
        prop_assert_eq!(btc_to_sats(parsed), Some(sats));
    }
}

#[test]
fn retry_backoff_doubles_from_100_ms_to_5_s_with_jitter() {
    use rand::{rngs::StdRng, SeedableRng};
    let mut rng = StdRng::seed_from_u64(5);
    for _ in 0..100 {
        let mut backoff = retry_backoff();
        for upper_ms in [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000] {
            let delay = backoff.next_delay(&mut rng).as_millis();
            assert!((upper_ms / 2..=upper_ms).contains(&delay), "{delay} ms, upper {upper_ms}");
        }
    }
}

fn response(status: u16, body: &str) -> http::Response {
    http::Response { status, body: body.as_bytes().to_vec() }
}

#[test]
fn interpret_maps_statuses_and_errors() {
    let url = "http://127.0.0.1:1/";
    let call = |status, body| interpret("getblockhash", url, 7, &response(status, body));
    assert_eq!(call(200, r#"{"result":"ab","error":null,"id":7}"#).unwrap(), json!("ab"));
    assert_eq!(call(200, r#"{"result":null,"error":null,"id":7}"#).unwrap(), Value::Null);
    let error = call(
        500,
        r#"{"result":null,"error":{"code":-8,"message":"Block height out of range"},"id":7}"#,
    )
    .unwrap_err();
    assert!(
        matches!(&error, RpcError::Rpc { code: -8, message, .. } if message == "Block height out of range")
    );
    assert_eq!(error.rpc_code(), Some(-8));
    assert!(!error.is_transient());
    // Unknown method: HTTP 404 with a JSON-RPC error.
    let error =
        call(404, r#"{"result":null,"error":{"code":-32601,"message":"Method not found"},"id":7}"#)
            .unwrap_err();
    assert_eq!(error.rpc_code(), Some(-32601));
    let warmup = call(
        500,
        r#"{"result":null,"error":{"code":-28,"message":"Loading block index..."},"id":7}"#,
    )
    .unwrap_err();
    assert!(warmup.is_transient());
    assert!(matches!(call(401, ""), Err(RpcError::Unauthorized { .. })));
    let busy = call(503, "Work queue depth exceeded").unwrap_err();
    assert!(
        matches!(&busy, RpcError::Http { status: 503, body } if body == "Work queue depth exceeded")
    );
    assert!(busy.is_transient());
    let long = "x".repeat(1000);
    let RpcError::Http { status: 502, body } = call(502, &long).unwrap_err() else { panic!() };
    assert_eq!(body.chars().count(), ERROR_BODY_CHARS + 1);
    assert!(matches!(call(200, "not json"), Err(RpcError::Decode { .. })));
    assert!(matches!(
        call(200, r#"{"result":1,"error":null,"id":8}"#),
        Err(RpcError::Decode { .. })
    ));
}

#[test]
fn transience() {
    let io = |kind| io::Error::new(kind, "x");
    let transient = [
        RpcError::Connect { url: String::new(), source: io(io::ErrorKind::ConnectionRefused) },
        RpcError::Io {
            url: String::new(),
            method: String::new(),
            source: io(io::ErrorKind::ConnectionReset),
        },
        RpcError::Timeout { method: String::new(), after: Duration::from_secs(1) },
        RpcError::Http { status: 503, body: String::new() },
        RpcError::Rpc { method: String::new(), code: -28, message: String::new() },
        RpcError::Cookie { path: PathBuf::new(), source: io(io::ErrorKind::NotFound) },
    ];
    let permanent = [
        RpcError::Unauthorized { url: String::new() },
        RpcError::Http { status: 500, body: String::new() },
        RpcError::Rpc { method: String::new(), code: -5, message: String::new() },
        RpcError::BlockNotFound { hash: BlockHash::from_byte_array([0; 32]) },
        RpcError::Decode { method: String::new(), reason: String::new() },
        RpcError::Protocol { url: String::new(), reason: String::new() },
        RpcError::InvalidUrl(String::new()),
        RpcError::Cookie { path: PathBuf::new(), source: io(io::ErrorKind::PermissionDenied) },
    ];
    assert!(transient.iter().all(RpcError::is_transient));
    assert!(!permanent.iter().any(RpcError::is_transient));
}

/// What the scripted server does with one connection.
#[derive(Clone)]
enum Act {
    /// Status and JSON body; `{id}` is replaced by the request's id.
    Reply(u16, &'static str),
    /// These bytes, written in pieces with a pause in between, then close.
    Pieces(Vec<Vec<u8>>),
    /// These bytes, then keep the connection open without a word more.
    Stall(Vec<u8>),
    /// Read the request, then never answer.
    Hang,
}

/// A scripted HTTP server: connection `i` gets `acts[i]` (the last act repeats). Records
/// each request (head and body).
struct Server {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn read_request(stream: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let read = stream.read(&mut chunk).await.unwrap();
        buf.extend_from_slice(&chunk[..read]);
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .map_or(0, |l| l.parse().unwrap());
            if body.len() >= length || read == 0 {
                return text;
            }
        }
        if read == 0 {
            return text;
        }
    }
}

async fn serve(acts: Vec<Act>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let recorded = requests.clone();
    let task = tokio::spawn(async move {
        for i in 0.. {
            let (mut stream, _) = listener.accept().await.unwrap();
            let request = read_request(&mut stream).await;
            recorded.lock().unwrap().push(request.clone());
            let act = acts[i.min(acts.len() - 1)].clone();
            tokio::spawn(async move {
                let pieces = match act {
                    Act::Reply(status, body) => {
                        let id = request
                            .split_once("\r\n\r\n")
                            .and_then(|(_, body)| serde_json::from_str::<Value>(body).ok())
                            .map_or(Value::Null, |json| json["id"].clone());
                        let body = body.replace("{id}", &id.to_string());
                        vec![format!(
                            "HTTP/1.1 {status} X\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        )
                        .into_bytes()]
                    }
                    Act::Pieces(pieces) => pieces,
                    Act::Stall(bytes) => {
                        stream.write_all(&bytes).await.unwrap();
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        vec![]
                    }
                    Act::Hang => {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        vec![]
                    }
                };
                for piece in pieces {
                    stream.write_all(&piece).await.unwrap();
                    stream.flush().await.unwrap();
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            });
        }
    });
    Server { port, requests, task }
}

fn client(port: u16, retries: u32, timeout_ms: u64) -> Rpc {
    let auth = RpcAuth::UserPass { user: "alice".into(), password: "hunter2".into() };
    let mut config = RpcConfig::new(format!("http://127.0.0.1:{port}/wallet/w"), auth);
    config.retries = retries;
    config.timeout = Duration::from_millis(timeout_ms);
    Rpc::new(config).unwrap()
}

const OK_5: &str = r#"{"result":5,"error":null,"id":{id}}"#;
const WARMUP: &str =
    r#"{"result":null,"error":{"code":-28,"message":"Loading block index..."},"id":{id}}"#;
const OUT_OF_RANGE: &str =
    r#"{"result":null,"error":{"code":-8,"message":"Block height out of range"},"id":{id}}"#;

#[tokio::test]
async fn retries_busy_and_warmup_then_succeeds() {
    let server = serve(vec![
        Act::Reply(503, "Work queue depth exceeded"),
        Act::Reply(500, WARMUP),
        Act::Reply(200, OK_5),
    ])
    .await;
    let count: u64 = client(server.port, 3, 2000).call("getblockcount", Value::Null).await.unwrap();
    assert_eq!(count, 5);
    let requests = server.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 3);
    let (head, body) = requests[0].split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("POST /wallet/w HTTP/1.1\r\n"), "{head}");
    // base64("alice:hunter2")
    assert!(head.contains("\r\nAuthorization: Basic YWxpY2U6aHVudGVyMg==\r\n"), "{head}");
    assert!(head.contains("\r\nConnection: close"), "{head}");
    assert!(head.contains(&format!("\r\nHost: 127.0.0.1:{}", server.port)), "{head}");
    let body: Value = serde_json::from_str(body).unwrap();
    assert_eq!(
        (&body["jsonrpc"], &body["method"], &body["params"]),
        (&json!("1.0"), &json!("getblockcount"), &json!([]))
    );
}

#[tokio::test]
async fn permanent_errors_are_not_retried() {
    let server = serve(vec![Act::Reply(500, OUT_OF_RANGE)]).await;
    let error = client(server.port, 3, 2000).block_hash(999_999).await.unwrap_err();
    assert!(
        matches!(&error, RpcError::Rpc { method, code: -8, .. } if method == "getblockhash"),
        "{error}"
    );
    assert_eq!(server.requests.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn retries_are_bounded_and_back_off() {
    let server = serve(vec![Act::Reply(503, "busy")]).await;
    let start = Instant::now();
    let error =
        client(server.port, 2, 2000).call::<u64>("getblockcount", json!([])).await.unwrap_err();
    assert!(matches!(error, RpcError::Http { status: 503, .. }), "{error}");
    assert_eq!(server.requests.lock().unwrap().len(), 3);
    // Two retries: at least 50 + 100 ms of (jittered) backoff.
    assert!(start.elapsed() >= Duration::from_millis(150), "{:?}", start.elapsed());
}

#[tokio::test]
async fn timeouts_are_retried_only_when_repeating_is_safe() {
    let server = serve(vec![Act::Hang]).await;
    let rpc = client(server.port, 1, 200);
    let error = rpc.call::<Value>("getblockcount", json!([])).await.unwrap_err();
    assert!(
        matches!(&error, RpcError::Timeout { method, after } if method == "getblockcount" && after.as_millis() == 200)
    );
    assert_eq!(server.requests.lock().unwrap().len(), 2);
    // Mining twice is not the same as mining once.
    let error = rpc.call::<Value>("generatetoaddress", json!([1, "x"])).await.unwrap_err();
    assert!(matches!(error, RpcError::Timeout { .. }));
    assert_eq!(server.requests.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn early_close_is_a_transient_io_error() {
    let half = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"res".to_vec();
    let server = serve(vec![Act::Pieces(vec![half]), Act::Reply(200, OK_5)]).await;
    let count: u64 = client(server.port, 1, 2000).call("getblockcount", json!([])).await.unwrap();
    assert_eq!(count, 5);
    assert_eq!(server.requests.lock().unwrap().len(), 2);
    // Without retries the error surfaces.
    let server = serve(vec![Act::Pieces(vec![b"HTTP/1.1 200 OK\r\nContent-Le".to_vec()])]).await;
    let error =
        client(server.port, 0, 2000).call::<u64>("getblockcount", json!([])).await.unwrap_err();
    assert!(
        matches!(&error, RpcError::Io { source, .. } if source.kind() == io::ErrorKind::UnexpectedEof),
        "{error}"
    );
    assert!(error.is_transient());
}

#[tokio::test]
async fn chunked_reply_in_pieces() {
    // The id of the first request from a fresh client is 1.
    let json = r#"{"result":"ok","error":null,"id":1}"#;
    let (first, second) = json.split_at(6);
    let pieces = [
        "HTTP/1.1 200 OK\r\nTransfer-".to_string(),
        "Encoding: chunked\r\n\r\n".to_string(),
        format!("{:x}\r\n{first}\r\n", first.len()),
        format!("{:X};ext\r\n{second}", second.len()),
        "\r\n0\r\n\r\n".to_string(),
    ];
    let server =
        serve(vec![Act::Pieces(pieces.iter().map(|p| p.as_bytes().to_vec()).collect())]).await;
    let reply: String = client(server.port, 0, 2000).call("uptime", json!([])).await.unwrap();
    assert_eq!(reply, "ok");
}

#[tokio::test]
async fn garbage_is_a_protocol_error() {
    let server = serve(vec![Act::Pieces(vec![b"SSH-2.0-OpenSSH_9.6\r\n".to_vec()])]).await;
    let error =
        client(server.port, 3, 2000).call::<Value>("getblockcount", json!([])).await.unwrap_err();
    assert!(matches!(error, RpcError::Protocol { .. }), "{error}");
    assert_eq!(server.requests.lock().unwrap().len(), 1);
    // Refused as soon as it arrives, not when the peer closes or the timeout elapses.
    let server = serve(vec![Act::Stall(b"SSH-2.0-OpenSSH_9.6\r\n".to_vec())]).await;
    let start = Instant::now();
    let error =
        client(server.port, 0, 5000).call::<Value>("getblockcount", json!([])).await.unwrap_err();
    assert!(matches!(error, RpcError::Protocol { .. }), "{error}");
    assert!(start.elapsed() < Duration::from_secs(2), "{:?}", start.elapsed());
}

#[tokio::test]
async fn a_complete_reply_is_not_held_up_by_an_open_connection() {
    // The id of the first request from a fresh client is 1.
    let body = r#"{"result":5,"error":null,"id":1}"#;
    let reply = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    let server = serve(vec![Act::Stall(reply.as_bytes().to_vec())]).await;
    let start = Instant::now();
    let count: u64 = client(server.port, 0, 5000).call("getblockcount", json!([])).await.unwrap();
    assert_eq!(count, 5);
    assert!(start.elapsed() < Duration::from_secs(2), "{:?}", start.elapsed());
}

/// What the transport makes of a response, in a form a table can hold.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    Reply(u16, Vec<u8>),
    /// Retried by the client: the connection failed or closed early.
    Io(io::ErrorKind),
    /// Not retried: not HTTP, or too large.
    Protocol,
}

/// Serves `raw` (in `piece`-byte pieces) to one `http::send` with a body limit of `max_body`.
async fn transport_outcome(raw: Vec<u8>, piece: usize, max_body: usize) -> Outcome {
    let server = serve(vec![Act::Pieces(raw.chunks(piece).map(<[u8]>::to_vec).collect())]).await;
    let endpoint = Endpoint::parse(&format!("http://127.0.0.1:{}", server.port)).unwrap();
    let request = endpoint.request(Method::GET, "/", None, Bytes::new()).unwrap();
    let sending = http::send("127.0.0.1", server.port, request, max_body);
    match tokio::time::timeout(Duration::from_secs(10), sending).await.expect("no answer") {
        Ok(response) => Outcome::Reply(response.status, response.body),
        Err(http::TransportError::Io(error)) => Outcome::Io(error.kind()),
        Err(http::TransportError::Protocol(_)) => Outcome::Protocol,
        Err(http::TransportError::Connect(error)) => panic!("{error}"),
    }
}

/// Framing, truncation, malformed heads and bodies, and the body limit: each response is
/// served whole and in pieces, with the same outcome.
#[tokio::test]
async fn responses_framed_truncated_malformed_or_oversized() {
    const LIMIT: usize = 1024;
    let reply = |status, body: &str| Outcome::Reply(status, body.as_bytes().to_vec());
    let eof = Outcome::Io(io::ErrorKind::UnexpectedEof);
    let chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    let mut cases: Vec<(String, Outcome)> = vec![
        (
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\nhello"
                .into(),
            reply(200, "hello"),
        ),
        ("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n".into(), reply(200, "")),
        (
            "HTTP/1.0 404 Not Found\r\nServer: x\r\n\r\nabc not found".into(),
            reply(404, "abc not found"),
        ),
        ("HTTP/1.1 204 No Content\r\n\r\n".into(), reply(204, "")),
        (
            format!("{chunked}5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\n"),
            reply(200, "hello, world"),
        ),
        // At the limit, and over it: by Content-Length (refused before the body arrives),
        // chunked, or until EOF.
        (
            format!("HTTP/1.1 200 OK\r\nContent-Length: {LIMIT}\r\n\r\n{}", "x".repeat(LIMIT)),
            Outcome::Reply(200, vec![b'x'; LIMIT]),
        ),
        (format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", LIMIT + 1), Outcome::Protocol),
        (format!("{chunked}401\r\n{}\r\n0\r\n\r\n", "x".repeat(LIMIT + 1)), Outcome::Protocol),
        (
            format!("{chunked}200\r\n{x}\r\n201\r\n{x}x\r\n0\r\n\r\n", x = "x".repeat(512)),
            Outcome::Protocol,
        ),
        (format!("HTTP/1.0 200 OK\r\n\r\n{}", "x".repeat(LIMIT + 1)), Outcome::Protocol),
        // Cut short: in the head, in a Content-Length body, in a chunked body, or nothing.
        ("".into(), eof.clone()),
        ("HTTP/1.1 200 OK\r\nContent-".into(), eof.clone()),
        ("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello".into(), eof.clone()),
        (format!("{chunked}5\r\nhello\r\n"), eof.clone()),
        // Malformed chunked bodies.
        (format!("{chunked}zz\r\n"), Outcome::Protocol),
        (format!("{chunked}2\r\nabc\r\n0\r\n\r\n"), Outcome::Protocol),
        (format!("{chunked}ffffffffffffffffffff\r\n"), Outcome::Protocol),
        // Malformed Content-Length.
        ("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n".into(), Outcome::Protocol),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxy".into(),
            Outcome::Protocol,
        ),
        // A head larger than hyper buffers.
        (format!("HTTP/1.1 200 OK\r\nX: {}\r\n\r\n", "a".repeat(1 << 20)), Outcome::Protocol),
    ];
    for line in [
        "HTTP/1.1 20 OK",
        "HTTP/1.1 2000 OK",
        "HTTP/1.1 abc OK",
        "HTTP/1.1 099 Low",
        "HTTP/2 200 OK",
        "SSH-2.0-OpenSSH_9.6",
        "HTTP/1.1",
        "\u{00e9}\u{00e9}",
    ] {
        cases.push((format!("{line}\r\nContent-Length: 0\r\n\r\n"), Outcome::Protocol));
    }
    for header in ["NoColon", ": empty-name", "Bad Name: x"] {
        cases.push((format!("HTTP/1.1 200 OK\r\n{header}\r\n\r\n"), Outcome::Protocol));
    }
    let mut runs = tokio::task::JoinSet::new();
    for (raw, expected) in cases {
        // Whole, and in about 20 pieces (at least 7 bytes each, to keep the run short).
        for piece in [raw.len().max(1), (raw.len() / 20).max(7)] {
            let (raw, expected) = (raw.clone(), expected.clone());
            runs.spawn(async move {
                let outcome = transport_outcome(raw.clone().into_bytes(), piece, LIMIT).await;
                (raw, piece, outcome, expected)
            });
        }
    }
    while let Some(run) = runs.join_next().await {
        let (raw, piece, outcome, expected) = run.unwrap();
        let shown: String = raw.chars().take(120).collect();
        assert_eq!(outcome, expected, "{shown:?} in {piece}-byte pieces");
    }
}

#[tokio::test]
async fn cookie_is_read_on_every_request() {
    let server = serve(vec![Act::Reply(200, OK_5)]).await;
    let dir = std::env::temp_dir().join(format!("tc-bitcoin-rpc-cookie-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cookie = dir.join(".cookie");
    let mut config = RpcConfig::new(
        format!("http://127.0.0.1:{}", server.port),
        RpcAuth::Cookie(cookie.clone()),
    );
    config.retries = 0;
    let rpc = Rpc::new(config).unwrap();
    let _ = std::fs::remove_file(&cookie);
    let error = rpc.call::<u64>("getblockcount", json!([])).await.unwrap_err();
    assert!(matches!(&error, RpcError::Cookie { path, .. } if *path == cookie), "{error}");
    assert!(error.is_transient(), "the node writes the cookie once it is up");
    std::fs::write(&cookie, "__cookie__:aaaa\n").unwrap();
    assert_eq!(rpc.call::<u64>("getblockcount", json!([])).await.unwrap(), 5);
    std::fs::write(&cookie, "__cookie__:bbbb").unwrap();
    assert_eq!(rpc.call::<u64>("getblockcount", json!([])).await.unwrap(), 5);
    std::fs::write(&cookie, "garbage").unwrap();
    assert!(matches!(
        rpc.call::<u64>("getblockcount", json!([])).await,
        Err(RpcError::Cookie { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
    let requests = server.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 2);
    // base64("__cookie__:aaaa"), base64("__cookie__:bbbb")
    assert!(requests[0].contains("\r\nAuthorization: Basic X19jb29raWVfXzphYWFh\r\n"));
    assert!(requests[1].contains("\r\nAuthorization: Basic X19jb29raWVfXzpiYmJi\r\n"));
}

#[tokio::test]
async fn rest_blocks() {
    let genesis = bitcoin::constants::genesis_block(Network::Regtest);
    let hash = genesis.block_hash();
    let ok = [
        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", serialize(&genesis).len())
            .into_bytes(),
        serialize(&genesis),
    ]
    .concat();
    let not_found = format!("HTTP/1.1 404 Not Found\r\nContent-Length: 74\r\n\r\n{hash} not found")
        .into_bytes();
    let no_rest = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec();
    let garbage = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc".to_vec();
    let server = serve(
        [ok.clone(), ok, not_found, no_rest, garbage]
            .into_iter()
            .map(|r| Act::Pieces(vec![r]))
            .collect(),
    )
    .await;
    let rest = RestBlocks::new(format!("http://127.0.0.1:{}", server.port))
        .unwrap()
        .with_timeout(Duration::from_secs(2), 0);
    assert_eq!(BlockSource::block(&rest, &hash).await.unwrap().block, genesis);
    let other = BlockHash::from_byte_array([1; 32]);
    let error = BlockSource::block(&rest, &other).await.unwrap_err();
    assert!(
        matches!(&error, RpcError::Decode { reason, .. } if reason.contains("asked for block")),
        "{error}"
    );
    assert!(
        matches!(BlockSource::block(&rest, &hash).await, Err(RpcError::BlockNotFound { hash: h }) if h == hash)
    );
    let error = BlockSource::block(&rest, &hash).await.unwrap_err();
    assert!(
        matches!(&error, RpcError::Http { status: 404, body } if body.contains("-rest")),
        "{error}"
    );
    assert!(matches!(BlockSource::block(&rest, &hash).await, Err(RpcError::Decode { .. })));
    let requests = server.requests.lock().unwrap().clone();
    assert!(
        requests[0].starts_with(&format!("GET /rest/block/{hash}.bin HTTP/1.1\r\n")),
        "{}",
        requests[0]
    );
    assert!(!requests[0].contains("Authorization"));
}
