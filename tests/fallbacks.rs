//! HTTP-streaming, SSE, `/emulation` and the unidirectional transports, end to end.

mod common;

use std::time::Duration;

use common::{TestServer, start, token, token_with};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const UNI: &str = "[uni_sse]\nenabled = true\n[uni_http_stream]\nenabled = true\n[uni_websocket]\nenabled = true\n[client]\nallowed_origins = [\"http://app.example\"]\n";

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

/// Reads a streaming response as messages: `\n`-terminated JSON (http_stream) or SSE
/// `data:` events.
struct Stream {
    resp: reqwest::Response,
    buf: Vec<u8>,
    sse: bool,
}

impl Stream {
    async fn next(&mut self) -> Option<Value> {
        loop {
            let sep: &[u8] = if self.sse { b"\n\n" } else { b"\n" };
            if let Some(pos) = self.buf.windows(sep.len()).position(|w| w == sep) {
                let msg: Vec<u8> = self.buf.drain(..pos + sep.len()).collect();
                let text = String::from_utf8(msg).expect("utf8");
                let text = text.trim();
                if text.is_empty() {
                    continue;
                }
                let body = if self.sse { text.strip_prefix("data: ").expect("an SSE data line") } else { text };
                return Some(serde_json::from_str(body).expect("JSON message"));
            }
            match tokio::time::timeout(common::WAIT, self.resp.chunk()).await.expect("data in time") {
                Ok(Some(chunk)) => self.buf.extend_from_slice(&chunk),
                _ => return None,
            }
        }
    }

    async fn until(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        loop {
            let v = self.next().await.expect("stream open");
            if pred(&v) {
                return v;
            }
        }
    }
}

async fn open_sse(srv: &TestServer, path: &str, connect: &Value) -> Stream {
    let url = srv.url(&format!("{path}?cf_connect={}", encode(&connect.to_string())));
    let resp = srv.http.get(url).send().await.expect("sse request");
    assert_eq!(resp.status().as_u16(), 200);
    Stream { resp, buf: Vec::new(), sse: true }
}

async fn open_stream(srv: &TestServer, path: &str, body: &Value) -> Stream {
    let resp = srv.http.post(srv.url(path)).body(body.to_string()).send().await.expect("stream request");
    assert_eq!(resp.status().as_u16(), 200);
    Stream { resp, buf: Vec::new(), sse: false }
}

async fn emulate(srv: &TestServer, session: &str, node: &str, commands: &[Value]) -> u16 {
    let data = commands.iter().map(Value::to_string).collect::<Vec<_>>().join("\n");
    let body = json!({"session": session, "node": node, "data": data});
    srv.http.post(srv.url("/emulation")).json(&body).send().await.expect("emulation").status().as_u16()
}

fn connect_cmd(user: &str) -> Value {
    json!({"id": 1, "connect": {"token": token(user, 3600)}})
}

#[tokio::test]
async fn http_stream_with_emulation_subscribes_receives_and_publishes() {
    let srv = start("").await;
    let mut s = open_stream(&srv, "/connection/http_stream", &connect_cmd("u")).await;
    let headers = s.resp.headers().clone();
    assert_eq!(headers["x-accel-buffering"], "no");
    assert!(headers["cache-control"].to_str().expect("ascii").contains("no-store"));
    let connect = s.next().await.expect("connect reply")["connect"].clone();
    let (session, node) = (connect["session"].as_str().expect("session"), connect["node"].as_str().expect("node"));
    assert_eq!(emulate(&srv, session, node, &[json!({"id": 2, "subscribe": {"channel": "chat:e"}})]).await, 204);
    assert_eq!(s.until(|v| v["id"] == 2).await, json!({"id": 2, "subscribe": {}}));
    srv.publish("chat:e", json!({"via": "api"})).await;
    assert_eq!(s.until(|v| v.get("push").is_some()).await["push"]["pub"]["data"], json!({"via": "api"}));
    // A client publish through emulation reaches a WebSocket subscriber.
    let (mut ws, _) = srv.client("w").await;
    ws.subscribe(2, "chat:e").await;
    let status = emulate(&srv, session, node, &[json!({"id": 3, "publish": {"channel": "chat:e", "data": {"via": "emulation"}}})]).await;
    assert_eq!(status, 204);
    assert_eq!(ws.push("pub").await["pub"]["data"], json!({"via": "emulation"}));
    assert_eq!(s.until(|v| v["id"] == 3).await, json!({"id": 3, "publish": {}}));
    srv.shutdown().await;
}

#[tokio::test]
async fn sse_with_emulation_and_a_disconnect_push_at_the_end() {
    let srv = start("").await;
    let mut s = open_sse(&srv, "/connection/sse", &connect_cmd("sse-user")).await;
    assert_eq!(s.resp.headers()["content-type"], "text/event-stream; charset=utf-8");
    let connect = s.next().await.expect("connect reply")["connect"].clone();
    let (session, node) = (connect["session"].as_str().expect("session"), connect["node"].as_str().expect("node"));
    assert_eq!(emulate(&srv, session, node, &[json!({"id": 2, "subscribe": {"channel": "news"}})]).await, 204);
    s.until(|v| v["id"] == 2).await;
    srv.publish("news", json!("over sse")).await;
    assert_eq!(s.until(|v| v.get("push").is_some()).await["push"]["pub"]["data"], "over sse");
    srv.api("disconnect", json!({"user": "sse-user", "disconnect": {"code": 4001, "reason": "later"}})).await;
    let push = s.until(|v| v.get("push").is_some()).await;
    assert_eq!(push["push"]["disconnect"], json!({"code": 4001, "reason": "later"}));
    assert_eq!(s.next().await, None, "the stream ends after the disconnect push");
    // The session is gone: emulation for it is a 404.
    assert_eq!(emulate(&srv, session, node, &[json!({"id": 3, "ping": {}})]).await, 404);
    srv.shutdown().await;
}

#[tokio::test]
async fn pings_reach_sse_clients() {
    let srv = start("[client]\nping_interval = \"600ms\"\npong_timeout = \"0\"").await;
    let mut s = open_sse(&srv, "/connection/sse", &connect_cmd("p")).await;
    assert!(s.next().await.expect("connect")["connect"]["pong"].is_null(), "no pong expected when pong_timeout is 0");
    assert_eq!(s.next().await, Some(json!({})));
    srv.shutdown().await;
}

#[tokio::test]
async fn emulation_and_connect_bad_input() {
    let srv = start("").await;
    let mut s = open_stream(&srv, "/connection/http_stream", &connect_cmd("u")).await;
    let connect = s.next().await.expect("connect")["connect"].clone();
    let node = connect["node"].as_str().expect("node").to_owned();
    let post = |body: String| srv.http.post(srv.url("/emulation")).body(body).send();
    let status = |r: reqwest::Response| r.status().as_u16();
    assert_eq!(emulate(&srv, "no-such-session", &node, &[json!({"id": 9, "ping": {}})]).await, 404);
    assert_eq!(emulate(&srv, "s", "other-node", &[json!({"id": 9, "ping": {}})]).await, 404);
    assert_eq!(status(post(json!({"session": "s", "data": "{}"}).to_string()).await.expect("req")), 400, "missing node");
    assert_eq!(status(post("not json".into()).await.expect("req")), 400);
    let session = connect["session"].as_str().expect("session").to_owned();
    let bad_data = json!({"session": session, "node": node, "data": "{not a command"}).to_string();
    assert_eq!(status(post(bad_data).await.expect("req")), 400);
    let huge = json!({"session": "s", "node": node, "data": "x".repeat(200_000)}).to_string();
    match post(huge).await {
        Ok(r) => {
            // Answered before the body was read: the connection is not reused.
            assert_eq!(r.headers().get("connection").and_then(|v| v.to_str().ok()), Some("close"));
            assert_eq!(status(r), 413);
        }
        Err(e) => assert!(e.is_request() || e.is_body(), "{e}"),
    }
    // Malformed cf_connect, a missing one, and a connect request that is not connect.
    let get = |q: &str| srv.http.get(srv.url(&format!("/connection/sse{q}"))).send();
    assert_eq!(status(get("?cf_connect=%7Bnope").await.expect("req")), 400);
    assert_eq!(status(get("?cf_connect=%zz").await.expect("req")), 400);
    assert_eq!(status(get("").await.expect("req")), 400);
    let sub = encode(&json!({"id": 1, "subscribe": {"channel": "a"}}).to_string());
    assert_eq!(status(get(&format!("?cf_connect={sub}")).await.expect("req")), 400);
    // The session still works after all that.
    assert_eq!(emulate(&srv, &session, &node, &[json!({"id": 5, "ping": {}})]).await, 204);
    assert_eq!(s.until(|v| v["id"] == 5).await, json!({"id": 5, "ping": {}}));
    srv.shutdown().await;
}

#[tokio::test]
async fn cors_preflight_and_origin_checks() {
    let srv = start(UNI).await;
    let r = srv
        .http
        .request(reqwest::Method::OPTIONS, srv.url("/connection/http_stream"))
        .header("origin", "http://app.example")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .expect("preflight");
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(r.headers()["access-control-allow-origin"], "http://app.example");
    assert_eq!(r.headers()["access-control-max-age"], "300");
    assert_eq!(r.headers()["access-control-allow-headers"], "content-type");
    let r = srv
        .http
        .post(srv.url("/connection/http_stream"))
        .header("origin", "http://evil.example")
        .body(connect_cmd("u").to_string())
        .send()
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 403);
    let r = srv
        .http
        .post(srv.url("/connection/http_stream"))
        .header("origin", "http://app.example")
        .body(connect_cmd("u").to_string())
        .send()
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["access-control-allow-origin"], "http://app.example");
    srv.shutdown().await;
}

fn uni_token(user: &str, channels: &[&str]) -> String {
    token_with(&json!({"sub": user, "channels": channels}))
}

#[tokio::test]
async fn uni_sse_and_uni_http_stream_deliver_bare_pushes() {
    let srv = start(UNI).await;
    let mut sse = open_sse(&srv, "/connection/uni_sse", &json!({"token": uni_token("a", &["news"])})).await;
    let connect = sse.next().await.expect("connect push");
    assert!(connect["connect"]["client"].is_string(), "bare connect push: {connect}");
    assert_eq!(connect["connect"]["subs"], json!({"news": {}}));
    assert!(connect["connect"]["session"].is_string());
    let mut stream = open_stream(&srv, "/connection/uni_http_stream", &json!({"token": uni_token("b", &["news"])})).await;
    assert!(stream.next().await.expect("connect push")["connect"].is_object());
    srv.publish("news", json!({"n": 1})).await;
    for s in [&mut sse, &mut stream] {
        let p = s.until(|v| v.get("pub").is_some()).await;
        assert_eq!(p, json!({"channel": "news", "pub": {"data": {"n": 1}}}));
    }
    // Server API subscribe reaches a uni connection, as a bare subscribe push.
    srv.api("subscribe", json!({"user": "b", "channel": "chat:late"})).await;
    assert_eq!(stream.until(|v| v.get("subscribe").is_some()).await["channel"], "chat:late");
    srv.shutdown().await;
}

#[tokio::test]
async fn uni_connect_with_a_bad_token_gets_3500_then_the_end() {
    let srv = start(UNI).await;
    let mut s = open_stream(&srv, "/connection/uni_http_stream", &json!({"token": "garbage"})).await;
    assert_eq!(s.next().await, Some(json!({"disconnect": {"code": 3500, "reason": "invalid token"}})));
    assert_eq!(s.next().await, None);
    let r = srv.http.post(srv.url("/connection/uni_http_stream")).body("[1,2]").send().await.expect("req");
    assert_eq!(r.status().as_u16(), 400);
    srv.shutdown().await;
}

type WsStream = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next(ws: &mut WsStream) -> Value {
    match tokio::time::timeout(common::WAIT, ws.next()).await.expect("in time") {
        Some(Ok(Message::Text(t))) => serde_json::from_str::<Value>(&t).expect("json"),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn uni_websocket_by_first_message_and_by_cf_connect() {
    let srv = start(UNI).await;
    let url = format!("ws://{}/connection/uni_websocket", srv.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.expect("connect");
    ws.send(Message::Text(json!({"token": uni_token("u", &["news"])}).to_string().into())).await.expect("send");
    assert!(next(&mut ws).await["connect"].is_object());
    let q = encode(&json!({"token": uni_token("v", &["news"])}).to_string());
    let (mut ws2, _) = tokio_tungstenite::connect_async(format!("{url}?cf_connect={q}")).await.expect("connect");
    assert!(next(&mut ws2).await["connect"].is_object());
    srv.publish("news", json!(1)).await;
    srv.publish("news", json!(2)).await;
    for ws in [&mut ws, &mut ws2] {
        assert_eq!(next(ws).await["pub"]["data"], 1, "one push per frame");
        assert_eq!(next(ws).await["pub"]["data"], 2);
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    srv.shutdown().await;
}
