//! Transports move bytes between sockets and sessions; nothing else.
//!
//! `driver` is the one connection loop every transport runs (decode, session, outbox,
//! write, timers); the rest implement its `Transport` trait with their framing only.
//! Shared here: the clock every transport feeds its session, and the stream encoder of
//! the Centrifugo codecs (JSON and Protobuf): everything an outbox holds is drained at
//! once and written in as few writes as the framing allows.
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

use std::future::Future;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::hub::{Outbox, Outgoing};
use crate::protocol::codec::Codec;
use crate::protocol::{Disconnect, Push, json, protobuf};

/// Where client connections run. The TCP listener (the server API, health, metrics, and
/// the requests that open WebSocket, SSE and HTTP-streaming connections) may have threads
/// of its own (`http_server.threads`), so that a publish request never waits in the run
/// queue behind the connection tasks its own fan-out woke; the connections it opens are
/// then handed to the runtime they run on, named here.
///
/// A connection's task is made there too, not just run there: its future is built and its
/// task allocated by a starter task on that runtime, so a connection's long-lived memory
/// does not sit in the listener thread's malloc arena among the requests' short-lived
/// buffers (measured: ~230 bytes more RSS per idle connection when it did).
#[derive(Clone, Debug, Default)]
pub struct ConnRuntime(Option<Starter>);

/// Starts connections on their runtime: a bounded queue of starts, drained by a task there.
#[derive(Clone, Debug)]
struct Starter {
    handle: tokio::runtime::Handle,
    starts: tokio::sync::mpsc::Sender<Start>,
}

/// Builds a connection's future and spawns it (called on the connections' runtime).
struct Start(Box<dyn FnOnce() + Send>);

impl std::fmt::Debug for Start {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Start")
    }
}

/// Starts queued at once; past it a connection is spawned from the listener directly.
const QUEUED_STARTS: usize = 1024;

impl ConnRuntime {
    /// Connections run on `handle` (the listener runs on another runtime). Starts a task
    /// there; it ends when the last clone of this is dropped.
    pub fn on(handle: tokio::runtime::Handle) -> Self {
        let (starts, mut queue) = tokio::sync::mpsc::channel::<Start>(QUEUED_STARTS);
        handle.spawn(async move {
            while let Some(Start(start)) = queue.recv().await {
                start();
            }
        });
        Self(Some(Starter { handle, starts }))
    }

    /// Connections run where the listener does.
    pub fn here() -> Self {
        Self(None)
    }

    /// Whether a connection's socket must move to another runtime (its I/O registration
    /// belongs to the listener's).
    pub fn moves(&self) -> bool {
        self.0.is_some()
    }

    /// Spawns the task `make` builds where connections run (built there too, see above).
    pub fn spawn<F: Future<Output = ()> + Send + 'static>(&self, make: impl FnOnce() -> F + Send + 'static) {
        let Some(starter) = &self.0 else {
            drop(tokio::spawn(make()));
            return;
        };
        let start = Start(Box::new(move || drop(tokio::spawn(make()))));
        if let Err(e) = starter.starts.try_send(start) {
            // A burst of connections (or the starter gone at shutdown): start it from here.
            let (tokio::sync::mpsc::error::TrySendError::Full(Start(start)) | tokio::sync::mpsc::error::TrySendError::Closed(Start(start))) = e;
            let _guard = starter.handle.enter();
            start();
        }
    }
}

/// Largest batch written as one frame, in bytes. Bounds the writer's buffer while a
/// burst drains; the rest goes in the next frame.
pub const MAX_BATCH_BYTES: usize = 256 * 1024;

/// Unix time in milliseconds: the `now` sessions are driven with.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// How messages are laid out in the bytes a transport writes. Protobuf messages carry
/// their own length prefix, so they are simply concatenated in every layout but SSE,
/// which is JSON only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `a\nb\nc`: one WebSocket frame holding several messages.
    Joined,
    /// `a\nb\nc\n`: a byte stream (HTTP-streaming, WebTransport compatible mode).
    Terminated,
    /// `data: a\n\ndata: b\n\n`: Server-Sent Events, one event per message.
    Sse,
}

/// Encodes `items[*next..]` in `codec` (Centrifugo JSON or Protobuf) into `out`, laid out
/// by `framing`, until `MAX_BATCH_BYTES` or `max_messages` is reached; advances `*next`
/// past what it took. Returns the number of messages encoded, or 3506 when a JSON
/// connection would receive data that is not JSON (Centrifugo's rule: binary payloads are
/// for Protobuf clients). The writer of every Centrifugo transport (one call per chunk it writes).
pub fn encode_batch(
    items: &[Outgoing],
    next: &mut usize,
    out: &mut Vec<u8>,
    codec: Codec,
    framing: Framing,
    max_messages: usize,
) -> Result<usize, Disconnect> {
    let protobuf = codec == Codec::Protobuf;
    let wrapped = codec == Codec::Json;
    let mut count = 0;
    while *next < items.len() && out.len() < MAX_BATCH_BYTES && count < max_messages {
        let item = &items[*next];
        *next += 1;
        let fits = match item {
            Outgoing::Publication(p) => p.framed(codec).fits(),
            Outgoing::Reply(r) => codec.fits_reply(r),
            Outgoing::Push(p) => codec.fits_push(p),
            Outgoing::Ping | Outgoing::Control(_) => true,
        };
        if !fits {
            return Err(Disconnect::INAPPROPRIATE_PROTOCOL);
        }
        let start = out.len();
        match framing {
            _ if protobuf => {}
            Framing::Joined if start > 0 => out.push(b'\n'),
            Framing::Sse => out.extend_from_slice(b"data: "),
            _ => {}
        }
        match item {
            Outgoing::Publication(p) => out.extend_from_slice(p.encoded(codec)),
            Outgoing::Reply(r) if protobuf => protobuf::encode_reply(out, r),
            Outgoing::Reply(r) => json::encode_reply(out, r),
            Outgoing::Push(p) if protobuf => protobuf::encode_push(out, p),
            Outgoing::Push(p) => json::encode_push(out, p, wrapped),
            Outgoing::Ping if protobuf => out.extend_from_slice(protobuf::PING),
            Outgoing::Ping => out.extend_from_slice(json::PING),
            // The driver hands controls to the session, never to a writer.
            Outgoing::Control(_) => {
                out.truncate(start);
                continue;
            }
        }
        match framing {
            _ if protobuf => {}
            Framing::Joined => {}
            Framing::Terminated => out.push(b'\n'),
            Framing::Sse => out.extend_from_slice(b"\n\n"),
        }
        count += 1;
    }
    Ok(count)
}

/// One push on its own in `codec`, with the stream layout of `framing` (a transport's
/// last words: the disconnect push).
pub fn encode_push(push: &Push, codec: Codec, framing: Framing) -> Vec<u8> {
    let mut out = Vec::new();
    if codec == Codec::Protobuf {
        protobuf::encode_push(&mut out, push);
        return out;
    }
    if framing == Framing::Sse {
        out.extend_from_slice(b"data: ");
    }
    json::encode_push(&mut out, push, codec == Codec::Json);
    match framing {
        Framing::Joined => {}
        Framing::Terminated => out.push(b'\n'),
        Framing::Sse => out.extend_from_slice(b"\n\n"),
    }
    out
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
        let n = encode_batch(&items, &mut next, &mut out, Codec::Json, Framing::Joined, usize::MAX).expect("json data");
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
        assert_eq!(encode_batch(&items, &mut next, &mut out, Codec::Json, Framing::Joined, usize::MAX), Ok(3));
        out.clear();
        assert_eq!(encode_batch(&items, &mut next, &mut out, Codec::Json, Framing::Joined, usize::MAX), Ok(2));
        assert_eq!(next, 5);
    }

    #[test]
    fn protobuf_batches_are_concatenated_delimited_messages() {
        let p = SharedPublication::new(Arc::new(Publication {
            channel: "c".into(),
            data: Bytes::from_static(&[0xff, 0]),
            ..Default::default()
        }));
        let items = vec![
            Outgoing::Reply(Box::new(Reply { id: 1, body: ReplyBody::Publish })),
            Outgoing::Publication(p.clone()),
            Outgoing::Ping,
        ];
        for framing in [Framing::Joined, Framing::Terminated] {
            let (mut out, mut next) = (Vec::new(), 0);
            assert_eq!(encode_batch(&items, &mut next, &mut out, Codec::Protobuf, framing, usize::MAX), Ok(3));
            let mut want = Vec::new();
            protobuf::encode_reply(&mut want, &Reply { id: 1, body: ReplyBody::Publish });
            want.extend_from_slice(p.encoded(Codec::Protobuf));
            want.push(0);
            assert_eq!(out, want, "{framing:?}");
        }
        // The same binary publication closes a JSON connection with 3506.
        let (mut out, mut next) = (Vec::new(), 0);
        assert_eq!(
            encode_batch(&items, &mut next, &mut out, Codec::Json, Framing::Joined, usize::MAX),
            Err(Disconnect::INAPPROPRIATE_PROTOCOL)
        );
    }
}
