//! `/connection/websocket`: Centrifugo protocol v2 JSON over WebSocket text frames.
//!
//! One task per connection selects over three things: inbound frames (decoded and handed
//! to the session in order), the outbox (drained whole and written as one frame of
//! newline-joined messages) and the session's next timer. Disconnects are close frames
//! carrying the code and a plain-text reason.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::{Framing, apply_controls, drain_json, now_ms, write_failure};
use crate::hub::{Drained, Hub, Outbox};
use crate::protocol::codec::Codec;
use crate::protocol::codes::{WS_MESSAGE_TOO_BIG, WS_PROTOCOL_ERROR};
use crate::protocol::{Command, CommandBody, ConnectRequest, Disconnect, Push, framing, json};
use crate::session::{Auth, Session, TransportInfo};

/// How long we wait for the client's close frame after sending ours.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Read buffer per connection, in bytes. Small, because idle connections should cost
/// little; frames larger than this are read in several steps.
const READ_BUFFER_BYTES: usize = 4096;

const INFO: TransportInfo = TransportInfo { name: "websocket", bidirectional: true, emulation: false };
const UNI_INFO: TransportInfo = TransportInfo { name: "uni_websocket", bidirectional: false, emulation: false };

/// Bidirectional (commands in, replies and pushes out) or unidirectional (one connect
/// request in, bare pushes out, one per frame).
#[derive(Debug)]
enum Mode {
    Bidi,
    /// The connect request, when it came in the `cf_connect` URL parameter.
    Uni(Option<ConnectRequest>),
}

/// What the WebSocket endpoint needs.
#[derive(Clone, Debug)]
pub struct Ctx {
    /// The hub.
    pub hub: Hub,
    /// Token verifiers.
    pub auth: Arc<Auth>,
}

/// Routes of this transport.
pub fn router(ctx: Ctx) -> Router {
    let mut r = Router::new().route("/connection/websocket", get(upgrade));
    if ctx.hub.config().uni_websocket.enabled {
        r = r.route("/connection/uni_websocket", get(upgrade_uni));
    }
    r.with_state(ctx)
}

/// Whether a request's `Origin` (if any) is allowed by `client.allowed_origins`. Requests
/// without an Origin (native and Node clients) are always allowed; with an empty list,
/// any Origin is refused, as Centrifugo does.
pub fn origin_allowed(allowed: &[String], headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(axum::http::header::ORIGIN) else { return true };
    let Ok(origin) = origin.to_str() else { return false };
    let origin = origin.to_ascii_lowercase();
    allowed.iter().any(|pattern| crate::hub::glob_match(&pattern.to_ascii_lowercase(), &origin))
}

async fn upgrade(State(ctx): State<Ctx>, headers: HeaderMap, ws: WebSocketUpgrade) -> Response {
    accept(ctx, &headers, ws, Mode::Bidi)
}

async fn upgrade_uni(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    ws: WebSocketUpgrade,
) -> Response {
    let connect = match super::sse::cf_connect_param(query.as_deref()) {
        None => None,
        Some(text) => match super::sse::uni_connect_request(text.as_bytes()) {
            Some(req) => Some(req),
            None => return (StatusCode::BAD_REQUEST, "Bad Request").into_response(),
        },
    };
    accept(ctx, &headers, ws, Mode::Uni(connect))
}

fn accept(ctx: Ctx, headers: &HeaderMap, ws: WebSocketUpgrade, mode: Mode) -> Response {
    if !origin_allowed(&ctx.hub.config().client.allowed_origins, headers) {
        crate::log::limited_info!("client.origin", origin = ?headers.get("origin"), "websocket origin rejected");
        return (StatusCode::FORBIDDEN, "origin not allowed").into_response();
    }
    if ctx.hub.is_shutting_down() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
    // Over the node's connection limit: 503 before the upgrade, so SDKs back off and retry.
    let limit = ctx.hub.config().client.connection_limit;
    if limit > 0 && ctx.hub.metrics().total_connections() >= limit as i64 {
        crate::log::limited_warn!("client.connection_limit", limit, "client.connection_limit reached; refusing a connection");
        return (StatusCode::SERVICE_UNAVAILABLE, "connection limit reached").into_response();
    }
    let limit = ctx.hub.config().websocket.message_size_limit;
    ws.max_message_size(limit)
        .max_frame_size(limit)
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(0)
        .on_upgrade(move |socket| drive(ctx, socket, mode))
}

/// Drives one WebSocket connection until it closes.
pub async fn run(ctx: Ctx, ws: WebSocket) {
    drive(ctx, ws, Mode::Bidi).await;
}

async fn drive(ctx: Ctx, mut ws: WebSocket, mode: Mode) {
    let (info, codec, per_frame) = match mode {
        Mode::Bidi => (INFO, Codec::Json, usize::MAX),
        Mode::Uni(_) => (UNI_INFO, Codec::JsonUni, 1),
    };
    let metrics = ctx.hub.metrics().clone();
    let tm = metrics.transport(info.name);
    tm.accepted.fetch_add(1, Ordering::Relaxed);
    tm.connections.fetch_add(1, Ordering::Relaxed);
    let cfg = ctx.hub.config().clone();
    let outbox = Outbox::new(cfg.client.queue_max_size);
    let mut session = Session::new(ctx.hub.clone(), ctx.auth.clone(), outbox.clone(), info, now_ms());
    // A unidirectional client sends one connect request (URL or first message), nothing else.
    let mut awaiting_connect = matches!(mode, Mode::Uni(None));
    if let Mode::Uni(Some(req)) = mode
        && let Err(d) = session.handle(Command { id: 1, body: CommandBody::Connect(req) }, now_ms()).await
    {
        outbox.close(d);
    }
    let write_timeout = cfg.websocket.write_timeout.0;

    let close: Option<Disconnect> = loop {
        let wait = Duration::from_millis(session.next_deadline().saturating_sub(now_ms()));
        tokio::select! {
            biased;
            () = outbox.notified() => {
                let batch = drain_json(&outbox, codec, Framing::Joined, per_frame);
                let mut failed = false;
                for (chunk, n) in batch.chunks {
                    // Every encoder writes UTF-8 (JSON text); this cannot fail in practice.
                    let Ok(text) = String::from_utf8(chunk) else {
                        failed = true;
                        break;
                    };
                    let len = text.len() as u64;
                    match tokio::time::timeout(write_timeout, ws.send(Message::Text(text.into()))).await {
                        Ok(Ok(())) => {
                            tm.messages_sent.fetch_add(n as u64, Ordering::Relaxed);
                            tm.bytes_sent.fetch_add(len, Ordering::Relaxed);
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
            msg = ws.recv() => {
                let msg = match msg {
                    None => break None,
                    Some(Ok(m)) => m,
                    Some(Err(e)) => break read_error_close(e),
                };
                if outbox.is_closing() {
                    continue;
                }
                match msg {
                    Message::Text(text) if !info.bidirectional => {
                        if !awaiting_connect {
                            continue;
                        }
                        awaiting_connect = false;
                        tm.messages_received.fetch_add(1, Ordering::Relaxed);
                        let result = match super::sse::uni_connect_request(text.as_bytes()) {
                            Some(req) => session.handle(Command { id: 1, body: CommandBody::Connect(req) }, now_ms()).await,
                            None => Err(Disconnect::BAD_REQUEST),
                        };
                        if let Err(d) = result {
                            outbox.close(d);
                        }
                    }
                    Message::Text(text) => {
                        tm.bytes_received.fetch_add(text.len() as u64, Ordering::Relaxed);
                        if let Err(d) = handle_frame(&mut session, text.as_bytes(), &metrics).await {
                            outbox.close(d);
                        }
                    }
                    Message::Binary(_) => outbox.close(Disconnect::INAPPROPRIATE_PROTOCOL),
                    Message::Close(_) => {
                        // Complete the client's close handshake: tungstenite queued our
                        // answering close frame; flushing writes it (else the client sees 1006).
                        let _ = tokio::time::timeout(write_timeout, futures_util::SinkExt::flush(&mut ws)).await;
                        break None;
                    }
                    Message::Ping(_) | Message::Pong(_) => {}
                }
            }
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
            tracing::debug!(client = %session.client_id(), "slow client disconnected");
        }
        if !info.bidirectional {
            // Unidirectional clients get the code as a push too (Centrifugo v6.5.1+).
            let mut push = Vec::new();
            json::encode_push(&mut push, &Push::Disconnect(d.clone()), false);
            if let Ok(text) = String::from_utf8(push) {
                let _ = tokio::time::timeout(write_timeout, ws.send(Message::Text(text.into()))).await;
            }
        }
        let frame = CloseFrame { code: d.code, reason: d.reason.as_ref().into() };
        if tokio::time::timeout(write_timeout, ws.send(Message::Close(Some(frame)))).await.is_ok() {
            // Give the client a moment to answer the close handshake.
            let _ = tokio::time::timeout(CLOSE_GRACE, async {
                while let Some(Ok(m)) = ws.recv().await {
                    if matches!(m, Message::Close(_)) {
                        break;
                    }
                }
            })
            .await;
        }
    }
    tm.connections.fetch_sub(1, Ordering::Relaxed);
}

/// Decodes a text frame and hands its commands to the session in order.
async fn handle_frame(
    session: &mut Session,
    frame: &[u8],
    metrics: &crate::metrics::Metrics,
) -> Result<(), Disconnect> {
    let mut count = 0u64;
    for line in framing::lines(frame) {
        let cmd = json::decode_command(line).map_err(|_| Disconnect::BAD_REQUEST)?;
        count += 1;
        metrics.transport(INFO.name).messages_received.fetch_add(1, Ordering::Relaxed);
        session.handle(cmd, now_ms()).await?;
    }
    if count == 0 {
        return Err(Disconnect::BAD_REQUEST);
    }
    Ok(())
}

/// The close to send after a read error, when the socket can still take one. A frame
/// that breaks RFC 6455 (unmasked, RSV bits set, unknown opcode, control frame over 125
/// bytes or fragmented, continuation without a start) fails the connection with 1002, as
/// section 7.4.1 asks.
fn read_error_close(e: axum::Error) -> Option<Disconnect> {
    use tungstenite::error::ProtocolError;
    let inner = e.into_inner();
    match inner.downcast_ref::<tungstenite::Error>() {
        Some(tungstenite::Error::Capacity(_)) => {
            Some(Disconnect { code: WS_MESSAGE_TOO_BIG, reason: "message size limit exceeded".into() })
        }
        Some(tungstenite::Error::Utf8(_)) => Some(Disconnect::BAD_REQUEST),
        // The peer is gone: nobody to tell.
        Some(tungstenite::Error::Protocol(ProtocolError::ResetWithoutClosingHandshake)) => None,
        Some(tungstenite::Error::Protocol(p)) => {
            tracing::debug!(error = %p, "websocket protocol violation");
            Some(Disconnect { code: WS_PROTOCOL_ERROR, reason: "protocol error".into() })
        }
        _ => None,
    }
}
