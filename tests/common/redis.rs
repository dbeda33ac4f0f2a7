//! Real Redis for tests: each test starts its own `redis-server` (Debian's package, which
//! scripts/test.sh installs) on a free loopback port in a temp dir, with persistence off,
//! and stops it by PID when dropped. Also a 3-master Redis Cluster.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long a redis-server may take to answer PING after it was started.
const READY_WITHIN: Duration = Duration::from_secs(10);
/// Attempts at finding a free port before a test gives up.
const PORT_ATTEMPTS: u32 = 20;

fn temp_dir(what: &str) -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("tidewire-{what}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn bindable(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// A port that was free a moment ago (the listener is dropped: redis must bind it itself).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// A free port whose cluster bus port (+10000) is free too.
fn free_cluster_port() -> u16 {
    for _ in 0..200 {
        let port = rand::random_range(20_000u16..30_000);
        if bindable(port) && bindable(port + 10_000) {
            return port;
        }
    }
    panic!("no free port pair for a cluster node");
}

/// Whether a Redis on `port` answers PING.
pub fn pings(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

/// Runs `redis-cli -p PORT ARGS…` and returns its stdout (trimmed).
pub fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("redis-cli runs (apt-get install redis-server)");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// One `redis-server` process of this test.
pub struct RedisServer {
    child: Option<Child>,
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: PathBuf,
    extra: Vec<String>,
}

impl RedisServer {
    /// Starts a standalone Redis on a free port.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a standalone Redis that keeps its data across a kill -9: an append-only
    /// file written on every command (`--appendonly yes --appendfsync always`).
    pub fn start_persistent() -> Self {
        Self::start_with(&["--appendonly", "yes", "--appendfsync", "always"])
    }

    fn start_with(extra: &[&str]) -> Self {
        let dir = temp_dir("redis");
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        for _ in 0..PORT_ATTEMPTS {
            let mut server = Self { child: None, port: free_port(), dir: dir.clone(), extra: extra.clone() };
            if server.spawn() {
                return server;
            }
        }
        panic!("redis-server did not start on any of {PORT_ATTEMPTS} ports (is it installed? scripts/test.sh installs it)");
    }

    fn start_on(port: u16, extra: &[&str]) -> Option<Self> {
        let mut server =
            Self { child: None, port, dir: temp_dir("redis"), extra: extra.iter().map(|s| s.to_string()).collect() };
        server.spawn().then_some(server)
    }

    /// Spawns redis-server on `self.port`; false when it exits or never answers.
    fn spawn(&mut self) -> bool {
        let log = std::fs::File::create(self.dir.join(format!("redis-{}.log", self.port))).expect("log file");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--dir", &self.dir.display().to_string(), "--daemonize", "no", "--protected-mode", "no"])
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts (apt-get install redis-server)");
        self.child = Some(child);
        let deadline = Instant::now() + READY_WITHIN;
        while Instant::now() < deadline {
            if let Some(Ok(Some(_))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                return false;
            }
            if pings(self.port) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        false
    }

    /// `redis://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the process (SIGKILL, by PID) and waits for it: every key is lost.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts redis-server again on the same port (empty, as after a crash without
    /// persistence). Retries briefly while the old socket is released.
    pub fn restart(&mut self) {
        self.kill();
        for _ in 0..50 {
            if self.spawn() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("redis-server did not restart on port {}", self.port);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Redis Cluster of 3 masters and no replicas, each node a process of this test.
pub struct RedisCluster {
    /// The nodes (dropped, so stopped, with the cluster).
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts 3 cluster-enabled nodes, joins them with `redis-cli --cluster create` and
    /// waits until the cluster says `cluster_state:ok` everywhere.
    pub fn start() -> Self {
        for _ in 0..5 {
            let mut nodes = Vec::new();
            for _ in 0..3 {
                let port = free_cluster_port();
                let conf = format!("nodes-{port}.conf");
                let flags = ["--cluster-enabled", "yes", "--cluster-config-file", &conf, "--cluster-node-timeout", "5000"];
                match RedisServer::start_on(port, &flags) {
                    Some(n) => nodes.push(n),
                    None => break,
                }
            }
            if nodes.len() < 3 {
                continue;
            }
            let addrs: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
            let status = Command::new("redis-cli")
                .arg("--cluster")
                .arg("create")
                .args(&addrs)
                .args(["--cluster-replicas", "0", "--cluster-yes"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("redis-cli runs");
            assert!(status.success(), "redis-cli --cluster create failed");
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if nodes.iter().all(|n| cli(n.port, &["cluster", "info"]).contains("cluster_state:ok")) {
                    return Self { nodes };
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            panic!("the cluster never reached cluster_state:ok");
        }
        panic!("could not start 3 cluster nodes");
    }

    /// `redis+cluster://first?addr=second&addr=third`
    pub fn url(&self) -> String {
        let p: Vec<u16> = self.nodes.iter().map(|n| n.port).collect();
        format!("redis+cluster://127.0.0.1:{}?addr=127.0.0.1:{}&addr=127.0.0.1:{}", p[0], p[1], p[2])
    }

    /// Keys on each node (DBSIZE).
    pub fn key_counts(&self) -> Vec<u64> {
        self.nodes.iter().map(|n| cli(n.port, &["dbsize"]).parse().unwrap_or(0)).collect()
    }
}
