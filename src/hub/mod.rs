//! The hub: channels, subscriptions, fan-out and the connection index, shared by every
//! transport. It knows no socket, framework, codec or engine type: it talks to engines
//! through the [`Broker`] port and to connections through their [`Outbox`].
//!
//! [`Hub`] is a cheap-clone handle. Publishing goes hub → broker → [`BrokerHandler`] →
//! fan-out, which wraps the publication once and pushes one pointer into each local
//! subscriber's outbox (for a large channel, on the fan-out lanes: [`fanout`]).

pub mod broker;
pub mod channel;
mod engine_subs;
pub mod fanout;
pub mod nodes;
pub mod outbox;
pub mod publication;
pub mod registry;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;

pub use broker::{
    Broker, BrokerError, BrokerHandler, HistoryError, HistoryFilter, HistoryOptions, HistoryPage, IDEMPOTENCY_WINDOW,
    PublishOptions, PublishOutcome,
};
pub use channel::{ChannelName, Channels, Resolved};
pub use nodes::{SurveyAnswer, SurveyQuery};
pub use outbox::{Drained, Outbox, Outgoing, Pushed};
pub use publication::{Coalesce, SharedPublication};
pub use registry::{Registry, StreamState, Subscriber};

use crate::config::Config;
use crate::metrics::Metrics;
use crate::protocol::{ClientError, ClientInfo, Disconnect, PresenceStats, Publication, Push, StreamPosition};

/// Why a hub operation failed. Each variant maps to one client error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The namespace is not configured.
    #[error("unknown channel")]
    UnknownChannel,
    /// The request is malformed.
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// Not allowed by the channel's options.
    #[error("permission denied")]
    PermissionDenied,
    /// The feature is off for this channel.
    #[error("not available")]
    NotAvailable,
    /// A limit was reached.
    #[error("limit exceeded")]
    LimitExceeded,
    /// The engine failed.
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

impl Error {
    /// The wire error for this failure (the one mapping from hub errors to codes).
    pub fn client_error(&self) -> ClientError {
        match self {
            Self::UnknownChannel => ClientError::UnknownChannel,
            Self::BadRequest(_) => ClientError::BadRequest,
            Self::PermissionDenied => ClientError::PermissionDenied,
            Self::NotAvailable => ClientError::NotAvailable,
            Self::LimitExceeded => ClientError::LimitExceeded,
            Self::Broker(_) => ClientError::Internal,
        }
    }
}

/// Which connections a server API action targets: a user's, narrowed to one client or session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    /// The user.
    pub user: String,
    /// Only this client id (empty = all of the user's).
    pub client: String,
    /// Only this session id (empty = all).
    pub session: String,
}

/// A server-side subscription made through the server API.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerSubscribe {
    /// The channel.
    pub channel: String,
    /// Channel info for presence and publications.
    pub info: Option<Bytes>,
    /// Data sent to the client in the subscribe push.
    pub data: Option<Bytes>,
    /// When the subscription expires (unix seconds).
    pub expire_at: Option<u64>,
    /// Position to recover from.
    pub recover_since: Option<StreamPosition>,
}

/// Actions on connections, issued by the server API and applied on every node.
#[derive(Debug, Clone, PartialEq)]
pub enum Control {
    /// Subscribe the targeted connections.
    Subscribe(Target, ServerSubscribe),
    /// Unsubscribe them from a channel.
    Unsubscribe(Target, String),
    /// Disconnect them, except the client ids in the whitelist.
    Disconnect(Target, Vec<String>, Disconnect),
    /// A positioned subscription of this connection lost its place in the channel's
    /// stream (raised by fan-out, never sent through the broker).
    InsufficientState(String),
    /// Update their credentials' expiry (or expire them now).
    Refresh {
        /// Who.
        target: Target,
        /// Close them as expired.
        expired: bool,
        /// New expiry (unix seconds).
        expire_at: Option<u64>,
        /// New connection info.
        info: Option<Bytes>,
    },
    /// A node's announcement of itself (every [`nodes::ANNOUNCE_INTERVAL`]), or of its
    /// graceful shutdown (`leaving`).
    Node {
        /// The node.
        info: NodeInfo,
        /// It is shutting down.
        leaving: bool,
    },
    /// A question for every node; each answers node `from` with a [`Control::SurveyReply`].
    Survey {
        /// The asker's survey id.
        id: u64,
        /// The asking node.
        from: String,
        /// What it asks.
        query: SurveyQuery,
    },
    /// Node `from`'s answer to survey `id` of node `to`.
    SurveyReply {
        /// The survey.
        id: u64,
        /// The asking node.
        to: String,
        /// The answering node.
        from: String,
        /// Its answer.
        answer: SurveyAnswer,
    },
}

impl Control {
    fn target(&self) -> Option<&Target> {
        match self {
            Self::Subscribe(t, _) | Self::Unsubscribe(t, _) | Self::Disconnect(t, _, _) => Some(t),
            Self::Refresh { target, .. } => Some(target),
            Self::InsufficientState(_) | Self::Node { .. } | Self::Survey { .. } | Self::SurveyReply { .. } => None,
        }
    }
}

/// A live connection as the hub indexes it.
#[derive(Debug, Clone)]
pub struct ConnEntry {
    /// Numeric id used in the registry.
    pub conn: u64,
    /// Client id (the session's own, shared).
    pub client: Arc<str>,
    /// User id (the session's own, shared).
    pub user: Arc<str>,
    /// Session id (emulation and unidirectional transports).
    pub session: uuid::Uuid,
    /// Its outbox.
    pub outbox: Arc<Outbox>,
}

#[derive(Default)]
struct Conns {
    by_client: HashMap<Arc<str>, ConnEntry>,
    by_user: HashMap<Arc<str>, Vec<Arc<str>>>,
}

/// Why a history read failed: a hub error, or a position the stream cannot serve (112).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryRead {
    /// Unknown channel, history off, engine failure …
    #[error(transparent)]
    Hub(Error),
    /// Wrong epoch or an offset beyond the top.
    #[error(transparent)]
    Position(HistoryError),
}

impl HistoryRead {
    /// The wire error.
    pub fn client_error(&self) -> ClientError {
        match self {
            Self::Hub(e) => e.client_error(),
            Self::Position(_) => ClientError::UnrecoverablePosition,
        }
    }
}

/// What to publish.
#[derive(Debug, Clone, Default)]
pub struct PublishRequest {
    /// The channel.
    pub channel: String,
    /// The payload.
    pub data: Bytes,
    /// Publisher info (client publishes).
    pub info: Option<ClientInfo>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// Leave it out of history.
    pub skip_history: bool,
    /// Idempotency key.
    pub idempotency_key: Option<String>,
    /// Delta-eligible (the API's `delta`; the namespace's `delta_publish` makes every
    /// publication so): subscribers that negotiated delta compression may get a patch.
    pub delta: bool,
}

/// Node information for the `info` API (and each node's announcement to the others).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeInfo {
    /// Node id.
    pub uid: String,
    /// Node name.
    pub name: String,
    /// Connections.
    pub num_clients: u64,
    /// Distinct users.
    pub num_users: u64,
    /// Channels with local subscribers.
    pub num_channels: u64,
    /// Subscriptions.
    pub num_subs: u64,
    /// Seconds since start.
    pub uptime: u64,
}

/// What answers `/emulation` requests for this node's sessions: the request body as
/// posted and whether it is Protobuf → the HTTP status to answer.
pub type EmulationSink = Box<dyn Fn(&[u8], bool) -> u16 + Send + Sync>;

struct Inner {
    config: Arc<Config>,
    channels: Channels,
    registry: Registry,
    engine_subs: engine_subs::EngineSubs,
    broker: Arc<dyn Broker>,
    metrics: Arc<Metrics>,
    conns: Mutex<Conns>,
    nodes: nodes::Nodes,
    emulation: std::sync::OnceLock<EmulationSink>,
    node_id: String,
    started: Instant,
    next_conn: AtomicU64,
    shutting_down: AtomicBool,
}

/// The shared core; clone freely.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("node", &self.inner.node_id).field("broker", &self.inner.broker.name()).finish()
    }
}

impl Hub {
    /// Builds the hub on an engine and registers it as the engine's handler.
    pub fn new(config: Arc<Config>, broker: Arc<dyn Broker>, metrics: Arc<Metrics>) -> Self {
        let inner = Arc::new(Inner {
            channels: Channels::new(&config.channel),
            config,
            registry: Registry::default(),
            engine_subs: engine_subs::EngineSubs::default(),
            broker,
            metrics,
            conns: Mutex::new(Conns::default()),
            nodes: nodes::Nodes::default(),
            emulation: std::sync::OnceLock::new(),
            node_id: uuid::Uuid::new_v4().to_string(),
            started: Instant::now(),
            next_conn: AtomicU64::new(1),
            shutting_down: AtomicBool::new(false),
        });
        let handler: Arc<dyn BrokerHandler> = inner.clone();
        inner.broker.set_handler(Arc::downgrade(&handler));
        Self { inner }
    }

    /// The configuration.
    pub fn config(&self) -> &Arc<Config> {
        &self.inner.config
    }

    /// Channel rules.
    pub fn channels(&self) -> &Channels {
        &self.inner.channels
    }

    /// Metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// The engine's short name (`memory`, `redis`).
    pub fn engine_name(&self) -> &'static str {
        self.inner.broker.name()
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.inner.node_id
    }

    /// A fresh numeric connection id.
    pub fn next_conn_id(&self) -> u64 {
        self.inner.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    /// Whether shutdown has begun (new connections are refused).
    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::Relaxed)
    }

    fn conns(&self) -> MutexGuard<'_, Conns> {
        self.inner.conns()
    }

    /// Indexes an authenticated connection; fails with `LimitExceeded` over the
    /// per-node or per-user connection limit.
    pub fn register(&self, entry: ConnEntry) -> Result<(), Error> {
        let cfg = &self.inner.config.client;
        let mut conns = self.conns();
        if cfg.connection_limit > 0 && conns.by_client.len() >= cfg.connection_limit {
            return Err(Error::LimitExceeded);
        }
        let user_conns = conns.by_user.get(&entry.user).map_or(0, Vec::len);
        if cfg.user_connection_limit > 0 && !entry.user.is_empty() && user_conns >= cfg.user_connection_limit {
            return Err(Error::LimitExceeded);
        }
        // Most users hold one connection: room for one (a first push would make four).
        conns.by_user.entry(entry.user.clone()).or_insert_with(|| Vec::with_capacity(1)).push(entry.client.clone());
        conns.by_client.insert(entry.client.clone(), entry);
        Ok(())
    }

    /// Removes a connection from the index.
    pub fn unregister(&self, client: &str) {
        let mut conns = self.conns();
        if let Some(entry) = conns.by_client.remove(client)
            && let Some(list) = conns.by_user.get_mut(&entry.user)
        {
            list.retain(|c| **c != *client);
            if list.is_empty() {
                conns.by_user.remove(&entry.user);
            }
        }
    }

    /// Adds a local subscriber, once this node is subscribed to the channel at the engine
    /// (the first subscriber subscribes it; later ones wait for that: see [`engine_subs`]).
    /// `then` runs under the registry's lock right after the insert, before any
    /// publication can reach the new subscriber: the session queues its subscribe reply
    /// there, so the reply always precedes the channel's publications. On an engine
    /// failure nobody is added and `then` does not run.
    pub async fn subscribe(&self, channel: &str, sub: Subscriber, then: impl FnOnce()) -> Result<(), Error> {
        let slot = self.inner.engine_subs.slot(channel);
        let result = async {
            let mut subscribed = slot.lock().await;
            if !*subscribed {
                self.inner.broker.subscribe(channel).await?;
                *subscribed = true;
            }
            self.inner.registry.add(channel, sub, then);
            Ok(())
        }
        .await;
        self.inner.engine_subs.release(channel, slot);
        result
    }

    /// Removes a local subscriber; the last one unsubscribes the node at the engine.
    /// Runs after any subscribe to the channel that came before it.
    pub async fn unsubscribe(&self, channel: &str, conn: u64) {
        let slot = self.inner.engine_subs.slot(channel);
        {
            let mut subscribed = slot.lock().await;
            if self.inner.registry.remove(channel, conn) && *subscribed {
                // Unsubscribed whatever the engine answers: a failed unsubscribe leaves at
                // most a subscription nobody here listens to, which the next subscribe
                // (a no-op at the engine) or a reconnect replaces.
                *subscribed = false;
                if let Err(e) = self.inner.broker.unsubscribe(channel).await {
                    tracing::warn!(channel, error = %e, "broker unsubscribe failed");
                }
            }
        }
        self.inner.engine_subs.release(channel, slot);
    }

    /// Publishes: resolves the channel, hands the publication to the engine and returns
    /// its stream position (with history).
    pub async fn publish(&self, req: PublishRequest) -> Result<PublishOutcome, Error> {
        let (_, resolved) = self.inner.channels.parse(&req.channel)?;
        let opts = PublishOptions {
            history: (!req.skip_history && resolved.options.history_enabled()).then(|| HistoryOptions {
                size: resolved.options.history_size,
                ttl: resolved.options.history_ttl.0,
                meta_ttl: resolved.options.history_meta_ttl.unwrap_or(self.inner.config.channel.history_meta_ttl).0,
            }),
            idempotency_key: req.idempotency_key,
        };
        let publication = Publication {
            channel: Arc::from(req.channel.as_str()),
            data: req.data,
            info: req.info,
            offset: 0,
            tags: req.tags,
            // On the wire `delta` says the data *is* a patch: fan-out makes patches.
            delta: false,
            delta_eligible: req.delta || resolved.options.delta_publish,
        };
        let outcome = self.inner.broker.publish(publication, &opts).await?;
        if !outcome.duplicate {
            self.inner.metrics.publications.fetch_add(1, Ordering::Relaxed);
        }
        Ok(outcome)
    }

    /// The meta TTL of a channel's stream (namespace option, else `channel.history_meta_ttl`).
    fn meta_ttl(&self, resolved: &Resolved) -> std::time::Duration {
        resolved.options.history_meta_ttl.unwrap_or(self.inner.config.channel.history_meta_ttl).0
    }

    /// Reads a channel's history. `NotAvailable` when the channel keeps none.
    pub async fn history(&self, channel: &str, filter: &HistoryFilter) -> Result<HistoryPage, HistoryRead> {
        let (_, resolved) = self.inner.channels.parse(channel).map_err(HistoryRead::Hub)?;
        if !resolved.options.history_enabled() {
            return Err(HistoryRead::Hub(Error::NotAvailable));
        }
        let meta_ttl = self.meta_ttl(resolved);
        self.inner.broker.history(channel, filter, meta_ttl).await.map_err(|e| match e {
            HistoryError::Broker(b) => HistoryRead::Hub(Error::Broker(b)),
            other => HistoryRead::Position(other),
        })
    }

    /// Empties a channel's history, keeping its position.
    pub async fn remove_history(&self, channel: &str) -> Result<(), Error> {
        let (_, resolved) = self.inner.channels.parse(channel)?;
        if !resolved.options.history_enabled() {
            return Err(Error::NotAvailable);
        }
        Ok(self.inner.broker.remove_history(channel).await?)
    }

    /// Adds or refreshes a connection's presence in a channel.
    pub async fn add_presence(&self, channel: &str, info: &ClientInfo) -> Result<(), Error> {
        Ok(self.inner.broker.add_presence(channel, info).await?)
    }

    /// Removes a connection's presence from a channel.
    pub async fn remove_presence(&self, channel: &str, client: &str) -> Result<(), Error> {
        Ok(self.inner.broker.remove_presence(channel, client).await?)
    }

    /// Who is in a channel. `NotAvailable` when its namespace keeps no presence.
    pub async fn presence(&self, channel: &str) -> Result<BTreeMap<String, ClientInfo>, Error> {
        self.presence_enabled(channel)?;
        Ok(self.inner.broker.presence(channel).await?)
    }

    /// Presence counters. `NotAvailable` when the namespace keeps no presence.
    pub async fn presence_stats(&self, channel: &str) -> Result<PresenceStats, Error> {
        self.presence_enabled(channel)?;
        Ok(self.inner.broker.presence_stats(channel).await?)
    }

    fn presence_enabled(&self, channel: &str) -> Result<(), Error> {
        let (_, resolved) = self.inner.channels.parse(channel)?;
        if resolved.options.presence { Ok(()) } else { Err(Error::NotAvailable) }
    }

    /// Announces a join or leave to the channel's subscribers on every node.
    pub async fn join_leave(&self, channel: &str, info: &ClientInfo, join: bool) -> Result<(), Error> {
        Ok(self.inner.broker.publish_join_leave(channel, info, join).await?)
    }

    /// Sends a server API action to the targeted connections on every node.
    pub async fn control(&self, control: Control) -> Result<(), Error> {
        self.inner.broker.control(control).await?;
        Ok(())
    }

    /// Channels with local subscribers matching a glob `pattern` (`*`, `?`; empty = all).
    pub fn channels_matching(&self, pattern: &str) -> Vec<(String, usize)> {
        self.inner.channels_matching(pattern)
    }

    /// Channels with subscribers on any node matching `pattern`, with their subscriber
    /// counts summed over the nodes: this node's, and the other live nodes' answers to a
    /// survey (those that answer within [`nodes::SURVEY_TIMEOUT`]).
    pub async fn channels_everywhere(&self, pattern: &str) -> Result<Vec<(String, usize)>, Error> {
        let mut merged: BTreeMap<String, usize> = self.channels_matching(pattern).into_iter().collect();
        let Some((id, mut answers)) = self.inner.nodes.open_survey() else { return Ok(merged.into_iter().collect()) };
        let ask = Control::Survey { id, from: self.inner.node_id.clone(), query: SurveyQuery::Channels(pattern.to_owned()) };
        let asked = self.inner.broker.control(ask).await;
        if asked.is_ok() {
            let deadline = tokio::time::sleep(nodes::SURVEY_TIMEOUT);
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    answer = answers.recv() => match answer {
                        Some(SurveyAnswer::Channels(list)) => {
                            for (channel, n) in list {
                                *merged.entry(channel).or_default() += n;
                            }
                        }
                        Some(SurveyAnswer::Emulation(_)) => {}
                        None => break,
                    },
                    () = &mut deadline => {
                        tracing::warn!("channels survey: not every node answered in time");
                        break;
                    }
                }
            }
        }
        self.inner.nodes.close_survey(id);
        asked?;
        Ok(merged.into_iter().collect())
    }

    /// Numbers for the `info` API and metrics.
    pub fn info(&self) -> NodeInfo {
        self.inner.info()
    }

    /// This node and every other node heard from lately (the `info` API).
    pub fn nodes(&self) -> Vec<NodeInfo> {
        let mut nodes = vec![self.info()];
        nodes.extend(self.inner.nodes.live());
        nodes
    }

    /// Starts announcing this node to the others, every [`nodes::ANNOUNCE_INTERVAL`] until
    /// the hub is gone or shuts down. Call once, inside the runtime.
    pub fn start(&self) {
        let inner = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            loop {
                let Some(hub) = inner.upgrade() else { return };
                if hub.shutting_down.load(Ordering::Relaxed) {
                    return;
                }
                let broker = hub.broker.clone();
                let announce = Control::Node { info: hub.info(), leaving: false };
                drop(hub);
                if let Err(e) = broker.control(announce).await {
                    tracing::debug!(error = %e, "node announcement failed");
                }
                tokio::time::sleep(nodes::ANNOUNCE_INTERVAL).await;
            }
        });
    }

    /// Sets what answers `/emulation` requests for this node's sessions (forwarded ones
    /// included). The first call wins.
    pub fn set_emulation_sink(&self, sink: EmulationSink) {
        let _ = self.inner.emulation.set(sink);
    }

    /// Forwards an `/emulation` request to the node that owns its session; the status it
    /// answered, or None when that node is not known (or did not answer in time).
    pub async fn emulate_on(&self, node: &str, body: Bytes, protobuf: bool) -> Result<Option<u16>, Error> {
        if !self.inner.nodes.is_live(node) {
            return Ok(None);
        }
        let Some((id, mut answers)) = self.inner.nodes.open_survey_of(vec![node.to_owned()]) else { return Ok(None) };
        let ask = Control::Survey { id, from: self.inner.node_id.clone(), query: SurveyQuery::Emulation { body, protobuf } };
        let asked = self.inner.broker.control(ask).await;
        let answer = match asked {
            Ok(()) => tokio::time::timeout(nodes::SURVEY_TIMEOUT, answers.recv()).await.ok().flatten(),
            Err(_) => None,
        };
        self.inner.nodes.close_survey(id);
        asked?;
        Ok(match answer {
            Some(SurveyAnswer::Emulation(status)) => Some(status),
            _ => None,
        })
    }

    /// Tells the other nodes this one is leaving (graceful shutdown), so they stop
    /// listing it at once.
    pub async fn announce_leaving(&self) {
        let leaving = Control::Node { info: self.info(), leaving: true };
        if let Err(e) = self.inner.broker.control(leaving).await {
            tracing::warn!(error = %e, "could not tell the other nodes this one is leaving");
        }
    }

    /// Whether the engine answers.
    pub async fn health(&self) -> Result<(), Error> {
        Ok(self.inner.broker.health().await?)
    }

    /// Begins shutdown: refuse new connections and ask every connection to close with 3001
    /// after flushing what it has queued. Returns how many connections were asked.
    pub fn shutdown(&self) -> usize {
        self.inner.shutting_down.store(true, Ordering::Relaxed);
        let conns = self.conns();
        for entry in conns.by_client.values() {
            entry.outbox.close(Disconnect::SHUTDOWN);
        }
        conns.by_client.len()
    }

    /// Connections still open (authenticated ones).
    pub fn num_connections(&self) -> usize {
        self.conns().by_client.len()
    }
}

impl Inner {
    fn conns(&self) -> MutexGuard<'_, Conns> {
        // Each mutation is a pair of map operations done together; no panic can split them.
        self.conns.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn channels_matching(&self, pattern: &str) -> Vec<(String, usize)> {
        let mut list: Vec<_> = self.registry.channels().into_iter().filter(|(ch, _)| glob_match(pattern, ch)).collect();
        list.sort();
        list
    }

    fn info(&self) -> NodeInfo {
        let (num_channels, num_subs) = self.registry.totals();
        let conns = self.conns();
        NodeInfo {
            uid: self.node_id.clone(),
            name: format!("tidewire-{}", &self.node_id[..8]),
            num_clients: conns.by_client.len() as u64,
            num_users: conns.by_user.len() as u64,
            num_channels: num_channels as u64,
            num_subs: num_subs as u64,
            uptime: self.started.elapsed().as_secs(),
        }
    }

    /// Handles the node-to-node controls; false for the others.
    fn handle_node_control(&self, control: &Control) -> bool {
        match control {
            Control::Node { info, leaving } => {
                if info.uid != self.node_id {
                    self.nodes.heard(info.clone(), *leaving);
                }
            }
            Control::Survey { id, from, query } => {
                if *from == self.node_id {
                    return true; // answered locally by the asker
                }
                let answer = match query {
                    SurveyQuery::Channels(pattern) => SurveyAnswer::Channels(self.channels_matching(pattern)),
                    SurveyQuery::Emulation { body, protobuf } => {
                        // 404 (unknown session) when no transport here takes emulation.
                        SurveyAnswer::Emulation(self.emulation.get().map_or(404, |sink| sink(body, *protobuf)))
                    }
                };
                let reply = Control::SurveyReply { id: *id, to: from.clone(), from: self.node_id.clone(), answer };
                let broker = self.broker.clone();
                // Answered off the engine's delivery path, which must not wait on the engine.
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    runtime.spawn(async move {
                        if let Err(e) = broker.control(reply).await {
                            tracing::warn!(error = %e, "survey answer failed");
                        }
                    });
                }
            }
            Control::SurveyReply { id, to, from, answer } => {
                if *to == self.node_id {
                    self.nodes.answered(*id, from, answer.clone());
                }
            }
            _ => return false,
        }
        true
    }
}

impl BrokerHandler for Inner {
    fn handle_publication(&self, publication: Arc<Publication>, epoch: &str) {
        // One namespace lookup per publication (not per subscriber) for its coalescing window.
        let coalesce = self.channels.parse(&publication.channel).map_or_else(
            |_| Coalesce::default(),
            |(_, r)| Coalesce {
                max_delay_ms: u32::try_from(r.options.batch_max_delay.0.as_millis()).unwrap_or(u32::MAX),
                max_size: u32::try_from(r.options.batch_max_size).unwrap_or(u32::MAX),
            },
        );
        let shared = SharedPublication::in_stream(publication, epoch, coalesce);
        // A full outbox turns its connection slow by itself; the writer reports it.
        self.registry.fan_out(&shared, self.config.client.queue_max_size);
    }

    fn handle_join_leave(&self, channel: &str, info: &ClientInfo, join: bool) {
        let push = if join {
            Push::Join { channel: channel.to_owned(), info: info.clone() }
        } else {
            Push::Leave { channel: channel.to_owned(), info: info.clone() }
        };
        self.registry.for_each(channel, |sub| {
            if sub.join_leave {
                sub.push(Outgoing::Push(Box::new(push.clone())));
            }
        });
    }

    fn handle_gap(&self, channel: &str) {
        self.registry.for_each(channel, |sub| {
            if sub.stream.as_ref().is_some_and(|s| s.positioned()) {
                sub.push(Outgoing::Control(Box::new(Control::InsufficientState(channel.to_owned()))));
            }
        });
    }

    fn handle_control(&self, control: Control) {
        if self.handle_node_control(&control) {
            return;
        }
        let Some(target) = control.target() else { return };
        let conns = self.conns();
        let Some(clients) = conns.by_user.get(target.user.as_str()) else { return };
        for client in clients {
            let Some(entry) = conns.by_client.get(client) else { continue };
            if (!target.client.is_empty() && *target.client != *entry.client)
                || (!target.session.is_empty() && !session_is(entry.session, &target.session))
            {
                continue;
            }
            if let Control::Disconnect(_, whitelist, disconnect) = &control {
                // Closed here, not queued for the session: a queued disconnect let the
                // publications fanned out after the API call returned reach the client
                // before the close (they were written with the batch the control came in).
                if !whitelist.iter().any(|c| **c == *entry.client) {
                    entry.outbox.close(disconnect.clone());
                }
                continue;
            }
            let _ = entry.outbox.push(Outgoing::Control(Box::new(control.clone())));
        }
    }
}

/// Whether `id` is the session id `text` names (its hyphenated form, either case).
fn session_is(id: uuid::Uuid, text: &str) -> bool {
    id.hyphenated().encode_lower(&mut uuid::Uuid::encode_buffer()).eq_ignore_ascii_case(text)
}

/// Glob match with `*` (any run) and `?` (one char); an empty pattern matches everything.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    if pattern.is_empty() {
        return true;
    }
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
pub(crate) mod tests;
