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

use bytes::Bytes;

use super::driver::{self, Inbound, Transport, WriteError};
use super::{Framing, encode_json, now_ms};
use crate::hub::{Hub, Outbox, Outgoing};
use crate::protocol::codec::Codec;
use crate::protocol::codes::{WS_MESSAGE_TOO_BIG, WS_PROTOCOL_ERROR};
use crate::protocol::{Command, CommandBody, ConnectRequest, Disconnect, Push, json};
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

async fn drive(ctx: Ctx, ws: WebSocket, mode: Mode) {
    let (info, codec) = match mode {
        Mode::Bidi => (INFO, Codec::Json),
        Mode::Uni(_) => (UNI_INFO, Codec::JsonUni),
    };
    let outbox = Outbox::new(ctx.hub.config().client.queue_max_size);
    let session = Session::new(ctx.hub.clone(), ctx.auth.clone(), outbox.clone(), info, now_ms());
    let initial = match mode {
        Mode::Uni(Some(req)) => vec![Command { id: 1, body: CommandBody::Connect(req) }],
        _ => Vec::new(),
    };
    let socket = Socket { ws, info, codec, metrics: ctx.hub.metrics().clone(), write_timeout: ctx.hub.config().websocket.write_timeout.0 };
    driver::run(socket, session, outbox, initial).await;
}

/// The framing of a WebSocket connection.
struct Socket {
    ws: WebSocket,
    info: TransportInfo,
    codec: Codec,
    metrics: Arc<crate::metrics::Metrics>,
    write_timeout: Duration,
}

impl Transport for Socket {
    fn info(&self) -> TransportInfo {
        self.info
    }

    fn codec(&self) -> Codec {
        self.codec
    }

    async fn recv(&mut self) -> Inbound {
        loop {
            let msg = match self.ws.recv().await {
                None => return Inbound::Gone,
                Some(Ok(m)) => m,
                Some(Err(e)) => return read_error_close(e).map_or(Inbound::Gone, Inbound::Close),
            };
            match msg {
                Message::Text(text) => return Inbound::Message(Bytes::copy_from_slice(text.as_bytes())),
                Message::Binary(_) if self.info.bidirectional => return Inbound::Close(Disconnect::INAPPROPRIATE_PROTOCOL),
                Message::Binary(_) | Message::Ping(_) | Message::Pong(_) => {}
                Message::Close(_) => {
                    // Complete the client's close handshake: tungstenite queued our
                    // answering close frame; flushing writes it (else the client sees 1006).
                    let _ = tokio::time::timeout(self.write_timeout, futures_util::SinkExt::flush(&mut self.ws)).await;
                    return Inbound::Gone;
                }
            }
        }
    }

    async fn write(&mut self, items: &mut Vec<Outgoing>) -> Result<(), WriteError> {
        let tm = self.metrics.transport(self.info.name);
        let per_frame = if self.info.bidirectional { usize::MAX } else { 1 };
        let mut next = 0;
        while next < items.len() {
            let mut chunk = Vec::new();
            let n = encode_json(items, &mut next, &mut chunk, self.codec, Framing::Joined, per_frame);
            if n == 0 {
                continue;
            }
            // Every encoder writes UTF-8 (JSON text).
            let text = String::from_utf8(chunk).map_err(|_| WriteError::Io)?;
            let len = text.len() as u64;
            self.ws.send(Message::Text(text.into())).await.map_err(|_| WriteError::Io)?;
            tm.messages_sent.fetch_add(n as u64, Ordering::Relaxed);
            tm.bytes_sent.fetch_add(len, Ordering::Relaxed);
        }
        items.clear();
        Ok(())
    }

    async fn close(&mut self, reason: Option<&Disconnect>) {
        let Some(d) = reason else { return };
        let ws = &mut self.ws;
        if !self.info.bidirectional {
            // Unidirectional clients get the code as a push too (Centrifugo v6.5.1+).
            let mut push = Vec::new();
            json::encode_push(&mut push, &Push::Disconnect(d.clone()), false);
            if let Ok(text) = String::from_utf8(push) {
                let _ = tokio::time::timeout(self.write_timeout, ws.send(Message::Text(text.into()))).await;
            }
        }
        let frame = CloseFrame { code: d.code, reason: d.reason.as_ref().into() };
        if tokio::time::timeout(self.write_timeout, ws.send(Message::Close(Some(frame)))).await.is_ok() {
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
