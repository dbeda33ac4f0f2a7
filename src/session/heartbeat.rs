//! A connection's liveness: server pings every `client.ping_interval` and, for
//! bidirectional transports, the pong deadline (`client.pong_timeout`).
//!
//! Kept apart from [`super::Session`] because it must run while the session is busy: the
//! connection driver owns it and keeps pinging while a command waits on the engine or a
//! backend. Time is an input, as everywhere in the session.

use rand::Rng;

use crate::protocol::Disconnect;

/// What [`Heartbeat::tick`] asks of the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Beat {
    /// Nothing due.
    Idle,
    /// Send a ping now.
    Ping,
    /// The pong did not come in time: close with this.
    Dead(Disconnect),
}

/// Ping and pong timers of one connection. Inactive until [`Heartbeat::start`].
#[derive(Debug, Clone)]
///
/// Compact (32 bytes): it sits in every connection's task. Intervals are held in u32
/// milliseconds (up to 49 days), a missing pong deadline is `u64::MAX`.
pub struct Heartbeat {
    interval_ms: u32,
    pong_timeout_ms: Option<u32>,
    started: bool,
    next_ping_ms: u64,
    /// `u64::MAX`: no pong expected.
    pong_deadline_ms: u64,
}

/// Milliseconds as the heartbeat holds them (longer is "practically never").
fn ms32(ms: u64) -> u32 {
    u32::try_from(ms).unwrap_or(u32::MAX)
}

impl Heartbeat {
    /// Timers for `interval_ms` between pings; `pong_timeout_ms` when pongs are expected.
    pub fn new(interval_ms: u64, pong_timeout_ms: Option<u64>) -> Self {
        Self {
            interval_ms: ms32(interval_ms),
            pong_timeout_ms: pong_timeout_ms.map(ms32),
            started: false,
            next_ping_ms: u64::MAX,
            pong_deadline_ms: u64::MAX,
        }
    }

    /// Starts pinging (the connection is now authenticated). The first ping is jittered
    /// between half and the whole interval, as Centrifugo does, so connections opened
    /// together do not ping together.
    pub fn start(&mut self, now_ms: u64) {
        if self.started || self.interval_ms == 0 {
            return;
        }
        self.started = true;
        let i = u64::from(self.interval_ms);
        self.next_ping_ms = now_ms.saturating_add(rand::rng().random_range(i / 2..=i));
    }

    /// Whether pings are running (pongs are the driver's to handle from now on).
    pub fn is_started(&self) -> bool {
        self.started
    }

    /// When [`Heartbeat::tick`] next has something to do (unix ms; `u64::MAX`: never).
    pub fn next_deadline(&self) -> u64 {
        self.pong_deadline_ms.min(self.next_ping_ms)
    }

    /// Runs the timers due at `now_ms`.
    pub fn tick(&mut self, now_ms: u64) -> Beat {
        if self.pong_deadline_ms != u64::MAX && now_ms >= self.pong_deadline_ms {
            return Beat::Dead(Disconnect::NO_PONG);
        }
        if now_ms < self.next_ping_ms {
            return Beat::Idle;
        }
        self.next_ping_ms = now_ms.saturating_add(u64::from(self.interval_ms));
        if let Some(timeout) = self.pong_timeout_ms
            && self.pong_deadline_ms == u64::MAX
        {
            // Never u64::MAX itself ("none"): a deadline that far is never reached anyway.
            self.pong_deadline_ms = now_ms.saturating_add(u64::from(timeout)).min(u64::MAX - 1);
        }
        Beat::Ping
    }

    /// A pong arrived. One nobody asked for is a protocol violation (Centrifugo: 3501).
    pub fn pong(&mut self) -> Result<(), Disconnect> {
        if std::mem::replace(&mut self.pong_deadline_ms, u64::MAX) == u64::MAX {
            return Err(Disconnect::BAD_REQUEST);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_000_000;

    #[test]
    fn pings_and_the_pong_deadline() {
        let mut h = Heartbeat::new(10_000, Some(4_000));
        assert_eq!(h.next_deadline(), u64::MAX, "nothing before start");
        h.start(T0);
        let first = h.next_deadline();
        assert!((T0 + 5_000..=T0 + 10_000).contains(&first), "first ping is jittered into [interval/2, interval]");
        assert_eq!(h.tick(first - 1), Beat::Idle);
        assert_eq!(h.tick(first), Beat::Ping);
        assert_eq!(h.next_deadline(), first + 4_000, "the pong deadline comes before the next ping");
        assert_eq!(h.pong(), Ok(()), "a pong in time clears it");
        assert_eq!(h.next_deadline(), first + 10_000);
        assert_eq!(h.tick(first + 10_000), Beat::Ping);
        assert_eq!(h.tick(first + 14_000), Beat::Dead(Disconnect::NO_PONG), "no pong: 3012");
    }

    #[test]
    fn an_unasked_pong_is_a_bad_request_and_uni_transports_expect_none() {
        let mut h = Heartbeat::new(10_000, Some(4_000));
        h.start(T0);
        assert_eq!(h.pong(), Err(Disconnect::BAD_REQUEST));
        let mut uni = Heartbeat::new(10_000, None);
        uni.start(T0);
        let at = uni.next_deadline();
        assert_eq!(uni.tick(at), Beat::Ping);
        assert_eq!(uni.next_deadline(), at + 10_000, "no pong deadline without pongs");
        assert_eq!(uni.tick(at + 100_000), Beat::Ping);
    }

    #[test]
    fn a_zero_interval_never_pings() {
        let mut h = Heartbeat::new(0, Some(4_000));
        h.start(T0);
        assert!(!h.is_started());
        assert_eq!(h.next_deadline(), u64::MAX);
        assert_eq!(h.tick(u64::MAX - 1), Beat::Idle);
    }

    #[test]
    fn it_stays_small_and_huge_settings_mean_never() {
        assert!(std::mem::size_of::<Heartbeat>() <= 32, "it sits in every connection's task");
        let mut h = Heartbeat::new(u64::MAX, Some(u64::MAX));
        h.start(T0);
        let at = h.next_deadline();
        assert!(at >= T0 + u64::from(u32::MAX) / 2, "an interval past u32 ms is the longest one");
        assert_eq!(h.tick(at), Beat::Ping);
        assert_eq!(h.tick(at + 1), Beat::Idle, "the pong deadline is far off");
        assert_eq!(h.pong(), Ok(()));
    }
}
