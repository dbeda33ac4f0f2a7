//! The multi-node engine: channels, history streams, idempotency keys and presence in
//! Redis (one server, a Redis Cluster, a Sentinel-managed primary, or several of them
//! sharded by channel), delivery through Redis PUB/SUB.
//!
//! Local and remote delivery share one path: a publish runs one Lua script that assigns
//! the offset, appends to the stream and PUBLISHes the stored entry; every node subscribed
//! to the channel — this one included — receives it on its shard's subscriber connection
//! and hands it to the hub ([`ShardReader::run`]). Redis delivers one connection's
//! messages in order, so subscribers see a channel's publications in offset order.
//!
//! Every call is bounded by `engine.redis.io_timeout`: a Redis that is down or slow makes
//! calls fail with a [`BrokerError`] (error 100 for the client, 503 on `/health`), never
//! hang. The clients reconnect by themselves; after a reconnect each subscriber connection
//! subscribes again to every channel it had. Publications sent while a node was
//! disconnected are not replayed by this engine: recovering them from history is the
//! hub's part.
//!
//! What the hub cannot see yet: a delivered publication's epoch travels with it (see
//! `wire.rs`), but `protocol::Publication` has no field for it, so the reader drops it.

mod connect;
mod keys;
mod scripts;
mod wire;

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use fred::clients::SubscriberClient;
use fred::prelude::{Client, ClientLike, EventInterface, KeysInterface, Options, PubsubInterface, Value};
use fred::types::ClusterHash;
use fred::types::scripts::Script;
use rand::distr::{Alphanumeric, SampleString};
use tokio::sync::broadcast::error::RecvError;

use crate::config::RedisEngine;
use crate::hub::{
    Broker, BrokerError, BrokerHandler, Control, HistoryError, HistoryFilter, HistoryPage, IDEMPOTENCY_WINDOW,
    PublishOptions, PublishOutcome,
};
use crate::metrics::Metrics;
use crate::protocol::{ClientInfo, PresenceStats, Publication, StreamPosition};

use keys::{Keys, shard_of};

/// Length of a stream epoch: random alphanumerics, as the memory engine's.
const EPOCH_LEN: usize = 8;

/// First pause between attempts to subscribe again after a reconnect.
const RESUBSCRIBE_PAUSE: Duration = Duration::from_millis(200);

/// Longest pause between those attempts (the pause doubles after each failure).
const RESUBSCRIBE_MAX_PAUSE: Duration = Duration::from_secs(5);

type Handler = Arc<OnceLock<Weak<dyn BrokerHandler>>>;

struct Shard {
    client: Client,
    subscriber: SubscriberClient,
    name: String,
}

struct Scripts {
    publish: Script,
    history: Script,
    presence_add: Script,
    presence_remove: Script,
    presence_get: Script,
}

/// The Redis engine. Build it with [`RedisBroker::connect`] and run its readers.
pub struct RedisBroker {
    shards: Vec<Shard>,
    handler: Handler,
    keys: Keys,
    io_timeout: Duration,
    presence_ttl: Duration,
    scripts: Scripts,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for RedisBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.shards.iter().map(|s| s.name.as_str()).collect();
        f.debug_struct("RedisBroker").field("shards", &names).finish_non_exhaustive()
    }
}

/// Reads one shard's subscriber connection and hands what arrives to the hub; subscribes
/// again to every channel after a reconnect. One per shard, run by whoever starts the
/// server; it ends when the broker is dropped.
pub struct ShardReader {
    subscriber: SubscriberClient,
    messages: tokio::sync::broadcast::Receiver<fred::types::Message>,
    reconnects: tokio::sync::broadcast::Receiver<fred::types::config::Server>,
    handler: Handler,
    keys: Keys,
    control: String,
    name: String,
    io_timeout: Duration,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for ShardReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardReader").field("shard", &self.name).finish_non_exhaustive()
    }
}

/// Whole seconds for EXPIRE, rounded up, at least 1.
fn expire_secs(d: Duration) -> u64 {
    d.as_millis().div_ceil(1000).max(1) as u64
}

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn new_epoch() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), EPOCH_LEN)
}

fn bytes(v: Vec<u8>) -> Value {
    Value::Bytes(Bytes::from(v))
}

fn text(s: impl std::fmt::Display) -> Value {
    Value::String(s.to_string().into())
}

fn bad_reply(what: &str, v: &Value) -> BrokerError {
    BrokerError(format!("redis {what}: unexpected reply {v:?}"))
}

/// `"<offset> <epoch>"` as the publish script returns it; no position without history.
fn parse_position(text: &str) -> Option<StreamPosition> {
    let (offset, epoch) = text.split_once(' ')?;
    let offset: u64 = offset.parse().ok()?;
    (!epoch.is_empty()).then(|| StreamPosition { offset, epoch: epoch.to_string() })
}

impl RedisBroker {
    /// Connects to every shard (failing, with the address, when one cannot be reached
    /// within `connect_timeout`), subscribes shard 0 to the control channel, and returns
    /// the engine with one reader per shard for the caller to run.
    pub async fn connect(cfg: &RedisEngine, metrics: Arc<Metrics>) -> Result<(Arc<Self>, Vec<ShardReader>), BrokerError> {
        let connected = connect::connect(cfg).await?;
        let handler: Handler = Arc::new(OnceLock::new());
        let keys = Keys::new(&cfg.prefix);
        let control = keys.control();
        let io_timeout = cfg.io_timeout.0;
        let mut readers = Vec::with_capacity(connected.len());
        let mut shards = Vec::with_capacity(connected.len());
        for c in connected {
            // Receivers made before the first SUBSCRIBE: nothing delivered is missed.
            readers.push(ShardReader {
                messages: c.subscriber.message_rx(),
                reconnects: c.subscriber.reconnect_rx(),
                subscriber: c.subscriber.clone(),
                handler: handler.clone(),
                keys: keys.clone(),
                control: control.clone(),
                name: c.name.clone(),
                io_timeout,
                metrics: metrics.clone(),
            });
            shards.push(Shard { client: c.client, subscriber: c.subscriber, name: c.name });
        }
        let broker = Arc::new(Self {
            shards,
            handler,
            keys,
            io_timeout,
            presence_ttl: cfg.presence_ttl.0,
            scripts: Scripts {
                publish: Script::from_lua(scripts::PUBLISH),
                history: Script::from_lua(scripts::HISTORY),
                presence_add: Script::from_lua(scripts::PRESENCE_ADD),
                presence_remove: Script::from_lua(scripts::PRESENCE_REMOVE),
                presence_get: Script::from_lua(scripts::PRESENCE_GET),
            },
            metrics,
        });
        let shard0 = &broker.shards[0];
        broker.confirmed("SUBSCRIBE control", shard0, shard0.subscriber.subscribe(control)).await?;
        Ok((broker, readers))
    }

    /// How many shards channels are spread over.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    fn shard(&self, channel: &str) -> &Shard {
        &self.shards[shard_of(channel, self.shards.len())]
    }

    /// Runs `fut` within the IO timeout, naming the command and shard when it fails.
    async fn bounded<T>(
        &self,
        what: &str,
        shard: &Shard,
        fut: impl Future<Output = Result<T, fred::error::Error>>,
    ) -> Result<T, BrokerError> {
        let started = std::time::Instant::now();
        let result = match tokio::time::timeout(self.io_timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(BrokerError(format!("redis {what} on {}: {e}", shard.name))),
            Err(_) => Err(BrokerError(format!("redis {what} on {}: no answer within {:?}", shard.name, self.io_timeout))),
        };
        self.metrics.engine.command(what, started.elapsed(), result.is_ok());
        result
    }

    /// Runs a SUBSCRIBE or UNSUBSCRIBE and waits until Redis has applied it. fred resolves
    /// those commands once written (their replies come out of band), so without this a
    /// publish right after `subscribe` could reach Redis first and be missed. A PING on the
    /// same connection is answered only after Redis processed what was sent before it.
    async fn confirmed(
        &self,
        what: &str,
        shard: &Shard,
        command: impl Future<Output = Result<(), fred::error::Error>>,
    ) -> Result<(), BrokerError> {
        self.bounded(what, shard, async {
            command.await?;
            // In a cluster fred sends a subscriber's (UN)SUBSCRIBEs to the node of its id's slot.
            let slot = fred::util::redis_keyslot(shard.subscriber.id().as_bytes());
            let same_node = Options { cluster_hash: Some(ClusterHash::Custom(slot)), ..Options::default() };
            shard.subscriber.with_options(&same_node).ping::<Value>(None).await.map(drop)
        })
        .await
    }

    async fn eval(&self, what: &str, shard: &Shard, script: &Script, keys: Vec<String>, args: Vec<Value>) -> Result<Value, BrokerError> {
        self.bounded(what, shard, script.evalsha_with_reload::<Value, _, _>(&shard.client, keys, args)).await
    }
}

impl Drop for RedisBroker {
    fn drop(&mut self) {
        // Closing the clients ends their connection tasks and the readers' streams.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            for shard in &self.shards {
                let (client, subscriber) = (shard.client.clone(), shard.subscriber.clone());
                rt.spawn(async move {
                    let _ = client.quit().await;
                    let _ = subscriber.quit().await;
                });
            }
        }
    }
}

#[async_trait]
impl Broker for RedisBroker {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn set_handler(&self, handler: Weak<dyn BrokerHandler>) {
        let _ = self.handler.set(handler);
    }

    async fn publish(&self, publication: Publication, opts: &PublishOptions) -> Result<PublishOutcome, BrokerError> {
        let channel = publication.channel.to_string();
        let shard = self.shard(&channel);
        let (size, ttl, meta_ttl) = match opts.history {
            Some(h) if h.size > 0 => (h.size, expire_secs(h.ttl), if h.meta_ttl.is_zero() { 0 } else { expire_secs(h.meta_ttl) }),
            _ => (0, 0, 0),
        };
        let idem_key = opts.idempotency_key.as_deref().unwrap_or("");
        let idem_ttl = if opts.idempotency_key.is_some() { expire_secs(IDEMPOTENCY_WINDOW) } else { 0 };
        let keys = vec![self.keys.stream(&channel), self.keys.meta(&channel), self.keys.idempotency(&channel, idem_key)];
        let args = vec![
            bytes(wire::publication_body(&publication)),
            text(size),
            text(ttl),
            text(meta_ttl),
            text(new_epoch()),
            text(self.keys.pubsub(&channel)),
            text(idem_ttl),
        ];
        let reply = self.eval("publish", shard, &self.scripts.publish, keys, args).await?;
        let parts = match &reply {
            Value::Array(parts) if parts.len() == 2 => parts,
            other => return Err(bad_reply("publish", other)),
        };
        let duplicate = parts[0].as_i64() == Some(1);
        if !duplicate {
            self.metrics.engine.messages_published.fetch_add(1, Ordering::Relaxed);
        }
        let position = parts[1].as_str().ok_or_else(|| bad_reply("publish", &reply))?;
        Ok(PublishOutcome { position: parse_position(&position), duplicate })
    }

    async fn publish_join_leave(&self, channel: &str, info: &ClientInfo, join: bool) -> Result<(), BrokerError> {
        let shard = self.shard(channel);
        let message = bytes(wire::join_leave_message(channel, info, join));
        self.bounded("PUBLISH join/leave", shard, shard.client.publish::<i64, _, _>(self.keys.pubsub(channel), message)).await?;
        self.metrics.engine.messages_published.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn subscribe(&self, channel: &str) -> Result<(), BrokerError> {
        let shard = self.shard(channel);
        self.confirmed("SUBSCRIBE", shard, shard.subscriber.subscribe(self.keys.pubsub(channel))).await
    }

    async fn unsubscribe(&self, channel: &str) -> Result<(), BrokerError> {
        let shard = self.shard(channel);
        self.confirmed("UNSUBSCRIBE", shard, shard.subscriber.unsubscribe(self.keys.pubsub(channel))).await
    }

    async fn history(&self, channel: &str, filter: &HistoryFilter, meta_ttl: Duration) -> Result<HistoryPage, HistoryError> {
        let shard = self.shard(channel);
        let meta_ttl = if meta_ttl.is_zero() { 0 } else { expire_secs(meta_ttl) };
        let (has_since, since_epoch, since_offset) = match &filter.since {
            Some(s) => ("1", s.epoch.as_str(), s.offset),
            None => ("0", "", 0),
        };
        let limit = filter.limit.min(i32::MAX as usize);
        let args = vec![
            text(new_epoch()),
            text(meta_ttl),
            text(has_since),
            text(since_epoch),
            text(since_offset),
            text(limit),
            text(if filter.reverse { "1" } else { "0" }),
        ];
        let keys = vec![self.keys.stream(channel), self.keys.meta(channel)];
        let reply = self.eval("history", shard, &self.scripts.history, keys, args).await?;
        let Value::Array(mut parts) = reply else { return Err(bad_reply("history", &reply).into()) };
        if parts.len() != 3 {
            return Err(bad_reply("history", &Value::Array(parts)).into());
        }
        let entries = parts.pop().map(Value::into_array).unwrap_or_default();
        let epoch = parts.pop().and_then(Value::into_string).unwrap_or_default();
        let top = parts.pop().and_then(|v| v.as_u64()).unwrap_or(0);
        if let Some(since) = &filter.since {
            // An empty epoch is any epoch (Centrifugo's rule), as the script reads it too.
            if !since.epoch.is_empty() && since.epoch != epoch {
                return Err(HistoryError::EpochMismatch);
            }
            if since.offset > top {
                return Err(HistoryError::FutureOffset);
            }
        }
        let mut publications = Vec::with_capacity(entries.len());
        for entry in entries {
            let raw = entry.as_bytes().unwrap_or_default();
            match wire::decode_message(raw) {
                Ok(wire::Message::Publication { publication, .. }) => publications.push(Arc::new(publication)),
                Ok(_) => return Err(BrokerError("redis history: an entry is not a publication".into()).into()),
                Err(e) => return Err(BrokerError(e.to_string()).into()),
            }
        }
        Ok(HistoryPage { publications, position: StreamPosition { offset: top, epoch } })
    }

    async fn remove_history(&self, channel: &str) -> Result<(), BrokerError> {
        let shard = self.shard(channel);
        self.bounded("DEL stream", shard, shard.client.del::<i64, _>(self.keys.stream(channel))).await?;
        Ok(())
    }

    async fn add_presence(&self, channel: &str, info: &ClientInfo) -> Result<(), BrokerError> {
        let shard = self.shard(channel);
        let expires_at = unix_ms().saturating_add(self.presence_ttl.as_millis() as u64);
        let keys = vec![self.keys.presence_expire(channel), self.keys.presence_data(channel)];
        let args =
            vec![text(&info.client), bytes(wire::presence_value(info)), text(expires_at), text(expire_secs(self.presence_ttl))];
        self.eval("presence add", shard, &self.scripts.presence_add, keys, args).await?;
        Ok(())
    }

    async fn remove_presence(&self, channel: &str, client: &str) -> Result<(), BrokerError> {
        let shard = self.shard(channel);
        let keys = vec![self.keys.presence_expire(channel), self.keys.presence_data(channel)];
        self.eval("presence remove", shard, &self.scripts.presence_remove, keys, vec![text(client)]).await?;
        Ok(())
    }

    async fn presence(&self, channel: &str) -> Result<BTreeMap<String, ClientInfo>, BrokerError> {
        let shard = self.shard(channel);
        let keys = vec![self.keys.presence_expire(channel), self.keys.presence_data(channel)];
        let reply = self.eval("presence", shard, &self.scripts.presence_get, keys, vec![text(unix_ms())]).await?;
        let flat = reply.into_array();
        let mut out = BTreeMap::new();
        for pair in flat.chunks(2) {
            let [client, value] = pair else { return Err(BrokerError("redis presence: odd HGETALL reply".into())) };
            let client = client.as_str().map(|c| c.to_string()).unwrap_or_default();
            let info = wire::decode_presence(value.as_bytes().unwrap_or_default()).map_err(|e| BrokerError(e.to_string()))?;
            out.insert(client, info);
        }
        Ok(out)
    }

    async fn presence_stats(&self, channel: &str) -> Result<PresenceStats, BrokerError> {
        let presence = self.presence(channel).await?;
        let users: HashSet<&str> = presence.values().map(|i| i.user.as_str()).collect();
        Ok(PresenceStats { num_clients: presence.len() as u32, num_users: users.len() as u32 })
    }

    async fn control(&self, control: Control) -> Result<(), BrokerError> {
        let shard = &self.shards[0];
        let message = bytes(wire::control_message(&control));
        self.bounded("PUBLISH control", shard, shard.client.publish::<i64, _, _>(self.keys.control(), message)).await?;
        self.metrics.engine.messages_published.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn health(&self) -> Result<(), BrokerError> {
        for shard in &self.shards {
            self.bounded("PING", shard, shard.client.ping::<Value>(None)).await?;
        }
        Ok(())
    }
}

impl ShardReader {
    /// Delivers this shard's messages until the broker is dropped.
    pub async fn run(mut self) {
        loop {
            tokio::select! {
                message = self.messages.recv() => match message {
                    Ok(m) => self.dispatch(&m),
                    Err(RecvError::Lagged(lost)) => {
                        self.metrics.engine.pubsub_errors.inc("lagged");
                        tracing::error!(shard = %self.name, lost, "redis: the reader fell behind and lost messages");
                    }
                    Err(RecvError::Closed) => break,
                },
                reconnect = self.reconnects.recv() => match reconnect {
                    Ok(_) | Err(RecvError::Lagged(_)) => {
                        self.metrics.engine.pubsub_reconnects.fetch_add(1, Ordering::Relaxed);
                        self.resubscribe().await;
                    }
                    Err(RecvError::Closed) => break,
                },
            }
        }
        tracing::debug!(shard = %self.name, "redis reader stopped");
    }

    fn dispatch(&self, m: &fred::types::Message) {
        let Some(handler) = self.handler.get().and_then(Weak::upgrade) else { return };
        let Some(raw) = m.value.as_bytes() else { return };
        self.metrics.engine.messages_received.fetch_add(1, Ordering::Relaxed);
        let from_control = *m.channel == *self.control;
        match wire::decode_message(raw) {
            Ok(wire::Message::Control(c)) if from_control => handler.handle_control(c),
            Ok(wire::Message::Publication { publication, epoch })
                if self.keys.channel_of(&m.channel) == Some(&*publication.channel) =>
            {
                handler.handle_publication(Arc::new(publication), &epoch)
            }
            Ok(wire::Message::JoinLeave { channel, info, join }) if self.keys.channel_of(&m.channel) == Some(&*channel) => {
                handler.handle_join_leave(&channel, &info, join)
            }
            Ok(_) => tracing::warn!(shard = %self.name, channel = %m.channel, "redis: a message on the wrong channel, dropped"),
            Err(e) => {
                self.metrics.engine.pubsub_errors.inc("decode");
                tracing::warn!(shard = %self.name, channel = %m.channel, error = %e, "redis: dropped");
            }
        }
    }

    /// After a reconnect: SUBSCRIBE again to every channel this connection had, retrying
    /// (with a growing pause, up to [`RESUBSCRIBE_MAX_PAUSE`]) until Redis takes it; then
    /// every channel's positioned subscribers are told to recover what they may have
    /// missed while the connection was down (Centrifugo's insufficient-state path).
    async fn resubscribe(&self) {
        let mut pause = RESUBSCRIBE_PAUSE;
        for attempt in 1u32.. {
            let channels: Vec<String> = self.subscriber.tracked_channels().iter().map(|c| c.to_string()).collect();
            if channels.is_empty() {
                return;
            }
            match tokio::time::timeout(self.io_timeout, self.subscriber.subscribe(channels.clone())).await {
                Ok(Ok(())) => {
                    tracing::info!(shard = %self.name, channels = channels.len(), "redis: resubscribed after a reconnect");
                    if let Some(handler) = self.handler.get().and_then(Weak::upgrade) {
                        channels.iter().filter_map(|c| self.keys.channel_of(c)).for_each(|c| handler.handle_gap(c));
                    }
                    return;
                }
                Ok(Err(e)) => {
                    self.metrics.engine.pubsub_errors.inc("resubscribe");
                    tracing::warn!(shard = %self.name, attempt, error = %e, "redis: resubscribe failed");
                }
                Err(_) => {
                    self.metrics.engine.pubsub_errors.inc("resubscribe");
                    tracing::warn!(shard = %self.name, attempt, "redis: resubscribe timed out");
                }
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(RESUBSCRIBE_MAX_PAUSE);
        }
    }
}
