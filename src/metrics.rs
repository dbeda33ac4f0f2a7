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
    }
}
