//! Which local connections are subscribed to which channel.
//!
//! Sharded by channel hash so subscribes on different channels do not contend. A channel
//! exists while it has a local subscriber: the first subscriber creates it (and the hub
//! subscribes the broker), the last one removes it (and the hub unsubscribes the broker).
//! Fan-out holds a shard's read lock while it pushes pointers into outboxes; pushing never
//! takes this lock, so the lock order registry → outbox has no cycle.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::outbox::Outbox;

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
        let sub = |conn| Subscriber { conn, outbox: Outbox::new(100) };
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
}
