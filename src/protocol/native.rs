//! Tidewire's native protocol: the protocol model in postcard, for the multiplexed mode
//! over raw QUIC (ALPN `tidewire/1`) and WebTransport (`/connection/webtransport/native`).
//!
//! Layout of a connection:
//! - **Control stream** (the first bidirectional stream, opened by the client): frames of
//!   `varint length ‖ postcard body`. Client → server: [`WireCommand`]. Server → client:
//!   [`ServerFrame`] (replies, non-publication pushes, pings, notices, the disconnect).
//! - **Subscription streams** (unidirectional, opened by the server, one per
//!   subscription): a [`StreamHeader`] frame naming the subscription id and channel, then
//!   one [`WirePublication`] frame per publication. A stalled stream delays only its own
//!   channel.
//! - **Datagrams** (channels with `delivery = "datagram"`): server → client
//!   `varint subscription id ‖ postcard WirePublication`; client → server
//!   `varint subscription id ‖ payload`, a fire-and-forget publish into that channel.
//!
//! The wire types mirror the model (`super`) field by field and live here so the model can
//! grow without breaking this format; conversions build model values with
//! `..Default::default()`, so a new optional model field needs no change here until it is
//! carried. postcard is not self-describing: a change to these types is a new ALPN
//! (`tidewire/2`). Pure data, no I/O; every decode is bounded by the caller's limit.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::framing::{self, FrameError, VarintCheck};
use super::{
    ClientError, ClientInfo, Command, CommandBody, ConnectRequest, ConnectResult, HistoryRequest, Publication,
    Push, Reply, ReplyBody, StreamPosition, SubscribeRequest, SubscribeResult,
};

/// Command ids at or above this are reserved for the server (datagram publishes); a client
/// command using one is a protocol violation.
pub const RESERVED_ID_BASE: u32 = 1 << 31;

/// Why native bytes could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// A frame is over the size limit.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The body is not a valid postcard message of the expected type.
    #[error("malformed native message: {0}")]
    Malformed(#[from] postcard::Error),
    /// A field is out of range (a reserved command id …).
    #[error("invalid native message: {0}")]
    Invalid(&'static str),
}

/// Client info as carried in pushes, presence and publications.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WireClientInfo {
    /// User id.
    pub user: String,
    /// Client id.
    pub client: String,
    /// Connection info.
    pub conn_info: Option<Bytes>,
    /// Channel info.
    pub chan_info: Option<Bytes>,
}

/// A publication (its channel is known from the stream, datagram or request it came with).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WirePublication {
    /// Offset in the channel's stream (0 without history).
    pub offset: u64,
    /// Payload, opaque bytes.
    pub data: Bytes,
    /// Publisher.
    pub info: Option<WireClientInfo>,
    /// Tags.
    pub tags: Vec<(String, String)>,
    /// Whether `data` is a delta.
    pub delta: bool,
}

/// A subscribe request (also used in connect's `subs`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WireSubscribe {
    /// Channel.
    pub channel: String,
    /// Subscription token.
    pub token: String,
    /// Recover missed publications.
    pub recover: bool,
    /// Last seen epoch.
    pub epoch: String,
    /// Last seen offset.
    pub offset: u64,
    /// Custom data.
    pub data: Option<Bytes>,
    /// Ask for positioning.
    pub positioned: bool,
    /// Ask for recovery support.
    pub recoverable: bool,
    /// Ask for join/leave pushes.
    pub join_leave: bool,
}

/// A connect request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WireConnect {
    /// Connection token.
    pub token: String,
    /// Custom data.
    pub data: Option<Bytes>,
    /// Server-side subscriptions to recover.
    pub subs: Vec<WireSubscribe>,
    /// Client name.
    pub name: String,
    /// Client version.
    pub version: String,
    /// Emulated headers.
    pub headers: Vec<(String, String)>,
}

/// A history request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WireHistory {
    /// Channel.
    pub channel: String,
    /// 0 = position only, -1 = up to the server's cap.
    pub limit: i32,
    /// Publications after (offset, epoch).
    pub since: Option<(u64, String)>,
    /// Newest first.
    pub reverse: bool,
}

/// What a client asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum WireCommandBody {
    /// Authenticate.
    Connect(WireConnect),
    /// Subscribe.
    Subscribe(WireSubscribe),
    /// Unsubscribe from a channel.
    Unsubscribe(String),
    /// Publish (channel, data).
    Publish(String, Bytes),
    /// Presence of a channel.
    Presence(String),
    /// Presence counters of a channel.
    PresenceStats(String),
    /// History of a channel.
    History(WireHistory),
    /// Explicit ping.
    Ping,
    /// Async message.
    Send(Bytes),
    /// RPC (method, data).
    Rpc(String, Bytes),
    /// New connection token.
    Refresh(String),
    /// New subscription token (channel, token).
    SubRefresh(String, String),
    /// Answer to a server ping (send with id 0).
    Pong,
}

/// One client command; `id` 0 expects no reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireCommand {
    /// Correlation id, below [`RESERVED_ID_BASE`].
    pub id: u32,
    /// The command.
    pub body: WireCommandBody,
}

/// A subscription's stream state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WireSubscribeResult {
    /// Token expires.
    pub expires: bool,
    /// Seconds left.
    pub ttl: u32,
    /// Recovery supported.
    pub recoverable: bool,
    /// Stream epoch.
    pub epoch: String,
    /// Recovered publications, in order.
    pub publications: Vec<WirePublication>,
    /// Recovery succeeded.
    pub recovered: bool,
    /// Stream top offset.
    pub offset: u64,
    /// Positioned.
    pub positioned: bool,
    /// Custom data.
    pub data: Option<Bytes>,
    /// The client asked to recover.
    pub was_recovering: bool,
}

/// A server-side subscription in a connect result.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WireServerSub {
    /// Channel.
    pub channel: String,
    /// Its subscription id (names its stream and datagrams).
    pub sub: u32,
    /// Stream state.
    pub result: WireSubscribeResult,
}

/// A connect result.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WireConnectResult {
    /// Client id.
    pub client: String,
    /// Server version.
    pub version: String,
    /// Credentials expire.
    pub expires: bool,
    /// Seconds left.
    pub ttl: u32,
    /// Custom data.
    pub data: Option<Bytes>,
    /// Server-side subscriptions.
    pub subs: Vec<WireServerSub>,
    /// Ping interval in seconds.
    pub ping: u32,
    /// Answer pings with [`WireCommandBody::Pong`].
    pub pong: bool,
}

/// A history result.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WireHistoryResult {
    /// Publications.
    pub publications: Vec<WirePublication>,
    /// Epoch.
    pub epoch: String,
    /// Top offset.
    pub offset: u64,
}

/// Result kinds (or an error).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum WireReplyBody {
    /// Failure: code, message, temporary.
    Error(u32, String, bool),
    /// Connected.
    Connect(WireConnectResult),
    /// Subscribed: the subscription id (names its stream and datagrams) and state.
    Subscribe(u32, WireSubscribeResult),
    /// Unsubscribed.
    Unsubscribe,
    /// Published.
    Publish,
    /// Presence: client id → info.
    Presence(Vec<(String, WireClientInfo)>),
    /// Presence counters: clients, users.
    PresenceStats(u32, u32),
    /// History.
    History(WireHistoryResult),
    /// Ping answered.
    Ping,
    /// RPC result.
    Rpc(Option<Bytes>),
    /// Refreshed: client, version, expires, ttl.
    Refresh(String, String, bool, u32),
    /// Subscription refreshed: expires, ttl.
    SubRefresh(bool, u32),
}

/// A reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireReply {
    /// The command's id.
    pub id: u32,
    /// Result or error.
    pub body: WireReplyBody,
}

/// Pushes that travel on the control stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum WirePush {
    /// Someone joined (channel, info).
    Join(String, WireClientInfo),
    /// Someone left (channel, info).
    Leave(String, WireClientInfo),
    /// The server ended a subscription (channel, code, reason).
    Unsubscribe(String, u32, String),
    /// The server added a subscription.
    Subscribe(WireServerSub),
    /// An async message.
    Message(Bytes),
    /// New connection expiry (expires, ttl).
    Refresh(bool, u32),
}

/// Everything the server writes on the control stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ServerFrame {
    /// A reply.
    Reply(WireReply),
    /// A push.
    Push(WirePush),
    /// A server ping (answer with `Pong` when the connect result says so).
    Ping,
    /// A problem that does not close the connection (code, message): e.g. a datagram for
    /// an unknown subscription.
    Notice(u32, String),
    /// The server closes the connection (code, reason); the QUIC close carries them too.
    Disconnect(u16, String),
}

/// First frame of a subscription stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamHeader {
    /// Subscription id.
    pub sub: u32,
    /// Channel.
    pub channel: String,
}

/// Appends `msg` as one frame: varint length, postcard body.
pub fn put_frame<T: Serialize>(out: &mut Vec<u8>, msg: &T) {
    // Serialising these types into a Vec cannot fail (no maps with non-string keys, no
    // unsupported types); an empty frame would be rejected by the peer's decoder.
    let body = postcard::to_stdvec(msg).unwrap_or_default();
    framing::put_varint(out, body.len());
    out.extend_from_slice(&body);
}

/// Checks `buf` for a whole frame of at most `limit` bytes and decodes it. Returns the
/// message and the bytes it took, or None when more bytes are needed.
pub fn take_frame<'de, T: Deserialize<'de>>(buf: &'de [u8], limit: usize) -> Result<Option<(T, usize)>, DecodeError> {
    match framing::check_varint(buf, limit)? {
        VarintCheck::Incomplete => Ok(None),
        VarintCheck::Complete { header, len } => {
            let msg = postcard::from_bytes(&buf[header..header + len])?;
            Ok(Some((msg, header + len)))
        }
    }
}

/// Decodes one command body (without its length prefix) into the model.
pub fn decode_command(body: &[u8]) -> Result<Command, DecodeError> {
    let wire: WireCommand = postcard::from_bytes(body)?;
    command_from_wire(wire)
}

/// Translates a wire command into the model.
pub fn command_from_wire(wire: WireCommand) -> Result<Command, DecodeError> {
    if wire.id >= RESERVED_ID_BASE {
        return Err(DecodeError::Invalid("command id in the server's reserved range"));
    }
    let body = match wire.body {
        WireCommandBody::Connect(c) => CommandBody::Connect(ConnectRequest {
            token: c.token,
            data: c.data,
            subs: c.subs.into_iter().map(|s| (s.channel.clone(), subscribe_from_wire(s))).collect(),
            name: c.name,
            version: c.version,
            headers: c.headers.into_iter().collect(),
        }),
        WireCommandBody::Subscribe(s) => CommandBody::Subscribe(subscribe_from_wire(s)),
        WireCommandBody::Unsubscribe(channel) => CommandBody::Unsubscribe(super::ChannelRequest { channel }),
        WireCommandBody::Publish(channel, data) => {
            CommandBody::Publish(super::PublishRequest { channel, data: Some(data) })
        }
        WireCommandBody::Presence(channel) => CommandBody::Presence(super::ChannelRequest { channel }),
        WireCommandBody::PresenceStats(channel) => CommandBody::PresenceStats(super::ChannelRequest { channel }),
        WireCommandBody::History(h) => CommandBody::History(HistoryRequest {
            channel: h.channel,
            limit: h.limit,
            since: h.since.map(|(offset, epoch)| StreamPosition { offset, epoch }),
            reverse: h.reverse,
        }),
        WireCommandBody::Ping => CommandBody::Ping,
        WireCommandBody::Send(data) => CommandBody::Send(super::SendRequest { data: Some(data) }),
        WireCommandBody::Rpc(method, data) => CommandBody::Rpc(super::RpcRequest { method, data: Some(data) }),
        WireCommandBody::Refresh(token) => CommandBody::Refresh(super::RefreshRequest { token }),
        WireCommandBody::SubRefresh(channel, token) => {
            CommandBody::SubRefresh(super::SubRefreshRequest { channel, token })
        }
        WireCommandBody::Pong => CommandBody::Empty,
    };
    Ok(Command { id: wire.id, body })
}

fn subscribe_from_wire(s: WireSubscribe) -> SubscribeRequest {
    SubscribeRequest {
        channel: s.channel,
        token: s.token,
        recover: s.recover,
        epoch: s.epoch,
        offset: s.offset,
        data: s.data,
        positioned: s.positioned,
        recoverable: s.recoverable,
        join_leave: s.join_leave,
        ..Default::default()
    }
}

/// The model's client info on the wire.
pub fn info_to_wire(i: &ClientInfo) -> WireClientInfo {
    WireClientInfo {
        user: i.user.clone(),
        client: i.client.clone(),
        conn_info: i.conn_info.clone(),
        chan_info: i.chan_info.clone(),
    }
}

/// The model's publication on the wire.
pub fn publication_to_wire(p: &Publication) -> WirePublication {
    WirePublication {
        offset: p.offset,
        data: p.data.clone(),
        info: p.info.as_ref().map(info_to_wire),
        tags: p.tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        delta: p.delta,
    }
}

/// The postcard body (no length prefix) of a publication: what the encode-once cache keeps.
pub fn encode_publication(p: &Publication) -> Vec<u8> {
    postcard::to_stdvec(&publication_to_wire(p)).unwrap_or_default()
}

fn subscribe_result_to_wire(r: &SubscribeResult) -> WireSubscribeResult {
    WireSubscribeResult {
        expires: r.expiry.expires,
        ttl: r.expiry.ttl,
        recoverable: r.recoverable,
        epoch: r.epoch.clone(),
        publications: r.publications.iter().map(|p| publication_to_wire(p)).collect(),
        recovered: r.recovered,
        offset: r.offset,
        positioned: r.positioned,
        data: r.data.clone(),
        was_recovering: r.was_recovering,
    }
}

fn connect_result_to_wire(r: &ConnectResult, sub_of: &dyn Fn(&str) -> u32) -> WireConnectResult {
    WireConnectResult {
        client: r.client.clone(),
        version: r.version.clone(),
        expires: r.expiry.expires,
        ttl: r.expiry.ttl,
        data: r.data.clone(),
        subs: r
            .subs
            .iter()
            .map(|(channel, result)| WireServerSub {
                channel: channel.clone(),
                sub: sub_of(channel),
                result: subscribe_result_to_wire(result),
            })
            .collect(),
        ping: r.ping,
        pong: r.pong,
    }
}

/// Error reply body for a client error.
pub fn error_to_wire(e: ClientError) -> WireReplyBody {
    WireReplyBody::Error(e.code(), e.message().into(), e.temporary())
}

/// The model's reply on the wire. `sub` is the subscription id of a subscribe reply;
/// `sub_of` names the ids of a connect result's server-side subscriptions.
pub fn reply_to_wire(reply: &Reply, sub: u32, sub_of: &dyn Fn(&str) -> u32) -> WireReply {
    let body = match &reply.body {
        ReplyBody::Error(e) => error_to_wire(*e),
        ReplyBody::Connect(r) => WireReplyBody::Connect(connect_result_to_wire(r, sub_of)),
        ReplyBody::Subscribe(r) => WireReplyBody::Subscribe(sub, subscribe_result_to_wire(r)),
        ReplyBody::Unsubscribe => WireReplyBody::Unsubscribe,
        ReplyBody::Publish => WireReplyBody::Publish,
        ReplyBody::Presence(p) => {
            WireReplyBody::Presence(p.presence.iter().map(|(k, v)| (k.clone(), info_to_wire(v))).collect())
        }
        ReplyBody::PresenceStats(s) => WireReplyBody::PresenceStats(s.num_clients, s.num_users),
        ReplyBody::History(h) => WireReplyBody::History(WireHistoryResult {
            publications: h.publications.iter().map(|p| publication_to_wire(p)).collect(),
            epoch: h.epoch.clone(),
            offset: h.offset,
        }),
        ReplyBody::Ping => WireReplyBody::Ping,
        ReplyBody::Rpc(data) => WireReplyBody::Rpc(data.clone()),
        ReplyBody::Refresh(r) => {
            WireReplyBody::Refresh(r.client.clone(), r.version.clone(), r.expiry.expires, r.expiry.ttl)
        }
        ReplyBody::SubRefresh(e) => WireReplyBody::SubRefresh(e.expires, e.ttl),
    };
    WireReply { id: reply.id, body }
}

/// The model's push as a control-stream frame. Publications travel on subscription
/// streams instead, and `Connect` pushes only exist on unidirectional transports: both
/// give None. `sub` is the id of a `Subscribe` push's subscription.
pub fn push_to_frame(push: &Push, sub: u32) -> Option<ServerFrame> {
    let push = match push {
        Push::Publication(_) | Push::Connect(_) => return None,
        Push::Join { channel, info } => WirePush::Join(channel.clone(), info_to_wire(info)),
        Push::Leave { channel, info } => WirePush::Leave(channel.clone(), info_to_wire(info)),
        Push::Unsubscribe { channel, reason } => {
            WirePush::Unsubscribe(channel.clone(), reason.code(), reason.reason().into())
        }
        Push::Subscribe { channel, result } => {
            WirePush::Subscribe(WireServerSub { channel: channel.clone(), sub, result: subscribe_result_to_wire(result) })
        }
        Push::Message(data) => WirePush::Message(data.clone()),
        Push::Disconnect(d) => return Some(ServerFrame::Disconnect(d.code, d.reason.to_string())),
        Push::Refresh(e) => WirePush::Refresh(e.expires, e.ttl),
    };
    Some(ServerFrame::Push(push))
}

/// A server datagram: varint subscription id, then the publication body.
pub fn put_datagram(out: &mut Vec<u8>, sub: u32, publication_body: &[u8]) {
    framing::put_varint(out, sub as usize);
    out.extend_from_slice(publication_body);
}

/// Splits a datagram into its subscription id and the rest.
pub fn split_datagram(datagram: &[u8]) -> Result<(u32, &[u8]), DecodeError> {
    let mut sub: u64 = 0;
    for (i, byte) in datagram.iter().take(5).enumerate() {
        sub |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            let sub = u32::try_from(sub).map_err(|_| DecodeError::Invalid("subscription id over u32"))?;
            return Ok((sub, &datagram[i + 1..]));
        }
    }
    Err(DecodeError::Invalid("datagram without a subscription id"))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::*;
    use crate::protocol::{Disconnect, Expiry, UnsubscribeReason};

    fn frame<T: Serialize>(msg: &T) -> Vec<u8> {
        let mut out = Vec::new();
        put_frame(&mut out, msg);
        out
    }

    #[test]
    fn commands_round_trip_into_the_model() {
        let wire = WireCommand {
            id: 7,
            body: WireCommandBody::Connect(WireConnect {
                token: "t".into(),
                subs: vec![WireSubscribe { channel: "a".into(), recover: true, offset: 3, ..Default::default() }],
                headers: vec![("x".into(), "y".into())],
                ..Default::default()
            }),
        };
        let bytes = frame(&wire);
        let (back, used): (WireCommand, usize) = take_frame(&bytes, 1024).expect("ok").expect("whole");
        assert_eq!(used, bytes.len());
        let cmd = command_from_wire(back).expect("valid");
        assert_eq!(cmd.id, 7);
        let CommandBody::Connect(c) = cmd.body else { panic!("connect expected") };
        assert_eq!(c.token, "t");
        assert!(c.subs["a"].recover);
        assert_eq!(c.headers.get("x").map(String::as_str), Some("y"));
        let pong = WireCommand { id: 0, body: WireCommandBody::Pong };
        let body = postcard::to_stdvec(&pong).expect("encode");
        assert_eq!(decode_command(&body).expect("pong").body, CommandBody::Empty);
    }

    #[test]
    fn partial_oversize_garbage_and_reserved_ids_are_errors_not_panics() {
        let bytes = frame(&WireCommand { id: 1, body: WireCommandBody::Ping });
        assert!(take_frame::<WireCommand>(&bytes[..bytes.len() - 1], 1024).expect("ok").is_none());
        assert!(matches!(take_frame::<WireCommand>(&bytes, 1), Err(DecodeError::Frame(_))));
        assert!(matches!(take_frame::<WireCommand>(&[3, 0xff, 0xff, 0xff], 1024), Err(DecodeError::Malformed(_))));
        let reserved = postcard::to_stdvec(&WireCommand { id: RESERVED_ID_BASE, body: WireCommandBody::Ping })
            .expect("encode");
        assert!(matches!(decode_command(&reserved), Err(DecodeError::Invalid(_))));
        assert!(decode_command(&[]).is_err());
    }

    #[test]
    fn replies_and_pushes_carry_subscription_ids() {
        let mut subs = BTreeMap::new();
        subs.insert("srv".to_string(), SubscribeResult::default());
        let reply = Reply {
            id: 1,
            body: ReplyBody::Connect(Box::new(ConnectResult {
                client: "c".into(),
                subs,
                ping: 25,
                pong: true,
                ..Default::default()
            })),
        };
        let wire = reply_to_wire(&reply, 0, &|ch| if ch == "srv" { 9 } else { 0 });
        let WireReplyBody::Connect(r) = wire.body else { panic!("connect") };
        assert_eq!(r.subs[0].sub, 9);
        let sub = reply_to_wire(&Reply { id: 2, body: ReplyBody::Subscribe(Box::default()) }, 4, &|_| 0);
        assert!(matches!(sub.body, WireReplyBody::Subscribe(4, _)));
        let err = reply_to_wire(&Reply { id: 3, body: ReplyBody::Error(ClientError::PermissionDenied) }, 0, &|_| 0);
        assert_eq!(err.body, WireReplyBody::Error(103, "permission denied".into(), false));
        let unsub = Push::Unsubscribe { channel: "c".into(), reason: UnsubscribeReason::Server };
        assert_eq!(
            push_to_frame(&unsub, 0),
            Some(ServerFrame::Push(WirePush::Unsubscribe("c".into(), 2000, "server unsubscribe".into())))
        );
        assert_eq!(push_to_frame(&Push::Disconnect(Disconnect::SHUTDOWN), 0), Some(ServerFrame::Disconnect(3001, "shutdown".into())));
        assert_eq!(push_to_frame(&Push::Refresh(Expiry { expires: true, ttl: 5 }), 0), Some(ServerFrame::Push(WirePush::Refresh(true, 5))));
        let p = Arc::new(Publication { channel: "c".into(), data: Bytes::from_static(b"x"), ..Default::default() });
        assert_eq!(push_to_frame(&Push::Publication(p), 0), None);
    }

    #[test]
    fn datagrams_split_back_into_id_and_publication() {
        let p = Publication { channel: "c".into(), data: Bytes::from_static(b"hello"), offset: 5, ..Default::default() };
        let body = encode_publication(&p);
        let mut d = Vec::new();
        put_datagram(&mut d, 300, &body);
        let (sub, rest) = split_datagram(&d).expect("split");
        assert_eq!(sub, 300);
        let back: WirePublication = postcard::from_bytes(rest).expect("publication");
        assert_eq!(back.data, Bytes::from_static(b"hello"));
        assert_eq!(back.offset, 5);
        assert!(split_datagram(&[0x80, 0x80]).is_err());
        assert!(split_datagram(&[0xff; 6]).is_err());
    }
}
