//! What the server writes to its log when the network misbehaves: repeated warnings are
//! rate-limited per key, so a flood (a rapid-reset burst, a connection storm against a
//! full server, accept failing on a full fd table) costs a few lines a second, not one
//! line per connection.
//!
//! A [`LogLimit`] lets at most `per_window` lines of one key through in each window; the
//! rest are counted, and the next line let through for that key carries the count
//! (`suppressed = K`), the way the kernel's printk rate limit reports "K callbacks
//! suppressed". Time is an input (`now`), so tests step it instead of sleeping. Keys are
//! `&'static str` naming the call site; there are a handful, so a short vector beats a map.
//!
//! Knows nothing of sockets or of tracing's subscriber: callers ask, then log.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lines of one key let through per window in production: enough to see that something
/// is happening and what, few enough that a flood of thousands per second stays readable.
pub const LINES_PER_WINDOW: u32 = 5;

/// Length of a rate-limit window: one second, the unit operators read rates in.
pub const WINDOW: Duration = Duration::from_secs(1);

/// The limiter every accept and serve loop of the server shares.
pub static NETWORK: LogLimit = LogLimit::new(LINES_PER_WINDOW, WINDOW);

/// State of one key.
#[derive(Debug)]
struct Slot {
    key: &'static str,
    window_start: Instant,
    /// Lines let through in the current window.
    let_through: u32,
    /// Lines held back since the last line let through.
    suppressed: u64,
}

/// A per-key rate limit for log lines.
#[derive(Debug)]
pub struct LogLimit {
    per_window: u32,
    window: Duration,
    slots: Mutex<Vec<Slot>>,
}

impl LogLimit {
    /// At most `per_window` lines per key in each `window`.
    pub const fn new(per_window: u32, window: Duration) -> Self {
        Self { per_window, window, slots: Mutex::new(Vec::new()) }
    }

    /// Whether a line of `key` may be written at `now`: `Some(k)` — write it, noting `k`
    /// similar lines were suppressed since the previous one of this key; `None` — skip it
    /// (it is counted).
    pub fn check(&self, key: &'static str, now: Instant) -> Option<u64> {
        // A poisoned lock only means another thread panicked mid-update of a counter:
        // the counters are still usable.
        let mut slots = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let slot = match slots.iter().position(|s| s.key == key) {
            Some(i) => &mut slots[i],
            None => {
                slots.push(Slot { key, window_start: now, let_through: 0, suppressed: 0 });
                let last = slots.len() - 1;
                &mut slots[last]
            }
        };
        if now.saturating_duration_since(slot.window_start) >= self.window {
            slot.window_start = now;
            slot.let_through = 0;
        }
        if slot.let_through < self.per_window {
            slot.let_through += 1;
            Some(std::mem::take(&mut slot.suppressed))
        } else {
            slot.suppressed += 1;
            None
        }
    }
}

/// `tracing::warn!` through [`NETWORK`]: `limited_warn!("key", field = value, …, "message")`
/// writes the warning with an extra `suppressed` field, or nothing when over the limit.
macro_rules! limited_warn {
    ($key:literal, $($rest:tt)+) => {
        if let Some(suppressed) = $crate::log::NETWORK.check($key, ::std::time::Instant::now()) {
            ::tracing::warn!(suppressed, $($rest)+);
        }
    };
}
pub(crate) use limited_warn;

/// `tracing::info!` through [`NETWORK`], for what one client can cause once per
/// connection attempt (a refused token, a rejected origin): as [`limited_warn!`].
macro_rules! limited_info {
    ($key:literal, $($rest:tt)+) => {
        if let Some(suppressed) = $crate::log::NETWORK.check($key, ::std::time::Instant::now()) {
            ::tracing::info!(suppressed, $($rest)+);
        }
    };
}
pub(crate) use limited_info;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_cut_to_the_limit_and_the_next_window_reports_what_was_held_back() {
        let limit = LogLimit::new(3, Duration::from_secs(1));
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // 1,000 lines within the first window: 3 get through, 997 are counted.
        let through: Vec<_> = (0..1000).filter_map(|i| limit.check("accept", at(i / 2))).collect();
        assert_eq!(through, vec![0, 0, 0]);
        // Next window: the first line carries the count, the rest start from zero.
        assert_eq!(limit.check("accept", at(1000)), Some(997));
        assert_eq!(limit.check("accept", at(1001)), Some(0));
        assert_eq!(limit.check("accept", at(1002)), Some(0));
        assert_eq!(limit.check("accept", at(1003)), None);
        assert_eq!(limit.check("accept", at(2500)), Some(1));
    }

    #[test]
    fn keys_are_limited_separately() {
        let limit = LogLimit::new(1, Duration::from_secs(1));
        let t0 = Instant::now();
        assert_eq!(limit.check("a", t0), Some(0));
        assert_eq!(limit.check("a", t0), None);
        assert_eq!(limit.check("b", t0), Some(0), "another key has its own budget");
        assert_eq!(limit.check("b", t0), None);
        assert_eq!(limit.check("a", t0 + Duration::from_millis(999)), None, "the window is a full second");
        assert_eq!(limit.check("a", t0 + Duration::from_secs(1)), Some(2), "both held-back lines are reported");
    }
}
