//! The server under test: a Tidewire child process the bench configures and
//! spawns, a limit-server child (`--compare-limit`), several Tidewire nodes
//! on a redis-server child of the bench's own (`--engine redis --nodes N`), or
//! an already-running `--target` — and what the bench reads of them from
//! /proc (RSS, CPU time).
//!
//! A spawned server listens on a free 127.0.0.1 port, writes its output to
//! `<tmp>/server.log` (kept when the run fails), and is killed by PID — by
//! `ServerProcess::stop` or, on any other path, its `Drop` — before the run
//! returns. limit-server also gets a bounded `--lifetime`, so it exits on its
//! own even if the bench itself is killed. The bench's redis-server listens on
//! a free 127.0.0.1 port with persistence off (`--save "" --appendonly no`)
//! in its own temp dir and is killed by PID the same way, after the nodes
//! (`Deployment` holds them in that drop order). A `--target` is never
//! signalled; its /proc figures come from `--target-pid` or are reported as
//! unknown.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, anyhow, bail};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::http::HttpConn;
use crate::scenario::{API_KEY, Args, HMAC_SECRET};

/// How long a spawned server gets to answer its readiness probe after spawn.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(20);
/// How long an already-running `--target` gets to answer the probe.
const TARGET_PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// Linux `CLK_TCK` (USER_HZ) used to convert `/proc/<pid>/stat` times; it is
/// 100 on every mainstream Linux build and we cannot ask `sysconf` safely.
const CLOCK_TICKS_PER_SEC: f64 = 100.0;
/// limit-server's manifest, relative to the project root (/work/shared is
/// read-only, so the build goes to the project's own target/).
const LIMIT_MANIFEST: &str = "../shared/tools/limit-server/Cargo.toml";
/// Where limit-server is built, relative to the project root.
const LIMIT_TARGET_DIR: &str = "target/limit-server";
/// How long a spawned redis-server gets to answer PING (it starts in
/// milliseconds; this is for a loaded machine).
const REDIS_READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Free ports tried before giving up on starting redis-server: the port is
/// released before redis binds it, so another process may take it meanwhile.
const REDIS_PORT_ATTEMPTS: u32 = 5;

/// The server a run drives: where it listens and, when known, its PID.
#[derive(Clone, Debug)]
pub(crate) struct Server {
    /// `tidewire`, `limit-server`, or the `--target` URL: named in the report.
    pub(crate) name: String,
    /// Where clients connect (WebSocket and HTTP API on one port).
    pub(crate) addr: SocketAddr,
    /// The client UDP port (raw QUIC and WebTransport), spawned Tidewire only.
    pub(crate) quic: Option<SocketAddr>,
    /// Its PID, for /proc reads; `None` for a `--target` without `--target-pid`.
    pub(crate) pid: Option<u32>,
    /// Every node's client address, node 0 (= `addr`, where publishers go)
    /// first; one entry unless `--nodes` is above 1.
    pub(crate) nodes: Vec<SocketAddr>,
    /// PIDs of nodes 1…N−1; their RSS and CPU are added to node 0's.
    pub(crate) other_pids: Vec<u32>,
    /// The bench's redis-server (`--engine redis`), for its CPU figure.
    pub(crate) redis_pid: Option<u32>,
}

impl Server {
    /// An already-running server at `addr`: waits (≤ 5 s) until it answers HTTP
    /// at all — limit-server has no /health and answers 405 — and checks that
    /// `pid`, when given, is a live process.
    pub(crate) async fn target(name: &str, addr: SocketAddr, pid: Option<u32>) -> anyhow::Result<Self> {
        if let Some(pid) = pid {
            read_rss(pid).with_context(|| format!("--target-pid {pid}"))?;
        }
        wait_ready(addr, false, TARGET_PROBE_TIMEOUT, None)
            .await
            .with_context(|| format!("--target {name} is not answering"))?;
        Ok(Server::single(name, addr, None, pid))
    }

    /// One server process (or a `--target`) listening on `addr`.
    fn single(name: &str, addr: SocketAddr, quic: Option<SocketAddr>, pid: Option<u32>) -> Self {
        Server { name: name.to_owned(), addr, quic, pid, nodes: vec![addr], other_pids: Vec::new(), redis_pid: None }
    }

    /// VmRSS in bytes summed over the nodes, `None` when the PID is unknown.
    pub(crate) fn rss(&self) -> anyhow::Result<Option<u64>> {
        let Some(pid) = self.pid else { return Ok(None) };
        let mut total = read_rss(pid)?;
        for &other in &self.other_pids {
            total += read_rss(other)?;
        }
        Ok(Some(total))
    }

    /// User + system CPU seconds so far summed over the nodes, `None` when the
    /// PID is unknown.
    pub(crate) fn cpu_secs(&self) -> Option<f64> {
        let pid = self.pid?;
        Some(std::iter::once(pid).chain(self.other_pids.iter().copied()).map(proc_cpu_secs).sum())
    }

    /// The system (kernel) part of [`Self::cpu_secs`].
    pub(crate) fn sys_cpu_secs(&self) -> Option<f64> {
        let pid = self.pid?;
        Some(std::iter::once(pid).chain(self.other_pids.iter().copied()).map(|p| read_cpu_split(&format!("/proc/{p}/stat")).1).sum())
    }

    /// Each node's user + system CPU seconds so far, node 0 first (empty when
    /// the PID is unknown).
    pub(crate) fn node_cpu_secs(&self) -> Vec<f64> {
        self.pid.into_iter().chain(self.other_pids.iter().copied()).map(proc_cpu_secs).collect()
    }

    /// redis-server's user + system CPU seconds so far (`--engine redis`).
    pub(crate) fn redis_cpu_secs(&self) -> Option<f64> {
        self.redis_pid.map(proc_cpu_secs)
    }
}

/// How the bench configures a spawned Tidewire node.
#[derive(Clone, Debug, Default)]
pub(crate) struct TidewireOptions {
    /// `client.queue_max_size`, bytes.
    pub(crate) queue_max_size: u64,
    /// `history_size` of the bench channels (0: no history).
    pub(crate) history_size: usize,
    /// Deliver the bench channels as QUIC datagrams.
    pub(crate) datagram: bool,
    /// `batch_max_delay` of the bench channels, ms (0: off).
    pub(crate) batch_max_delay_ms: u32,
    /// `engine.redis.address` for `engine.type = "redis"`; `None`: the memory engine.
    pub(crate) redis_url: Option<String>,
}

impl TidewireOptions {
    /// The server options of `args`, on the memory engine.
    pub(crate) fn from_args(args: &Args) -> Self {
        TidewireOptions {
            queue_max_size: args.queue_max_size,
            history_size: args.history_size,
            datagram: args.datagram,
            batch_max_delay_ms: args.batch_max_delay_ms,
            redis_url: None,
        }
    }

    /// The `[engine]` name this configures.
    pub(crate) fn engine(&self) -> &'static str {
        if self.redis_url.is_some() { "redis" } else { "memory" }
    }
}

/// A spawned server child process; killed (by PID, via `Child::kill`) when
/// stopped or dropped.
pub(crate) struct ServerProcess {
    /// The spawned server.
    child: Child,
    /// What the run needs to know of it.
    server: Server,
    /// Temporary directory holding the config and the log.
    dir: PathBuf,
    /// The server's stdout + stderr.
    log_path: PathBuf,
}

impl ServerProcess {
    /// Writes a Tidewire config, spawns `<bin> serve --config <file>` and waits
    /// for `GET /health` → 200 (on Redis that includes the engine's connection).
    pub(crate) async fn start_tidewire(bin: &Path, options: &TidewireOptions) -> anyhow::Result<Self> {
        let TidewireOptions { queue_max_size, history_size, datagram, batch_max_delay_ms, ref redis_url } = *options;
        let port = free_port()?;
        let quic_port = free_udp_port()?;
        let dir = temp_dir("tidewire")?;
        let config_path = dir.join("config.toml");
        let mut history = if history_size > 0 {
            format!("history_size = {history_size}\nhistory_ttl = \"300s\"\nforce_recovery = true\n")
        } else {
            String::new()
        };
        if datagram {
            history.push_str("delivery = \"datagram\"\n");
        }
        if batch_max_delay_ms > 0 {
            history.push_str(&format!("batch_max_delay = \"{batch_max_delay_ms}ms\"\n"));
        }
        let engine = match redis_url {
            Some(url) => format!("[engine]\ntype = \"redis\"\n\n[engine.redis]\naddress = \"{url}\"\n\n"),
            None => String::new(),
        };
        // connection_limit = 0: the bench raised the file limit it and the server share, and
        // its idle scenario (19,900 connections) is over the default derived from it.
        let config = format!(
            "{engine}[http_server]\naddress = \"127.0.0.1\"\nport = {port}\n\n\
             [http_server.http3]\nport = 0\n\n[quic]\nport = {quic_port}\n\n\
             [http_api]\nkey = \"{API_KEY}\"\n\n\
             [client]\nqueue_max_size = {queue_max_size}\nconnection_limit = 0\n\n\
             [client.token]\nhmac_secret_key = \"{HMAC_SECRET}\"\n\n\
             [channel.without_namespace]\nallow_subscribe_for_client = true\n{history}\n\
             [log]\nlevel = \"warn\"\n"
        );
        std::fs::write(&config_path, config).with_context(|| format!("writing {}", config_path.display()))?;
        let mut command = Command::new(bin);
        command.arg("serve").arg("--config").arg(&config_path);
        let quic = Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), quic_port));
        Self::spawn("tidewire", command, port, quic, dir, true).await
    }

    /// Spawns limit-server on a free port for at most `lifetime_secs` and waits
    /// until it answers HTTP.
    pub(crate) async fn start_limit(bin: &Path, lifetime_secs: u64) -> anyhow::Result<Self> {
        let port = free_port()?;
        let dir = temp_dir("limit")?;
        let mut command = Command::new(bin);
        command
            .arg("--addr")
            .arg("127.0.0.1")
            .arg("--port")
            .arg(port.to_string())
            .arg("--lifetime")
            .arg(lifetime_secs.to_string());
        Self::spawn("limit-server", command, port, None, dir, false).await
    }

    /// Spawns `command` with its output in `<dir>/server.log` and waits until it
    /// answers (`GET /health` → 200 when `healthy_200`, any HTTP answer otherwise).
    async fn spawn(
        name: &str,
        mut command: Command,
        port: u16,
        quic: Option<SocketAddr>,
        dir: PathBuf,
        healthy_200: bool,
    ) -> anyhow::Result<Self> {
        let log_path = dir.join("server.log");
        let log = std::fs::File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
        let log_err = log.try_clone().context("duplicating the log file handle")?;
        let child = command
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .with_context(|| format!("spawning {name} ({:?})", command.get_program()))?;
        let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
        let server = Server::single(name, addr, quic, Some(child.id()));
        let mut process = ServerProcess { child, server, dir, log_path };
        if let Err(err) = wait_ready(addr, healthy_200, HEALTH_TIMEOUT, Some(&mut process.child)).await {
            let note = process.log_note();
            process.stop(false);
            return Err(anyhow!("{name}: {err:#}\n{note}"));
        }
        Ok(process)
    }

    /// The address, name and PID the run drives.
    pub(crate) fn server(&self) -> &Server {
        &self.server
    }

    /// Where the server log is kept, and its last lines, for error messages.
    pub(crate) fn log_note(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        let path = self.log_path.display();
        if tail.trim().is_empty() {
            format!("server log {path} is empty")
        } else {
            format!("server log kept at {path}; its last lines:\n{tail}")
        }
    }

    /// Kills the server; deletes the temp dir when `clean` (keeps the log otherwise).
    pub(crate) fn stop(mut self, clean: bool) {
        self.kill();
        if clean {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// Sends SIGKILL to the child's PID and reaps it.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The bench's own redis-server child: a free 127.0.0.1 port, persistence off,
/// its own temp dir; killed (by PID, via `Child::kill`) when stopped or dropped.
pub(crate) struct RedisProcess {
    /// The spawned redis-server.
    child: Child,
    /// Its port on 127.0.0.1.
    port: u16,
    /// Temporary directory holding its log (and its working dir, which stays
    /// empty: nothing is saved).
    dir: PathBuf,
    /// redis-server's own log.
    log_path: PathBuf,
}

impl RedisProcess {
    /// Starts `bin` (`redis-server` on PATH by default) on a free port and waits
    /// until it answers PING; tries another port when the chosen one was taken
    /// meanwhile (redis exits at once), at most `REDIS_PORT_ATTEMPTS` times.
    pub(crate) async fn start(bin: Option<&Path>) -> anyhow::Result<Self> {
        let bin = bin.unwrap_or(Path::new("redis-server"));
        let dir = temp_dir("redis")?;
        let mut last_error = String::new();
        for _ in 0..REDIS_PORT_ATTEMPTS {
            let port = free_port()?;
            let log_path = dir.join(format!("redis-{port}.log"));
            let log = std::fs::File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
            let dir_arg = dir.display().to_string();
            let spawned = Command::new(bin)
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .args(["--dir", &dir_arg, "--daemonize", "no", "--protected-mode", "no", "--logfile", ""])
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(Stdio::null())
                .spawn();
            let child = match spawned {
                Ok(child) => child,
                Err(e) => {
                    let _ = std::fs::remove_dir_all(&dir);
                    return Err(anyhow!(e).context(format!(
                        "spawning {}: install redis-server (Debian's package) or pass --redis-bin PATH",
                        bin.display()
                    )));
                }
            };
            let mut redis = RedisProcess { child, port, dir: dir.clone(), log_path };
            match redis.wait_ready().await {
                Ok(()) => return Ok(redis),
                Err(e) => {
                    last_error = format!("{e:#}; {}", redis.log_note());
                    redis.kill();
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        bail!("redis-server did not start on any of {REDIS_PORT_ATTEMPTS} free ports (last: {last_error})")
    }

    /// Polls PING until `+PONG`, the process exits, or `REDIS_READY_TIMEOUT` passes.
    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + REDIS_READY_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().context("checking redis-server")? {
                bail!("redis-server exited during start-up with {status}");
            }
            if redis_pings(self.port).await {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bail!("redis-server on port {} did not answer PING within {REDIS_READY_TIMEOUT:?}", self.port)
    }

    /// `redis://127.0.0.1:PORT`, for `engine.redis.address`.
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Its PID, for /proc reads.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Where its log is kept, and its last lines.
    fn log_note(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(10)..].join("\n");
        format!("redis-server log {}:\n{tail}", self.log_path.display())
    }

    /// Kills redis-server; deletes its temp dir when `clean`.
    fn stop(mut self, clean: bool) {
        self.kill();
        if clean {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// Sends SIGKILL to the child's PID and reaps it (nothing to save: persistence is off).
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether a Redis on 127.0.0.1:`port` answers `PING` with `+PONG` (each step ≤ 500 ms).
async fn redis_pings(port: u16) -> bool {
    let step = Duration::from_millis(500);
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await.ok()?;
        stream.write_all(b"PING\r\n").await.ok()?;
        let mut reply = [0u8; 7];
        stream.read_exact(&mut reply).await.ok()?;
        Some(&reply == b"+PONG\r\n")
    };
    matches!(tokio::time::timeout(step, attempt).await, Ok(Some(true)))
}

/// Everything one run spawned: the server node(s) and, for `--engine redis`,
/// the redis-server they share. Fields drop in order, so the nodes are killed
/// before Redis (they would only log its absence otherwise).
pub(crate) struct Deployment {
    /// Node 0 (publishers) first.
    nodes: Vec<ServerProcess>,
    /// The bench's redis-server, if the nodes run on Redis.
    redis: Option<RedisProcess>,
    /// What the run drives: node 0's address and PID plus the other nodes'.
    server: Server,
}

impl Deployment {
    /// One spawned server (Tidewire on the memory engine, or limit-server).
    pub(crate) fn single(process: ServerProcess) -> Self {
        let server = process.server().clone();
        Deployment { nodes: vec![process], redis: None, server }
    }

    /// `nodes` Tidewire processes on one redis-server the bench starts itself
    /// (`engine.type = "redis"`, `engine.redis.address = "redis://127.0.0.1:PORT"`),
    /// each waited for until `/health` → 200. If any fails to start, what was
    /// already started is killed (by `Drop`) before the error returns.
    pub(crate) async fn start_on_redis(
        bin: &Path,
        options: &TidewireOptions,
        nodes: usize,
        redis_bin: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let redis = RedisProcess::start(redis_bin).await?;
        eprintln!("redis-server (PID {}) on {}", redis.pid(), redis.url());
        let options = TidewireOptions { redis_url: Some(redis.url()), ..options.clone() };
        let mut started = Vec::with_capacity(nodes);
        for n in 0..nodes {
            let process = ServerProcess::start_tidewire(bin, &options).await.with_context(|| format!("node {n}"))?;
            eprintln!("tidewire node {n} (PID {}, redis engine) on {}", process.server().pid.unwrap_or(0), process.server().addr);
            started.push(process);
        }
        let mut server = started[0].server().clone();
        server.nodes = started.iter().map(|p| p.server().addr).collect();
        server.other_pids = started[1..].iter().filter_map(|p| p.server().pid).collect();
        server.redis_pid = Some(redis.pid());
        Ok(Deployment { nodes: started, redis: Some(redis), server })
    }

    /// The addresses, name and PIDs the run drives.
    pub(crate) fn server(&self) -> &Server {
        &self.server
    }

    /// Every node's log note (and Redis's), for error messages.
    pub(crate) fn log_note(&self) -> String {
        let mut notes: Vec<String> = self.nodes.iter().map(ServerProcess::log_note).collect();
        notes.extend(self.redis.as_ref().map(RedisProcess::log_note));
        notes.join("\n")
    }

    /// Kills the nodes, then Redis, by PID; deletes their temp dirs when `clean`.
    pub(crate) fn stop(mut self, clean: bool) {
        for node in self.nodes.drain(..) {
            node.stop(clean);
        }
        if let Some(redis) = self.redis.take() {
            redis.stop(clean);
        }
    }
}

/// A fresh directory under the system temp dir for one spawned server.
fn temp_dir(kind: &str) -> anyhow::Result<PathBuf> {
    let stamp = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("tidewire-fanout-{kind}-{}-{stamp}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// Polls `GET /health` on `addr` until it answers (200 when `want_200`, any
/// status otherwise), `child` exits, or `timeout` runs out.
async fn wait_ready(addr: SocketAddr, want_200: bool, timeout: Duration, mut child: Option<&mut Child>) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut last_error = String::from("no answer yet");
    while Instant::now() < deadline {
        if let Some(child) = child.as_deref_mut()
            && let Some(status) = child.try_wait().context("checking the server process")?
        {
            bail!("the server exited during start-up with {status}");
        }
        let mut conn = HttpConn::new(addr);
        match tokio::time::timeout(Duration::from_secs(2), conn.request("GET", "/health", &[])).await {
            Ok(Ok((200, _))) => return Ok(()),
            Ok(Ok(_)) if !want_200 => return Ok(()), // any HTTP answer means it is up
            Ok(Ok((status, _))) => last_error = format!("HTTP {status}"),
            Ok(Err(e)) => last_error = format!("{e:#}"),
            Err(_) => last_error = "no answer within 2 s".into(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let want = if want_200 { "200" } else { "any answer" };
    bail!("GET http://{addr}/health: no {want} within {timeout:?} (last: {last_error})")
}

/// The server binary: `--server-bin`, else the one cargo built for this bench,
/// else `target/release/tidewire`.
pub(crate) fn resolve_server_bin(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    let bin = match explicit {
        Some(path) => path.to_path_buf(),
        None => option_env!("CARGO_BIN_EXE_tidewire")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("target/release/tidewire")),
    };
    if !bin.is_file() {
        bail!(
            "server binary {} not found: run `cargo build --release` first, or pass --server-bin <path>",
            bin.display()
        );
    }
    Ok(bin)
}

/// limit-server's binary: `--limit-bin`, else built now (a no-op when up to
/// date) with `cargo build --release --manifest-path ../shared/tools/limit-server/Cargo.toml
/// --target-dir target/limit-server`, run from the project root; cargo's
/// output goes to stderr.
pub(crate) fn limit_server_bin(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        if !path.is_file() {
            bail!("--limit-bin {} not found", path.display());
        }
        return Ok(path.to_path_buf());
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("building limit-server: cargo build --release --manifest-path {LIMIT_MANIFEST} --target-dir {LIMIT_TARGET_DIR}");
    let status = Command::new(&cargo)
        .current_dir(root)
        .args(["build", "--release", "--manifest-path", LIMIT_MANIFEST, "--target-dir", LIMIT_TARGET_DIR])
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::io::stderr()))
        .status()
        .with_context(|| format!("running {}", Path::new(&cargo).display()))?;
    if !status.success() {
        bail!("building limit-server failed ({status}); pass --limit-bin <path> to use a built one");
    }
    let bin = root.join(LIMIT_TARGET_DIR).join("release").join("limit-server");
    if !bin.is_file() {
        bail!("cargo built limit-server but {} is missing", bin.display());
    }
    Ok(bin)
}

/// A free TCP port on 127.0.0.1 (bind :0, read it, release it).
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// A UDP port free right now on 127.0.0.1 (for the server's QUIC endpoint).
fn free_udp_port() -> anyhow::Result<u16> {
    let socket = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).context("binding a probe UDP socket")?;
    Ok(socket.local_addr().context("probe UDP address")?.port())
}

/// VmRSS of a process in bytes, from `/proc/<pid>/status`.
pub(crate) fn read_rss(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path} (did the server exit?)"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .ok_or_else(|| anyhow!("no VmRSS line in {path}"))?;
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow!("cannot parse {line:?} in {path}"))?;
    Ok(kb * 1024)
}

/// User + system CPU seconds of process `pid` (0 if unreadable).
fn proc_cpu_secs(pid: u32) -> f64 {
    read_cpu_secs(&format!("/proc/{pid}/stat"))
}

/// User + system CPU seconds from a `/proc/<pid>/stat` file (0 if unreadable).
pub(crate) fn read_cpu_secs(path: &str) -> f64 {
    let (user, system) = read_cpu_split(path);
    user + system
}

/// User and system CPU seconds from a `/proc/<pid>/stat` file (0 if unreadable).
fn read_cpu_split(path: &str) -> (f64, f64) {
    let Ok(stat) = std::fs::read_to_string(path) else { return (0.0, 0.0) };
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else { return (0.0, 0.0) };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) / CLOCK_TICKS_PER_SEC, ticks(12) / CLOCK_TICKS_PER_SEC)
}

/// Soft and hard open-file limits of this process, from /proc/self/limits.
fn fd_limits() -> Option<(u64, u64)> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut fields = line.split_whitespace().skip(3);
    let mut next = || fields.next().map(|v| v.parse::<u64>().unwrap_or(u64::MAX));
    Some((next()?, next()?))
}

/// Raises the soft open-file limit to the hard one when N sockets would not
/// fit (the server child inherits it). Without `unsafe` there is no
/// setrlimit here, so this asks util-linux `prlimit` to do it for our PID;
/// if that is missing or the hard limit is too low, it prints what to do.
pub(crate) fn raise_fd_limit(subscribers: usize) {
    let needed = subscribers as u64 + 64;
    let Some((soft, hard)) = fd_limits() else { return };
    if soft >= needed {
        return;
    }
    if hard > soft {
        let _ = Command::new("prlimit")
            .arg("--pid")
            .arg(std::process::id().to_string())
            .arg(format!("--nofile={hard}:{hard}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    let soft = fd_limits().map_or(soft, |(soft, _)| soft);
    if soft < needed {
        eprintln!(
            "warning: the open-file limit is {soft} (hard {hard}), too low for {subscribers} connections: \
             the bench and the server each need one socket per subscriber plus a few; \
             run `ulimit -n 20000` (at most `ulimit -Hn`) in this shell first"
        );
    }
}
