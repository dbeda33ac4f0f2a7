//! HTTP transports for networks where UDP and WebSocket do not get through:
//! `/connection/http_stream` (a long POST response) and `/connection/sse` (EventSource),
//! whose clients send later commands to `POST /emulation`, plus their unidirectional
//! variants `/connection/uni_http_stream` and `/connection/uni_sse`.
//!
//! Wire behaviour is Centrifugo's (reference §2.8, §2.10): the connect result carries
//! `session` and `node`; `/emulation` takes `{session, node, data}` where `data` is a
//! string of newline-joined JSON commands, answers 204, 400 for a malformed body, 404
//! for an unknown node or session, 413 over the body limit. There is no close frame on
//! these transports, so a disconnect is a `disconnect` push before the stream ends.
//!
//! HTTP-streaming speaks Protobuf when the connect request says `Content-Type:
//! application/octet-stream` (what centrifuge-js's Protobuf build sends): the body is
//! varint-delimited commands, the response an octet stream of delimited replies, and its
//! `/emulation` posts are `EmulationRequest` messages with the same content type. SSE is
//! JSON only, as in Centrifugo: an octet-stream connect there is a 400.
//!
//! One task per connection runs the connection driver (`driver.rs`), as on every
//! transport; `/emulation` reaches it through a small bounded channel found by session id. With several nodes,
//! a request for another node's session is the place to forward through the broker's
//! control channel; on one node an unknown node is a 404.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use tokio::sync::mpsc;

use super::driver::{self, Inbound, Transport, WriteError};
use super::{Framing, encode_batch, now_ms};
use crate::hub::{Hub, Outbox, Outgoing};
use crate::protocol::codec::Codec;
use crate::protocol::{Command, CommandBody, ConnectRequest, Disconnect, Push, framing, json, protobuf};
use crate::session::{Auth, Session, TransportInfo};

/// Chunks buffered between a connection task and its HTTP response body. Small: the
/// outbox is the real queue (bounded in bytes); this only decouples the two.
const BODY_CHANNEL_CHUNKS: usize = 4;

/// Command batches from `/emulation` waiting for a session. A client that posts faster
/// than its session processes gets 503 and retries.
const EMULATION_CHANNEL_BATCHES: usize = 16;

/// How long a chunk may wait for the HTTP body to take it before the client is slow.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Cache headers every streaming response carries, so no proxy stores or buffers it.
const NO_CACHE: &str = "private, no-cache, no-store, must-revalidate, max-age=0";

/// Which HTTP transport a connection uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    HttpStream,
    Sse,
    UniHttpStream,
    UniSse,
}

impl Kind {
    fn info(self) -> TransportInfo {
        match self {
            Self::HttpStream => TransportInfo { name: "http_stream", bidirectional: true, emulation: true },
            Self::Sse => TransportInfo { name: "sse", bidirectional: true, emulation: true },
            Self::UniHttpStream => TransportInfo { name: "uni_http_stream", bidirectional: false, emulation: false },
            Self::UniSse => TransportInfo { name: "uni_sse", bidirectional: false, emulation: false },
        }
    }

    fn bidirectional(self) -> bool {
        matches!(self, Self::HttpStream | Self::Sse)
    }

    fn codec(self) -> Codec {
        if self.bidirectional() { Codec::Json } else { Codec::JsonUni }
    }

    fn framing(self) -> Framing {
        match self {
            Self::HttpStream | Self::UniHttpStream => Framing::Terminated,
            Self::Sse | Self::UniSse => Framing::Sse,
        }
    }

    fn content_type(self, codec: Codec) -> &'static str {
        match self {
            Self::HttpStream if codec == Codec::Protobuf => OCTET_STREAM,
            Self::HttpStream | Self::UniHttpStream => "application/json",
            Self::Sse | Self::UniSse => "text/event-stream; charset=utf-8",
        }
    }
}

/// The content type of Protobuf requests and responses.
const OCTET_STREAM: &str = "application/octet-stream";

/// Whether a request's body is Protobuf (`Content-Type: application/octet-stream`).
fn is_protobuf(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(OCTET_STREAM))
}

/// Live emulation sessions: session id → its command channel.
#[derive(Debug, Default)]
struct Sessions(Mutex<HashMap<String, mpsc::Sender<Vec<Command>>>>);

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, mpsc::Sender<Vec<Command>>>> {
        // Single insert/remove/get calls only: a poisoned map is still consistent.
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What the HTTP transports need.
#[derive(Clone, Debug)]
pub struct Ctx {
    hub: Hub,
    auth: Arc<Auth>,
    sessions: Arc<Sessions>,
    runtime: super::ConnRuntime,
}

impl Ctx {
    /// Context for the routes of this room.
    pub fn new(hub: Hub, auth: Arc<Auth>, runtime: super::ConnRuntime) -> Self {
        let sessions = Arc::new(Sessions::default());
        // `/emulation` requests another node forwards to this one (the session is ours).
        let ours = sessions.clone();
        hub.set_emulation_sink(Box::new(move |body, protobuf| match decode_emulation(body, protobuf) {
            Some((session, _, commands)) => deliver_emulation(&ours, &session, commands).as_u16(),
            None => StatusCode::BAD_REQUEST.as_u16(),
        }));
        Self { hub, auth, sessions, runtime }
    }
}

/// Routes of the enabled HTTP transports.
pub fn router(ctx: Ctx) -> Router {
    let cfg = ctx.hub.config().clone();
    let mut r = Router::new();
    if cfg.http_stream.enabled {
        r = r.route("/connection/http_stream", post(http_stream).options(preflight))
            .layer(DefaultBodyLimit::max(cfg.http_stream.max_request_body_size));
    }
    let mut sse_routes = Router::new();
    if cfg.sse.enabled {
        sse_routes = sse_routes
            .route("/connection/sse", get(sse_get).post(sse_post).options(preflight))
            .layer(DefaultBodyLimit::max(cfg.sse.max_request_body_size));
    }
    let mut emulation = Router::new();
    if cfg.http_stream.enabled || cfg.sse.enabled {
        emulation = emulation
            .route("/emulation", post(emulate).options(preflight))
            .layer(DefaultBodyLimit::max(cfg.emulation.max_request_body_size));
    }
    let mut uni = Router::new();
    if cfg.uni_http_stream.enabled {
        uni = uni
            .route("/connection/uni_http_stream", post(uni_http_stream).options(preflight))
            .layer(DefaultBodyLimit::max(cfg.uni_http_stream.max_request_body_size));
    }
    let mut uni_sse = Router::new();
    if cfg.uni_sse.enabled {
        uni_sse = uni_sse
            .route("/connection/uni_sse", get(uni_sse_get).post(uni_sse_post).options(preflight))
            .layer(DefaultBodyLimit::max(cfg.uni_sse.max_request_body_size));
    }
    r.merge(sse_routes).merge(emulation).merge(uni).merge(uni_sse).with_state(ctx)
}

/// A request whose `Origin` is not in `client.allowed_origins`.
#[derive(Debug)]
struct Forbidden;

impl IntoResponse for Forbidden {
    fn into_response(self) -> Response {
        (StatusCode::FORBIDDEN, "origin not allowed").into_response()
    }
}

/// CORS response headers for an allowed `Origin`; `Err` (403) for a refused one.
fn cors(ctx: &Ctx, headers: &HeaderMap) -> Result<HeaderMap, Forbidden> {
    let mut out = HeaderMap::new();
    let Some(origin) = headers.get(header::ORIGIN) else { return Ok(out) };
    if !super::websocket::origin_allowed(&ctx.hub.config().client.allowed_origins, headers) {
        return Err(Forbidden);
    }
    out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    out.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
    out.insert(header::VARY, HeaderValue::from_static("Origin"));
    Ok(out)
}

/// Preflight: 204 with the methods and headers the transports accept, cached 300 s.
async fn preflight(State(ctx): State<Ctx>, headers: HeaderMap) -> Response {
    let mut out = match cors(&ctx, &headers) {
        Ok(h) => h,
        Err(r) => return r.into_response(),
    };
    out.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST, OPTIONS"));
    let allow = headers
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("Content-Type"));
    out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, allow);
    out.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("300"));
    (StatusCode::NO_CONTENT, out).into_response()
}

fn bad_request(why: &str) -> Response {
    tracing::debug!(why, "bad streaming connect request");
    (StatusCode::BAD_REQUEST, "Bad Request").into_response()
}

/// The `cf_connect` query parameter, percent-decoded.
fn cf_connect(query: Option<&str>) -> Option<String> {
    let query = query?;
    query.split('&').find_map(|pair| {
        let value = pair.strip_prefix("cf_connect=")?;
        percent_decode(value)
    })
}

/// Decodes `%XX` escapes and `+` (as a space); `None` for a broken escape or non-UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Parses the commands a bidirectional connect request carries: newline-joined JSON,
/// the first of which must be `connect` with an id.
fn bidi_commands(body: &[u8]) -> Result<Vec<Command>, &'static str> {
    let commands = framing::lines(body)
        .map(json::decode_command)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| "malformed JSON command")?;
    first_is_connect(commands)
}

/// [`bidi_commands`] for a Protobuf body: varint-delimited commands.
fn bidi_protobuf_commands(body: &[u8]) -> Result<Vec<Command>, &'static str> {
    let mut commands = Vec::new();
    protobuf::decode_commands(body, &mut commands).map_err(|_| "malformed Protobuf command")?;
    first_is_connect(commands)
}

fn first_is_connect(commands: Vec<Command>) -> Result<Vec<Command>, &'static str> {
    match commands.first() {
        Some(Command { id, body: CommandBody::Connect(_) }) if *id != 0 => Ok(commands),
        _ => Err("the first command must be connect"),
    }
}

/// Parses a unidirectional connect request: a bare `ConnectRequest` object (an empty
/// body is an empty request).
fn uni_command(body: &[u8]) -> Result<Vec<Command>, &'static str> {
    match json::decode_connect_request(body) {
        Ok(req) => Ok(vec![Command { id: 1, body: CommandBody::Connect(req) }]),
        Err(_) => Err("malformed connect request"),
    }
}

async fn http_stream(State(ctx): State<Ctx>, headers: HeaderMap, body: Bytes) -> Response {
    let (codec, commands) = if is_protobuf(&headers) {
        (Codec::Protobuf, bidi_protobuf_commands(&body))
    } else {
        (Codec::Json, bidi_commands(&body))
    };
    match commands {
        Ok(commands) => open_with(ctx, Kind::HttpStream, codec, &headers, commands),
        Err(why) => bad_request(why),
    }
}

async fn sse_get(State(ctx): State<Ctx>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let Some(connect) = cf_connect(query.as_deref()) else { return bad_request("missing or broken cf_connect") };
    match bidi_commands(connect.as_bytes()) {
        Ok(commands) => open(ctx, Kind::Sse, &headers, commands),
        Err(why) => bad_request(why),
    }
}

async fn sse_post(State(ctx): State<Ctx>, headers: HeaderMap, body: Bytes) -> Response {
    if is_protobuf(&headers) {
        return bad_request("SSE is JSON only");
    }
    match bidi_commands(&body) {
        Ok(commands) => open(ctx, Kind::Sse, &headers, commands),
        Err(why) => bad_request(why),
    }
}

async fn uni_http_stream(State(ctx): State<Ctx>, headers: HeaderMap, body: Bytes) -> Response {
    match uni_command(&body) {
        Ok(commands) => open(ctx, Kind::UniHttpStream, &headers, commands),
        Err(why) => bad_request(why),
    }
}

async fn uni_sse_get(State(ctx): State<Ctx>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let connect = cf_connect(query.as_deref()).unwrap_or_default();
    match uni_command(connect.as_bytes()) {
        Ok(commands) => open(ctx, Kind::UniSse, &headers, commands),
        Err(why) => bad_request(why),
    }
}

async fn uni_sse_post(State(ctx): State<Ctx>, headers: HeaderMap, body: Bytes) -> Response {
    match uni_command(&body) {
        Ok(commands) => open(ctx, Kind::UniSse, &headers, commands),
        Err(why) => bad_request(why),
    }
}

/// Starts a connection task in the kind's JSON codec and answers with its stream.
fn open(ctx: Ctx, kind: Kind, headers: &HeaderMap, commands: Vec<Command>) -> Response {
    open_with(ctx, kind, kind.codec(), headers, commands)
}

/// Starts a connection task speaking `codec` and answers with its stream.
fn open_with(ctx: Ctx, kind: Kind, codec: Codec, headers: &HeaderMap, commands: Vec<Command>) -> Response {
    let mut out = match cors(&ctx, headers) {
        Ok(h) => h,
        Err(r) => return r.into_response(),
    };
    if ctx.hub.is_shutting_down() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
    let limit = ctx.hub.config().client.connection_limit;
    if limit > 0 && ctx.hub.metrics().total_connections() >= limit as i64 {
        return (StatusCode::SERVICE_UNAVAILABLE, "connection limit reached").into_response();
    }
    let (tx, rx) = mpsc::channel::<Bytes>(BODY_CHANNEL_CHUNKS);
    // The headers a backend proxy forwards (`http_headers`), kept for the connection.
    let forwarded = ctx.auth.proxies.as_ref().map(|p| p.keep_headers(headers));
    // The session runs where connections run; the body is written by the listener.
    ctx.runtime.clone().spawn(move || run(ctx, kind, codec, commands, tx, forwarded));
    let body = Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (Ok::<_, Infallible>(chunk), rx))
    }));
    out.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind.content_type(codec)));
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_CACHE));
    out.insert("x-accel-buffering", HeaderValue::from_static("no"));
    (StatusCode::OK, out, body).into_response()
}

/// Opens one streaming connection and hands it to the driver until it ends.
async fn run(
    ctx: Ctx,
    kind: Kind,
    codec: Codec,
    commands: Vec<Command>,
    tx: mpsc::Sender<Bytes>,
    forwarded: Option<Vec<(http::HeaderName, http::HeaderValue)>>,
) {
    let outbox = Outbox::new(ctx.hub.config().client.queue_max_size);
    let mut session = Session::new(ctx.hub.clone(), ctx.auth.clone(), outbox.clone(), kind.info(), now_ms());
    if let Some(headers) = forwarded {
        session.set_forwarded_headers(headers);
    }
    let session_id = session.session_id().to_string();
    let (cmd_tx, cmd_rx) = mpsc::channel::<Vec<Command>>(EMULATION_CHANNEL_BATCHES);
    let commands_in = if kind.bidirectional() {
        ctx.sessions.lock().insert(session_id.clone(), cmd_tx);
        Some(cmd_rx)
    } else {
        None
    };
    // SSE streams open with a blank line, as Centrifugo's do (some proxies need a first byte).
    if kind.framing() != Framing::Sse || tx.send(Bytes::from_static(b"\r\n")).await.is_ok() {
        let stream = Stream { kind, codec, tx, commands: commands_in, metrics: ctx.hub.metrics().clone() };
        driver::run(stream, session, outbox, commands).await;
    }
    if kind.bidirectional() {
        ctx.sessions.lock().remove(&session_id);
    }
}

/// The framing of one streaming response: JSON (or Protobuf) chunks into the response
/// body, commands from `/emulation` posts.
struct Stream {
    kind: Kind,
    codec: Codec,
    tx: mpsc::Sender<Bytes>,
    /// `/emulation` batches for this session (bidirectional kinds, until the sender is gone).
    commands: Option<mpsc::Receiver<Vec<Command>>>,
    metrics: Arc<crate::metrics::Metrics>,
}

impl Stream {
    async fn send(&self, chunk: Vec<u8>) -> Result<(), WriteError> {
        let len = chunk.len() as u64;
        match tokio::time::timeout(WRITE_TIMEOUT, self.tx.send(Bytes::from(chunk))).await {
            Ok(Ok(())) => {
                self.metrics.transport(self.kind.info().name).bytes_sent.fetch_add(len, Ordering::Relaxed);
                Ok(())
            }
            _ => Err(WriteError::Io),
        }
    }
}

impl Transport for Stream {
    fn info(&self) -> TransportInfo {
        self.kind.info()
    }

    fn codec(&self) -> Codec {
        self.codec
    }

    async fn recv(&mut self) -> Inbound {
        let tx = self.tx.clone();
        let commands = async {
            match self.commands.as_mut() {
                Some(rx) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = tx.closed() => Inbound::Gone,
            batch = commands => match batch {
                Some(batch) => Inbound::Commands(batch),
                None => {
                    self.commands = None;
                    Inbound::Commands(Vec::new())
                }
            },
        }
    }

    async fn write(&mut self, items: &mut Vec<Outgoing>) -> Result<(), WriteError> {
        let mut next = 0;
        while next < items.len() {
            let mut chunk = Vec::new();
            let n = encode_batch(items, &mut next, &mut chunk, self.codec, self.kind.framing(), usize::MAX).map_err(WriteError::Close)?;
            if n > 0 {
                self.send(chunk).await?;
                self.metrics.transport(self.kind.info().name).messages_sent.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
        items.clear();
        Ok(())
    }

    async fn close(&mut self, reason: Option<&Disconnect>) {
        // No close frame here: the code travels as a disconnect push, then the stream ends.
        let Some(d) = reason else { return };
        let out = super::encode_push(&Push::Disconnect(d.clone()), self.codec, self.kind.framing());
        let _ = self.send(out).await;
    }
}

#[derive(Deserialize)]
struct EmulationRequest {
    #[serde(default)]
    session: String,
    #[serde(default)]
    node: String,
    #[serde(default)]
    data: String,
}

/// Parses an `/emulation` body: `{session, node, data}` with both ids present.
fn emulation_request(body: &[u8]) -> Option<EmulationRequest> {
    serde_json::from_slice::<EmulationRequest>(body).ok().filter(|r| !r.session.is_empty() && !r.node.is_empty())
}

/// Decodes the newline-joined commands an emulation request's `data` carries.
fn emulation_commands(data: &str) -> Option<Vec<Command>> {
    framing::lines(data.as_bytes()).map(json::decode_command).collect::<Result<Vec<_>, _>>().ok()
}

/// An `/emulation` body, Protobuf or JSON: session id, node id and the commands (None
/// when they do not decode); None when the ids are missing.
fn decode_emulation(body: &[u8], protobuf: bool) -> Option<(String, String, Option<Vec<Command>>)> {
    if protobuf {
        protobuf::decode_emulation(body)
            .ok()
            .filter(|e| !e.session.is_empty() && !e.node.is_empty())
            .map(|e| (e.session, e.node, Some(e.commands)))
    } else {
        emulation_request(body).map(|r| {
            let commands = emulation_commands(&r.data);
            (r.session, r.node, commands)
        })
    }
}

/// Hands decoded emulation commands to a session of this node.
fn deliver_emulation(sessions: &Sessions, session: &str, commands: Option<Vec<Command>>) -> StatusCode {
    let Some(commands) = commands else { return StatusCode::BAD_REQUEST };
    let sender = sessions.lock().get(session).cloned();
    let Some(sender) = sender else { return StatusCode::NOT_FOUND };
    match sender.try_send(commands) {
        Ok(()) => StatusCode::NO_CONTENT,
        Err(mpsc::error::TrySendError::Full(_)) => StatusCode::SERVICE_UNAVAILABLE,
        Err(mpsc::error::TrySendError::Closed(_)) => StatusCode::NOT_FOUND,
    }
}

/// `POST /emulation`: hands the commands in `data` to the session they belong to, on
/// this node or, through the engine, on the node named in the request (so no sticky
/// sessions are needed in front of several nodes).
async fn emulate(State(ctx): State<Ctx>, method: Method, headers: HeaderMap, body: Bytes) -> Response {
    debug_assert_eq!(method, Method::POST);
    let out = match cors(&ctx, &headers) {
        Ok(h) => h,
        Err(r) => return r.into_response(),
    };
    let protobuf = is_protobuf(&headers);
    let Some((session, node, commands)) = decode_emulation(&body, protobuf) else {
        return (StatusCode::BAD_REQUEST, out, "Bad Request").into_response();
    };
    let status = if node == ctx.hub.node_id() {
        deliver_emulation(&ctx.sessions, &session, commands)
    } else {
        match ctx.hub.emulate_on(&node, body, protobuf).await {
            Ok(Some(status)) => StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            Ok(None) => return (StatusCode::NOT_FOUND, out, "unknown node").into_response(),
            Err(_) => return (StatusCode::SERVICE_UNAVAILABLE, out, "engine unavailable").into_response(),
        }
    };
    let text = match status {
        StatusCode::BAD_REQUEST => "Bad Request",
        StatusCode::NOT_FOUND => "unknown session",
        StatusCode::SERVICE_UNAVAILABLE => "busy",
        _ => "",
    };
    (status, out, text).into_response()
}

/// The connect request of a unidirectional WebSocket (`cf_connect` or first message).
pub fn uni_connect_request(body: &[u8]) -> Option<ConnectRequest> {
    match uni_command(body).ok()?.pop()?.body {
        CommandBody::Connect(req) => Some(req),
        _ => None,
    }
}

/// `cf_connect` from a query string, decoded (for `/connection/uni_websocket`).
pub fn cf_connect_param(query: Option<&str>) -> Option<String> {
    cf_connect(query)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("%7B%22a%22%3A1%7D").as_deref(), Some("{\"a\":1}"));
        assert_eq!(percent_decode("a+b").as_deref(), Some("a b"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%e"), None);
        assert_eq!(percent_decode("%ff"), None, "not UTF-8");
    }

    #[test]
    fn connect_requests_parse_or_are_refused() {
        assert!(bidi_commands(br#"{"id":1,"connect":{"token":"t"}}"#).is_ok());
        assert!(bidi_commands(br#"{"id":1,"subscribe":{"channel":"a"}}"#).is_err());
        assert!(bidi_commands(br#"{"connect":{}}"#).is_err(), "connect needs an id");
        assert!(bidi_commands(b"{nope").is_err());
        assert!(bidi_commands(b"").is_err());
        assert!(uni_command(br#"{"token":"t"}"#).is_ok());
        assert!(uni_command(b"").is_ok());
        assert!(uni_command(b"[1]").is_err());
        assert!(uni_command(br#"{"token":5}"#).is_err());
    }

    mod props {
        use proptest::prelude::*;

        use super::*;

        fn config() -> ProptestConfig {
            let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256);
            ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
        }

        /// `%XX` for every byte: what a client's encodeURIComponent-style escaping yields.
        fn escape_all(s: &str) -> String {
            s.bytes().map(|b| format!("%{b:02X}")).collect()
        }

        proptest! {
            #![proptest_config(config())]

            #[test]
            fn parsers_never_panic_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
                let _ = bidi_commands(&bytes);
                let _ = uni_command(&bytes);
                let _ = uni_connect_request(&bytes);
                if let Some(req) = emulation_request(&bytes) {
                    let _ = emulation_commands(&req.data);
                }
                let text = String::from_utf8_lossy(&bytes);
                let _ = emulation_commands(&text);
                let _ = percent_decode(&text);
                let _ = cf_connect(Some(&text));
            }

            #[test]
            fn percent_encoding_round_trips(s in any::<String>()) {
                prop_assert_eq!(percent_decode(&escape_all(&s)), Some(s.clone()));
                let query = format!("a=1&cf_connect={}&b=2", escape_all(&s));
                prop_assert_eq!(cf_connect(Some(&query)), Some(s));
            }

            #[test]
            fn a_connect_request_survives_cf_connect(token in "[A-Za-z0-9._-]{0,40}", name in "[a-z]{0,8}") {
                let body = serde_json::json!({"token": token, "name": name}).to_string();
                let query = format!("cf_connect={}", escape_all(&body));
                let decoded = cf_connect(Some(&query)).expect("decodes");
                let req = uni_connect_request(decoded.as_bytes()).expect("parses");
                prop_assert_eq!((req.token, req.name), (token, name));
            }

            #[test]
            fn emulation_bodies_carry_their_commands(session in "[a-z0-9-]{1,36}", ids in prop::collection::vec(1u32..1000, 0..5)) {
                let data: Vec<String> = ids.iter().map(|id| serde_json::json!({"id": id, "ping": {}}).to_string()).collect();
                let body = serde_json::json!({"session": session, "node": "n", "data": data.join("\n")}).to_string();
                let req = emulation_request(body.as_bytes()).expect("parses");
                prop_assert_eq!(&req.session, &session);
                let commands = emulation_commands(&req.data).expect("decodes");
                prop_assert_eq!(commands.iter().map(|c| c.id).collect::<Vec<_>>(), ids);
            }

            #[test]
            fn emulation_without_session_or_node_is_refused(data in "[a-z]{0,8}", which in any::<bool>()) {
                let body = if which {
                    serde_json::json!({"node": "n", "data": data})
                } else {
                    serde_json::json!({"session": "s", "data": data})
                };
                prop_assert!(emulation_request(body.to_string().as_bytes()).is_none());
            }
        }
    }
}
