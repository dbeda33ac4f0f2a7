//! Real Redis for tests: each test starts its own `redis-server` (Debian's package, which
//! scripts/test.sh installs) on a free loopback port in a temp dir, with persistence off,
//! and stops it by PID when dropped. Also a 3-master Redis Cluster, a Redis serving TLS
//! only (certificates made here with rcgen) and a Sentinel watching a primary.

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

/// Runs `cmd` with its stdout captured, killing it (by PID) past `within`: its stdout
/// (trimmed), or None when it failed or was killed.
fn run_bounded(cmd: &mut Command, within: Duration) -> Option<String> {
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().ok()?;
    let deadline = Instant::now() + within;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let mut out = String::new();
                child.stdout.take()?.read_to_string(&mut out).ok()?;
                return status.success().then(|| out.trim().to_string());
            }
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// A CA and, signed by it, a server certificate for `127.0.0.1`/`localhost` and a client
/// certificate, as PEM text and as files in a temp dir (removed on drop).
pub struct TestCa {
    dir: PathBuf,
    /// The CA certificate, PEM.
    pub ca_pem: String,
    /// The same, as a file.
    pub ca_file: PathBuf,
    /// The server's certificate and key files.
    pub server_cert_file: PathBuf,
    pub server_key_file: PathBuf,
    /// A client certificate (for mutual TLS) and its key, PEM.
    pub client_cert_pem: String,
    pub client_key_pem: String,
    pub client_cert_file: PathBuf,
    pub client_key_file: PathBuf,
}

impl TestCa {
    /// Generates a fresh CA (ECDSA P-256) named `name` and the two certificates.
    pub fn new(name: &str) -> Self {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
            KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
        };
        let key = || KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key pair");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        ca.distinguished_name.push(DnType::CommonName, name);
        let ca = CertifiedIssuer::self_signed(ca, key()).expect("ca certificate");

        let server_key = key();
        let mut server = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".into()]).expect("params");
        server.distinguished_name.push(DnType::CommonName, "redis test server");
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server = server.signed_by(&server_key, &ca).expect("server certificate");

        let client_key = key();
        let mut client = CertificateParams::new(vec!["tidewire-test-client".to_string()]).expect("params");
        client.distinguished_name.push(DnType::CommonName, "tidewire test client");
        client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client = client.signed_by(&client_key, &ca).expect("client certificate");

        let dir = temp_dir("tls");
        let write = |file: &str, text: &str| {
            let path = dir.join(file);
            std::fs::write(&path, text).expect("write a PEM file");
            path
        };
        let (ca_pem, client_cert_pem, client_key_pem) = (ca.pem(), client.pem(), client_key.serialize_pem());
        Self {
            ca_file: write("ca.pem", &ca_pem),
            server_cert_file: write("server.pem", &server.pem()),
            server_key_file: write("server.key", &server_key.serialize_pem()),
            client_cert_file: write("client.pem", &client_cert_pem),
            client_key_file: write("client.key", &client_key_pem),
            ca_pem,
            client_cert_pem,
            client_key_pem,
            dir,
        }
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// How a TLS-only redis-server is set up: certificate files (copied paths of a [`TestCa`]).
#[derive(Clone)]
struct TlsSetup {
    ca_file: PathBuf,
    cert_file: PathBuf,
    key_file: PathBuf,
    client_cert_file: PathBuf,
    client_key_file: PathBuf,
    auth_clients: bool,
}

/// One `redis-server` process of this test.
pub struct RedisServer {
    child: Option<Child>,
    /// Its port on 127.0.0.1 (the TLS port of a TLS-only server).
    pub port: u16,
    dir: PathBuf,
    extra: Vec<String>,
    tls: Option<TlsSetup>,
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

    /// Starts a Redis that serves TLS only (`--port 0 --tls-port …`) with `ca`'s server
    /// certificate; `auth_clients` makes it require a client certificate signed by `ca`.
    pub fn start_tls(ca: &TestCa, auth_clients: bool) -> Self {
        let tls = TlsSetup {
            ca_file: ca.ca_file.clone(),
            cert_file: ca.server_cert_file.clone(),
            key_file: ca.server_key_file.clone(),
            client_cert_file: ca.client_cert_file.clone(),
            client_key_file: ca.client_key_file.clone(),
            auth_clients,
        };
        Self::start_inner(&[], Some(&tls))
    }

    fn start_with(extra: &[&str]) -> Self {
        Self::start_inner(extra, None)
    }

    fn start_inner(extra: &[&str], tls: Option<&TlsSetup>) -> Self {
        let dir = temp_dir("redis");
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        for _ in 0..PORT_ATTEMPTS {
            let mut server =
                Self { child: None, port: free_port(), dir: dir.clone(), extra: extra.clone(), tls: tls.cloned() };
            if server.spawn() {
                return server;
            }
        }
        panic!("redis-server did not start on any of {PORT_ATTEMPTS} ports (is it installed? scripts/test.sh installs it)");
    }

    fn start_on(port: u16, extra: &[&str]) -> Option<Self> {
        let extra = extra.iter().map(|s| s.to_string()).collect();
        let mut server = Self { child: None, port, dir: temp_dir("redis"), extra, tls: None };
        server.spawn().then_some(server)
    }

    /// Spawns redis-server on `self.port`; false when it exits or never answers.
    fn spawn(&mut self) -> bool {
        let log = std::fs::File::create(self.dir.join(format!("redis-{}.log", self.port))).expect("log file");
        let mut cmd = Command::new("redis-server");
        let port = self.port.to_string();
        match &self.tls {
            None => cmd.args(["--port", &port]),
            Some(t) => cmd
                .args(["--port", "0", "--tls-port", &port])
                .arg("--tls-cert-file")
                .arg(&t.cert_file)
                .arg("--tls-key-file")
                .arg(&t.key_file)
                .arg("--tls-ca-cert-file")
                .arg(&t.ca_file)
                .args(["--tls-auth-clients", if t.auth_clients { "yes" } else { "no" }]),
        };
        let child = cmd
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
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
            if self.answers() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        false
    }

    /// Whether it answers PING (over TLS, with the client certificate, for a TLS server).
    fn answers(&self) -> bool {
        let Some(t) = &self.tls else { return pings(self.port) };
        let mut cmd = Command::new("redis-cli");
        cmd.args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "--tls", "--cacert"])
            .arg(&t.ca_file)
            .arg("--cert")
            .arg(&t.client_cert_file)
            .arg("--key")
            .arg(&t.client_key_file)
            .arg("ping");
        run_bounded(&mut cmd, Duration::from_secs(2)).is_some_and(|out| out == "PONG")
    }

    /// `redis://127.0.0.1:PORT`, or `rediss://127.0.0.1:PORT` for a TLS server.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}", self.port)
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

/// A `redis-server --sentinel` watching a primary (its own standalone redis-server, started
/// with it) under a name; both stopped by PID when dropped.
pub struct RedisSentinel {
    child: Option<Child>,
    /// The Sentinel's port on 127.0.0.1.
    pub port: u16,
    /// The primary it watches.
    pub primary: RedisServer,
    /// The primary's name as the Sentinel knows it.
    pub master: String,
    dir: PathBuf,
}

impl RedisSentinel {
    /// Starts a primary and a Sentinel monitoring it as `master` (quorum 1), and waits until
    /// the Sentinel answers `get-master-addr-by-name` with the primary's address.
    pub fn start(master: &str) -> Self {
        let primary = RedisServer::start();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            let dir = temp_dir("sentinel");
            let conf = dir.join("sentinel.conf");
            let text = format!(
                "port {port}\nbind 127.0.0.1\nprotected-mode no\ndaemonize no\ndir {}\n\
                 sentinel monitor {master} 127.0.0.1 {} 1\nsentinel down-after-milliseconds {master} 1000\n",
                dir.display(),
                primary.port
            );
            std::fs::write(&conf, text).expect("sentinel.conf");
            let log = std::fs::File::create(dir.join("sentinel.log")).expect("log file");
            let mut child = Command::new("redis-server")
                .arg(&conf)
                .arg("--sentinel")
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server --sentinel starts (apt-get install redis-server)");
            let want = format!("127.0.0.1\n{}", primary.port);
            let deadline = Instant::now() + READY_WITHIN;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if cli(port, &["sentinel", "get-master-addr-by-name", master]) == want {
                    return Self { child: Some(child), port, primary, master: master.to_string(), dir };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_dir_all(&dir);
        }
        panic!("redis-server --sentinel did not come up knowing {master} on any of {PORT_ATTEMPTS} ports");
    }

    /// `redis+sentinel://127.0.0.1:PORT?sentinel_master_name=MASTER`
    pub fn url(&self) -> String {
        format!("redis+sentinel://127.0.0.1:{}?sentinel_master_name={}", self.port, self.master)
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisSentinel {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
