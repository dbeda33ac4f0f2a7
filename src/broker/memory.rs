//! The default single-node engine: history streams, idempotency keys and presence in
//! process memory; delivery is a direct call into the hub.
//!
//! A channel's state lives in one of a fixed number of mutex-guarded shards. Publishing
//! assigns the offset, appends to the stream and delivers to the hub under that shard's
//! lock, so each channel's publications reach subscribers in offset order even with
//! concurrent publishers. The stream stores the same `Arc<Publication>` that fan-out
//! delivers: no payload is copied per publication or per subscriber.
//!
//! Time comes from a [`Clock`] so tests can step TTLs instead of sleeping.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rand::distr::{Alphanumeric, SampleString};

use crate::hub::{
    Broker, BrokerError, BrokerHandler, Control, HistoryError, HistoryFilter, HistoryPage, IDEMPOTENCY_WINDOW,
    PublishOptions, PublishOutcome,
};
use crate::protocol::{ClientInfo, PresenceStats, Publication, StreamPosition};

/// Milliseconds on a monotonic clock.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// Shards of channel state: enough that publishers on different channels rarely meet.
const SHARDS: usize = 64;

/// Idempotency keys remembered per channel at most; beyond it the oldest are forgotten
/// early. Bounds what a publisher sending unique keys can make us hold.
const MAX_IDEMPOTENCY_KEYS: usize = 10_000;

/// Every this many operations a shard drops its expired streams and empty channels.
const SWEEP_EVERY: u32 = 1024;

/// Length of a stream epoch: random alphanumerics, as Centrifugo's short epochs.
const EPOCH_LEN: usize = 8;

struct Entry {
    publication: Arc<Publication>,
    expires_ms: u64,
}

struct Stream {
    epoch: String,
    top: u64,
    entries: VecDeque<Entry>,
    meta_expires_ms: u64,
}

impl Stream {
    fn new(now: u64, meta_ttl: Duration) -> Self {
        Self {
            epoch: Alphanumeric.sample_string(&mut rand::rng(), EPOCH_LEN),
            top: 0,
            entries: VecDeque::new(),
            meta_expires_ms: now.saturating_add(meta_ttl.as_millis() as u64),
        }
    }

    fn position(&self) -> StreamPosition {
        StreamPosition { offset: self.top, epoch: self.epoch.clone() }
    }

    fn trim(&mut self, now: u64, size: usize) {
        while self.entries.len() > size || self.entries.front().is_some_and(|e| e.expires_ms <= now) {
            self.entries.pop_front();
        }
    }
}

#[derive(Default)]
struct ChannelState {
    stream: Option<Stream>,
    idempotency: HashMap<String, (PublishOutcome, u64)>,
    idempotency_order: VecDeque<(u64, String)>,
    presence: HashMap<String, ClientInfo>,
}

impl ChannelState {
    /// The live stream, replacing one whose meta expired (a new epoch) and creating it if
    /// needed; extends its meta lifetime.
    fn stream(&mut self, now: u64, meta_ttl: Duration) -> &mut Stream {
        if self.stream.as_ref().is_some_and(|s| s.meta_expires_ms <= now) {
            self.stream = None;
        }
        let stream = self.stream.get_or_insert_with(|| Stream::new(now, meta_ttl));
        stream.meta_expires_ms = stream.meta_expires_ms.max(now.saturating_add(meta_ttl.as_millis() as u64));
        stream
    }

    fn forget_expired_keys(&mut self, now: u64) {
        while let Some((expires, key)) = self.idempotency_order.front() {
            if *expires > now && self.idempotency_order.len() <= MAX_IDEMPOTENCY_KEYS {
                break;
            }
            self.idempotency.remove(key);
            self.idempotency_order.pop_front();
        }
    }

    fn is_empty(&self, now: u64) -> bool {
        self.presence.is_empty()
            && self.idempotency.is_empty()
            && self.stream.as_ref().is_none_or(|s| s.meta_expires_ms <= now)
    }
}

#[derive(Default)]
struct Shard {
    channels: HashMap<String, ChannelState>,
    ops: u32,
}

impl Shard {
    fn sweep(&mut self, now: u64) {
        self.ops = self.ops.wrapping_add(1);
        if !self.ops.is_multiple_of(SWEEP_EVERY) {
            return;
        }
        self.channels.retain(|_, ch| {
            ch.forget_expired_keys(now);
            if let Some(s) = &mut ch.stream {
                s.entries.retain(|e| e.expires_ms > now);
            }
            !ch.is_empty(now)
        });
    }
}

/// In-process engine for one node.
pub struct MemoryBroker {
    handler: OnceLock<Weak<dyn BrokerHandler>>,
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    clock: Clock,
}

impl std::fmt::Debug for MemoryBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBroker").finish_non_exhaustive()
    }
}

impl MemoryBroker {
    /// A new engine on the real monotonic clock.
    pub fn new() -> Arc<Self> {
        let origin = Instant::now();
        Self::with_clock(Arc::new(move || origin.elapsed().as_millis() as u64))
    }

    /// A new engine on the given clock (tests step it).
    pub fn with_clock(clock: Clock) -> Arc<Self> {
        Arc::new(Self {
            handler: OnceLock::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: RandomState::new(),
            clock,
        })
    }

    fn handler(&self) -> Option<Arc<dyn BrokerHandler>> {
        self.handler.get().and_then(Weak::upgrade)
    }

    fn shard(&self, channel: &str) -> MutexGuard<'_, Shard> {
        let i = (self.hasher.hash_one(channel) as usize) % SHARDS;
        // Every mutation under this lock leaves the maps consistent; a poisoned lock is usable.
        self.shards[i].lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl Broker for MemoryBroker {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn set_handler(&self, handler: Weak<dyn BrokerHandler>) {
        let _ = self.handler.set(handler);
    }

    async fn publish(&self, mut publication: Publication, opts: &PublishOptions) -> Result<PublishOutcome, BrokerError> {
        let now = (self.clock)();
        let channel = publication.channel.to_string();
        let mut shard = self.shard(&channel);
        shard.sweep(now);
        let state = shard.channels.entry(channel).or_default();
        if let Some(key) = &opts.idempotency_key {
            state.forget_expired_keys(now);
            if let Some((outcome, _)) = state.idempotency.get(key) {
                return Ok(PublishOutcome { duplicate: true, ..outcome.clone() });
            }
        }
        let mut outcome = PublishOutcome::default();
        let publication = match opts.history {
            Some(h) => {
                let stream = state.stream(now, h.meta_ttl);
                stream.top += 1;
                publication.offset = stream.top;
                let publication = Arc::new(publication);
                stream.entries.push_back(Entry {
                    publication: publication.clone(),
                    expires_ms: now.saturating_add(h.ttl.as_millis() as u64),
                });
                stream.trim(now, h.size);
                outcome.position = Some(stream.position());
                publication
            }
            None => Arc::new(publication),
        };
        if let Some(key) = &opts.idempotency_key {
            let expires = now + IDEMPOTENCY_WINDOW.as_millis() as u64;
            state.idempotency.insert(key.clone(), (outcome.clone(), expires));
            state.idempotency_order.push_back((expires, key.clone()));
            state.forget_expired_keys(now);
        }
        // Delivered under the shard lock: offsets reach subscribers in order.
        if let Some(h) = self.handler() {
            h.handle_publication(publication, outcome.position.as_ref().map_or("", |p| p.epoch.as_str()));
        }
        Ok(outcome)
    }

    async fn publish_join_leave(&self, channel: &str, info: &ClientInfo, join: bool) -> Result<(), BrokerError> {
        if let Some(h) = self.handler() {
            h.handle_join_leave(channel, info, join);
        }
        Ok(())
    }

    async fn subscribe(&self, _channel: &str) -> Result<(), BrokerError> {
        Ok(())
    }

    async fn unsubscribe(&self, _channel: &str) -> Result<(), BrokerError> {
        Ok(())
    }

    async fn history(&self, channel: &str, filter: &HistoryFilter, meta_ttl: Duration) -> Result<HistoryPage, HistoryError> {
        let now = (self.clock)();
        let mut shard = self.shard(channel);
        shard.sweep(now);
        let stream = shard.channels.entry(channel.to_owned()).or_default().stream(now, meta_ttl);
        stream.entries.retain(|e| e.expires_ms > now);
        let position = stream.position();
        if let Some(since) = &filter.since {
            // An empty epoch is any epoch (Centrifugo's rule, subscribe recovery included).
            if !since.epoch.is_empty() && since.epoch != stream.epoch {
                return Err(HistoryError::EpochMismatch);
            }
            if since.offset > stream.top {
                return Err(HistoryError::FutureOffset);
            }
        }
        let pick = |e: &Entry| e.publication.clone();
        let publications: Vec<_> = match (&filter.since, filter.reverse) {
            (None, false) => stream.entries.iter().take(filter.limit).map(pick).collect(),
            (None, true) => stream.entries.iter().rev().take(filter.limit).map(pick).collect(),
            (Some(s), false) => {
                stream.entries.iter().filter(|e| e.publication.offset > s.offset).take(filter.limit).map(pick).collect()
            }
            (Some(s), true) => stream
                .entries
                .iter()
                .rev()
                .filter(|e| e.publication.offset < s.offset)
                .take(filter.limit)
                .map(pick)
                .collect(),
        };
        Ok(HistoryPage { publications, position })
    }

    async fn remove_history(&self, channel: &str) -> Result<(), BrokerError> {
        let mut shard = self.shard(channel);
        if let Some(stream) = shard.channels.get_mut(channel).and_then(|c| c.stream.as_mut()) {
            stream.entries.clear();
        }
        Ok(())
    }

    async fn add_presence(&self, channel: &str, info: &ClientInfo) -> Result<(), BrokerError> {
        let mut shard = self.shard(channel);
        shard.channels.entry(channel.to_owned()).or_default().presence.insert(info.client.clone(), info.clone());
        Ok(())
    }

    async fn remove_presence(&self, channel: &str, client: &str) -> Result<(), BrokerError> {
        let now = (self.clock)();
        let mut shard = self.shard(channel);
        if let Some(state) = shard.channels.get_mut(channel) {
            state.presence.remove(client);
            if state.is_empty(now) {
                shard.channels.remove(channel);
            }
        }
        Ok(())
    }

    async fn presence(&self, channel: &str) -> Result<BTreeMap<String, ClientInfo>, BrokerError> {
        let shard = self.shard(channel);
        Ok(shard
            .channels
            .get(channel)
            .map(|c| c.presence.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default())
    }

    async fn presence_stats(&self, channel: &str) -> Result<PresenceStats, BrokerError> {
        let shard = self.shard(channel);
        let Some(state) = shard.channels.get(channel) else { return Ok(PresenceStats::default()) };
        let users: std::collections::HashSet<&str> = state.presence.values().map(|i| i.user.as_str()).collect();
        Ok(PresenceStats { num_clients: state.presence.len() as u32, num_users: users.len() as u32 })
    }

    async fn control(&self, control: Control) -> Result<(), BrokerError> {
        if let Some(h) = self.handler() {
            h.handle_control(control);
        }
        Ok(())
    }

    async fn health(&self) -> Result<(), BrokerError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
