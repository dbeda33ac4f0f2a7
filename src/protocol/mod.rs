//! The protocol model: commands a client sends, replies and pushes the server sends, and
//! the publication and client-info records they carry. One model for every codec: the
//! Centrifugo JSON (`json`) and Protobuf (`protobuf`) codecs and postcard (`native`) translate it to bytes.
//!
//! This room depends on nothing else in the crate and does no I/O. Payloads (`data`,
//! `info`) are opaque [`Bytes`]: raw JSON text for JSON clients, raw bytes for binary ones.

pub mod codec;
pub mod codes;
pub mod framing;
pub mod fossil;
pub mod json;
pub mod native;
pub mod protobuf;

use std::collections::BTreeMap;

use bytes::Bytes;

pub use codes::{ClientError, Disconnect, UnsubscribeReason};

/// One command from a client. `id` is echoed in the reply; 0 means "expects no reply".
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// Correlation id echoed in the reply.
    pub id: u32,
    /// What the client asks for.
    pub body: CommandBody,
}

/// The command kinds of protocol v2.
#[derive(Debug, Clone, PartialEq)]
pub enum CommandBody {
    /// Authenticate and open the session.
    Connect(ConnectRequest),
    /// Subscribe to a channel.
    Subscribe(SubscribeRequest),
    /// Leave a channel.
    Unsubscribe(ChannelRequest),
    /// Publish into a channel.
    Publish(PublishRequest),
    /// Read a channel's presence.
    Presence(ChannelRequest),
    /// Read a channel's presence counters.
    PresenceStats(ChannelRequest),
    /// Read a channel's history.
    History(HistoryRequest),
    /// An explicit ping command (answered with an empty result).
    Ping,
    /// An asynchronous message to the server (no reply).
    Send(SendRequest),
    /// A remote procedure call.
    Rpc(RpcRequest),
    /// Refresh the connection token.
    Refresh(RefreshRequest),
    /// Refresh a subscription token.
    SubRefresh(SubRefreshRequest),
    /// An empty command `{}`: the client's pong.
    Empty,
    /// An object carrying no known command.
    Unknown,
}

impl CommandBody {
    /// The command's name, for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Connect(_) => "connect",
            Self::Subscribe(_) => "subscribe",
            Self::Unsubscribe(_) => "unsubscribe",
            Self::Publish(_) => "publish",
            Self::Presence(_) => "presence",
            Self::PresenceStats(_) => "presence_stats",
            Self::History(_) => "history",
            Self::Ping => "ping",
            Self::Send(_) => "send",
            Self::Rpc(_) => "rpc",
            Self::Refresh(_) => "refresh",
            Self::SubRefresh(_) => "sub_refresh",
            Self::Empty => "pong",
            Self::Unknown => "unknown",
        }
    }
}

/// `connect` request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConnectRequest {
    /// Connection JWT (empty when the client has none).
    pub token: String,
    /// Custom connect data.
    pub data: Option<Bytes>,
    /// Server-side subscriptions the client wants recovered: channel → position.
    pub subs: BTreeMap<String, SubscribeRequest>,
    /// Client name (≤ 16 chars by convention).
    pub name: String,
    /// Client version (≤ 64 chars by convention).
    pub version: String,
    /// Emulated headers.
    pub headers: BTreeMap<String, String>,
}

/// `subscribe` request (also the per-channel entry of `ConnectRequest.subs`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubscribeRequest {
    /// The channel.
    pub channel: String,
    /// Subscription JWT (required for `$` channels).
    pub token: String,
    /// Ask for missed publications since `offset`/`epoch`.
    pub recover: bool,
    /// Stream epoch the client last saw.
    pub epoch: String,
    /// Stream offset the client last saw.
    pub offset: u64,
    /// Custom subscribe data.
    pub data: Option<Bytes>,
    /// Ask for stream positioning.
    pub positioned: bool,
    /// Ask for recovery support.
    pub recoverable: bool,
    /// Ask for join/leave pushes.
    pub join_leave: bool,
    /// Delta compression type requested (`"fossil"` or empty).
    pub delta: String,
    /// Feature flags (bit 1 = error 112 instead of `recovered: false`).
    pub flag: i64,
    /// Subscription type (`type` on the wire): 0 stream; 1–3 map, 4 shared poll
    /// (Centrifugo v6.8 experimental, not built here: refused with 108).
    pub kind: i32,
}

/// A request naming only a channel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelRequest {
    /// The channel.
    pub channel: String,
}

/// `publish` request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PublishRequest {
    /// The channel.
    pub channel: String,
    /// The payload.
    pub data: Option<Bytes>,
}

/// A position in a channel's history stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct StreamPosition {
    /// Offset of the last publication (0 = none yet).
    pub offset: u64,
    /// Identity of the stream; changes when the stream is lost.
    pub epoch: String,
}

/// `history` request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistoryRequest {
    /// The channel.
    pub channel: String,
    /// 0 = position only, -1 = everything up to the server's cap.
    pub limit: i32,
    /// Return publications after this position.
    pub since: Option<StreamPosition>,
    /// Newest first.
    pub reverse: bool,
}

/// `send` request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SendRequest {
    /// The payload.
    pub data: Option<Bytes>,
}

/// `rpc` request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RpcRequest {
    /// Method name.
    pub method: String,
    /// The payload.
    pub data: Option<Bytes>,
}

/// `refresh` request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefreshRequest {
    /// A fresh connection JWT.
    pub token: String,
}

/// `sub_refresh` request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubRefreshRequest {
    /// The channel.
    pub channel: String,
    /// A fresh subscription JWT.
    pub token: String,
}

/// A reply to one command.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The command's id.
    pub id: u32,
    /// Result or error.
    pub body: ReplyBody,
}

/// The result kinds (or an error).
#[derive(Debug, Clone, PartialEq)]
pub enum ReplyBody {
    /// The command failed.
    Error(ClientError),
    /// `connect` succeeded.
    Connect(Box<ConnectResult>),
    /// `subscribe` succeeded.
    Subscribe(Box<SubscribeResult>),
    /// `unsubscribe` succeeded.
    Unsubscribe,
    /// `publish` succeeded.
    Publish,
    /// `presence` result.
    Presence(PresenceResult),
    /// `presence_stats` result.
    PresenceStats(PresenceStats),
    /// `history` result.
    History(HistoryResult),
    /// `ping` result.
    Ping,
    /// `rpc` result.
    Rpc(Option<Bytes>),
    /// `refresh` result.
    Refresh(RefreshResult),
    /// `sub_refresh` result.
    SubRefresh(Expiry),
}

/// Remaining lifetime of credentials.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Expiry {
    /// Whether they expire at all.
    pub expires: bool,
    /// Seconds left.
    pub ttl: u32,
}

/// `connect` result (also the `connect` push of unidirectional transports).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConnectResult {
    /// The server-assigned client id.
    pub client: String,
    /// Server version string.
    pub version: String,
    /// Expiry of the connection's credentials.
    pub expiry: Expiry,
    /// Custom data for the client.
    pub data: Option<Bytes>,
    /// Server-side subscriptions: channel → result.
    pub subs: BTreeMap<String, SubscribeResult>,
    /// Ping interval in seconds (0 = no pings).
    pub ping: u32,
    /// Whether the client must answer pings.
    pub pong: bool,
    /// Session id (emulation and unidirectional transports).
    pub session: String,
    /// Node id (emulation transports).
    pub node: String,
}

/// `subscribe` result.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubscribeResult {
    /// Expiry of the subscription's token.
    pub expiry: Expiry,
    /// Whether the subscription supports recovery.
    pub recoverable: bool,
    /// Stream epoch.
    pub epoch: String,
    /// Recovered (or cached) publications, in order.
    pub publications: Vec<PublicationRef>,
    /// Whether recovery succeeded.
    pub recovered: bool,
    /// Stream top offset.
    pub offset: u64,
    /// Whether the stream is positioned.
    pub positioned: bool,
    /// Custom data for the subscriber.
    pub data: Option<Bytes>,
    /// Whether the client asked to recover.
    pub was_recovering: bool,
    /// Whether delta compression was negotiated: publications may arrive as fossil
    /// patches against the previous one (`Publication::delta`). On a JSON connection
    /// every publication of the subscription, those in this result too, then carries its
    /// `data` as a JSON string (the patch, or the full payload's text), as Centrifugo does.
    pub delta: bool,
}

/// A shared publication as carried in results and pushes.
pub type PublicationRef = std::sync::Arc<Publication>;

/// `presence` result: client id → info.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PresenceResult {
    /// Present clients.
    pub presence: BTreeMap<String, ClientInfo>,
}

/// `presence_stats` result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PresenceStats {
    /// Number of connections.
    pub num_clients: u32,
    /// Number of distinct users.
    pub num_users: u32,
}

/// `history` result.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistoryResult {
    /// Publications, in the requested order.
    pub publications: Vec<PublicationRef>,
    /// Stream epoch.
    pub epoch: String,
    /// Stream top offset.
    pub offset: u64,
}

/// `refresh` result.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RefreshResult {
    /// The client id.
    pub client: String,
    /// Server version string.
    pub version: String,
    /// New expiry.
    pub expiry: Expiry,
}

/// Who published, joined or left: the public identity of a connection.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClientInfo {
    /// User id (empty for anonymous).
    pub user: String,
    /// Client id.
    pub client: String,
    /// Connection info from the token.
    pub conn_info: Option<Bytes>,
    /// Channel info from the subscription token.
    pub chan_info: Option<Bytes>,
}

/// A message published into a channel.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Publication {
    /// The channel it was published to.
    pub channel: std::sync::Arc<str>,
    /// The payload.
    pub data: Bytes,
    /// Publisher info (client-side publishes only).
    pub info: Option<ClientInfo>,
    /// Offset in the channel's stream (0 without history).
    pub offset: u64,
    /// Application tags.
    pub tags: BTreeMap<String, String>,
    /// Whether `data` is a delta against the previous publication (the wire's `delta`).
    pub delta: bool,
    /// Server side only, never written to clients: the publisher marked it delta-eligible
    /// (the API's `delta`, or the namespace's `delta_publish`), so subscribers that
    /// negotiated delta compression may get it as a patch against the channel's previous
    /// publication. Stored in history and carried between nodes with the publication.
    pub delta_eligible: bool,
}

/// A message from the server that is not a reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Push {
    /// A publication in a subscribed channel.
    Publication(PublicationRef),
    /// A client joined a channel.
    Join {
        /// The channel.
        channel: String,
        /// Who joined.
        info: ClientInfo,
    },
    /// A client left a channel.
    Leave {
        /// The channel.
        channel: String,
        /// Who left.
        info: ClientInfo,
    },
    /// The server ended a subscription.
    Unsubscribe {
        /// The channel.
        channel: String,
        /// Why.
        reason: UnsubscribeReason,
    },
    /// The server added a subscription.
    Subscribe {
        /// The channel.
        channel: String,
        /// Stream state and data.
        result: Box<SubscribeResult>,
    },
    /// An asynchronous message to the client.
    Message(Bytes),
    /// The connect result (unidirectional transports).
    Connect(Box<ConnectResult>),
    /// The server closes the connection (transports without close frames).
    Disconnect(Disconnect),
    /// New expiry of a unidirectional connection.
    Refresh(Expiry),
}
