//! The JSON bodies Centrifugo POSTs to proxy endpoints and the answers it reads back.
//!
//! Every request carries `client`, `transport`, `protocol` (`json`|`protobuf`), `encoding`
//! (`json`, or `binary` in binary mode) and, after connect, `user` and (when the proxy
//! includes it) the connection's `meta`. Client data travels as raw JSON in `data`, or
//! base64 in `b64data` in binary mode (and whenever it is not JSON). An answer is one of
//! `{"result": …}`, `{"error": {code, message, temporary}}` or
//! `{"disconnect": {code, reason}}`; results may carry `info`/`b64info` and
//! `data`/`b64data`, both forms accepted whatever the mode.

use std::collections::BTreeMap;

use base64::Engine as _;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::protocol::{ClientError, Disconnect};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Who is asking: the connection's side of every request.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    /// Client id.
    pub client: &'a str,
    /// Transport name (`websocket`, `sse`, `http_stream`, `uni_websocket` …).
    pub transport: &'a str,
    /// The client protocol: `json` or `protobuf` (any binary codec).
    pub protocol: &'a str,
    /// User id (empty before connect and for anonymous users).
    pub user: &'a str,
    /// The connection's `meta` (raw JSON from the connect proxy), sent when the proxy
    /// has `include_connection_meta`.
    pub meta: Option<&'a Bytes>,
}

/// Client data, as the request carries it.
enum Data<'a> {
    Json(&'a RawValue),
    B64(String),
}

fn data<'a>(bytes: Option<&'a Bytes>, binary: bool) -> Option<Data<'a>> {
    let bytes = bytes?;
    if !binary
        && let Ok(text) = std::str::from_utf8(bytes)
        && let Ok(raw) = serde_json::from_str::<&RawValue>(text)
    {
        return Some(Data::Json(raw));
    }
    Some(Data::B64(B64.encode(bytes)))
}

fn raw(bytes: Option<&Bytes>) -> Option<&RawValue> {
    bytes.and_then(|b| std::str::from_utf8(b).ok()).and_then(|t| serde_json::from_str(t).ok())
}

#[derive(Serialize)]
struct Common<'a> {
    client: &'a str,
    transport: &'a str,
    protocol: &'a str,
    encoding: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    user: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    meta: Option<&'a RawValue>,
}

#[derive(Serialize, Default)]
struct Payload<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    b64data: Option<String>,
}

fn payload(bytes: Option<&Bytes>, binary: bool) -> Payload<'_> {
    match data(bytes, binary) {
        None => Payload::default(),
        Some(Data::Json(raw)) => Payload { data: Some(raw), b64data: None },
        Some(Data::B64(s)) => Payload { data: None, b64data: Some(s) },
    }
}

impl<'a> Caller<'a> {
    fn common(&self, binary: bool, with_meta: bool) -> Common<'a> {
        Common {
            client: self.client,
            transport: self.transport,
            protocol: self.protocol,
            encoding: if binary { "binary" } else { "json" },
            user: self.user,
            meta: if with_meta { raw(self.meta) } else { None },
        }
    }
}

/// How a proxy shapes its requests (from its config).
#[derive(Debug, Clone, Copy, Default)]
pub struct Shape {
    /// `binary_encoding`.
    pub binary: bool,
    /// `include_connection_meta`.
    pub meta: bool,
}

/// The body of a connect request (no `user` yet, no `meta`).
pub fn connect_request(
    caller: &Caller<'_>,
    shape: Shape,
    name: &str,
    version: &str,
    data: Option<&Bytes>,
    channels: &[&str],
) -> Vec<u8> {
    #[derive(Serialize)]
    struct Req<'a> {
        #[serde(flatten)]
        common: Common<'a>,
        #[serde(skip_serializing_if = "str::is_empty")]
        name: &'a str,
        #[serde(skip_serializing_if = "str::is_empty")]
        version: &'a str,
        #[serde(flatten)]
        payload: Payload<'a>,
        #[serde(skip_serializing_if = "<[_]>::is_empty")]
        channels: &'a [&'a str],
    }
    let common = Common { user: "", meta: None, ..caller.common(shape.binary, false) };
    to_vec(&Req { common, name, version, payload: payload(data, shape.binary), channels })
}

/// The body of a refresh request.
pub fn refresh_request(caller: &Caller<'_>, shape: Shape) -> Vec<u8> {
    to_vec(&caller.common(shape.binary, shape.meta))
}

/// The body of a subscribe request.
pub fn subscribe_request(caller: &Caller<'_>, shape: Shape, channel: &str, token: &str, data: Option<&Bytes>) -> Vec<u8> {
    #[derive(Serialize)]
    struct Req<'a> {
        #[serde(flatten)]
        common: Common<'a>,
        channel: &'a str,
        #[serde(skip_serializing_if = "str::is_empty")]
        token: &'a str,
        #[serde(flatten)]
        payload: Payload<'a>,
    }
    to_vec(&Req { common: caller.common(shape.binary, shape.meta), channel, token, payload: payload(data, shape.binary) })
}

/// The body of a publish request.
pub fn publish_request(caller: &Caller<'_>, shape: Shape, channel: &str, data: &Bytes) -> Vec<u8> {
    #[derive(Serialize)]
    struct Req<'a> {
        #[serde(flatten)]
        common: Common<'a>,
        channel: &'a str,
        #[serde(flatten)]
        payload: Payload<'a>,
    }
    to_vec(&Req { common: caller.common(shape.binary, shape.meta), channel, payload: payload(Some(data), shape.binary) })
}

/// The body of a sub_refresh request.
pub fn sub_refresh_request(caller: &Caller<'_>, shape: Shape, channel: &str) -> Vec<u8> {
    #[derive(Serialize)]
    struct Req<'a> {
        #[serde(flatten)]
        common: Common<'a>,
        channel: &'a str,
    }
    to_vec(&Req { common: caller.common(shape.binary, shape.meta), channel })
}

/// The body of an RPC request.
pub fn rpc_request(caller: &Caller<'_>, shape: Shape, method: &str, data: Option<&Bytes>) -> Vec<u8> {
    #[derive(Serialize)]
    struct Req<'a> {
        #[serde(flatten)]
        common: Common<'a>,
        method: &'a str,
        #[serde(flatten)]
        payload: Payload<'a>,
    }
    to_vec(&Req { common: caller.common(shape.binary, shape.meta), method, payload: payload(data, shape.binary) })
}

fn to_vec<T: Serialize>(v: &T) -> Vec<u8> {
    // Serializing these structs (strings, raw JSON that parsed) cannot fail.
    serde_json::to_vec(v).unwrap_or_default()
}

/// What the backend decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome<T> {
    /// Go ahead, with this result.
    Result(T),
    /// Answer the command with this error (the connection stays).
    Error(ClientError),
    /// Close the connection with this.
    Disconnect(Disconnect),
}

#[derive(Deserialize)]
struct Answer<T> {
    #[serde(default = "Option::default")]
    result: Option<T>,
    #[serde(default)]
    error: Option<WireError>,
    #[serde(default)]
    disconnect: Option<WireDisconnect>,
}

#[derive(Deserialize)]
struct WireError {
    code: u32,
    #[serde(default)]
    message: String,
    #[serde(default)]
    temporary: bool,
}

#[derive(Deserialize)]
struct WireDisconnect {
    code: u32,
    #[serde(default)]
    reason: String,
}

/// Why an answer could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadAnswer(pub String);

/// Longest disconnect reason kept, in bytes: it must fit a WebSocket close frame (123).
const MAX_REASON_LEN: usize = 120;

/// Parses an answer; a missing `result` is `T::default()` (Centrifugo treats an empty
/// answer as "allowed, nothing to add").
pub fn answer<T: for<'de> Deserialize<'de> + Default>(body: &[u8]) -> Result<Outcome<T>, BadAnswer> {
    let a: Answer<T> = serde_json::from_slice(body).map_err(|e| BadAnswer(format!("invalid JSON answer: {e}")))?;
    if let Some(d) = a.disconnect {
        let code = u16::try_from(d.code).map_err(|_| BadAnswer(format!("disconnect code {} out of range", d.code)))?;
        let mut end = d.reason.len().min(MAX_REASON_LEN);
        while !d.reason.is_char_boundary(end) {
            end -= 1;
        }
        let mut reason = d.reason;
        reason.truncate(end);
        return Ok(Outcome::Disconnect(Disconnect { code, reason: reason.into() }));
    }
    if let Some(e) = a.error {
        return Ok(Outcome::Error(ClientError::app(e.code, &e.message, e.temporary)));
    }
    Ok(Outcome::Result(a.result.unwrap_or_default()))
}

/// `info`/`b64info` or `data`/`b64data` of a result, as bytes.
fn bytes_of(json: Option<&RawValue>, b64: &str, what: &str) -> Result<Option<Bytes>, BadAnswer> {
    if !b64.is_empty() {
        return B64.decode(b64).map(|v| Some(Bytes::from(v))).map_err(|e| BadAnswer(format!("b64{what}: {e}")));
    }
    Ok(json.filter(|r| r.get() != "null").map(|r| Bytes::copy_from_slice(r.get().as_bytes())))
}

/// A `{"value": bool}` override.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct BoolValue {
    /// The value.
    #[serde(default)]
    pub value: bool,
}

/// Subscription option overrides in a subscribe (or connect `subs`) result.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(default)]
pub struct Override {
    /// Presence on or off.
    pub presence: Option<BoolValue>,
    /// Join/leave on or off.
    pub join_leave: Option<BoolValue>,
    /// Push join/leave to every subscriber.
    pub force_push_join_leave: Option<BoolValue>,
    /// Positioning on or off.
    pub force_positioning: Option<BoolValue>,
    /// Recovery on or off.
    pub force_recovery: Option<BoolValue>,
}

impl Override {
    /// As the token claims' overrides.
    pub fn to_sub_override(self) -> crate::auth::jwt::SubOverride {
        crate::auth::jwt::SubOverride {
            presence: self.presence.map(|v| v.value),
            join_leave: self.join_leave.map(|v| v.value),
            force_push_join_leave: self.force_push_join_leave.map(|v| v.value),
            force_positioning: self.force_positioning.map(|v| v.value),
            force_recovery: self.force_recovery.map(|v| v.value),
        }
    }
}

/// One server-side subscription in a connect result's `subs`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct WireSub {
    info: Option<Box<RawValue>>,
    b64info: String,
    data: Option<Box<RawValue>>,
    b64data: String,
    #[serde(rename = "override")]
    overrides: Override,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct WireConnect {
    user: String,
    expire_at: i64,
    info: Option<Box<RawValue>>,
    b64info: String,
    data: Option<Box<RawValue>>,
    b64data: String,
    channels: Vec<String>,
    subs: BTreeMap<String, WireSub>,
    meta: Option<Box<RawValue>>,
}

/// A server-side subscription the connect proxy asked for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConnectSub {
    /// Channel info.
    pub info: Option<Bytes>,
    /// Data for the subscribe result.
    pub data: Option<Bytes>,
    /// Option overrides.
    pub overrides: crate::auth::jwt::SubOverride,
}

/// The connect proxy's result.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConnectReply {
    /// User id (empty: anonymous).
    pub user: String,
    /// Connection expiry, unix seconds.
    pub expire_at: Option<u64>,
    /// Connection info (in presence, publications).
    pub info: Option<Bytes>,
    /// Data for the connect result.
    pub data: Option<Bytes>,
    /// Server-side subscriptions (`channels`, then `subs` with options).
    pub subs: BTreeMap<String, ConnectSub>,
    /// Connection meta: never sent to clients, included in later proxy requests.
    pub meta: Option<Bytes>,
}

fn expire(at: i64) -> Option<u64> {
    u64::try_from(at).ok().filter(|&a| a > 0)
}

/// Parses a connect answer.
pub fn connect_answer(body: &[u8]) -> Result<Outcome<ConnectReply>, BadAnswer> {
    Ok(match answer::<WireConnect>(body)? {
        Outcome::Result(w) => {
            let mut subs = BTreeMap::new();
            for ch in w.channels {
                subs.entry(ch).or_insert_with(ConnectSub::default);
            }
            for (ch, s) in w.subs {
                let sub = ConnectSub {
                    info: bytes_of(s.info.as_deref(), &s.b64info, "info")?,
                    data: bytes_of(s.data.as_deref(), &s.b64data, "data")?,
                    overrides: s.overrides.to_sub_override(),
                };
                subs.insert(ch, sub);
            }
            Outcome::Result(ConnectReply {
                user: w.user,
                expire_at: expire(w.expire_at),
                info: bytes_of(w.info.as_deref(), &w.b64info, "info")?,
                data: bytes_of(w.data.as_deref(), &w.b64data, "data")?,
                subs,
                meta: bytes_of(w.meta.as_deref(), "", "meta")?,
            })
        }
        Outcome::Error(e) => Outcome::Error(e),
        Outcome::Disconnect(d) => Outcome::Disconnect(d),
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct WireRefresh {
    expired: bool,
    expire_at: i64,
    info: Option<Box<RawValue>>,
    b64info: String,
}

/// A refresh or sub_refresh result.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RefreshReply {
    /// End it now.
    pub expired: bool,
    /// The new expiry (unix seconds); none: never expires.
    pub expire_at: Option<u64>,
    /// New info, if any.
    pub info: Option<Bytes>,
}

/// Parses a refresh or sub_refresh answer.
pub fn refresh_answer(body: &[u8]) -> Result<Outcome<RefreshReply>, BadAnswer> {
    Ok(match answer::<WireRefresh>(body)? {
        Outcome::Result(w) => Outcome::Result(RefreshReply {
            expired: w.expired,
            expire_at: expire(w.expire_at),
            info: bytes_of(w.info.as_deref(), &w.b64info, "info")?,
        }),
        Outcome::Error(e) => Outcome::Error(e),
        Outcome::Disconnect(d) => Outcome::Disconnect(d),
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct WireSubscribe {
    info: Option<Box<RawValue>>,
    b64info: String,
    data: Option<Box<RawValue>>,
    b64data: String,
    #[serde(rename = "override")]
    overrides: Override,
    expire_at: i64,
}

/// The subscribe proxy's result.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubscribeReply {
    /// Channel info.
    pub info: Option<Bytes>,
    /// Data for the subscribe result.
    pub data: Option<Bytes>,
    /// Option overrides.
    pub overrides: crate::auth::jwt::SubOverride,
    /// Subscription expiry (unix seconds).
    pub expire_at: Option<u64>,
}

/// Parses a subscribe answer.
pub fn subscribe_answer(body: &[u8]) -> Result<Outcome<SubscribeReply>, BadAnswer> {
    Ok(match answer::<WireSubscribe>(body)? {
        Outcome::Result(w) => Outcome::Result(SubscribeReply {
            info: bytes_of(w.info.as_deref(), &w.b64info, "info")?,
            data: bytes_of(w.data.as_deref(), &w.b64data, "data")?,
            overrides: w.overrides.to_sub_override(),
            expire_at: expire(w.expire_at),
        }),
        Outcome::Error(e) => Outcome::Error(e),
        Outcome::Disconnect(d) => Outcome::Disconnect(d),
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct WirePublish {
    data: Option<Box<RawValue>>,
    b64data: String,
    skip_history: bool,
    idempotency_key: String,
    tags: BTreeMap<String, String>,
}

/// The publish proxy's result.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PublishReply {
    /// Publish this instead of what the client sent.
    pub data: Option<Bytes>,
    /// Leave it out of history.
    pub skip_history: bool,
    /// Idempotency key.
    pub idempotency_key: Option<String>,
    /// Publication tags.
    pub tags: BTreeMap<String, String>,
}

/// Parses a publish answer.
pub fn publish_answer(body: &[u8]) -> Result<Outcome<PublishReply>, BadAnswer> {
    Ok(match answer::<WirePublish>(body)? {
        Outcome::Result(w) => Outcome::Result(PublishReply {
            data: bytes_of(w.data.as_deref(), &w.b64data, "data")?,
            skip_history: w.skip_history,
            idempotency_key: Some(w.idempotency_key).filter(|k| !k.is_empty()),
            tags: w.tags,
        }),
        Outcome::Error(e) => Outcome::Error(e),
        Outcome::Disconnect(d) => Outcome::Disconnect(d),
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct WireRpc {
    data: Option<Box<RawValue>>,
    b64data: String,
}

/// Parses an RPC answer: the data for the client.
pub fn rpc_answer(body: &[u8]) -> Result<Outcome<Option<Bytes>>, BadAnswer> {
    Ok(match answer::<WireRpc>(body)? {
        Outcome::Result(w) => Outcome::Result(bytes_of(w.data.as_deref(), &w.b64data, "data")?),
        Outcome::Error(e) => Outcome::Error(e),
        Outcome::Disconnect(d) => Outcome::Disconnect(d),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn caller<'a>(meta: Option<&'a Bytes>) -> Caller<'a> {
        Caller { client: "c1", transport: "websocket", protocol: "json", user: "42", meta }
    }

    fn parsed(body: &[u8]) -> Value {
        serde_json::from_slice(body).expect("json")
    }

    #[test]
    fn connect_request_is_shaped_like_centrifugos() {
        let data = Bytes::from_static(br#"{"hello":"world"}"#);
        let body = connect_request(&caller(None), Shape::default(), "js", "5.4.0", Some(&data), &["news"]);
        // As Centrifugo sends it: no user and no meta before the connection is known.
        assert_eq!(
            parsed(&body),
            json!({"client":"c1","transport":"websocket","protocol":"json","encoding":"json",
                   "name":"js","version":"5.4.0","data":{"hello":"world"},"channels":["news"]})
        );
    }

    #[test]
    fn binary_mode_sends_base64_and_says_so() {
        let data = Bytes::from_static(&[0, 159, 146, 150]);
        let body = rpc_request(&caller(None), Shape { binary: true, meta: false }, "m", Some(&data));
        assert_eq!(
            parsed(&body),
            json!({"client":"c1","transport":"websocket","protocol":"json","encoding":"binary","user":"42",
                   "method":"m","b64data":"AJ+Slg=="})
        );
        // Not JSON in JSON mode: still base64 (raw bytes cannot go into a JSON body).
        let body = publish_request(&caller(None), Shape::default(), "ch", &data);
        assert_eq!(parsed(&body)["b64data"], "AJ+Slg==");
    }

    #[test]
    fn meta_is_included_only_when_the_proxy_asks() {
        let meta = Bytes::from_static(br#"{"tenant":7}"#);
        let with = subscribe_request(&caller(Some(&meta)), Shape { binary: false, meta: true }, "chat:1", "", None);
        assert_eq!(
            parsed(&with),
            json!({"client":"c1","transport":"websocket","protocol":"json","encoding":"json","user":"42",
                   "meta":{"tenant":7},"channel":"chat:1"})
        );
        let without = sub_refresh_request(&caller(Some(&meta)), Shape::default(), "chat:1");
        assert!(parsed(&without).get("meta").is_none());
        let refresh = refresh_request(&caller(Some(&meta)), Shape { binary: false, meta: true });
        assert_eq!(parsed(&refresh)["meta"], json!({"tenant":7}));
    }

    #[test]
    fn connect_result_maps_every_field() {
        // Recorded from a Centrifugo connect proxy backend (docs example shape).
        let body = br#"{"result":{"user":"56","expire_at":1565436268,"info":{"name":"Alex"},
            "data":{"welcome":true},"channels":["news"],
            "subs":{"chat:1":{"info":{"role":"admin"},"b64data":"aGk=","override":{"presence":{"value":true}}}},
            "meta":{"tenant":"t1"}}}"#;
        let Outcome::Result(r) = connect_answer(body).expect("parses") else { panic!("not a result") };
        assert_eq!(r.user, "56");
        assert_eq!(r.expire_at, Some(1_565_436_268));
        assert_eq!(r.info.as_deref(), Some(&br#"{"name":"Alex"}"#[..]));
        assert_eq!(r.data.as_deref(), Some(&br#"{"welcome":true}"#[..]));
        assert_eq!(r.meta.as_deref(), Some(&br#"{"tenant":"t1"}"#[..]));
        assert_eq!(r.subs.keys().collect::<Vec<_>>(), ["chat:1", "news"]);
        let chat = &r.subs["chat:1"];
        assert_eq!(chat.info.as_deref(), Some(&br#"{"role":"admin"}"#[..]));
        assert_eq!(chat.data.as_deref(), Some(&b"hi"[..]));
        assert_eq!(chat.overrides.presence, Some(true));
        assert_eq!(chat.overrides.join_leave, None);
    }

    #[test]
    fn b64info_wins_and_empty_answers_allow() {
        let Outcome::Result(r) = connect_answer(br#"{"result":{"user":"1","b64info":"eyJhIjoxfQ=="}}"#).expect("ok")
        else {
            panic!()
        };
        assert_eq!(r.info.as_deref(), Some(&br#"{"a":1}"#[..]));
        assert_eq!(r.expire_at, None);
        assert_eq!(subscribe_answer(b"{}").expect("ok"), Outcome::Result(SubscribeReply::default()));
        assert_eq!(rpc_answer(br#"{"result":{}}"#).expect("ok"), Outcome::Result(None));
        assert!(connect_answer(br#"{"result":{"b64info":"!!"}}"#).is_err());
        assert!(connect_answer(b"<html>").is_err());
    }

    #[test]
    fn errors_and_disconnects_reach_the_client_as_sent() {
        let e = rpc_answer(br#"{"error":{"code":1000,"message":"custom error"}}"#).expect("ok");
        let Outcome::Error(e) = e else { panic!("{e:?}") };
        assert_eq!((e.code(), e.message(), e.temporary()), (1000, "custom error", false));
        let e = publish_answer(br#"{"error":{"code":1001,"message":"try later","temporary":true}}"#).expect("ok");
        assert!(matches!(e, Outcome::Error(e) if e.temporary() && e.code() == 1001));
        let d = connect_answer(br#"{"disconnect":{"code":4500,"reason":"go away"}}"#).expect("ok");
        assert_eq!(d, Outcome::Disconnect(Disconnect { code: 4500, reason: "go away".into() }));
        // A disconnect wins over an error in the same answer, as the stronger decision.
        let both = refresh_answer(br#"{"error":{"code":1000},"disconnect":{"code":4501,"reason":"x"}}"#).expect("ok");
        assert!(matches!(both, Outcome::Disconnect(d) if d.code == 4501));
        assert!(refresh_answer(br#"{"disconnect":{"code":70000,"reason":"x"}}"#).is_err());
        let long = format!(r#"{{"disconnect":{{"code":4000,"reason":"{}"}}}}"#, "é".repeat(100));
        let Outcome::Disconnect(d) = refresh_answer(long.as_bytes()).expect("ok") else { panic!() };
        assert!(d.reason.len() <= MAX_REASON_LEN);
    }

    #[test]
    fn publish_result_may_rewrite() {
        let body = br#"{"result":{"data":{"text":"HELLO"},"skip_history":true,"idempotency_key":"k1","tags":{"t":"v"}}}"#;
        let Outcome::Result(p) = publish_answer(body).expect("ok") else { panic!() };
        assert_eq!(p.data.as_deref(), Some(&br#"{"text":"HELLO"}"#[..]));
        assert!(p.skip_history);
        assert_eq!(p.idempotency_key.as_deref(), Some("k1"));
        assert_eq!(p.tags.get("t").map(String::as_str), Some("v"));
        let Outcome::Result(p) = publish_answer(br#"{"result":{}}"#).expect("ok") else { panic!() };
        assert_eq!(p, PublishReply::default());
    }

    #[test]
    fn refresh_results() {
        let r = refresh_answer(br#"{"result":{"expired":true}}"#).expect("ok");
        assert_eq!(r, Outcome::Result(RefreshReply { expired: true, ..Default::default() }));
        let r = refresh_answer(br#"{"result":{"expire_at":1700000000,"info":{"v":2}}}"#).expect("ok");
        let Outcome::Result(r) = r else { panic!() };
        assert_eq!((r.expired, r.expire_at), (false, Some(1_700_000_000)));
        assert_eq!(r.info.as_deref(), Some(&br#"{"v":2}"#[..]));
    }
}
