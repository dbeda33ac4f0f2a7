//! The scenario: every command-line option, its validation, the figures the
//! schedule implies (publications, subscribers per channel), and the echo of
//! the scenario printed at the top of every report.
//!
//! Pure: no I/O. The credentials the bench uses live here too, because a
//! spawned Tidewire is configured with them and a `--target` must accept them.
//!
//! Scenarios (exact command lines):
//!
//! ```text
//! ulimit -n 20000
//! # 1 channel × 1,000 subscribers at 1 M deliveries/s: latency
//! cargo bench --bench fanout -- --subscribers 1000 --channels 1 --rate 1000
//! # the same at higher rates, to find the max sustainable deliveries/s
//! cargo bench --bench fanout -- --subscribers 1000 --channels 1 --rate 2000
//! cargo bench --bench fanout -- --subscribers 1000 --channels 1 --rate 3000
//! cargo bench --bench fanout -- --subscribers 1000 --channels 1 --rate 3500
//! # QUIC and WebTransport subscribers (native mode, through tidewire::client), and datagram channels
//! cargo bench --bench fanout -- --subscribers 1000 --rate 100 --transport quic
//! cargo bench --bench fanout -- --subscribers 1000 --rate 100 --transport webtransport
//! cargo bench --bench fanout -- --subscribers 1000 --rate 100 --transport quic --datagram
//! # history-enabled channels (force_recovery: every subscription positioned), and history memory
//! cargo bench --bench fanout -- --subscribers 1000 --rate 300 --history-size 100
//! cargo bench --bench fanout -- --fill-channels 10000 --history-size 100 --payload 100
//! # … and with a 20 ms coalescing window on the bench channels (batch_max_delay)
//! cargo bench --bench fanout -- --subscribers 1000 --channels 1 --rate 5000 --batch-max-delay-ms 20
//! # … and with 10 publications per HTTP request (/api/batch)
//! cargo bench --bench fanout -- --subscribers 1000 --channels 1 --rate 3500 --batch 10
//! # 1 channel × 10,000 subscribers at 100 msg/s: latency
//! cargo bench --bench fanout -- --subscribers 10000 --channels 1 --rate 100
//! # memory per idle subscribed connection at 19,900 connections
//! cargo bench --bench fanout -- --subscribers 19900 --idle-only
//! ```
//!
//! Against an already-running server (limit-server accepts any token and key; a
//! Tidewire target must use `http_api.key = "bench-api-key"` and
//! `client.token.hmac_secret_key = "bench-secret"` and allow client subscribes):
//!
//! ```text
//! target/limit-server/release/limit-server --port 18400 --lifetime 600 &
//! cargo bench --bench fanout -- --rate 100 --target http://127.0.0.1:18400 --target-pid $!
//! # limit-server, then Tidewire, in one run, figures side by side with ratios
//! # (the DESIGN.md "Performance targets" comparisons)
//! cargo bench --bench fanout -- --subscribers 1000 --channels 1 --rate 100 --compare-limit
//! cargo bench --bench fanout -- --subscribers 1000 --channels 1 --rate 1000 --compare-limit
//! cargo bench --bench fanout -- --subscribers 10000 --channels 1 --rate 100 --compare-limit
//! cargo bench --bench fanout -- --subscribers 19900 --idle-only --compare-limit
//! ```
//!
//! JSON vs Protobuf WebSocket subscribers (`?format=protobuf`; the same JSON
//! payload inside each Protobuf publication): one protocol, or both in one
//! invocation — JSON against a spawned Tidewire, then Protobuf against another
//! spawned Tidewire — with Protobuf ÷ JSON ratios:
//!
//! ```text
//! cargo bench --bench fanout -- --subscribers 1000 --channels 1 --rate 1000 --protocol protobuf
//! cargo bench --bench fanout -- --subscribers 1000 --channels 1 --rate 1000 --compare-protocols
//! cargo bench --bench fanout -- --subscribers 1000 --channels 1 --rate 300 --compare-protocols
//! ```
//!
//! Redis engine (the bench starts its own `redis-server` on a free loopback
//! port, persistence off, and stops it by PID): two Tidewire nodes on it,
//! subscribers split round-robin over both, publishing through node 0; with
//! `--compare-memory` the same scenario first runs against one memory-engine
//! node, and the report ends with Redis ÷ memory ratios:
//!
//! ```text
//! cargo bench --bench fanout -- --subscribers 1000 --channels 1 --rate 1000 --engine redis --nodes 2 --compare-memory
//! cargo bench --bench fanout -- --subscribers 1000 --channels 1 --rate 300 --history-size 100 --engine redis --nodes 2 --compare-memory
//! cargo bench --bench fanout -- --subscribers 1000 --channels 1 --rate 1000 --publishers 16 --engine redis --nodes 2 --compare-memory
//! # the publish path apart from fan-out: more channels, Redis only
//! cargo bench --bench fanout -- --subscribers 1000 --channels 8 --rate 1000 --publishers 16 --engine redis --nodes 2
//! cargo bench --bench fanout -- --subscribers 1000 --channels 1 --rate 1000 --engine redis --nodes 1
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::Parser;
use serde::Serialize;

/// API key written into the server config and sent as `X-API-Key`.
pub(crate) const API_KEY: &str = "bench-api-key";
/// HMAC secret for the subscribers' HS256 connection tokens.
pub(crate) const HMAC_SECRET: &str = "bench-secret";
/// Upper bound for `--drain`, so a run always ends soon after publishing.
pub(crate) const MAX_DRAIN_SECS: f64 = 5.0;
/// `data` size of each publication of a `--burst-bytes` burst.
pub(crate) const BURST_PIECE_BYTES: usize = 16 * 1024;
/// Publications of a burst in flight at once (not yet read by every subscriber): more than
/// one, so that they queue in the server and go out joined, as a burst does.
pub(crate) const BURST_WINDOW: u64 = 2;
/// Upper bound for `--burst-bytes` (per subscriber), so a burst ends in bounded time.
pub(crate) const MAX_BURST_BYTES: u64 = 16 << 20;
/// Upper bound for `--nodes`: each node is a process with its own runtime on
/// a 2-core machine shared with the load generator; more only measures contention.
pub(crate) const MAX_NODES: usize = 8;

/// Command-line options (`cargo bench --bench fanout -- --help`).
#[derive(Parser, Debug, Clone)]
#[command(name = "fanout", about = "Tidewire fan-out benchmark (black-box, loopback only)")]
pub(crate) struct Args {
    /// Server binary to spawn as `<bin> serve --config <file>`
    /// [default: the package's `tidewire` binary in target/release]
    #[arg(long)]
    pub(crate) server_bin: Option<PathBuf>,
    /// Number of WebSocket subscriber connections (N).
    #[arg(long, default_value_t = 1000)]
    pub(crate) subscribers: usize,
    /// Number of channels (C); subscriber i subscribes to `bench-{i % C}`.
    #[arg(long, default_value_t = 1)]
    pub(crate) channels: usize,
    /// Publications per second, all channels together, round-robin over channels.
    #[arg(long, default_value_t = 1000.0)]
    pub(crate) rate: f64,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 10.0)]
    pub(crate) duration: f64,
    /// Approximate size in bytes of each publication's JSON `data`.
    #[arg(long, default_value_t = 100)]
    pub(crate) payload: usize,
    /// Concurrent HTTP/1.1 keep-alive publisher connections (P), one request in flight each.
    #[arg(long, default_value_t = 4)]
    pub(crate) publishers: usize,
    /// Publications per request; above 1 they go through `POST /api/batch`.
    #[arg(long, default_value_t = 1)]
    pub(crate) batch: usize,
    /// Server `client.queue_max_size` in bytes (per-connection outgoing queue).
    #[arg(long, default_value_t = 10_485_760)]
    pub(crate) queue_max_size: u64,
    /// Only open the subscribers, measure the server's memory, and exit.
    #[arg(long)]
    pub(crate) idle_only: bool,
    /// With `--idle-only`: after the idle reading, send every subscriber this many bytes
    /// (16 KiB publications to every channel, two at a time in flight), wait until all
    /// arrived, let the server settle and read its memory again (were the burst's buffers
    /// given back?).
    #[arg(long, default_value_t = 0, value_name = "BYTES", requires = "idle_only")]
    pub(crate) burst_bytes: u64,
    /// Subscriber transport: `websocket` (JSON), `quic` (raw QUIC, native mode) or
    /// `webtransport` (WebTransport native mode), the last two through `tidewire::client`.
    #[arg(long, default_value = "websocket", value_parser = ["websocket", "quic", "webtransport"])]
    pub(crate) transport: String,
    /// WebSocket subscribers' client protocol: `json` (text frames of newline-separated
    /// JSON) or `protobuf` (`?format=protobuf`: binary frames of varint-delimited
    /// Protobuf Commands and Replies; the publications' `data` is the same JSON payload).
    #[arg(long, default_value = "json", value_parser = ["json", "protobuf"])]
    pub(crate) protocol: String,
    /// Run the scenario with JSON subscribers, then with Protobuf subscribers, each
    /// against a freshly spawned server of the same kind, and print both with
    /// Protobuf ÷ JSON ratios.
    #[arg(long)]
    pub(crate) compare_protocols: bool,
    /// QUIC/WebTransport: deliver the bench channels as datagrams (`delivery = "datagram"`).
    #[arg(long)]
    pub(crate) datagram: bool,
    /// Coalescing window of the bench channels (`batch_max_delay`, ms; 0: off).
    #[arg(long, default_value_t = 0)]
    pub(crate) batch_max_delay_ms: u32,
    /// Keep history for the bench channels: `history_size = N`, `history_ttl = "300s"`
    /// and `force_recovery = true` (every subscription positioned and recoverable).
    #[arg(long, default_value_t = 0)]
    pub(crate) history_size: usize,
    /// History memory mode: fill C channels with `--history-size` publications of
    /// `--payload` bytes each through `/api/batch`, report the server's RSS growth, exit.
    #[arg(long, default_value_t = 0)]
    pub(crate) fill_channels: usize,
    /// Spread client source addresses over 127.0.0.2 ..= 127.0.0.(1+K).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u8).range(1..=250))]
    pub(crate) source_ips: u8,
    /// WebSocket handshakes in flight at once while connecting.
    #[arg(long, default_value_t = 200)]
    pub(crate) connect_concurrency: usize,
    /// Seconds to wait for late deliveries after the last publication (max 5).
    #[arg(long, default_value_t = 3.0)]
    pub(crate) drain: f64,
    /// Seconds to let the server settle after all subscribers are in, before
    /// reading its idle memory.
    #[arg(long, default_value_t = 2.0)]
    pub(crate) settle: f64,
    /// Worker threads of the bench's tokio runtime [default: CPU count].
    #[arg(long)]
    pub(crate) threads: Option<usize>,
    /// Read buffer per subscriber WebSocket, bytes. tungstenite allocates it
    /// eagerly and zero-fills its free part before every read, so bigger is
    /// slower unless frames are large.
    #[arg(long, default_value_t = 8 * 1024)]
    pub(crate) ws_read_buffer: usize,
    /// Run against an already-running server at this `http://127.0.0.1:PORT` (loopback
    /// only) instead of spawning one; WebSocket subscribers only. Server options
    /// (`--queue-max-size`, `--history-size`, `--datagram`) do not apply.
    #[arg(long, value_name = "URL", conflicts_with_all = ["server_bin", "compare_limit"])]
    pub(crate) target: Option<String>,
    /// With `--target`: the server's PID, for its RSS and CPU figures from /proc
    /// (without it they are reported as unknown).
    #[arg(long, value_name = "PID", requires = "target")]
    pub(crate) target_pid: Option<u32>,
    /// Run the scenario against limit-server (built into target/limit-server, started
    /// on a free loopback port with a bounded lifetime), then against Tidewire, and
    /// print both with Tidewire ÷ limit-server ratios.
    #[arg(long)]
    pub(crate) compare_limit: bool,
    /// With `--compare-limit`: use this limit-server binary instead of building it.
    #[arg(long, value_name = "PATH", requires = "compare_limit")]
    pub(crate) limit_bin: Option<PathBuf>,
    /// Engine of the spawned Tidewire: `memory` (one node) or `redis` (the bench starts
    /// its own redis-server on a free 127.0.0.1 port, persistence off, stopped by PID,
    /// and configures every node with `engine.type = "redis"`).
    #[arg(long, default_value = "memory", value_parser = ["memory", "redis"])]
    pub(crate) engine: String,
    /// Tidewire processes on the one Redis (`--engine redis`): subscriber i connects to
    /// node `i % N`, every publisher publishes through node 0.
    #[arg(long, default_value_t = 1)]
    pub(crate) nodes: usize,
    /// With `--engine redis`: first run the same scenario against one memory-engine node,
    /// then the Redis run, and print both with Redis ÷ memory ratios.
    #[arg(long)]
    pub(crate) compare_memory: bool,
    /// With `--engine redis`: the redis-server binary [default: `redis-server` on PATH].
    #[arg(long, value_name = "PATH")]
    pub(crate) redis_bin: Option<PathBuf>,
    /// Print the summary as one JSON object instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
    /// Passed by `cargo bench` to every bench binary; ignored.
    #[arg(long, hide = true)]
    pub(crate) bench: bool,
}

impl Args {
    /// Rejects option values that would make the run meaningless or unbounded.
    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        if self.subscribers == 0 {
            bail!("--subscribers must be at least 1");
        }
        if self.channels == 0 {
            bail!("--channels must be at least 1");
        }
        if !(self.rate > 0.0 && self.rate.is_finite()) {
            bail!("--rate must be a positive number of publications per second");
        }
        if !(self.duration > 0.0 && self.duration <= 3600.0) {
            bail!("--duration must be in (0, 3600] seconds");
        }
        if self.publishers == 0 || self.batch == 0 || self.connect_concurrency == 0 {
            bail!("--publishers, --batch and --connect-concurrency must be at least 1");
        }
        if !(0.0..=60.0).contains(&self.settle) || !(0.0..=MAX_DRAIN_SECS).contains(&self.drain) {
            bail!("--settle must be in [0, 60] and --drain in [0, {MAX_DRAIN_SECS}] seconds");
        }
        if self.ws_read_buffer < 1024 {
            bail!("--ws-read-buffer must be at least 1024 bytes");
        }
        if self.total_publications() == 0 {
            bail!("--rate × --duration rounds to zero publications");
        }
        if self.burst_bytes > MAX_BURST_BYTES {
            bail!("--burst-bytes must be at most {MAX_BURST_BYTES}");
        }
        if self.target.is_some() || self.compare_limit {
            let what = if self.target.is_some() { "--target" } else { "--compare-limit" };
            if self.transport != "websocket" || self.datagram || self.history_size > 0 {
                bail!("{what} runs WebSocket subscribers on plain channels: drop --transport, --datagram and --history-size");
            }
            if self.compare_limit && self.fill_channels > 0 {
                bail!("--fill-channels measures Tidewire's history; limit-server keeps none");
            }
        }
        self.validate_engine()?;
        self.validate_protocol()?;
        if let Some(url) = &self.target {
            target_addr(url)?;
            if self.fill_channels > 0 && self.target_pid.is_none() {
                bail!("--fill-channels with --target needs --target-pid: it reports the server's RSS");
            }
        }
        Ok(())
    }

    /// The engine options: `--nodes`, `--compare-memory` and `--redis-bin` need
    /// `--engine redis`; a Redis run spawns its servers and drives WebSocket
    /// subscribers, and its history lives in Redis (no `--fill-channels`).
    fn validate_engine(&self) -> anyhow::Result<()> {
        if self.nodes == 0 || self.nodes > MAX_NODES {
            bail!("--nodes must be in [1, {MAX_NODES}]");
        }
        if !self.redis_engine() {
            if self.nodes > 1 {
                bail!("--nodes {} needs --engine redis: the memory engine is one node", self.nodes);
            }
            if self.compare_memory || self.redis_bin.is_some() {
                bail!("--compare-memory and --redis-bin need --engine redis");
            }
            return Ok(());
        }
        if self.target.is_some() || self.compare_limit {
            bail!("--engine redis spawns its own nodes and Redis: drop --target and --compare-limit");
        }
        if self.transport != "websocket" || self.datagram {
            bail!("--engine redis runs WebSocket subscribers: drop --transport and --datagram");
        }
        if self.fill_channels > 0 {
            bail!("--fill-channels measures a node's RSS; with --engine redis the history is in Redis");
        }
        Ok(())
    }

    /// The protocol options: Protobuf is a WebSocket format of Tidewire's (limit-server
    /// speaks JSON only); `--compare-protocols` runs both itself, against spawned servers.
    fn validate_protocol(&self) -> anyhow::Result<()> {
        if !(self.protobuf() || self.compare_protocols) {
            return Ok(());
        }
        let what = if self.compare_protocols { "--compare-protocols" } else { "--protocol protobuf" };
        if self.transport != "websocket" {
            bail!("{what} is for WebSocket subscribers: drop --transport {}", self.transport);
        }
        if self.compare_limit {
            bail!("{what}: limit-server speaks the JSON protocol only; drop --compare-limit");
        }
        if self.compare_protocols {
            if self.protobuf() {
                bail!("--compare-protocols runs JSON then Protobuf itself: drop --protocol");
            }
            if self.target.is_some() || self.compare_memory {
                bail!("--compare-protocols spawns one server per run: drop --target and --compare-memory");
            }
            if self.fill_channels > 0 {
                bail!("--fill-channels has no subscribers: drop --compare-protocols");
            }
        }
        Ok(())
    }

    /// Whether the WebSocket subscribers speak Protobuf (`--protocol protobuf`).
    pub(crate) fn protobuf(&self) -> bool {
        self.protocol == "protobuf"
    }

    /// A copy of these options with the subscribers speaking `protocol`
    /// (`json` or `protobuf`): one run of `--compare-protocols`.
    pub(crate) fn with_protocol(&self, protocol: &str) -> Args {
        Args { protocol: protocol.to_owned(), compare_protocols: false, ..self.clone() }
    }

    /// Whether the spawned Tidewire runs on Redis (`--engine redis`).
    pub(crate) fn redis_engine(&self) -> bool {
        self.engine == "redis"
    }

    /// Publications the schedule contains: `round(rate × duration)`.
    pub(crate) fn total_publications(&self) -> u64 {
        (self.rate * self.duration).round() as u64
    }

    /// Number of subscribers of channel `k` (subscriber i is on channel i % C).
    pub(crate) fn subscribers_of(&self, k: usize) -> u64 {
        subscribers_of(self.subscribers, self.channels, k)
    }

    /// Publications of the `--burst-bytes` burst to each channel: `ceil(burst ÷ piece)`
    /// of `BURST_PIECE_BYTES`.
    pub(crate) fn burst_per_channel(&self) -> u64 {
        self.burst_bytes.div_ceil(BURST_PIECE_BYTES as u64)
    }

    /// Publications of the `--burst-bytes` burst, all channels together.
    pub(crate) fn burst_publications(&self) -> u64 {
        self.burst_per_channel() * self.channels as u64
    }
}

/// Number of subscribers of channel `k` when `n` subscribers are spread over
/// `c` channels, subscriber i on channel `i % c`.
pub(crate) fn subscribers_of(n: usize, c: usize, k: usize) -> u64 {
    (n / c + usize::from(k < n % c)) as u64
}

/// The node subscriber `i` connects to when subscribers are split round-robin
/// over `nodes` server processes (one node: all on node 0).
pub(crate) fn node_of(i: usize, nodes: usize) -> usize {
    i % nodes.max(1)
}

/// The socket address of a `--target` URL: `http://127.0.0.x:PORT` (a trailing
/// `/` is allowed; `ws://` is accepted too, since the same port serves both).
/// Anything but a loopback IPv4 address and an explicit port is refused.
pub(crate) fn target_addr(url: &str) -> anyhow::Result<SocketAddr> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("ws://"))
        .with_context(|| format!("--target {url:?}: expected http://127.0.0.1:PORT"))?;
    let hostport = rest.trim_end_matches('/');
    let addr: SocketAddr = hostport
        .parse()
        .with_context(|| format!("--target {url:?}: expected an IP address and a port, e.g. http://127.0.0.1:18400"))?;
    if !addr.ip().is_loopback() || !addr.is_ipv4() {
        bail!("--target {url:?}: the bench only talks to 127.0.0.x");
    }
    Ok(addr)
}

/// The scenario parameters, echoed in the summary.
#[derive(Serialize, Debug, Default, Clone)]
pub(crate) struct Scenario {
    /// Which server ran it: `tidewire` (spawned), `limit-server` (spawned) or the `--target` URL.
    pub(crate) server: String,
    /// N.
    pub(crate) subscribers: usize,
    /// C.
    pub(crate) channels: usize,
    /// Publications per second.
    pub(crate) rate: f64,
    /// Seconds of publishing.
    pub(crate) duration_secs: f64,
    /// Size of each publication's `data`.
    pub(crate) payload_bytes: usize,
    /// P.
    pub(crate) publishers: usize,
    /// Publications per request.
    pub(crate) batch: usize,
    /// The spawned Tidewire's `client.queue_max_size`; `None` for other servers.
    pub(crate) queue_max_size: Option<u64>,
    /// Only idle memory was measured.
    pub(crate) idle_only: bool,
    /// Bytes sent to every subscriber after the idle reading (`--burst-bytes`; 0: none).
    pub(crate) burst_bytes: u64,
    /// Client source addresses.
    pub(crate) source_ips: u8,
    /// The subscribers' protocol: `json` or `protobuf` over WebSocket, or the native
    /// transport (`quic`, `webtransport`).
    pub(crate) protocol: String,
    /// The spawned Tidewire's engine (`memory`, `redis`); `None` for other servers.
    pub(crate) engine: Option<String>,
    /// Server processes the subscribers were split over (publishing through the first).
    pub(crate) nodes: usize,
}

impl Scenario {
    /// The echo of `args` for a run against `server` made of `nodes` processes;
    /// `engine` when the bench configured that Tidewire itself (its queue size
    /// and engine are then known).
    pub(crate) fn new(args: &Args, server: &str, engine: Option<&str>, nodes: usize) -> Self {
        let tidewire_config = engine.is_some();
        Scenario {
            server: server.to_owned(),
            subscribers: args.subscribers,
            channels: args.channels,
            rate: args.rate,
            duration_secs: args.duration,
            payload_bytes: args.payload,
            publishers: args.publishers,
            batch: args.batch,
            queue_max_size: tidewire_config.then_some(args.queue_max_size),
            idle_only: args.idle_only,
            burst_bytes: args.burst_bytes,
            source_ips: args.source_ips,
            protocol: if args.transport == "websocket" { args.protocol.clone() } else { args.transport.clone() },
            engine: engine.map(str::to_owned),
            nodes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &[&str]) -> Args {
        Args::parse_from(std::iter::once("fanout").chain(extra.iter().copied()))
    }

    #[test]
    fn subscribers_spread_round_robin_over_channels() {
        assert_eq!((0..3).map(|k| subscribers_of(10, 3, k)).collect::<Vec<_>>(), [4, 3, 3]);
        assert_eq!(subscribers_of(1000, 1, 0), 1000);
        assert_eq!((0..4).map(|k| subscribers_of(2, 4, k)).sum::<u64>(), 2);
        assert_eq!(subscribers_of(2, 4, 3), 0);
    }

    #[test]
    fn schedule_rounds_rate_times_duration() {
        let a = parse(&["--rate", "333.3", "--duration", "3"]);
        assert_eq!(a.total_publications(), 1000);
        assert!(a.validate().is_ok());
        assert!(parse(&["--rate", "0.01", "--duration", "1"]).validate().is_err(), "rounds to zero");
    }

    #[test]
    fn a_burst_sends_every_subscriber_at_least_the_bytes_asked() {
        let a = parse(&["--idle-only", "--burst-bytes", "1048576", "--channels", "3"]);
        assert!(a.validate().is_ok());
        assert_eq!((a.burst_per_channel(), a.burst_publications()), (64, 64 * 3), "64 pieces of 16 KiB per channel");
        assert_eq!(parse(&["--idle-only", "--burst-bytes", "1"]).burst_publications(), 1);
        assert_eq!(parse(&["--idle-only"]).burst_publications(), 0);
        assert!(Args::try_parse_from(["fanout", "--burst-bytes", "1"]).is_err(), "--burst-bytes needs --idle-only");
        assert!(parse(&["--idle-only", "--burst-bytes", &(MAX_BURST_BYTES + 1).to_string()]).validate().is_err());
    }

    #[test]
    fn target_urls_are_loopback_with_a_port() {
        assert_eq!(target_addr("http://127.0.0.1:18400").unwrap(), "127.0.0.1:18400".parse().unwrap());
        assert_eq!(target_addr("http://127.0.0.3:80/").unwrap(), "127.0.0.3:80".parse().unwrap());
        assert!(target_addr("http://10.0.0.1:80").is_err(), "not loopback");
        assert!(target_addr("http://localhost:80").is_err(), "names are not resolved");
        assert!(target_addr("http://127.0.0.1").is_err(), "no port");
        assert!(target_addr("https://127.0.0.1:443").is_err(), "no TLS");
    }

    #[test]
    fn target_and_compare_options_are_checked() {
        assert!(parse(&["--target", "http://127.0.0.1:1", "--target-pid", "1"]).validate().is_ok());
        assert!(parse(&["--target", "http://127.0.0.1:1", "--transport", "quic"]).validate().is_err());
        assert!(parse(&["--compare-limit", "--history-size", "10"]).validate().is_err());
        assert!(Args::try_parse_from(["fanout", "--target-pid", "1"]).is_err(), "--target-pid needs --target");
        assert!(Args::try_parse_from(["fanout", "--target", "http://127.0.0.1:1", "--compare-limit"]).is_err());
    }

    #[test]
    fn engine_options_are_checked() {
        assert!(parse(&["--engine", "redis", "--nodes", "2", "--compare-memory"]).validate().is_ok());
        assert!(parse(&["--engine", "redis", "--history-size", "100"]).validate().is_ok(), "history lives in Redis");
        assert!(parse(&["--engine", "redis", "--batch-max-delay-ms", "20", "--batch", "10"]).validate().is_ok());
        assert!(parse(&["--nodes", "2"]).validate().is_err(), "the memory engine is one node");
        assert!(parse(&["--compare-memory"]).validate().is_err(), "compares a Redis run");
        assert!(parse(&["--redis-bin", "/usr/bin/redis-server"]).validate().is_err());
        assert!(parse(&["--engine", "redis", "--nodes", "0"]).validate().is_err());
        assert!(parse(&["--engine", "redis", "--nodes", &(MAX_NODES + 1).to_string()]).validate().is_err());
        assert!(parse(&["--engine", "redis", "--compare-limit"]).validate().is_err());
        assert!(parse(&["--engine", "redis", "--target", "http://127.0.0.1:1"]).validate().is_err());
        assert!(parse(&["--engine", "redis", "--transport", "quic"]).validate().is_err());
        assert!(parse(&["--engine", "redis", "--datagram"]).validate().is_err());
        assert!(parse(&["--engine", "redis", "--fill-channels", "10", "--history-size", "10"]).validate().is_err());
        assert!(Args::try_parse_from(["fanout", "--engine", "cluster"]).is_err(), "unknown engine");
    }

    #[test]
    fn protocol_options_are_checked() {
        assert!(parse(&["--protocol", "protobuf"]).validate().is_ok());
        assert!(parse(&["--protocol", "protobuf", "--target", "http://127.0.0.1:1"]).validate().is_ok());
        assert!(parse(&["--protocol", "protobuf", "--engine", "redis", "--nodes", "2", "--compare-memory"]).validate().is_ok());
        assert!(parse(&["--compare-protocols"]).validate().is_ok());
        assert!(parse(&["--compare-protocols", "--engine", "redis", "--nodes", "2"]).validate().is_ok());
        assert!(parse(&["--compare-protocols", "--idle-only"]).validate().is_ok());
        assert!(Args::try_parse_from(["fanout", "--protocol", "msgpack"]).is_err(), "unknown protocol");
        assert!(parse(&["--protocol", "protobuf", "--transport", "quic"]).validate().is_err());
        assert!(parse(&["--protocol", "protobuf", "--compare-limit"]).validate().is_err(), "limit-server: JSON only");
        assert!(parse(&["--compare-protocols", "--compare-limit"]).validate().is_err());
        assert!(parse(&["--compare-protocols", "--protocol", "protobuf"]).validate().is_err());
        assert!(parse(&["--compare-protocols", "--target", "http://127.0.0.1:1"]).validate().is_err());
        assert!(parse(&["--compare-protocols", "--engine", "redis", "--compare-memory"]).validate().is_err());
        assert!(parse(&["--compare-protocols", "--transport", "webtransport"]).validate().is_err());
        assert!(parse(&["--compare-protocols", "--fill-channels", "10", "--history-size", "10"]).validate().is_err());
        let a = parse(&["--compare-protocols", "--rate", "300"]).with_protocol("protobuf");
        assert!(a.protobuf() && !a.compare_protocols && a.rate == 300.0);
        assert_eq!(Scenario::new(&a, "tidewire", Some("memory"), 1).protocol, "protobuf");
        assert_eq!(Scenario::new(&parse(&[]), "tidewire", Some("memory"), 1).protocol, "json");
        assert_eq!(Scenario::new(&parse(&["--transport", "quic"]), "tidewire", Some("memory"), 1).protocol, "quic");
    }

    #[test]
    fn subscribers_split_round_robin_over_nodes() {
        assert_eq!((0..5).map(|i| node_of(i, 2)).collect::<Vec<_>>(), [0, 1, 0, 1, 0]);
        assert_eq!((0..7).filter(|&i| node_of(i, 3) == 2).count(), 2, "7 over 3 nodes: 3, 2, 2");
        assert_eq!((node_of(7, 1), node_of(7, 0)), (0, 0), "one node takes everyone");
        let a = parse(&["--engine", "redis", "--nodes", "2"]);
        let s = Scenario::new(&a, "tidewire", Some("redis"), 2);
        assert_eq!((s.engine.as_deref(), s.nodes, s.queue_max_size.is_some()), (Some("redis"), 2, true));
        let t = Scenario::new(&parse(&[]), "limit-server", None, 1);
        assert_eq!((t.engine, t.queue_max_size), (None, None));
    }
}
