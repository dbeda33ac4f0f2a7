//! The report: every figure the bench prints, how it is derived from the raw
//! counts, the table (or `--json`), and the comparisons: with limit-server
//! (`--compare-limit`), of the Redis engine with the memory engine
//! (`--compare-memory`), and of Protobuf subscribers with JSON ones
//! (`--compare-protocols`).
//!
//! Pure: the run fills in raw counts (acknowledged publications per channel,
//! unique deliveries, times, /proc readings) and `Summary::derive` computes
//! the rest, so each figure's arithmetic is unit-tested here:
//! - expected = Σ over channels of acknowledged publications × subscribers of
//!   that channel; lost = max(expected − delivered, 0).
//! - deliveries/s = delivered ÷ publish window (first request sent → last
//!   acknowledging response), and delivered ÷ delivery span (first request sent
//!   → last delivery received), which is lower when the server lags behind.
//! - server CPU per delivery = server CPU seconds (publish start → drain end)
//!   × 10⁶ ÷ delivered; bytes/connection = (idle RSS − RSS before) ÷ N.
//! - sustainable: no loss, no disconnects, no failed or unsent publications,
//!   latency p99 ≤ 100 ms.
//! - publish API latency: per request, response received − request about to
//!   be written (µs, one monotonic clock), for every request answered with
//!   any HTTP status; transport errors and timeouts count as failed instead.
//! - ratios: the subject's figure ÷ the reference's — Tidewire ÷ limit-server
//!   (`--compare-limit`), Redis ÷ memory (`--compare-memory`), Protobuf ÷
//!   JSON (`--compare-protocols`) — `null` when
//!   either is unknown or the reference is 0. Server CPU and RSS are summed
//!   over a run's nodes; redis-server's CPU is reported apart, not in them.

use std::fmt::Write as _;

use serde::Serialize;

use crate::histogram::Percentiles;
use crate::scenario::{Scenario, subscribers_of};

/// Latency p99 bound (ms) for a run to count as sustainable (DESIGN.md).
pub(crate) const SUSTAINABLE_P99_MS: f64 = 100.0;

/// How an unknown figure (no PID for /proc) is printed.
fn unknown() -> String {
    "unknown".into()
}

/// The moments the windows are measured between, µs since the bench's origin.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Timing {
    /// The first publish request was written.
    pub(crate) first_send_us: Option<u64>,
    /// The last acknowledging response arrived.
    pub(crate) last_ack_us: Option<u64>,
    /// The last delivery arrived at a subscriber.
    pub(crate) last_rx_us: Option<u64>,
}

/// Σ over channels of acknowledged publications × subscribers of that channel,
/// for `n` subscribers spread over `c` channels.
pub(crate) fn expected_deliveries(ok_per_channel: &[u64], n: usize, c: usize) -> u64 {
    ok_per_channel.iter().enumerate().map(|(k, ok)| ok * subscribers_of(n, c, k)).sum()
}

/// `count ÷ secs`, 0 for an empty or negative window.
fn per_sec(count: u64, secs: f64) -> f64 {
    if secs > 0.0 { count as f64 / secs } else { 0.0 }
}

/// Seconds from `a` to `b` (µs), 0 when either is missing or b ≤ a.
fn window_secs(a: Option<u64>, b: Option<u64>) -> f64 {
    match (a, b) {
        (Some(a), Some(b)) if b > a => (b - a) as f64 / 1e6,
        _ => 0.0,
    }
}

/// `a ÷ b` when both are known and b is positive.
fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 && a.is_finite() && b.is_finite() => Some(a / b),
        _ => None,
    }
}

/// Everything the bench reports; `--json` prints it as is.
#[derive(Serialize, Debug, Default)]
pub(crate) struct Summary {
    /// The options that define the scenario.
    pub(crate) scenario: Scenario,
    /// Seconds from the first subscriber connect to the last subscribe reply.
    pub(crate) connect_secs: f64,
    /// Publications the server acknowledged without error.
    pub(crate) published: u64,
    /// Publications whose request or batch item failed (HTTP error, API error, timeout).
    pub(crate) publish_errors: u64,
    /// The first publish failure, if any.
    pub(crate) first_publish_error: Option<String>,
    /// Publications not sent because the publishers were more than
    /// `PUBLISH_GRACE` behind schedule when it ran out.
    pub(crate) unsent: u64,
    /// Σ over channels of published(channel) × subscribers(channel).
    pub(crate) expected: u64,
    /// Unique publications received (the first arrival of each seq per subscriber).
    pub(crate) delivered: u64,
    /// max(expected − delivered, 0).
    pub(crate) lost: u64,
    /// WebSocket text frames the subscribers received after subscribing
    /// (shows how many messages the server packs into one frame).
    pub(crate) frames: u64,
    /// Publications that arrived at or below a seq already seen from the same
    /// publisher connection on that channel (duplicates or reordering).
    pub(crate) out_of_order: u64,
    /// Subscribers closed by the server with code 3008 (slow client).
    pub(crate) slow_disconnects: u64,
    /// Subscribers that ended otherwise before the end (other close codes, errors).
    pub(crate) other_disconnects: u64,
    /// First close code / error seen among `other_disconnects`.
    pub(crate) first_disconnect: Option<String>,
    /// Lines that were neither a pub push nor a ping (replies, other pushes).
    pub(crate) other_messages: u64,
    /// Pub pushes whose seq or t could not be read.
    pub(crate) unparsed: u64,
    /// Server pings received by subscribers after subscribing, and pongs sent back.
    pub(crate) pings: u64,
    /// See `pings`.
    pub(crate) pongs: u64,
    /// Seconds from the first request sent to the last response received.
    pub(crate) publish_window_secs: f64,
    /// delivered ÷ publish_window_secs.
    pub(crate) deliveries_per_sec: f64,
    /// Seconds from the first request sent to the last delivery received.
    pub(crate) delivery_span_secs: f64,
    /// delivered ÷ delivery_span_secs (≤ deliveries_per_sec; lower when the
    /// server lags behind the publishers).
    pub(crate) deliveries_per_sec_span: f64,
    /// Delivery latency percentiles (ms).
    pub(crate) latency_ms: Percentiles,
    /// No loss, no disconnects, no failed or unsent publications, p99 ≤ 100 ms.
    pub(crate) sustainable: bool,
    /// How late requests went out compared with the open-loop schedule (ms).
    pub(crate) publisher_lag_ms: Percentiles,
    /// Publish API round trip per request (ms): request about to be written →
    /// response read, requests answered with any HTTP status.
    pub(crate) publish_rtt_ms: Percentiles,
    /// Server VmRSS before subscribers, idle with all subscribed, at the end
    /// (bytes); `null` when the server's PID is unknown (`--target` alone).
    pub(crate) rss_before: Option<u64>,
    /// See `rss_before`.
    pub(crate) rss_idle: Option<u64>,
    /// See `rss_before`.
    pub(crate) rss_end: Option<u64>,
    /// (rss_idle − rss_before) ÷ subscribers; `null` when RSS is unknown.
    pub(crate) bytes_per_connection: Option<f64>,
    /// The `--burst-bytes` burst of an idle run and the memory after it.
    pub(crate) burst: Option<Burst>,
    /// The bench's own VmRSS at the idle point (bytes), for context.
    pub(crate) bench_rss_idle: u64,
    /// Server CPU seconds (user + system) from publish start to drain end;
    /// `null` when the server's PID is unknown.
    pub(crate) server_cpu_secs: Option<f64>,
    /// The system (kernel) part of `server_cpu_secs`: mostly the sends, whose cost is
    /// per write, so it moves with deliveries per frame while the user part is the
    /// server's own work.
    pub(crate) server_sys_cpu_secs: Option<f64>,
    /// With several nodes, each one's share of `server_cpu_secs`, node 0
    /// (the publishers' node) first; empty with one node.
    pub(crate) node_cpu_secs: Vec<f64>,
    /// server_cpu_secs × 10⁶ ÷ delivered: server CPU µs per delivery.
    pub(crate) server_cpu_us_per_delivery: Option<f64>,
    /// Bench process CPU seconds over the same interval.
    pub(crate) bench_cpu_secs: f64,
    /// The bench's redis-server CPU seconds over the same interval
    /// (`--engine redis`; not part of `server_cpu_secs`).
    pub(crate) redis_cpu_secs: Option<f64>,
}

/// What a `--burst-bytes` burst did, and the server's memory once it was read.
#[derive(Serialize, Debug, Default, Clone)]
pub(crate) struct Burst {
    /// Publications of the burst per channel, each of `piece_bytes` of `data`.
    pub(crate) per_channel: u64,
    /// See `per_channel`.
    pub(crate) piece_bytes: usize,
    /// Publications acknowledged.
    pub(crate) published: u64,
    /// Publications failed or never sent.
    pub(crate) failed: u64,
    /// The first failure, for the summary.
    pub(crate) first_error: Option<String>,
    /// Σ published(ch) × subscribers(ch).
    pub(crate) expected: u64,
    /// Unique deliveries of the burst's publications.
    pub(crate) delivered: u64,
    /// Seconds from the first publication to the last delivery (or the wait's end).
    pub(crate) secs: f64,
    /// Server VmRSS after the burst was read and the server settled (bytes).
    pub(crate) rss: Option<u64>,
    /// (rss − rss_before) ÷ subscribers; `null` when RSS is unknown.
    pub(crate) bytes_per_connection: Option<f64>,
}

/// (after − before) ÷ n bytes, `None` when either reading is unknown.
pub(crate) fn per_connection(before: Option<u64>, after: Option<u64>, n: usize) -> Option<f64> {
    Some((after? as f64 - before? as f64) / n.max(1) as f64)
}

impl Summary {
    /// The human-readable report printed on stdout.
    pub(crate) fn table(&self) -> String {
        let s = &self.scenario;
        let mut t = String::new();
        let mb = |b: Option<u64>| b.map_or_else(unknown, |b| format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0)));
        let engine = match (&s.engine, s.nodes) {
            (Some(e), n) if n > 1 => format!(" ({e} engine, {n} nodes: subscribers round-robin, publishing through node 0)"),
            (Some(e), _) => format!(" ({e} engine)"),
            (None, _) => String::new(),
        };
        let _ = writeln!(t, "\n=== Tidewire fan-out benchmark: {}{engine} ===", s.server);
        if s.idle_only {
            let _ = writeln!(t, "scenario          {} subscribers, {} channel(s), idle only", s.subscribers, s.channels);
        } else {
            let _ = writeln!(
                t,
                "scenario          {} subscribers, {} channel(s), {} msg/s for {} s, {} B payload, \
                 {} publisher(s), batch {}{}",
                s.subscribers,
                s.channels,
                s.rate,
                s.duration_secs,
                s.payload_bytes,
                s.publishers,
                s.batch,
                s.queue_max_size.map(|q| format!(", queue_max_size {q} B")).unwrap_or_default(),
            );
        }
        if !s.protocol.is_empty() {
            let _ = writeln!(t, "client protocol   {}", s.protocol);
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
            let r = self.publish_rtt_ms;
            let _ = writeln!(
                t,
                "publish API ms    p50 {:.2}  p99 {:.2}  max {:.2}  ({} requests: request written → response, through node 0)",
                r.p50, r.p99, r.max, r.count
            );
            let _ = writeln!(
                t,
                "cpu seconds       server {}, bench {:.2}  (publish start → drain end)",
                self.server_cpu_secs.map_or_else(unknown, |c| match self.server_sys_cpu_secs {
                    Some(sys) => format!("{c:.2} (user {:.2}, system {sys:.2})", c - sys),
                    None => format!("{c:.2}"),
                }),
                self.bench_cpu_secs
            );
            let _ = writeln!(
                t,
                "server cpu        {} µs per delivery{}",
                self.server_cpu_us_per_delivery.map_or_else(unknown, |c| format!("{c:.3}")),
                if s.nodes > 1 { format!(" (summed over {} nodes)", s.nodes) } else { String::new() }
            );
            if !self.node_cpu_secs.is_empty() {
                let each: Vec<String> = self.node_cpu_secs.iter().enumerate().map(|(n, c)| format!("node {n} {c:.2} s")).collect();
                let _ = writeln!(t, "cpu per node      {}  (node 0 takes every publish request)", each.join(", "));
            }
            if let Some(redis) = self.redis_cpu_secs {
                let _ = writeln!(t, "redis-server cpu  {redis:.2} s  (same interval; not in the server figures)");
            }
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
            "server RSS        before {}, idle {}, end {}",
            mb(self.rss_before),
            mb(self.rss_idle),
            mb(self.rss_end)
        );
        let _ = writeln!(
            t,
            "bytes/connection  {}  ((idle − before) ÷ {})",
            self.bytes_per_connection.map_or_else(unknown, |b| format!("{b:.0}")),
            s.subscribers
        );
        if let Some(b) = &self.burst {
            let _ = writeln!(
                t,
                "burst             {} × {} KiB to each channel: {} ok, {} failed; {} of {} deliveries in {:.1} s{}",
                b.per_channel,
                b.piece_bytes / 1024,
                b.published,
                b.failed,
                b.delivered,
                b.expected,
                b.secs,
                b.first_error.as_deref().map(|e| format!(" (first failure: {e})")).unwrap_or_default()
            );
            let _ = writeln!(
                t,
                "after the burst   RSS {}, {} bytes/connection  ((after − before) ÷ {})",
                mb(b.rss),
                b.bytes_per_connection.map_or_else(unknown, |b| format!("{b:.0}")),
                s.subscribers
            );
        }
        let _ = writeln!(t, "bench RSS idle    {}", mb(Some(self.bench_rss_idle)));
        t
    }
}


impl Summary {
    /// Derives the publish-run figures from the raw counts already filled in
    /// (published, delivered, disconnects, latency, CPU seconds) plus
    /// acknowledged publications per channel and the window `timing`.
    pub(crate) fn derive(&mut self, ok_per_channel: &[u64], timing: Timing) {
        self.expected = expected_deliveries(ok_per_channel, self.scenario.subscribers, self.scenario.channels);
        self.lost = self.expected.saturating_sub(self.delivered);
        self.publish_window_secs = window_secs(timing.first_send_us, timing.last_ack_us);
        self.delivery_span_secs = window_secs(timing.first_send_us, timing.last_rx_us);
        self.deliveries_per_sec = per_sec(self.delivered, self.publish_window_secs);
        self.deliveries_per_sec_span = per_sec(self.delivered, self.delivery_span_secs);
        self.server_cpu_us_per_delivery =
            self.server_cpu_secs.filter(|_| self.delivered > 0).map(|s| s * 1e6 / self.delivered as f64);
        self.sustainable = self.is_sustainable();
    }

    /// Sets the RSS readings and the bytes per connection derived from them.
    pub(crate) fn set_rss(&mut self, before: Option<u64>, idle: Option<u64>) {
        (self.rss_before, self.rss_idle) = (before, idle);
        self.bytes_per_connection = per_connection(before, idle, self.scenario.subscribers);
    }

    /// No loss, no disconnects, no failed or unsent publications, p99 ≤ 100 ms.
    fn is_sustainable(&self) -> bool {
        self.lost == 0
            && self.slow_disconnects == 0
            && self.other_disconnects == 0
            && self.publish_errors == 0
            && self.unsent == 0
            && self.latency_ms.p99 <= SUSTAINABLE_P99_MS
    }
}

/// `--compare-limit`: both runs of one invocation and Tidewire ÷ limit-server.
#[derive(Serialize, Debug)]
pub(crate) struct Comparison {
    /// The reference run (first).
    pub(crate) limit_server: Summary,
    /// Tidewire's run (second).
    pub(crate) tidewire: Summary,
    /// Tidewire's figures ÷ limit-server's.
    pub(crate) ratios: Ratios,
}

/// `--compare-memory`: one memory-engine node, then the Redis nodes, in one
/// invocation, and Redis ÷ memory.
#[derive(Serialize, Debug)]
pub(crate) struct EngineComparison {
    /// The reference run (first): one node on the memory engine.
    pub(crate) memory: Summary,
    /// The Redis run (second): `--nodes` nodes on the bench's redis-server.
    pub(crate) redis: Summary,
    /// The Redis run's figures ÷ the memory run's.
    pub(crate) ratios: Ratios,
}

/// `--compare-protocols`: JSON subscribers, then Protobuf subscribers, each
/// against its own spawned server of the same kind, in one invocation, and
/// Protobuf ÷ JSON.
#[derive(Serialize, Debug)]
pub(crate) struct ProtocolComparison {
    /// The reference run (first): JSON subscribers.
    pub(crate) json: Summary,
    /// The Protobuf run (second).
    pub(crate) protobuf: Summary,
    /// The Protobuf run's figures ÷ the JSON run's.
    pub(crate) ratios: Ratios,
}

/// Subject ÷ reference for the figures DESIGN.md sets targets on; `None`
/// (JSON `null`) when either side is unknown or the reference is 0.
#[derive(Serialize, Debug, Default, PartialEq)]
pub(crate) struct Ratios {
    /// Deliveries per second over the publish window (higher is better).
    pub(crate) deliveries_per_sec: Option<f64>,
    /// Latency p50 (lower is better).
    pub(crate) latency_p50: Option<f64>,
    /// Latency p99 (lower is better).
    pub(crate) latency_p99: Option<f64>,
    /// Server CPU µs per delivery, summed over nodes (lower is better).
    pub(crate) server_cpu_per_delivery: Option<f64>,
    /// Idle RSS bytes per connection, summed over nodes (lower is better).
    pub(crate) bytes_per_connection: Option<f64>,
    /// RSS bytes per connection after a `--burst-bytes` burst (lower is better).
    pub(crate) bytes_per_connection_after_burst: Option<f64>,
    /// Publish API round trip p50 (lower is better).
    pub(crate) publish_p50: Option<f64>,
    /// Publish API round trip p99 (lower is better).
    pub(crate) publish_p99: Option<f64>,
}

impl Ratios {
    /// `subject`'s figures ÷ `reference`'s; the publish-run ones only when both published.
    pub(crate) fn new(subject: &Summary, reference: &Summary) -> Self {
        let (t, l) = (subject, reference);
        let ran = |s: &Summary| (!s.scenario.idle_only).then_some(());
        let both = ran(t).and(ran(l));
        Ratios {
            deliveries_per_sec: both.and(ratio(Some(t.deliveries_per_sec), Some(l.deliveries_per_sec))),
            latency_p50: both.and(ratio(Some(t.latency_ms.p50), Some(l.latency_ms.p50))),
            latency_p99: both.and(ratio(Some(t.latency_ms.p99), Some(l.latency_ms.p99))),
            server_cpu_per_delivery: ratio(t.server_cpu_us_per_delivery, l.server_cpu_us_per_delivery),
            bytes_per_connection: ratio(t.bytes_per_connection, l.bytes_per_connection),
            bytes_per_connection_after_burst: ratio(
                t.burst.as_ref().and_then(|b| b.bytes_per_connection),
                l.burst.as_ref().and_then(|b| b.bytes_per_connection),
            ),
            publish_p50: both.and(ratio(Some(t.publish_rtt_ms.p50), Some(l.publish_rtt_ms.p50))),
            publish_p99: both.and(ratio(Some(t.publish_rtt_ms.p99), Some(l.publish_rtt_ms.p99))),
        }
    }
}

impl Comparison {
    /// Pairs the two runs and computes the ratios.
    pub(crate) fn new(limit_server: Summary, tidewire: Summary) -> Self {
        let ratios = Ratios::new(&tidewire, &limit_server);
        Comparison { limit_server, tidewire, ratios }
    }

    /// Both full reports, then the side-by-side table.
    pub(crate) fn table(&self) -> String {
        let mut t = self.limit_server.table();
        t.push_str(&self.tidewire.table());
        let title = "Tidewire vs limit-server, same run (ratio = Tidewire ÷ limit-server)";
        side_by_side(&mut t, title, ("Tidewire", &self.tidewire), ("limit-server", &self.limit_server), &self.ratios);
        t
    }
}

impl EngineComparison {
    /// Pairs the two runs and computes the ratios.
    pub(crate) fn new(memory: Summary, redis: Summary) -> Self {
        let ratios = Ratios::new(&redis, &memory);
        EngineComparison { memory, redis, ratios }
    }

    /// Both full reports, then the side-by-side table.
    pub(crate) fn table(&self) -> String {
        let mut t = self.memory.table();
        t.push_str(&self.redis.table());
        let nodes = self.redis.scenario.nodes;
        let title = format!("Redis engine ({nodes} node(s)) vs memory engine (1 node), same run (ratio = Redis ÷ memory)");
        side_by_side(&mut t, &title, ("Redis", &self.redis), ("memory", &self.memory), &self.ratios);
        if let Some(redis) = self.redis.redis_cpu_secs.filter(|_| self.redis.delivered > 0) {
            let per = redis * 1e6 / self.redis.delivered as f64;
            let _ = writeln!(t, "(redis-server itself: {redis:.2} CPU s, {per:.3} µs per delivery, not in the figures above)");
        }
        t
    }
}

impl ProtocolComparison {
    /// Pairs the two runs and computes the ratios.
    pub(crate) fn new(json: Summary, protobuf: Summary) -> Self {
        let ratios = Ratios::new(&protobuf, &json);
        ProtocolComparison { json, protobuf, ratios }
    }

    /// Both full reports, then the side-by-side table.
    pub(crate) fn table(&self) -> String {
        let mut t = self.json.table();
        t.push_str(&self.protobuf.table());
        let title = "Protobuf vs JSON WebSocket subscribers, same run (ratio = Protobuf ÷ JSON)";
        side_by_side(&mut t, title, ("Protobuf", &self.protobuf), ("JSON", &self.json), &self.ratios);
        t
    }
}

/// Appends the side-by-side table of `subject` and `reference` (named) with `ratios`.
fn side_by_side(t: &mut String, title: &str, subject: (&str, &Summary), reference: (&str, &Summary), r: &Ratios) {
    let ((a_name, tw), (b_name, ls)) = (subject, reference);
    let _ = writeln!(t, "\n=== {title} ===");
    let _ = writeln!(t, "{:<26} {:>14} {:>14} {:>8}", "figure", a_name, b_name, "ratio");
    let x = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}×"));
    let num = |v: Option<f64>, digits: usize| v.map_or_else(unknown, |v| format!("{v:.digits$}"));
    let mut row = |name: &str, a: String, b: String, ratio: String| {
        let _ = writeln!(t, "{name:<26} {a:>14} {b:>14} {ratio:>8}");
    };
    if !tw.scenario.idle_only {
        row("deliveries/s", format!("{:.0}", tw.deliveries_per_sec), format!("{:.0}", ls.deliveries_per_sec), x(r.deliveries_per_sec));
        row("lost", tw.lost.to_string(), ls.lost.to_string(), String::new());
        row("unsent", tw.unsent.to_string(), ls.unsent.to_string(), String::new());
        row("failed publications", tw.publish_errors.to_string(), ls.publish_errors.to_string(), String::new());
        row("latency p50 ms", format!("{:.2}", tw.latency_ms.p50), format!("{:.2}", ls.latency_ms.p50), x(r.latency_p50));
        row("latency p99 ms", format!("{:.2}", tw.latency_ms.p99), format!("{:.2}", ls.latency_ms.p99), x(r.latency_p99));
        row(
            "server CPU µs/delivery",
            num(tw.server_cpu_us_per_delivery, 3),
            num(ls.server_cpu_us_per_delivery, 3),
            x(r.server_cpu_per_delivery),
        );
        row("publish API p50 ms", format!("{:.2}", tw.publish_rtt_ms.p50), format!("{:.2}", ls.publish_rtt_ms.p50), x(r.publish_p50));
        row("publish API p99 ms", format!("{:.2}", tw.publish_rtt_ms.p99), format!("{:.2}", ls.publish_rtt_ms.p99), x(r.publish_p99));
        row("bench CPU s", format!("{:.2}", tw.bench_cpu_secs), format!("{:.2}", ls.bench_cpu_secs), String::new());
        let yes = |s: &Summary| if s.sustainable { "yes" } else { "NO" }.to_owned();
        row("sustainable", yes(tw), yes(ls), String::new());
    }
    row("RSS bytes/connection", num(tw.bytes_per_connection, 0), num(ls.bytes_per_connection, 0), x(r.bytes_per_connection));
    if tw.burst.is_some() || ls.burst.is_some() {
        let after = |s: &Summary| num(s.burst.as_ref().and_then(|b| b.bytes_per_connection), 0);
        row("  after the burst", after(tw), after(ls), x(r.bytes_per_connection_after_burst));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A publish run of `n` subscribers on `c` channels.
    fn summary(n: usize, c: usize) -> Summary {
        Summary {
            scenario: Scenario { subscribers: n, channels: c, ..Scenario::default() },
            latency_ms: Percentiles { count: 1, p50: 1.0, p99: 20.0, p999: 30.0, max: 40.0 },
            ..Summary::default()
        }
    }

    fn timing(first: u64, ack: u64, rx: u64) -> Timing {
        Timing { first_send_us: Some(first), last_ack_us: Some(ack), last_rx_us: Some(rx) }
    }

    #[test]
    fn expected_counts_acknowledged_publications_times_each_channels_subscribers() {
        // 10 subscribers on 3 channels: 4, 3, 3. Acknowledged 5, 5, 4.
        let mut s = summary(10, 3);
        s.delivered = 20 + 15 + 12 - 7;
        s.derive(&[5, 5, 4], timing(0, 1_000_000, 1_000_000));
        assert_eq!(s.expected, 47);
        assert_eq!(s.lost, 7);
        assert!(!s.sustainable, "loss is never sustainable");
    }

    #[test]
    fn lost_never_goes_negative() {
        let mut s = summary(2, 1);
        s.delivered = 25; // more unique deliveries than expected (a failed ack that was published)
        s.derive(&[10], timing(0, 1, 1));
        assert_eq!((s.expected, s.lost), (20, 0));
    }

    #[test]
    fn deliveries_per_second_over_both_windows() {
        let mut s = summary(1000, 1);
        s.delivered = 2_000_000;
        s.published = 2_000;
        // first request at 0.1 s, last ack at 2.1 s, last delivery at 2.6 s
        s.derive(&[2_000], timing(100_000, 2_100_000, 2_600_000));
        assert_eq!(s.publish_window_secs, 2.0);
        assert_eq!(s.deliveries_per_sec, 1_000_000.0);
        assert_eq!(s.delivery_span_secs, 2.5);
        assert_eq!(s.deliveries_per_sec_span, 800_000.0);
    }

    #[test]
    fn empty_windows_give_zero_rates() {
        let mut s = summary(1, 1);
        s.delivered = 5;
        s.derive(&[5], Timing::default());
        assert_eq!((s.publish_window_secs, s.deliveries_per_sec, s.deliveries_per_sec_span), (0.0, 0.0, 0.0));
        s.derive(&[5], timing(10, 10, 5));
        assert_eq!((s.deliveries_per_sec, s.deliveries_per_sec_span), (0.0, 0.0), "b ≤ a is an empty window");
    }

    #[test]
    fn sustainable_needs_every_condition() {
        let base = || {
            let mut s = summary(10, 1);
            s.delivered = 100;
            s
        };
        let mut s = base();
        s.derive(&[10], timing(0, 1_000_000, 1_000_000));
        assert!(s.sustainable);
        let breakers: [fn(&mut Summary); 6] = [
            |s| s.slow_disconnects = 1,
            |s| s.other_disconnects = 1,
            |s| s.publish_errors = 1,
            |s| s.unsent = 1,
            |s| s.delivered = 99,
            |s| s.latency_ms.p99 = SUSTAINABLE_P99_MS + 0.01,
        ];
        for (i, breaker) in breakers.iter().enumerate() {
            let mut s = base();
            breaker(&mut s);
            s.derive(&[10], timing(0, 1_000_000, 1_000_000));
            assert!(!s.sustainable, "condition {i} should make the run unsustainable");
        }
        let mut edge = base();
        edge.latency_ms.p99 = SUSTAINABLE_P99_MS;
        edge.derive(&[10], timing(0, 1, 1));
        assert!(edge.sustainable, "p99 exactly at the bound is sustainable");
    }

    #[test]
    fn cpu_per_delivery_and_bytes_per_connection_are_unknown_without_a_pid() {
        let mut s = summary(1000, 1);
        s.delivered = 4_000_000;
        s.server_cpu_secs = Some(3.0);
        s.derive(&[4_000], timing(0, 1, 1));
        assert_eq!(s.server_cpu_us_per_delivery, Some(0.75));
        s.set_rss(Some(10_000_000), Some(12_000_000));
        assert_eq!(s.bytes_per_connection, Some(2_000.0));

        assert!(s.table().contains("cpu seconds       server 3.00, bench"), "no split without the system part: {}", s.table());
        s.server_sys_cpu_secs = Some(2.25);
        assert!(s.table().contains("server 3.00 (user 0.75, system 2.25)"), "{}", s.table());

        let mut u = summary(1000, 1);
        u.delivered = 10;
        u.derive(&[10], timing(0, 1, 1));
        u.set_rss(None, None);
        assert_eq!((u.server_cpu_us_per_delivery, u.bytes_per_connection), (None, None));
        assert!(u.table().contains("bytes/connection  unknown"), "{}", u.table());
        let mut zero = summary(1, 1);
        zero.server_cpu_secs = Some(1.0);
        zero.derive(&[0], timing(0, 1, 1));
        assert_eq!(zero.server_cpu_us_per_delivery, None, "nothing delivered: no per-delivery figure");
    }

    #[test]
    fn ratios_divide_tidewire_by_limit_server() {
        let mut tw = summary(1000, 1);
        tw.deliveries_per_sec = 280_000.0;
        tw.latency_ms.p50 = 30.0;
        tw.latency_ms.p99 = 84.0;
        tw.server_cpu_us_per_delivery = Some(3.5);
        tw.bytes_per_connection = Some(12_000.0);
        let mut ls = summary(1000, 1);
        ls.deliveries_per_sec = 1_000_000.0;
        ls.latency_ms.p50 = 10.0;
        ls.latency_ms.p99 = 42.0;
        ls.server_cpu_us_per_delivery = Some(0.875);
        ls.bytes_per_connection = Some(0.0);
        let c = Comparison::new(ls, tw);
        assert_eq!(
            c.ratios,
            Ratios {
                deliveries_per_sec: Some(0.28),
                latency_p50: Some(3.0),
                latency_p99: Some(2.0),
                server_cpu_per_delivery: Some(4.0),
                bytes_per_connection: None, // reference 0: no ratio
                publish_p50: None,          // no publish round trips recorded: 0 ms
                publish_p99: None,
                bytes_per_connection_after_burst: None,
            }
        );
        let table = c.table();
        assert!(table.contains("deliveries/s") && table.contains("0.28×"), "{table}");
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["ratios"]["bytes_per_connection"], serde_json::Value::Null);
        assert_eq!(json["tidewire"]["scenario"]["subscribers"], 1000);
    }

    #[test]
    fn engine_ratios_divide_redis_by_memory() {
        let mut memory = summary(1000, 1);
        memory.deliveries_per_sec = 1_000_000.0;
        memory.latency_ms.p50 = 2.0;
        memory.latency_ms.p99 = 10.0;
        memory.server_cpu_us_per_delivery = Some(1.0);
        memory.publish_rtt_ms = Percentiles { count: 10_000, p50: 0.2, p99: 1.0, p999: 2.0, max: 3.0 };
        let mut redis = summary(1000, 1);
        redis.scenario.engine = Some("redis".into());
        redis.scenario.nodes = 2;
        redis.deliveries_per_sec = 800_000.0;
        redis.latency_ms.p50 = 3.0;
        redis.latency_ms.p99 = 25.0;
        redis.server_cpu_us_per_delivery = Some(1.5); // summed over both nodes
        redis.publish_rtt_ms = Percentiles { count: 10_000, p50: 0.5, p99: 4.0, p999: 5.0, max: 6.0 };
        redis.delivered = 8_000_000;
        redis.redis_cpu_secs = Some(4.0);
        let c = EngineComparison::new(memory, redis);
        assert_eq!(
            c.ratios,
            Ratios {
                deliveries_per_sec: Some(0.8),
                latency_p50: Some(1.5),
                latency_p99: Some(2.5),
                server_cpu_per_delivery: Some(1.5),
                bytes_per_connection: None,
                publish_p50: Some(2.5),
                publish_p99: Some(4.0),
                bytes_per_connection_after_burst: None,
            }
        );
        let table = c.table();
        assert!(table.contains("Redis ÷ memory") && table.contains("publish API p99 ms"), "{table}");
        assert!(table.contains("redis engine, 2 nodes"), "{table}");
        assert!(table.contains("redis-server itself: 4.00 CPU s, 0.500 µs per delivery"), "{table}");
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["ratios"]["publish_p99"], 4.0);
        assert_eq!(json["redis"]["scenario"]["nodes"], 2);
        assert_eq!(json["memory"]["publish_rtt_ms"]["p50"], 0.2);
    }

    #[test]
    fn protocol_ratios_divide_protobuf_by_json() {
        let mut json = summary(1000, 1);
        json.scenario.protocol = "json".into();
        json.deliveries_per_sec = 500_000.0;
        json.latency_ms.p50 = 4.0;
        json.latency_ms.p99 = 20.0;
        json.server_cpu_us_per_delivery = Some(2.0);
        let mut protobuf = summary(1000, 1);
        protobuf.scenario.protocol = "protobuf".into();
        protobuf.deliveries_per_sec = 600_000.0;
        protobuf.latency_ms.p50 = 3.0;
        protobuf.latency_ms.p99 = 25.0;
        protobuf.server_cpu_us_per_delivery = Some(1.5);
        let c = ProtocolComparison::new(json, protobuf);
        assert_eq!(
            c.ratios,
            Ratios {
                deliveries_per_sec: Some(1.2),
                latency_p50: Some(0.75),
                latency_p99: Some(1.25),
                server_cpu_per_delivery: Some(0.75),
                bytes_per_connection: None,
                publish_p50: None,
                publish_p99: None,
                bytes_per_connection_after_burst: None,
            }
        );
        let table = c.table();
        assert!(table.contains("Protobuf ÷ JSON") && table.contains("0.75×") && table.contains("1.20×"), "{table}");
        assert!(table.contains("client protocol   json") && table.contains("client protocol   protobuf"), "{table}");
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["ratios"]["server_cpu_per_delivery"], 0.75);
        assert_eq!(json["protobuf"]["scenario"]["protocol"], "protobuf");
        assert_eq!(json["json"]["scenario"]["protocol"], "json");
    }

    #[test]
    fn idle_runs_have_no_publish_ratios() {
        let mut memory = summary(10, 1);
        memory.scenario.idle_only = true;
        memory.publish_rtt_ms.p50 = 1.0;
        let mut redis = summary(10, 1);
        redis.scenario.idle_only = true;
        redis.publish_rtt_ms.p50 = 2.0;
        redis.bytes_per_connection = Some(3.0);
        memory.bytes_per_connection = Some(2.0);
        let r = Ratios::new(&redis, &memory);
        assert_eq!((r.publish_p50, r.deliveries_per_sec, r.bytes_per_connection), (None, None, Some(1.5)));
    }

    #[test]
    fn a_burst_reports_memory_per_connection_after_it_and_its_ratio() {
        assert_eq!(per_connection(Some(1_000_000), Some(3_000_000), 1000), Some(2000.0));
        assert_eq!(per_connection(Some(3_000_000), Some(1_000_000), 1000), Some(-2000.0), "memory given back shows");
        assert_eq!(per_connection(None, Some(1), 1), None);
        let idle = |n: usize, after: Option<f64>| {
            let mut s = summary(n, 1);
            s.scenario.idle_only = true;
            s.burst = after.map(|a| Burst { bytes_per_connection: Some(a), delivered: 16, expected: 16, ..Burst::default() });
            s
        };
        let r = Ratios::new(&idle(10, Some(4000.0)), &idle(10, Some(100.0)));
        assert_eq!(r.bytes_per_connection_after_burst, Some(40.0));
        assert_eq!(Ratios::new(&idle(10, Some(4000.0)), &idle(10, None)).bytes_per_connection_after_burst, None);
        let mut table = String::new();
        side_by_side(&mut table, "t", ("a", &idle(10, Some(4000.0))), ("b", &idle(10, Some(100.0))), &r);
        assert!(table.contains("after the burst") && table.contains("40.00×"), "{table}");
        assert!(idle(10, Some(4000.0)).table().contains("4000 bytes/connection"));
    }
}
