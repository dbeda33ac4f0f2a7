//! README.md and the `serve` banner, used as a new user would: the banner's commands are
//! run exactly as printed, README's "Try it" snippets are run as written (only the address
//! `127.0.0.1:8000` and the `<API key>` / `<HMAC secret>` placeholders are replaced by the
//! test server's), and a publication through them must reach a subscriber.
//!
//! The Node snippet runs with tests/interop/js's packages (centrifuge, ws), the browser
//! snippet in headless Debian Chromium through tests/browser's playwright-core, the `cent`
//! snippet with the interop suite's pinned Python package: scripts/test.sh installs them.

use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// Longest wait for a banner, a snippet's output or a delivery.
const WAIT: Duration = Duration::from_secs(30);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_tidewire")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tidewire-readme-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Lines of a child's stdout, read on a thread so the child never blocks on a full pipe.
fn line_reader(out: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Reads lines until one satisfies `done` (returned) or [`WAIT`] passes (panics with what
/// was seen). Every line read is appended to `seen`.
fn wait_for_line(rx: &mpsc::Receiver<String>, seen: &mut Vec<String>, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                seen.push(line.clone());
                if done(&line) {
                    return line;
                }
            }
            Err(_) => panic!("no {what} within {WAIT:?}; output so far:\n{}", seen.join("\n")),
        }
    }
}

/// A `tidewire serve` process, stopped (by its PID) when dropped.
struct Served {
    child: Child,
    banner: Vec<String>,
}

impl Served {
    /// Starts `tidewire serve ARGS` in `dir` and reads its stdout up to the banner's
    /// `Publish:` line. Logs go to stdout too (plain text, no colour codes: not a terminal).
    fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(bin());
        cmd.arg("serve").args(args).current_dir(dir).env("TIDEWIRE_LOG", "info").stdout(Stdio::piped()).stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn tidewire serve");
        let rx = line_reader(child.stdout.take().expect("stdout"));
        let mut banner = Vec::new();
        wait_for_line(&rx, &mut banner, "banner", |l| l.trim_start().starts_with("Publish:"));
        Self { child, banner }
    }

    fn text(&self) -> String {
        self.banner.join("\n")
    }

    /// The banner line's value after `label` (e.g. `"HMAC secret:"`), up to the first space.
    fn value(&self, label: &str) -> Option<String> {
        self.banner.iter().find_map(|l| l.trim().strip_prefix(label).map(|v| v.split_whitespace().next().unwrap_or("").to_owned()))
    }

    /// The rest of the banner line after `label`, as printed.
    fn line(&self, label: &str) -> String {
        self.banner
            .iter()
            .find_map(|l| l.trim().strip_prefix(label).map(|v| v.trim().to_owned()))
            .unwrap_or_else(|| panic!("no {label:?} line in the banner:\n{}", self.text()))
    }

    /// `127.0.0.1:PORT` of the HTTP listener, from the `WebSocket:` line.
    fn addr(&self) -> String {
        self.line("WebSocket:").trim_start_matches("ws://").trim_end_matches("/connection/websocket").to_owned()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `script` with `sh -c`, bounded by [`WAIT`].
fn sh(script: &str, dir: &Path) -> Output {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sh");
    let deadline = Instant::now() + WAIT;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("`{script}` ran over {WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

fn ok_stdout(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A WebSocket client with `token`, subscribed to `channel` on `addr`.
async fn subscriber(addr: &str, token: &str, channel: &str) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/connection/websocket")).await.expect("ws connect");
    let commands = format!("{}\n{}", json!({"id": 1, "connect": {"token": token}}), json!({"id": 2, "subscribe": {"channel": channel}}));
    ws.send(Message::text(commands)).await.expect("send");
    let mut subscribed = false;
    while !subscribed {
        for v in next_values(&mut ws).await {
            assert!(v.get("error").is_none(), "refused: {v}");
            subscribed |= v["id"] == 2 && v.get("subscribe").is_some();
        }
    }
    ws
}

async fn next_values(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
) -> Vec<Value> {
    let msg = tokio::time::timeout(WAIT, ws.next()).await.expect("a frame in time").expect("open").expect("frame");
    let text = msg.into_text().expect("text frame");
    text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).expect("json")).collect()
}

/// Waits for a publication on the subscriber and returns its data.
async fn publication(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
) -> Value {
    loop {
        for v in next_values(ws).await {
            if let Some(p) = v.pointer("/push/pub") {
                return p["data"].clone();
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_banners_commands_run_as_printed_and_reach_a_subscriber() {
    let dir = temp_dir("banner");
    let srv = Served::start(&dir, &["--port", "0"], &[]);
    let text = srv.text();
    assert!(!text.contains('\u{1b}'), "no colour codes when stdout is a pipe:\n{text}");
    // The token command runs as printed (no `tidewire` on the PATH needed).
    let mint = srv.line("Mint a connection token:");
    assert!(mint.starts_with(bin()), "names the binary's path: {mint}");
    let token = ok_stdout(&sh(&mint, &dir), "the banner's token command").trim().to_owned();
    // Demo mode: the printed channel is one clients may use.
    let mut ws = subscriber(&srv.addr(), &token, "chat:lobby").await;
    let publish = srv.line("Publish:");
    assert!(publish.contains("chat:lobby"), "{publish}");
    let answer = ok_stdout(&sh(&publish, &dir), "the banner's curl publish");
    assert!(answer.contains("\"result\""), "{answer}");
    assert_eq!(publication(&mut ws).await, json!({"text": "hi"}));
}

#[test]
fn configured_secrets_are_never_printed_and_the_token_command_reads_the_config() {
    let dir = temp_dir("configured");
    let secret = "configured-hmac-secret-0123456789";
    let key = "configured-api-key-0123456789";
    let path = dir.join("tidewire.toml");
    std::fs::write(&path, format!("[client.token]\nhmac_secret_key = \"{secret}\"\n[http_api]\nkey = \"{key}\"\n")).expect("write");
    let srv = Served::start(&dir, &["--config", path.to_str().expect("utf8"), "--port", "0"], &[]);
    let text = srv.text();
    assert!(!text.contains(secret) && !text.contains(key), "configured secrets stay out of the output:\n{text}");
    assert!(srv.value("API key:").is_none() && srv.value("HMAC secret:").is_none(), "{text}");
    let mint = srv.line("Mint a connection token:");
    assert!(mint.contains("--config") && !mint.contains("--secret"), "{mint}");
    let token = ok_stdout(&sh(&mint, &dir), "the banner's token command").trim().to_owned();
    let verifier = tidewire::auth::Verifier::new(&tidewire::config::TokenConfig { hmac_secret_key: secret.into(), ..Default::default() })
        .expect("verifier");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    assert_eq!(verifier.connect(&token, now).expect("signed with the configured secret").user, "42");

    // A config without secrets: the generated ones are printed (they are needed).
    let bare = dir.join("bare.toml");
    std::fs::write(&bare, "[log]\nlevel = \"info\"\n").expect("write");
    let srv = Served::start(&dir, &["--config", bare.to_str().expect("utf8"), "--port", "0"], &[]);
    let secret = srv.value("HMAC secret:").expect("a generated secret is printed");
    assert!(srv.value("API key:").is_some(), "{}", srv.text());
    assert!(srv.line("Mint a connection token:").contains(&secret));
}

/// A port whose TCP and UDP numbers and UDP + 1000 are free on 127.0.0.1 now.
fn free_port_pair() -> u16 {
    for _ in 0..200 {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = tcp.local_addr().expect("addr").port();
        let Some(h3) = port.checked_add(1000) else { continue };
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() && UdpSocket::bind(("127.0.0.1", h3)).is_ok() {
            return port;
        }
    }
    panic!("no free port pair found");
}

#[test]
fn two_servers_on_one_host_need_only_different_ports() {
    let dir = temp_dir("two");
    let a = free_port_pair();
    let srv_a = Served::start(&dir, &["--port", &a.to_string()], &[]);
    let b = free_port_pair();
    let srv_b = Served::start(&dir, &["--port", &b.to_string()], &[]);
    assert!(srv_a.line("HTTP/3 API:").contains(&format!(":{}/", a + 1000)), "{}", srv_a.text());
    assert!(srv_b.line("HTTP/3 API:").contains(&format!(":{}/", b + 1000)), "{}", srv_b.text());

    // A clash names the key to change.
    let c = free_port_pair();
    let out = Command::new(bin())
        .args(["serve", "--port", &c.to_string()])
        .current_dir(&dir)
        .env("TIDEWIRE_HTTP_SERVER_HTTP3_PORT", (a + 1000).to_string())
        .stdout(Stdio::null())
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("http_server.http3.port"), "{err}");
    drop((srv_a, srv_b));
}

/// README's "Try it" section: its fenced code blocks, in order, as (language, text).
fn try_it_blocks() -> Vec<(String, String)> {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let start = readme.find("\n## Try it\n").expect("a Try it section");
    let section = &readme[start + 1..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |e| e + 3)];
    let mut blocks = Vec::new();
    let mut lines = section.lines();
    while let Some(line) = lines.next() {
        if let Some(lang) = line.strip_prefix("```") {
            let body: Vec<&str> = lines.by_ref().take_while(|l| !l.starts_with("```")).collect();
            blocks.push((lang.to_owned(), body.join("\n") + "\n"));
        }
    }
    blocks
}

/// Points a README snippet at the test server.
fn localize(snippet: &str, addr: &str, api_key: &str, secret: &str) -> String {
    snippet
        .replace("127.0.0.1:8000", addr)
        .replace("<API key>", api_key)
        .replace("<HMAC secret>", secret)
        .replace("cargo run -q --release --", bin())
}

#[test]
fn readme_try_it_snippets_run_as_written() {
    let blocks = try_it_blocks();
    let langs: Vec<&str> = blocks.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(langs, ["sh", "js", "js", "sh", "sh"], "the Try it blocks this test runs: token, Node, browser, curl, cent");
    let modules = root().join("tests/interop/js/node_modules");
    assert!(modules.join("centrifuge").exists(), "{} is missing: run ./scripts/test.sh once", modules.display());

    let dir = temp_dir("try-it");
    let srv = Served::start(&dir, &["--port", "0"], &[]);
    let addr = srv.addr();
    let api_key = srv.value("API key:").expect("generated API key printed");
    let secret = srv.value("HMAC secret:").expect("generated secret printed");
    let here = |i: usize| localize(&blocks[i].1, &addr, &api_key, &secret);

    // 1. The token: every line but the one that starts the server (running already).
    let token_block: String = here(0).lines().filter(|l| !l.contains(" serve")).collect::<Vec<_>>().join("\n");
    let token = ok_stdout(&sh(&token_block, &dir), "README's token commands").trim().to_owned();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");

    // 2. The Node client, from a directory that sees the interop suite's packages.
    let node_dir = dir.join("node");
    std::fs::create_dir_all(&node_dir).expect("dir");
    let _ = std::fs::remove_file(node_dir.join("node_modules"));
    std::os::unix::fs::symlink(&modules, node_dir.join("node_modules")).expect("symlink node_modules");
    std::fs::write(node_dir.join("client.mjs"), here(1)).expect("write client.mjs");
    let mut node = NodeChild::spawn(Command::new("node").arg("client.mjs").current_dir(&node_dir).env("TOKEN", &token));
    node.wait_for("the Node client's subscription", |l| l == "subscribed");

    // 3. curl publishes; the Node client gets it.
    let answer = ok_stdout(&sh(&here(3), &dir), "README's curl publish");
    assert!(answer.contains("\"result\""), "{answer}");
    node.wait_for("the curl publication in Node", |l| l == r#"got {"text":"hello"}"#);

    // 4. cent publishes; the Node client gets it.
    let answer = ok_stdout(&sh(&here(4), &dir), "README's cent publish");
    assert!(answer.contains("offset") || answer.contains("PublishResult"), "{answer}");
    node.wait_for("the cent publication in Node", |l| l == r#"got {"text":"hello from cent"}"#);
    drop(node);

    // 5. The browser SDK snippet in Chromium; curl publishes until it arrives (the snippet
    // subscribes while connecting, so the first publish may precede its subscription).
    let mut browser = NodeChild::spawn(
        Command::new("node")
            .arg(root().join("tests/readme/browser_snippet.mjs"))
            .env("TIDEWIRE_HTTP", format!("http://{addr}"))
            .env("TOKEN", &token)
            .env("SNIPPET", here(2))
            .env("DEADLINE_MS", (WAIT.as_millis() as u64).to_string()),
    );
    browser.wait_for("the browser client to connect", |l| l.starts_with("console: connected"));
    let deadline = Instant::now() + WAIT;
    loop {
        ok_stdout(&sh(&here(3), &dir), "README's curl publish");
        if browser.seen_within(Duration::from_millis(500), |l| l == r#"console: got {"text":"hello"}"#) {
            break;
        }
        assert!(Instant::now() < deadline, "the browser never got the publication:\n{}", browser.seen.join("\n"));
    }
}

/// A Node process whose stdout is read line by line; killed (by PID) when dropped.
struct NodeChild {
    child: Child,
    rx: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl NodeChild {
    fn spawn(cmd: &mut Command) -> Self {
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("spawn node");
        let out: ChildStdout = child.stdout.take().expect("stdout");
        Self { child, rx: line_reader(out), seen: Vec::new() }
    }

    fn wait_for(&mut self, what: &str, done: impl Fn(&str) -> bool) {
        wait_for_line(&self.rx, &mut self.seen, what, done);
    }

    fn seen_within(&mut self, d: Duration, done: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + d;
        while let Ok(line) = self.rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            let hit = done(&line);
            self.seen.push(line);
            if hit {
                return true;
            }
        }
        false
    }
}

impl Drop for NodeChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
