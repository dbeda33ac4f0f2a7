//! This node's subscriptions at the engine: one small state machine per channel.
//!
//! A channel's engine subscription is made for its first local subscriber and dropped
//! with its last. With a remote engine both take time and may fail, so every change of a
//! channel's local membership runs under that channel's [`Slot`] lock, in arrival order:
//!
//! - a subscriber is added to the registry only once the engine subscription exists, so
//!   a second subscriber waits for the first's engine subscription instead of answering
//!   success while it is still pending;
//! - a failed engine subscription adds no one: the session answers its client once, with
//!   the error, and never a success first;
//! - an unsubscribe cannot overtake a subscribe that came before it, nor a subscribe the
//!   unsubscribe of the last subscriber before it.
//!
//! Slots exist only while a channel is subscribed at the engine or someone waits on it.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard};

/// Lock shards: subscribes to different channels rarely meet on one map lock.
const SHARDS: usize = 16;

/// One channel's engine subscription: true while subscribed at the engine.
pub(super) type Slot = tokio::sync::Mutex<bool>;

type Shard = HashMap<Arc<str>, Arc<Slot>>;

/// Every channel's [`Slot`].
#[derive(Debug)]
pub(super) struct EngineSubs {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
}

impl Default for EngineSubs {
    fn default() -> Self {
        Self { shards: (0..SHARDS).map(|_| Mutex::default()).collect(), hasher: RandomState::new() }
    }
}

impl EngineSubs {
    fn shard(&self, channel: &str) -> MutexGuard<'_, Shard> {
        let i = (self.hasher.hash_one(channel) as usize) % SHARDS;
        // Each critical section is one map operation: a poisoned lock guards consistent data.
        self.shards[i].lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The channel's slot, created unsubscribed if it has none. Give it back with
    /// [`EngineSubs::release`].
    pub(super) fn slot(&self, channel: &str) -> Arc<Slot> {
        self.shard(channel).entry(Arc::from(channel)).or_default().clone()
    }

    /// Gives a slot back; the channel's entry goes once it is unsubscribed and nobody
    /// else holds or waits on it.
    pub(super) fn release(&self, channel: &str, slot: Arc<Slot>) {
        let mut shard = self.shard(channel);
        // Under the map lock nobody can take a new reference, so the count is stable.
        let idle = Arc::strong_count(&slot) == 2 && slot.try_lock().is_ok_and(|subscribed| !*subscribed);
        drop(slot);
        if idle {
            shard.remove(channel);
        }
    }

    /// Channels subscribed at the engine (or being subscribed).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_slot_lives_while_subscribed_or_held() {
        let subs = EngineSubs::default();
        let slot = subs.slot("c");
        let held = subs.slot("c");
        assert!(Arc::ptr_eq(&slot, &held), "one slot per channel");
        *slot.lock().await = true;
        subs.release("c", held);
        subs.release("c", slot);
        assert_eq!(subs.len(), 1, "subscribed: kept");
        let slot = subs.slot("c");
        *slot.lock().await = false;
        subs.release("c", slot);
        assert_eq!(subs.len(), 0, "unsubscribed and idle: gone");
    }
}
