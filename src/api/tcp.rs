//! The TCP listener: HTTP/1.1 and HTTP/2 (h2c, prior knowledge; Extended CONNECT for
//! WebSocket over HTTP/2) serving the one axum router — the API, health, metrics, and the
//! WebSocket / SSE / HTTP-stream transports mounted on it.
//!
//! Every accepted socket is bounded in time before it has proven to be a client:
//! - **headers**: the first request's headers must arrive within
//!   `http_server.header_read_timeout` (HTTP/1.1 and HTTP/2 alike, including the bytes
//!   hyper reads to tell the versions apart); later HTTP/1.1 requests on a keep-alive
//!   connection get the same time from the end of the previous response (hyper's header
//!   timer, which needs a timer set on the builder — without one it never fires), so an
//!   idle keep-alive connection closes after that long too;
//! - **HTTP/2 keep-alive**: PINGs every `http_server.http2_keep_alive_interval`; a peer that
//!   does not answer is dropped.
//!
//! Every socket closes lingeringly ([`Lingering`]): when dropped, the write side is shut
//! down and what the peer still sends is read and discarded, bounded in bytes and time.
//! Dropping a socket with unread input makes the kernel answer with RST, which destroys
//! what we wrote last — a WebSocket close frame with 1009 after an oversized message, an
//! early 413 — before the peer reads it.
//!
//! Long-lived connections (WebSocket, SSE) are not this file's business once their
//! request has arrived: their transports bound them (pings, pongs, write timeouts).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

/// Longest a closing socket keeps reading (and discarding) what its peer still sends:
/// enough for the peer to read our last bytes and answer with FIN on any sane path, short
/// enough that a flood of closing connections gives its fds back quickly.
pub const LINGER_TIMEOUT: Duration = Duration::from_secs(2);

/// Most bytes a closing socket reads and discards (16 MiB): covers a client that was
/// mid-way through sending a message of several megabytes over the limit (centrifuge-js
/// sends a whole message before it reads), bounds what one closing peer can make us read.
pub const LINGER_MAX_BYTES: usize = 16 * 1024 * 1024;

/// Read size while lingering, in bytes: one page, the socket's buffers do the rest.
const LINGER_READ_BYTES: usize = 4096;

/// Pause after `accept` fails (typically EMFILE: the fd table is full), so the loop does
/// not spin at 100 % CPU while connections close and free descriptors.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// What bounds a TCP connection (from `http_server.*`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// See `http_server.header_read_timeout`.
    pub header_read_timeout: Duration,
    /// See `http_server.http2_keep_alive_interval`; `None` disables the PINGs.
    pub http2_keep_alive: Option<Duration>,
}

impl Limits {
    /// The limits of `http_server.*`.
    pub fn from_config(cfg: &crate::config::HttpServer) -> Self {
        let ka = cfg.http2_keep_alive_interval.0;
        Self { header_read_timeout: cfg.header_read_timeout.0, http2_keep_alive: (!ka.is_zero()).then_some(ka) }
    }
}

/// Accepts connections on `listener` and serves `app` on each until `stop` completes;
/// then asks every connection to finish its in-flight requests and close, and returns
/// once all have (the caller bounds the wait).
pub async fn run(listener: TcpListener, app: Router, limits: Limits, stop: impl Future<Output = ()>) {
    let (stopping_tx, stopping_rx) = tokio::sync::watch::channel(false);
    let mut stop = std::pin::pin!(stop);
    loop {
        let stream = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    crate::log::limited_warn!("tcp.accept", error = %e, "accept failed (fd table full?); backing off");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                    continue;
                }
            },
        };
        tokio::spawn(serve_connection(stream, app.clone(), limits, stopping_rx.clone()));
    }
    drop(listener);
    drop(stopping_rx);
    let _ = stopping_tx.send(true);
    // Completes when every connection task has dropped its receiver.
    stopping_tx.closed().await;
}

/// A 413 is answered before the rest of the body was read, so the HTTP/1.1 connection
/// cannot carry another request: say so (`Connection: close`), or a client that pools it
/// sends its next request into a socket being closed and gets no answer.
fn close_after_413(mut response: axum::response::Response, http1: bool) -> axum::response::Response {
    if http1 && response.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        response.headers_mut().insert(axum::http::header::CONNECTION, axum::http::HeaderValue::from_static("close"));
    }
    response
}

/// Serves one connection until it closes, times out or finishes after `stopping`.
async fn serve_connection(stream: TcpStream, app: Router, limits: Limits, mut stopping: tokio::sync::watch::Receiver<bool>) {
    // Small writes (WebSocket frames, SSE events) go out at once.
    let _ = stream.set_nodelay(true);
    let requested = Arc::new(AtomicBool::new(false));
    let seen = requested.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        seen.store(true, Ordering::Relaxed);
        let http1 = req.version() < hyper::Version::HTTP_2;
        let response = app.clone().oneshot(req.map(Body::new));
        async move { response.await.map(|r| close_after_413(r, http1)) }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    let mut h2 = builder.http2();
    h2.timer(TokioTimer::new()).enable_connect_protocol();
    if let Some(interval) = limits.http2_keep_alive {
        h2.keep_alive_interval(interval).keep_alive_timeout(interval);
    }
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(Lingering::new(stream)), service);
    let mut conn = std::pin::pin!(conn);
    let first_request = tokio::time::sleep(limits.header_read_timeout);
    let mut first_request = std::pin::pin!(first_request);
    let (mut waiting_first, mut stopped) = (true, *stopping.borrow());
    if stopped {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "http connection ended with an error");
                }
                break;
            }
            () = &mut first_request, if waiting_first => {
                if !requested.load(Ordering::Relaxed) {
                    tracing::debug!("no request headers within http_server.header_read_timeout; closing");
                    break;
                }
                waiting_first = false;
            }
            changed = stopping.changed(), if !stopped => {
                let _ = changed;
                stopped = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// A TCP socket that closes lingeringly when dropped: write side shut down (FIN after
/// everything written), then input read and discarded until the peer closes,
/// [`LINGER_MAX_BYTES`] or [`LINGER_TIMEOUT`], on a task of its own — so the last bytes
/// written reach the peer instead of being destroyed by the RST that closing a socket
/// with unread input sends.
#[derive(Debug)]
pub struct Lingering {
    stream: Option<TcpStream>,
}

impl Lingering {
    /// Wraps an accepted socket.
    pub fn new(stream: TcpStream) -> Self {
        Self { stream: Some(stream) }
    }

    /// The socket, taken out: dropping this wrapper no longer closes it lingeringly, the
    /// caller owns the close from here on (for a transport that drives the raw socket after
    /// an HTTP upgrade; it hands the socket to `Lingering::new` again when done with it).
    /// `Err(NotConnected)` only if the socket was already taken, which `Drop` alone does.
    pub fn into_inner(mut self) -> io::Result<TcpStream> {
        self.stream.take().ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
    }

    fn stream(&mut self) -> io::Result<&mut TcpStream> {
        self.stream.as_mut().ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
    }
}

/// Shuts the write side, then discards input until EOF or the bounds.
async fn linger(mut stream: TcpStream) {
    let _ = stream.shutdown().await;
    let _ = tokio::time::timeout(LINGER_TIMEOUT, async {
        let mut buf = [0u8; LINGER_READ_BYTES];
        let mut discarded = 0;
        while discarded < LINGER_MAX_BYTES {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => discarded += n,
            }
        }
    })
    .await;
}

impl Drop for Lingering {
    fn drop(&mut self) {
        if let Some(stream) = self.stream.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(linger(stream));
        }
    }
}

impl AsyncRead for Lingering {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(s) => Pin::new(s).poll_read(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncWrite for Lingering {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut().stream() {
            Ok(s) => Pin::new(s).poll_write(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        match self.get_mut().stream() {
            Ok(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(s) => Pin::new(s).poll_flush(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(s) => Pin::new(s).poll_shutdown(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}
