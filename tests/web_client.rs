//! The browser SDK and demo page (web-client/) against the server:
//! - the native-protocol byte vectors the TypeScript codec is unit-tested against
//!   (web-client/test/fixtures/native.json) are exactly what the Rust encoder produces;
//! - `tidewire serve` serves the embedded dist/ files, the demo token and info routes, and
//!   the demo ticker feeds `live:stats`; without a config file the binary is in demo mode;
//! - the demo page works in headless Debian Chromium (web-client/test/browser/, through
//!   playwright-core) over each transport forced in turn — WebTransport, WebSocket with
//!   WebTransport made unavailable, SSE with WebSocket blocked too — including API
//!   publications, a forced disconnect, reconnect and recovery, a second visitor's join and
//!   leave shown in the chat, the live chart's axes (units, tick values, each line on its
//!   labelled scale) read from its SVG, and a screenshot under test-output/.
//!
//! scripts/test.sh installs Chromium and web-client's pinned npm packages first.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use common::{API_KEY, SECRET};
use serde_json::{Value, json};
use tidewire::protocol::native::{
    ServerFrame, StreamHeader, WireClientInfo, WireCommand, WireCommandBody, WireConnect, WireConnectResult,
    WireHistory, WireHistoryResult, WirePublication, WirePush, WireReply, WireReplyBody, WireServerSub, WireSubscribe,
    WireSubscribeResult,
};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn body<T: serde::Serialize>(msg: &T) -> Vec<u8> {
    postcard::to_stdvec(msg).expect("postcard encodes")
}

/// A fixture: what the TypeScript side must encode a command into, or decode bytes into.
fn vector(name: &str, kind: &str, bytes: &[u8], expect: Value) -> Value {
    let mut v = serde_json::Map::new();
    v.insert("name".into(), name.into());
    v.insert("kind".into(), kind.into());
    v.insert("hex".into(), hex(bytes).into());
    v.insert("expect".into(), expect);
    Value::Object(v)
}

fn command(name: &str, id: u32, body_: WireCommandBody, js: Value) -> Value {
    vector(name, "command", &body(&WireCommand { id, body: body_ }), js)
}

fn frame(name: &str, f: &ServerFrame, js: Value) -> Value {
    vector(name, "server_frame", &body(f), js)
}

fn reply(id: u32, b: WireReplyBody) -> ServerFrame {
    ServerFrame::Reply(WireReply { id, body: b })
}

fn info(user: &str, client: &str) -> WireClientInfo {
    WireClientInfo { user: user.into(), client: client.into(), conn_info: None, chan_info: None }
}

fn json_bytes(v: &Value) -> Bytes {
    Bytes::from(v.to_string())
}

/// The fixture file's content: every command the SDK sends and every server message it
/// reads, once each, with the JavaScript value on the other side.
fn fixtures() -> Value {
    let empty_sub = json!({
        "expires": false, "ttl": 0, "recoverable": false, "epoch": "", "publications": [], "recovered": false,
        "offset": 0, "positioned": false, "was_recovering": false
    });
    let text = json!({"text": "héllo"});
    let pub_info = WireClientInfo {
        user: "alice".into(),
        client: "c-1".into(),
        conn_info: None,
        chan_info: Some(json_bytes(&json!({"role": "admin"}))),
    };
    let publication = WirePublication {
        offset: 5,
        data: json_bytes(&text),
        info: Some(pub_info.clone()),
        tags: vec![("k".into(), "v".into())],
        delta: false,
    };
    let publication_js = json!({
        "data": text, "offset": 5,
        "info": {"user": "alice", "client": "c-1", "chan_info": {"role": "admin"}},
        "tags": {"k": "v"}
    });
    let big = WirePublication { offset: 1 << 40, data: Bytes::from_static(b"42"), ..Default::default() };
    let binary = WirePublication { offset: 0, data: Bytes::from_static(&[0xff, 0x00, 0x7b]), ..Default::default() };
    let mut dgram = Vec::new();
    tidewire::protocol::native::put_datagram(&mut dgram, 300, &body(&big));

    let sub_result = WireSubscribeResult {
        recoverable: true,
        epoch: "ep".into(),
        publications: vec![publication.clone()],
        recovered: true,
        offset: 5,
        was_recovering: true,
        ..Default::default()
    };
    let sub_result_js = json!({
        "expires": false, "ttl": 0, "recoverable": true, "epoch": "ep", "publications": [publication_js.clone()],
        "recovered": true, "offset": 5, "positioned": false, "was_recovering": true
    });

    json!([
        // --- client → server: encodeCommand(expect) must give exactly these bytes ---
        command("connect", 1, WireCommandBody::Connect(WireConnect {
            token: "tok".into(), name: "tidewire-js".into(), version: "0.1.0".into(), ..Default::default()
        }), json!({"id": 1, "connect": {"token": "tok", "name": "tidewire-js", "version": "0.1.0"}})),
        command("connect with data", 1, WireCommandBody::Connect(WireConnect {
            data: Some(json_bytes(&json!({"a": 1}))), name: "n".into(), ..Default::default()
        }), json!({"id": 1, "connect": {"data": {"a": 1}, "name": "n"}})),
        command("subscribe fresh", 2, WireCommandBody::Subscribe(WireSubscribe {
            channel: "chat:lobby".into(), recoverable: true, join_leave: true, ..Default::default()
        }), json!({"id": 2, "subscribe": {"channel": "chat:lobby", "recoverable": true, "join_leave": true}})),
        command("subscribe recovering", 300, WireCommandBody::Subscribe(WireSubscribe {
            channel: "chat:lobby".into(), recover: true, epoch: "abcd".into(), offset: 300, recoverable: true,
            ..Default::default()
        }), json!({"id": 300, "subscribe": {"channel": "chat:lobby", "recover": true, "epoch": "abcd", "offset": 300, "recoverable": true}})),
        command("unsubscribe", 4, WireCommandBody::Unsubscribe("news".into()),
            json!({"id": 4, "unsubscribe": {"channel": "news"}})),
        command("publish", 5, WireCommandBody::Publish("chat:lobby".into(), json_bytes(&text)),
            json!({"id": 5, "publish": {"channel": "chat:lobby", "data": text}})),
        command("presence", 6, WireCommandBody::Presence("chat:lobby".into()),
            json!({"id": 6, "presence": {"channel": "chat:lobby"}})),
        command("presence stats", 7, WireCommandBody::PresenceStats("chat:lobby".into()),
            json!({"id": 7, "presence_stats": {"channel": "chat:lobby"}})),
        command("history newest first", 8, WireCommandBody::History(WireHistory {
            channel: "chat:lobby".into(), limit: 50, since: None, reverse: true
        }), json!({"id": 8, "history": {"channel": "chat:lobby", "limit": 50, "reverse": true}})),
        command("history since, no limit", 9, WireCommandBody::History(WireHistory {
            channel: "c".into(), limit: -1, since: Some((7, "e".into())), reverse: false
        }), json!({"id": 9, "history": {"channel": "c", "limit": -1, "since": {"offset": 7, "epoch": "e"}}})),
        command("refresh", 10, WireCommandBody::Refresh("t2".into()),
            json!({"id": 10, "refresh": {"token": "t2"}})),
        command("ping", 2_147_483_647, WireCommandBody::Ping, json!({"id": 2_147_483_647u32, "ping": {}})),
        command("pong", 0, WireCommandBody::Pong, json!({})),

        // --- server → client: decodeServerFrame(bytes) must give expect ---
        frame("connect reply", &reply(1, WireReplyBody::Connect(WireConnectResult {
            client: "c1".into(), version: "0.1.0".into(), expires: true, ttl: 3600, ping: 25, pong: true,
            ..Default::default()
        })), json!({"kind": "message", "message": {"id": 1, "connect": {
            "client": "c1", "version": "0.1.0", "expires": true, "ttl": 3600, "ping": 25, "pong": true}}})),
        frame("connect reply with a server-side subscription", &reply(1, WireReplyBody::Connect(WireConnectResult {
            client: "c1".into(), subs: vec![WireServerSub { channel: "srv".into(), sub: 9, result: Default::default() }],
            ..Default::default()
        })), json!({"kind": "message", "message": {"id": 1, "connect": {
            "client": "c1", "version": "", "expires": false, "ttl": 0, "ping": 0, "pong": false,
            "subs": {"srv": merge(&empty_sub, json!({"sub": 9}))}}}})),
        frame("subscribe reply with recovered publications", &reply(2, WireReplyBody::Subscribe(3, sub_result.clone())),
            json!({"kind": "message", "message": {"id": 2, "subscribe": merge(&sub_result_js, json!({"sub": 3}))}})),
        frame("error reply", &reply(3, WireReplyBody::Error(103, "permission denied".into(), false)),
            json!({"kind": "message", "message": {"id": 3, "error": {"code": 103, "message": "permission denied"}}})),
        frame("temporary error reply", &reply(3, WireReplyBody::Error(100, "internal server error".into(), true)),
            json!({"kind": "message", "message": {"id": 3, "error": {"code": 100, "message": "internal server error", "temporary": true}}})),
        frame("unsubscribe reply", &reply(4, WireReplyBody::Unsubscribe),
            json!({"kind": "message", "message": {"id": 4, "unsubscribe": {}}})),
        frame("publish reply", &reply(5, WireReplyBody::Publish),
            json!({"kind": "message", "message": {"id": 5, "publish": {}}})),
        frame("presence reply", &reply(6, WireReplyBody::Presence(vec![("c-1".into(), pub_info.clone())])),
            json!({"kind": "message", "message": {"id": 6, "presence": {"presence": {
                "c-1": {"user": "alice", "client": "c-1", "chan_info": {"role": "admin"}}}}}})),
        frame("presence stats reply", &reply(7, WireReplyBody::PresenceStats(2, 1)),
            json!({"kind": "message", "message": {"id": 7, "presence_stats": {"num_clients": 2, "num_users": 1}}})),
        frame("history reply", &reply(8, WireReplyBody::History(WireHistoryResult {
            publications: vec![publication.clone()], epoch: "ep".into(), offset: 5
        })), json!({"kind": "message", "message": {"id": 8, "history": {
            "publications": [publication_js], "epoch": "ep", "offset": 5}}})),
        frame("refresh reply", &reply(10, WireReplyBody::Refresh("c1".into(), "0.1.0".into(), true, 60)),
            json!({"kind": "message", "message": {"id": 10, "refresh": {"client": "c1", "version": "0.1.0", "expires": true, "ttl": 60}}})),
        frame("join push", &ServerFrame::Push(WirePush::Join("chat:lobby".into(), info("bob", "c-2"))),
            json!({"kind": "message", "message": {"push": {"channel": "chat:lobby", "join": {"info": {"user": "bob", "client": "c-2"}}}}})),
        frame("leave push", &ServerFrame::Push(WirePush::Leave("chat:lobby".into(), info("bob", "c-2"))),
            json!({"kind": "message", "message": {"push": {"channel": "chat:lobby", "leave": {"info": {"user": "bob", "client": "c-2"}}}}})),
        frame("unsubscribe push", &ServerFrame::Push(WirePush::Unsubscribe("news".into(), 2000, "server unsubscribe".into())),
            json!({"kind": "message", "message": {"push": {"channel": "news", "unsubscribe": {"code": 2000, "reason": "server unsubscribe"}}}})),
        frame("server-side subscribe push", &ServerFrame::Push(WirePush::Subscribe(WireServerSub {
            channel: "srv".into(), sub: 12, result: Default::default()
        })), json!({"kind": "message", "message": {"push": {"channel": "srv", "subscribe": merge(&empty_sub, json!({"sub": 12}))}}})),
        frame("message push", &ServerFrame::Push(WirePush::Message(json_bytes(&json!({"m": 1})))),
            json!({"kind": "message", "message": {"push": {"message": {"data": {"m": 1}}}}})),
        frame("refresh push", &ServerFrame::Push(WirePush::Refresh(true, 30)),
            json!({"kind": "message", "message": {"push": {"refresh": {"expires": true, "ttl": 30}}}})),
        frame("ping", &ServerFrame::Ping, json!({"kind": "message", "message": {}})),
        frame("notice", &ServerFrame::Notice(107, "datagram for unknown subscription 9".into()),
            json!({"kind": "notice", "code": 107, "message": "datagram for unknown subscription 9"})),
        frame("disconnect", &ServerFrame::Disconnect(3001, "shutdown".into()),
            json!({"kind": "message", "message": {"push": {"disconnect": {"code": 3001, "reason": "shutdown"}}}})),

        // --- subscription streams and datagrams ---
        vector("stream header", "stream_header", &body(&StreamHeader { sub: 300, channel: "chat:lobby".into() }),
            json!({"sub": 300, "channel": "chat:lobby"})),
        vector("publication with a 2^40 offset", "publication", &body(&big), json!({"data": 42, "offset": 1u64 << 40})),
        vector("publication that is not JSON", "publication", &body(&binary), json!({"data": {"$bytes": "ff007b"}, "offset": 0})),
        vector("datagram", "datagram", &dgram, json!({"sub": 300, "pub": {"data": 42, "offset": 1u64 << 40}})),
    ])
}

fn merge(base: &Value, extra: Value) -> Value {
    let mut out = base.clone();
    if let (Some(o), Value::Object(e)) = (out.as_object_mut(), extra) {
        o.extend(e);
    }
    out
}

#[test]
fn native_fixtures_match_the_rust_encoder() {
    let path = root().join("web-client/test/fixtures/native.json");
    let want = format!("{}\n", serde_json::to_string_pretty(&fixtures()).expect("json"));
    if std::env::var_os("TIDEWIRE_UPDATE_FIXTURES").is_some() {
        std::fs::write(&path, &want).expect("write fixtures");
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "{} differs from what src/protocol/native.rs encodes: if the native format changed on purpose, \
         run `TIDEWIRE_UPDATE_FIXTURES=1 cargo test --test web_client native_fixtures`, then update \
         web-client/src/native.ts until `npm test` in web-client passes",
        path.display()
    );
}

// --- serving ---------------------------------------------------------------------------

fn demo_config(extra: &str) -> String {
    format!(
        r#"[http_server]
address = "127.0.0.1"
port = 0
[http_server.tls]
dev_dir = "{}"
[client.token]
hmac_secret_key = "{SECRET}"
[http_api]
key = "{API_KEY}"
[demo]
enabled = true
{extra}"#,
        common::cert_dir()
    )
}

#[tokio::test]
async fn every_browser_file_of_dist_is_served_as_built() {
    let srv = common::start_with_text(&demo_config("")).await;
    let dist = root().join("web-client/dist");
    let mut served = 0;
    for entry in std::fs::read_dir(&dist).expect("web-client/dist exists") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).expect("name").to_owned();
        if name.ends_with(".d.ts") {
            continue;
        }
        let resp = srv.http.get(srv.url(&format!("/{name}"))).send().await.expect("get");
        assert_eq!(resp.status(), 200, "/{name} is not served: add it to ASSETS in src/web.rs");
        let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let expected_ct = if name.ends_with(".js") { "text/javascript" } else if name.ends_with(".css") { "text/css" } else { "text/html" };
        assert!(ct.starts_with(expected_ct), "/{name} has content-type {ct}");
        let bytes = resp.bytes().await.expect("body");
        let on_disk = std::fs::read(&path).expect("read");
        assert!(
            bytes.as_ref() == on_disk.as_slice(),
            "/{name} differs from web-client/dist/{name} ({} bytes served, {} on disk): rebuild the server",
            bytes.len(),
            on_disk.len()
        );
        served += 1;
    }
    assert!(served >= 10, "dist/ holds the SDK and the demo ({served} files)");
    let page = srv.http.get(srv.url("/")).send().await.expect("get /");
    assert_eq!(page.status(), 200);
    assert!(page.text().await.expect("text").contains("Tidewire live demo"));
    srv.shutdown().await;
}

#[tokio::test]
async fn demo_token_info_and_ticker() {
    let srv = common::start_with_text(&demo_config("")).await;
    let resp = srv.http.get(srv.url("/demo/token?user=alice")).send().await.expect("token");
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.expect("json");
    let token = body["token"].as_str().expect("a token").to_owned();
    // The token connects as alice over WebSocket.
    let mut ws = srv.ws().await;
    ws.send(&json!({"id": 1, "connect": {"token": token}})).await;
    let reply = ws.reply(1).await;
    assert!(reply.get("connect").is_some(), "{reply}");
    for bad in ["", "a%20b", "%3Cscript%3E", &"x".repeat(33)] {
        let resp = srv.http.get(srv.url(&format!("/demo/token?user={bad}"))).send().await.expect("token");
        assert_eq!(resp.status(), 400, "user {bad:?} is refused");
    }
    let info: Value = srv.http.get(srv.url("/demo/info")).send().await.expect("info").json().await.expect("json");
    assert_eq!(info["quic_port"], json!(srv.quic_addr().port()));
    assert_eq!(info["chat"], "chat:lobby");
    // The ticker's samples reach a subscriber of the live channel (WebSocket: every one).
    let sub = ws.subscribe(2, "live:stats").await;
    assert!(sub.get("subscribe").is_some(), "{sub}");
    let sample = ws.push("pub").await;
    let data = &sample["pub"]["data"];
    assert!(data["connections"].as_u64().is_some_and(|n| n >= 1), "{sample}");
    assert!(data["msgs_per_sec"].is_number() && data["t"].is_u64(), "{sample}");
    // The demo chat namespace: presence and history for subscribers.
    let chat = ws.subscribe(3, "chat:lobby").await;
    assert_eq!(chat["subscribe"]["recoverable"], true, "{chat}");
    srv.shutdown().await;
}

#[tokio::test]
async fn without_demo_mode_only_the_sdk_is_served() {
    let text = demo_config("").replace("[demo]\nenabled = true\n", "");
    let srv = common::start_with_text(&text).await;
    let sdk = srv.http.get(srv.url("/tidewire.js")).send().await.expect("get");
    assert_eq!(sdk.status(), 200);
    assert_eq!(
        sdk.headers().get("access-control-allow-origin").and_then(|v| v.to_str().ok()),
        Some("*"),
        "pages elsewhere may import the SDK module"
    );
    for path in ["/", "/demo.js", "/demo/token?user=a", "/demo/info"] {
        assert_eq!(srv.http.get(srv.url(path)).send().await.expect("get").status(), 404, "{path}");
    }
    srv.shutdown().await;
}

#[test]
fn serve_without_a_config_file_is_demo_mode() {
    use std::io::{BufRead, BufReader, Read, Write};
    let dir = std::env::temp_dir().join(format!("tidewire-web-client-serve-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tidewire"))
        .arg("serve")
        .current_dir(&dir)
        .env("TIDEWIRE_HTTP_SERVER_PORT", "0")
        .env("TIDEWIRE_LOG", "warn")
        .env_remove("TIDEWIRE_DEMO_ENABLED")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut page_url = None;
    for line in BufReader::new(stdout).lines().take(40) {
        let Ok(line) = line else { break };
        if let Some(rest) = line.trim().strip_prefix("Demo page:") {
            page_url = rest.split_whitespace().next().map(str::to_owned);
            break;
        }
    }
    let got = page_url.as_deref().and_then(|u| u.strip_prefix("http://")).map(|u| u.trim_end_matches('/').to_owned());
    let page = got.as_deref().map(|addr| {
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        s.write_all(format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes()).expect("write");
        let mut buf = String::new();
        let _ = s.read_to_string(&mut buf);
        buf
    });
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let page = page.expect("the banner names the demo page");
    assert!(page.starts_with("HTTP/1.1 200") && page.contains("Tidewire live demo"), "{page}");
}

// --- the demo page in Chromium -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_page_in_chromium_over_each_transport() {
    let modules = root().join("web-client/node_modules/playwright-core");
    assert!(modules.exists(), "{} is missing: run ./scripts/test.sh once (npm ci in web-client)", modules.display());
    assert!(PathBuf::from("/usr/bin/chromium").exists(), "/usr/bin/chromium is missing: run ./scripts/test.sh (apt chromium)");
    let srv = common::start_with_text(&demo_config("")).await;
    let output = root().join("test-output");
    std::fs::create_dir_all(&output).expect("test-output");
    let mut cmd = Command::new("node");
    cmd.args(["--test", "--test-concurrency=1", "test/browser/"])
        .current_dir(root().join("web-client"))
        .env("TIDEWIRE_HTTP", format!("http://{}", srv.addr))
        .env("TIDEWIRE_API_KEY", API_KEY)
        .env("TIDEWIRE_OUTPUT", &output);
    let out = tokio::time::timeout(Duration::from_secs(300), tokio::task::spawn_blocking(move || cmd.output()))
        .await
        .expect("browser suite took over 300 s")
        .expect("join")
        .expect("cannot run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("--- node --test web-client/test/browser/ stdout ---\n{stdout}\n--- stderr ---\n{stderr}");
    assert!(out.status.success(), "demo browser suite failed ({}):\n{stdout}\n{stderr}", out.status);
    assert!(output.join("demo-webtransport.png").exists(), "a screenshot of the demo page is written");
    srv.shutdown().await;
}
