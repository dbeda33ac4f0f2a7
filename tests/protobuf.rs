//! Centrifugo's Protobuf client protocol over every transport that serves it: WebSocket
//! (subprotocol or query), HTTP-streaming with Protobuf `/emulation` posts, and SSE's
//! refusal. Raw clients here (prost over the crate's own message types), so the bytes on
//! the wire are what is checked; the real SDKs are driven in tests/interop.

mod common;

use bytes::Bytes;
use common::{TestServer, WAIT, start, token};
use futures_util::{SinkExt, StreamExt};
use prost::Message as _;
use serde_json::{Value, json};
use tidewire::protocol::protobuf::messages as pb;
use tidewire::protocol::protobuf::put_delimited;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

type WsStream = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Delimited commands, as the SDKs frame them.
fn frame(cmds: &[pb::Command]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in cmds {
        put_delimited(&mut out, c);
    }
    out
}

/// Splits the server's bytes into replies (each delimited); panics on anything else.
fn replies(mut buf: &[u8]) -> Vec<pb::Reply> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        out.push(pb::Reply::decode_length_delimited(&mut buf).expect("a delimited reply"));
    }
    out
}

fn connect(id: u32, user: &str) -> pb::Command {
    pb::Command { id, connect: Some(pb::ConnectRequest { token: token(user, 3600), ..Default::default() }), ..Default::default() }
}

fn subscribe(id: u32, channel: &str) -> pb::Command {
    pb::Command { id, subscribe: Some(pb::SubscribeRequest { channel: channel.into(), ..Default::default() }), ..Default::default() }
}

/// A raw Protobuf WebSocket client.
struct PbWs {
    ws: WsStream,
    pending: Vec<pb::Reply>,
}

impl PbWs {
    /// Opens `/connection/websocket` + `query`, offering `subprotocol` if any; returns the
    /// client and the subprotocol the server chose.
    async fn open(srv: &TestServer, query: &str, subprotocol: Option<&str>) -> (Self, Option<String>) {
        let mut req = format!("{}{query}", srv.ws_url()).into_client_request().expect("request");
        if let Some(p) = subprotocol {
            req.headers_mut().insert("sec-websocket-protocol", p.parse().expect("header"));
        }
        let (ws, resp) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req)).await.expect("in time").expect("upgrade");
        let chosen = resp.headers().get("sec-websocket-protocol").map(|v| v.to_str().expect("ascii").to_owned());
        (Self { ws, pending: Vec::new() }, chosen)
    }

    async fn connected(srv: &TestServer, user: &str) -> Self {
        let (mut c, _) = Self::open(srv, "", Some("centrifuge-protobuf")).await;
        c.send(&[connect(1, user)]).await;
        assert!(c.reply(1).await.connect.is_some(), "connected");
        c
    }

    async fn send(&mut self, cmds: &[pb::Command]) {
        self.send_raw(frame(cmds)).await;
    }

    async fn send_raw(&mut self, bytes: Vec<u8>) {
        self.ws.send(Message::Binary(bytes.into())).await.expect("send");
    }

    /// The next reply (or push, or ping); None once the server closed.
    async fn next(&mut self) -> Option<pb::Reply> {
        loop {
            if !self.pending.is_empty() {
                return Some(self.pending.remove(0));
            }
            match tokio::time::timeout(WAIT, self.ws.next()).await.expect("message in time")?.ok()? {
                Message::Binary(b) => self.pending = replies(&b),
                Message::Text(t) => panic!("a Protobuf connection got a text frame: {t}"),
                Message::Close(_) => return None,
                _ => {}
            }
        }
    }

    async fn reply(&mut self, id: u32) -> pb::Reply {
        loop {
            let r = self.next().await.unwrap_or_else(|| panic!("closed before reply {id}"));
            if r.id == id {
                return r;
            }
        }
    }

    /// The next publication push, skipping anything else.
    async fn publication(&mut self) -> (String, pb::Publication) {
        loop {
            let r = self.next().await.expect("open");
            if let Some(push) = r.push
                && let Some(p) = push.r#pub
            {
                return (push.channel, p);
            }
        }
    }

    /// Reads until the close frame; returns its code.
    async fn closed(&mut self) -> Option<u16> {
        loop {
            match tokio::time::timeout(WAIT, self.ws.next()).await.expect("close in time") {
                Some(Ok(Message::Close(Some(f)))) => {
                    return Some(match f.code {
                        CloseCode::Library(c) | CloseCode::Bad(c) | CloseCode::Iana(c) => c,
                        other => u16::from(other),
                    });
                }
                Some(Ok(Message::Close(None))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => {}
            }
        }
    }
}

#[tokio::test]
async fn subprotocol_and_query_select_protobuf_and_the_subprotocol_is_echoed() {
    let srv = start("").await;
    for (query, offer, want) in [
        ("", Some("centrifuge-protobuf"), Some("centrifuge-protobuf")),
        ("?format=protobuf", None, None),
        ("?cf_protocol=protobuf", None, None),
    ] {
        let (mut c, chosen) = PbWs::open(&srv, query, offer).await;
        assert_eq!(chosen.as_deref(), want, "{query}");
        c.send(&[connect(1, "u")]).await;
        let r = c.reply(1).await;
        let result = r.connect.clone().unwrap_or_else(|| panic!("{query}: {r:?}"));
        assert!(!result.client.is_empty());
        assert!(result.ping > 0);
    }
    // centrifuge-json is echoed too and means JSON.
    let mut req = srv.ws_url().into_client_request().expect("request");
    req.headers_mut().insert("sec-websocket-protocol", "centrifuge-json".parse().expect("header"));
    let (mut ws, resp) = tokio_tungstenite::connect_async(req).await.expect("upgrade");
    assert_eq!(resp.headers()["sec-websocket-protocol"], "centrifuge-json");
    ws.send(Message::Text(json!({"id": 1, "connect": {"token": token("u", 60)}}).to_string().into())).await.expect("send");
    let Some(Ok(Message::Text(t))) = ws.next().await else { panic!("a JSON reply") };
    assert!(t.contains("\"connect\""), "{t}");
    srv.shutdown().await;
}

#[tokio::test]
async fn connect_subscribe_publish_history_presence_in_one_protobuf_session() {
    let srv = start(
        "[[channel.namespaces]]\nname = \"hist\"\nallow_subscribe_for_client = true\nallow_publish_for_subscriber = true\n\
         allow_history_for_subscriber = true\nallow_presence_for_subscriber = true\npresence = true\nhistory_size = 10\nhistory_ttl = \"60s\"\nallow_recovery = true\n",
    )
    .await;
    let (mut c, _) = PbWs::open(&srv, "", Some("centrifuge-protobuf")).await;
    // connect + subscribe in one frame, as the SDKs send them.
    let recoverable = pb::Command {
        id: 2,
        subscribe: Some(pb::SubscribeRequest { channel: "hist:a".into(), recoverable: true, flag: 1, ..Default::default() }),
        ..Default::default()
    };
    c.send(&[connect(1, "alice"), recoverable]).await;
    assert!(c.reply(1).await.connect.is_some());
    let sub = c.reply(2).await.subscribe.expect("subscribe result");
    assert!(sub.recoverable && !sub.epoch.is_empty(), "a recoverable subscription has an epoch: {sub:?}");

    // A binary client publish reaches the subscriber untouched.
    let data = Bytes::from_static(&[0, 0xff, b'\n', 7]);
    c.send(&[pb::Command {
        id: 3,
        publish: Some(pb::PublishRequest { channel: "hist:a".into(), data: data.clone(), ..Default::default() }),
        ..Default::default()
    }])
    .await;
    let (channel, p) = c.publication().await;
    assert_eq!((channel.as_str(), &p.data, p.offset), ("hist:a", &data, 1));
    assert_eq!(p.info.as_ref().map(|i| i.user.as_str()), Some("alice"));
    assert!(c.reply(3).await.publish.is_some());

    // An API publish of JSON reaches it as the JSON text.
    srv.publish("hist:a", json!({"n": 2})).await;
    let (_, p) = c.publication().await;
    assert_eq!(serde_json::from_slice::<Value>(&p.data).expect("json"), json!({"n": 2}));

    c.send(&[
        pb::Command {
            id: 4,
            history: Some(pb::HistoryRequest { channel: "hist:a".into(), limit: -1, ..Default::default() }),
            ..Default::default()
        },
        pb::Command { id: 5, presence: Some(pb::PresenceRequest { channel: "hist:a".into() }), ..Default::default() },
        pb::Command { id: 6, presence_stats: Some(pb::PresenceStatsRequest { channel: "hist:a".into() }), ..Default::default() },
        pb::Command { id: 7, ping: Some(pb::PingRequest {}), ..Default::default() },
        subscribe(8, "hist:a"),
    ])
    .await;
    let h = c.reply(4).await.history.expect("history");
    assert_eq!(h.publications.len(), 2);
    assert_eq!(h.publications[0].data, data);
    assert_eq!((h.offset, h.epoch), (2, sub.epoch));
    let presence = c.reply(5).await.presence.expect("presence");
    assert_eq!(presence.presence.iter().filter_map(|e| e.value.as_ref()).map(|i| i.user.as_str()).collect::<Vec<_>>(), ["alice"]);
    assert_eq!(c.reply(6).await.presence_stats, Some(pb::PresenceStatsResult { num_clients: 1, num_users: 1 }));
    assert!(c.reply(7).await.ping.is_some());
    let dup = c.reply(8).await.error.expect("already subscribed");
    assert_eq!(dup.code, 105);
    srv.shutdown().await;
}

#[tokio::test]
async fn pings_are_empty_replies_and_pongs_empty_commands() {
    let srv = start("[client]\nping_interval = \"600ms\"\npong_timeout = \"300ms\"").await;
    let mut c = PbWs::connected(&srv, "u").await;
    for _ in 0..2 {
        let ping = c.next().await.expect("a ping");
        assert_eq!(ping, pb::Reply::default(), "the ping is an empty Reply");
        c.send_raw(vec![0]).await; // an empty Command: the pong
    }
    // Without the pong the connection goes with 3012.
    assert_eq!(c.next().await, Some(pb::Reply::default()));
    assert_eq!(c.closed().await, Some(3012));
    srv.shutdown().await;
}

#[tokio::test]
async fn json_and_protobuf_subscribers_of_one_channel_each_get_their_codec() {
    let srv = start("").await;
    let mut pbc = PbWs::connected(&srv, "p").await;
    pbc.send(&[subscribe(2, "news")]).await;
    assert!(pbc.reply(2).await.subscribe.is_some());
    let (mut js, _) = srv.client("j").await;
    js.subscribe(2, "news").await;

    let payload = json!({"text": "héllo", "list": [1, null, {"deep": true}]});
    srv.publish("news", payload.clone()).await;
    assert_eq!(js.push("pub").await["pub"]["data"], payload);
    let (_, p) = pbc.publication().await;
    assert_eq!(serde_json::from_slice::<Value>(&p.data).expect("json bytes"), payload);

    // A JSON client's publish reaches the Protobuf one as its JSON text.
    js.send(&json!({"id": 3, "publish": {"channel": "news", "data": {"from": "json"}}})).await;
    let (_, p) = pbc.publication().await;
    assert_eq!(serde_json::from_slice::<Value>(&p.data).expect("json"), json!({"from": "json"}));

    // Binary data published through the API: raw bytes for Protobuf, 3506 for JSON.
    use base64::Engine;
    let raw = [0xde, 0xad, 0xbe, 0xef, 0];
    let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
    let (status, _) = srv.api("publish", json!({"channel": "news", "b64data": b64})).await;
    assert_eq!(status, 200);
    let (_, p) = pbc.publication().await;
    assert_eq!(&p.data[..], raw);
    assert_eq!(js.closed().await, common::Closed::Frame(3506, "inappropriate protocol".into()));
    srv.shutdown().await;
}

#[tokio::test]
async fn a_protobuf_client_publishing_binary_closes_json_subscribers_with_3506() {
    let srv = start("").await;
    let mut pbc = PbWs::connected(&srv, "p").await;
    let (mut js, _) = srv.client("j").await;
    js.subscribe(2, "chat:x").await;
    pbc.send(&[subscribe(2, "chat:x")]).await;
    pbc.reply(2).await;
    pbc.send(&[pb::Command {
        id: 3,
        publish: Some(pb::PublishRequest { channel: "chat:x".into(), data: Bytes::from_static(&[0xff]), ..Default::default() }),
        ..Default::default()
    }])
    .await;
    assert!(pbc.reply(3).await.publish.is_some());
    assert_eq!(js.closed().await, common::Closed::Frame(3506, "inappropriate protocol".into()));
    srv.shutdown().await;
}

#[tokio::test]
async fn malformed_protobuf_closes_with_a_defined_code() {
    let srv = start("[websocket]\nmessage_size_limit = 1024").await;
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("a varint that never ends", vec![0x80], 3501),
        ("a varint over 5 bytes", vec![0xff; 7], 3501),
        ("a length past the frame", vec![9, 0x08, 1], 3501),
        ("a wrong wire type (id as bytes)", vec![2, 0x0a, 0], 3501),
        ("a truncated field", vec![3, 0x2a, 9, 0], 3501),
        ("a frame over the size limit", vec![0; 2048], 1009),
        ("an empty frame", vec![], 3501),
    ];
    for (what, bytes, code) in cases {
        let mut c = PbWs::connected(&srv, "u").await;
        c.send_raw(bytes).await;
        assert_eq!(c.closed().await, Some(code), "{what}");
    }
    // Unknown fields are skipped, as Protobuf decoders do: the command still works.
    let mut c = PbWs::connected(&srv, "u").await;
    let mut body = pb::Command { id: 2, ping: Some(pb::PingRequest {}), ..Default::default() }.encode_to_vec();
    body.extend_from_slice(&[0xf8, 0x01, 5]); // field 31, varint 5
    let mut bytes = vec![body.len() as u8];
    bytes.extend_from_slice(&body);
    c.send_raw(bytes).await;
    assert!(c.reply(2).await.ping.is_some());
    // Before connect, anything but connect is 3501 as in JSON.
    let (mut c, _) = PbWs::open(&srv, "", Some("centrifuge-protobuf")).await;
    c.send(&[subscribe(1, "news")]).await;
    assert_eq!(c.closed().await, Some(3501));
    srv.shutdown().await;
}

#[tokio::test]
async fn a_bad_token_is_3500_and_an_expired_one_error_109() {
    let srv = start("").await;
    let (mut c, _) = PbWs::open(&srv, "", Some("centrifuge-protobuf")).await;
    c.send(&[pb::Command { id: 1, connect: Some(pb::ConnectRequest { token: "garbage".into(), ..Default::default() }), ..Default::default() }]).await;
    assert_eq!(c.closed().await, Some(3500));
    let (mut c, _) = PbWs::open(&srv, "", Some("centrifuge-protobuf")).await;
    c.send(&[pb::Command { id: 1, connect: Some(pb::ConnectRequest { token: token("u", -10), ..Default::default() }), ..Default::default() }]).await;
    let e = c.reply(1).await.error.expect("an error reply");
    assert_eq!((e.code, e.message.as_str()), (109, "token expired"));
    srv.shutdown().await;
}

// --- HTTP-streaming and SSE -----------------------------------------------------------

/// A Protobuf HTTP-stream response, read as delimited replies.
struct PbStream {
    resp: reqwest::Response,
    buf: Vec<u8>,
}

impl PbStream {
    async fn open(srv: &TestServer, cmds: &[pb::Command]) -> Self {
        let resp = srv
            .http
            .post(srv.url("/connection/http_stream"))
            .header("content-type", "application/octet-stream")
            .body(frame(cmds))
            .send()
            .await
            .expect("stream request");
        assert_eq!(resp.status().as_u16(), 200);
        assert_eq!(resp.headers()["content-type"], "application/octet-stream");
        Self { resp, buf: Vec::new() }
    }

    async fn next(&mut self) -> Option<pb::Reply> {
        loop {
            let mut view = &self.buf[..];
            if let Ok(len) = prost::decode_length_delimiter(&mut view)
                && view.len() >= len
            {
                let header = self.buf.len() - view.len();
                let reply = pb::Reply::decode(&view[..len]).expect("a reply");
                self.buf.drain(..header + len);
                return Some(reply);
            }
            match tokio::time::timeout(WAIT, self.resp.chunk()).await.expect("data in time") {
                Ok(Some(chunk)) => self.buf.extend_from_slice(&chunk),
                _ => return None,
            }
        }
    }

    async fn until(&mut self, pred: impl Fn(&pb::Reply) -> bool) -> pb::Reply {
        loop {
            let r = self.next().await.expect("stream open");
            if pred(&r) {
                return r;
            }
        }
    }
}

async fn emulate(srv: &TestServer, session: &str, node: &str, cmds: &[pb::Command]) -> u16 {
    let body = pb::EmulationRequest { node: node.into(), session: session.into(), data: Bytes::from(frame(cmds)) };
    srv.http
        .post(srv.url("/emulation"))
        .header("content-type", "application/octet-stream")
        .body(body.encode_to_vec())
        .send()
        .await
        .expect("emulation")
        .status()
        .as_u16()
}

#[tokio::test]
async fn http_stream_in_protobuf_with_protobuf_emulation() {
    let srv = start("").await;
    let mut s = PbStream::open(&srv, &[connect(1, "u"), subscribe(2, "news")]).await;
    let c = s.next().await.expect("connect").connect.expect("connect result");
    assert!(!c.session.is_empty() && !c.node.is_empty(), "emulation needs session and node");
    assert!(s.next().await.expect("subscribe").subscribe.is_some());

    srv.publish("news", json!({"a": 1})).await;
    let r = s.until(|r| r.push.is_some()).await;
    let p = r.push.and_then(|p| p.r#pub).expect("pub");
    assert_eq!(&p.data[..], br#"{"a":1}"#);

    let publish = pb::Command {
        id: 3,
        publish: Some(pb::PublishRequest { channel: "news".into(), data: Bytes::from_static(&[1, 2, 3]), ..Default::default() }),
        ..Default::default()
    };
    assert_eq!(emulate(&srv, &c.session, &c.node, &[publish, subscribe(4, "chat:z")]).await, 204);
    let p = s.until(|r| r.push.is_some()).await.push.and_then(|p| p.r#pub).expect("pub");
    assert_eq!(&p.data[..], [1, 2, 3]);
    assert!(s.until(|r| r.id == 3).await.publish.is_some());
    assert!(s.until(|r| r.id == 4).await.subscribe.is_some());

    // Bad emulation bodies: 400; an unknown session: 404.
    let bad = srv.http.post(srv.url("/emulation")).header("content-type", "application/octet-stream").body(vec![0xff]).send().await.expect("req");
    assert_eq!(bad.status().as_u16(), 400);
    assert_eq!(emulate(&srv, "nope", &c.node, &[subscribe(5, "x")]).await, 404);

    // The server's disconnect is a Protobuf push before the stream ends.
    let (status, _) = srv.api("disconnect", json!({"user": "u"})).await;
    assert_eq!(status, 200);
    let d = s.until(|r| r.push.as_ref().is_some_and(|p| p.disconnect.is_some())).await;
    assert_eq!(d.push.and_then(|p| p.disconnect).map(|d| d.code), Some(3503));
    assert!(s.next().await.is_none(), "the stream ends");
    srv.shutdown().await;
}

#[tokio::test]
async fn malformed_protobuf_connect_bodies_are_400_and_sse_is_json_only() {
    let srv = start("").await;
    for body in [vec![0x80], vec![2, 0x0a, 0], frame(&[subscribe(1, "news")]), Vec::new()] {
        let r = srv
            .http
            .post(srv.url("/connection/http_stream"))
            .header("content-type", "application/octet-stream")
            .body(body.clone())
            .send()
            .await
            .expect("req");
        assert_eq!(r.status().as_u16(), 400, "{body:?}");
    }
    let r = srv
        .http
        .post(srv.url("/connection/sse"))
        .header("content-type", "application/octet-stream")
        .body(frame(&[connect(1, "u")]))
        .send()
        .await
        .expect("req");
    assert_eq!(r.status().as_u16(), 400, "SSE refuses Protobuf");
    srv.shutdown().await;
}
