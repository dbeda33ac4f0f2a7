//! A minimal HTTP/1.1 keep-alive client for the server API and the readiness
//! probe, and the advice the bench gives for socket errors with a known cause.
//!
//! Deliberately tiny and dependency-free (reqwest would hide the one thing
//! the publishers need: exactly one request in flight per connection, written
//! in one `write`): fixed headers with `X-API-Key`, Content-Length or chunked
//! responses, no redirects, no TLS, every buffer bounded.

use std::fmt::Write as _;
use std::net::SocketAddr;

use anyhow::anyhow;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::scenario::API_KEY;

/// errno "Too many open files" (this process); like the two below, it gets
/// an explanation instead of a bare OS error.
const EMFILE: i32 = 24;
/// "Too many open files in system".
const ENFILE: i32 = 23;
/// "Cannot assign requested address": usually local ports ran out.
const EADDRNOTAVAIL: i32 = 99;

/// One HTTP/1.1 connection with one request in flight; reconnects when the
/// server closes it. Deliberately tiny: fixed headers, Content-Length or
/// chunked responses, no redirects, no TLS.
pub(crate) struct HttpConn {
    /// The server.
    addr: SocketAddr,
    /// The open connection, if any.
    stream: Option<TcpStream>,
    /// Bytes read and not yet consumed.
    buf: Vec<u8>,
}

/// Upper bound for a response head or body we are willing to buffer.
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

impl HttpConn {
    /// A client for `addr`; it connects on the first request.
    pub(crate) fn new(addr: SocketAddr) -> Self {
        HttpConn { addr, stream: None, buf: Vec::with_capacity(4096) }
    }

    /// Drops the connection (after a timeout the stream state is unknown).
    pub(crate) fn reset(&mut self) {
        self.stream = None;
        self.buf.clear();
    }

    /// Sends one request and returns (status, body). A request on a reused
    /// connection that the server had already closed is retried once on a
    /// fresh connection (nothing of it was processed).
    pub(crate) async fn request(&mut self, method: &str, path: &str, body: &[u8]) -> anyhow::Result<(u16, Vec<u8>)> {
        let reused = self.stream.is_some();
        match self.try_request(method, path, body).await {
            Ok(r) => Ok(r),
            Err(RequestError::Stale(_)) if reused => {
                self.reset();
                self.try_request(method, path, body).await.map_err(RequestError::into_anyhow)
            }
            Err(e) => {
                self.reset();
                Err(e.into_anyhow())
            }
        }
    }

    async fn try_request(&mut self, method: &str, path: &str, body: &[u8]) -> Result<(u16, Vec<u8>), RequestError> {
        if self.stream.is_none() {
            let stream = TcpStream::connect(self.addr).await.map_err(|e| RequestError::Other(explain_io(e)))?;
            stream.set_nodelay(true).map_err(|e| RequestError::Other(e.into()))?;
            self.stream = Some(stream);
            self.buf.clear();
        }
        let Some(stream) = self.stream.as_mut() else {
            return Err(RequestError::Other(anyhow!("no connection")));
        };
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nX-API-Key: {API_KEY}\r\n",
            self.addr
        );
        if !body.is_empty() {
            let _ = write!(req, "Content-Type: application/json\r\nContent-Length: {}\r\n", body.len());
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        stream.write_all(&bytes).await.map_err(|e| RequestError::Stale(e.into()))?;

        // Head.
        let head_end = loop {
            if let Some(pos) = find(&self.buf, b"\r\n\r\n") {
                break pos + 4;
            }
            if self.buf.len() > 64 * 1024 {
                return Err(RequestError::Other(anyhow!("response head over 64 KiB")));
            }
            let n = read_more(stream, &mut self.buf).await?;
            if n == 0 {
                return Err(if self.buf.is_empty() {
                    RequestError::Stale(anyhow!("connection closed before the response"))
                } else {
                    RequestError::Other(anyhow!("connection closed inside the response head"))
                });
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| RequestError::Other(anyhow!("bad status line in {head:?}")))?;
        let (mut content_length, mut chunked, mut close) = (None, false, false);
        for line in lines {
            let Some((name, value)) = line.split_once(':') else { continue };
            let value = value.trim();
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => content_length = value.parse::<usize>().ok(),
                "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
                "connection" => close = value.eq_ignore_ascii_case("close"),
                _ => {}
            }
        }
        self.buf.drain(..head_end);

        // Body.
        let body = if chunked {
            let mut out = Vec::new();
            loop {
                let line_end = loop {
                    if let Some(pos) = find(&self.buf, b"\r\n") {
                        break pos;
                    }
                    if read_more(stream, &mut self.buf).await? == 0 {
                        return Err(RequestError::Other(anyhow!("connection closed inside a chunked body")));
                    }
                };
                let size_text = String::from_utf8_lossy(&self.buf[..line_end]).into_owned();
                let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                    .map_err(|_| RequestError::Other(anyhow!("bad chunk size {size_text:?}")))?;
                let need = line_end + 2 + size + 2;
                while self.buf.len() < need {
                    if out.len() + need > MAX_RESPONSE_BYTES {
                        return Err(RequestError::Other(anyhow!("response body too large")));
                    }
                    if read_more(stream, &mut self.buf).await? == 0 {
                        return Err(RequestError::Other(anyhow!("connection closed inside a chunk")));
                    }
                }
                out.extend_from_slice(&self.buf[line_end + 2..line_end + 2 + size]);
                self.buf.drain(..need);
                if size == 0 {
                    break out; // (trailers are not supported; servers here send none)
                }
            }
        } else if let Some(len) = content_length {
            if len > MAX_RESPONSE_BYTES {
                return Err(RequestError::Other(anyhow!("response body of {len} bytes is too large")));
            }
            while self.buf.len() < len {
                if read_more(stream, &mut self.buf).await? == 0 {
                    return Err(RequestError::Other(anyhow!("connection closed inside the body")));
                }
            }
            self.buf.drain(..len).collect()
        } else {
            // No length: the body runs to the end of the connection.
            close = true;
            while read_more(stream, &mut self.buf).await? > 0 {
                if self.buf.len() > MAX_RESPONSE_BYTES {
                    return Err(RequestError::Other(anyhow!("response body too large")));
                }
            }
            std::mem::take(&mut self.buf)
        };
        if close {
            self.reset();
        }
        Ok((status, body))
    }
}

/// Why a request failed: `Stale` means nothing reached the server (safe to retry).
enum RequestError {
    Stale(anyhow::Error),
    Other(anyhow::Error),
}

impl RequestError {
    fn into_anyhow(self) -> anyhow::Error {
        match self {
            RequestError::Stale(e) | RequestError::Other(e) => e,
        }
    }
}

/// Reads whatever is available into `buf`; returns the byte count (0 = EOF).
async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<usize, RequestError> {
    buf.reserve(16 * 1024);
    stream.read_buf(buf).await.map_err(|e| RequestError::Other(e.into()))
}

/// Position of `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Adds advice to the socket errors that have a known cause here.
pub(crate) fn explain_io(e: std::io::Error) -> anyhow::Error {
    match e.raw_os_error() {
        Some(EMFILE | ENFILE) => anyhow!(
            "{e}: out of file descriptors; raise the limit with `ulimit -n 20000` before `cargo bench` \
             (the server inherits it), or use fewer --subscribers"
        ),
        Some(EADDRNOTAVAIL) => anyhow!("{e}: out of local ports; pass a larger --source-ips"),
        _ => anyhow::Error::new(e),
    }
}
