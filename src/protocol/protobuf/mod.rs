//! Centrifugo protocol v2 in Protobuf: commands in, replies and pushes out, for the
//! official SDKs' `protobuf` format (Swift, Java/Kotlin and Dart speak nothing else).
//!
//! The wire types are `messages` (prost derive, field numbers of reference §2.12); this
//! file translates them to and from the model (`super`), so the session never knows
//! which codec a connection speaks. Every message on every transport is varint-length
//! delimited (`writeDelimited`): a frame holds one or more of them back to back, and
//! every encoder here writes the prefix, so a transport only concatenates. Payloads
//! (`data`, `info`) are raw bytes both ways: what a JSON client published reaches a
//! Protobuf client as its JSON text, and binary data passes untouched.
//!
//! Input rules (each a [`DecodeError`], which the driver answers with 3501; never a panic):
//! - a length prefix that is not a varint of at most 5 bytes, or that runs past the end
//!   of the frame (a truncated message);
//! - a message prost refuses: a wrong wire type for a known field, a truncated field,
//!   invalid UTF-8 in a string, nesting over prost's recursion limit (100);
//! - a frame holding no message.
//!
//! Unknown fields are skipped, as every Protobuf decoder (Centrifugo's included) does:
//! that is what lets SDKs newer than this table talk to it. The per-message size limit
//! is the transport's (the WebSocket frame limit, the stream limit of WebTransport).
//! Pure data, no I/O.

pub mod messages;

use bytes::Bytes;
use prost::Message as _;

use super::framing::{self, VarintCheck};
use super::{
    ChannelRequest, ClientError, ClientInfo, Command, CommandBody, ConnectRequest, ConnectResult, Expiry,
    HistoryRequest, Publication, PublishRequest, Push, RefreshRequest, Reply, ReplyBody, RpcRequest, SendRequest,
    StreamPosition, SubRefreshRequest, SubscribeRequest, SubscribeResult,
};
use messages as wire;

/// Why Protobuf bytes could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// A length prefix longer than 5 bytes, or one that runs past the end of the frame.
    #[error("truncated or malformed length prefix")]
    Truncated,
    /// The message is not a valid Protobuf message of the expected type.
    #[error("malformed Protobuf message: {0}")]
    Malformed(#[from] prost::DecodeError),
    /// A frame (or an emulation request) with no command in it.
    #[error("no command in the frame")]
    Empty,
}

/// The server's ping: an empty Reply, delimited (a zero length).
pub const PING: &[u8] = &[0];

/// Splits a whole frame into its varint-delimited messages, without copying: the first
/// bad prefix ends the iteration with [`DecodeError::Truncated`].
pub fn messages(frame: &[u8]) -> impl Iterator<Item = Result<&[u8], DecodeError>> {
    let mut rest = frame;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        // The frame itself is bounded by the transport: no message can be longer.
        match framing::check_varint(rest, rest.len()) {
            Ok(VarintCheck::Complete { header, len }) => {
                let body = &rest[header..header + len];
                rest = &rest[header + len..];
                Some(Ok(body))
            }
            Ok(VarintCheck::Incomplete) | Err(_) => {
                rest = &[];
                Some(Err(DecodeError::Truncated))
            }
        }
    })
}

/// Decodes a frame of varint-delimited commands, appending them to `out` in order (the
/// ones before a bad message are kept, so the driver can run them before it closes).
pub fn decode_commands(frame: &[u8], out: &mut Vec<Command>) -> Result<(), DecodeError> {
    let before = out.len();
    for body in messages(frame) {
        out.push(decode_command(body?)?);
    }
    if out.len() == before {
        return Err(DecodeError::Empty);
    }
    Ok(())
}

/// Decodes one command (the body of one delimited message).
pub fn decode_command(body: &[u8]) -> Result<Command, DecodeError> {
    Ok(command_from_wire(wire::Command::decode(body)?))
}

/// An `/emulation` request in Protobuf: session, node and the commands it carries.
#[derive(Debug)]
pub struct Emulation {
    /// Session id.
    pub session: String,
    /// Node id.
    pub node: String,
    /// The commands of `data`, in order.
    pub commands: Vec<Command>,
}

/// Decodes an `EmulationRequest` body (its `data` is varint-delimited commands; none at
/// all is an empty batch, as in JSON).
pub fn decode_emulation(body: &[u8]) -> Result<Emulation, DecodeError> {
    let req = wire::EmulationRequest::decode(body)?;
    let mut commands = Vec::new();
    if !req.data.is_empty() {
        decode_commands(&req.data, &mut commands)?;
    }
    Ok(Emulation { session: req.session, node: req.node, commands })
}

fn opt(b: Bytes) -> Option<Bytes> {
    (!b.is_empty()).then_some(b)
}

fn subscribe_from_wire(s: wire::SubscribeRequest) -> SubscribeRequest {
    SubscribeRequest {
        channel: s.channel,
        token: s.token,
        recover: s.recover,
        epoch: s.epoch,
        offset: s.offset,
        data: opt(s.data),
        positioned: s.positioned,
        recoverable: s.recoverable,
        join_leave: s.join_leave,
        delta: s.delta,
        flag: s.flag,
        kind: s.r#type,
    }
}

/// The model command of a wire command: the first method field present counts, as in
/// the JSON codec; no method is a pong with id 0 and an unknown command otherwise.
pub fn command_from_wire(c: wire::Command) -> Command {
    let body = if let Some(r) = c.connect {
        CommandBody::Connect(ConnectRequest {
            token: r.token,
            data: opt(r.data),
            subs: r.subs.into_iter().map(|(k, v)| (k, subscribe_from_wire(v))).collect(),
            name: r.name,
            version: r.version,
            headers: r.headers,
        })
    } else if let Some(s) = c.subscribe {
        CommandBody::Subscribe(subscribe_from_wire(s))
    } else if let Some(r) = c.unsubscribe {
        CommandBody::Unsubscribe(ChannelRequest { channel: r.channel })
    } else if let Some(p) = c.publish {
        CommandBody::Publish(PublishRequest { channel: p.channel, data: opt(p.data) })
    } else if let Some(r) = c.presence {
        CommandBody::Presence(ChannelRequest { channel: r.channel })
    } else if let Some(r) = c.presence_stats {
        CommandBody::PresenceStats(ChannelRequest { channel: r.channel })
    } else if let Some(h) = c.history {
        CommandBody::History(HistoryRequest {
            channel: h.channel,
            limit: h.limit,
            since: h.since.map(|p| StreamPosition { offset: p.offset, epoch: p.epoch }),
            reverse: h.reverse,
        })
    } else if c.ping.is_some() {
        CommandBody::Ping
    } else if let Some(s) = c.send {
        CommandBody::Send(SendRequest { data: opt(s.data) })
    } else if let Some(r) = c.rpc {
        CommandBody::Rpc(RpcRequest { method: r.method, data: opt(r.data) })
    } else if let Some(r) = c.refresh {
        CommandBody::Refresh(RefreshRequest { token: r.token })
    } else if let Some(r) = c.sub_refresh {
        CommandBody::SubRefresh(SubRefreshRequest { channel: r.channel, token: r.token })
    } else if c.id == 0 {
        CommandBody::Empty
    } else {
        CommandBody::Unknown
    };
    Command { id: c.id, body }
}

fn bytes_of(b: Option<&Bytes>) -> Bytes {
    b.cloned().unwrap_or_default()
}

/// The wire form of a client info.
pub fn info_to_wire(i: &ClientInfo) -> wire::ClientInfo {
    wire::ClientInfo {
        user: i.user.clone(),
        client: i.client.clone(),
        conn_info: bytes_of(i.conn_info.as_ref()),
        chan_info: bytes_of(i.chan_info.as_ref()),
    }
}

/// The wire form of a publication (its channel travels in the push, not here).
pub fn publication_to_wire(p: &Publication) -> wire::Publication {
    wire::Publication {
        data: p.data.clone(),
        info: p.info.as_ref().map(info_to_wire),
        offset: p.offset,
        tags: p.tags.clone(),
        delta: p.delta,
        ..Default::default()
    }
}

fn subscribe_result_to_wire(r: &SubscribeResult) -> wire::SubscribeResult {
    wire::SubscribeResult {
        expires: r.expiry.expires,
        ttl: r.expiry.ttl,
        recoverable: r.recoverable,
        epoch: r.epoch.clone(),
        publications: r.publications.iter().map(|p| publication_to_wire(p)).collect(),
        recovered: r.recovered,
        offset: r.offset,
        positioned: r.positioned,
        data: bytes_of(r.data.as_ref()),
        was_recovering: r.was_recovering,
        delta: r.delta,
        ..Default::default()
    }
}

fn connect_result_to_wire(r: &ConnectResult) -> wire::ConnectResult {
    wire::ConnectResult {
        client: r.client.clone(),
        version: r.version.clone(),
        expires: r.expiry.expires,
        ttl: r.expiry.ttl,
        data: bytes_of(r.data.as_ref()),
        subs: r
            .subs
            .iter()
            .map(|(k, v)| wire::SubscribeResultEntry { key: k.clone(), value: Some(subscribe_result_to_wire(v)) })
            .collect(),
        ping: r.ping,
        pong: r.pong,
        session: r.session.clone(),
        node: r.node.clone(),
        time: 0,
    }
}

fn error_to_wire(e: ClientError) -> wire::Error {
    wire::Error { code: e.code(), message: e.message().to_owned(), temporary: e.temporary() }
}

/// The wire form of a reply.
pub fn reply_to_wire(reply: &Reply) -> wire::Reply {
    let mut out = wire::Reply { id: reply.id, ..Default::default() };
    match &reply.body {
        ReplyBody::Error(e) => out.error = Some(error_to_wire(*e)),
        ReplyBody::Connect(r) => out.connect = Some(connect_result_to_wire(r)),
        ReplyBody::Subscribe(r) => out.subscribe = Some(subscribe_result_to_wire(r)),
        ReplyBody::Unsubscribe => out.unsubscribe = Some(wire::UnsubscribeResult {}),
        ReplyBody::Publish => out.publish = Some(wire::PublishResult {}),
        ReplyBody::Ping => out.ping = Some(wire::PingResult {}),
        ReplyBody::Presence(p) => {
            out.presence = Some(wire::PresenceResult {
                presence: p
                    .presence
                    .iter()
                    .map(|(k, v)| wire::ClientInfoEntry { key: k.clone(), value: Some(info_to_wire(v)) })
                    .collect(),
            });
        }
        ReplyBody::PresenceStats(s) => {
            out.presence_stats = Some(wire::PresenceStatsResult { num_clients: s.num_clients, num_users: s.num_users });
        }
        ReplyBody::History(h) => {
            out.history = Some(wire::HistoryResult {
                publications: h.publications.iter().map(|p| publication_to_wire(p)).collect(),
                epoch: h.epoch.clone(),
                offset: h.offset,
            });
        }
        ReplyBody::Rpc(data) => out.rpc = Some(wire::RpcResult { data: bytes_of(data.as_ref()) }),
        ReplyBody::Refresh(r) => {
            out.refresh = Some(wire::RefreshResult {
                client: r.client.clone(),
                version: r.version.clone(),
                expires: r.expiry.expires,
                ttl: r.expiry.ttl,
            });
        }
        ReplyBody::SubRefresh(e) => out.sub_refresh = Some(wire::SubRefreshResult { expires: e.expires, ttl: e.ttl, items: Vec::new() }),
    }
    out
}

fn refresh_to_wire(e: Expiry) -> wire::Refresh {
    wire::Refresh { expires: e.expires, ttl: e.ttl }
}

/// The wire form of a push.
pub fn push_to_wire(push: &Push) -> wire::Push {
    let mut out = wire::Push::default();
    match push {
        Push::Publication(p) => {
            out.channel = p.channel.to_string();
            out.r#pub = Some(publication_to_wire(p));
        }
        Push::Join { channel, info } => {
            out.channel = channel.clone();
            out.join = Some(wire::Join { info: Some(info_to_wire(info)) });
        }
        Push::Leave { channel, info } => {
            out.channel = channel.clone();
            out.leave = Some(wire::Leave { info: Some(info_to_wire(info)) });
        }
        Push::Unsubscribe { channel, reason } => {
            out.channel = channel.clone();
            out.unsubscribe = Some(wire::Unsubscribe { code: reason.code(), reason: reason.reason().to_owned() });
        }
        Push::Subscribe { channel, result } => {
            out.channel = channel.clone();
            out.subscribe = Some(wire::Subscribe {
                recoverable: result.recoverable,
                epoch: result.epoch.clone(),
                offset: result.offset,
                positioned: result.positioned,
                data: bytes_of(result.data.as_ref()),
            });
        }
        Push::Message(data) => out.message = Some(wire::Message { data: data.clone() }),
        Push::Connect(r) => {
            let w = connect_result_to_wire(r);
            out.connect = Some(wire::Connect {
                client: w.client,
                version: w.version,
                data: w.data,
                subs: w.subs,
                expires: w.expires,
                ttl: w.ttl,
                ping: w.ping,
                pong: w.pong,
                session: w.session,
                node: w.node,
                time: w.time,
            });
        }
        Push::Disconnect(d) => {
            out.disconnect = Some(wire::Disconnect { code: u32::from(d.code), reason: d.reason.to_string(), reconnect: false });
        }
        Push::Refresh(e) => out.refresh = Some(refresh_to_wire(*e)),
    }
    out
}

/// Appends one reply, delimited.
pub fn encode_reply(out: &mut Vec<u8>, reply: &Reply) {
    put_delimited(out, &reply_to_wire(reply));
}

/// Appends one push, delimited: a Reply with id 0 carrying it (bidirectional framing;
/// Protobuf is served on bidirectional transports only).
pub fn encode_push(out: &mut Vec<u8>, push: &Push) {
    put_delimited(out, &wire::Reply { push: Some(push_to_wire(push)), ..Default::default() });
}

/// A publication's push, delimited: the bytes fan-out shares between Protobuf subscribers.
pub fn encode_publication(p: &Publication) -> Vec<u8> {
    let reply = wire::Reply {
        push: Some(wire::Push { channel: p.channel.to_string(), r#pub: Some(publication_to_wire(p)), ..Default::default() }),
        ..Default::default()
    };
    let mut out = Vec::with_capacity(reply.encoded_len() + 5);
    put_delimited(&mut out, &reply);
    out
}

/// Appends `msg` with its varint length in front.
pub fn put_delimited<M: prost::Message>(out: &mut Vec<u8>, msg: &M) {
    let len = msg.encoded_len();
    out.reserve(len + 5);
    framing::put_varint(out, len);
    // Encoding into a Vec grows it as needed: it cannot run out of room.
    let _ = msg.encode(out);
}

#[cfg(test)]
mod tests;
