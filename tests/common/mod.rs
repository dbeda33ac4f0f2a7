//! One way to start a real server for integration tests: in-process, on 127.0.0.1 port 0,
//! with fresh secrets; plus small WebSocket and HTTP clients that speak raw protocol.
#![allow(dead_code, unreachable_pub, missing_docs)]

pub mod redis;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tidewire::config::Config;
use tidewire::server::{self, Running};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long any single wait in a test may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(5);

pub const SECRET: &str = "test-hmac-secret";
pub const API_KEY: &str = "test-api-key";

/// Channel config most tests use.
pub const CHANNELS: &str = r#"
[channel.without_namespace]
allow_subscribe_for_client = true
allow_publish_for_subscriber = true
[[channel.namespaces]]
name = "chat"
allow_subscribe_for_client = true
allow_publish_for_subscriber = true
[[channel.namespaces]]
name = "readonly"
allow_subscribe_for_client = true
[[channel.namespaces]]
name = "open"
allow_subscribe_for_client = true
allow_subscribe_for_anonymous = true
allow_publish_for_client = true
allow_publish_for_anonymous = true
[[channel.namespaces]]
name = "dm"
allow_user_limited_channels = true
[[channel.namespaces]]
name = "rx"
allow_subscribe_for_client = true
channel_regex = "^[a-z]+$"
"#;

pub struct TestServer {
    pub running: Option<Running>,
    pub addr: SocketAddr,
    pub http: reqwest::Client,
}

/// Starts a server with `CHANNELS` plus `extra` TOML (later keys win only in new tables).
pub async fn start(extra: &str) -> TestServer {
    let text = format!(
        "[http_server]\naddress = \"127.0.0.1\"\nport = 0\n[client.token]\nhmac_secret_key = \"{SECRET}\"\n[http_api]\nkey = \"{API_KEY}\"\n{CHANNELS}\n{extra}"
    );
    start_with_text(&text).await
}

/// [`start`], with the parsed config changed by `edit` first.
pub async fn start_edited(extra: &str, edit: impl FnOnce(&mut Config)) -> TestServer {
    let text = format!(
        "[http_server]\naddress = \"127.0.0.1\"\nport = 0\n[client.token]\nhmac_secret_key = \"{SECRET}\"\n[http_api]\nkey = \"{API_KEY}\"\n{CHANNELS}\n{extra}"
    );
    let mut config = Config::from_text(&text).expect("test config is valid").config;
    edit(&mut config);
    start_config(config).await
}

pub async fn start_with_text(text: &str) -> TestServer {
    let config = Config::from_text(text).expect("test config is valid").config;
    start_config(config).await
}

pub async fn start_config(config: Config) -> TestServer {
    let running = server::start(config).await.expect("server starts");
    let addr = running.http_addr;
    TestServer { running: Some(running), addr, http: reqwest::Client::new() }
}

pub fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs()
}

/// An HS256 token for `user` expiring in `ttl` seconds (negative = already expired).
pub fn token(user: &str, ttl: i64) -> String {
    token_with(&json!({"sub": user, "exp": (now_secs() as i64 + ttl)}))
}

pub fn token_with(claims: &Value) -> String {
    tidewire::auth::jwt::mint_hs256(SECRET, claims).expect("mint")
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/connection/websocket", self.addr)
    }

    /// POST /api/<method> with the key; returns status and JSON body (Null when empty/not JSON).
    pub async fn api(&self, method: &str, body: Value) -> (u16, Value) {
        let resp = self
            .http
            .post(self.url(&format!("/api/{method}")))
            .header("X-API-Key", API_KEY)
            .json(&body)
            .send()
            .await
            .expect("api request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn publish(&self, channel: &str, data: Value) -> Value {
        let (status, body) = self.api("publish", json!({"channel": channel, "data": data})).await;
        assert_eq!(status, 200, "publish status");
        body
    }

    /// Opens a WebSocket (no Origin header, like Node and native clients).
    pub async fn ws(&self) -> Ws {
        let (stream, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(self.ws_url()))
            .await
            .expect("ws connect in time")
            .expect("ws connect");
        Ws { stream, pending: Vec::new() }
    }

    /// Opens a WebSocket and completes `connect` for `user`; returns it and the connect result.
    pub async fn client(&self, user: &str) -> (Ws, Value) {
        let mut ws = self.ws().await;
        ws.send(&json!({"id": 1, "connect": {"token": token(user, 3600)}})).await;
        let reply = ws.reply(1).await;
        let result = reply.get("connect").cloned().unwrap_or_else(|| panic!("connect failed: {reply}"));
        (ws, result)
    }

    pub async fn shutdown(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }
}

pub struct Ws {
    pub stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pending: Vec<Value>,
}

/// How a connection ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Closed {
    /// A close frame with this code and reason.
    Frame(u16, String),
    /// The stream ended without a close frame.
    NoFrame,
}

impl Ws {
    pub async fn send(&mut self, v: &Value) {
        self.send_text(&v.to_string()).await;
    }

    pub async fn send_text(&mut self, s: &str) {
        self.stream.send(Message::Text(s.into())).await.expect("ws send");
    }

    pub async fn send_raw(&mut self, m: Message) {
        self.stream.send(m).await.expect("ws send");
    }

    /// Next message (one line of a frame), or None when the connection closed.
    pub async fn next(&mut self) -> Option<Value> {
        loop {
            if !self.pending.is_empty() {
                return Some(self.pending.remove(0));
            }
            let msg = tokio::time::timeout(WAIT, self.stream.next()).await.expect("message in time")?;
            match msg.ok()? {
                Message::Text(t) => {
                    assert!(!t.ends_with('\n'), "frames must not end with a newline: {t:?}");
                    for line in t.split('\n') {
                        assert!(!line.is_empty(), "frames must not contain empty lines: {t:?}");
                        self.pending.push(serde_json::from_str(line).expect("server sends JSON"));
                    }
                }
                Message::Close(_) => return None,
                _ => {}
            }
        }
    }

    /// Skips pings and returns the next non-ping message.
    pub async fn next_non_ping(&mut self) -> Value {
        loop {
            let v = self.next().await.expect("connection open");
            if v != json!({}) {
                return v;
            }
        }
    }

    /// Waits for the reply with `id`, keeping other messages queued in order.
    pub async fn reply(&mut self, id: u64) -> Value {
        let mut skipped = Vec::new();
        let found = loop {
            let v = self.next().await.unwrap_or_else(|| panic!("closed before reply {id}"));
            if v.get("id").and_then(Value::as_u64) == Some(id) {
                break v;
            }
            skipped.push(v);
        };
        skipped.append(&mut self.pending);
        self.pending = skipped;
        found
    }

    /// Waits for the next push whose type is `kind` (`pub`, `join`, `unsubscribe` …).
    pub async fn push(&mut self, kind: &str) -> Value {
        loop {
            let v = self.next().await.unwrap_or_else(|| panic!("closed before a {kind} push"));
            if let Some(p) = v.get("push")
                && p.get(kind).is_some()
            {
                return p.clone();
            }
        }
    }

    /// Subscribes and returns the reply.
    pub async fn subscribe(&mut self, id: u64, channel: &str) -> Value {
        self.send(&json!({"id": id, "subscribe": {"channel": channel}})).await;
        self.reply(id).await
    }

    /// Reads until the server closes; returns the close frame.
    pub async fn closed(&mut self) -> Closed {
        loop {
            let msg = tokio::time::timeout(WAIT, self.stream.next()).await.expect("close in time");
            match msg {
                Some(Ok(Message::Close(Some(f)))) => {
                    let code: u16 = match f.code {
                        CloseCode::Library(c) | CloseCode::Bad(c) | CloseCode::Iana(c) => c,
                        other => u16::from(other),
                    };
                    return Closed::Frame(code, f.reason.to_string());
                }
                Some(Ok(Message::Close(None))) | None | Some(Err(_)) => return Closed::NoFrame,
                Some(Ok(_)) => {}
            }
        }
    }

    /// Asserts nothing but pings arrives within `d`.
    pub async fn quiet_for(&mut self, d: Duration) {
        let deadline = tokio::time::Instant::now() + d;
        while let Ok(msg) = tokio::time::timeout_at(deadline, self.stream.next()).await {
            if let Some(Ok(Message::Text(t))) = msg {
                assert_eq!(t.as_str(), "{}", "expected silence, got {t}");
            }
        }
    }
}

// --- QUIC, WebTransport and HTTP/3 helpers ------------------------------------------

/// A directory of its own for one test server's development certificate.
pub fn cert_dir() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("tidewire-test-certs-{}-{n}", std::process::id()));
    dir.display().to_string()
}

/// Starts a server like `start`, with its dev certificate in a fresh directory and its
/// QUIC and HTTP/3 ports on free ports.
pub async fn start_quic(extra: &str) -> TestServer {
    start(&format!("[http_server.tls]\ndev_dir = \"{}\"\n{extra}", cert_dir())).await
}

impl TestServer {
    fn running(&self) -> &Running {
        self.running.as_ref().expect("server running")
    }

    /// The client UDP port (WebTransport + raw QUIC), IPv4.
    pub fn quic_addr(&self) -> SocketAddr {
        self.running().quic_addr.expect("quic endpoint on")
    }

    /// The HTTP/3 API's UDP address.
    pub fn h3_addr(&self) -> SocketAddr {
        self.running().h3_addr.expect("http3 api on")
    }

    /// SHA-256 of the server's certificate (what browsers pin).
    pub fn cert_hash(&self) -> [u8; 32] {
        self.running().certs.as_ref().expect("certificate").current().sha256()
    }

    /// Client options for this server over `transport`, pinning its certificate.
    pub fn client_options(&self, transport: tidewire::client::Transport, user: &str) -> tidewire::client::Options {
        let mut opts = tidewire::client::Options::new(
            self.quic_addr(),
            transport,
            tidewire::client::Trust::CertHash(vec![self.cert_hash()]),
        );
        opts.token = token(user, 3600);
        opts.timeout = WAIT;
        opts
    }

    /// A native-mode client connected as `user`.
    pub async fn native_client(&self, transport: tidewire::client::Transport, user: &str) -> tidewire::client::Client {
        tidewire::client::Client::connect(self.client_options(transport, user)).await.expect("native client connects")
    }
}

/// Waits for the next publication of `sub`, failing the test after `WAIT`.
pub async fn next_pub(sub: &mut tidewire::client::Subscription) -> tidewire::client::Publication {
    tokio::time::timeout(WAIT, sub.next()).await.expect("publication in time").expect("subscription open")
}
