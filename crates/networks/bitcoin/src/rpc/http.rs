//! HTTP/1.1 over hyper: one request per fresh TCP connection (`Connection: close`).
//!
//! hyper writes the request and parses the response (head, Content-Length, chunked, to
//! EOF). This module opens the connection, bounds the body at [`MAX_BODY`], and sorts
//! hyper's errors into those worth a retry (the connection failed or closed before the
//! response was complete) and those that are not (the peer does not speak HTTP).

use std::{error::Error as _, io};

use base64::{engine::general_purpose::STANDARD, Engine as _};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::{body::Body as _, client::conn::http1, header::HeaderValue, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use zeroize::Zeroizing;

/// Largest response body accepted: a 4 MB block is 8 MB of hex inside JSON, and
/// verbose `getblock` replies are several times larger.
pub(crate) const MAX_BODY: usize = 256 * 1024 * 1024;

/// A complete response: the status code and the de-framed body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Why a request failed below HTTP semantics.
#[derive(Debug)]
pub(crate) enum TransportError {
    /// The TCP connection could not be established: the request was not delivered.
    Connect(io::Error),
    /// The connection failed after it was established (reset, broken pipe), or the peer
    /// closed it before the response was complete (`UnexpectedEof`): it crashed or is
    /// restarting.
    Io(io::Error),
    /// The response was not valid HTTP, or its body was larger than the limit.
    Protocol(String),
}

/// Sends `request` on a fresh connection to `host:port` and reads the whole response,
/// refusing a body over `max_body` bytes. The request carries its own `Host` and
/// `Connection: close` headers; the caller bounds the duration.
pub(crate) async fn send(
    host: &str,
    port: u16,
    request: Request<Full<Bytes>>,
    max_body: usize,
) -> Result<Response, TransportError> {
    let stream = TcpStream::connect((host, port)).await.map_err(TransportError::Connect)?;
    // The request is written in one piece; a failure to disable Nagle only costs latency.
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) = http1::Builder::new()
        // As bitcoin-cli sends them; the node does not care, a proxy in between might.
        .title_case_headers(true)
        .handshake(TokioIo::new(stream))
        .await
        .map_err(classify)?;
    let exchange = async {
        let response = sender.send_request(request).await.map_err(classify)?;
        let status = response.status().as_u16();
        let body = read_body(response.into_body(), max_body).await?;
        Ok(Response { status, body })
    };
    let mut exchange = std::pin::pin!(exchange);
    // The connection is driven here rather than spawned, so that when the caller's
    // timeout drops this future, the socket is closed with it.
    tokio::select! {
        response = &mut exchange => response,
        // The connection ended first: hyper has handed its outcome (the rest of the body,
        // or the error) to the exchange.
        _ = connection => exchange.await,
    }
}

/// Collects the body, refusing it as soon as it is known to exceed `max_body`: at once
/// for a larger Content-Length, else when the bytes received pass the limit.
async fn read_body(
    mut body: hyper::body::Incoming,
    max_body: usize,
) -> Result<Vec<u8>, TransportError> {
    let too_large =
        || TransportError::Protocol(format!("response body larger than {max_body} bytes"));
    let declared = usize::try_from(body.size_hint().lower()).unwrap_or(usize::MAX);
    if declared > max_body {
        return Err(too_large());
    }
    let mut out = Vec::with_capacity(declared);
    while let Some(frame) = body.frame().await {
        // Trailers (the only other kind of frame) are ignored.
        if let Ok(data) = frame.map_err(classify)?.into_data() {
            if data.len() > max_body - out.len() {
                return Err(too_large());
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out)
}

/// Sorts a hyper error: a malformed response is [`TransportError::Protocol`], a failed or
/// early-closed connection [`TransportError::Io`].
fn classify(error: hyper::Error) -> TransportError {
    let cause = error.source().and_then(|cause| cause.downcast_ref::<io::Error>());
    let described = match error.source() {
        Some(cause) => format!("{error}: {cause}"),
        None => error.to_string(),
    };
    if error.is_parse() || error.is_user() {
        return TransportError::Protocol(described);
    }
    if error.is_incomplete_message() {
        return TransportError::Io(io::Error::new(io::ErrorKind::UnexpectedEof, described));
    }
    match cause.map(io::Error::kind) {
        // hyper's body decoder reports a malformed chunked body as invalid data or input,
        // and a body cut short as `UnexpectedEof`.
        Some(io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput) => {
            TransportError::Protocol(described)
        }
        Some(kind) => TransportError::Io(io::Error::new(kind, described)),
        // The connection went away (hyper's "canceled" or "closed").
        None => TransportError::Io(io::Error::other(described)),
    }
}

/// The value of an `Authorization: Basic` header for `credentials` (`user:password`),
/// marked sensitive. Its bytes are zeroized when hyper drops the header; the copy in
/// hyper's write buffer is freed with the connection, right after the reply, unzeroized.
pub(crate) fn basic_auth(credentials: &str) -> HeaderValue {
    const SCHEME: &str = "Basic ";
    // Reserved up front, so that encoding never reallocates and leaves a copy behind.
    let mut value =
        Zeroizing::new(String::with_capacity(SCHEME.len() + credentials.len().div_ceil(3) * 4));
    value.push_str(SCHEME);
    STANDARD.encode_string(credentials, &mut value);
    let mut header = HeaderValue::from_maybe_shared(Bytes::from_owner(value))
        .expect("base64 is a valid header value");
    header.set_sensitive(true);
    header
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_is_rfc4648_base64() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
            ("__cookie__:ab/+?", "X19jb29raWVfXzphYi8rPw=="),
        ] {
            let header = basic_auth(input);
            assert_eq!(header.to_str().unwrap(), format!("Basic {expected}"), "{input:?}");
            assert!(header.is_sensitive());
            assert!(!format!("{header:?}").contains(expected) || expected.is_empty());
        }
    }
}
