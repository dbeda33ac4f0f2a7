//! Prometheus metrics: every metric is named once, here, and rendered in the text
//! exposition format at `/metrics`.
//!
//! Hot-path counters (messages per transport) are plain atomics; counters keyed by
//! command or API method take a short mutex, once per command, never per delivery.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

pub mod engine;

/// Every transport Tidewire serves, in the order of [`Metrics::transport`] slots.
pub const TRANSPORTS: [&str; 8] =
    ["websocket", "uni_websocket", "http_stream", "sse", "uni_http_stream", "uni_sse", "webtransport", "quic"];

/// Counters of one transport.
#[derive(Debug, Default)]
pub struct TransportMetrics {
    /// Open connections.
    pub connections: AtomicI64,
    /// Connections accepted since start.
    pub accepted: AtomicU64,
    /// Messages (replies, pushes, pings) written to clients.
    pub messages_sent: AtomicU64,
    /// Bytes written to clients.
    pub bytes_sent: AtomicU64,
    /// Commands read from clients.
    pub messages_received: AtomicU64,
    /// Bytes read from clients.
    pub bytes_received: AtomicU64,
}

/// A counter with one label.
#[derive(Debug, Default)]
pub struct Labeled(Mutex<BTreeMap<String, u64>>);

impl Labeled {
    /// Adds one to `label`.
    pub fn inc(&self, label: &str) {
        let mut map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match map.get_mut(label) {
            Some(v) => *v += 1,
            None => {
                map.insert(label.to_owned(), 1);
            }
        }
    }

    fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

/// All metrics of the process.
#[derive(Debug, Default)]
pub struct Metrics {
    transports: [TransportMetrics; TRANSPORTS.len()],
    /// Client commands by command name.
    pub commands: Labeled,
    /// Error replies by code.
    pub reply_errors: Labeled,
    /// Server-initiated disconnects by code.
    pub disconnects: Labeled,
    /// Connections dropped because their queue overflowed (3008).
    pub slow_disconnects: AtomicU64,
    /// Publications accepted (API and client publishes).
    pub publications: AtomicU64,
    /// Server API calls by method.
    pub api_calls: Labeled,
    /// Server API calls that returned an error, by method.
    pub api_errors: Labeled,
    /// The engine's calls and PUB/SUB traffic.
    pub engine: engine::EngineMetrics,
    /// Calls to application backends, per proxy and event.
    pub proxies: ProxyMetrics,
}

/// Upper bounds of the proxy duration histogram's buckets, in seconds: a backend answers
/// in milliseconds; the default timeout is 1 s.
pub const PROXY_BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

/// Counters of one proxy's calls for one event.
#[derive(Debug, Default)]
pub struct ProxyStats {
    /// Calls under way.
    pub in_flight: AtomicI64,
    /// Calls that failed (timeout, transport, status, bad answer), by kind.
    pub errors: Labeled,
    /// Calls per [`PROXY_BUCKETS`] bucket (non-cumulative; one more for +Inf).
    buckets: [AtomicU64; PROXY_BUCKETS.len() + 1],
    /// Calls finished.
    count: AtomicU64,
    /// Sum of their durations, in µs.
    sum_us: AtomicU64,
}

impl ProxyStats {
    /// Records a finished call.
    pub fn observe(&self, took: std::time::Duration) {
        let secs = took.as_secs_f64();
        let i = PROXY_BUCKETS.iter().position(|b| secs <= *b).unwrap_or(PROXY_BUCKETS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(u64::try_from(took.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }
}

/// Proxy stats keyed by (proxy name, event); entries are made at start, one per configured pair.
#[derive(Debug, Default)]
pub struct ProxyMetrics(Mutex<BTreeMap<(String, String), std::sync::Arc<ProxyStats>>>);

impl ProxyMetrics {
    /// The stats of `proxy` for `event` (made on first use).
    pub fn stats(&self, proxy: &str, event: &str) -> std::sync::Arc<ProxyStats> {
        let mut map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entry((proxy.to_owned(), event.to_owned())).or_default().clone()
    }

    fn render(&self, out: &mut String) {
        let map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        if map.is_empty() {
            return;
        }
        let esc = |s: &str| s.replace(['"', '\\', '\n'], "_");
        let name = "tidewire_proxy_request_duration_seconds";
        let _ = writeln!(out, "# HELP {name} Duration of calls to application backends.\n# TYPE {name} histogram");
        for ((proxy, event), st) in &map {
            let labels = format!("proxy=\"{}\",event=\"{}\"", esc(proxy), esc(event));
            let mut cumulative = 0;
            for (i, b) in PROXY_BUCKETS.iter().enumerate() {
                cumulative += st.buckets[i].load(Ordering::Relaxed);
                let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{b}\"}} {cumulative}");
            }
            let count = st.count.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
            let sum = st.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}\n{name}_count{{{labels}}} {count}");
        }
        let name = "tidewire_proxy_requests_in_flight";
        let _ = writeln!(out, "# HELP {name} Calls to application backends under way.\n# TYPE {name} gauge");
        for ((proxy, event), st) in &map {
            let v = st.in_flight.load(Ordering::Relaxed).max(0);
            let _ = writeln!(out, "{name}{{proxy=\"{}\",event=\"{}\"}} {v}", esc(proxy), esc(event));
        }
        let name = "tidewire_proxy_request_errors_total";
        let _ = writeln!(out, "# HELP {name} Calls to application backends that failed.\n# TYPE {name} counter");
        for ((proxy, event), st) in &map {
            for (kind, v) in st.errors.snapshot() {
                let _ = writeln!(out, "{name}{{proxy=\"{}\",event=\"{}\",kind=\"{}\"}} {v}", esc(proxy), esc(event), esc(&kind));
            }
        }
    }
}

impl Metrics {
    /// The slot of a transport; unknown names share the last slot's neighbour "websocket".
    pub fn transport(&self, name: &str) -> &TransportMetrics {
        let i = TRANSPORTS.iter().position(|t| *t == name).unwrap_or(0);
        &self.transports[i]
    }

    /// Open connections over every transport.
    pub fn total_connections(&self) -> i64 {
        self.transports.iter().map(|t| t.connections.load(Ordering::Relaxed)).sum()
    }

    /// Renders everything in the Prometheus text format. `gauges` are values the caller
    /// reads at scrape time (channels, subscriptions, users).
    pub fn render(&self, gauges: &[(&str, &str, u64)]) -> String {
        let mut out = String::with_capacity(4096);
        type Read = fn(&TransportMetrics) -> u64;
        let per_transport: [(&str, &str, &str, Read); 6] = [
            ("tidewire_transport_connections", "gauge", "Open client connections.", |t| {
                t.connections.load(Ordering::Relaxed).max(0) as u64
            }),
            ("tidewire_transport_connections_accepted_total", "counter", "Client connections accepted.", |t| {
                t.accepted.load(Ordering::Relaxed)
            }),
            ("tidewire_transport_messages_sent_total", "counter", "Messages written to clients.", |t| {
                t.messages_sent.load(Ordering::Relaxed)
            }),
            ("tidewire_transport_bytes_sent_total", "counter", "Bytes written to clients.", |t| {
                t.bytes_sent.load(Ordering::Relaxed)
            }),
            ("tidewire_transport_messages_received_total", "counter", "Commands read from clients.", |t| {
                t.messages_received.load(Ordering::Relaxed)
            }),
            ("tidewire_transport_bytes_received_total", "counter", "Bytes read from clients.", |t| {
                t.bytes_received.load(Ordering::Relaxed)
            }),
        ];
        for (name, kind, help, get) in per_transport {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (i, t) in TRANSPORTS.iter().enumerate() {
                let _ = writeln!(out, "{name}{{transport=\"{t}\"}} {}", get(&self.transports[i]));
            }
        }
        let labeled: [(&str, &str, &str, &Labeled); 5] = [
            ("tidewire_client_commands_total", "command", "Client commands processed.", &self.commands),
            ("tidewire_client_reply_errors_total", "code", "Error replies sent to clients.", &self.reply_errors),
            ("tidewire_client_server_disconnects_total", "code", "Connections closed by the server.", &self.disconnects),
            ("tidewire_api_calls_total", "method", "Server API calls.", &self.api_calls),
            ("tidewire_api_errors_total", "method", "Server API calls that failed.", &self.api_errors),
        ];
        for (name, label, help, counter) in labeled {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (k, v) in counter.snapshot() {
                let _ = writeln!(out, "{name}{{{label}=\"{}\"}} {v}", k.replace(['"', '\\', '\n'], "_"));
            }
        }
        let plain: [(&str, &str, u64); 2] = [
            (
                "tidewire_client_slow_disconnects_total",
                "Connections dropped because their outbound queue overflowed.",
                self.slow_disconnects.load(Ordering::Relaxed),
            ),
            ("tidewire_publications_total", "Publications accepted.", self.publications.load(Ordering::Relaxed)),
        ];
        for (name, help, v) in plain {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        }
        self.engine.render(&mut out);
        self.proxies.render(&mut out);
        for (name, help, v) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.transport("websocket").messages_sent.fetch_add(3, Ordering::Relaxed);
        m.commands.inc("connect");
        m.commands.inc("connect");
        let text = m.render(&[("tidewire_channels", "Channels.", 5)]);
        assert!(text.contains("tidewire_transport_messages_sent_total{transport=\"websocket\"} 3\n"));
        assert!(text.contains("tidewire_client_commands_total{command=\"connect\"} 2\n"));
        assert!(text.contains("# TYPE tidewire_channels gauge\ntidewire_channels 5\n"));
        assert!(!text.contains("tidewire_proxy"), "no proxy series without proxies");
    }

    #[test]
    fn renders_proxy_histogram_errors_and_in_flight() {
        let m = Metrics::default();
        let st = m.proxies.stats("django", "connect");
        st.observe(std::time::Duration::from_millis(3));
        st.observe(std::time::Duration::from_secs(2));
        st.errors.inc("timeout");
        st.in_flight.fetch_add(1, Ordering::Relaxed);
        let text = m.render(&[]);
        let l = "proxy=\"django\",event=\"connect\"";
        assert!(text.contains(&format!("tidewire_proxy_request_duration_seconds_bucket{{{l},le=\"0.001\"}} 0\n")), "{text}");
        assert!(text.contains(&format!("tidewire_proxy_request_duration_seconds_bucket{{{l},le=\"0.005\"}} 1\n")));
        assert!(text.contains(&format!("tidewire_proxy_request_duration_seconds_bucket{{{l},le=\"+Inf\"}} 2\n")));
        assert!(text.contains(&format!("tidewire_proxy_request_duration_seconds_count{{{l}}} 2\n")));
        assert!(text.contains(&format!("tidewire_proxy_requests_in_flight{{{l}}} 1\n")));
        assert!(text.contains(&format!("tidewire_proxy_request_errors_total{{{l},kind=\"timeout\"}} 1\n")));
    }
}
