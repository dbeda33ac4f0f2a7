//! WebTransport sessions (HTTP/3 CONNECT on the client UDP port, served by wtransport).
//!
//! Two modes, chosen by path:
//! - `/connection/webtransport` — **compatible mode**, what centrifuge-js's `webtransport`
//!   transport speaks: the client opens one bidirectional stream and both sides write
//!   newline-delimited Centrifugo JSON on it (the server ends every write with `\n`), or
//!   varint-delimited Centrifugo Protobuf with `?cf_protocol=protobuf`. A
//!   disconnect is a `disconnect` push on the stream, then the session close carries the
//!   code and reason (browsers often lose the latter, so the push is what counts: the
//!   server finishes the stream and waits, bounded, for the client to close first).
//! - `/connection/webtransport/native` — **native multiplexed mode** (see `mux.rs`): a
//!   postcard control stream, one server-opened stream per subscription, datagrams.
//!
//! Any other path gets 404; `?cf_protocol=protobuf` on the native path gets 403 (the
//! native mode has its own format); an `Origin` outside `client.allowed_origins` gets 403. A session that opens no stream
//! within `quic.stream_accept_timeout` is closed with 3502 (stale).
//!
//! Also here: `GET /webtransport/cert-hash`, the dev certificate's SHA-256 for pages that
//! pin it with `serverCertificateHashes` (mounted only with development certificates).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::mux::{self, CLOSE_GRACE, PEER_CLOSE_WAIT, Pending, READ_CHUNK_BYTES, RecvHalf, SendHalf};
use super::driver::{self, Inbound, Transport, WriteError};
use super::{Framing, encode_batch, now_ms};
use crate::hub::{Outbox, Outgoing};
use crate::protocol::codec::Codec;
use crate::protocol::framing::{self, LineCheck, VarintCheck};
use crate::protocol::{Disconnect, Push};
use crate::session::{Session, TransportInfo};

/// Path of the Centrifugo-compatible mode.
pub const COMPAT_PATH: &str = "/connection/webtransport";
/// Path of the native multiplexed mode.
pub const NATIVE_PATH: &str = "/connection/webtransport/native";


const COMPAT: TransportInfo = TransportInfo { name: "webtransport", bidirectional: true, emulation: false };
const NATIVE: TransportInfo = TransportInfo { name: "webtransport", bidirectional: true, emulation: false };

/// The current certificate hash (lower-case hex), read at each request so renewals show.
pub type CertHash = Arc<dyn Fn() -> String + Send + Sync>;

/// `GET /webtransport/cert-hash`: `{"algorithm":"sha-256","hash":"<hex>"}`.
pub fn cert_hash_router(hash: CertHash) -> Router {
    Router::new().route(
        "/webtransport/cert-hash",
        get(move || {
            let hash = hash();
            async move {
                let body = serde_json::json!({"algorithm": "sha-256", "hash": hash}).to_string();
                let mut resp: Response = ([(header::CONTENT_TYPE, "application/json")], body).into_response();
                // A page served from another origin (the demo, a dev server) may fetch it.
                resp.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
                resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                resp
            }
        }),
    )
}

/// Serves one WebTransport session from its HTTP/3 handshake to its end.
pub async fn run(ctx: mux::Ctx, incoming: wtransport::endpoint::IncomingSessionFuture) {
    let cfg = ctx.hub.config().clone();
    let timeout = cfg.quic.stream_accept_timeout.0;
    let request = match tokio::time::timeout(timeout, incoming).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "webtransport handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!("webtransport session request timed out");
            return;
        }
    };
    let path = request.path().to_owned();
    let (route, query) = path.split_once('?').unwrap_or((path.as_str(), ""));
    let native = match route {
        COMPAT_PATH => false,
        NATIVE_PATH => true,
        _ => {
            crate::log::limited_info!("webtransport.path", path = %path, "webtransport: unknown path");
            request.not_found().await;
            return;
        }
    };
    let codec = if query.split('&').any(|kv| kv == "cf_protocol=protobuf") { Codec::Protobuf } else { Codec::Json };
    if native && codec == Codec::Protobuf {
        crate::log::limited_info!("webtransport.protobuf", "webtransport: the native mode does not speak Centrifugo Protobuf");
        request.forbidden().await;
        return;
    }
    let mut headers = HeaderMap::new();
    if let Some(origin) = request.origin()
        && let Ok(v) = HeaderValue::from_str(origin)
    {
        headers.insert(header::ORIGIN, v);
    }
    if !super::websocket::origin_allowed(&cfg.client.allowed_origins, &headers) {
        crate::log::limited_info!("client.origin", origin = ?request.origin(), "webtransport origin rejected");
        request.forbidden().await;
        return;
    }
    // The request's text is not needed past here: not carried by an idle session.
    drop((headers, path));
    let limit = cfg.client.connection_limit;
    if ctx.hub.is_shutting_down() || (limit > 0 && ctx.hub.metrics().total_connections() >= limit as i64) {
        if !ctx.hub.is_shutting_down() {
            crate::log::limited_warn!("client.connection_limit", limit, "client.connection_limit reached; refusing a connection");
        }
        request.too_many_requests().await;
        return;
    }
    let conn = match request.accept().await {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(error = %e, "webtransport accept failed");
            return;
        }
    };
    let stream = tokio::time::timeout(timeout, conn.accept_bi()).await;
    match stream {
        Ok(Ok((send, recv))) if native => mux::run(ctx.clone(), conn.clone(), (send, recv), NATIVE).await,
        Ok(Ok((send, recv))) => run_compat(&ctx, conn, send, recv, codec).await,
        Ok(Err(_)) => {}
        Err(_) => {
            tracing::debug!("webtransport session opened no stream in time");
            let d = Disconnect::STALE;
            conn.close(wtransport::VarInt::from_u32(u32::from(d.code)), d.reason.as_bytes());
        }
    }
}

/// Serves a compatible-mode session (one stream, newline-delimited JSON or
/// varint-delimited Protobuf both ways) on the driver.
async fn run_compat(
    ctx: &mux::Ctx,
    conn: wtransport::Connection,
    send: wtransport::SendStream,
    recv: wtransport::RecvStream,
    codec: Codec,
) {
    let outbox = Outbox::new(ctx.hub.config().client.queue_max_size);
    let session = Session::new(ctx.hub.clone(), ctx.auth.clone(), outbox.clone(), COMPAT, now_ms());
    let compat = Compat {
        conn,
        send,
        recv,
        codec,
        metrics: ctx.hub.metrics().clone(),
        limit: ctx.message_size_limit,
        shutdown: Some(ctx.shutdown.clone()),
        inbuf: Pending::default(),
    };
    driver::run(compat, session, outbox, Vec::new()).await;
}

/// The framing of compatible mode: lines of Centrifugo JSON, or delimited Protobuf
/// messages, on one bidirectional stream.
struct Compat {
    conn: wtransport::Connection,
    send: wtransport::SendStream,
    recv: wtransport::RecvStream,
    codec: Codec,
    metrics: Arc<crate::metrics::Metrics>,
    limit: usize,
    /// Server shutdown, until it has been seen.
    shutdown: Option<tokio::sync::watch::Receiver<bool>>,
    /// Stream bytes read but not yet a whole message.
    inbuf: Pending,
}

/// A message over `webtransport.message_size_limit`.
fn too_large() -> Disconnect {
    Disconnect::custom(Disconnect::BAD_REQUEST.code, "message size limit exceeded")
}

impl Compat {
    /// The next whole message in `inbuf`, if one is there.
    fn take_message(&mut self) -> Result<Option<bytes::Bytes>, Disconnect> {
        if self.codec != Codec::Protobuf {
            return self.take_line();
        }
        match framing::check_varint(self.inbuf.bytes(), self.limit) {
            Err(_) => Err(too_large()),
            Ok(VarintCheck::Incomplete) => Ok(None),
            Ok(VarintCheck::Complete { header, len }) => {
                // The message with its prefix: the codec decodes delimited frames.
                let message = bytes::Bytes::copy_from_slice(&self.inbuf.bytes()[..header + len]);
                self.inbuf.consume(header + len);
                Ok(Some(message))
            }
        }
    }

    /// The next whole line in `inbuf` (blank lines skipped), if one is there.
    fn take_line(&mut self) -> Result<Option<bytes::Bytes>, Disconnect> {
        loop {
            let len = match framing::check_line(self.inbuf.bytes(), self.limit) {
                Err(_) => return Err(too_large()),
                Ok(LineCheck::Incomplete) => return Ok(None),
                Ok(LineCheck::Complete { len }) => len,
            };
            let line = bytes::Bytes::copy_from_slice(self.inbuf.bytes()[..len].trim_ascii());
            self.inbuf.consume(len + 1);
            if !line.is_empty() {
                return Ok(Some(line));
            }
        }
    }
}

impl Transport for Compat {
    fn info(&self) -> TransportInfo {
        COMPAT
    }

    fn codec(&self) -> Codec {
        self.codec
    }

    async fn recv(&mut self) -> Inbound {
        loop {
            match self.take_message() {
                Err(d) => return Inbound::Close(d),
                Ok(Some(line)) => return Inbound::Message(line),
                Ok(None) => {}
            }
            tokio::select! {
                read = RecvHalf::read_chunk(&mut self.recv, READ_CHUNK_BYTES) => {
                    let Ok(Some(bytes)) = read else { return Inbound::Gone };
                    self.metrics.transport(COMPAT.name).bytes_received.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                    self.inbuf.push(&bytes);
                }
                changed = mux::shutdown_signal(&mut self.shutdown) => {
                    if changed {
                        return Inbound::Close(Disconnect::SHUTDOWN);
                    }
                }
            }
        }
    }

    async fn write(&mut self, items: &mut Vec<Outgoing>) -> Result<(), WriteError> {
        let tm = self.metrics.transport(COMPAT.name);
        let mut next = 0;
        while next < items.len() {
            let mut chunk = Vec::new();
            let n = encode_batch(items, &mut next, &mut chunk, self.codec, Framing::Terminated, usize::MAX).map_err(WriteError::Close)?;
            if n == 0 {
                continue;
            }
            SendHalf::write_all(&mut self.send, &chunk).await.map_err(|_| WriteError::Io)?;
            tm.messages_sent.fetch_add(n as u64, Ordering::Relaxed);
            tm.bytes_sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
        items.clear();
        Ok(())
    }

    async fn close(&mut self, reason: Option<&Disconnect>) {
        let Some(d) = reason else { return };
        // The disconnect push carries the code (browsers often lose the session close).
        let out = super::encode_push(&Push::Disconnect(d.clone()), self.codec, Framing::Terminated);
        let send = &mut self.send;
        let delivered = tokio::time::timeout(CLOSE_GRACE, async {
            if SendHalf::write_all(send, &out).await.is_ok() {
                // Completes once the peer's QUIC stack has acknowledged every byte.
                SendHalf::finish(send).await;
                true
            } else {
                false
            }
        })
        .await;
        if matches!(delivered, Ok(true)) {
            await_peer_close(&self.conn, &mut self.recv).await;
        }
        self.conn.close(wtransport::VarInt::from_u32(u32::from(d.code)), d.reason.as_bytes());
    }
}

/// Waits, at most [`PEER_CLOSE_WAIT`], until the peer ends its side: its stream's FIN (or
/// reset) or the session's close. An acknowledged push is in the peer's QUIC stack, not
/// yet in the page: Chromium discards stream data the page has not read when the session
/// closes under it, so closing first lost the disconnect push about one time in five.
/// centrifuge-js ends its stream and closes the session once it has handled the push,
/// so its close is the signal that the push arrived. What the peer still sends meanwhile
/// is read and dropped (the session is over; QUIC flow control bounds it).
async fn await_peer_close(conn: &wtransport::Connection, recv: &mut wtransport::RecvStream) {
    let stream_ended = async {
        while let Ok(Some(_)) = RecvHalf::read_chunk(recv, READ_CHUNK_BYTES).await {}
    };
    let _ = tokio::time::timeout(PEER_CLOSE_WAIT, async {
        tokio::select! {
            () = stream_ended => {}
            _ = conn.closed() => {}
        }
    })
    .await;
}

