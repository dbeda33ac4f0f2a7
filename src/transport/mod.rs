//! Transports move bytes between sockets and sessions; nothing else.
//!
//! `driver` is the one connection loop every transport runs (decode, session, outbox,
//! write, timers); the rest implement its `Transport` trait with their framing only.
//! Shared here: the clock every transport feeds its session, and the JSON stream encoder:
//! everything an outbox holds is drained at once and written in as few writes as the
//! framing allows.
//!
//! Rooms: `websocket` (TCP, bidirectional and unidirectional, framing in `ws_frame`); `sse` (HTTP-streaming,
//! SSE, their unidirectional variants and the `/emulation` endpoint); `endpoint` (the client UDP port, dispatching by ALPN) to
//! `webtransport` (compatible and native modes) and `quic` (raw QUIC); `mux` (the native
//! multiplexed mode, written once for both).

pub mod driver;
pub mod endpoint;
pub mod mux;
pub mod quic;
pub mod sse;
pub mod webtransport;
pub mod websocket;
pub mod ws_frame;

use std::time::{SystemTime, UNIX_EPOCH};

use crate::hub::{Outbox, Outgoing};
use crate::protocol::codec::Codec;
use crate::protocol::{Disconnect, json};

/// Largest batch written as one frame, in bytes. Bounds the writer's buffer while a
/// burst drains; the rest goes in the next frame.
pub const MAX_BATCH_BYTES: usize = 256 * 1024;

/// Unix time in milliseconds: the `now` sessions are driven with.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// How JSON messages are laid out in the bytes a transport writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `a\nb\nc`: one WebSocket frame holding several messages.
    Joined,
    /// `a\nb\nc\n`: a byte stream (HTTP-streaming, WebTransport compatible mode).
    Terminated,
    /// `data: a\n\ndata: b\n\n`: Server-Sent Events, one event per message.
    Sse,
}

/// Encodes `items[*next..]` as JSON into `out`, laid out by `framing`, until
/// `MAX_BATCH_BYTES` or `max_messages` is reached; advances `*next` past what it took.
/// Returns the number of messages encoded. The writer of every JSON stream transport
/// (one call per chunk it writes).
pub fn encode_json(
    items: &[Outgoing],
    next: &mut usize,
    out: &mut Vec<u8>,
    codec: Codec,
    framing: Framing,
    max_messages: usize,
) -> usize {
    let wrapped = codec == Codec::Json;
    let mut count = 0;
    while *next < items.len() && out.len() < MAX_BATCH_BYTES && count < max_messages {
        let item = &items[*next];
        *next += 1;
        let start = out.len();
        match framing {
            Framing::Joined if start > 0 => out.push(b'\n'),
            Framing::Sse => out.extend_from_slice(b"data: "),
            _ => {}
        }
        match item {
            Outgoing::Publication(p) => out.extend_from_slice(p.encoded(codec)),
            Outgoing::Reply(r) => json::encode_reply(out, r),
            Outgoing::Push(p) => json::encode_push(out, p, wrapped),
            Outgoing::Ping => out.extend_from_slice(json::PING),
            // The driver hands controls to the session, never to a writer.
            Outgoing::Control(_) => {
                out.truncate(start);
                continue;
            }
        }
        match framing {
            Framing::Joined => {}
            Framing::Terminated => out.push(b'\n'),
            Framing::Sse => out.extend_from_slice(b"\n\n"),
        }
        count += 1;
    }
    count
}

/// Why a write failed: a writer stuck on a full socket is usually also the reason its
/// queue overflowed, so the slow verdict (3008) wins over a plain write error (3009).
pub fn write_failure(outbox: &Outbox) -> Disconnect {
    match outbox.closing_reason() {
        Some(d) if d == Disconnect::SLOW => d,
        _ => Disconnect::WRITE_ERROR,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;
    use crate::hub::SharedPublication;
    use crate::protocol::{Publication, Reply, ReplyBody};

    #[test]
    fn batches_are_newline_joined_without_blank_lines() {
        let p = SharedPublication::new(Arc::new(Publication {
            channel: "c".into(),
            data: Bytes::from_static(b"1"),
            ..Default::default()
        }));
        let items = vec![
            Outgoing::Reply(Box::new(Reply { id: 1, body: ReplyBody::Publish })),
            Outgoing::Publication(p),
            Outgoing::Ping,
        ];
        let (mut out, mut next) = (Vec::new(), 0);
        let n = encode_json(&items, &mut next, &mut out, Codec::Json, Framing::Joined, usize::MAX);
        assert_eq!(n, 3);
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            "{\"id\":1,\"publish\":{}}\n{\"push\":{\"channel\":\"c\",\"pub\":{\"data\":1}}}\n{}"
        );
    }

    #[test]
    fn a_batch_stops_at_the_byte_cap() {
        let p = SharedPublication::new(Arc::new(Publication {
            channel: "c".into(),
            data: Bytes::from(vec![b'1'; 100_000]),
            ..Default::default()
        }));
        let items: Vec<_> = (0..5).map(|_| Outgoing::Publication(p.clone())).collect();
        let (mut out, mut next) = (Vec::new(), 0);
        assert_eq!(encode_json(&items, &mut next, &mut out, Codec::Json, Framing::Joined, usize::MAX), 3);
        out.clear();
        assert_eq!(encode_json(&items, &mut next, &mut out, Codec::Json, Framing::Joined, usize::MAX), 2);
        assert_eq!(next, 5);
    }
}
