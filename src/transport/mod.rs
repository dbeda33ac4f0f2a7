//! Transports move bytes between sockets and sessions; nothing else.
//!
//! Shared here: the clock every transport feeds its session, and the writer's batching:
//! everything an outbox holds is drained at once and encoded into one buffer, so a burst
//! of publications costs one frame and one write per connection.
//!
//! Rooms: `websocket` (TCP, bidirectional and unidirectional); `sse` (HTTP-streaming,
//! SSE, their unidirectional variants and the `/emulation` endpoint); `endpoint` (the client UDP port, dispatching by ALPN) to
//! `webtransport` (compatible and native modes) and `quic` (raw QUIC); `mux` (the native
//! multiplexed mode, written once for both).

pub mod endpoint;
pub mod mux;
pub mod quic;
pub mod sse;
pub mod webtransport;
pub mod websocket;
pub mod ws_frame;

use std::time::{SystemTime, UNIX_EPOCH};

use crate::hub::{Control, Drained, Outbox, Outgoing};
use crate::protocol::codec::Codec;
use crate::protocol::{Disconnect, json};
use crate::session::Session;

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

/// Encodes drained items as JSON into `out`, laid out by `framing`, starting at
/// `items[*next]`, until `MAX_BATCH_BYTES` or `max_messages` is reached. Control events are
/// moved to `controls` for the session. Returns the number of messages encoded.
pub fn encode_json(
    items: &mut [Option<Outgoing>],
    next: &mut usize,
    out: &mut Vec<u8>,
    codec: Codec,
    framing: Framing,
    max_messages: usize,
    controls: &mut Vec<Control>,
) -> usize {
    let wrapped = codec == Codec::Json;
    let mut count = 0;
    while *next < items.len() && out.len() < MAX_BATCH_BYTES && count < max_messages {
        let Some(item) = items[*next].take() else {
            *next += 1;
            continue;
        };
        *next += 1;
        let start = out.len();
        match framing {
            Framing::Joined if start > 0 => out.push(b'\n'),
            Framing::Sse => out.extend_from_slice(b"data: "),
            _ => {}
        }
        match item {
            Outgoing::Publication(p) => out.extend_from_slice(p.encoded(codec)),
            Outgoing::Reply(r) => json::encode_reply(out, &r),
            Outgoing::Push(p) => json::encode_push(out, &p, wrapped),
            Outgoing::Ping => out.extend_from_slice(json::PING),
            Outgoing::Control(c) => {
                out.truncate(start);
                controls.push(c);
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

/// One writer wake-up's worth of output: everything the outbox held, encoded into
/// chunks (frames, SSE writes, stream writes) of at most [`MAX_BATCH_BYTES`], plus the
/// control events for the session and whether to close afterwards.
#[derive(Debug)]
pub struct Batch {
    /// Encoded chunks and how many messages each holds.
    pub chunks: Vec<(Vec<u8>, usize)>,
    /// Events for the session, in order.
    pub controls: Vec<Control>,
    /// Close after writing the chunks?
    pub status: Drained,
}

/// Drains `outbox` and encodes it as JSON laid out by `framing`, at most `per_chunk`
/// messages per chunk. The shared first half of every JSON transport's writer.
pub fn drain_json(outbox: &Outbox, codec: Codec, framing: Framing, per_chunk: usize) -> Batch {
    let mut drained = Vec::new();
    let status = outbox.drain(&mut drained);
    let mut items: Vec<_> = drained.into_iter().map(Some).collect();
    let (mut next, mut chunks, mut controls) = (0, Vec::new(), Vec::new());
    while next < items.len() {
        let mut chunk = Vec::new();
        let n = encode_json(&mut items, &mut next, &mut chunk, codec, framing, per_chunk, &mut controls);
        if n > 0 {
            chunks.push((chunk, n));
        }
    }
    Batch { chunks, controls, status }
}

/// Why a write failed: a writer stuck on a full socket is usually also the reason its
/// queue overflowed, so the slow verdict (3008) wins over a plain write error (3009).
pub fn write_failure(outbox: &Outbox) -> Disconnect {
    match outbox.closing_reason() {
        Some(d) if d == Disconnect::SLOW => d,
        _ => Disconnect::WRITE_ERROR,
    }
}

/// Hands drained control events to the session; a disconnect it decides closes the outbox.
pub async fn apply_controls(session: &mut Session, controls: Vec<Control>, outbox: &Outbox) {
    for control in controls {
        if let Err(d) = session.handle_control(control, now_ms()).await {
            outbox.close(d);
        }
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
        let mut items = vec![
            Some(Outgoing::Reply(Reply { id: 1, body: ReplyBody::Publish })),
            Some(Outgoing::Control(Control::Unsubscribe(Default::default(), "c".into()))),
            Some(Outgoing::Publication(p)),
            Some(Outgoing::Ping),
        ];
        let (mut out, mut controls, mut next) = (Vec::new(), Vec::new(), 0);
        let n = encode_json(&mut items, &mut next, &mut out, Codec::Json, Framing::Joined, usize::MAX, &mut controls);
        assert_eq!(n, 3);
        assert_eq!(controls.len(), 1);
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
        let mut items: Vec<_> = (0..5).map(|_| Some(Outgoing::Publication(p.clone()))).collect();
        let (mut out, mut controls, mut next) = (Vec::new(), Vec::new(), 0);
        assert_eq!(encode_json(&mut items, &mut next, &mut out, Codec::Json, Framing::Joined, usize::MAX, &mut controls), 3);
        out.clear();
        assert_eq!(encode_json(&mut items, &mut next, &mut out, Codec::Json, Framing::Joined, usize::MAX, &mut controls), 2);
        assert_eq!(next, 5);
    }
}
