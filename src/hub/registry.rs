//! Which local connections are subscribed to which channel.
//!
//! Sharded by channel hash so subscribes on different channels do not contend. A channel
//! exists while it has a local subscriber: the first subscriber creates it (and the hub
//! subscribes the broker), the last one removes it (and the hub unsubscribes the broker).
//! Fan-out holds a shard's read lock while it pushes pointers into outboxes; pushing never
//! takes this lock, so the lock order registry → outbox has no cycle.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::outbox::{Outbox, Outgoing};
use super::publication::SharedPublication;
use super::Control;
use crate::protocol::Disconnect;

/// Number of shards: a power of two comfortably above the core count, so that concurrent
/// subscribes rarely meet on one lock.
const SHARDS: usize = 64;

/// One local subscriber of a channel.
#[derive(Debug, Clone)]
pub struct Subscriber {
    /// The connection's numeric id.
    pub conn: u64,
    /// Where its publications go.
    pub outbox: Arc<Outbox>,
    /// Whether it gets join and leave pushes.
    pub join_leave: bool,
    /// Stream tracking for positioned and recovering subscriptions (None: plain).
    pub stream: Option<Arc<StreamState>>,
}

impl Subscriber {
    /// A plain subscriber: publications go straight to its outbox.
    pub fn plain(conn: u64, outbox: Arc<Outbox>) -> Self {
        Self { conn, outbox, join_leave: false, stream: None }
    }
}

#[derive(Debug, Default)]
struct StreamInner {
    /// Offset of the last publication delivered (0 = none yet).
    last_offset: u64,
    /// While the subscribe is recovering: publications held back, and their cost.
    buffer: Option<(Vec<Arc<SharedPublication>>, usize)>,
}

/// A positioned subscription's place in the channel's stream.
///
/// It starts out buffering: publications that arrive while the session reads history are
/// held here. [`StreamState::go_live`] hands them to the session, which merges them with
/// history (dropping offsets already covered) and queues its reply; from then on each
/// publication must carry the next offset, or the subscriber is told it lost its place.
/// Both steps happen under this state's lock, so nothing is lost or duplicated between them.
///
/// A subscription that is not positioned uses the buffering only (connect-time
/// subscriptions wait for the connect reply this way) and is never checked for gaps.
#[derive(Debug, Default)]
pub struct StreamState {
    inner: Mutex<StreamInner>,
    positioned: bool,
}

impl StreamState {
    /// A new state that buffers until [`StreamState::go_live`].
    pub fn buffering(positioned: bool) -> Arc<Self> {
        Arc::new(Self { inner: Mutex::new(StreamInner { last_offset: 0, buffer: Some((Vec::new(), 0)) }), positioned })
    }

    /// Whether offsets are checked for gaps.
    pub fn positioned(&self) -> bool {
        self.positioned
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StreamInner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Fan-out for this subscriber: buffer, deliver in order, or report a gap.
    fn deliver(&self, channel: &str, p: &Arc<SharedPublication>, outbox: &Outbox, buffer_limit: usize) {
        let mut st = self.lock();
        if let Some((buffer, cost)) = &mut st.buffer {
            *cost += p.cost();
            buffer.push(p.clone());
            if *cost > buffer_limit {
                // A recovery that cannot keep up is a slow client like any other.
                outbox.close(Disconnect::SLOW);
            }
            return;
        }
        let offset = p.publication.offset;
        if offset == 0 || !self.positioned {
            let _ = outbox.push(Outgoing::Publication(p.clone()));
            return;
        }
        let expected = st.last_offset + 1;
        st.last_offset = offset;
        if offset == expected {
            let _ = outbox.push(Outgoing::Publication(p.clone()));
        } else {
            // A gap (lost publications) or a new epoch: the client must recover.
            let _ = outbox.push(Outgoing::Control(Box::new(Control::InsufficientState(channel.to_owned()))));
        }
    }

    /// Ends buffering: `f` gets the held-back publications and queues the subscribe
    /// reply (and whatever must follow it); it returns the offset the client is now at.
    pub fn go_live(&self, f: impl FnOnce(Vec<Arc<SharedPublication>>) -> u64) {
        let mut st = self.lock();
        let buffered = st.buffer.take().map(|(b, _)| b).unwrap_or_default();
        st.last_offset = f(buffered);
    }
}

type Shard = HashMap<Arc<str>, Vec<Subscriber>>;

/// The channel → subscribers map.
#[derive(Debug)]
pub struct Registry {
    shards: Box<[RwLock<Shard>]>,
    hasher: RandomState,
}

impl Default for Registry {
    fn default() -> Self {
        Self { shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(), hasher: RandomState::new() }
    }
}

impl Registry {
    fn shard(&self, channel: &str) -> &RwLock<Shard> {
        let i = (self.hasher.hash_one(channel) as usize) % SHARDS;
        &self.shards[i]
    }

    fn read(lock: &RwLock<Shard>) -> RwLockReadGuard<'_, Shard> {
        // Mutations are single insert/remove calls; a poisoned lock holds a consistent map.
        lock.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(lock: &RwLock<Shard>) -> RwLockWriteGuard<'_, Shard> {
        lock.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds a subscriber and runs `then` before releasing the channel's lock, so nothing
    /// fanned out to the channel can overtake what `then` queues. Returns true when it is
    /// the channel's first subscriber.
    pub fn add(&self, channel: &str, sub: Subscriber, then: impl FnOnce()) -> bool {
        let mut shard = Self::write(self.shard(channel));
        let first = match shard.get_mut(channel) {
            Some(subs) => {
                if !subs.iter().any(|s| s.conn == sub.conn) {
                    subs.push(sub);
                }
                false
            }
            None => {
                shard.insert(Arc::from(channel), vec![sub]);
                true
            }
        };
        then();
        first
    }

    /// Removes a subscriber; returns true when the channel has no subscriber left.
    pub fn remove(&self, channel: &str, conn: u64) -> bool {
        let mut shard = Self::write(self.shard(channel));
        let Some(subs) = shard.get_mut(channel) else { return false };
        let Some(pos) = subs.iter().position(|s| s.conn == conn) else { return false };
        subs.swap_remove(pos);
        if subs.is_empty() {
            shard.remove(channel);
            true
        } else {
            false
        }
    }

    /// Delivers a publication to every local subscriber of its channel: one pointer into
    /// each outbox (or each positioned subscription's stream check). Returns how many.
    pub fn fan_out(&self, p: &Arc<SharedPublication>, buffer_limit: usize) -> usize {
        let channel = &*p.publication.channel;
        let shard = Self::read(self.shard(channel));
        let Some(subs) = shard.get(channel) else { return 0 };
        for sub in subs {
            match &sub.stream {
                None => {
                    let _ = sub.outbox.push(Outgoing::Publication(p.clone()));
                }
                Some(state) => state.deliver(channel, p, &sub.outbox, buffer_limit),
            }
        }
        subs.len()
    }

    /// Calls `f` for every local subscriber of `channel` under the shard's read lock;
    /// returns how many there were.
    pub fn for_each(&self, channel: &str, mut f: impl FnMut(&Subscriber)) -> usize {
        let shard = Self::read(self.shard(channel));
        let Some(subs) = shard.get(channel) else { return 0 };
        subs.iter().for_each(&mut f);
        subs.len()
    }

    /// Number of local subscribers of `channel`.
    pub fn count(&self, channel: &str) -> usize {
        Self::read(self.shard(channel)).get(channel).map_or(0, Vec::len)
    }

    /// Every channel with its number of local subscribers.
    pub fn channels(&self) -> Vec<(String, usize)> {
        let mut out = Vec::new();
        for shard in &self.shards {
            out.extend(Self::read(shard).iter().map(|(ch, subs)| (ch.to_string(), subs.len())));
        }
        out
    }

    /// (channels, subscriptions) totals.
    pub fn totals(&self) -> (usize, usize) {
        self.shards.iter().fold((0, 0), |(c, s), shard| {
            let shard = Self::read(shard);
            (c + shard.len(), s + shard.values().map(Vec::len).sum::<usize>())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_and_last_subscriber_are_reported() {
        let r = Registry::default();
        let sub = |conn| Subscriber::plain(conn, Outbox::new(100));
        assert!(r.add("a", sub(1), || ()));
        assert!(!r.add("a", sub(2), || ()));
        assert!(!r.add("a", sub(2), || ()), "re-adding is idempotent");
        assert_eq!(r.count("a"), 2);
        assert!(!r.remove("a", 1));
        assert!(!r.remove("a", 99), "unknown subscriber");
        assert!(r.remove("a", 2));
        assert_eq!(r.totals(), (0, 0));
        assert!(r.channels().is_empty());
    }

    fn shared(offset: u64) -> Arc<SharedPublication> {
        SharedPublication::new(Arc::new(crate::protocol::Publication {
            channel: "c".into(),
            offset,
            ..Default::default()
        }))
    }

    fn offsets(items: &[Outgoing]) -> Vec<u64> {
        items
            .iter()
            .map(|i| match i {
                Outgoing::Publication(p) => p.publication.offset,
                Outgoing::Control(c) if matches!(**c, Control::InsufficientState(_)) => u64::MAX,
                _ => 0,
            })
            .collect()
    }

    #[test]
    fn buffering_then_live_with_gap_detection() {
        let r = Registry::default();
        let outbox = Outbox::new(1 << 20);
        let state = StreamState::buffering(true);
        r.add("c", Subscriber { conn: 1, outbox: outbox.clone(), join_leave: false, stream: Some(state.clone()) }, || ());
        r.fan_out(&shared(5), 1 << 20);
        r.fan_out(&shared(6), 1 << 20);
        let mut items = Vec::new();
        outbox.drain(&mut items);
        assert!(items.is_empty(), "held back while recovering");
        // The session's history read covered up to 5: it keeps only 6 from the buffer.
        state.go_live(|buffered| {
            assert_eq!(buffered.iter().map(|p| p.publication.offset).collect::<Vec<_>>(), vec![5, 6]);
            6
        });
        r.fan_out(&shared(7), 1 << 20);
        r.fan_out(&shared(9), 1 << 20);
        outbox.drain(&mut items);
        assert_eq!(offsets(&items), vec![7, u64::MAX], "8 is missing: the subscriber is told");
    }

    #[test]
    fn an_overflowing_recovery_buffer_makes_the_connection_slow() {
        let r = Registry::default();
        let outbox = Outbox::new(1 << 20);
        r.add("c", Subscriber { conn: 1, outbox: outbox.clone(), join_leave: false, stream: Some(StreamState::buffering(true)) }, || ());
        for i in 1..=10 {
            r.fan_out(&shared(i), 100);
        }
        assert_eq!(outbox.closing_reason(), Some(Disconnect::SLOW));
    }
}
