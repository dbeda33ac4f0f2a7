//! Backend proxies against a real application backend: the Django app in
//! tests/proxy/django_backend.py (started here on a free loopback port, stopped by PID)
//! decides connects, subscribes, publishes, RPC and refreshes for Tidewire, and the real
//! centrifuge-js (tests/proxy/django_proxy.mjs) drives it. scripts/test.sh installs
//! Django (tests/proxy/requirements.txt) and the SDK (tests/interop/js).

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{API_KEY, SECRET, TestServer};
use serde_json::{Value, json};

/// One test of this file at a time: the SDK suite's timing assertions and the latency
/// figures must not share the two cores with each other.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Django backend process; killed (by its PID) when dropped.
struct Django {
    child: Child,
    url: String,
}

impl Django {
    fn start() -> Self {
        let mut child = Command::new("python3")
            .arg(root().join("tests/proxy/django_backend.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs the Django backend");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) else {
            let _ = child.kill();
            panic!("the Django backend did not start within 30 s (is django installed? run ./scripts/test.sh once)");
        };
        let port: u16 = line.trim().strip_prefix("LISTENING ").and_then(|p| p.parse().ok()).unwrap_or_else(|| {
            let _ = child.kill();
            panic!("unexpected first line from the Django backend: {line:?} (is django installed? run ./scripts/test.sh once)")
        });
        Self { child, url: format!("http://127.0.0.1:{port}") }
    }
}

impl Drop for Django {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// Tidewire's config with every proxy pointing at `backend` (Centrifugo v6 keys).
fn config_text(backend: &str, dead: &str) -> String {
    format!(
        r#"
[http_server]
address = "127.0.0.1"
port = 0
[http_api]
key = "{API_KEY}"
[client]
ping_interval = "1s"
pong_timeout = "500ms"
[client.token]
hmac_secret_key = "{SECRET}"
[uni_http_stream]
enabled = true
[client.proxy.connect]
enabled = true
endpoint = "{backend}/centrifugo/connect"
timeout = "1s"
http_headers = ["Cookie", "X-Tenant"]
[client.proxy.refresh]
enabled = true
endpoint = "{backend}/centrifugo/refresh"
http_headers = ["Cookie"]

[[proxies]]
name = "subscribe"
endpoint = "{backend}/centrifugo/subscribe"
http_headers = ["Cookie"]
[[proxies]]
name = "publish"
endpoint = "{backend}/centrifugo/publish"
http_headers = ["Cookie"]
[proxies.http.static_headers]
X-From = "tidewire"
[[proxies]]
name = "rpc"
endpoint = "{backend}/centrifugo/rpc"
timeout = "2500ms"
http_headers = ["Cookie", "X-Tenant"]
include_connection_meta = true
[[proxies]]
name = "dead"
endpoint = "{dead}/centrifugo/subscribe"
timeout = "500ms"

[rpc.without_namespace]
proxy_enabled = true
proxy_name = "rpc"

[[channel.namespaces]]
name = "public"
subscribe_proxy_enabled = true
subscribe_proxy_name = "subscribe"
publish_proxy_enabled = true
publish_proxy_name = "publish"
[[channel.namespaces]]
name = "secret"
subscribe_proxy_enabled = true
subscribe_proxy_name = "subscribe"
[[channel.namespaces]]
name = "down"
subscribe_proxy_enabled = true
subscribe_proxy_name = "dead"
"#
    )
}

async fn start_pair(django: &Django) -> (TestServer, TestServer) {
    let dead = format!("http://127.0.0.1:{}", closed_port());
    let main = common::start_with_text(&config_text(&django.url, &dead)).await;
    // A second server whose connect proxy is down.
    let down = common::start_with_text(&config_text(&dead, &dead)).await;
    (main, down)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn centrifuge_js_against_a_django_backend() {
    let _serial = SERIAL.lock().await;
    let django = Django::start();
    let (srv, down) = start_pair(&django).await;
    let sdk = root().join("tests/interop/js/node_modules/centrifuge");
    assert!(sdk.exists(), "{} is missing: run ./scripts/test.sh once", sdk.display());
    let mut cmd = Command::new("node");
    cmd.args(["--test", "--test-concurrency=1", "tests/proxy/django_proxy.mjs"])
        .current_dir(root())
        .env("TIDEWIRE_HTTP", format!("http://{}", srv.addr))
        .env("TIDEWIRE_WS", srv.ws_url())
        .env("TIDEWIRE_WS_DEAD", down.ws_url())
        .env("TIDEWIRE_API_KEY", API_KEY)
        .env("DJANGO_URL", &django.url);
    let out = tokio::time::timeout(Duration::from_secs(240), tokio::task::spawn_blocking(move || cmd.output()))
        .await
        .expect("the suite ends within 240 s")
        .expect("join")
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("--- node stdout ---\n{stdout}\n--- stderr ---\n{stderr}");
    assert!(out.status.success(), "the centrifuge-js proxy suite failed:\n{stdout}\n{stderr}");

    // The calls were measured and the failures counted, per proxy and event.
    let metrics = srv.http.get(srv.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains("tidewire_proxy_request_duration_seconds_count{proxy=\"connect\",event=\"connect\"}"), "{metrics}");
    assert!(metrics.contains("tidewire_proxy_request_errors_total{proxy=\"rpc\",event=\"rpc\",kind=\"timeout\"} 1"), "{metrics}");
    assert!(metrics.contains("tidewire_proxy_request_errors_total{proxy=\"dead\",event=\"subscribe\",kind=\"transport\"}"), "{metrics}");
    assert!(metrics.contains("tidewire_proxy_requests_in_flight{proxy=\"rpc\",event=\"rpc\"} 0"), "{metrics}");
    srv.shutdown().await;
    down.shutdown().await;
}

/// Unidirectional transports connect through the connect proxy too: the first line of
/// a uni HTTP-stream is the connect push with Django's data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unidirectional_stream_connects_through_the_connect_proxy() {
    let _serial = SERIAL.lock().await;
    let django = Django::start();
    let (srv, down) = start_pair(&django).await;
    let http = reqwest::Client::new();
    let cookie = login(&http, &django, "uni").await;
    let mut resp = http
        .post(srv.url("/connection/uni_http_stream"))
        .header("cookie", cookie)
        .body("{}")
        .send()
        .await
        .expect("uni_http_stream");
    assert_eq!(resp.status(), 200);
    let mut text = String::new();
    let deadline = Instant::now() + common::WAIT;
    while !text.contains('\n') && Instant::now() < deadline {
        let chunk = tokio::time::timeout(common::WAIT, resp.chunk()).await.expect("a chunk in time").expect("chunk");
        let Some(chunk) = chunk else { break };
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let first: Value = serde_json::from_str(text.lines().next().expect("a line")).expect("json");
    assert_eq!(first["connect"]["data"], json!({"hello": "uni", "transport": "uni_http_stream", "protocol": "json"}), "{first}");
    drop(resp);
    srv.shutdown().await;
    down.shutdown().await;
}

/// Logs in to Django; the session cookie.
async fn login(http: &reqwest::Client, django: &Django, user: &str) -> String {
    let resp = http.get(format!("{}/login?user={user}", django.url)).send().await.expect("login");
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("sessionid="))
        .and_then(|c| c.split(';').next())
        .expect("session cookie")
        .to_owned()
}

/// Opens a WebSocket (with `cookie`), sends `connect`, and returns the time to its reply.
async fn timed_connect(srv: &TestServer, cookie: Option<&str>, token: &str) -> Duration {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};
    let mut req = srv.ws_url().into_client_request().expect("request");
    if let Some(c) = cookie {
        req.headers_mut().insert("cookie", c.parse().expect("header"));
    }
    let started = Instant::now();
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.expect("ws");
    let cmd = json!({"id": 1, "connect": {"token": token}});
    ws.send(Message::text(cmd.to_string())).await.expect("send");
    loop {
        let msg = tokio::time::timeout(common::WAIT, ws.next()).await.expect("reply in time").expect("open").expect("msg");
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(t.as_str()).expect("json");
            assert!(v.get("connect").is_some(), "connect failed: {v}");
            break;
        }
    }
    let took = started.elapsed();
    let _ = ws.close(None).await;
    took
}

fn summary(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (v[v.len() / 2], v[(v.len() * 95 / 100).min(v.len() - 1)])
}

/// The connect proxy's cost: WebSocket connect (upgrade + connect reply) with the connect
/// proxy (a Django round trip) and with a token (no proxy). Prints the figures; asserts
/// only that both paths work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_latency_with_and_without_the_connect_proxy() {
    let _serial = SERIAL.lock().await;
    /// Connects measured per path (after warm-up): bounded, a few seconds in a debug build.
    const ROUNDS: usize = 100;
    let django = Django::start();
    let (srv, down) = start_pair(&django).await;
    let http = reqwest::Client::new();
    let cookie = login(&http, &django, "latency").await;
    let token = common::token("latency", 3600);
    for _ in 0..10 {
        timed_connect(&srv, Some(&cookie), "").await;
        timed_connect(&srv, None, &token).await;
    }
    let mut proxied = Vec::with_capacity(ROUNDS);
    let mut direct = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        proxied.push(timed_connect(&srv, Some(&cookie), "").await);
        direct.push(timed_connect(&srv, None, &token).await);
    }
    let (p50, p95) = summary(proxied);
    let (d50, d95) = summary(direct);
    println!(
        "connect latency over {ROUNDS} WebSocket connects (debug build): token p50 {d50:?} p95 {d95:?}; \
         connect proxy (Django) p50 {p50:?} p95 {p95:?}"
    );
    srv.shutdown().await;
    down.shutdown().await;
}
