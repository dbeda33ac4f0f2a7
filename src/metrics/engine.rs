//! The engine's metrics: how long its calls take, what fails, what travels through it.
//! Recorded once per engine call or PUB/SUB message, never per delivery to a client.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::Labeled;

/// Upper bounds of the duration histograms' buckets, in seconds (Prometheus' `le`).
pub const BUCKETS: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

/// A duration histogram (cumulative when rendered, as Prometheus wants).
#[derive(Debug, Default, Clone)]
pub struct Histogram {
    /// Observations per bucket (not cumulative); the last slot counts those above every bound.
    counts: [u64; BUCKETS.len() + 1],
    sum_seconds: f64,
}

impl Histogram {
    /// Records one duration.
    pub fn observe(&mut self, d: Duration) {
        let s = d.as_secs_f64();
        let i = BUCKETS.iter().position(|b| s <= *b).unwrap_or(BUCKETS.len());
        self.counts[i] += 1;
        self.sum_seconds += s;
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Writes `name_bucket`, `name_sum` and `name_count` lines with `labels` (`k="v"`).
    pub fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += self.counts[i];
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", self.count());
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum_seconds);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count());
    }
}

/// Histograms keyed by one label.
#[derive(Debug, Default)]
pub struct LabeledHistogram(Mutex<BTreeMap<String, Histogram>>);

impl LabeledHistogram {
    /// Records `d` under `label`.
    pub fn observe(&self, label: &str, d: Duration) {
        let mut map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match map.get_mut(label) {
            Some(h) => h.observe(d),
            None => {
                let mut h = Histogram::default();
                h.observe(d);
                map.insert(label.to_owned(), h);
            }
        }
    }

    /// A copy of every label's histogram.
    pub fn snapshot(&self) -> BTreeMap<String, Histogram> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

/// What the engine (Redis) did on this node.
#[derive(Debug, Default)]
pub struct EngineMetrics {
    /// Engine call durations by command (publish, history, subscribe …), failed ones too.
    pub command_duration: LabeledHistogram,
    /// Failed engine calls by command (an error or no answer within the IO timeout).
    pub command_errors: Labeled,
    /// PUB/SUB trouble by kind: `decode` (a message that did not decode), `lagged`
    /// (messages lost because the reader fell behind), `resubscribe` (a failed attempt).
    pub pubsub_errors: Labeled,
    /// Reconnects of PUB/SUB connections.
    pub pubsub_reconnects: AtomicU64,
    /// Messages this node published through the engine (publications, join/leave, controls).
    pub messages_published: AtomicU64,
    /// Messages this node received from the engine's PUB/SUB.
    pub messages_received: AtomicU64,
}

impl EngineMetrics {
    /// Records one engine call.
    pub fn command(&self, name: &str, took: Duration, ok: bool) {
        self.command_duration.observe(name, took);
        if !ok {
            self.command_errors.inc(name);
        }
    }

    /// Renders the engine's metrics (`engine` names it: `memory`, `redis`).
    pub fn render(&self, out: &mut String) {
        let name = "tidewire_engine_command_duration_seconds";
        let _ = writeln!(out, "# HELP {name} Engine call durations.\n# TYPE {name} histogram");
        for (command, h) in self.command_duration.snapshot() {
            h.render(out, name, &format!("command=\"{}\"", command.replace(['"', '\\', '\n'], "_")));
        }
        for (name, label, help, counter) in [
            ("tidewire_engine_command_errors_total", "command", "Failed engine calls.", &self.command_errors),
            ("tidewire_engine_pubsub_errors_total", "kind", "Engine PUB/SUB errors.", &self.pubsub_errors),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (k, v) in counter.snapshot() {
                let _ = writeln!(out, "{name}{{{label}=\"{k}\"}} {v}");
            }
        }
        for (name, help, v) in [
            ("tidewire_engine_pubsub_reconnects_total", "Engine PUB/SUB reconnects.", &self.pubsub_reconnects),
            ("tidewire_engine_messages_published_total", "Messages published through the engine.", &self.messages_published),
            ("tidewire_engine_messages_received_total", "Messages received from the engine.", &self.messages_received),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", v.load(Ordering::Relaxed));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_render_cumulative_buckets() {
        let m = EngineMetrics::default();
        m.command("publish", Duration::from_micros(300), true);
        m.command("publish", Duration::from_millis(20), true);
        m.command("publish", Duration::from_secs(5), false);
        let mut out = String::new();
        m.render(&mut out);
        let name = "tidewire_engine_command_duration_seconds";
        assert!(out.contains(&format!("{name}_bucket{{command=\"publish\",le=\"0.0005\"}} 1\n")), "{out}");
        assert!(out.contains(&format!("{name}_bucket{{command=\"publish\",le=\"0.025\"}} 2\n")), "{out}");
        assert!(out.contains(&format!("{name}_bucket{{command=\"publish\",le=\"+Inf\"}} 3\n")), "{out}");
        assert!(out.contains(&format!("{name}_count{{command=\"publish\"}} 3\n")), "{out}");
        assert!(out.contains("tidewire_engine_command_errors_total{command=\"publish\"} 1\n"), "{out}");
    }
}
