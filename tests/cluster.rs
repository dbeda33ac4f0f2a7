//! Three Tidewire processes (`tidewire serve`) on one Redis, as a user runs them, driven by the real SDKs
//! (centrifuge-js and cent.js, tests/interop/js/cluster/): recovery across nodes, server
//! API actions through another node, `info` and `channels` over every node, /emulation
//! through a node that does not own the session, and a Redis killed (-9) and restarted in
//! the middle of publishing.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::redis::RedisServer;
use common::{API_KEY, SECRET, TestServer};
use serde_json::{Value, json};

/// The namespaces the suites use: `hist` keeps history for recovery, `chat` is plain.
const CHANNELS: &str = r#"
[[channel.namespaces]]
name = "hist"
allow_subscribe_for_client = true
allow_history_for_subscriber = true
presence = true
join_leave = true
allow_presence_for_subscriber = true
history_size = 100
history_ttl = "300s"
allow_recovery = true
allow_positioning = true
"#;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A `tidewire serve` process of this test on 127.0.0.1 port 0 (the address read from
/// the banner it prints), stopped by PID when dropped.
struct Node {
    child: Child,
    srv: TestServer,
    dir: PathBuf,
}

impl Node {
    fn start(redis: &RedisServer) -> Self {
        let dir = std::env::temp_dir().join(format!("tidewire-cluster-{}-{}", std::process::id(), uuid()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let config = format!(
            "[http_server]\naddress = \"127.0.0.1\"\nport = 0\n[client.token]\nhmac_secret_key = \"{SECRET}\"\n\
             [http_api]\nkey = \"{API_KEY}\"\n{}\n{CHANNELS}\n[engine]\ntype = \"redis\"\n[engine.redis]\n\
             address = \"{}\"\nprefix = \"cluster\"\nio_timeout = \"500ms\"\nconnect_timeout = \"500ms\"\n",
            common::CHANNELS,
            redis.url()
        );
        let path = dir.join("node.toml");
        std::fs::write(&path, config).expect("config");
        let mut child = Command::new(env!("CARGO_BIN_EXE_tidewire"))
            .args(["serve", "--config"])
            .arg(&path)
            .current_dir(&dir)
            .env("TIDEWIRE_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("tidewire serve starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.trim().strip_prefix("WebSocket:") {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        let url = rx.recv_timeout(Duration::from_secs(20)).expect("the node prints its WebSocket URL");
        let addr = url.trim_start_matches("ws://").trim_end_matches("/connection/websocket").parse().expect("address");
        Self { child, srv: TestServer { running: None, addr, http: reqwest::Client::new() }, dir }
    }

    /// Whether the process is still running.
    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn uuid() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{}", N.fetch_add(1, Ordering::Relaxed))
}

fn nodes_env(nodes: &[Node]) -> String {
    nodes.iter().map(|n| format!("http://{}", n.srv.addr)).collect::<Vec<_>>().join(",")
}

/// `node` with the interop environment for these nodes (helpers.mjs wants node A's).
fn node_command(nodes: &[Node], args: &[&str]) -> Command {
    let modules = root().join("tests/interop/js/node_modules/centrifuge");
    assert!(modules.exists(), "{} is missing: run ./scripts/test.sh once", modules.display());
    let mut cmd = Command::new("node");
    cmd.args(args)
        .current_dir(root())
        .env("TIDEWIRE_HTTP", format!("http://{}", nodes[0].srv.addr))
        .env("TIDEWIRE_WS", nodes[0].srv.ws_url())
        .env("TIDEWIRE_API_KEY", API_KEY)
        .env("TIDEWIRE_HMAC_SECRET", SECRET)
        .env("TIDEWIRE_NODES_HTTP", nodes_env(nodes));
    cmd
}

fn three_nodes(redis: &RedisServer) -> Vec<Node> {
    (0..3).map(|_| Node::start(redis)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_on_redis_with_centrifuge_js_and_cent_js() {
    let redis = RedisServer::start();
    let mut nodes = three_nodes(&redis);
    let mut cmd = node_command(&nodes, &["--test", "--test-concurrency=1", "tests/interop/js/cluster/nodes.mjs"]);
    let out = tokio::time::timeout(Duration::from_secs(120), tokio::task::spawn_blocking(move || cmd.output()))
        .await
        .expect("the cluster suite took over 120 s")
        .expect("join")
        .expect("node runs");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}");
    assert!(out.status.success(), "tests/interop/js/cluster/nodes.mjs failed:\n{stdout}\n{stderr}");
    // PyPI `cent` publishes through node B; a WebSocket subscriber on node A gets it.
    let mut ws = nodes[0].srv.ws().await;
    ws.send(&json!({"id": 1, "connect": {"token": common::token("py", 3600)}})).await;
    ws.reply(1).await;
    assert!(ws.subscribe(2, "chat:py").await["subscribe"].is_object());
    let script = "import os\nfrom cent import Client, PublishRequest\n\
                  c = Client(os.environ['API_URL'], os.environ['API_KEY'], timeout=3)\n\
                  c.publish(PublishRequest(channel='chat:py', data={'via': 'cent'}))\n";
    let mut py = Command::new("python3");
    py.args(["-c", script])
        .env("API_URL", format!("http://{}/api", nodes[1].srv.addr))
        .env("API_KEY", API_KEY);
    let out = tokio::task::spawn_blocking(move || py.output()).await.expect("join").expect("python3 runs");
    assert!(out.status.success(), "cent publish failed: {}", String::from_utf8_lossy(&out.stderr));
    let push = ws.push("pub").await;
    assert_eq!(push["pub"]["data"], json!({"via": "cent"}), "{push}");
    assert!(nodes.iter_mut().all(Node::alive), "every node process still runs");
}

/// `/health` of `srv`: its status.
async fn health(srv: &TestServer) -> u16 {
    srv.http.get(srv.url("/health")).send().await.map_or(0, |r| r.status().as_u16())
}

/// Polls `/health` until it answers `status` (bounded).
async fn health_becomes(srv: &TestServer, status: u16) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while health(srv).await != status {
        assert!(Instant::now() < deadline, "/health never answered {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Publishes `seq` through `srv`, retrying (same idempotency key, so never twice) until the
/// engine takes it; bounded.
async fn publish_until_accepted(srv: &TestServer, channel: &str, seq: u64) -> (u64, usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut failures = 0;
    loop {
        let body = json!({"channel": channel, "data": {"seq": seq}, "idempotency_key": format!("seq-{seq}")});
        let answer = tokio::time::timeout(Duration::from_secs(3), srv.api("publish", body)).await;
        if let Ok((200, v)) = &answer
            && let Some(offset) = v["result"]["offset"].as_u64()
        {
            return (offset, failures);
        }
        if let Ok((_, v)) = &answer {
            assert!(v["error"]["code"] == json!(100) || v["error"].is_null(), "publish {seq}: unexpected answer {v}");
        }
        failures += 1;
        assert!(Instant::now() < deadline, "publish {seq} never accepted: {answer:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_killed_and_restarted_mid_publish_loses_no_publication_for_recovering_subscribers() {
    let mut redis = RedisServer::start_persistent();
    let mut nodes = three_nodes(&redis);
    let channel = "hist:restart";
    let mut cmd = node_command(&nodes, &["tests/interop/js/cluster/redis_restart.mjs"]);
    cmd.env("TIDEWIRE_CHANNEL", channel).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("node runs");
    let mut stdin = child.stdin.take().expect("stdin");
    let (lines_tx, lines) = mpsc::channel::<String>();
    let stdout = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                return;
            }
        }
    });
    let next_line = |what: &str| {
        let line = lines.recv_timeout(Duration::from_secs(60));
        line.unwrap_or_else(|_| panic!("redis_restart.mjs printed no {what}"))
    };
    assert_eq!(next_line("ready"), "ready");

    const TOTAL: u64 = 40;
    const KILL_AFTER: u64 = 15;
    let mut failed = 0;
    for seq in 1..=TOTAL {
        let via = &nodes[(seq % 3) as usize].srv;
        let (offset, failures) = publish_until_accepted(via, channel, seq).await;
        assert_eq!(offset, seq, "the stream survived the restart: offsets continue");
        failed += failures;
        if seq == KILL_AFTER {
            redis.kill();
            for n in &nodes {
                health_becomes(&n.srv, 503).await;
            }
            // A publish while Redis is away fails within the IO timeout; nothing hangs.
            let started = Instant::now();
            let (status, v) = nodes[0].srv.api("publish", json!({"channel": channel, "data": {}})).await;
            assert_eq!((status, v["error"]["code"].clone()), (200, json!(100)), "{v}");
            assert!(started.elapsed() < Duration::from_secs(3), "publish took {:?}", started.elapsed());
            redis = tokio::task::spawn_blocking(move || {
                redis.restart();
                redis
            })
            .await
            .expect("restart");
            for n in &nodes {
                health_becomes(&n.srv, 200).await;
            }
        }
    }
    writeln!(stdin, "done {TOTAL}").expect("write to redis_restart.mjs");
    let result: Value = serde_json::from_str(&next_line("result")).expect("result JSON");
    let status = child.wait().expect("node exits");
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    assert!(status.success(), "redis_restart.mjs failed: {err}");
    let all: Vec<u64> = (1..=TOTAL).collect();
    for (i, offsets) in result["offsets"].as_array().expect("offsets").iter().enumerate() {
        let got: Vec<u64> = offsets.as_array().expect("list").iter().filter_map(Value::as_u64).collect();
        assert_eq!(got, all, "subscriber on node {i}: every offset exactly once, in order ({})", result["subscribed"][i]);
    }
    println!("publish retries while Redis was away: {failed}; subscribes: {}", result["subscribed"]);
    for n in &mut nodes {
        assert!(n.alive(), "no node process exited while Redis was away");
        assert_eq!(health(&n.srv).await, 200, "every node still serves");
    }
}
