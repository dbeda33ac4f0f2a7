//! WebTransport sessions (HTTP/3 CONNECT on the client UDP port, served by wtransport).
//!
//! Two modes, chosen by path:
//! - `/connection/webtransport` — **compatible mode**, what centrifuge-js's `webtransport`
//!   transport speaks: the client opens one bidirectional stream and both sides write
//!   newline-delimited Centrifugo JSON on it (the server ends every write with `\n`). A
//!   disconnect is a `disconnect` push on the stream, then the session close carries the
//!   code and reason (browsers often lose the latter, so the push is what counts: the
//!   server finishes the stream and waits, bounded, for the client to close first).
//! - `/connection/webtransport/native` — **native multiplexed mode** (see `mux.rs`): a
//!   postcard control stream, one server-opened stream per subscription, datagrams.
//!
//! Any other path gets 404; `?cf_protocol=protobuf` gets 403 (Protobuf is not served yet);
//! an `Origin` outside `client.allowed_origins` gets 403. A session that opens no stream
//! within `quic.stream_accept_timeout` is closed with 3502 (stale).
//!
//! Also here: `GET /webtransport/cert-hash`, the dev certificate's SHA-256 for pages that
//! pin it with `serverCertificateHashes` (mounted only with development certificates).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::mux::{self, CLOSE_GRACE, RecvHalf, SendHalf};
use super::{Framing, apply_controls, drain_json, now_ms, write_failure};
use crate::hub::{Drained, Outbox};
use crate::protocol::codec::Codec;
use crate::protocol::framing::{self, LineCheck};
use crate::protocol::{Disconnect, Push, json};
use crate::session::{Session, TransportInfo};

/// Path of the Centrifugo-compatible mode.
pub const COMPAT_PATH: &str = "/connection/webtransport";
/// Path of the native multiplexed mode.
pub const NATIVE_PATH: &str = "/connection/webtransport/native";

/// Bytes read from the stream per call (see `mux.rs`).
const READ_CHUNK_BYTES: usize = 4096;

/// Longest the server waits, after its disconnect push was acknowledged, for the client to
/// end the session itself (see `await_peer_close`): the SDK does so within milliseconds of
/// reading the push; 2 s leaves room for a page on a loaded machine, and bounds what a
/// client that never closes can hold.
const PEER_CLOSE_WAIT: Duration = Duration::from_secs(2);

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
    if query.split('&').any(|kv| kv == "cf_protocol=protobuf") {
        crate::log::limited_info!("webtransport.protobuf", "webtransport: Protobuf is not served; use JSON");
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
    let tm = ctx.hub.metrics().transport(COMPAT.name);
    tm.accepted.fetch_add(1, Ordering::Relaxed);
    tm.connections.fetch_add(1, Ordering::Relaxed);
    let stream = tokio::time::timeout(timeout, conn.accept_bi()).await;
    match stream {
        Ok(Ok((send, recv))) if native => mux::run(ctx.clone(), conn.clone(), (send, recv), NATIVE).await,
        Ok(Ok((send, recv))) => run_compat(&ctx, &conn, send, recv).await,
        Ok(Err(_)) => {}
        Err(_) => {
            tracing::debug!("webtransport session opened no stream in time");
            let d = Disconnect::STALE;
            conn.close(wtransport::VarInt::from_u32(u32::from(d.code)), d.reason.as_bytes());
        }
    }
    tm.connections.fetch_sub(1, Ordering::Relaxed);
}

/// Drives a compatible-mode session: one stream, newline-delimited JSON both ways.
async fn run_compat(
    ctx: &mux::Ctx,
    conn: &wtransport::Connection,
    mut send: wtransport::SendStream,
    mut recv: wtransport::RecvStream,
) {
    let metrics = ctx.hub.metrics().clone();
    let tm = metrics.transport(COMPAT.name);
    let cfg = ctx.hub.config().clone();
    let outbox = Outbox::new(cfg.client.queue_max_size);
    let mut session = Session::new(ctx.hub.clone(), ctx.auth.clone(), outbox.clone(), COMPAT, now_ms());
    let write_timeout = cfg.websocket.write_timeout.0;
    let limit = ctx.message_size_limit;
    let mut shutdown = ctx.shutdown.clone();
    let mut inbuf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; READ_CHUNK_BYTES];

    let close: Option<Disconnect> = loop {
        let wait = Duration::from_millis(session.next_deadline().saturating_sub(now_ms()));
        tokio::select! {
            biased;
            () = outbox.notified() => {
                // Compatible mode: newline-terminated JSON on the one bidi stream.
                let batch = drain_json(&outbox, Codec::Json, Framing::Terminated, usize::MAX);
                let mut failed = false;
                for (frame, n) in batch.chunks {
                    match tokio::time::timeout(write_timeout, send.write_all(&frame)).await {
                        Ok(Ok(())) => {
                            tm.messages_sent.fetch_add(n as u64, Ordering::Relaxed);
                            tm.bytes_sent.fetch_add(frame.len() as u64, Ordering::Relaxed);
                        }
                        _ => { failed = true; break; }
                    }
                }
                if failed {
                    break Some(write_failure(&outbox));
                }
                if let Drained::Close(d) = batch.status {
                    break Some(d);
                }
                apply_controls(&mut session, batch.controls, &outbox).await;
            }
            read = RecvHalf::read(&mut recv, &mut chunk) => {
                let Ok(Some(n)) = read else { break None };
                if outbox.is_closing() {
                    continue;
                }
                tm.bytes_received.fetch_add(n as u64, Ordering::Relaxed);
                inbuf.extend_from_slice(&chunk[..n]);
                if let Err(d) = handle_lines(&mut session, &mut inbuf, limit, tm).await {
                    outbox.close(d);
                }
                if inbuf.is_empty() && inbuf.capacity() > READ_CHUNK_BYTES {
                    inbuf = Vec::new();
                }
            }
            _ = shutdown.changed() => outbox.close(Disconnect::SHUTDOWN),
            () = tokio::time::sleep(wait) => {
                if let Err(d) = session.tick(now_ms()).await {
                    outbox.close(d);
                }
            }
        }
    };

    session.close().await;
    if let Some(d) = close {
        metrics.disconnects.inc(&d.code.to_string());
        if d == Disconnect::SLOW {
            metrics.slow_disconnects.fetch_add(1, Ordering::Relaxed);
        }
        // The disconnect push carries the code (browsers often lose the session close).
        let mut out = Vec::new();
        json::encode_push(&mut out, &Push::Disconnect(d.clone()), true);
        out.push(b'\n');
        let delivered = tokio::time::timeout(CLOSE_GRACE, async {
            if SendHalf::write_all(&mut send, &out).await.is_ok() {
                // Completes once the peer's QUIC stack has acknowledged every byte.
                SendHalf::finish(&mut send).await;
                true
            } else {
                false
            }
        })
        .await;
        if matches!(delivered, Ok(true)) {
            await_peer_close(conn, &mut recv).await;
        }
        conn.close(wtransport::VarInt::from_u32(u32::from(d.code)), d.reason.as_bytes());
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
    let mut chunk = [0u8; READ_CHUNK_BYTES];
    let stream_ended = async {
        while let Ok(Some(_)) = RecvHalf::read(recv, &mut chunk).await {}
    };
    let _ = tokio::time::timeout(PEER_CLOSE_WAIT, async {
        tokio::select! {
            () = stream_ended => {}
            _ = conn.closed() => {}
        }
    })
    .await;
}

/// Splits whole lines off `inbuf` and hands their commands to the session in order.
async fn handle_lines(
    session: &mut Session,
    inbuf: &mut Vec<u8>,
    limit: usize,
    tm: &crate::metrics::TransportMetrics,
) -> Result<(), Disconnect> {
    let mut used = 0;
    let result = loop {
        let len = match framing::check_line(&inbuf[used..], limit) {
            Err(_) => break Err(Disconnect::custom(Disconnect::BAD_REQUEST.code, "message size limit exceeded")),
            Ok(LineCheck::Incomplete) => break Ok(()),
            Ok(LineCheck::Complete { len }) => len,
        };
        let line = inbuf[used..used + len].trim_ascii();
        used += len + 1;
        if line.is_empty() {
            continue;
        }
        let Ok(cmd) = json::decode_command(line) else { break Err(Disconnect::BAD_REQUEST) };
        tm.messages_received.fetch_add(1, Ordering::Relaxed);
        if let Err(d) = session.handle(cmd, now_ms()).await {
            break Err(d);
        }
    };
    inbuf.drain(..used);
    result
}
