//! Centrifugo protocol v2 in JSON: commands in, replies and pushes out.
//!
//! `data` and `info` travel as raw embedded JSON, never re-encoded: decoding borrows them
//! from the frame and copies them once into [`Bytes`], encoding writes them verbatim. A
//! publication or message whose data is not JSON (binary published through `b64data` or
//! by a Protobuf client) never reaches a JSON client: the writer closes it with 3506 first
//! (`Codec::fits_push`, Centrifugo's rule). Any other payload that is not JSON is written
//! as a JSON string of its base64 form, so a frame is always valid JSON.

use std::collections::BTreeMap;

use base64::Engine;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{
    ClientError, ClientInfo, Command, CommandBody, ConnectRequest, ConnectResult, Expiry,
    HistoryRequest, Publication, Push, Reply, ReplyBody, StreamPosition, SubscribeRequest,
    SubscribeResult,
};

/// Why a JSON message could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON, or a field of the wrong type.
    #[error("malformed JSON command: {0}")]
    Malformed(#[from] serde_json::Error),
    /// A unidirectional connect request that is not one.
    #[error("not a connect request")]
    NotConnect,
}

#[derive(Deserialize)]
struct RawCommand<'a> {
    #[serde(default)]
    id: u32,
    #[serde(borrow)]
    connect: Option<RawConnect<'a>>,
    #[serde(borrow)]
    subscribe: Option<RawSubscribe<'a>>,
    unsubscribe: Option<RawChannel>,
    #[serde(borrow)]
    publish: Option<RawData<'a>>,
    presence: Option<RawChannel>,
    presence_stats: Option<RawChannel>,
    history: Option<RawHistory>,
    ping: Option<serde::de::IgnoredAny>,
    #[serde(borrow)]
    send: Option<RawData<'a>>,
    #[serde(borrow)]
    rpc: Option<RawData<'a>>,
    refresh: Option<RawToken>,
    sub_refresh: Option<RawToken>,
}

#[derive(Deserialize, Default)]
struct RawConnect<'a> {
    #[serde(default)]
    token: String,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
    #[serde(default, borrow)]
    subs: BTreeMap<String, RawSubscribe<'a>>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
struct RawSubscribe<'a> {
    #[serde(default)]
    channel: String,
    #[serde(default)]
    token: String,
    #[serde(default)]
    recover: bool,
    #[serde(default)]
    epoch: String,
    #[serde(default)]
    offset: u64,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
    #[serde(default)]
    positioned: bool,
    #[serde(default)]
    recoverable: bool,
    #[serde(default)]
    join_leave: bool,
    #[serde(default)]
    delta: String,
    #[serde(default)]
    flag: i64,
    #[serde(default, rename = "type")]
    kind: i32,
}

#[derive(Deserialize, Default)]
struct RawChannel {
    #[serde(default)]
    channel: String,
}

#[derive(Deserialize, Default)]
struct RawData<'a> {
    #[serde(default)]
    channel: String,
    #[serde(default)]
    method: String,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
struct RawHistory {
    #[serde(default)]
    channel: String,
    #[serde(default)]
    limit: i32,
    since: Option<RawPosition>,
    #[serde(default)]
    reverse: bool,
}

#[derive(Deserialize, Default)]
struct RawPosition {
    #[serde(default)]
    offset: u64,
    #[serde(default)]
    epoch: String,
}

#[derive(Deserialize, Default)]
struct RawToken {
    #[serde(default)]
    channel: String,
    #[serde(default)]
    token: String,
}

fn raw_bytes(raw: Option<&RawValue>) -> Option<Bytes> {
    raw.map(|v| Bytes::copy_from_slice(v.get().as_bytes()))
}

impl RawSubscribe<'_> {
    fn into_model(self) -> SubscribeRequest {
        SubscribeRequest {
            channel: self.channel,
            token: self.token,
            recover: self.recover,
            epoch: self.epoch,
            offset: self.offset,
            data: raw_bytes(self.data),
            positioned: self.positioned,
            recoverable: self.recoverable,
            join_leave: self.join_leave,
            delta: self.delta,
            flag: self.flag,
            kind: self.kind,
        }
    }
}

/// Decodes a unidirectional transport's connect request: a bare `ConnectRequest` object
/// (an empty body is an empty request), the `connect` member of a command on its own.
pub fn decode_connect_request(body: &[u8]) -> Result<crate::protocol::ConnectRequest, DecodeError> {
    let body = body.trim_ascii();
    let body = if body.is_empty() { &b"{}"[..] } else { body };
    // Wrapped into a command to reuse its decoder (and its checks).
    let mut wrapped = Vec::with_capacity(body.len() + 16);
    wrapped.extend_from_slice(b"{\"id\":1,\"connect\":");
    wrapped.extend_from_slice(body);
    wrapped.push(b'}');
    match decode_command(&wrapped)?.body {
        crate::protocol::CommandBody::Connect(req) => Ok(req),
        _ => Err(DecodeError::NotConnect),
    }
}

/// Decodes one JSON command (one line of a frame).
pub fn decode_command(line: &[u8]) -> Result<Command, DecodeError> {
    let raw: RawCommand<'_> = serde_json::from_slice(line)?;
    let body = if let Some(c) = raw.connect {
        CommandBody::Connect(ConnectRequest {
            token: c.token,
            data: raw_bytes(c.data),
            subs: c.subs.into_iter().map(|(k, v)| (k, v.into_model())).collect(),
            name: c.name,
            version: c.version,
            headers: c.headers,
        })
    } else if let Some(s) = raw.subscribe {
        CommandBody::Subscribe(s.into_model())
    } else if let Some(c) = raw.unsubscribe {
        CommandBody::Unsubscribe(super::ChannelRequest { channel: c.channel })
    } else if let Some(p) = raw.publish {
        CommandBody::Publish(super::PublishRequest { channel: p.channel, data: raw_bytes(p.data) })
    } else if let Some(c) = raw.presence {
        CommandBody::Presence(super::ChannelRequest { channel: c.channel })
    } else if let Some(c) = raw.presence_stats {
        CommandBody::PresenceStats(super::ChannelRequest { channel: c.channel })
    } else if let Some(h) = raw.history {
        CommandBody::History(HistoryRequest {
            channel: h.channel,
            limit: h.limit,
            since: h.since.map(|p| StreamPosition { offset: p.offset, epoch: p.epoch }),
            reverse: h.reverse,
        })
    } else if raw.ping.is_some() {
        CommandBody::Ping
    } else if let Some(s) = raw.send {
        CommandBody::Send(super::SendRequest { data: raw_bytes(s.data) })
    } else if let Some(r) = raw.rpc {
        CommandBody::Rpc(super::RpcRequest { method: r.method, data: raw_bytes(r.data) })
    } else if let Some(r) = raw.refresh {
        CommandBody::Refresh(super::RefreshRequest { token: r.token })
    } else if let Some(r) = raw.sub_refresh {
        CommandBody::SubRefresh(super::SubRefreshRequest { channel: r.channel, token: r.token })
    } else if raw.id == 0 && is_empty_object(line) {
        CommandBody::Empty
    } else {
        CommandBody::Unknown
    };
    Ok(Command { id: raw.id, body })
}

fn is_empty_object(line: &[u8]) -> bool {
    let inner: Vec<u8> = line.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
    inner == b"{}"
}

/// Appends a JSON string literal (quoted and escaped).
fn put_str(out: &mut Vec<u8>, s: &str) {
    // Writing into a Vec cannot fail, and a &str always serializes.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Appends a payload: verbatim when it is JSON, as a base64 string otherwise.
fn put_data(out: &mut Vec<u8>, data: &[u8]) {
    if is_json(data) {
        // Newlines inside JSON whitespace would split the frame; replace them.
        if data.contains(&b'\n') {
            out.extend(data.iter().map(|b| if *b == b'\n' { b' ' } else { *b }));
        } else {
            out.extend_from_slice(data);
        }
    } else {
        put_str(out, &base64::engine::general_purpose::STANDARD.encode(data));
    }
}

/// Deepest nesting of arrays and objects accepted in JSON from clients and the server API
/// (publication, rpc, connect and subscribe data; API params), in levels: `1` and `{}` are
/// depth 0 and 1, `[[1]]` is 2. Payloads are stored and relayed verbatim as raw JSON, so
/// without a bound one publish could hand every subscriber a document its parser refuses
/// or overflows its stack on (serde_json's own `Value` limit is 128; browsers vary). Real
/// data rarely nests past a dozen levels; 64 leaves room and stays under those limits.
pub const MAX_JSON_DEPTH: usize = 64;

/// Whether the JSON text `data` nests arrays and objects deeper than `limit` levels.
///
/// A single byte scan that stops at the first level over the limit: brackets inside strings
/// do not count (backslash escapes honoured). It does not validate; run it on text already
/// known to be JSON, or treat a `true` on other bytes as "not acceptably shallow JSON".
pub fn nested_deeper_than(data: &[u8], limit: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in data {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Whether `data` is one valid JSON value.
pub fn is_json(data: &[u8]) -> bool {
    serde_json::from_slice::<&RawValue>(data).is_ok()
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(v.to_string().as_bytes());
}

/// A small writer for `{"a":…,"b":…}` that handles the commas.
struct Obj<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Obj<'a> {
    fn open(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Self { out, first: true }
    }

    fn key(&mut self, k: &str) -> &mut Vec<u8> {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(k.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.out
    }

    fn str(&mut self, k: &str, v: &str) {
        if !v.is_empty() {
            put_str(self.key(k), v);
        }
    }

    fn u64(&mut self, k: &str, v: u64) {
        if v != 0 {
            put_u64(self.key(k), v);
        }
    }

    fn flag(&mut self, k: &str, v: bool) {
        if v {
            self.key(k).extend_from_slice(b"true");
        }
    }

    fn data(&mut self, k: &str, v: Option<&Bytes>) {
        if let Some(v) = v {
            put_data(self.key(k), v);
        }
    }

    fn close(self) {
        self.out.push(b'}');
    }
}

/// Appends a client info object (`{"user":…,"client":…,"conn_info":…}`).
pub fn put_client_info(out: &mut Vec<u8>, info: &ClientInfo) {
    let mut o = Obj::open(out);
    o.str("user", &info.user);
    o.str("client", &info.client);
    o.data("conn_info", info.conn_info.as_ref());
    o.data("chan_info", info.chan_info.as_ref());
    o.close();
}

/// Appends a publication object (`{"data":…,"offset":…}`).
pub fn put_publication(out: &mut Vec<u8>, p: &Publication) {
    put_publication_as(out, p, false);
}

/// Appends a publication object; with `string_data` (a subscription that negotiated
/// delta compression) its `data` is a JSON string holding the bytes as text — the fossil
/// patch, or the full payload's JSON text — which the SDKs parse themselves. The caller
/// checks [`is_delta_text`] first; bytes that are not UTF-8 are written as `""`.
pub fn put_publication_as(out: &mut Vec<u8>, p: &Publication, string_data: bool) {
    let mut o = Obj::open(out);
    if string_data {
        put_str(o.key("data"), std::str::from_utf8(&p.data).unwrap_or_default());
    } else {
        put_data(o.key("data"), &p.data);
    }
    if let Some(info) = &p.info {
        put_client_info(o.key("info"), info);
    }
    o.u64("offset", p.offset);
    if !p.tags.is_empty() {
        let out = o.key("tags");
        let mut t = Obj::open(out);
        for (k, v) in &p.tags {
            put_str(t.key_escaped(), k);
            t.out.push(b':');
            put_str(t.out, v);
        }
        t.close();
    }
    o.flag("delta", p.delta);
    o.close();
}

impl Obj<'_> {
    /// Starts an entry whose key the caller writes (escaped) itself.
    fn key_escaped(&mut self) -> &mut Vec<u8> {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out
    }
}

fn put_expiry(o: &mut Obj<'_>, e: Expiry) {
    o.flag("expires", e.expires);
    o.u64("ttl", u64::from(e.ttl));
}

/// Whether `data` can travel as a JSON string to a delta subscriber: UTF-8 text (a JSON
/// payload always is; a fossil patch of one is unless a literal splits a character).
pub fn is_delta_text(data: &[u8]) -> bool {
    std::str::from_utf8(data).is_ok()
}

fn put_publications(o: &mut Obj<'_>, key: &str, pubs: &[super::PublicationRef], string_data: bool) {
    if pubs.is_empty() {
        return;
    }
    let out = o.key(key);
    out.push(b'[');
    for (i, p) in pubs.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        put_publication_as(out, p, string_data);
    }
    out.push(b']');
}

fn put_subscribe_result(out: &mut Vec<u8>, r: &SubscribeResult) {
    let mut o = Obj::open(out);
    put_expiry(&mut o, r.expiry);
    o.flag("recoverable", r.recoverable);
    o.str("epoch", &r.epoch);
    put_publications(&mut o, "publications", &r.publications, r.delta);
    o.flag("recovered", r.recovered);
    o.u64("offset", r.offset);
    o.flag("positioned", r.positioned);
    o.data("data", r.data.as_ref());
    o.flag("was_recovering", r.was_recovering);
    o.flag("delta", r.delta);
    o.close();
}

fn put_connect_result(out: &mut Vec<u8>, r: &ConnectResult) {
    let mut o = Obj::open(out);
    o.str("client", &r.client);
    o.str("version", &r.version);
    put_expiry(&mut o, r.expiry);
    o.data("data", r.data.as_ref());
    if !r.subs.is_empty() {
        let out = o.key("subs");
        let mut s = Obj::open(out);
        for (channel, sub) in &r.subs {
            let out = s.key_escaped();
            put_str(out, channel);
            out.push(b':');
            put_subscribe_result(out, sub);
        }
        s.close();
    }
    o.u64("ping", u64::from(r.ping));
    o.flag("pong", r.pong);
    o.str("session", &r.session);
    o.str("node", &r.node);
    o.close();
}

/// Appends one reply.
pub fn encode_reply(out: &mut Vec<u8>, reply: &Reply) {
    let mut o = Obj::open(out);
    o.u64("id", u64::from(reply.id));
    match &reply.body {
        ReplyBody::Error(e) => put_error(o.key("error"), *e),
        ReplyBody::Connect(r) => put_connect_result(o.key("connect"), r),
        ReplyBody::Subscribe(r) => put_subscribe_result(o.key("subscribe"), r),
        ReplyBody::Unsubscribe => o.key("unsubscribe").extend_from_slice(b"{}"),
        ReplyBody::Publish => o.key("publish").extend_from_slice(b"{}"),
        ReplyBody::Ping => o.key("ping").extend_from_slice(b"{}"),
        ReplyBody::Presence(p) => {
            let out = o.key("presence");
            let mut r = Obj::open(out);
            let out = r.key("presence");
            let mut m = Obj::open(out);
            for (client, info) in &p.presence {
                let out = m.key_escaped();
                put_str(out, client);
                out.push(b':');
                put_client_info(out, info);
            }
            m.close();
            r.close();
        }
        ReplyBody::PresenceStats(s) => {
            let out = o.key("presence_stats");
            out.extend_from_slice(
                format!("{{\"num_clients\":{},\"num_users\":{}}}", s.num_clients, s.num_users)
                    .as_bytes(),
            );
        }
        ReplyBody::History(h) => {
            let out = o.key("history");
            let mut r = Obj::open(out);
            put_publications(&mut r, "publications", &h.publications, false);
            r.str("epoch", &h.epoch);
            r.u64("offset", h.offset);
            r.close();
        }
        ReplyBody::Rpc(data) => {
            let out = o.key("rpc");
            let mut r = Obj::open(out);
            r.data("data", data.as_ref());
            r.close();
        }
        ReplyBody::Refresh(r) => {
            let out = o.key("refresh");
            let mut x = Obj::open(out);
            x.str("client", &r.client);
            x.str("version", &r.version);
            put_expiry(&mut x, r.expiry);
            x.close();
        }
        ReplyBody::SubRefresh(e) => {
            let out = o.key("sub_refresh");
            let mut x = Obj::open(out);
            put_expiry(&mut x, *e);
            x.close();
        }
    }
    o.close();
}

/// Appends an error object `{"code":…,"message":…}` (plus `temporary` when set).
pub fn put_error(out: &mut Vec<u8>, e: ClientError) {
    let mut o = Obj::open(out);
    o.u64("code", u64::from(e.code()));
    o.str("message", e.message());
    o.flag("temporary", e.temporary());
    o.close();
}

/// Appends a publication push for a subscription that negotiated delta compression:
/// `data` as a JSON string (see [`put_publication_as`]).
pub fn encode_delta_publication_push(out: &mut Vec<u8>, p: &Publication, wrapped: bool) {
    if wrapped {
        out.extend_from_slice(b"{\"push\":");
    }
    let mut o = Obj::open(out);
    o.str("channel", &p.channel);
    put_publication_as(o.key("pub"), p, true);
    o.close();
    if wrapped {
        out.push(b'}');
    }
}

/// Appends a push. `wrapped` puts it in `{"push":…}` as bidirectional transports need;
/// unidirectional transports send the bare push object.
pub fn encode_push(out: &mut Vec<u8>, push: &Push, wrapped: bool) {
    if wrapped {
        out.extend_from_slice(b"{\"push\":");
    }
    let mut o = Obj::open(out);
    match push {
        Push::Publication(p) => {
            o.str("channel", &p.channel);
            put_publication(o.key("pub"), p);
        }
        Push::Join { channel, info } | Push::Leave { channel, info } => {
            o.str("channel", channel);
            let key = if matches!(push, Push::Join { .. }) { "join" } else { "leave" };
            let out = o.key(key);
            let mut j = Obj::open(out);
            put_client_info(j.key("info"), info);
            j.close();
        }
        Push::Unsubscribe { channel, reason } => {
            o.str("channel", channel);
            let out = o.key("unsubscribe");
            let mut u = Obj::open(out);
            u.u64("code", u64::from(reason.code()));
            u.str("reason", reason.reason());
            u.close();
        }
        Push::Subscribe { channel, result } => {
            o.str("channel", channel);
            let out = o.key("subscribe");
            let mut s = Obj::open(out);
            s.flag("recoverable", result.recoverable);
            s.str("epoch", &result.epoch);
            s.u64("offset", result.offset);
            s.flag("positioned", result.positioned);
            s.data("data", result.data.as_ref());
            s.close();
        }
        Push::Message(data) => {
            let out = o.key("message");
            let mut m = Obj::open(out);
            m.data("data", Some(data));
            m.close();
        }
        Push::Connect(r) => put_connect_result(o.key("connect"), r),
        Push::Disconnect(d) => {
            let out = o.key("disconnect");
            let mut x = Obj::open(out);
            x.u64("code", u64::from(d.code));
            x.str("reason", &d.reason);
            x.close();
        }
        Push::Refresh(e) => {
            let out = o.key("refresh");
            let mut x = Obj::open(out);
            put_expiry(&mut x, *e);
            x.close();
        }
    }
    o.close();
    if wrapped {
        out.push(b'}');
    }
}

/// The server's ping: an empty object.
pub const PING: &[u8] = b"{}";

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::protocol::{Disconnect, UnsubscribeReason};

    fn decode(s: &str) -> Command {
        decode_command(s.as_bytes()).expect("decodes")
    }

    #[test]
    fn decodes_connect_with_raw_data_and_subs() {
        let c = decode(
            r#"{"id":1,"connect":{"token":"t","data":{"a":[1, 2]},"name":"js","subs":{"ch":{"recover":true,"offset":5,"epoch":"e"}}}}"#,
        );
        assert_eq!(c.id, 1);
        let CommandBody::Connect(req) = c.body else { panic!("not connect") };
        assert_eq!(req.token, "t");
        assert_eq!(req.data.as_deref(), Some(&br#"{"a":[1, 2]}"#[..]));
        assert_eq!(req.subs["ch"].offset, 5);
        assert!(req.subs["ch"].recover);
    }

    #[test]
    fn empty_object_is_pong_and_unknown_key_is_unknown() {
        assert_eq!(decode("{}").body, CommandBody::Empty);
        assert_eq!(decode(" { } ").body, CommandBody::Empty);
        assert_eq!(decode(r#"{"id":3,"frobnicate":{}}"#).body, CommandBody::Unknown);
        assert_eq!(decode(r#"{"id":3}"#).body, CommandBody::Unknown);
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        for bad in ["", "{", "[]", "null", r#"{"id":-1}"#, r#"{"id":"x"}"#, r#"{"subscribe":5}"#, "\u{0}"] {
            assert!(decode_command(bad.as_bytes()).is_err(), "{bad:?} should not decode");
        }
        assert!(decode_command(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn encodes_publication_push_with_raw_data() {
        let p = Arc::new(Publication {
            channel: "news".into(),
            data: Bytes::from_static(br#"{"x":1}"#),
            offset: 7,
            ..Default::default()
        });
        let mut out = Vec::new();
        encode_push(&mut out, &Push::Publication(p), true);
        assert_eq!(out, br#"{"push":{"channel":"news","pub":{"data":{"x":1},"offset":7}}}"#);
    }

    #[test]
    fn nesting_depth_counts_brackets_outside_strings_only() {
        let nest = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(!nested_deeper_than(b"1", 0));
        assert!(nested_deeper_than(b"{}", 0));
        assert!(!nested_deeper_than(nest(MAX_JSON_DEPTH).as_bytes(), MAX_JSON_DEPTH));
        assert!(nested_deeper_than(nest(MAX_JSON_DEPTH + 1).as_bytes(), MAX_JSON_DEPTH));
        assert!(nested_deeper_than(nest(32_000).as_bytes(), MAX_JSON_DEPTH));
        // Brackets in strings, escaped quotes and escaped backslashes before a quote.
        let s = format!(r#"{{"a":"{}","b":"\"[[[","c":"\\","d":[1]}}"#, "[".repeat(100));
        assert!(!nested_deeper_than(s.as_bytes(), 2));
        assert!(nested_deeper_than(s.as_bytes(), 1));
        // Siblings do not add up.
        assert!(!nested_deeper_than(b"[[1],[2],{\"x\":3}]", 2));
    }

    #[test]
    fn binary_data_becomes_a_base64_string() {
        let mut out = Vec::new();
        put_data(&mut out, &[0xff, 0x00]);
        assert_eq!(out, br#""/wA=""#);
    }

    #[test]
    fn newlines_inside_data_never_split_a_frame() {
        let mut out = Vec::new();
        put_data(&mut out, b"{\"a\":\n1}");
        assert!(!out.contains(&b'\n'));
        assert!(is_json(&out));
    }

    #[test]
    fn encodes_error_reply_and_disconnect_push() {
        let mut out = Vec::new();
        encode_reply(&mut out, &Reply { id: 2, body: ReplyBody::Error(ClientError::PermissionDenied) });
        assert_eq!(out, br#"{"id":2,"error":{"code":103,"message":"permission denied"}}"#);
        out.clear();
        encode_push(&mut out, &Push::Disconnect(Disconnect::SHUTDOWN), true);
        assert_eq!(out, br#"{"push":{"disconnect":{"code":3001,"reason":"shutdown"}}}"#);
        out.clear();
        encode_push(
            &mut out,
            &Push::Unsubscribe { channel: "c".into(), reason: UnsubscribeReason::Server },
            false,
        );
        assert_eq!(out, br#"{"channel":"c","unsubscribe":{"code":2000,"reason":"server unsubscribe"}}"#);
    }

    #[test]
    fn every_encoded_reply_is_valid_json() {
        let result = ConnectResult {
            client: "c\"1".into(),
            version: "v".into(),
            ping: 25,
            pong: true,
            subs: [("a\"b".to_string(), SubscribeResult::default())].into(),
            ..Default::default()
        };
        let mut out = Vec::new();
        encode_reply(&mut out, &Reply { id: 1, body: ReplyBody::Connect(Box::new(result)) });
        let v: serde_json::Value = serde_json::from_slice(&out).expect("valid json");
        assert_eq!(v["connect"]["ping"], 25);
        assert_eq!(v["connect"]["subs"]["a\"b"], serde_json::json!({}));
    }
}
