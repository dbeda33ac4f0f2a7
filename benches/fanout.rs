//! Fan-out benchmark: publications in through the HTTP API, deliveries out
//! to many WebSocket subscribers (DESIGN.md "Performance targets").
//!
//! Black-box: it spawns the server binary as a child process
//! (`<bin> serve --config <tmp>/config.toml`, output in `<tmp>/server.log`) on
//! a free 127.0.0.1 port, and talks to it only over loopback sockets:
//! N WebSocket subscribers speaking the Centrifugo v2 JSON client protocol from
//! source addresses 127.0.0.2 … 127.0.0.(1+K), and P publishers calling
//! `POST /api/publish` (or `POST /api/batch` with `--batch B`) over HTTP/1.1
//! keep-alive. It never connects anywhere but 127.0.0.x, every loop is bounded
//! in count and time, and the server is killed (by PID) on every exit path.
//!
//! Phases: start the server and wait for `GET /health` → 200 (≤ 20 s) · read
//! its RSS · open the subscribers (≤ `--connect-concurrency` handshakes in
//! flight; each sends connect + subscribe in one frame and waits for both
//! replies) · settle `--settle` s and read the idle RSS · publish for
//! `--duration` s on an open-loop schedule · drain until every expected
//! delivery arrived or `--drain` s (≤ 5) passed · read the end RSS · report.
//!
//! How each figure is computed:
//! - **published / expected / delivered / lost**: publication m (0 ≤ m <
//!   round(rate × duration)) carries `seq = m` and goes to channel `m % C`.
//!   expected = Σ over channels of acknowledged publications × subscribers of
//!   that channel (subscriber i is on channel `i % C`); delivered counts unique
//!   arrivals (a seq at or below one already seen from the same publisher
//!   connection is counted as out-of-order/duplicate instead); lost =
//!   max(expected − delivered, 0) after the drain.
//! - **slow disconnects**: subscribers closed with code 3008; other closes and
//!   transport errors are counted apart.
//! - **deliveries/s** = delivered ÷ publish window, where the window runs from
//!   the first request sent to the last response received (≈ `--duration`
//!   when the publishers keep up). A second figure divides by the span from
//!   the first request to the last delivery, which is lower when the server
//!   lags behind.
//! - **latency** = receive time of the WebSocket frame − `t`, where `t` is read
//!   just before the request is written and carried in the payload; both come
//!   from one monotonic clock in this process (µs). Recorded per delivery in a
//!   log-linear histogram (≤ 1.6 % bucket error; exact max) and reported as
//!   p50 / p99 / p99.9 / max. It includes the bench's own receive path.
//! - **publisher lag** = actual send time − scheduled time, per request.
//!   Publishers never slow down: a late request goes out at once. Up to ~1 ms
//!   of it is tokio's timer granularity. Requests still unsent 5 s after the
//!   scheduled end are dropped and reported as `unsent`.
//! - **server RSS**: VmRSS from `/proc/<pid>/status` before subscribers, idle
//!   after all subscribed (+ settle), and at the end (before closing them);
//!   bytes/connection = (idle − before) ÷ N.
//! - **cpu seconds**: utime + stime from `/proc/<pid>/stat` of the server and of
//!   the bench, from publish start to drain end.
//! - **sustainable**: no loss, no disconnects, no failed or unsent
//!   publications, and latency p99 ≤ 100 ms (the criterion DESIGN.md uses for
//!   "max sustainable"); raise `--rate` until it turns false.
//!
//! Before running: `cargo build --release` (or let `cargo bench` build the
//! binary; `--server-bin` picks another), and allow enough open files — the
//! bench holds one socket per subscriber and the server, which inherits the
//! bench's limits, one more each. The bench raises its soft limit to the hard
//! one through `prlimit` when needed, and otherwise asks for `ulimit -n 20000`.
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
//! # … and with 10 publications per HTTP request (/api/batch)
//! cargo bench --bench fanout -- --subscribers 1000 --channels 1 --rate 3500 --batch 10
//! # 1 channel × 10,000 subscribers at 100 msg/s: latency
//! cargo bench --bench fanout -- --subscribers 10000 --channels 1 --rate 100
//! # memory per idle subscribed connection at 19,900 connections
//! cargo bench --bench fanout -- --subscribers 19900 --idle-only
//! ```
//!
//! Add `--json` for a one-line JSON summary; `--help` lists every option.
//! Run with no arguments at all — as `cargo test --all-targets` does — it
//! prints a note and exits 0 without starting anything.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, anyhow, bail};
use clap::Parser;
use futures_util::{SinkExt as _, StreamExt as _};
use serde::Serialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{WebSocketStream, client_async_with_config};

/// API key written into the server config and sent as `X-API-Key`.
const API_KEY: &str = "bench-api-key";
/// HMAC secret for the subscribers' HS256 connection tokens.
const HMAC_SECRET: &str = "bench-secret";
/// How long the server gets to answer `GET /health` with 200 after spawn.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(20);
/// Budget for one subscriber: TCP connect + WebSocket upgrade + both replies.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
/// Budget for one HTTP API request; a slower one counts as failed.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Publishing stops this long after the scheduled end even if the publishers
/// are behind; what is left is reported as `unsent`.
const PUBLISH_GRACE: Duration = Duration::from_secs(5);
/// Upper bound for `--drain`, so a run always ends soon after publishing.
const MAX_DRAIN_SECS: f64 = 5.0;
/// Publishing starts this long after the publishers are spawned, so that
/// every publisher shares one schedule origin in the future.
const PUBLISH_LEAD: Duration = Duration::from_millis(100);
/// Latency p99 bound (ms) for a run to count as sustainable (DESIGN.md).
const SUSTAINABLE_P99_MS: f64 = 100.0;
/// Linux `CLK_TCK` (USER_HZ) used to convert `/proc/<pid>/stat` times; it is
/// 100 on every mainstream Linux build and we cannot ask `sysconf` safely.
const CLOCK_TICKS_PER_SEC: f64 = 100.0;
/// errno "Too many open files" (this process); like the two below, it gets
/// an explanation instead of a bare OS error.
const EMFILE: i32 = 24;
/// "Too many open files in system".
const ENFILE: i32 = 23;
/// "Cannot assign requested address": usually local ports ran out.
const EADDRNOTAVAIL: i32 = 99;

/// Command-line options (`cargo bench --bench fanout -- --help`).
#[derive(Parser, Debug, Clone)]
#[command(name = "fanout", about = "Tidewire fan-out benchmark (black-box, loopback only)")]
struct Args {
    /// Server binary to spawn as `<bin> serve --config <file>`
    /// [default: the package's `tidewire` binary in target/release]
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Number of WebSocket subscriber connections (N).
    #[arg(long, default_value_t = 1000)]
    subscribers: usize,
    /// Number of channels (C); subscriber i subscribes to `bench-{i % C}`.
    #[arg(long, default_value_t = 1)]
    channels: usize,
    /// Publications per second, all channels together, round-robin over channels.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Approximate size in bytes of each publication's JSON `data`.
    #[arg(long, default_value_t = 100)]
    payload: usize,
    /// Concurrent HTTP/1.1 keep-alive publisher connections (P), one request in flight each.
    #[arg(long, default_value_t = 4)]
    publishers: usize,
    /// Publications per request; above 1 they go through `POST /api/batch`.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Server `client.queue_max_size` in bytes (per-connection outgoing queue).
    #[arg(long, default_value_t = 10_485_760)]
    queue_max_size: u64,
    /// Only open the subscribers, measure the server's memory, and exit.
    #[arg(long)]
    idle_only: bool,
    /// Subscriber transport: `websocket` (JSON), `quic` (raw QUIC, native mode) or
    /// `webtransport` (WebTransport native mode), the last two through `tidewire::client`.
    #[arg(long, default_value = "websocket", value_parser = ["websocket", "quic", "webtransport"])]
    transport: String,
    /// QUIC/WebTransport: deliver the bench channels as datagrams (`delivery = "datagram"`).
    #[arg(long)]
    datagram: bool,
    /// Keep history for the bench channels: `history_size = N`, `history_ttl = "300s"`
    /// and `force_recovery = true` (every subscription positioned and recoverable).
    #[arg(long, default_value_t = 0)]
    history_size: usize,
    /// History memory mode: fill C channels with `--history-size` publications of
    /// `--payload` bytes each through `/api/batch`, report the server's RSS growth, exit.
    #[arg(long, default_value_t = 0)]
    fill_channels: usize,
    /// Spread client source addresses over 127.0.0.2 ..= 127.0.0.(1+K).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u8).range(1..=250))]
    source_ips: u8,
    /// WebSocket handshakes in flight at once while connecting.
    #[arg(long, default_value_t = 200)]
    connect_concurrency: usize,
    /// Seconds to wait for late deliveries after the last publication (max 5).
    #[arg(long, default_value_t = 3.0)]
    drain: f64,
    /// Seconds to let the server settle after all subscribers are in, before
    /// reading its idle memory.
    #[arg(long, default_value_t = 2.0)]
    settle: f64,
    /// Worker threads of the bench's tokio runtime [default: CPU count].
    #[arg(long)]
    threads: Option<usize>,
    /// Read buffer per subscriber WebSocket, bytes. tungstenite allocates it
    /// eagerly and zero-fills its free part before every read, so bigger is
    /// slower unless frames are large.
    #[arg(long, default_value_t = 8 * 1024)]
    ws_read_buffer: usize,
    /// Print the summary as one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Passed by `cargo bench` to every bench binary; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

impl Args {
    /// Rejects option values that would make the run meaningless or unbounded.
    fn validate(&self) -> anyhow::Result<()> {
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
        Ok(())
    }

    /// Publications the schedule contains: `round(rate × duration)`.
    fn total_publications(&self) -> u64 {
        (self.rate * self.duration).round() as u64
    }

    /// Number of subscribers of channel `k` (subscriber i is on channel i % C).
    fn subscribers_of(&self, k: usize) -> u64 {
        let (n, c) = (self.subscribers, self.channels);
        (n / c + usize::from(k < n % c)) as u64
    }
}

fn main() -> anyhow::Result<()> {
    // `cargo test --all-targets` (CI) runs bench targets with no arguments;
    // `cargo bench` always passes `--bench`. A benchmark is not a test, so skip.
    if std::env::args_os().len() <= 1 {
        println!("fanout: skipped (no arguments); run it with `cargo bench --bench fanout -- [options]`");
        return Ok(());
    }
    let args = Args::parse();
    args.validate()?;
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(threads) = args.threads {
        builder.worker_threads(threads.max(1));
    }
    let runtime = builder.build().context("building the tokio runtime")?;
    let summary = runtime.block_on(run(args.clone()))?;
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        print!("{}", summary.table());
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------

/// Everything the bench reports; `--json` prints it as is.
#[derive(Serialize, Debug, Default)]
struct Summary {
    /// The options that define the scenario.
    scenario: Scenario,
    /// Seconds from the first subscriber connect to the last subscribe reply.
    connect_secs: f64,
    /// Publications the server acknowledged without error.
    published: u64,
    /// Publications whose request or batch item failed (HTTP error, API error, timeout).
    publish_errors: u64,
    /// The first publish failure, if any.
    first_publish_error: Option<String>,
    /// Publications not sent because the publishers were more than
    /// `PUBLISH_GRACE` behind schedule when it ran out.
    unsent: u64,
    /// Σ over channels of published(channel) × subscribers(channel).
    expected: u64,
    /// Unique publications received (the first arrival of each seq per subscriber).
    delivered: u64,
    /// max(expected − delivered, 0).
    lost: u64,
    /// WebSocket text frames the subscribers received after subscribing
    /// (shows how many messages the server packs into one frame).
    frames: u64,
    /// Publications that arrived at or below a seq already seen from the same
    /// publisher connection on that channel (duplicates or reordering).
    out_of_order: u64,
    /// Subscribers closed by the server with code 3008 (slow client).
    slow_disconnects: u64,
    /// Subscribers that ended otherwise before the end (other close codes, errors).
    other_disconnects: u64,
    /// First close code / error seen among `other_disconnects`.
    first_disconnect: Option<String>,
    /// Lines that were neither a pub push nor a ping (replies, other pushes).
    other_messages: u64,
    /// Pub pushes whose seq or t could not be read.
    unparsed: u64,
    /// Server pings received by subscribers after subscribing, and pongs sent back.
    pings: u64,
    /// See `pings`.
    pongs: u64,
    /// Seconds from the first request sent to the last response received.
    publish_window_secs: f64,
    /// delivered ÷ publish_window_secs.
    deliveries_per_sec: f64,
    /// Seconds from the first request sent to the last delivery received.
    delivery_span_secs: f64,
    /// delivered ÷ delivery_span_secs (≤ deliveries_per_sec; lower when the
    /// server lags behind the publishers).
    deliveries_per_sec_span: f64,
    /// Delivery latency percentiles (ms).
    latency_ms: Percentiles,
    /// No loss, no disconnects, no failed or unsent publications, p99 ≤ 100 ms.
    sustainable: bool,
    /// How late requests went out compared with the open-loop schedule (ms).
    publisher_lag_ms: Percentiles,
    /// Server VmRSS before subscribers, idle with all subscribed, at the end (bytes).
    rss_before: u64,
    /// See `rss_before`.
    rss_idle: u64,
    /// See `rss_before`.
    rss_end: u64,
    /// (rss_idle − rss_before) ÷ subscribers.
    bytes_per_connection: f64,
    /// The bench's own VmRSS at the idle point (bytes), for context.
    bench_rss_idle: u64,
    /// Server CPU seconds (user + system) from publish start to drain end.
    server_cpu_secs: f64,
    /// Bench process CPU seconds over the same interval.
    bench_cpu_secs: f64,
}

/// The scenario parameters, echoed in the summary.
#[derive(Serialize, Debug, Default)]
struct Scenario {
    subscribers: usize,
    channels: usize,
    rate: f64,
    duration_secs: f64,
    payload_bytes: usize,
    publishers: usize,
    batch: usize,
    queue_max_size: u64,
    idle_only: bool,
    source_ips: u8,
}

/// p50 / p99 / p99.9 / max of one histogram, in milliseconds.
#[derive(Serialize, Debug, Default, Clone, Copy)]
struct Percentiles {
    count: u64,
    p50: f64,
    p99: f64,
    p999: f64,
    max: f64,
}

impl Summary {
    /// The human-readable report printed on stdout.
    fn table(&self) -> String {
        let s = &self.scenario;
        let mut t = String::new();
        let mb = |b: u64| b as f64 / (1024.0 * 1024.0);
        let _ = writeln!(t, "\n=== Tidewire fan-out benchmark ===");
        if s.idle_only {
            let _ = writeln!(t, "scenario          {} subscribers, {} channel(s), idle only", s.subscribers, s.channels);
        } else {
            let _ = writeln!(
                t,
                "scenario          {} subscribers, {} channel(s), {} msg/s for {} s, {} B payload, \
                 {} publisher(s), batch {}, queue_max_size {} B",
                s.subscribers,
                s.channels,
                s.rate,
                s.duration_secs,
                s.payload_bytes,
                s.publishers,
                s.batch,
                s.queue_max_size,
            );
        }
        let _ = writeln!(t, "connect time      {:.2} s ({} source IPs)", self.connect_secs, s.source_ips);
        if !s.idle_only {
            let _ = writeln!(
                t,
                "published         {} ok, {} failed, {} unsent",
                self.published, self.publish_errors, self.unsent
            );
            if let Some(e) = &self.first_publish_error {
                let _ = writeln!(t, "first failure     {e}");
            }
            let _ = writeln!(t, "expected          {}  (Σ published(ch) × subscribers(ch))", self.expected);
            let pct = if self.expected > 0 {
                100.0 * self.lost as f64 / self.expected as f64
            } else {
                0.0
            };
            let _ = writeln!(
                t,
                "delivered         {}  lost {} ({pct:.3}%), out-of-order/duplicate {}",
                self.delivered, self.lost, self.out_of_order
            );
            let _ = writeln!(
                t,
                "frames            {}  ({:.1} deliveries per WebSocket frame)",
                self.frames,
                self.delivered as f64 / self.frames.max(1) as f64
            );
            let _ = writeln!(
                t,
                "deliveries/s      {:.0}  (delivered ÷ publish window {:.3} s: first request sent → last response)",
                self.deliveries_per_sec, self.publish_window_secs
            );
            let _ = writeln!(
                t,
                "                  {:.0}  (delivered ÷ {:.3} s: first request sent → last delivery received)",
                self.deliveries_per_sec_span, self.delivery_span_secs
            );
            let l = self.latency_ms;
            let _ = writeln!(
                t,
                "latency ms        p50 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}  ({} samples)",
                l.p50, l.p99, l.p999, l.max, l.count
            );
            let g = self.publisher_lag_ms;
            let _ = writeln!(
                t,
                "publisher lag ms  p50 {:.2}  p99 {:.2}  max {:.2}  ({} requests)",
                g.p50, g.p99, g.max, g.count
            );
            let _ = writeln!(
                t,
                "cpu seconds       server {:.2}, bench {:.2}  (publish start → drain end)",
                self.server_cpu_secs, self.bench_cpu_secs
            );
            let _ = writeln!(
                t,
                "sustainable       {}  (no loss, disconnects, failed or unsent publications; p99 ≤ {SUSTAINABLE_P99_MS} ms)",
                if self.sustainable { "yes" } else { "NO" }
            );
        }
        let _ = writeln!(
            t,
            "disconnects       {} slow (3008), {} other{}",
            self.slow_disconnects,
            self.other_disconnects,
            self.first_disconnect.as_deref().map(|d| format!(" (first: {d})")).unwrap_or_default()
        );
        let _ = writeln!(
            t,
            "other messages    {} pings ({} answered), {} other, {} unparsable pubs",
            self.pings, self.pongs, self.other_messages, self.unparsed
        );
        let _ = writeln!(
            t,
            "server RSS        before {:.1} MiB, idle {:.1} MiB, end {:.1} MiB",
            mb(self.rss_before),
            mb(self.rss_idle),
            mb(self.rss_end)
        );
        let _ = writeln!(
            t,
            "bytes/connection  {:.0}  ((idle − before) ÷ {})",
            self.bytes_per_connection, s.subscribers
        );
        let _ = writeln!(t, "bench RSS idle    {:.1} MiB", mb(self.bench_rss_idle));
        t
    }
}

/// Shared counters read by the progress line and the drain check.
#[derive(Default)]
struct Progress {
    /// Publications acknowledged so far.
    published: AtomicU64,
    /// Unique deliveries so far.
    delivered: AtomicU64,
    /// Subscribers that completed connect + subscribe.
    connected: AtomicUsize,
    /// Subscribers currently open (connected and not yet closed).
    open: AtomicUsize,
    /// Current phase, one of `PHASES`.
    phase: AtomicU8,
}

/// Names of the phases shown in the progress line.
const PHASES: [&str; 5] = ["starting", "connecting", "settling", "publishing", "draining"];

impl Progress {
    /// Switches the phase shown in the progress line.
    fn set_phase(&self, name: &str) {
        let idx = PHASES.iter().position(|p| *p == name).unwrap_or(0);
        self.phase.store(idx as u8, Ordering::Relaxed);
    }
}

/// Runs one scenario end to end; the server is killed when this returns, on
/// every path, by the `ServerProcess` guard.
async fn run(args: Args) -> anyhow::Result<Summary> {
    raise_fd_limit(args.subscribers);
    let bin = resolve_server_bin(args.server_bin.as_deref())?;
    let server = ServerProcess::start(&bin, args.queue_max_size, args.history_size, args.datagram).await?;
    if args.fill_channels > 0 {
        let result = fill_history(&args, &server).await;
        server.stop(result.is_ok());
        result?;
        std::process::exit(0);
    }
    let result = run_with_server(&args, &server).await;
    match result {
        Ok(summary) => {
            server.stop(true);
            Ok(summary)
        }
        Err(err) => {
            let note = server.log_note();
            server.stop(false);
            Err(anyhow!("{err:#}\n{note}"))
        }
    }
}

/// The part of the run that needs a live server.
async fn run_with_server(args: &Args, server: &ServerProcess) -> anyhow::Result<Summary> {
    let origin = Instant::now();
    let progress = Arc::new(Progress::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let reporter = tokio::spawn(report_progress(Arc::clone(&progress), origin, stop_rx.clone()));

    let mut summary = Summary {
        scenario: Scenario {
            subscribers: args.subscribers,
            channels: args.channels,
            rate: args.rate,
            duration_secs: args.duration,
            payload_bytes: args.payload,
            publishers: args.publishers,
            batch: args.batch,
            queue_max_size: args.queue_max_size,
            idle_only: args.idle_only,
            source_ips: args.source_ips,
        },
        ..Summary::default()
    };
    summary.rss_before = read_rss(server.pid)?;

    // Subscribers.
    progress.set_phase("connecting");
    let connect_start = Instant::now();
    let ctx = Arc::new(SubscriberContext {
        server: server.addr,
        url: format!("ws://{}/connection/websocket", server.addr),
        source_ips: args.source_ips,
        channels: args.channels,
        batch: args.batch as u64,
        publishers: args.publishers as u64,
        ws_read_buffer: args.ws_read_buffer,
        connect_gate: Semaphore::new(args.connect_concurrency),
        origin,
        progress: Arc::clone(&progress),
    });
    let (ready_tx, mut ready_rx) = mpsc::channel::<Result<(), String>>(1024);
    let mut subscribers = Vec::with_capacity(args.subscribers);
    let mut stoppers = Vec::with_capacity(args.subscribers);
    let native = native_context(args, server).await?;
    for i in 0..args.subscribers {
        let (stopper, stopped) = oneshot::channel();
        match &native {
            None => {
                let task = run_subscriber(Arc::clone(&ctx), i, stop_rx.clone(), stopped, ready_tx.clone());
                subscribers.push(tokio::spawn(task));
            }
            Some(n) => {
                let task = run_native_subscriber(Arc::clone(&ctx), Arc::clone(n), i, stopped, ready_tx.clone());
                subscribers.push(tokio::spawn(task));
            }
        }
        stoppers.push(stopper);
    }
    drop(ready_tx);
    let mut ready = 0usize;
    let mut first_error: Option<String> = None;
    while ready < args.subscribers {
        match ready_rx.recv().await {
            Some(Ok(())) => ready += 1,
            Some(Err(e)) => {
                // Stop at the first failure: no point in opening the rest.
                first_error = Some(e);
                break;
            }
            None => break,
        }
    }
    drop(ready_rx);
    summary.connect_secs = connect_start.elapsed().as_secs_f64();
    if ready < args.subscribers {
        let _ = stop_tx.send(true);
        for task in &subscribers {
            task.abort();
        }
        let _ = reporter.await;
        bail!(
            "only {ready} of {} subscribers connected and subscribed; first error: {}",
            args.subscribers,
            first_error.unwrap_or_else(|| "subscriber tasks ended early".into())
        );
    }

    // Idle memory.
    progress.set_phase("settling");
    tokio::time::sleep(Duration::from_secs_f64(args.settle)).await;
    summary.rss_idle = read_rss(server.pid)?;
    summary.bench_rss_idle = read_rss(std::process::id())?;
    summary.bytes_per_connection =
        (summary.rss_idle as f64 - summary.rss_before as f64) / args.subscribers as f64;

    if !args.idle_only {
        progress.set_phase("publishing");
        let cpu_start = (read_cpu_secs(&format!("/proc/{}/stat", server.pid)), read_cpu_secs("/proc/self/stat"));
        let publish = publish_all(args, server.addr, origin, &progress).await;
        summary.published = publish.ok;
        summary.publish_errors = publish.failed;
        summary.unsent = publish.unsent;
        summary.first_publish_error = publish.first_error.clone();
        summary.expected = (0..args.channels).map(|k| publish.ok_per_channel[k] * args.subscribers_of(k)).sum();
        summary.publisher_lag_ms = publish.lag.percentiles_ms();
        summary.publish_window_secs = match (publish.first_send_us, publish.last_ack_us) {
            (Some(a), Some(b)) if b > a => (b - a) as f64 / 1e6,
            _ => 0.0,
        };

        // Drain: wait until everything expected arrived, or the drain time ran out.
        progress.set_phase("draining");
        let drain_end = Instant::now() + Duration::from_secs_f64(args.drain);
        while Instant::now() < drain_end && progress.delivered.load(Ordering::Relaxed) < summary.expected {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        summary.server_cpu_secs = read_cpu_secs(&format!("/proc/{}/stat", server.pid)) - cpu_start.0;
        summary.bench_cpu_secs = read_cpu_secs("/proc/self/stat") - cpu_start.1;

        summary.rss_end = read_rss(server.pid)?;
        let _ = stop_tx.send(true);
        let merged = finish_tasks(subscribers, stoppers).await;
        summary.delivered = merged.delivered;
        summary.frames = merged.frames;
        summary.lost = summary.expected.saturating_sub(merged.delivered);
        summary.out_of_order = merged.out_of_order;
        summary.slow_disconnects = merged.slow_disconnects;
        summary.other_disconnects = merged.other_disconnects;
        summary.first_disconnect = merged.first_disconnect;
        summary.other_messages = merged.other_messages;
        summary.unparsed = merged.unparsed;
        summary.pings = merged.pings;
        summary.pongs = merged.pongs;
        summary.latency_ms = merged.latency.percentiles_ms();
        if let (Some(first), Some(last)) = (publish.first_send_us, merged.last_rx_us) {
            summary.delivery_span_secs = last.saturating_sub(first) as f64 / 1e6;
        }
        if summary.publish_window_secs > 0.0 {
            summary.deliveries_per_sec = summary.delivered as f64 / summary.publish_window_secs;
        }
        if summary.delivery_span_secs > 0.0 {
            summary.deliveries_per_sec_span = summary.delivered as f64 / summary.delivery_span_secs;
        }
        summary.sustainable = summary.lost == 0
            && summary.slow_disconnects == 0
            && summary.other_disconnects == 0
            && summary.publish_errors == 0
            && summary.unsent == 0
            && summary.latency_ms.p99 <= SUSTAINABLE_P99_MS;
    } else {
        summary.rss_end = summary.rss_idle;
        let _ = stop_tx.send(true);
        let merged = finish_tasks(subscribers, stoppers).await;
        summary.other_disconnects = merged.other_disconnects + merged.slow_disconnects;
        summary.first_disconnect = merged.first_disconnect;
        summary.pings = merged.pings;
        summary.pongs = merged.pongs;
    }
    let _ = stop_tx.send(true);
    let _ = reporter.await;
    Ok(summary)
}

/// Prints a progress line to stderr every second, overwriting it with `\r`.
async fn report_progress(progress: Arc<Progress>, origin: Instant, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last_delivered = 0u64;
    let mut last_at = Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        let delivered = progress.delivered.load(Ordering::Relaxed);
        let now = Instant::now();
        let rate = (delivered - last_delivered.min(delivered)) as f64 / now.duration_since(last_at).as_secs_f64().max(1e-3);
        (last_delivered, last_at) = (delivered, now);
        let phase = PHASES[usize::from(progress.phase.load(Ordering::Relaxed)).min(PHASES.len() - 1)];
        eprint!(
            "\r[{:6.1}s] {:<10} published {:>9}  delivered {:>11}  {:>10.0}/s  connections {:>6} open / {:>6} subscribed   ",
            origin.elapsed().as_secs_f64(),
            phase,
            progress.published.load(Ordering::Relaxed),
            delivered,
            rate,
            progress.open.load(Ordering::Relaxed),
            progress.connected.load(Ordering::Relaxed),
        );
    }
    eprintln!();
}

// ---------------------------------------------------------------------------
// Server process
// ---------------------------------------------------------------------------

/// The server child process; killed (by PID, via `Child::kill`) when dropped.
struct ServerProcess {
    /// The spawned server.
    child: Child,
    /// Its PID, for /proc reads.
    pid: u32,
    /// Where clients connect: 127.0.0.1 and the chosen port.
    addr: SocketAddr,
    /// The client UDP port (raw QUIC and WebTransport).
    quic: SocketAddr,
    /// Temporary directory holding the config and the log.
    dir: PathBuf,
    /// The server's stdout + stderr.
    log_path: PathBuf,
}

impl ServerProcess {
    /// Writes the config, spawns the server and waits for `GET /health` → 200.
    async fn start(bin: &Path, queue_max_size: u64, history_size: usize, datagram: bool) -> anyhow::Result<Self> {
        let port = free_port()?;
        let quic_port = free_udp_port()?;
        let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
        let stamp = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let dir = std::env::temp_dir().join(format!("tidewire-fanout-{}-{stamp}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let config_path = dir.join("config.toml");
        let mut history = if history_size > 0 {
            format!("history_size = {history_size}\nhistory_ttl = \"300s\"\nforce_recovery = true\n")
        } else {
            String::new()
        };
        if datagram {
            history.push_str("delivery = \"datagram\"\n");
        }
        let config = format!(
            "[http_server]\naddress = \"127.0.0.1\"\nport = {port}\n\n\
             [http_server.http3]\nport = 0\n\n[quic]\nport = {quic_port}\n\n\
             [http_api]\nkey = \"{API_KEY}\"\n\n\
             [client]\nqueue_max_size = {queue_max_size}\n\n\
             [client.token]\nhmac_secret_key = \"{HMAC_SECRET}\"\n\n\
             [channel.without_namespace]\nallow_subscribe_for_client = true\n{history}\n\
             [log]\nlevel = \"warn\"\n"
        );
        std::fs::write(&config_path, config).with_context(|| format!("writing {}", config_path.display()))?;
        let log_path = dir.join("server.log");
        let log = std::fs::File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
        let log_err = log.try_clone().context("duplicating the log file handle")?;
        let child = Command::new(bin)
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .with_context(|| format!("spawning {}", bin.display()))?;
        let quic = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), quic_port);
        let mut server = ServerProcess { pid: child.id(), child, addr, quic, dir, log_path };
        if let Err(err) = server.wait_healthy().await {
            let note = server.log_note();
            server.stop(false);
            return Err(anyhow!("{err:#}\n{note}"));
        }
        Ok(server)
    }

    /// Polls `GET /health` until it answers 200, the process exits, or time runs out.
    async fn wait_healthy(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + HEALTH_TIMEOUT;
        let mut last_error = String::from("no answer yet");
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().context("checking the server process")? {
                bail!("the server exited during start-up with {status}");
            }
            let mut conn = HttpConn::new(self.addr);
            match conn.request("GET", "/health", &[]).await {
                Ok((200, _)) => return Ok(()),
                Ok((status, _)) => last_error = format!("HTTP {status}"),
                Err(e) => last_error = format!("{e:#}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("GET http://{}/health did not return 200 within {HEALTH_TIMEOUT:?} (last: {last_error})", self.addr)
    }

    /// Where the server log is kept, and its last lines, for error messages.
    fn log_note(&self) -> String {
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
    fn stop(mut self, clean: bool) {
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

/// The server binary: `--server-bin`, else the one cargo built for this bench,
/// else `target/release/tidewire`.
fn resolve_server_bin(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
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

/// A free TCP port on 127.0.0.1 (bind :0, read it, release it).
/// A UDP port free right now on 127.0.0.1 (for the server's QUIC endpoint).
fn free_udp_port() -> anyhow::Result<u16> {
    let socket = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).context("binding a probe UDP socket")?;
    Ok(socket.local_addr().context("probe UDP address")?.port())
}

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// History memory mode: `--fill-channels` channels × `--history-size` publications of
/// `--payload` bytes, one `/api/batch` request per channel over one keep-alive
/// connection; prints the server's RSS before and after and the bytes per entry.
async fn fill_history(args: &Args, server: &ServerProcess) -> anyhow::Result<()> {
    use std::io::{BufRead, BufReader, Read, Write};
    anyhow::ensure!(args.history_size > 0, "--fill-channels needs --history-size");
    let (addr, pid) = (server.addr, server.pid);
    let (channels, per_channel, payload) = (args.fill_channels, args.history_size, args.payload);
    let before = read_rss(pid)?;
    let started = Instant::now();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let stream = std::net::TcpStream::connect(addr).context("connecting to the API")?;
        let mut reader = BufReader::new(stream.try_clone().context("cloning the socket")?);
        let mut writer = stream;
        writer.set_nodelay(true).context("TCP_NODELAY")?;
        let pad = "x".repeat(payload.saturating_sub(20).max(1));
        for ch in 0..channels {
            let commands: Vec<serde_json::Value> = (0..per_channel)
                .map(|i| serde_json::json!({"publish": {"channel": format!("fill-{ch}"), "data": {"i": i, "p": pad}}}))
                .collect();
            let body = serde_json::json!({"commands": commands}).to_string();
            // One write per request: several small writes would meet Nagle and delayed ACKs.
            let request = format!(
                "POST /api/batch HTTP/1.1\r\nHost: {addr}\r\nX-API-Key: {API_KEY}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            writer.write_all(request.as_bytes())?;
            let mut status = String::new();
            reader.read_line(&mut status)?;
            anyhow::ensure!(status.starts_with("HTTP/1.1 200"), "batch failed: {status}");
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line)?;
                if line == "\r\n" || line.is_empty() {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut sink = vec![0u8; length];
            reader.read_exact(&mut sink)?;
            if ch % 1000 == 999 {
                eprint!("\rfilled {} / {channels} channels", ch + 1);
            }
        }
        eprintln!();
        Ok(())
    })
    .await
    .context("fill task")??;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = read_rss(pid)?;
    let entries = (channels * per_channel) as u64;
    println!("=== history memory ===");
    println!("filled            {channels} channels × {per_channel} publications × {payload} B in {:.1} s", started.elapsed().as_secs_f64());
    println!("server RSS        before {:.1} MiB, after {:.1} MiB", before as f64 / 1048576.0, after as f64 / 1048576.0);
    println!("bytes/entry       {}", after.saturating_sub(before) / entries.max(1));
    Ok(())
}

/// VmRSS of a process in bytes, from `/proc/<pid>/status`.
fn read_rss(pid: u32) -> anyhow::Result<u64> {
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
fn read_cpu_secs(path: &str) -> f64 {
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
fn raise_fd_limit(subscribers: usize) {
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

// ---------------------------------------------------------------------------
// Subscribers
// ---------------------------------------------------------------------------

/// What every subscriber task shares.
struct SubscriberContext {
    /// The server's WebSocket address.
    server: SocketAddr,
    /// `ws://…/connection/websocket`.
    url: String,
    /// Number of 127.0.0.x source addresses to spread over.
    source_ips: u8,
    /// Channel count C.
    channels: usize,
    /// Publications per request, to find a seq's publisher.
    batch: u64,
    /// Publisher count P, to find a seq's publisher.
    publishers: u64,
    /// tungstenite read buffer size.
    ws_read_buffer: usize,
    /// Bounds the handshakes in flight.
    connect_gate: Semaphore,
    /// The clock origin shared with the publishers.
    origin: Instant,
    /// Live counters.
    progress: Arc<Progress>,
}

/// One subscriber's tallies, merged at the end.
#[derive(Default)]
struct SubscriberStats {
    /// Unique deliveries.
    delivered: u64,
    /// Text frames received after subscribing.
    frames: u64,
    /// Deliveries at or below the last seq seen from the same publisher.
    out_of_order: u64,
    /// Lines that were neither pub pushes nor pings.
    other_messages: u64,
    /// Pub pushes without readable seq / t.
    unparsed: u64,
    /// Server pings (`{}`) received after subscribing.
    pings: u64,
    /// Pongs sent (only when the connect reply had `"pong":true`).
    pongs: u64,
    /// Latency histogram, allocated on the first delivery.
    latency: Option<Histogram>,
    /// Receive time of the last delivery, µs since the origin.
    last_rx_us: Option<u64>,
    /// Set when the connection ended before the stop signal.
    ended: Option<Ending>,
}

/// How a subscriber connection ended before the bench stopped it.
enum Ending {
    /// The server closed with 3008 (slow client).
    Slow,
    /// Anything else: another close code, or a transport error.
    Other(String),
}

type Ws = WebSocketStream<TcpStream>;

/// One subscriber: connect, subscribe, report ready, then count deliveries
/// until told to stop or the server closes the connection.
async fn run_subscriber(
    ctx: Arc<SubscriberContext>,
    i: usize,
    stop: watch::Receiver<bool>,
    mut stopped: oneshot::Receiver<()>,
    ready: mpsc::Sender<Result<(), String>>,
) -> SubscriberStats {
    let mut stats = SubscriberStats::default();
    let handshake = {
        let Ok(_permit) = ctx.connect_gate.acquire().await else {
            return stats;
        };
        if *stop.borrow() {
            return stats;
        }
        tokio::time::timeout(HANDSHAKE_TIMEOUT, open_subscriber(&ctx, i)).await
    };
    let (mut ws, pong) = match handshake {
        Ok(Ok(opened)) => opened,
        Ok(Err(e)) => {
            let _ = ready.send(Err(format!("subscriber {i}: {e:#}"))).await;
            return stats;
        }
        Err(_) => {
            let _ = ready.send(Err(format!("subscriber {i}: handshake took over {HANDSHAKE_TIMEOUT:?}"))).await;
            return stats;
        }
    };
    ctx.progress.connected.fetch_add(1, Ordering::Relaxed);
    ctx.progress.open.fetch_add(1, Ordering::Relaxed);
    let _ = ready.send(Ok(())).await;
    drop(ready);

    // Next acceptable seq per publisher connection (seqs of one publisher to
    // one channel are sent strictly in order).
    let mut next_seq = vec![0u64; ctx.publishers as usize];
    loop {
        let msg = tokio::select! {
            biased;
            // A per-task oneshot, not the shared watch: polling it touches no
            // state shared with other subscribers.
            _ = &mut stopped => break,
            msg = ws.next() => msg,
        };
        match msg {
            Some(Ok(Message::Text(text))) => {
                let now_us = ctx.origin.elapsed().as_micros() as u64;
                stats.frames += 1;
                let (fresh, pings) = stats.absorb_frame(&text, now_us, &ctx, &mut next_seq);
                if fresh > 0 {
                    ctx.progress.delivered.fetch_add(fresh, Ordering::Relaxed);
                }
                stats.pings += u64::from(pings);
                for _ in 0..if pong { pings } else { 0 } {
                    if let Err(e) = ws.send(Message::text("{}")).await {
                        stats.ended = Some(Ending::Other(format!("sending pong: {e}")));
                        break;
                    }
                    stats.pongs += 1;
                }
                if stats.ended.is_some() {
                    break;
                }
            }
            Some(Ok(Message::Close(frame))) => {
                stats.ended = Some(match frame {
                    Some(f) if u16::from(f.code) == 3008 => Ending::Slow,
                    Some(f) => Ending::Other(format!("close {} {}", u16::from(f.code), f.reason.as_str())),
                    None => Ending::Other("close frame without code".into()),
                });
                break;
            }
            Some(Ok(_)) => {} // binary, ping, pong: tungstenite answers pings itself
            Some(Err(e)) => {
                stats.ended = Some(Ending::Other(format!("read error: {e}")));
                break;
            }
            None => {
                stats.ended = Some(Ending::Other("connection closed without close frame".into()));
                break;
            }
        }
    }
    ctx.progress.open.fetch_sub(1, Ordering::Relaxed);
    stats
}

/// What QUIC and WebTransport subscribers share: the client sockets and options.
struct NativeContext {
    /// One socket per [`CLIENTS_PER_SOCKET`] subscribers: a single socket for thousands
    /// of connections would make the load generator the bottleneck.
    connectors: Vec<tidewire::client::Connector>,
    /// Options (address, transport, pinned certificate hash).
    options: tidewire::client::Options,
}

/// Subscribers sharing one client UDP socket.
const CLIENTS_PER_SOCKET: usize = 100;

/// For `--transport quic|webtransport`: fetches the dev certificate hash and opens the
/// client sockets; `None` for WebSocket.
async fn native_context(args: &Args, server: &ServerProcess) -> anyhow::Result<Option<Arc<NativeContext>>> {
    use tidewire::client::{Connector, Options, Transport, Trust};
    let transport = match args.transport.as_str() {
        "quic" => Transport::Quic,
        "webtransport" => Transport::WebTransport,
        _ => return Ok(None),
    };
    let addr = server.addr;
    let body = tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(addr).context("connecting for the cert hash")?;
        s.write_all(format!("GET /webtransport/cert-hash HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())?;
        let mut text = String::new();
        s.read_to_string(&mut text)?;
        Ok(text)
    })
    .await
    .context("cert hash task")??;
    let json = body.split("\r\n\r\n").nth(1).ok_or_else(|| anyhow!("no body in the cert-hash answer"))?;
    let value: serde_json::Value = serde_json::from_str(json.trim()).context("cert-hash JSON")?;
    let hex = value["hash"].as_str().ok_or_else(|| anyhow!("cert-hash has no hash: {json}"))?;
    let mut hash = [0u8; 32];
    for (i, byte) in hash.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2).ok_or_else(|| anyhow!("short hash"))?, 16)?;
    }
    let options = Options::new(server.quic, transport, Trust::CertHash(vec![hash]));
    let sockets = args.subscribers.div_ceil(CLIENTS_PER_SOCKET).max(1);
    let connectors = (0..sockets)
        .map(|_| Connector::new(&options).map_err(|e| anyhow!("client socket: {e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Some(Arc::new(NativeContext { connectors, options })))
}

/// A QUIC or WebTransport subscriber through `tidewire::client`: connect, subscribe to
/// its channel, report ready, then count deliveries (stream or datagram) until stopped.
async fn run_native_subscriber(
    ctx: Arc<SubscriberContext>,
    native: Arc<NativeContext>,
    i: usize,
    mut stopped: oneshot::Receiver<()>,
    ready: mpsc::Sender<Result<(), String>>,
) -> SubscriberStats {
    let mut stats = SubscriberStats::default();
    let opened = async {
        let _permit = ctx.connect_gate.acquire().await.map_err(|e| anyhow!("{e}"))?;
        let mut options = native.options.clone();
        options.token = connection_token(&format!("bench-user-{i}"))?;
        options.subscription_buffer = 4096;
        let connector = &native.connectors[i % native.connectors.len()];
        let client = connector.connect(options).await.map_err(|e| anyhow!("connect: {e}"))?;
        let channel = format!("bench-{}", i % ctx.channels);
        let sub = client.subscribe(&channel).await.map_err(|e| anyhow!("subscribe: {e}"))?;
        anyhow::Ok((client, sub))
    };
    let (client, mut sub) = match tokio::time::timeout(HANDSHAKE_TIMEOUT, opened).await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            let _ = ready.send(Err(format!("subscriber {i}: {e:#}"))).await;
            return stats;
        }
        Err(_) => {
            let _ = ready.send(Err(format!("subscriber {i}: handshake took over {HANDSHAKE_TIMEOUT:?}"))).await;
            return stats;
        }
    };
    ctx.progress.connected.fetch_add(1, Ordering::Relaxed);
    ctx.progress.open.fetch_add(1, Ordering::Relaxed);
    let _ = ready.send(Ok(())).await;
    drop(ready);
    let mut next_seq = vec![0u64; ctx.publishers as usize];
    loop {
        let publication = tokio::select! {
            biased;
            _ = &mut stopped => break,
            p = sub.next() => p,
        };
        let Some(p) = publication else {
            let (code, reason) = client.disconnect_reason().unwrap_or((0, "subscription ended".into()));
            stats.ended = Some(if code == 3008 { Ending::Slow } else { Ending::Other(format!("{code} {reason}")) });
            break;
        };
        let now_us = ctx.origin.elapsed().as_micros() as u64;
        stats.frames += 1;
        let Some((seq, t)) = std::str::from_utf8(&p.data).ok().and_then(scan_pub) else {
            stats.unparsed += 1;
            continue;
        };
        let publisher = ((seq / ctx.batch) % ctx.publishers) as usize;
        if seq < next_seq[publisher] {
            stats.out_of_order += 1;
            continue;
        }
        next_seq[publisher] = seq + 1;
        stats.delivered += 1;
        stats.last_rx_us = Some(now_us);
        stats.latency.get_or_insert_with(Histogram::new).record(now_us.saturating_sub(t));
        ctx.progress.delivered.fetch_add(1, Ordering::Relaxed);
    }
    ctx.progress.open.fetch_sub(1, Ordering::Relaxed);
    drop(sub);
    client.close().await;
    stats
}

impl SubscriberStats {
    /// Counts one frame's messages; returns (new unique deliveries, pings seen).
    fn absorb_frame(&mut self, text: &str, now_us: u64, ctx: &SubscriberContext, next_seq: &mut [u64]) -> (u64, u32) {
        let (mut fresh, mut pings) = (0u64, 0u32);
        for line in text.split('\n') {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            if line == "{}" {
                pings += 1;
                continue;
            }
            let Some(pub_at) = find_key(line, "\"pub\"") else {
                self.other_messages += 1;
                continue;
            };
            let Some((seq, t)) = scan_pub(&line[pub_at..]).or_else(|| parse_pub(line)) else {
                self.unparsed += 1;
                continue;
            };
            let publisher = ((seq / ctx.batch) % ctx.publishers) as usize;
            if seq < next_seq[publisher] {
                self.out_of_order += 1;
                continue;
            }
            next_seq[publisher] = seq + 1;
            fresh += 1;
            self.latency.get_or_insert_with(Histogram::new).record(now_us.saturating_sub(t));
        }
        if fresh > 0 {
            self.delivered += fresh;
            self.last_rx_us = Some(now_us);
        }
        (fresh, pings)
    }
}

/// TCP connect from this subscriber's source address, WebSocket upgrade,
/// connect + subscribe in one frame, and wait for both replies.
/// Returns the stream and whether the server wants pongs.
async fn open_subscriber(ctx: &SubscriberContext, i: usize) -> anyhow::Result<(Ws, bool)> {
    let source = Ipv4Addr::new(127, 0, 0, 2 + (i % usize::from(ctx.source_ips)) as u8);
    let socket = TcpSocket::new_v4().map_err(explain_io)?;
    socket.bind(SocketAddr::new(IpAddr::V4(source), 0)).map_err(explain_io)?;
    let stream = socket.connect(ctx.server).await.map_err(explain_io)?;
    stream.set_nodelay(true)?;
    let config = WebSocketConfig::default().read_buffer_size(ctx.ws_read_buffer).write_buffer_size(0);
    let (mut ws, _) = client_async_with_config(ctx.url.as_str(), stream, Some(config))
        .await
        .context("WebSocket upgrade")?;

    let channel = format!("bench-{}", i % ctx.channels);
    let token = connection_token(&format!("user-{i}"))?;
    let hello = format!(
        "{{\"id\":1,\"connect\":{{\"token\":\"{token}\"}}}}\n{{\"id\":2,\"subscribe\":{{\"channel\":\"{channel}\"}}}}"
    );
    ws.send(Message::text(hello)).await.context("sending connect + subscribe")?;

    let (mut pong, mut connected, mut subscribed, mut pending_pings) = (false, false, false, 0u32);
    while !(connected && subscribed) {
        let frame = match ws.next().await {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(frame))) => {
                let why = frame.map(|f| format!("{} {}", u16::from(f.code), f.reason.as_str())).unwrap_or_default();
                bail!("server closed the connection during connect/subscribe: {why}");
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => bail!("reading connect/subscribe replies: {e}"),
            None => bail!("connection closed before the connect/subscribe replies"),
        };
        for line in frame.split('\n').map(str::trim).filter(|l| !l.is_empty()) {
            if line == "{}" {
                pending_pings += 1;
                continue;
            }
            let value: serde_json::Value =
                serde_json::from_str(line).with_context(|| format!("unparsable server message {line:?}"))?;
            if value.get("error").is_some() {
                let to = if value.get("id").and_then(serde_json::Value::as_u64) == Some(1) { "connect" } else { "subscribe" };
                bail!("server replied to {to} with an error: {line}");
            }
            match value.get("id").and_then(serde_json::Value::as_u64) {
                Some(1) => {
                    let result = value.get("connect").ok_or_else(|| anyhow!("reply 1 has no connect result: {line}"))?;
                    pong = result.get("pong").and_then(serde_json::Value::as_bool).unwrap_or(false);
                    connected = true;
                }
                Some(2) => {
                    value.get("subscribe").ok_or_else(|| anyhow!("reply 2 has no subscribe result: {line}"))?;
                    subscribed = true;
                }
                _ => {} // a push before our replies: nothing is published yet, ignore
            }
        }
    }
    if pong {
        for _ in 0..pending_pings {
            ws.send(Message::text("{}")).await.context("sending pong")?;
        }
    }
    Ok((ws, pong))
}

/// Adds advice to the socket errors that have a known cause here.
fn explain_io(e: std::io::Error) -> anyhow::Error {
    match e.raw_os_error() {
        Some(EMFILE | ENFILE) => anyhow!(
            "{e}: out of file descriptors; raise the limit with `ulimit -n 20000` before `cargo bench` \
             (the server inherits it), or use fewer --subscribers"
        ),
        Some(EADDRNOTAVAIL) => anyhow!("{e}: out of local ports; pass a larger --source-ips"),
        _ => anyhow::Error::new(e),
    }
}

/// HS256 connection JWT for `user`, valid for one hour.
fn connection_token(user: &str) -> anyhow::Result<String> {
    #[derive(Serialize)]
    struct Claims<'a> {
        sub: &'a str,
        exp: u64,
    }
    let exp = SystemTime::now().duration_since(UNIX_EPOCH).context("system clock before 1970")?.as_secs() + 3600;
    let key = jsonwebtoken::EncodingKey::from_secret(HMAC_SECRET.as_bytes());
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &Claims { sub: user, exp }, &key).context("signing a JWT")
}

/// Fast path: reads `seq` and `t` out of the part of a pub push that starts
/// at `"pub"`, without a JSON parser. Only our own payload has these keys.
fn scan_pub(publication: &str) -> Option<(u64, u64)> {
    let (seq, rest) = number_after(publication, "\"seq\"")?;
    // We write `t` right after `seq`; look there first, then anywhere.
    let t = match number_after(rest, "\"t\"") {
        Some((t, _)) => t,
        None => number_after(publication, "\"t\"")?.0,
    };
    Some((seq, t))
}

/// Byte offset of `key` (which starts with `"`) in `text`. Cheaper than
/// `str::find` for these short lines: no searcher set-up per call.
fn find_key(text: &str, key: &str) -> Option<usize> {
    let (hay, key) = (text.as_bytes(), key.as_bytes());
    let mut from = 0;
    while let Some(pos) = hay[from..].iter().position(|&b| b == b'"') {
        let at = from + pos;
        if hay.len() - at >= key.len() && hay[at..at + key.len()].iter().zip(key).all(|(a, b)| a == b) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// The unsigned integer following `key` and a colon (whitespace allowed),
/// and the text after it.
fn number_after<'a>(text: &'a str, key: &str) -> Option<(u64, &'a str)> {
    let rest = text[find_key(text, key)? + key.len()..].trim_start().strip_prefix(':')?.trim_start();
    let end = rest.bytes().position(|b| !b.is_ascii_digit()).unwrap_or(rest.len());
    Some((rest[..end].parse().ok()?, &rest[end..]))
}

/// Slow path: a full JSON parse of `{"push":{"pub":{"data":{"seq":…,"t":…}}}}`.
fn parse_pub(line: &str) -> Option<(u64, u64)> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    let data = value.get("push")?.get("pub")?.get("data")?;
    Some((data.get("seq")?.as_u64()?, data.get("t")?.as_u64()?))
}

/// Merged subscriber results.
#[derive(Default)]
struct Merged {
    delivered: u64,
    frames: u64,
    out_of_order: u64,
    other_messages: u64,
    unparsed: u64,
    pings: u64,
    pongs: u64,
    slow_disconnects: u64,
    other_disconnects: u64,
    first_disconnect: Option<String>,
    latency: Histogram,
    last_rx_us: Option<u64>,
}

/// Tells every subscriber task to stop, waits for them (≤ 10 s in all) and
/// merges their stats.
async fn finish_tasks(tasks: Vec<tokio::task::JoinHandle<SubscriberStats>>, stoppers: Vec<oneshot::Sender<()>>) -> Merged {
    for stopper in stoppers {
        let _ = stopper.send(());
    }
    let mut merged = Merged { latency: Histogram::new(), ..Merged::default() };
    let deadline = Instant::now() + Duration::from_secs(10);
    for task in tasks {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let Ok(Ok(stats)) = tokio::time::timeout(remaining, task).await else {
            merged.other_disconnects += 1;
            merged.first_disconnect.get_or_insert_with(|| "subscriber task did not finish".into());
            continue;
        };
        merged.delivered += stats.delivered;
        merged.frames += stats.frames;
        merged.out_of_order += stats.out_of_order;
        merged.other_messages += stats.other_messages;
        merged.unparsed += stats.unparsed;
        merged.pings += stats.pings;
        merged.pongs += stats.pongs;
        if let Some(h) = &stats.latency {
            merged.latency.merge(h);
        }
        merged.last_rx_us = merged.last_rx_us.max(stats.last_rx_us);
        match stats.ended {
            Some(Ending::Slow) => merged.slow_disconnects += 1,
            Some(Ending::Other(why)) => {
                merged.other_disconnects += 1;
                merged.first_disconnect.get_or_insert(why);
            }
            None => {}
        }
    }
    merged
}

// ---------------------------------------------------------------------------
// Publishers
// ---------------------------------------------------------------------------

/// Publisher results, merged over all publisher connections.
struct PublishOutcome {
    ok: u64,
    failed: u64,
    unsent: u64,
    ok_per_channel: Vec<u64>,
    lag: Histogram,
    first_send_us: Option<u64>,
    last_ack_us: Option<u64>,
    /// The first failure, for the summary.
    first_error: Option<String>,
}

impl PublishOutcome {
    fn new(channels: usize) -> Self {
        PublishOutcome {
            ok: 0,
            failed: 0,
            unsent: 0,
            ok_per_channel: vec![0; channels],
            lag: Histogram::new(),
            first_send_us: None,
            last_ack_us: None,
            first_error: None,
        }
    }
}

/// Runs P publishers on one open-loop schedule and merges their outcomes.
///
/// Publication m (0 ≤ m < round(rate × duration)) goes to channel `m % C` and
/// carries `seq = m`; publications are grouped into requests of B consecutive
/// seqs, request r is sent by publisher `r % P` at `start + r·B / rate`, or at
/// once if that moment has passed (the lag is recorded).
async fn publish_all(args: &Args, addr: SocketAddr, origin: Instant, progress: &Arc<Progress>) -> PublishOutcome {
    let start = Instant::now() + PUBLISH_LEAD;
    let plan = Arc::new(PublishPlan {
        addr,
        origin,
        start,
        hard_deadline: start + Duration::from_secs_f64(args.duration) + PUBLISH_GRACE,
        rate: args.rate,
        total: args.total_publications(),
        batch: args.batch as u64,
        publishers: args.publishers as u64,
        channels: args.channels,
        payload: args.payload,
        progress: Arc::clone(progress),
    });
    let tasks: Vec<_> = (0..args.publishers as u64)
        .map(|j| tokio::spawn(run_publisher(Arc::clone(&plan), j)))
        .collect();
    let mut outcome = PublishOutcome::new(args.channels);
    for task in tasks {
        let Ok(p) = task.await else {
            continue;
        };
        outcome.ok += p.ok;
        outcome.failed += p.failed;
        outcome.unsent += p.unsent;
        for (sum, n) in outcome.ok_per_channel.iter_mut().zip(&p.ok_per_channel) {
            *sum += n;
        }
        outcome.lag.merge(&p.lag);
        outcome.first_send_us = match (outcome.first_send_us, p.first_send_us) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        outcome.last_ack_us = outcome.last_ack_us.max(p.last_ack_us);
        if outcome.first_error.is_none() {
            outcome.first_error = p.first_error;
        }
    }
    outcome
}

/// The schedule every publisher follows.
struct PublishPlan {
    addr: SocketAddr,
    origin: Instant,
    start: Instant,
    hard_deadline: Instant,
    rate: f64,
    total: u64,
    batch: u64,
    publishers: u64,
    channels: usize,
    payload: usize,
    progress: Arc<Progress>,
}

/// Publisher `j`: sends requests j, j+P, j+2P, … of the plan on one keep-alive connection.
async fn run_publisher(plan: Arc<PublishPlan>, j: u64) -> PublishOutcome {
    let mut out = PublishOutcome::new(plan.channels);
    let mut conn = HttpConn::new(plan.addr);
    let pad = "x".repeat(plan.payload);
    let mut body = String::with_capacity(256 * plan.batch as usize);
    let path = if plan.batch > 1 { "/api/batch" } else { "/api/publish" };
    let mut request = j;
    while request * plan.batch < plan.total {
        let first = request * plan.batch;
        let last = (first + plan.batch).min(plan.total); // exclusive
        let due = plan.start + Duration::from_secs_f64(first as f64 / plan.rate);
        if Instant::now() >= plan.hard_deadline {
            // Count everything this publisher still owed.
            let mut r = request;
            while r * plan.batch < plan.total {
                out.unsent += ((r + 1) * plan.batch).min(plan.total) - r * plan.batch;
                r += plan.publishers;
            }
            break;
        }
        let now = Instant::now();
        if now < due {
            tokio::time::sleep_until(due.into()).await;
        }
        out.lag.record(Instant::now().saturating_duration_since(due).as_micros() as u64);

        let t = plan.origin.elapsed().as_micros() as u64;
        body.clear();
        if plan.batch > 1 {
            body.push_str("{\"commands\":[");
            for m in first..last {
                if m > first {
                    body.push(',');
                }
                body.push_str("{\"publish\":");
                write_publish(&mut body, m, t, plan.channels, &pad);
                body.push('}');
            }
            body.push_str("]}");
        } else {
            write_publish(&mut body, first, t, plan.channels, &pad);
        }
        out.first_send_us.get_or_insert(t);
        let reply = tokio::time::timeout(HTTP_TIMEOUT, conn.request("POST", path, body.as_bytes())).await;
        let n = (last - first) as usize;
        let verdicts = match reply {
            Ok(Ok((200, reply_body))) => {
                let verdicts = item_verdicts(&reply_body, plan.batch > 1, n);
                if verdicts.contains(&false) && out.first_error.is_none() {
                    out.first_error = Some(format!("{path}: {}", String::from_utf8_lossy(&reply_body)));
                }
                verdicts
            }
            Ok(Ok((status, reply_body))) => {
                out.first_error.get_or_insert_with(|| {
                    format!("{path}: HTTP {status} {}", String::from_utf8_lossy(&reply_body))
                });
                vec![false; n]
            }
            Ok(Err(e)) => {
                out.first_error.get_or_insert_with(|| format!("{path}: {e:#}"));
                vec![false; n]
            }
            Err(_) => {
                conn.reset();
                out.first_error.get_or_insert_with(|| format!("{path}: no response within {HTTP_TIMEOUT:?}"));
                vec![false; n]
            }
        };
        let acked_us = plan.origin.elapsed().as_micros() as u64;
        let mut ok_here = 0;
        for (m, ok) in (first..last).zip(verdicts) {
            if ok {
                ok_here += 1;
                out.ok_per_channel[(m % plan.channels as u64) as usize] += 1;
            } else {
                out.failed += 1;
            }
        }
        if ok_here > 0 {
            out.ok += ok_here;
            out.last_ack_us = Some(acked_us);
            plan.progress.published.fetch_add(ok_here, Ordering::Relaxed);
        }
        request += plan.publishers;
    }
    out
}

/// Appends `{"channel":"bench-k","data":{"seq":m,"t":t,"pad":"xx…"}}`, with
/// the pad sized so that `data` is `pad.len()` bytes (or just over, when the
/// numbers alone are longer).
fn write_publish(body: &mut String, m: u64, t: u64, channels: usize, pad: &str) {
    let channel = m % channels as u64;
    let _ = write!(body, "{{\"channel\":\"bench-{channel}\",\"data\":");
    let data_start = body.len();
    let _ = write!(body, "{{\"seq\":{m},\"t\":{t},\"pad\":\"");
    let fixed = body.len() - data_start + 2; // the closing `"}`
    body.push_str(&pad[..pad.len().saturating_sub(fixed)]);
    body.push_str("\"}}");
}

/// Which publications of one successful HTTP reply were accepted: the single
/// `{"result":…}` of `/api/publish`, or each item of `/api/batch`'s `replies`.
fn item_verdicts(body: &[u8], batch: bool, n: usize) -> Vec<bool> {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return vec![false; n];
    };
    if !batch {
        return vec![value.get("result").is_some() && value.get("error").is_none(); n];
    }
    let replies = value.get("replies").and_then(serde_json::Value::as_array);
    (0..n)
        .map(|i| {
            replies
                .and_then(|r| r.get(i))
                .is_some_and(|reply| reply.get("error").is_none() && reply.get("publish").is_some())
        })
        .collect()
}

// ---------------------------------------------------------------------------
// A minimal HTTP/1.1 keep-alive client
// ---------------------------------------------------------------------------

/// One HTTP/1.1 connection with one request in flight; reconnects when the
/// server closes it. Deliberately tiny: fixed headers, Content-Length or
/// chunked responses, no redirects, no TLS.
struct HttpConn {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

/// Upper bound for a response head or body we are willing to buffer.
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

impl HttpConn {
    fn new(addr: SocketAddr) -> Self {
        HttpConn { addr, stream: None, buf: Vec::with_capacity(4096) }
    }

    /// Drops the connection (after a timeout the stream state is unknown).
    fn reset(&mut self) {
        self.stream = None;
        self.buf.clear();
    }

    /// Sends one request and returns (status, body). A request on a reused
    /// connection that the server had already closed is retried once on a
    /// fresh connection (nothing of it was processed).
    async fn request(&mut self, method: &str, path: &str, body: &[u8]) -> anyhow::Result<(u16, Vec<u8>)> {
        let reused = self.stream.is_some();
        match self.try_request(method, path, body).await {
            Ok(r) => Ok(r),
            Err(RequestError::Stale(_)) if reused => {
                self.reset();
                self.try_request(method, path, body).await.map_err(RequestError::into_anyhow)
            }
            Err(e) => {
                self.reset();
                Err(e.into_anyhow())
            }
        }
    }

    async fn try_request(&mut self, method: &str, path: &str, body: &[u8]) -> Result<(u16, Vec<u8>), RequestError> {
        if self.stream.is_none() {
            let stream = TcpStream::connect(self.addr).await.map_err(|e| RequestError::Other(explain_io(e)))?;
            stream.set_nodelay(true).map_err(|e| RequestError::Other(e.into()))?;
            self.stream = Some(stream);
            self.buf.clear();
        }
        let Some(stream) = self.stream.as_mut() else {
            return Err(RequestError::Other(anyhow!("no connection")));
        };
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nX-API-Key: {API_KEY}\r\n",
            self.addr
        );
        if !body.is_empty() {
            let _ = write!(req, "Content-Type: application/json\r\nContent-Length: {}\r\n", body.len());
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        stream.write_all(&bytes).await.map_err(|e| RequestError::Stale(e.into()))?;

        // Head.
        let head_end = loop {
            if let Some(pos) = find(&self.buf, b"\r\n\r\n") {
                break pos + 4;
            }
            if self.buf.len() > 64 * 1024 {
                return Err(RequestError::Other(anyhow!("response head over 64 KiB")));
            }
            let n = read_more(stream, &mut self.buf).await?;
            if n == 0 {
                return Err(if self.buf.is_empty() {
                    RequestError::Stale(anyhow!("connection closed before the response"))
                } else {
                    RequestError::Other(anyhow!("connection closed inside the response head"))
                });
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| RequestError::Other(anyhow!("bad status line in {head:?}")))?;
        let (mut content_length, mut chunked, mut close) = (None, false, false);
        for line in lines {
            let Some((name, value)) = line.split_once(':') else { continue };
            let value = value.trim();
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => content_length = value.parse::<usize>().ok(),
                "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
                "connection" => close = value.eq_ignore_ascii_case("close"),
                _ => {}
            }
        }
        self.buf.drain(..head_end);

        // Body.
        let body = if chunked {
            let mut out = Vec::new();
            loop {
                let line_end = loop {
                    if let Some(pos) = find(&self.buf, b"\r\n") {
                        break pos;
                    }
                    if read_more(stream, &mut self.buf).await? == 0 {
                        return Err(RequestError::Other(anyhow!("connection closed inside a chunked body")));
                    }
                };
                let size_text = String::from_utf8_lossy(&self.buf[..line_end]).into_owned();
                let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                    .map_err(|_| RequestError::Other(anyhow!("bad chunk size {size_text:?}")))?;
                let need = line_end + 2 + size + 2;
                while self.buf.len() < need {
                    if out.len() + need > MAX_RESPONSE_BYTES {
                        return Err(RequestError::Other(anyhow!("response body too large")));
                    }
                    if read_more(stream, &mut self.buf).await? == 0 {
                        return Err(RequestError::Other(anyhow!("connection closed inside a chunk")));
                    }
                }
                out.extend_from_slice(&self.buf[line_end + 2..line_end + 2 + size]);
                self.buf.drain(..need);
                if size == 0 {
                    break out; // (trailers are not supported; servers here send none)
                }
            }
        } else if let Some(len) = content_length {
            if len > MAX_RESPONSE_BYTES {
                return Err(RequestError::Other(anyhow!("response body of {len} bytes is too large")));
            }
            while self.buf.len() < len {
                if read_more(stream, &mut self.buf).await? == 0 {
                    return Err(RequestError::Other(anyhow!("connection closed inside the body")));
                }
            }
            self.buf.drain(..len).collect()
        } else {
            // No length: the body runs to the end of the connection.
            close = true;
            while read_more(stream, &mut self.buf).await? > 0 {
                if self.buf.len() > MAX_RESPONSE_BYTES {
                    return Err(RequestError::Other(anyhow!("response body too large")));
                }
            }
            std::mem::take(&mut self.buf)
        };
        if close {
            self.reset();
        }
        Ok((status, body))
    }
}

/// Why a request failed: `Stale` means nothing reached the server (safe to retry).
enum RequestError {
    Stale(anyhow::Error),
    Other(anyhow::Error),
}

impl RequestError {
    fn into_anyhow(self) -> anyhow::Error {
        match self {
            RequestError::Stale(e) | RequestError::Other(e) => e,
        }
    }
}

/// Reads whatever is available into `buf`; returns the byte count (0 = EOF).
async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<usize, RequestError> {
    buf.reserve(16 * 1024);
    stream.read_buf(buf).await.map_err(|e| RequestError::Other(e.into()))
}

/// Position of `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

// ---------------------------------------------------------------------------
// Histogram
// ---------------------------------------------------------------------------

/// Sub-buckets per power of two: 2^5 = 32, so a bucket spans ≤ 1/32 of its
/// value and the midpoint we report is within ≈1.6% of any value in it.
const SUB_BITS: u32 = 5;
/// Values (µs) at or above 2^MAX_BITS (≈ 38 hours) land in the last bucket.
const MAX_BITS: u32 = 37;
/// Bucket count: 64 exact buckets for 0..64, then 32 per further octave.
const BUCKETS: usize = ((MAX_BITS - SUB_BITS) as usize + 1) << SUB_BITS;

/// A log-linear histogram of microsecond values with bounded memory
/// (≈ 8 KB) and an exact maximum.
#[derive(Default)]
struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

impl Histogram {
    fn new() -> Self {
        Histogram { counts: vec![0; BUCKETS], total: 0, max: 0 }
    }

    /// Bucket index of `v`: v itself below 64, else (octave, top 5 bits below the leading one).
    fn index(v: u64) -> usize {
        let v = v.min((1u64 << MAX_BITS) - 1);
        if v < (2 << SUB_BITS) {
            return v as usize;
        }
        let msb = 63 - v.leading_zeros();
        let shift = msb - SUB_BITS;
        ((shift as usize) << SUB_BITS) + (v >> shift) as usize
    }

    /// Midpoint of bucket `i`'s value range.
    fn value_at(i: usize) -> f64 {
        if i < (2 << SUB_BITS) {
            return i as f64;
        }
        let shift = (i >> SUB_BITS) - 1;
        let mantissa = (i & ((1 << SUB_BITS) - 1)) + (1 << SUB_BITS);
        let low = (mantissa as u64) << shift;
        low as f64 + ((1u64 << shift) as f64 - 1.0) / 2.0
    }

    fn record(&mut self, v: u64) {
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS];
        }
        self.counts[Self::index(v)] += 1;
        self.total += 1;
        self.max = self.max.max(v);
    }

    fn merge(&mut self, other: &Histogram) {
        if other.total == 0 {
            return;
        }
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS];
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    /// Value (µs) at quantile `q`: the first bucket whose cumulative count reaches ⌈q·total⌉.
    fn quantile(&self, q: f64) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::value_at(i).min(self.max as f64);
            }
        }
        self.max as f64
    }

    fn percentiles_ms(&self) -> Percentiles {
        Percentiles {
            count: self.total,
            p50: self.quantile(0.50) / 1000.0,
            p99: self.quantile(0.99) / 1000.0,
            p999: self.quantile(0.999) / 1000.0,
            max: self.max as f64 / 1000.0,
        }
    }
}
