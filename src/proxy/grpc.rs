//! The gRPC adapter: unary calls to Centrifugo's `centrifugal.centrifugo.proxy.CentrifugoProxy`
//! service over plaintext HTTP/2 (h2c), without protoc or a gRPC framework: the messages
//! are declared here with prost's derive (field numbers of Centrifugo's `proxy.proto`),
//! and a call is one HTTP/2 POST of a length-prefixed message whose answer carries
//! `grpc-status` in its trailers.
//!
//! Data travels as bytes (`data`, `info`, `meta`), as Centrifugo's gRPC proxy sends it;
//! `b64*` fields of answers are accepted too.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine as _;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{HeaderName, HeaderValue, Request, Uri};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use prost::Message;

use super::http::MAX_ANSWER_BYTES;
use super::wire::{BadAnswer, Caller, ConnectReply, ConnectSub, Outcome, PublishReply, RefreshReply, Shape, SubscribeReply};
use crate::protocol::{ClientError, Disconnect};

/// The service's path prefix.
const SERVICE: &str = "/centrifugal.centrifugo.proxy.CentrifugoProxy/";

/// Idle HTTP/2 connections kept per backend (one multiplexes every call).
const MAX_IDLE_PER_HOST: usize = 4;

/// Why a gRPC call failed at the gRPC layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrpcError {
    /// The exchange failed.
    #[error("transport error: {0}")]
    Transport(String),
    /// The backend answered with a non-zero `grpc-status`.
    #[error("grpc-status {0}: {1}")]
    Status(u32, String),
    /// The answer was not one length-prefixed message.
    #[error("answer: {0}")]
    Body(String),
}

impl GrpcError {
    /// A short label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Transport(_) => "transport",
            Self::Status(..) => "grpc_status",
            Self::Body(_) => "body",
        }
    }
}

// --- Messages (Centrifugo's proxy.proto field numbers) ---------------------------------

/// `Disconnect`.
#[derive(Clone, PartialEq, Message)]
pub struct PbDisconnect {
    #[prost(uint32, tag = "1")]
    code: u32,
    #[prost(string, tag = "2")]
    reason: String,
}

/// `Error`.
#[derive(Clone, PartialEq, Message)]
pub struct PbError {
    #[prost(uint32, tag = "1")]
    code: u32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(bool, tag = "3")]
    temporary: bool,
}

/// `BoolValue`.
#[derive(Clone, Copy, PartialEq, Message)]
pub struct PbBool {
    #[prost(bool, tag = "1")]
    value: bool,
}

/// `SubscribeOptionOverride`.
#[derive(Clone, Copy, PartialEq, Message)]
pub struct PbOverride {
    #[prost(message, optional, tag = "1")]
    presence: Option<PbBool>,
    #[prost(message, optional, tag = "2")]
    join_leave: Option<PbBool>,
    #[prost(message, optional, tag = "3")]
    force_recovery: Option<PbBool>,
    #[prost(message, optional, tag = "4")]
    force_positioning: Option<PbBool>,
    #[prost(message, optional, tag = "5")]
    force_push_join_leave: Option<PbBool>,
}

impl PbOverride {
    fn into_override(self) -> crate::auth::jwt::SubOverride {
        crate::auth::jwt::SubOverride {
            presence: self.presence.map(|v| v.value),
            join_leave: self.join_leave.map(|v| v.value),
            force_push_join_leave: self.force_push_join_leave.map(|v| v.value),
            force_recovery: self.force_recovery.map(|v| v.value),
            force_positioning: self.force_positioning.map(|v| v.value),
        }
    }
}

/// `ConnectRequest`.
#[derive(Clone, PartialEq, Message)]
pub struct PbConnectRequest {
    #[prost(string, tag = "1")]
    client: String,
    #[prost(string, tag = "2")]
    transport: String,
    #[prost(string, tag = "3")]
    protocol: String,
    #[prost(string, tag = "4")]
    encoding: String,
    #[prost(bytes = "bytes", tag = "10")]
    data: Bytes,
    #[prost(string, tag = "12")]
    name: String,
    #[prost(string, tag = "13")]
    version: String,
    #[prost(string, repeated, tag = "14")]
    channels: Vec<String>,
}

/// `SubscribeOptions` (connect result `subs`).
#[derive(Clone, PartialEq, Message)]
pub struct PbSubscribeOptions {
    #[prost(int64, tag = "1")]
    expire_at: i64,
    #[prost(bytes = "bytes", tag = "2")]
    info: Bytes,
    #[prost(string, tag = "3")]
    b64info: String,
    #[prost(bytes = "bytes", tag = "4")]
    data: Bytes,
    #[prost(string, tag = "5")]
    b64data: String,
    #[prost(message, optional, tag = "6")]
    overrides: Option<PbOverride>,
}

/// `ConnectResult`.
#[derive(Clone, PartialEq, Message)]
pub struct PbConnectResult {
    #[prost(string, tag = "1")]
    user: String,
    #[prost(int64, tag = "2")]
    expire_at: i64,
    #[prost(bytes = "bytes", tag = "3")]
    info: Bytes,
    #[prost(string, tag = "4")]
    b64info: String,
    #[prost(bytes = "bytes", tag = "5")]
    data: Bytes,
    #[prost(string, tag = "6")]
    b64data: String,
    #[prost(string, repeated, tag = "7")]
    channels: Vec<String>,
    #[prost(map = "string, message", tag = "8")]
    subs: HashMap<String, PbSubscribeOptions>,
    #[prost(bytes = "bytes", tag = "9")]
    meta: Bytes,
}

/// `ConnectResponse`.
#[derive(Clone, PartialEq, Message)]
pub struct PbConnectResponse {
    #[prost(message, optional, tag = "1")]
    result: Option<PbConnectResult>,
    #[prost(message, optional, tag = "2")]
    error: Option<PbError>,
    #[prost(message, optional, tag = "3")]
    disconnect: Option<PbDisconnect>,
}

/// `RefreshRequest`.
#[derive(Clone, PartialEq, Message)]
pub struct PbRefreshRequest {
    #[prost(string, tag = "1")]
    client: String,
    #[prost(string, tag = "2")]
    transport: String,
    #[prost(string, tag = "3")]
    protocol: String,
    #[prost(string, tag = "4")]
    encoding: String,
    #[prost(string, tag = "10")]
    user: String,
    #[prost(bytes = "bytes", tag = "11")]
    meta: Bytes,
}

/// `RefreshResult` and `SubRefreshResult` (same first four fields).
#[derive(Clone, PartialEq, Message)]
pub struct PbRefreshResult {
    #[prost(bool, tag = "1")]
    expired: bool,
    #[prost(int64, tag = "2")]
    expire_at: i64,
    #[prost(bytes = "bytes", tag = "3")]
    info: Bytes,
    #[prost(string, tag = "4")]
    b64info: String,
}

/// `RefreshResponse` and `SubRefreshResponse`.
#[derive(Clone, PartialEq, Message)]
pub struct PbRefreshResponse {
    #[prost(message, optional, tag = "1")]
    result: Option<PbRefreshResult>,
    #[prost(message, optional, tag = "2")]
    error: Option<PbError>,
    #[prost(message, optional, tag = "3")]
    disconnect: Option<PbDisconnect>,
}

/// `SubscribeRequest`.
#[derive(Clone, PartialEq, Message)]
pub struct PbSubscribeRequest {
    #[prost(string, tag = "1")]
    client: String,
    #[prost(string, tag = "2")]
    transport: String,
    #[prost(string, tag = "3")]
    protocol: String,
    #[prost(string, tag = "4")]
    encoding: String,
    #[prost(string, tag = "10")]
    user: String,
    #[prost(string, tag = "11")]
    channel: String,
    #[prost(string, tag = "12")]
    token: String,
    #[prost(bytes = "bytes", tag = "13")]
    meta: Bytes,
    #[prost(bytes = "bytes", tag = "14")]
    data: Bytes,
}

/// `SubscribeResult`.
#[derive(Clone, PartialEq, Message)]
pub struct PbSubscribeResult {
    #[prost(int64, tag = "1")]
    expire_at: i64,
    #[prost(bytes = "bytes", tag = "2")]
    info: Bytes,
    #[prost(string, tag = "3")]
    b64info: String,
    #[prost(bytes = "bytes", tag = "4")]
    data: Bytes,
    #[prost(string, tag = "5")]
    b64data: String,
    #[prost(message, optional, tag = "6")]
    overrides: Option<PbOverride>,
}

/// `SubscribeResponse`.
#[derive(Clone, PartialEq, Message)]
pub struct PbSubscribeResponse {
    #[prost(message, optional, tag = "1")]
    result: Option<PbSubscribeResult>,
    #[prost(message, optional, tag = "2")]
    error: Option<PbError>,
    #[prost(message, optional, tag = "3")]
    disconnect: Option<PbDisconnect>,
}

/// `PublishRequest`.
#[derive(Clone, PartialEq, Message)]
pub struct PbPublishRequest {
    #[prost(string, tag = "1")]
    client: String,
    #[prost(string, tag = "2")]
    transport: String,
    #[prost(string, tag = "3")]
    protocol: String,
    #[prost(string, tag = "4")]
    encoding: String,
    #[prost(string, tag = "10")]
    user: String,
    #[prost(string, tag = "11")]
    channel: String,
    #[prost(bytes = "bytes", tag = "12")]
    data: Bytes,
    #[prost(bytes = "bytes", tag = "14")]
    meta: Bytes,
}

/// `PublishResult`.
#[derive(Clone, PartialEq, Message)]
pub struct PbPublishResult {
    #[prost(bytes = "bytes", tag = "1")]
    data: Bytes,
    #[prost(string, tag = "2")]
    b64data: String,
    #[prost(bool, tag = "3")]
    skip_history: bool,
    #[prost(map = "string, string", tag = "4")]
    tags: HashMap<String, String>,
    #[prost(string, tag = "5")]
    idempotency_key: String,
}

/// `PublishResponse`.
#[derive(Clone, PartialEq, Message)]
pub struct PbPublishResponse {
    #[prost(message, optional, tag = "1")]
    result: Option<PbPublishResult>,
    #[prost(message, optional, tag = "2")]
    error: Option<PbError>,
    #[prost(message, optional, tag = "3")]
    disconnect: Option<PbDisconnect>,
}

/// `RPCRequest`.
#[derive(Clone, PartialEq, Message)]
pub struct PbRpcRequest {
    #[prost(string, tag = "1")]
    client: String,
    #[prost(string, tag = "2")]
    transport: String,
    #[prost(string, tag = "3")]
    protocol: String,
    #[prost(string, tag = "4")]
    encoding: String,
    #[prost(string, tag = "10")]
    user: String,
    #[prost(string, tag = "11")]
    method: String,
    #[prost(bytes = "bytes", tag = "12")]
    data: Bytes,
    #[prost(bytes = "bytes", tag = "14")]
    meta: Bytes,
}

/// `RPCResult`.
#[derive(Clone, PartialEq, Message)]
pub struct PbRpcResult {
    #[prost(bytes = "bytes", tag = "1")]
    data: Bytes,
    #[prost(string, tag = "2")]
    b64data: String,
}

/// `RPCResponse`.
#[derive(Clone, PartialEq, Message)]
pub struct PbRpcResponse {
    #[prost(message, optional, tag = "1")]
    result: Option<PbRpcResult>,
    #[prost(message, optional, tag = "2")]
    error: Option<PbError>,
    #[prost(message, optional, tag = "3")]
    disconnect: Option<PbDisconnect>,
}

/// `SubRefreshRequest`.
#[derive(Clone, PartialEq, Message)]
pub struct PbSubRefreshRequest {
    #[prost(string, tag = "1")]
    client: String,
    #[prost(string, tag = "2")]
    transport: String,
    #[prost(string, tag = "3")]
    protocol: String,
    #[prost(string, tag = "4")]
    encoding: String,
    #[prost(string, tag = "10")]
    user: String,
    #[prost(string, tag = "11")]
    channel: String,
    #[prost(bytes = "bytes", tag = "12")]
    meta: Bytes,
}

// --- Building requests, reading answers ------------------------------------------------

fn meta(caller: &Caller<'_>, shape: Shape) -> Bytes {
    if shape.meta { caller.meta.cloned().unwrap_or_default() } else { Bytes::new() }
}

fn encoding(shape: Shape) -> String {
    if shape.binary { "binary".into() } else { "json".into() }
}

/// The `ConnectRequest` message.
pub fn connect_request(caller: &Caller<'_>, shape: Shape, req: &crate::protocol::ConnectRequest) -> PbConnectRequest {
    PbConnectRequest {
        client: caller.client.into(),
        transport: caller.transport.into(),
        protocol: caller.protocol.into(),
        encoding: encoding(shape),
        data: req.data.clone().unwrap_or_default(),
        name: req.name.clone(),
        version: req.version.clone(),
        channels: req.subs.keys().cloned().collect(),
    }
}

/// The `RefreshRequest` message.
pub fn refresh_request(caller: &Caller<'_>, shape: Shape) -> PbRefreshRequest {
    PbRefreshRequest {
        client: caller.client.into(),
        transport: caller.transport.into(),
        protocol: caller.protocol.into(),
        encoding: encoding(shape),
        user: caller.user.into(),
        meta: meta(caller, shape),
    }
}

/// The `SubscribeRequest` message.
pub fn subscribe_request(caller: &Caller<'_>, shape: Shape, req: &crate::protocol::SubscribeRequest) -> PbSubscribeRequest {
    PbSubscribeRequest {
        client: caller.client.into(),
        transport: caller.transport.into(),
        protocol: caller.protocol.into(),
        encoding: encoding(shape),
        user: caller.user.into(),
        channel: req.channel.clone(),
        token: req.token.clone(),
        meta: meta(caller, shape),
        data: req.data.clone().unwrap_or_default(),
    }
}

/// The `PublishRequest` message.
pub fn publish_request(caller: &Caller<'_>, shape: Shape, channel: &str, data: &Bytes) -> PbPublishRequest {
    PbPublishRequest {
        client: caller.client.into(),
        transport: caller.transport.into(),
        protocol: caller.protocol.into(),
        encoding: encoding(shape),
        user: caller.user.into(),
        channel: channel.into(),
        data: data.clone(),
        meta: meta(caller, shape),
    }
}

/// The `SubRefreshRequest` message.
pub fn sub_refresh_request(caller: &Caller<'_>, shape: Shape, channel: &str) -> PbSubRefreshRequest {
    PbSubRefreshRequest {
        client: caller.client.into(),
        transport: caller.transport.into(),
        protocol: caller.protocol.into(),
        encoding: encoding(shape),
        user: caller.user.into(),
        channel: channel.into(),
        meta: meta(caller, shape),
    }
}

/// The `RPCRequest` message.
pub fn rpc_request(caller: &Caller<'_>, shape: Shape, method: &str, data: Option<&Bytes>) -> PbRpcRequest {
    PbRpcRequest {
        client: caller.client.into(),
        transport: caller.transport.into(),
        protocol: caller.protocol.into(),
        encoding: encoding(shape),
        user: caller.user.into(),
        method: method.into(),
        data: data.cloned().unwrap_or_default(),
        meta: meta(caller, shape),
    }
}

/// `bytes` or `b64*` of an answer; empty is none.
fn field(raw: Bytes, b64: &str, what: &str) -> Result<Option<Bytes>, BadAnswer> {
    if !b64.is_empty() {
        return base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map(|v| Some(Bytes::from(v)))
            .map_err(|e| BadAnswer(format!("b64{what}: {e}")));
    }
    Ok(Some(raw).filter(|b| !b.is_empty()))
}

fn expire(at: i64) -> Option<u64> {
    u64::try_from(at).ok().filter(|&a| a > 0)
}

/// The decision of a `*Response`: a disconnect wins over an error, an error over a result.
fn outcome<R, T>(
    result: Option<R>,
    error: Option<PbError>,
    disconnect: Option<PbDisconnect>,
    map: impl FnOnce(R) -> Result<T, BadAnswer>,
) -> Result<Outcome<T>, BadAnswer>
where
    R: Default,
{
    if let Some(d) = disconnect {
        let code = u16::try_from(d.code).map_err(|_| BadAnswer(format!("disconnect code {} out of range", d.code)))?;
        let mut reason = d.reason;
        let mut end = reason.len().min(120);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
        return Ok(Outcome::Disconnect(Disconnect { code, reason: reason.into() }));
    }
    if let Some(e) = error {
        return Ok(Outcome::Error(ClientError::app(e.code, &e.message, e.temporary)));
    }
    map(result.unwrap_or_default()).map(Outcome::Result)
}

/// Reads a `ConnectResponse`.
pub fn connect_answer(r: PbConnectResponse) -> Result<Outcome<ConnectReply>, BadAnswer> {
    outcome(r.result, r.error, r.disconnect, |w| {
        let mut subs = std::collections::BTreeMap::new();
        for ch in w.channels {
            subs.entry(ch).or_insert_with(ConnectSub::default);
        }
        for (ch, s) in w.subs {
            let sub = ConnectSub {
                info: field(s.info, &s.b64info, "info")?,
                data: field(s.data, &s.b64data, "data")?,
                overrides: s.overrides.unwrap_or_default().into_override(),
            };
            subs.insert(ch, sub);
        }
        Ok(ConnectReply {
            user: w.user,
            expire_at: expire(w.expire_at),
            info: field(w.info, &w.b64info, "info")?,
            data: field(w.data, &w.b64data, "data")?,
            subs,
            meta: field(w.meta, "", "meta")?,
        })
    })
}

/// Reads a `RefreshResponse` or `SubRefreshResponse`.
pub fn refresh_answer(r: PbRefreshResponse) -> Result<Outcome<RefreshReply>, BadAnswer> {
    outcome(r.result, r.error, r.disconnect, |w| {
        Ok(RefreshReply { expired: w.expired, expire_at: expire(w.expire_at), info: field(w.info, &w.b64info, "info")? })
    })
}

/// Reads a `SubscribeResponse`.
pub fn subscribe_answer(r: PbSubscribeResponse) -> Result<Outcome<SubscribeReply>, BadAnswer> {
    outcome(r.result, r.error, r.disconnect, |w| {
        Ok(SubscribeReply {
            info: field(w.info, &w.b64info, "info")?,
            data: field(w.data, &w.b64data, "data")?,
            overrides: w.overrides.unwrap_or_default().into_override(),
            expire_at: expire(w.expire_at),
        })
    })
}

/// Reads a `PublishResponse`.
pub fn publish_answer(r: PbPublishResponse) -> Result<Outcome<PublishReply>, BadAnswer> {
    outcome(r.result, r.error, r.disconnect, |w| {
        Ok(PublishReply {
            data: field(w.data, &w.b64data, "data")?,
            skip_history: w.skip_history,
            idempotency_key: Some(w.idempotency_key).filter(|k| !k.is_empty()),
            tags: w.tags.into_iter().collect(),
        })
    })
}

/// Reads an `RPCResponse`.
pub fn rpc_answer(r: PbRpcResponse) -> Result<Outcome<Option<Bytes>>, BadAnswer> {
    outcome(r.result, r.error, r.disconnect, |w| field(w.data, &w.b64data, "data"))
}

// --- The client ------------------------------------------------------------------------

/// gRPC's length-prefixed message: a compression flag (0) and a big-endian u32 length.
pub fn frame(msg: &impl Message) -> Bytes {
    let len = msg.encoded_len();
    let mut out = BytesMut::with_capacity(5 + len);
    out.put_u8(0);
    out.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
    // Encoding into a buffer with the room reserved cannot fail.
    let _ = msg.encode(&mut out);
    out.freeze()
}

/// The one message of a length-prefixed body.
pub fn unframe<M: Message + Default>(mut body: Bytes) -> Result<M, GrpcError> {
    if body.len() < 5 {
        return Err(GrpcError::Body("shorter than a message header".into()));
    }
    let compressed = body.get_u8();
    let len = body.get_u32() as usize;
    if compressed != 0 {
        return Err(GrpcError::Body("compressed messages are not accepted".into()));
    }
    if body.len() < len {
        return Err(GrpcError::Body("truncated message".into()));
    }
    M::decode(body.split_to(len)).map_err(|e| GrpcError::Body(e.to_string()))
}

/// The shared HTTP/2 (h2c) client of gRPC proxies.
#[derive(Clone)]
pub struct GrpcClient {
    inner: Client<HttpConnector, Full<Bytes>>,
}

impl std::fmt::Debug for GrpcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GrpcClient")
    }
}

impl GrpcClient {
    /// An HTTP/2-only client (prior knowledge, no TLS).
    pub fn new(connect_timeout: Duration) -> Self {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect_timeout));
        let inner = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .pool_max_idle_per_host(MAX_IDLE_PER_HOST)
            .build(http);
        Self { inner }
    }

    /// Calls `method` of the service at `base` (`http://host:port`) with `request`.
    pub async fn call<Q: Message, A: Message + Default>(
        &self,
        base: &Uri,
        method: &str,
        metadata: &[(HeaderName, HeaderValue)],
        request: &Q,
    ) -> Result<A, GrpcError> {
        let uri = format!("{}{SERVICE}{method}", base.to_string().trim_end_matches('/'));
        let mut req = Request::post(uri);
        if let Some(h) = req.headers_mut() {
            h.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
            h.insert(http::header::TE, HeaderValue::from_static("trailers"));
            for (k, v) in metadata {
                h.insert(k.clone(), v.clone());
            }
        }
        let req = req.body(Full::new(frame(request))).map_err(|e| GrpcError::Transport(e.to_string()))?;
        let resp = self.inner.request(req).await.map_err(|e| GrpcError::Transport(e.to_string()))?;
        if resp.status() != http::StatusCode::OK {
            return Err(GrpcError::Transport(format!("HTTP status {}", resp.status().as_u16())));
        }
        let (parts, body) = resp.into_parts();
        let collected = Limited::new(body, MAX_ANSWER_BYTES).collect().await.map_err(|e| GrpcError::Body(e.to_string()))?;
        // grpc-status: in the trailers, or in the headers of a trailers-only answer.
        let trailers = collected.trailers().cloned();
        let status_of = |h: &http::HeaderMap| {
            h.get("grpc-status").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u32>().ok()).map(|code| {
                let message = h.get("grpc-message").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
                (code, message)
            })
        };
        let status = trailers.as_ref().and_then(status_of).or_else(|| status_of(&parts.headers));
        match status {
            Some((0, _)) => {}
            Some((code, message)) => return Err(GrpcError::Status(code, message)),
            None => return Err(GrpcError::Body("no grpc-status".into())),
        }
        unframe(collected.to_bytes())
    }
}

/// Test-only constructors (the fields are private to this module).
#[cfg(test)]
pub struct PbRpcResponseForTest;

#[cfg(test)]
impl PbRpcResponseForTest {
    /// An `RPCResponse` with this result data.
    pub fn result(data: &'static [u8]) -> PbRpcResponse {
        PbRpcResponse { result: Some(PbRpcResult { data: Bytes::from_static(data), b64data: String::new() }), ..Default::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_through_grpc_framing() {
        let caller = Caller { client: "c", transport: "websocket", protocol: "json", user: "u", meta: None };
        let req = rpc_request(&caller, Shape::default(), "m", Some(&Bytes::from_static(b"{}")));
        let back: PbRpcRequest = unframe(frame(&req)).expect("decodes");
        assert_eq!(back, req);
        assert!(unframe::<PbRpcRequest>(Bytes::from_static(&[0, 0, 0])).is_err());
        assert!(unframe::<PbRpcRequest>(Bytes::from_static(&[1, 0, 0, 0, 0])).is_err());
        assert!(unframe::<PbRpcRequest>(Bytes::from_static(&[0, 0, 0, 0, 9, 1])).is_err());
    }

    #[test]
    fn answers_map_like_the_json_ones() {
        let mut subs = HashMap::new();
        subs.insert(
            "chat".to_string(),
            PbSubscribeOptions {
                info: Bytes::from_static(b"{\"r\":1}"),
                overrides: Some(PbOverride { presence: Some(PbBool { value: true }), ..Default::default() }),
                ..Default::default()
            },
        );
        let r = PbConnectResponse {
            result: Some(PbConnectResult {
                user: "7".into(),
                expire_at: 100,
                data: Bytes::from_static(b"{\"a\":1}"),
                channels: vec!["news".into()],
                subs,
                ..Default::default()
            }),
            ..Default::default()
        };
        let Outcome::Result(c) = connect_answer(r).expect("maps") else { panic!() };
        assert_eq!((c.user.as_str(), c.expire_at), ("7", Some(100)));
        assert_eq!(c.data.as_deref(), Some(&b"{\"a\":1}"[..]));
        assert_eq!(c.subs.keys().collect::<Vec<_>>(), ["chat", "news"]);
        assert_eq!(c.subs["chat"].overrides.presence, Some(true));
        let e = rpc_answer(PbRpcResponse {
            error: Some(PbError { code: 1000, message: "x".into(), temporary: false }),
            ..Default::default()
        })
        .expect("maps");
        assert!(matches!(e, Outcome::Error(e) if e.code() == 1000 && e.message() == "x"));
        let d = refresh_answer(PbRefreshResponse {
            disconnect: Some(PbDisconnect { code: 4500, reason: "bye".into() }),
            ..Default::default()
        })
        .expect("maps");
        assert_eq!(d, Outcome::Disconnect(Disconnect { code: 4500, reason: "bye".into() }));
    }
}
