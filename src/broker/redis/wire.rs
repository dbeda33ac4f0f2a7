//! What travels through Redis: PUB/SUB messages, history entries and presence values.
//!
//! A PUB/SUB message starts with one byte naming its kind:
//! - `P<offset>\n<epoch>\n<body>`: a publication. The publish script writes the offset and
//!   epoch it assigned in front of the body the node encoded, so the very bytes it stores
//!   in the history stream are the bytes it PUBLISHes (and a history read decodes them the
//!   same way). Without history the offset is 0 and the epoch empty.
//! - `J<body>` / `L<body>`: a client joined / left a channel.
//! - `C<body>`: a control action for connections on every node.
//!
//! Bodies are postcard encodings of the small mirror types below, so the hub's model types
//! need no serde derives and the wire can stay stable while they change (the node-to-node
//! messages, which exist only to travel between nodes, use the hub's types as they are). Decoding checks
//! everything: a foreign or truncated message is an error, never a panic.

use std::borrow::Cow;
use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::hub::{Control, NodeInfo, ServerSubscribe, SurveyAnswer, SurveyQuery, Target};
use crate::protocol::{ClientInfo, Disconnect, Publication, StreamPosition};

/// A message that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("undecodable redis message: {0}")]
pub(crate) struct WireError(pub(crate) String);

fn err(what: impl Into<String>) -> WireError {
    WireError(what.into())
}

#[derive(Serialize, Deserialize)]
struct WireInfo {
    user: String,
    client: String,
    conn_info: Option<Bytes>,
    chan_info: Option<Bytes>,
}

impl From<&ClientInfo> for WireInfo {
    fn from(i: &ClientInfo) -> Self {
        Self { user: i.user.clone(), client: i.client.clone(), conn_info: i.conn_info.clone(), chan_info: i.chan_info.clone() }
    }
}

impl From<WireInfo> for ClientInfo {
    fn from(i: WireInfo) -> Self {
        Self { user: i.user, client: i.client, conn_info: i.conn_info, chan_info: i.chan_info }
    }
}

#[derive(Serialize, Deserialize)]
struct WirePublication {
    channel: String,
    data: Bytes,
    info: Option<WireInfo>,
    tags: BTreeMap<String, String>,
    delta: bool,
}

#[derive(Serialize, Deserialize)]
struct WireJoinLeave {
    channel: String,
    info: WireInfo,
}

#[derive(Serialize, Deserialize)]
struct WireTarget {
    user: String,
    client: String,
    session: String,
}

#[derive(Serialize, Deserialize)]
enum WireControl {
    Subscribe {
        target: WireTarget,
        channel: String,
        info: Option<Bytes>,
        data: Option<Bytes>,
        expire_at: Option<u64>,
        recover_since: Option<(u64, String)>,
    },
    Unsubscribe(WireTarget, String),
    Disconnect {
        target: WireTarget,
        whitelist: Vec<String>,
        code: u16,
        reason: String,
    },
    InsufficientState(String),
    Refresh {
        target: WireTarget,
        expired: bool,
        expire_at: Option<u64>,
        info: Option<Bytes>,
    },
    // The node-to-node messages' types are the hub's own, which derive serde for this.
    Node {
        info: NodeInfo,
        leaving: bool,
    },
    Survey {
        id: u64,
        from: String,
        query: SurveyQuery,
    },
    SurveyReply {
        id: u64,
        to: String,
        from: String,
        answer: SurveyAnswer,
    },
}

fn target(t: &Target) -> WireTarget {
    WireTarget { user: t.user.clone(), client: t.client.clone(), session: t.session.clone() }
}

fn from_target(t: WireTarget) -> Target {
    Target { user: t.user, client: t.client, session: t.session }
}

fn postcard_bytes<T: Serialize>(kind: u8, value: &T) -> Vec<u8> {
    let mut out = vec![kind];
    // Serializing owned strings, bytes, maps and integers into a Vec cannot fail.
    out.extend(postcard::to_allocvec(value).unwrap_or_default());
    out
}

fn decode<'a, T: Deserialize<'a>>(body: &'a [u8], what: &str) -> Result<T, WireError> {
    postcard::from_bytes(body).map_err(|e| err(format!("{what}: {e}")))
}

/// The body of a publication (what the publish script prefixes with offset and epoch).
pub(crate) fn publication_body(p: &Publication) -> Vec<u8> {
    let wire = WirePublication {
        channel: p.channel.to_string(),
        data: p.data.clone(),
        info: p.info.as_ref().map(WireInfo::from),
        tags: p.tags.clone(),
        // Between nodes `delta` carries delta eligibility (a patch is made per node, at
        // fan-out, against the previous publication it delivered).
        delta: p.delta_eligible,
    };
    postcard::to_allocvec(&wire).unwrap_or_default()
}

/// A whole publication message as the publish script builds it (tests and the script's twin).
#[cfg(test)]
pub(crate) fn publication_message(p: &Publication, position: &StreamPosition) -> Vec<u8> {
    let mut out = format!("P{}\n{}\n", position.offset, position.epoch).into_bytes();
    out.extend(publication_body(p));
    out
}

/// A join (`join = true`) or leave message.
pub(crate) fn join_leave_message(channel: &str, info: &ClientInfo, join: bool) -> Vec<u8> {
    postcard_bytes(if join { b'J' } else { b'L' }, &WireJoinLeave { channel: channel.to_string(), info: info.into() })
}

/// A control message.
pub(crate) fn control_message(c: &Control) -> Vec<u8> {
    let wire = match c {
        Control::Subscribe(t, s) => WireControl::Subscribe {
            target: target(t),
            channel: s.channel.clone(),
            info: s.info.clone(),
            data: s.data.clone(),
            expire_at: s.expire_at,
            recover_since: s.recover_since.as_ref().map(|p| (p.offset, p.epoch.clone())),
        },
        Control::Unsubscribe(t, ch) => WireControl::Unsubscribe(target(t), ch.clone()),
        Control::Disconnect(t, whitelist, d) => WireControl::Disconnect {
            target: target(t),
            whitelist: whitelist.clone(),
            code: d.code,
            reason: d.reason.to_string(),
        },
        Control::InsufficientState(ch) => WireControl::InsufficientState(ch.clone()),
        Control::Refresh { target: t, expired, expire_at, info } => {
            WireControl::Refresh { target: target(t), expired: *expired, expire_at: *expire_at, info: info.clone() }
        }
        Control::Node { info, leaving } => WireControl::Node { info: info.clone(), leaving: *leaving },
        Control::Survey { id, from, query } => WireControl::Survey { id: *id, from: from.clone(), query: query.clone() },
        Control::SurveyReply { id, to, from, answer } => {
            WireControl::SurveyReply { id: *id, to: to.clone(), from: from.clone(), answer: answer.clone() }
        }
    };
    postcard_bytes(b'C', &wire)
}

/// A presence entry's value.
pub(crate) fn presence_value(info: &ClientInfo) -> Vec<u8> {
    postcard::to_allocvec(&WireInfo::from(info)).unwrap_or_default()
}

/// Decodes a presence entry's value.
pub(crate) fn decode_presence(value: &[u8]) -> Result<ClientInfo, WireError> {
    decode::<WireInfo>(value, "presence").map(ClientInfo::from)
}

/// A decoded PUB/SUB message.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Message {
    /// A publication with the epoch of the stream it was appended to (empty without history).
    Publication {
        /// The publication, its offset set.
        publication: Publication,
        /// The stream's epoch.
        epoch: String,
    },
    /// A join or leave.
    JoinLeave {
        /// The channel.
        channel: String,
        /// Who.
        info: ClientInfo,
        /// Joined (true) or left.
        join: bool,
    },
    /// A control action.
    Control(Control),
}

/// Decodes a PUB/SUB message or a history entry.
pub(crate) fn decode_message(bytes: &[u8]) -> Result<Message, WireError> {
    let (&kind, rest) = bytes.split_first().ok_or_else(|| err("empty"))?;
    match kind {
        b'P' => decode_publication(rest),
        b'J' | b'L' => {
            let w: WireJoinLeave = decode(rest, "join/leave")?;
            Ok(Message::JoinLeave { channel: w.channel, info: w.info.into(), join: kind == b'J' })
        }
        b'C' => decode_control(rest).map(Message::Control),
        other => Err(err(format!("unknown kind {other:#04x}"))),
    }
}

fn decode_publication(rest: &[u8]) -> Result<Message, WireError> {
    let mut parts = rest.splitn(3, |b| *b == b'\n');
    let (Some(offset), Some(epoch), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(err("publication header"));
    };
    let offset: u64 = std::str::from_utf8(offset)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| err("publication offset"))?;
    let epoch = std::str::from_utf8(epoch).map_err(|_| err("publication epoch"))?.to_string();
    let w: WirePublication = decode(body, "publication")?;
    let publication = Publication {
        channel: w.channel.into(),
        data: w.data,
        info: w.info.map(ClientInfo::from),
        offset,
        tags: w.tags,
        delta: false,
        delta_eligible: w.delta,
    };
    Ok(Message::Publication { publication, epoch })
}

fn decode_control(rest: &[u8]) -> Result<Control, WireError> {
    Ok(match decode::<WireControl>(rest, "control")? {
        WireControl::Subscribe { target, channel, info, data, expire_at, recover_since } => Control::Subscribe(
            from_target(target),
            ServerSubscribe {
                channel,
                info,
                data,
                expire_at,
                recover_since: recover_since.map(|(offset, epoch)| StreamPosition { offset, epoch }),
            },
        ),
        WireControl::Unsubscribe(t, ch) => Control::Unsubscribe(from_target(t), ch),
        WireControl::Disconnect { target, whitelist, code, reason } => {
            Control::Disconnect(from_target(target), whitelist, Disconnect { code, reason: Cow::Owned(reason) })
        }
        WireControl::InsufficientState(ch) => Control::InsufficientState(ch),
        WireControl::Refresh { target, expired, expire_at, info } => {
            Control::Refresh { target: from_target(target), expired, expire_at, info }
        }
        WireControl::Node { info, leaving } => Control::Node { info, leaving },
        WireControl::Survey { id, from, query } => Control::Survey { id, from, query },
        WireControl::SurveyReply { id, to, from, answer } => Control::SurveyReply { id, to, from, answer },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> ClientInfo {
        ClientInfo {
            user: "u1".into(),
            client: "c1".into(),
            conn_info: Some(Bytes::from_static(b"{\"n\":1}")),
            chan_info: None,
        }
    }

    #[test]
    fn a_publication_round_trips_with_its_offset_and_epoch() {
        let mut p = Publication {
            channel: "chat:1".into(),
            data: Bytes::from_static(b"{\"text\":\"hi\"}\xff\x00"),
            info: Some(info()),
            offset: 0,
            tags: [("k".to_string(), "v".to_string())].into(),
            delta: false,
            delta_eligible: true,
        };
        let bytes = publication_message(&p, &StreamPosition { offset: 42, epoch: "AbC123xy".into() });
        p.offset = 42;
        assert_eq!(decode_message(&bytes), Ok(Message::Publication { publication: p.clone(), epoch: "AbC123xy".into() }));
        // Without history: offset 0, empty epoch (what the script writes then).
        let mut plain = b"P0\n\n".to_vec();
        plain.extend(publication_body(&p));
        p.offset = 0;
        assert_eq!(decode_message(&plain), Ok(Message::Publication { publication: p, epoch: String::new() }));
    }

    #[test]
    fn join_leave_and_every_control_round_trip() {
        assert_eq!(
            decode_message(&join_leave_message("ch", &info(), false)),
            Ok(Message::JoinLeave { channel: "ch".into(), info: info(), join: false })
        );
        let t = Target { user: "u".into(), client: "c".into(), session: "s".into() };
        let controls = [
            Control::Subscribe(
                t.clone(),
                ServerSubscribe {
                    channel: "news".into(),
                    info: Some(Bytes::from_static(b"{}")),
                    data: None,
                    expire_at: Some(99),
                    recover_since: Some(StreamPosition { offset: 3, epoch: "e".into() }),
                },
            ),
            Control::Unsubscribe(t.clone(), "news".into()),
            Control::Disconnect(t.clone(), vec!["keep".into()], Disconnect { code: 4000, reason: Cow::Borrowed("bye") }),
            Control::Refresh { target: t, expired: true, expire_at: None, info: Some(Bytes::from_static(b"x")) },
            Control::InsufficientState("news".into()),
        ];
        for c in controls {
            assert_eq!(decode_message(&control_message(&c)), Ok(Message::Control(c.clone())));
        }
        assert_eq!(decode_presence(&presence_value(&info())), Ok(info()));
    }

    #[test]
    fn foreign_or_truncated_messages_are_errors() {
        let good = control_message(&Control::Unsubscribe(Target::default(), "x".into()));
        for bad in [&b""[..], b"X123", b"P", b"P1\nepoch", b"Pone\ne\n", b"J\xff\xff", &good[..good.len() - 1]] {
            assert!(decode_message(bad).is_err(), "{bad:?}");
        }
    }
}
