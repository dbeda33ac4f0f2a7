//! `/connection/websocket`: Centrifugo protocol v2 over WebSocket, on the raw upgraded TCP
//! socket (framing in `ws_frame.rs`): JSON in text frames, or Protobuf in binary frames
//! when the client asks for it (the subprotocol `centrifuge-protobuf`, which centrifuge-js
//! and centrifuge-python send, or `?format=protobuf` / `?cf_protocol=protobuf`). A
//! requested `centrifuge-*` subprotocol is echoed, as WebSocket clients require.
//!
//! Server frames are unmasked, so a publication's whole frame (header and JSON push) is
//! built once per codec and shared by every subscriber (`Framed`): a wake-up holding one
//! publication writes those shared bytes as they are. Several messages for a bidirectional
//! client go newline-joined (Protobuf: back to back, each delimited) in one frame (Centrifugo's framing; far fewer frames for both
//! ends under load); a unidirectional client gets one message per frame, the shared
//! frames in one vectored write. Replies and other pushes are framed into a small scratch
//! buffer, given back after a burst (or at once when they went out on their own). Nothing is buffered while a connection is idle: the socket is read into a
//! buffer only while a frame is arriving. Disconnects are close frames carrying the code
//! and a plain-text reason; the connection loop is the driver's (`driver.rs`).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use tokio::net::TcpStream;

use super::driver::{self, Inbound, Transport, WriteError};
use super::{Framing, encode_batch, now_ms};
use super::ws_frame::{self, Message, Opcode, UpgradeError, WritePosition, WsError, WsSocket};
use crate::hub::{Hub, Outbox, Outgoing};
use crate::protocol::codec::Codec;
use crate::protocol::codes::{WS_MESSAGE_TOO_BIG, WS_PROTOCOL_ERROR};
use crate::protocol::{Command, CommandBody, ConnectRequest, Disconnect, Push, json};
use crate::session::{Auth, Session, TransportInfo};

/// How long we wait for the client's close frame after sending ours.
const CLOSE_GRACE: Duration = Duration::from_secs(1);


/// Scratch bytes kept between writes; a burst's larger buffer is given back.
const KEEP_SCRATCH_BYTES: usize = 4096;

const INFO: TransportInfo = TransportInfo { name: "websocket", bidirectional: true, emulation: false };
const UNI_INFO: TransportInfo = TransportInfo { name: "uni_websocket", bidirectional: false, emulation: false };

/// Bidirectional (commands in, replies and pushes out, in JSON or Protobuf) or
/// unidirectional (one connect request in, bare JSON pushes out, one per frame).
#[derive(Debug)]
enum Mode {
    Bidi(Codec),
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
    /// How to get at the listener's sockets (named by `server.rs`).
    pub sockets: Sockets,
    /// Where the connections run.
    pub runtime: super::ConnRuntime,
}

/// The listener's socket type, as this transport needs it: the raw socket under an
/// HTTP/1.1 upgrade, and what to do with a socket when the connection ends (the TCP
/// listener closes lingeringly, so a last close frame is not destroyed by an RST).
#[derive(Clone, Copy, Debug)]
pub struct Sockets {
    /// The raw socket and the bytes hyper read past the request.
    pub take: fn(hyper::upgrade::Upgraded) -> Result<(TcpStream, Bytes), UpgradeError>,
    /// Called with the socket when the connection ends.
    pub on_drop: fn(TcpStream),
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

/// Subprotocol of Centrifugo JSON (the default without one).
const JSON_SUBPROTOCOL: &str = "centrifuge-json";
/// Subprotocol of Centrifugo Protobuf.
const PROTOBUF_SUBPROTOCOL: &str = "centrifuge-protobuf";

/// The codec a bidirectional WebSocket speaks and the subprotocol to answer with: a
/// requested `centrifuge-*` subprotocol decides, then the query (`format=protobuf` or
/// `cf_protocol=protobuf`); JSON otherwise (reference §2.4).
fn negotiate(headers: &HeaderMap, query: Option<&str>) -> (Codec, Option<&'static str>) {
    let offered = || {
        headers
            .get_all(axum::http::header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
    };
    if offered().any(|p| p == PROTOBUF_SUBPROTOCOL) {
        return (Codec::Protobuf, Some(PROTOBUF_SUBPROTOCOL));
    }
    if offered().any(|p| p == JSON_SUBPROTOCOL) {
        return (Codec::Json, Some(JSON_SUBPROTOCOL));
    }
    let protobuf = query.unwrap_or("").split('&').any(|kv| kv == "format=protobuf" || kv == "cf_protocol=protobuf");
    (if protobuf { Codec::Protobuf } else { Codec::Json }, None)
}

async fn upgrade(State(ctx): State<Ctx>, req: Request) -> Response {
    let (codec, subprotocol) = negotiate(req.headers(), req.uri().query());
    let mut response = accept(ctx, req, Mode::Bidi(codec));
    if let Some(p) = subprotocol
        && response.status() == StatusCode::SWITCHING_PROTOCOLS
    {
        response.headers_mut().insert(axum::http::header::SEC_WEBSOCKET_PROTOCOL, axum::http::HeaderValue::from_static(p));
    }
    response
}

async fn upgrade_uni(State(ctx): State<Ctx>, req: Request) -> Response {
    let connect = match super::sse::cf_connect_param(req.uri().query()) {
        None => None,
        Some(text) => match super::sse::uni_connect_request(text.as_bytes()) {
            Some(req) => Some(req),
            None => return (StatusCode::BAD_REQUEST, "Bad Request").into_response(),
        },
    };
    accept(ctx, req, Mode::Uni(connect))
}

fn accept(ctx: Ctx, mut req: Request, mode: Mode) -> Response {
    let accept_key = match ws_frame::check_upgrade(req.method(), req.headers()) {
        Ok(key) => key,
        Err(e) => return e.into_response(),
    };
    let headers = req.headers();
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
    let response = match ws_frame::switching_protocols(&accept_key) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    // The headers a backend proxy forwards (`http_headers`), kept before the request goes.
    let forwarded = ctx.auth.proxies.as_ref().map(|p| p.keep_headers(req.headers()));
    let on_upgrade = hyper::upgrade::on(&mut req);
    let runtime = ctx.runtime.clone();
    runtime.spawn(move || async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => return tracing::debug!(error = %e, "websocket upgrade failed"),
        };
        let socket = match (ctx.sockets.take)(upgraded) {
            // The read-ahead is copied out: hyper's read buffer (kilobytes) is freed here,
            // not held for the connection's life.
            Ok((stream, read_ahead)) => {
                // The socket is registered with the listener's runtime; this task runs on
                // the connections' one.
                let stream = if ctx.runtime.moves() {
                    match stream.into_std().and_then(TcpStream::from_std) {
                        Ok(s) => s,
                        Err(e) => return tracing::debug!(error = %e, "websocket socket could not move to the connections' runtime"),
                    }
                } else {
                    stream
                };
                WsSocket::new(stream, &read_ahead, ctx.hub.config().websocket.message_size_limit, ctx.sockets.on_drop)
            }
            Err(e) => return tracing::debug!(error = %e, "websocket upgrade without a socket"),
        };
        let connection = drive(&ctx, socket, mode, forwarded);
        // The connection's future holds what it needs; the context is not carried beside it.
        drop(ctx);
        connection.await;
    });
    response
}

/// Makes the connection's session and framing and hands them to the driver. Not an
/// `async fn`: one would carry its arguments (the context, the connect request in `mode`)
/// beside the driver's future for the connection's whole life.
fn drive(ctx: &Ctx, ws: WsSocket, mode: Mode, forwarded: Option<Vec<(http::HeaderName, http::HeaderValue)>>) -> impl Future<Output = ()> + use<> {
    let (info, codec): (&'static TransportInfo, Codec) = match mode {
        Mode::Bidi(codec) => (&INFO, codec),
        Mode::Uni(_) => (&UNI_INFO, Codec::JsonUni),
    };
    let outbox = Outbox::new(ctx.hub.config().client.queue_max_size);
    let mut session = Session::new(ctx.hub.clone(), ctx.auth.clone(), outbox.clone(), *info, now_ms());
    if let Some(headers) = forwarded {
        session.set_forwarded_headers(headers);
    }
    let initial = match mode {
        Mode::Uni(Some(req)) => vec![Command { id: 1, body: CommandBody::Connect(req) }],
        _ => Vec::new(),
    };
    let socket = Socket {
        ws,
        info,
        codec,
        metrics: ctx.hub.metrics().clone(),
        write_timeout_ms: u32::try_from(ctx.hub.config().websocket.write_timeout.0.as_millis()).unwrap_or(u32::MAX),
        peer_closed: false,
        bufs: None,
    };
    driver::run(socket, session, outbox, initial)
}

/// The framing of a WebSocket connection.
struct Socket {
    ws: WsSocket,
    info: &'static TransportInfo,
    codec: Codec,
    metrics: Arc<crate::metrics::Metrics>,
    /// `websocket.write_timeout`, for the close frame (in ms: this struct sits in every
    /// connection's task).
    write_timeout_ms: u32,
    /// The client sent its close frame.
    peer_closed: bool,
    /// The write side's buffers: made by the first write, given back once the connection
    /// is quiet (boxed, so an idle connection's task has room for one pointer, not for
    /// four vectors and a write in progress).
    bufs: Option<Box<Buffers>>,
}

/// What a connection's writes work with.
#[derive(Debug, Default)]
struct Buffers {
    /// Frames of replies and pushes being written.
    scratch: Vec<u8>,
    /// The body of a joined frame being built.
    body: Vec<u8>,
    /// Control frames to send at the next write (pongs, the close echo).
    control: Vec<u8>,
    /// Where the scratch buffer's frames end, item by item, in a one-message-per-frame
    /// write of replies or pushes (see `prepare_items`).
    ends: Vec<usize>,
    /// The write in progress, between its framing and its last byte.
    pending: Option<Pending>,
}

impl Buffers {
    /// Appends one non-shared message as a whole frame to the scratch buffer; false for
    /// what is not written here (publications are shared frames, controls the session's).
    fn frame_into_scratch(&mut self, item: &Outgoing, codec: Codec, opcode: Opcode) -> Result<bool, Disconnect> {
        if matches!(item, Outgoing::Publication(_) | Outgoing::Control(_)) {
            return Ok(false);
        }
        self.body.clear();
        encode_batch(std::slice::from_ref(item), &mut 0, &mut self.body, codec, Framing::Joined, 1)?;
        ws_frame::put_frame(&mut self.scratch, opcode, &self.body);
        Ok(true)
    }
}

/// A write in progress: what it sends, how far it got, and what to count when it is done.
#[derive(Debug)]
struct Pending {
    pieces: Pieces,
    at: WritePosition,
    messages: u64,
    bytes: usize,
}

/// The pieces of a write, made again from the socket's buffers and the items for each
/// attempt (none is held while the socket is full).
#[derive(Clone, Copy, Debug)]
enum Pieces {
    /// The scratch buffer (control frames, then the joined frame's header, or whole
    /// frames past `MAX_BATCH_BYTES`), then the joined body when it is not in the scratch.
    Joined { body: bool },
    /// Piece 0: the control frames (`control_len` bytes of scratch); piece i: item i − 1.
    Items { control_len: usize },
}

/// The pieces of a one-message-per-frame write: piece 0 the pending control frames, piece
/// i item i − 1 (its shared frame, or its frame in the scratch buffer, which `ends` covers
/// up to it; a control is empty).
fn item_pieces<'a>(
    scratch: &'a [u8],
    control_len: usize,
    ends: &'a [usize],
    codec: Codec,
    items: &'a [Outgoing],
) -> impl Fn(usize) -> &'a [u8] {
    move |i: usize| -> &'a [u8] {
        if i == 0 {
            return &scratch[..control_len];
        }
        match &items[i - 1] {
            Outgoing::Publication(p) => p.framed(codec).frame(),
            Outgoing::Control(_) => &[],
            _ => &scratch[if i == 1 { control_len } else { ends[i - 2] }..ends[i - 1]],
        }
    }
}

impl Socket {
    /// Frames `items` into the pending write (`self.pending`).
    fn prepare(&mut self, items: &mut Vec<Outgoing>) -> Result<(), WriteError> {
        let prepared = if self.info.bidirectional && items.len() > 1 { self.prepare_joined(items) } else { self.prepare_items(items) };
        prepared.map_err(|d| {
            items.clear();
            WriteError::Close(d)
        })
    }

    /// Several messages for a bidirectional client: newline-joined into as few text frames
    /// as `MAX_BATCH_BYTES` allows (Centrifugo's framing). Copying a few hundred bytes of
    /// shared bodies costs less than a frame each, for both ends. The usual batch is one
    /// frame: its header goes behind any pending control frames in the scratch buffer and
    /// the joined body is the write's second piece, so no body byte is copied twice.
    fn prepare_joined(&mut self, items: &[Outgoing]) -> Result<(), Disconnect> {
        let (codec, opcode) = (self.codec, self.opcode());
        let b = self.bufs.get_or_insert_with(Box::default);
        b.scratch.clear();
        b.scratch.append(&mut b.control);
        // One allocation for the whole body: publications announce their size.
        let estimate: usize = items
            .iter()
            .map(|i| match i {
                Outgoing::Publication(p) => p.framed(codec).frame().len() + 1,
                _ => 128,
            })
            .sum();
        b.body.clear();
        b.body.reserve(estimate.min(super::MAX_BATCH_BYTES + 64));
        let mut next = 0;
        let mut messages = encode_batch(items, &mut next, &mut b.body, codec, Framing::Joined, usize::MAX)? as u64;
        let body = if next == items.len() {
            if messages > 0 {
                ws_frame::put_header(&mut b.scratch, opcode, b.body.len());
            }
            messages > 0
        } else {
            // Past MAX_BATCH_BYTES: several frames, copied one behind the other (rare).
            loop {
                if !b.body.is_empty() {
                    ws_frame::put_frame(&mut b.scratch, opcode, &b.body);
                }
                if next == items.len() {
                    break;
                }
                b.body.clear();
                messages += encode_batch(items, &mut next, &mut b.body, codec, Framing::Joined, usize::MAX)? as u64;
            }
            false
        };
        let bytes = b.scratch.len() + if body { b.body.len() } else { 0 };
        b.pending = Some(Pending { pieces: Pieces::Joined { body }, at: WritePosition::default(), messages, bytes });
        Ok(())
    }

    /// One message per frame (a unidirectional client, or a single message): replies,
    /// pushes and pending control frames go into the scratch buffer (control frames
    /// first); publications are their shared frames, written as they are.
    fn prepare_items(&mut self, items: &[Outgoing]) -> Result<(), Disconnect> {
        let (codec, opcode) = (self.codec, self.opcode());
        let b = self.bufs.get_or_insert_with(Box::default);
        b.scratch.clear();
        b.scratch.append(&mut b.control);
        let control_len = b.scratch.len();
        // Where the scratch buffer stands after each item up to the last one framed into
        // it (publications and controls add nothing). Empty, and never allocated, for the
        // usual write of publications only.
        b.ends.clear();
        let mut messages = 0u64;
        for (at, item) in items.iter().enumerate() {
            let framed = match item {
                Outgoing::Publication(p) if p.framed(codec).fits() => false,
                Outgoing::Publication(_) => return Err(Disconnect::INAPPROPRIATE_PROTOCOL),
                _ => b.frame_into_scratch(item, codec, opcode)?,
            };
            if framed {
                let last = b.ends.last().copied().unwrap_or(control_len);
                b.ends.resize(at, last);
                b.ends.push(b.scratch.len());
            }
            if !matches!(item, Outgoing::Control(_)) {
                messages += 1;
            }
        }
        let piece = item_pieces(&b.scratch, control_len, &b.ends, codec, items);
        let bytes: usize = (0..=items.len()).map(|i| piece(i).len()).sum();
        b.pending = Some(Pending { pieces: Pieces::Items { control_len }, at: WritePosition::default(), messages, bytes });
        Ok(())
    }

    /// Writes what the socket takes now of the pending write: true once all of it is out.
    fn push(&mut self, items: &[Outgoing]) -> std::io::Result<bool> {
        let Some(b) = self.bufs.as_deref_mut() else { return Ok(true) };
        let Buffers { scratch, body: joined, ends, pending, .. } = b;
        let Some(p) = pending.as_mut() else { return Ok(true) };
        match p.pieces {
            Pieces::Joined { body } => {
                let (scratch, joined) = (&scratch[..], &joined[..]);
                self.ws.try_write_pieces(1 + usize::from(body), |i| if i == 0 { scratch } else { joined }, &mut p.at)
            }
            Pieces::Items { control_len } => {
                let piece = item_pieces(scratch, control_len, ends, self.codec, items);
                self.ws.try_write_pieces(items.len() + 1, piece, &mut p.at)
            }
        }
    }

    /// Tries a write without waiting: `Some` when it is done (or failed), `None` when the
    /// socket is full and the rest waits for [`Self::write_rest`].
    fn try_write(&mut self, items: &mut Vec<Outgoing>) -> Option<Result<(), WriteError>> {
        let codec = self.codec;
        let shared_only = || items.iter().all(|i| matches!(i, Outgoing::Publication(p) if p.framed(codec).fits()));
        if self.bufs.is_none() && (items.len() == 1 || !self.info.bidirectional) && shared_only() {
            return self.try_write_shared(items);
        }
        if let Err(e) = self.prepare(items) {
            return Some(Err(e));
        }
        match self.push(items) {
            Ok(false) => None,
            done => Some(self.finish(items, done.map(drop))),
        }
    }

    /// [`Self::try_write`] of publications only, one frame each, nothing pending (the usual
    /// write of a quiet connection: one publication): their shared frames go as they are
    /// and no buffer is made, unless the socket takes only part of them (the write
    /// position is kept then).
    fn try_write_shared(&mut self, items: &mut Vec<Outgoing>) -> Option<Result<(), WriteError>> {
        let piece = item_pieces(&[], 0, &[], self.codec, items);
        let bytes: usize = (1..=items.len()).map(|i| piece(i).len()).sum();
        let messages = items.len() as u64;
        let mut at = WritePosition::default();
        match self.ws.try_write_pieces(items.len() + 1, piece, &mut at) {
            Ok(false) => {
                let pending = Some(Pending { pieces: Pieces::Items { control_len: 0 }, at, messages, bytes });
                self.bufs = Some(Box::new(Buffers { pending, ..Buffers::default() }));
                None
            }
            done => {
                items.clear();
                Some(self.written(done.map(drop), messages, bytes))
            }
        }
    }

    /// The rest of a write the socket could not take at once. Not cancel-safe: dropped
    /// mid-frame (the write timeout), the connection must be closed.
    async fn write_rest(&mut self, items: &mut Vec<Outgoing>) -> Result<(), WriteError> {
        let result = loop {
            if let Err(e) = self.ws.writable().await {
                break Err(e);
            }
            match self.push(items) {
                Ok(true) => break Ok(()),
                Ok(false) => {}
                Err(e) => break Err(e),
            }
        };
        self.finish(items, result)
    }

    /// The end of the pending write: takes the items out, gives buffers back and counts
    /// what went out.
    fn finish(&mut self, items: &mut Vec<Outgoing>, result: std::io::Result<()>) -> Result<(), WriteError> {
        items.clear();
        let Some(b) = self.bufs.as_deref_mut() else { return result.map_err(|_| WriteError::Io) };
        let Some(p) = b.pending.take() else { return result.map_err(|_| WriteError::Io) };
        match p.pieces {
            Pieces::Joined { .. } => {
                if b.body.capacity() > KEEP_SCRATCH_BYTES {
                    b.body = Vec::new();
                }
                if b.scratch.capacity() > KEEP_SCRATCH_BYTES {
                    b.scratch = Vec::new();
                }
                // Control frames (pongs, the close echo) are rare: always written by now,
                // their buffer goes back at once.
                b.control = Vec::new();
            }
            Pieces::Items { .. } => {
                // Replies and pushes written one by one are rare next to publications
                // (shared frames, no scratch): their buffers go back at once, so a
                // connection idle after its connect reply holds none. The control frames
                // went out with them.
                self.bufs = None;
            }
        }
        self.written(result, p.messages, p.bytes)
    }

    /// After a write: counts what went out.
    fn written(&mut self, result: std::io::Result<()>, messages: u64, bytes: usize) -> Result<(), WriteError> {
        result.map_err(|_| WriteError::Io)?;
        let tm = self.metrics.transport(self.info.name);
        tm.messages_sent.fetch_add(messages, Ordering::Relaxed);
        tm.bytes_sent.fetch_add(bytes as u64, Ordering::Relaxed);
        Ok(())
    }

    /// The data frames' opcode: text for JSON, binary for Protobuf.
    fn opcode(&self) -> Opcode {
        if self.codec.is_binary() { Opcode::Binary } else { Opcode::Text }
    }
}

impl Transport for Socket {
    fn info(&self) -> TransportInfo {
        *self.info
    }

    fn codec(&self) -> Codec {
        self.codec
    }

    async fn recv(&mut self) -> Inbound {
        loop {
            if self.peer_closed {
                // Our close echo has been written (Flush): the handshake is complete.
                return if self.bufs.as_ref().is_none_or(|b| b.control.is_empty()) { Inbound::Gone } else { Inbound::Flush };
            }
            let msg = match self.ws.read_message().await {
                Ok(m) => m,
                Err(e) => return read_error_close(&e).map_or(Inbound::Gone, Inbound::Close),
            };
            match msg {
                // Protobuf clients send binary frames; a text frame's bytes are decoded the same.
                Message::Text(bytes) | Message::Binary(bytes) if self.codec == Codec::Protobuf => return Inbound::Message(bytes),
                Message::Text(text) => return Inbound::Message(text),
                Message::Binary(_) if self.info.bidirectional => return Inbound::Close(Disconnect::INAPPROPRIATE_PROTOCOL),
                Message::Binary(_) | Message::Pong(_) => {}
                Message::Ping(payload) => {
                    ws_frame::put_frame(&mut self.bufs.get_or_insert_with(Box::default).control, Opcode::Pong, &payload);
                    return Inbound::Flush;
                }
                Message::Close(close) => {
                    // Complete the client's close handshake with its own code and reason
                    // (else it sees 1006).
                    let control = &mut self.bufs.get_or_insert_with(Box::default).control;
                    match close {
                        Some((code, reason)) => ws_frame::put_close(control, code, &reason),
                        None => ws_frame::put_frame(control, Opcode::Close, &[]),
                    }
                    self.peer_closed = true;
                    return Inbound::Flush;
                }
            }
        }
    }

    async fn write(&mut self, items: &mut Vec<Outgoing>) -> Result<(), WriteError> {
        match self.try_write(items) {
            Some(done) => done,
            None => self.write_rest(items).await,
        }
    }

    /// The buffers a joined write keeps for the next one (up to `KEEP_SCRATCH_BYTES` each)
    /// go back once the connection is quiet.
    fn trim(&mut self) {
        if self.bufs.as_ref().is_some_and(|b| b.pending.is_none() && b.control.is_empty()) {
            self.bufs = None;
        }
    }

    /// The socket is tried at once; only a write that must wait for it pays for the
    /// wait's room and its timer, boxed. So a connection's task has room for this
    /// future's few words, not for a whole write.
    fn write_bounded(&mut self, items: &mut Vec<Outgoing>, limit: Duration) -> impl Future<Output = Option<Result<(), WriteError>>> + Send {
        let now = self.try_write(items);
        async move {
            match now {
                Some(done) => Some(done),
                None => {
                    let rest = Box::pin(tokio::time::timeout(limit, self.write_rest(items)));
                    rest.await.ok()
                }
            }
        }
    }

    async fn close(&mut self, reason: Option<&Disconnect>) {
        let Some(d) = reason else { return };
        let mut out = Vec::new();
        if !self.info.bidirectional {
            // Unidirectional clients get the code as a push too (Centrifugo v6.5.1+).
            let mut push = Vec::new();
            json::encode_push(&mut push, &Push::Disconnect(d.clone()), false);
            ws_frame::put_frame(&mut out, Opcode::Text, &push);
        }
        ws_frame::put_close(&mut out, d.code, &d.reason);
        let ws = &mut self.ws;
        if tokio::time::timeout(Duration::from_millis(self.write_timeout_ms.into()), ws.write_all(&out)).await.is_ok_and(|r| r.is_ok()) {
            // Give the client a moment to answer the close handshake.
            let _ = tokio::time::timeout(CLOSE_GRACE, async {
                loop {
                    match ws.read_message().await {
                        Ok(Message::Close(_)) | Err(_) => break,
                        Ok(_) => {}
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
/// section 7.4.1 asks; a message over `websocket.message_size_limit` with 1009; text that
/// is not UTF-8 is a bad request (3501), as before.
fn read_error_close(e: &WsError) -> Option<Disconnect> {
    match e {
        WsError::TooBig => Some(Disconnect { code: WS_MESSAGE_TOO_BIG, reason: "message size limit exceeded".into() }),
        WsError::InvalidUtf8 => Some(Disconnect::BAD_REQUEST),
        WsError::Protocol(why) => {
            tracing::debug!(error = why, "websocket protocol violation");
            Some(Disconnect { code: WS_PROTOCOL_ERROR, reason: "protocol error".into() })
        }
        // The peer is gone: nobody to tell.
        WsError::Io(_) | WsError::Closed => None,
    }
}

#[cfg(test)]
mod tests;
