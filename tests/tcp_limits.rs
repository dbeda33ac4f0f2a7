//! The TCP listener's bounds (issue 9, item 4): a request whose headers never complete is
//! closed after `http_server.header_read_timeout`, so is an idle HTTP/1.1 keep-alive
//! connection; WebSocket connections outlive it; `/health` and the API keep answering
//! when clients exhaust the client connection limit, including the default one derived
//! from the process's open-file limit (checked on the real binary under `ulimit -n`).

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{API_KEY, CHANNELS, SECRET, TestServer, WAIT};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The header timeout these tests configure: short, so a test takes a second, not ten.
const HEADER_TIMEOUT: Duration = Duration::from_millis(500);

async fn start_with_timeout(extra_http_server: &str, extra: &str) -> TestServer {
    let text = format!(
        "[http_server]\naddress = \"127.0.0.1\"\nport = 0\nheader_read_timeout = \"500ms\"\n{extra_http_server}\n\
         [client.token]\nhmac_secret_key = \"{SECRET}\"\n[http_api]\nkey = \"{API_KEY}\"\n{CHANNELS}\n{extra}"
    );
    common::start_with_text(&text).await
}

/// Reads until the server closes; returns how long that took, or None past `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout_at((started + limit).into(), stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn requests_whose_headers_never_complete_are_closed_after_the_timeout() {
    let srv = start_with_timeout("", "").await;
    // Partial HTTP/1.1 headers, nothing at all, a partial HTTP/2 preface: 40 of each.
    let starts: [&[u8]; 3] = [b"GET /health HTTP/1.1\r\nHost: a\r\nX-Slow: 1\r\n", b"", b"PRI * HTTP/2.0\r\n"];
    let mut tasks = Vec::new();
    for i in 0..120 {
        let (addr, start) = (srv.addr, starts[i % 3]);
        tasks.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.expect("connect");
            s.write_all(start).await.expect("write");
            (String::from_utf8_lossy(start).into_owned(), closed_within(&mut s, HEADER_TIMEOUT + WAIT).await)
        }));
    }
    for t in tasks {
        let (start, took) = t.await.expect("task");
        let took = took.unwrap_or_else(|| panic!("{start:?}: still open {:?} after connecting", HEADER_TIMEOUT + WAIT));
        assert!(took >= HEADER_TIMEOUT - Duration::from_millis(100), "{start:?}: closed too early ({took:?})");
    }
    // The server still serves complete requests.
    assert_eq!(srv.http.get(srv.url("/health")).send().await.expect("health").status().as_u16(), 200);
    srv.shutdown().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_timeout() {
    let srv = start_with_timeout("", "").await;
    let mut s = TcpStream::connect(srv.addr).await.expect("connect");
    s.write_all(b"GET /health HTTP/1.1\r\nHost: a\r\n\r\n").await.expect("write");
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(WAIT, s.read(&mut buf)).await.expect("answer in time").expect("read");
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..n]));
    let took = closed_within(&mut s, HEADER_TIMEOUT + WAIT).await.expect("idle keep-alive connection closed");
    assert!(took >= HEADER_TIMEOUT - Duration::from_millis(100), "closed too early ({took:?})");
    srv.shutdown().await;
}

#[tokio::test]
async fn websockets_outlive_the_header_timeout() {
    let srv = start_with_timeout("", "").await;
    let (mut ws, _) = srv.client("u1").await;
    tokio::time::sleep(HEADER_TIMEOUT * 3).await;
    let reply = ws.subscribe(2, "news").await;
    assert!(reply.get("subscribe").is_some(), "{reply}");
    srv.shutdown().await;
}

#[tokio::test]
async fn health_and_api_answer_while_clients_hold_the_whole_connection_limit() {
    let srv = start_with_timeout("", "[client]\nconnection_limit = 5\n").await;
    let mut clients = Vec::new();
    for i in 0..5 {
        clients.push(srv.client(&format!("u{i}")).await);
    }
    // The next client is refused before the upgrade …
    let refused = tokio_tungstenite::connect_async(srv.ws_url()).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status().as_u16(), 503),
        other => panic!("expected 503 over the limit, got {:?}", other.map(|(_, r)| r.status())),
    }
    // … while health and the API answer.
    assert_eq!(srv.http.get(srv.url("/health")).send().await.expect("health").status().as_u16(), 200);
    let (status, info) = srv.api("info", json!({})).await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["result"]["nodes"][0]["num_clients"], 5, "{info}");
    drop(clients);
    srv.shutdown().await;
}

/// The default limit on the real binary started under `ulimit -n 256`: clients trying
/// to open more WebSockets than the process has descriptors are refused with 503 before
/// the fd table fills, and `/health` and the API still answer. (With no limit, accept
/// fails with EMFILE and both stop answering.)
#[tokio::test]
async fn the_default_limit_keeps_fds_for_health_and_api_under_a_small_rlimit() {
    const FDS: usize = 256;
    const ATTEMPTS: usize = 300;
    let dir = std::env::temp_dir().join(format!("tidewire-fdlimit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let bin = env!("CARGO_BIN_EXE_tidewire");
    let mut child = Command::new("sh")
        .args(["-c", &format!("ulimit -n {FDS} && exec \"$0\" serve"), bin])
        .current_dir(&dir)
        .env("TIDEWIRE_HTTP_SERVER_PORT", "0")
        .env("TIDEWIRE_HTTP_API_KEY", API_KEY)
        .env("TIDEWIRE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    let stdout = child.stdout.take().expect("stdout");
    // Read the address, then keep draining: the server logs to stdout, and a closed pipe
    // would kill it.
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.trim().strip_prefix("WebSocket:") {
                let _ = addr_tx.send(rest.trim().trim_start_matches("ws://").trim_end_matches("/connection/websocket").to_owned());
            }
        }
    });
    let addr = tokio::task::spawn_blocking(move || addr_rx.recv_timeout(Duration::from_secs(20)).ok()).await.expect("reader");
    let result = std::panic::AssertUnwindSafe(async {
        let addr = addr.expect("the server prints its address");
        let url = format!("ws://{addr}/connection/websocket");
        let (mut open, mut refused) = (Vec::new(), 0);
        for _ in 0..ATTEMPTS {
            match tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(&url)).await {
                Ok(Ok((ws, _))) => open.push(ws),
                Ok(Err(tokio_tungstenite::tungstenite::Error::Http(r))) if r.status().as_u16() == 503 => refused += 1,
                other => panic!("after {} open: neither a WebSocket nor a 503: {other:?}", open.len()),
            }
        }
        assert!(refused > 0 && open.len() < FDS, "{} open, {refused} refused under {FDS} fds", open.len());
        let http = reqwest::Client::new();
        let health = tokio::time::timeout(WAIT, http.get(format!("http://{addr}/health")).send()).await;
        assert_eq!(health.expect("health in time").expect("health").status().as_u16(), 200);
        let info = http.post(format!("http://{addr}/api/info")).header("X-API-Key", API_KEY).body("{}").send();
        let info = tokio::time::timeout(WAIT, info).await.expect("api in time").expect("api");
        assert_eq!(info.status().as_u16(), 200);
        drop(open);
    });
    let outcome = futures_util::FutureExt::catch_unwind(result).await;
    let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
