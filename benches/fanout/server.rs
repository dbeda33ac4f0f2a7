//! The server under test: a Tidewire child process the bench configures and
//! spawns, a limit-server child (`--compare-limit`), or an already-running
//! `--target` — and what the bench reads of it from /proc (RSS, CPU time).
//!
//! A spawned server listens on a free 127.0.0.1 port, writes its output to
//! `<tmp>/server.log` (kept when the run fails), and is killed by PID — by
//! `ServerProcess::stop` or, on any other path, its `Drop` — before the run
//! returns. limit-server also gets a bounded `--lifetime`, so it exits on its
//! own even if the bench itself is killed. A `--target` is never signalled;
//! its /proc figures come from `--target-pid` or are reported as unknown.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, anyhow, bail};

use crate::http::HttpConn;
use crate::scenario::{API_KEY, HMAC_SECRET};

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
        Ok(Server { name: name.to_owned(), addr, quic: None, pid })
    }

    /// VmRSS in bytes, `None` when the PID is unknown.
    pub(crate) fn rss(&self) -> anyhow::Result<Option<u64>> {
        self.pid.map(read_rss).transpose()
    }

    /// User + system CPU seconds so far, `None` when the PID is unknown.
    pub(crate) fn cpu_secs(&self) -> Option<f64> {
        self.pid.map(|pid| read_cpu_secs(&format!("/proc/{pid}/stat")))
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
    /// for `GET /health` → 200.
    pub(crate) async fn start_tidewire(
        bin: &Path,
        queue_max_size: u64,
        history_size: usize,
        datagram: bool,
        batch_max_delay_ms: u32,
    ) -> anyhow::Result<Self> {
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
        // connection_limit = 0: the bench raised the file limit it and the server share, and
        // its idle scenario (19,900 connections) is over the default derived from it.
        let config = format!(
            "[http_server]\naddress = \"127.0.0.1\"\nport = {port}\n\n\
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
        let server = Server { name: name.to_owned(), addr, quic, pid: Some(child.id()) };
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

/// User + system CPU seconds from a `/proc/<pid>/stat` file (0 if unreadable).
pub(crate) fn read_cpu_secs(path: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(path) else { return 0.0 };
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else { return 0.0 };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / CLOCK_TICKS_PER_SEC
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
