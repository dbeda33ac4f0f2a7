//! The broker port: what the hub needs from an engine, so that the memory engine and,
//! later, Redis can sit behind the same hub without the hub or the session changing.
//!
//! Local and remote delivery share one path: the hub publishes *to* the broker and
//! receives every publication (its own included) *from* it through [`BrokerHandler`].
//! Join/leave events and server API actions that target connections (subscribe,
//! disconnect …) travel the same way, so with several nodes each node applies them locally.
//!
//! History is a per-channel stream: every publication gets the next offset (1, 2, 3 …)
//! within the stream's epoch; the epoch changes when the stream is lost (meta expired,
//! engine restarted), which tells recovering clients that offsets no longer line up.
//! A Redis adapter implements the same calls with one Lua script per publish.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;

use super::Control;
use crate::protocol::{ClientInfo, PresenceStats, Publication, StreamPosition};

/// An engine failure (Redis down, timeout …). Maps to error 100 / disconnect 3004.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("broker: {0}")]
pub struct BrokerError(pub String);

/// History retention for one publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryOptions {
    /// Publications kept.
    pub size: usize,
    /// How long each is kept.
    pub ttl: Duration,
    /// How long the stream position lives after the last publication.
    pub meta_ttl: Duration,
}

/// Per-publish options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishOptions {
    /// Keep the publication in the channel's history stream.
    pub history: Option<HistoryOptions>,
    /// Drop a repeat of this key within [`IDEMPOTENCY_WINDOW`].
    pub idempotency_key: Option<String>,
}

/// How long a publish's idempotency key is remembered: 5 minutes, as Centrifugo.
pub const IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(300);

/// What a publish produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishOutcome {
    /// The publication's place in the stream (with history).
    pub position: Option<StreamPosition>,
    /// True when the idempotency key was seen before: nothing was delivered again.
    pub duplicate: bool,
}

/// Which part of a stream to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryFilter {
    /// Only publications after (forward) or before (reverse) this offset. The epoch must
    /// match the stream's, or the read fails with [`HistoryError::EpochMismatch`].
    pub since: Option<StreamPosition>,
    /// At most this many publications (0 = position only).
    pub limit: usize,
    /// Newest first.
    pub reverse: bool,
}

/// A history read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistoryPage {
    /// Publications in the requested order.
    pub publications: Vec<Arc<Publication>>,
    /// The stream's top: offset of its latest publication and its epoch.
    pub position: StreamPosition,
}

/// Why a history read could not be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    /// `since` names another epoch: the stream was lost since the client saw it.
    #[error("epoch mismatch")]
    EpochMismatch,
    /// `since` is beyond the stream's top.
    #[error("offset beyond the stream top")]
    FutureOffset,
    /// The engine failed.
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

/// Receives what the broker delivers to this node.
pub trait BrokerHandler: Send + Sync {
    /// A publication for the channel's local subscribers; `epoch` names the history
    /// stream its offset belongs to (empty when it has none).
    fn handle_publication(&self, publication: Arc<Publication>, epoch: &str);
    /// A client joined (`join = true`) or left a channel.
    fn handle_join_leave(&self, channel: &str, info: &ClientInfo, join: bool);
    /// A control event for local connections.
    fn handle_control(&self, control: Control);
    /// Publications of `channel` may have been lost on the way to this node (the engine's
    /// connection dropped and was re-established): positioned subscribers must recover.
    fn handle_gap(&self, channel: &str);
}

/// An engine behind the hub.
#[async_trait]
pub trait Broker: Send + Sync + 'static {
    /// Short name for logs (`memory`, `redis`).
    fn name(&self) -> &'static str;
    /// Sets where deliveries go. Called once by the hub it serves.
    fn set_handler(&self, handler: Weak<dyn BrokerHandler>);
    /// Publishes (assigning an offset when history is on) and delivers to every node.
    async fn publish(&self, publication: Publication, opts: &PublishOptions) -> Result<PublishOutcome, BrokerError>;
    /// Delivers a join or leave event to the channel's subscribers on every node.
    async fn publish_join_leave(&self, channel: &str, info: &ClientInfo, join: bool) -> Result<(), BrokerError>;
    /// This node has its first local subscriber of `channel`.
    async fn subscribe(&self, channel: &str) -> Result<(), BrokerError>;
    /// This node lost its last local subscriber of `channel`.
    async fn unsubscribe(&self, channel: &str) -> Result<(), BrokerError>;
    /// Reads a channel's history stream. `meta_ttl` keeps (or creates) the stream's
    /// position so that a reader gets a stable epoch even before the first publication.
    async fn history(&self, channel: &str, filter: &HistoryFilter, meta_ttl: Duration) -> Result<HistoryPage, HistoryError>;
    /// Empties a channel's history, keeping its position (offset and epoch).
    async fn remove_history(&self, channel: &str) -> Result<(), BrokerError>;
    /// Adds or refreshes a presence entry.
    async fn add_presence(&self, channel: &str, info: &ClientInfo) -> Result<(), BrokerError>;
    /// Removes a presence entry.
    async fn remove_presence(&self, channel: &str, client: &str) -> Result<(), BrokerError>;
    /// Who is in the channel: client id → info.
    async fn presence(&self, channel: &str) -> Result<BTreeMap<String, ClientInfo>, BrokerError>;
    /// Presence counters.
    async fn presence_stats(&self, channel: &str) -> Result<PresenceStats, BrokerError>;
    /// Sends a control event to every node (this one included).
    async fn control(&self, control: Control) -> Result<(), BrokerError>;
    /// Whether the engine answers (`/health`).
    async fn health(&self) -> Result<(), BrokerError>;
}
