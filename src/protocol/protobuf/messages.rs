//! Centrifugo's `client.proto` (package `centrifugal.centrifuge.protocol`, protocol
//! v0.19.2 as shipped with Centrifugo v6.9.1) as `prost` derive types: no `protoc`, no
//! build script. Field numbers, types and names are the reference's table (reference
//! §2.12) one for one; a field the model does not carry yet is still declared, so it is
//! decoded (and ignored) rather than skipped as unknown, and the table stays checkable
//! against this file. Reserved numbers are left unused.
//!
//! Proto3 semantics: every scalar has its zero value when absent, so "absent" and "zero"
//! are one; message fields are `Option`, which is how a command's method is found.
//!
//! Maps the server writes whose values are messages (`ConnectResult.subs`, `Connect.subs`,
//! `PresenceResult.presence`) are declared as their wire equivalent, repeated key/value
//! entries ([`SubscribeResultEntry`], [`ClientInfoEntry`]): prost leaves a default value
//! out of a map entry, and the SDKs' decoders (protobufjs) then store `null` for that key
//! (centrifuge-js fails on a server-side subscription whose result is all defaults). An
//! entry's value is always written, as Go's encoder does.

use std::collections::BTreeMap;

use bytes::Bytes;

/// A client error in a reply.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Error {
    /// Error code (100–1999).
    #[prost(uint32, tag = "1")]
    pub code: u32,
    /// Short message.
    #[prost(string, tag = "2")]
    pub message: String,
    /// Whether the client may retry.
    #[prost(bool, tag = "3")]
    pub temporary: bool,
}

/// An `/emulation` request body in Protobuf.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EmulationRequest {
    /// Node of the session.
    #[prost(string, tag = "1")]
    pub node: String,
    /// Session id from the connect result.
    #[prost(string, tag = "2")]
    pub session: String,
    /// Varint-delimited commands.
    #[prost(bytes = "bytes", tag = "3")]
    pub data: Bytes,
}

/// A command from a client: one method field set (the first present one counts).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Command {
    /// Correlation id (0: no reply expected; an empty command is a pong).
    #[prost(uint32, tag = "1")]
    pub id: u32,
    /// `connect`.
    #[prost(message, optional, tag = "4")]
    pub connect: Option<ConnectRequest>,
    /// `subscribe`.
    #[prost(message, optional, tag = "5")]
    pub subscribe: Option<SubscribeRequest>,
    /// `unsubscribe`.
    #[prost(message, optional, tag = "6")]
    pub unsubscribe: Option<UnsubscribeRequest>,
    /// `publish`.
    #[prost(message, optional, tag = "7")]
    pub publish: Option<PublishRequest>,
    /// `presence`.
    #[prost(message, optional, tag = "8")]
    pub presence: Option<PresenceRequest>,
    /// `presence_stats`.
    #[prost(message, optional, tag = "9")]
    pub presence_stats: Option<PresenceStatsRequest>,
    /// `history`.
    #[prost(message, optional, tag = "10")]
    pub history: Option<HistoryRequest>,
    /// `ping`.
    #[prost(message, optional, tag = "11")]
    pub ping: Option<PingRequest>,
    /// `send`.
    #[prost(message, optional, tag = "12")]
    pub send: Option<SendRequest>,
    /// `rpc`.
    #[prost(message, optional, tag = "13")]
    pub rpc: Option<RpcRequest>,
    /// `refresh`.
    #[prost(message, optional, tag = "14")]
    pub refresh: Option<RefreshRequest>,
    /// `sub_refresh`.
    #[prost(message, optional, tag = "15")]
    pub sub_refresh: Option<SubRefreshRequest>,
}

/// A reply to a command, or (id 0) a push; an empty reply is the server's ping.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Reply {
    /// The command's id (0 for a push).
    #[prost(uint32, tag = "1")]
    pub id: u32,
    /// The command failed.
    #[prost(message, optional, tag = "2")]
    pub error: Option<Error>,
    /// An asynchronous push.
    #[prost(message, optional, tag = "4")]
    pub push: Option<Push>,
    /// `connect` result.
    #[prost(message, optional, tag = "5")]
    pub connect: Option<ConnectResult>,
    /// `subscribe` result.
    #[prost(message, optional, tag = "6")]
    pub subscribe: Option<SubscribeResult>,
    /// `unsubscribe` result.
    #[prost(message, optional, tag = "7")]
    pub unsubscribe: Option<UnsubscribeResult>,
    /// `publish` result.
    #[prost(message, optional, tag = "8")]
    pub publish: Option<PublishResult>,
    /// `presence` result.
    #[prost(message, optional, tag = "9")]
    pub presence: Option<PresenceResult>,
    /// `presence_stats` result.
    #[prost(message, optional, tag = "10")]
    pub presence_stats: Option<PresenceStatsResult>,
    /// `history` result.
    #[prost(message, optional, tag = "11")]
    pub history: Option<HistoryResult>,
    /// `ping` result.
    #[prost(message, optional, tag = "12")]
    pub ping: Option<PingResult>,
    /// `rpc` result.
    #[prost(message, optional, tag = "13")]
    pub rpc: Option<RpcResult>,
    /// `refresh` result.
    #[prost(message, optional, tag = "14")]
    pub refresh: Option<RefreshResult>,
    /// `sub_refresh` result.
    #[prost(message, optional, tag = "15")]
    pub sub_refresh: Option<SubRefreshResult>,
}

/// A server push: one kind field set.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Push {
    /// Numeric channel id (channel compaction, PRO; never set here).
    #[prost(int64, tag = "1")]
    pub id: i64,
    /// The channel (empty for channel-less pushes).
    #[prost(string, tag = "2")]
    pub channel: String,
    /// A publication.
    #[prost(message, optional, tag = "4")]
    pub r#pub: Option<Publication>,
    /// Someone joined.
    #[prost(message, optional, tag = "5")]
    pub join: Option<Join>,
    /// Someone left.
    #[prost(message, optional, tag = "6")]
    pub leave: Option<Leave>,
    /// The server ended a subscription.
    #[prost(message, optional, tag = "7")]
    pub unsubscribe: Option<Unsubscribe>,
    /// An asynchronous message.
    #[prost(message, optional, tag = "8")]
    pub message: Option<Message>,
    /// A server-side subscription.
    #[prost(message, optional, tag = "9")]
    pub subscribe: Option<Subscribe>,
    /// The connect result (unidirectional transports).
    #[prost(message, optional, tag = "10")]
    pub connect: Option<Connect>,
    /// The server closes the connection.
    #[prost(message, optional, tag = "11")]
    pub disconnect: Option<Disconnect>,
    /// New expiry (unidirectional transports).
    #[prost(message, optional, tag = "12")]
    pub refresh: Option<Refresh>,
}

/// Who published, joined or left.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ClientInfo {
    /// User id.
    #[prost(string, tag = "1")]
    pub user: String,
    /// Client id.
    #[prost(string, tag = "2")]
    pub client: String,
    /// Connection info.
    #[prost(bytes = "bytes", tag = "3")]
    pub conn_info: Bytes,
    /// Channel info.
    #[prost(bytes = "bytes", tag = "4")]
    pub chan_info: Bytes,
}

/// A publication.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Publication {
    /// Payload, raw bytes.
    #[prost(bytes = "bytes", tag = "4")]
    pub data: Bytes,
    /// Publisher (client-side publishes).
    #[prost(message, optional, tag = "5")]
    pub info: Option<ClientInfo>,
    /// Offset in the stream.
    #[prost(uint64, tag = "6")]
    pub offset: u64,
    /// Tags.
    #[prost(btree_map = "string, string", tag = "7")]
    pub tags: BTreeMap<String, String>,
    /// Whether `data` is a delta.
    #[prost(bool, tag = "8")]
    pub delta: bool,
    /// Publish time, ms (internal in Centrifugo v6.9.1).
    #[prost(int64, tag = "9")]
    pub time: i64,
    /// Channel (wildcard subscriptions).
    #[prost(string, tag = "10")]
    pub channel: String,
    /// Key (map subscriptions).
    #[prost(string, tag = "11")]
    pub key: String,
    /// Key removed (map subscriptions).
    #[prost(bool, tag = "12")]
    pub removed: bool,
    /// Score (map subscriptions).
    #[prost(sint64, tag = "13")]
    pub score: i64,
    /// Epoch (map subscriptions).
    #[prost(string, tag = "14")]
    pub epoch: String,
    /// Previous data (internal).
    #[prost(bytes = "bytes", tag = "15")]
    pub prev_data: Bytes,
    /// Version (map subscriptions).
    #[prost(uint64, tag = "16")]
    pub version: u64,
}

/// A join push.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Join {
    /// Who joined.
    #[prost(message, optional, tag = "1")]
    pub info: Option<ClientInfo>,
}

/// A leave push.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Leave {
    /// Who left.
    #[prost(message, optional, tag = "1")]
    pub info: Option<ClientInfo>,
}

/// An unsubscribe push.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Unsubscribe {
    /// Unsubscribe code.
    #[prost(uint32, tag = "2")]
    pub code: u32,
    /// Reason.
    #[prost(string, tag = "3")]
    pub reason: String,
}

/// A server-side subscribe push.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Subscribe {
    /// Recovery supported.
    #[prost(bool, tag = "1")]
    pub recoverable: bool,
    /// Stream epoch.
    #[prost(string, tag = "4")]
    pub epoch: String,
    /// Stream offset.
    #[prost(uint64, tag = "5")]
    pub offset: u64,
    /// Positioned.
    #[prost(bool, tag = "6")]
    pub positioned: bool,
    /// Custom data.
    #[prost(bytes = "bytes", tag = "7")]
    pub data: Bytes,
}

/// An asynchronous message push.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Message {
    /// Payload.
    #[prost(bytes = "bytes", tag = "1")]
    pub data: Bytes,
}

/// The connect push (unidirectional transports); the same fields as [`ConnectResult`]
/// under other numbers.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Connect {
    /// Client id.
    #[prost(string, tag = "1")]
    pub client: String,
    /// Server version.
    #[prost(string, tag = "2")]
    pub version: String,
    /// Custom data.
    #[prost(bytes = "bytes", tag = "3")]
    pub data: Bytes,
    /// Server-side subscriptions (a map, see [`SubscribeResultEntry`]).
    #[prost(message, repeated, tag = "4")]
    pub subs: Vec<SubscribeResultEntry>,
    /// Credentials expire.
    #[prost(bool, tag = "5")]
    pub expires: bool,
    /// Seconds left.
    #[prost(uint32, tag = "6")]
    pub ttl: u32,
    /// Ping interval, s.
    #[prost(uint32, tag = "7")]
    pub ping: u32,
    /// Pong expected.
    #[prost(bool, tag = "8")]
    pub pong: bool,
    /// Session id.
    #[prost(string, tag = "9")]
    pub session: String,
    /// Node id.
    #[prost(string, tag = "10")]
    pub node: String,
    /// Server time, ms.
    #[prost(int64, tag = "11")]
    pub time: i64,
}

/// A disconnect push.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Disconnect {
    /// Disconnect code.
    #[prost(uint32, tag = "1")]
    pub code: u32,
    /// Reason.
    #[prost(string, tag = "2")]
    pub reason: String,
    /// Legacy reconnect advice (never set by v6.9.1).
    #[prost(bool, tag = "3")]
    pub reconnect: bool,
}

/// A refresh push.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Refresh {
    /// Credentials expire.
    #[prost(bool, tag = "1")]
    pub expires: bool,
    /// Seconds left.
    #[prost(uint32, tag = "2")]
    pub ttl: u32,
}

/// `connect` request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ConnectRequest {
    /// Connection JWT.
    #[prost(string, tag = "1")]
    pub token: String,
    /// Custom data.
    #[prost(bytes = "bytes", tag = "2")]
    pub data: Bytes,
    /// Server-side subscriptions to recover.
    #[prost(btree_map = "string, message", tag = "3")]
    pub subs: BTreeMap<String, SubscribeRequest>,
    /// Client name.
    #[prost(string, tag = "4")]
    pub name: String,
    /// Client version.
    #[prost(string, tag = "5")]
    pub version: String,
    /// Emulated headers.
    #[prost(btree_map = "string, string", tag = "6")]
    pub headers: BTreeMap<String, String>,
    /// Feature flags.
    #[prost(int64, tag = "7")]
    pub flag: i64,
}

/// `connect` result.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ConnectResult {
    /// Client id.
    #[prost(string, tag = "1")]
    pub client: String,
    /// Server version.
    #[prost(string, tag = "2")]
    pub version: String,
    /// Credentials expire.
    #[prost(bool, tag = "3")]
    pub expires: bool,
    /// Seconds left.
    #[prost(uint32, tag = "4")]
    pub ttl: u32,
    /// Custom data.
    #[prost(bytes = "bytes", tag = "5")]
    pub data: Bytes,
    /// Server-side subscriptions (a map, see [`SubscribeResultEntry`]).
    #[prost(message, repeated, tag = "6")]
    pub subs: Vec<SubscribeResultEntry>,
    /// Ping interval, s.
    #[prost(uint32, tag = "7")]
    pub ping: u32,
    /// Pong expected.
    #[prost(bool, tag = "8")]
    pub pong: bool,
    /// Session id (emulation).
    #[prost(string, tag = "9")]
    pub session: String,
    /// Node id (emulation).
    #[prost(string, tag = "10")]
    pub node: String,
    /// Server time, ms.
    #[prost(int64, tag = "11")]
    pub time: i64,
}

/// `refresh` request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RefreshRequest {
    /// Fresh connection JWT.
    #[prost(string, tag = "1")]
    pub token: String,
}

/// `refresh` result.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RefreshResult {
    /// Client id.
    #[prost(string, tag = "1")]
    pub client: String,
    /// Server version.
    #[prost(string, tag = "2")]
    pub version: String,
    /// Credentials expire.
    #[prost(bool, tag = "3")]
    pub expires: bool,
    /// Seconds left.
    #[prost(uint32, tag = "4")]
    pub ttl: u32,
}

/// `subscribe` request (also an entry of `ConnectRequest.subs`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SubscribeRequest {
    /// Channel.
    #[prost(string, tag = "1")]
    pub channel: String,
    /// Subscription JWT.
    #[prost(string, tag = "2")]
    pub token: String,
    /// Recover missed publications.
    #[prost(bool, tag = "3")]
    pub recover: bool,
    /// Last seen epoch.
    #[prost(string, tag = "6")]
    pub epoch: String,
    /// Last seen offset.
    #[prost(uint64, tag = "7")]
    pub offset: u64,
    /// Custom data.
    #[prost(bytes = "bytes", tag = "8")]
    pub data: Bytes,
    /// Ask for positioning.
    #[prost(bool, tag = "9")]
    pub positioned: bool,
    /// Ask for recovery support.
    #[prost(bool, tag = "10")]
    pub recoverable: bool,
    /// Ask for join/leave pushes.
    #[prost(bool, tag = "11")]
    pub join_leave: bool,
    /// Delta type (`fossil`).
    #[prost(string, tag = "12")]
    pub delta: String,
    /// Tag filter.
    #[prost(message, optional, tag = "13")]
    pub tf: Option<FilterNode>,
    /// Feature flags.
    #[prost(int64, tag = "14")]
    pub flag: i64,
    /// Subscription type (0 stream).
    #[prost(int32, tag = "15")]
    pub r#type: i32,
    /// Map subscription phase.
    #[prost(int32, tag = "16")]
    pub phase: i32,
    /// Map subscription cursor.
    #[prost(string, tag = "17")]
    pub cursor: String,
    /// Map subscription page size.
    #[prost(int32, tag = "18")]
    pub limit: i32,
    /// Map subscription order.
    #[prost(bool, tag = "19")]
    pub asc: bool,
}

/// `subscribe` result (also an entry of connect's `subs`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SubscribeResult {
    /// Token expires.
    #[prost(bool, tag = "1")]
    pub expires: bool,
    /// Seconds left.
    #[prost(uint32, tag = "2")]
    pub ttl: u32,
    /// Recovery supported.
    #[prost(bool, tag = "3")]
    pub recoverable: bool,
    /// Stream epoch.
    #[prost(string, tag = "6")]
    pub epoch: String,
    /// Recovered publications.
    #[prost(message, repeated, tag = "7")]
    pub publications: Vec<Publication>,
    /// Recovery succeeded.
    #[prost(bool, tag = "8")]
    pub recovered: bool,
    /// Stream offset.
    #[prost(uint64, tag = "9")]
    pub offset: u64,
    /// Positioned.
    #[prost(bool, tag = "10")]
    pub positioned: bool,
    /// Custom data.
    #[prost(bytes = "bytes", tag = "11")]
    pub data: Bytes,
    /// The client asked to recover.
    #[prost(bool, tag = "12")]
    pub was_recovering: bool,
    /// Delta compression on.
    #[prost(bool, tag = "13")]
    pub delta: bool,
    /// Numeric channel id (PRO).
    #[prost(int64, tag = "14")]
    pub id: i64,
    /// Subscription type.
    #[prost(int32, tag = "15")]
    pub r#type: i32,
    /// Map subscription phase.
    #[prost(int32, tag = "16")]
    pub phase: i32,
    /// Map subscription cursor.
    #[prost(string, tag = "17")]
    pub cursor: String,
    /// Map subscription state.
    #[prost(message, repeated, tag = "18")]
    pub state: Vec<Publication>,
    /// Publish debounce, ms (PRO).
    #[prost(uint32, tag = "19")]
    pub publish_debounce: u32,
}

/// One entry of a `map<string, SubscribeResult>`, as the map is on the wire.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SubscribeResultEntry {
    /// Channel.
    #[prost(string, tag = "1")]
    pub key: String,
    /// Its result (always written).
    #[prost(message, optional, tag = "2")]
    pub value: Option<SubscribeResult>,
}

/// One entry of a `map<string, ClientInfo>`, as the map is on the wire.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ClientInfoEntry {
    /// Client id.
    #[prost(string, tag = "1")]
    pub key: String,
    /// Its info (always written).
    #[prost(message, optional, tag = "2")]
    pub value: Option<ClientInfo>,
}

/// A keyed item of a track batch.
#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyedItem {
    /// Key.
    #[prost(string, tag = "1")]
    pub key: String,
    /// Version.
    #[prost(uint64, tag = "2")]
    pub version: u64,
}

/// A signed batch of keys to track.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TrackBatch {
    /// Signature.
    #[prost(string, tag = "1")]
    pub signature: String,
    /// Items.
    #[prost(message, repeated, tag = "2")]
    pub items: Vec<KeyedItem>,
}

/// `sub_refresh` request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SubRefreshRequest {
    /// Channel.
    #[prost(string, tag = "1")]
    pub channel: String,
    /// Fresh subscription JWT.
    #[prost(string, tag = "2")]
    pub token: String,
    /// 0 refresh, 1 track, 2 untrack.
    #[prost(int32, tag = "3")]
    pub r#type: i32,
    /// Keys to track.
    #[prost(message, repeated, tag = "4")]
    pub track: Vec<TrackBatch>,
    /// Keys to untrack.
    #[prost(string, repeated, tag = "5")]
    pub untrack: Vec<String>,
}

/// `sub_refresh` result.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SubRefreshResult {
    /// Token expires.
    #[prost(bool, tag = "1")]
    pub expires: bool,
    /// Seconds left.
    #[prost(uint32, tag = "2")]
    pub ttl: u32,
    /// Tracked items.
    #[prost(message, repeated, tag = "3")]
    pub items: Vec<Publication>,
}

/// `unsubscribe` request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct UnsubscribeRequest {
    /// Channel.
    #[prost(string, tag = "1")]
    pub channel: String,
}

/// `unsubscribe` result (no fields).
#[derive(Clone, PartialEq, prost::Message)]
pub struct UnsubscribeResult {}

/// `publish` request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PublishRequest {
    /// Channel.
    #[prost(string, tag = "1")]
    pub channel: String,
    /// Payload.
    #[prost(bytes = "bytes", tag = "2")]
    pub data: Bytes,
    /// 1 = map publish.
    #[prost(int32, tag = "3")]
    pub r#type: i32,
    /// Key (map publish).
    #[prost(string, tag = "4")]
    pub key: String,
    /// Remove the key (map publish).
    #[prost(bool, tag = "5")]
    pub removed: bool,
}

/// `publish` result (no fields).
#[derive(Clone, PartialEq, prost::Message)]
pub struct PublishResult {}

/// `presence` request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PresenceRequest {
    /// Channel.
    #[prost(string, tag = "1")]
    pub channel: String,
}

/// `presence` result.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PresenceResult {
    /// Client id → info (a map, see [`ClientInfoEntry`]).
    #[prost(message, repeated, tag = "1")]
    pub presence: Vec<ClientInfoEntry>,
}

/// `presence_stats` request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PresenceStatsRequest {
    /// Channel.
    #[prost(string, tag = "1")]
    pub channel: String,
}

/// `presence_stats` result.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PresenceStatsResult {
    /// Connections.
    #[prost(uint32, tag = "1")]
    pub num_clients: u32,
    /// Distinct users.
    #[prost(uint32, tag = "2")]
    pub num_users: u32,
}

/// A stream position.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamPosition {
    /// Offset.
    #[prost(uint64, tag = "1")]
    pub offset: u64,
    /// Epoch.
    #[prost(string, tag = "2")]
    pub epoch: String,
}

/// `history` request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HistoryRequest {
    /// Channel.
    #[prost(string, tag = "1")]
    pub channel: String,
    /// Limit (0 position only, -1 all).
    #[prost(int32, tag = "7")]
    pub limit: i32,
    /// After this position.
    #[prost(message, optional, tag = "8")]
    pub since: Option<StreamPosition>,
    /// Newest first.
    #[prost(bool, tag = "9")]
    pub reverse: bool,
}

/// `history` result.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HistoryResult {
    /// Publications.
    #[prost(message, repeated, tag = "1")]
    pub publications: Vec<Publication>,
    /// Stream epoch.
    #[prost(string, tag = "2")]
    pub epoch: String,
    /// Stream offset.
    #[prost(uint64, tag = "3")]
    pub offset: u64,
}

/// `ping` request (no fields).
#[derive(Clone, PartialEq, prost::Message)]
pub struct PingRequest {}

/// `ping` result (no fields).
#[derive(Clone, PartialEq, prost::Message)]
pub struct PingResult {}

/// `rpc` request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcRequest {
    /// Payload.
    #[prost(bytes = "bytes", tag = "1")]
    pub data: Bytes,
    /// Method.
    #[prost(string, tag = "2")]
    pub method: String,
}

/// `rpc` result.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcResult {
    /// Payload.
    #[prost(bytes = "bytes", tag = "1")]
    pub data: Bytes,
}

/// `send` request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SendRequest {
    /// Payload.
    #[prost(bytes = "bytes", tag = "1")]
    pub data: Bytes,
}

/// A tag filter node.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FilterNode {
    /// `""` leaf, or `and` / `or` / `not`.
    #[prost(string, tag = "1")]
    pub op: String,
    /// Tag key (leaf).
    #[prost(string, tag = "2")]
    pub key: String,
    /// Comparison (leaf).
    #[prost(string, tag = "3")]
    pub cmp: String,
    /// Value (leaf).
    #[prost(string, tag = "4")]
    pub val: String,
    /// Values (`in`, `nin`).
    #[prost(string, repeated, tag = "5")]
    pub vals: Vec<String>,
    /// Children.
    #[prost(message, repeated, tag = "6")]
    pub nodes: Vec<FilterNode>,
}
