//! The broker port: what the hub needs from an engine, so that the memory engine and,
//! later, Redis can sit behind the same hub without the hub or the session changing.
//!
//! Local and remote delivery share one path: the hub publishes *to* the broker and
//! receives every publication (its own included) *from* it through [`BrokerHandler`].
//! Server API actions that target connections (subscribe, disconnect …) travel the same
//! way as [`Control`] events, so with several nodes each node applies them locally.

use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;

use super::Control;
use crate::protocol::{Publication, StreamPosition};

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
    /// Drop a repeat of this key within the idempotency window.
    pub idempotency_key: Option<String>,
}

/// What a publish produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishOutcome {
    /// The publication's place in the stream (with history).
    pub position: Option<StreamPosition>,
}

/// Receives what the broker delivers to this node.
pub trait BrokerHandler: Send + Sync {
    /// A publication for the channel's local subscribers.
    fn handle_publication(&self, publication: Arc<Publication>);
    /// A control event for local connections.
    fn handle_control(&self, control: Control);
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
    /// This node has its first local subscriber of `channel`.
    async fn subscribe(&self, channel: &str) -> Result<(), BrokerError>;
    /// This node lost its last local subscriber of `channel`.
    async fn unsubscribe(&self, channel: &str) -> Result<(), BrokerError>;
    /// Sends a control event to every node (this one included).
    async fn control(&self, control: Control) -> Result<(), BrokerError>;
    /// Whether the engine answers (`/health`).
    async fn health(&self) -> Result<(), BrokerError>;
}
