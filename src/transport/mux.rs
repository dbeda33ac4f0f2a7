//! The multiplexed (native) mode, written once against a small trait that both
//! WebTransport sessions (wtransport) and raw QUIC connections (quinn) implement.
//!
//! One task per connection, like every transport: it selects over the outbox, the control
//! stream, client datagrams, finished stream writes and the session's timer. Replies and
//! non-publication pushes go on the control stream. Each subscription gets a server-opened
//! unidirectional stream (a *lane*) that starts with a [`StreamHeader`]; its publications
//! are appended to the lane's buffer and written by a future that owns the stream, so a
//! lane blocked by flow control never delays another lane or the control stream. All bytes
//! waiting in lanes count against `client.queue_max_size`: over it, the connection is
//! closed as slow (3008), exactly as a full outbox would.
//!
//! Channels with `delivery = "datagram"` send each publication as a QUIC datagram
//! (subscription id + publication) and fall back to their lane when it does not fit or the
//! peer takes no datagrams. A client datagram is a fire-and-forget publish into the
//! subscription's channel; one for an unknown subscription gets a `Notice`.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

use super::{now_ms, write_failure};
use crate::hub::{Control, Drained, Hub, Outbox, Outgoing};
use crate::protocol::codec::Codec;
use crate::protocol::native::{self, ServerFrame, StreamHeader, WireReply};
use crate::protocol::{ClientError, Command, CommandBody, Disconnect, PublishRequest, ReplyBody};
use crate::session::{Auth, Session, TransportInfo};

/// Bytes read from the control stream per call: small, because idle connections should
/// hold little; bigger frames arrive in several reads.
const READ_CHUNK_BYTES: usize = 4096;

/// How long the server waits for the peer to acknowledge its last frames before closing
/// the connection, so the disconnect frame is not lost to the close.
pub const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Notices (problems that do not close the connection) one connection may cause before it
/// is closed with 3509: bounds what a misbehaving client makes us write.
const MAX_NOTICES: u32 = 64;

/// Subscribe/unsubscribe commands remembered until their reply is written: the writer
/// needs their channel. Replies follow within one drain, so a few suffice; a session that
/// ignores commands (failed connect) cannot grow this past the cap.
const MAX_PENDING_COMMANDS: usize = 256;

/// Priority of the control stream over subscription streams (higher is sent first).
const CONTROL_PRIORITY: i32 = 1;

/// A stream or connection operation failed; the connection is gone or the peer reset it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MuxError(pub String);

/// Why a datagram was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatagramError {
    /// The peer does not take datagrams.
    Unsupported,
    /// Larger than the path allows right now.
    TooLarge,
    /// The connection is gone.
    Closed,
}

/// The sending half of a stream.
pub trait SendHalf: Send + 'static {
    /// Writes all of `buf`, waiting on flow control as needed.
    fn write_all<'a>(&'a mut self, buf: &'a [u8]) -> impl Future<Output = Result<(), MuxError>> + Send + 'a;
    /// Ends the stream and waits (bounded by the caller) until the peer has everything.
    fn finish(&mut self) -> impl Future<Output = ()> + Send + '_;
    /// Sets the send priority (higher first).
    fn set_priority(&self, priority: i32);
}

/// The receiving half of a stream.
pub trait RecvHalf: Send + 'static {
    /// Reads some bytes; `Ok(None)` at the end of the stream. Cancel-safe.
    fn read<'a>(&'a mut self, buf: &'a mut [u8]) -> impl Future<Output = Result<Option<usize>, MuxError>> + Send + 'a;
}

/// What the native mode needs from a connection.
pub trait Mux: Clone + Send + Sync + 'static {
    /// Sending half of streams.
    type Send: SendHalf;
    /// Receiving half of streams.
    type Recv: RecvHalf;
    /// Opens a server-initiated unidirectional stream with `priority`.
    fn open_uni(&self, priority: i32) -> impl Future<Output = Result<Self::Send, MuxError>> + Send;
    /// Accepts the next client-initiated bidirectional stream.
    fn accept_bi(&self) -> impl Future<Output = Result<(Self::Send, Self::Recv), MuxError>> + Send;
    /// Receives the next client datagram. Cancel-safe.
    fn read_datagram(&self) -> impl Future<Output = Result<Bytes, MuxError>> + Send;
    /// Sends a datagram now (unreliable).
    fn send_datagram(&self, datagram: Bytes) -> Result<(), DatagramError>;
    /// Largest datagram the peer takes now (None: no datagram support).
    fn max_datagram_size(&self) -> Option<usize>;
    /// Closes the connection with an application code and reason.
    fn close(&self, code: u32, reason: &[u8]);
}

// --- quinn (raw QUIC) ---------------------------------------------------------------

impl SendHalf for quinn::SendStream {
    async fn write_all<'a>(&'a mut self, buf: &'a [u8]) -> Result<(), MuxError> {
        quinn::SendStream::write_all(self, buf).await.map_err(|e| MuxError(e.to_string()))
    }

    async fn finish(&mut self) {
        if quinn::SendStream::finish(self).is_ok() {
            let _ = self.stopped().await;
        }
    }

    fn set_priority(&self, priority: i32) {
        let _ = quinn::SendStream::set_priority(self, priority);
    }
}

impl RecvHalf for quinn::RecvStream {
    async fn read<'a>(&'a mut self, buf: &'a mut [u8]) -> Result<Option<usize>, MuxError> {
        quinn::RecvStream::read(self, buf).await.map_err(|e| MuxError(e.to_string()))
    }
}

impl Mux for quinn::Connection {
    type Send = quinn::SendStream;
    type Recv = quinn::RecvStream;

    async fn open_uni(&self, priority: i32) -> Result<Self::Send, MuxError> {
        let s = quinn::Connection::open_uni(self).await.map_err(|e| MuxError(e.to_string()))?;
        let _ = s.set_priority(priority);
        Ok(s)
    }

    async fn accept_bi(&self) -> Result<(Self::Send, Self::Recv), MuxError> {
        quinn::Connection::accept_bi(self).await.map_err(|e| MuxError(e.to_string()))
    }

    async fn read_datagram(&self) -> Result<Bytes, MuxError> {
        quinn::Connection::read_datagram(self).await.map_err(|e| MuxError(e.to_string()))
    }

    fn send_datagram(&self, datagram: Bytes) -> Result<(), DatagramError> {
        quinn::Connection::send_datagram(self, datagram).map_err(|e| match e {
            quinn::SendDatagramError::UnsupportedByPeer | quinn::SendDatagramError::Disabled => {
                DatagramError::Unsupported
            }
            quinn::SendDatagramError::TooLarge => DatagramError::TooLarge,
            quinn::SendDatagramError::ConnectionLost(_) => DatagramError::Closed,
        })
    }

    fn max_datagram_size(&self) -> Option<usize> {
        quinn::Connection::max_datagram_size(self)
    }

    fn close(&self, code: u32, reason: &[u8]) {
        quinn::Connection::close(self, quinn::VarInt::from_u32(code), reason);
    }
}

// --- wtransport (WebTransport) ------------------------------------------------------

impl SendHalf for wtransport::SendStream {
    async fn write_all<'a>(&'a mut self, buf: &'a [u8]) -> Result<(), MuxError> {
        wtransport::SendStream::write_all(self, buf).await.map_err(|e| MuxError(e.to_string()))
    }

    async fn finish(&mut self) {
        let _ = wtransport::SendStream::finish(self).await;
    }

    fn set_priority(&self, priority: i32) {
        wtransport::SendStream::set_priority(self, priority);
    }
}

impl RecvHalf for wtransport::RecvStream {
    async fn read<'a>(&'a mut self, buf: &'a mut [u8]) -> Result<Option<usize>, MuxError> {
        wtransport::RecvStream::read(self, buf).await.map_err(|e| MuxError(e.to_string()))
    }
}

impl Mux for wtransport::Connection {
    type Send = wtransport::SendStream;
    type Recv = wtransport::RecvStream;

    async fn open_uni(&self, priority: i32) -> Result<Self::Send, MuxError> {
        let opening = wtransport::Connection::open_uni(self).await.map_err(|e| MuxError(e.to_string()))?;
        let s = opening.await.map_err(|e| MuxError(e.to_string()))?;
        s.set_priority(priority);
        Ok(s)
    }

    async fn accept_bi(&self) -> Result<(Self::Send, Self::Recv), MuxError> {
        wtransport::Connection::accept_bi(self).await.map_err(|e| MuxError(e.to_string()))
    }

    async fn read_datagram(&self) -> Result<Bytes, MuxError> {
        let d = self.receive_datagram().await.map_err(|e| MuxError(e.to_string()))?;
        Ok(Bytes::copy_from_slice(d.payload().as_ref()))
    }

    fn send_datagram(&self, datagram: Bytes) -> Result<(), DatagramError> {
        wtransport::Connection::send_datagram(self, datagram).map_err(|e| match e {
            wtransport::error::SendDatagramError::UnsupportedByPeer => DatagramError::Unsupported,
            wtransport::error::SendDatagramError::TooLarge => DatagramError::TooLarge,
            wtransport::error::SendDatagramError::NotConnected => DatagramError::Closed,
        })
    }

    fn max_datagram_size(&self) -> Option<usize> {
        wtransport::Connection::max_datagram_size(self)
    }

    fn close(&self, code: u32, reason: &[u8]) {
        wtransport::Connection::close(self, wtransport::VarInt::from_u32(code), reason);
    }
}

// --- the native driver --------------------------------------------------------------

/// What the native mode needs from the server.
#[derive(Clone, Debug)]
pub struct Ctx {
    /// The hub.
    pub hub: Hub,
    /// Token verifiers.
    pub auth: Arc<Auth>,
    /// Largest inbound control frame in bytes (`webtransport.message_size_limit`).
    pub message_size_limit: usize,
    /// Flips to true when the server shuts down.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}

/// One subscription's delivery path.
struct Lane<S> {
    channel: Arc<str>,
    datagram: bool,
    /// The stream, when opened and not lent to a write in flight.
    stream: Option<S>,
    /// A write (or open, or finish) is in flight and holds the stream.
    busy: bool,
    /// Bytes waiting for the next write (starts with the stream header).
    pending: Vec<u8>,
    /// Unsubscribed: finish the stream once `pending` is written.
    closing: bool,
}

/// What a write in flight hands back.
struct Written<S> {
    sub: u32,
    stream: Option<S>,
    bytes: usize,
    result: Result<(), MuxError>,
    finished: bool,
}

type InFlight<S> = Pin<Box<dyn Future<Output = Written<S>> + Send>>;

/// The lanes of one connection.
struct Lanes<M: Mux> {
    mux: M,
    lanes: HashMap<u32, Lane<M::Send>>,
    by_channel: HashMap<Arc<str>, u32>,
    next_sub: u32,
    queued: usize,
    max_queued: usize,
    in_flight: FuturesUnordered<InFlight<M::Send>>,
    opened: u64,
}

impl<M: Mux> Lanes<M> {
    fn new(mux: M, max_queued: usize) -> Self {
        Self {
            mux,
            lanes: HashMap::new(),
            by_channel: HashMap::new(),
            next_sub: 1,
            queued: 0,
            max_queued,
            in_flight: FuturesUnordered::new(),
            opened: 0,
        }
    }

    fn sub_of(&self, channel: &str) -> u32 {
        self.by_channel.get(channel).copied().unwrap_or(0)
    }

    /// The subscription id of `channel`, creating its lane (and, for stream delivery,
    /// opening its stream) when it has none.
    fn open(&mut self, channel: &str, datagram: bool) -> u32 {
        if let Some(sub) = self.by_channel.get(channel) {
            return *sub;
        }
        let sub = self.next_sub;
        self.next_sub = self.next_sub.wrapping_add(1).max(1);
        let channel: Arc<str> = Arc::from(channel);
        let mut pending = Vec::new();
        native::put_frame(&mut pending, &StreamHeader { sub, channel: channel.to_string() });
        self.queued += pending.len();
        self.by_channel.insert(channel.clone(), sub);
        self.lanes.insert(sub, Lane { channel, datagram, stream: None, busy: false, pending, closing: false });
        if !datagram {
            self.start(sub);
        }
        sub
    }

    /// Ends `channel`'s lane: written out, then finished.
    fn close(&mut self, channel: &str) {
        let Some(sub) = self.by_channel.remove(channel) else { return };
        let Some(lane) = self.lanes.get_mut(&sub) else { return };
        lane.closing = true;
        if lane.stream.is_none() && !lane.busy {
            // Never opened (a datagram lane): nothing to finish.
            self.queued -= lane.pending.len();
            self.lanes.remove(&sub);
            return;
        }
        self.start(sub);
    }

    /// Queues a publication body for `channel`. Err(SLOW) when the connection's bound is passed.
    fn publish(&mut self, channel: &str, body: &Bytes) -> Result<bool, Disconnect> {
        let Some(&sub) = self.by_channel.get(channel) else { return Ok(false) };
        let Some(lane) = self.lanes.get_mut(&sub) else { return Ok(false) };
        if lane.datagram {
            let mut d = Vec::with_capacity(body.len() + 5);
            native::put_datagram(&mut d, sub, body);
            let fits = self.mux.max_datagram_size().is_some_and(|max| d.len() <= max);
            if fits && self.mux.send_datagram(Bytes::from(d)).is_ok() {
                return Ok(true);
            }
        }
        let before = lane.pending.len();
        crate::protocol::framing::put_varint(&mut lane.pending, body.len());
        lane.pending.extend_from_slice(body);
        self.queued += lane.pending.len() - before;
        if self.queued > self.max_queued {
            return Err(Disconnect::SLOW);
        }
        self.start(sub);
        Ok(true)
    }

    /// Starts a write on `sub`'s lane unless one is in flight.
    fn start(&mut self, sub: u32) {
        let Some(lane) = self.lanes.get_mut(&sub) else { return };
        if lane.busy || (lane.pending.is_empty() && !(lane.closing && lane.stream.is_some())) {
            return;
        }
        lane.busy = true;
        let buf = std::mem::take(&mut lane.pending);
        let finish = lane.closing;
        let stream = lane.stream.take();
        let mux = self.mux.clone();
        if stream.is_none() {
            self.opened += 1;
        }
        self.in_flight.push(Box::pin(async move {
            let bytes = buf.len();
            let mut stream = match stream {
                Some(s) => s,
                None => match mux.open_uni(0).await {
                    Ok(s) => s,
                    Err(e) => return Written { sub, stream: None, bytes, result: Err(e), finished: false },
                },
            };
            let mut result = if buf.is_empty() { Ok(()) } else { stream.write_all(&buf).await };
            if finish && result.is_ok() {
                match tokio::time::timeout(CLOSE_GRACE, stream.finish()).await {
                    Ok(()) => {}
                    Err(_) => result = Err(MuxError("finish timed out".into())),
                }
            }
            Written { sub, stream: Some(stream), bytes, result, finished: finish }
        }));
    }

    /// Takes back a finished write; starts the next one for that lane if bytes are waiting.
    fn written(&mut self, w: Written<M::Send>) {
        self.queued = self.queued.saturating_sub(w.bytes);
        let Some(lane) = self.lanes.get_mut(&w.sub) else { return };
        lane.busy = false;
        if let Err(e) = &w.result {
            tracing::debug!(channel = %lane.channel, error = %e, "subscription stream failed");
        }
        if w.result.is_err() || w.finished {
            // A failed stream (the client stopped it, or the connection is gone) takes
            // nothing more; its channel stays subscribed until the session says otherwise.
            self.queued = self.queued.saturating_sub(lane.pending.len());
            let channel = lane.channel.clone();
            self.lanes.remove(&w.sub);
            if self.by_channel.get(&channel) == Some(&w.sub) {
                self.by_channel.remove(&channel);
            }
            return;
        }
        lane.stream = w.stream;
        self.start(w.sub);
    }

    fn channel_of(&self, sub: u32) -> Option<&Arc<str>> {
        self.lanes.get(&sub).filter(|l| !l.closing).map(|l| &l.channel)
    }
}

/// A remembered subscribe/unsubscribe command, until its reply is written.
enum PendingCommand {
    Subscribe(String),
    Unsubscribe(String),
}

/// Drives one native-mode connection whose control stream is `control` until it closes.
pub async fn run<M: Mux>(ctx: Ctx, mux: M, control: (M::Send, M::Recv), info: TransportInfo) {
    let metrics = ctx.hub.metrics().clone();
    let tm = metrics.transport(info.name);
    let cfg = ctx.hub.config().clone();
    let outbox = Outbox::new(cfg.client.queue_max_size);
    let mut session = Session::new(ctx.hub.clone(), ctx.auth.clone(), outbox.clone(), info, now_ms());
    let (mut send, mut recv) = control;
    send.set_priority(CONTROL_PRIORITY);
    let mut lanes = Lanes::new(mux.clone(), cfg.client.queue_max_size);
    let write_timeout = cfg.websocket.write_timeout.0;
    let mut shutdown = ctx.shutdown.clone();
    let mut pending: VecDeque<(u32, PendingCommand)> = VecDeque::new();
    let mut drained = Vec::new();
    let mut controls = Vec::new();
    let mut out = Vec::new();
    let mut inbuf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; READ_CHUNK_BYTES];
    let mut notices = 0u32;
    let mut next_datagram_id = native::RESERVED_ID_BASE;

    let close: Option<Disconnect> = loop {
        let wait = Duration::from_millis(session.next_deadline().saturating_sub(now_ms()));
        tokio::select! {
            biased;
            () = outbox.notified() => {
                let status = outbox.drain(&mut drained);
                let mut slow = None;
                for item in drained.drain(..) {
                    match item {
                        Outgoing::Publication(p) => {
                            let body = p.encoded(Codec::Native);
                            match lanes.publish(&p.publication.channel, body) {
                                Ok(true) => { tm.messages_sent.fetch_add(1, Ordering::Relaxed); }
                                Ok(false) => {}
                                Err(d) => { slow = Some(d); break; }
                            }
                        }
                        Outgoing::Reply(r) => {
                            if r.id >= native::RESERVED_ID_BASE {
                                // A datagram publish: only failures are reported.
                                if let ReplyBody::Error(e) = r.body {
                                    notices += 1;
                                    native::put_frame(&mut out, &ServerFrame::Notice(e.code(), format!("datagram publish: {}", e.message())));
                                }
                                continue;
                            }
                            let mut sub = 0;
                            let cmd = pending.iter().position(|(id, _)| *id == r.id).and_then(|i| pending.remove(i));
                            match (cmd, &r.body) {
                                (Some((_, PendingCommand::Subscribe(ch))), ReplyBody::Subscribe(_)) => {
                                    sub = lanes.open(&ch, datagram_delivery(&ctx.hub, &ch));
                                }
                                (Some((_, PendingCommand::Unsubscribe(ch))), ReplyBody::Unsubscribe)
                                    if !session.channels().any(|c| c == ch) =>
                                {
                                    lanes.close(&ch);
                                }
                                (_, ReplyBody::Connect(result)) => {
                                    for ch in result.subs.keys() {
                                        lanes.open(ch, datagram_delivery(&ctx.hub, ch));
                                    }
                                }
                                _ => {}
                            }
                            let wire: WireReply = native::reply_to_wire(&r, sub, &|ch| lanes.sub_of(ch));
                            native::put_frame(&mut out, &ServerFrame::Reply(wire));
                            tm.messages_sent.fetch_add(1, Ordering::Relaxed);
                        }
                        Outgoing::Push(p) => {
                            let mut sub = 0;
                            match &p {
                                crate::protocol::Push::Subscribe { channel, .. } => {
                                    sub = lanes.open(channel, datagram_delivery(&ctx.hub, channel));
                                }
                                crate::protocol::Push::Unsubscribe { channel, .. } => lanes.close(channel),
                                _ => {}
                            }
                            if let Some(frame) = native::push_to_frame(&p, sub) {
                                native::put_frame(&mut out, &frame);
                                tm.messages_sent.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Outgoing::Ping => native::put_frame(&mut out, &ServerFrame::Ping),
                        Outgoing::Control(c) => controls.push(c),
                    }
                }
                if let Some(d) = slow {
                    break Some(d);
                }
                if !write_control(&mut send, &mut out, write_timeout, tm).await {
                    break Some(write_failure(&outbox));
                }
                if let Drained::Close(d) = status {
                    break Some(d);
                }
                for control in controls.drain(..) {
                    apply_control(&mut session, &outbox, control).await;
                }
                if notices > MAX_NOTICES {
                    break Some(Disconnect::TOO_MANY_ERRORS);
                }
                if drained.capacity() > 64 {
                    drained = Vec::new();
                }
            }
            Some(w) = lanes.in_flight.next(), if !lanes.in_flight.is_empty() => {
                lanes.written(w);
            }
            read = recv.read(&mut chunk) => {
                let Ok(Some(n)) = read else { break None };
                if outbox.is_closing() {
                    continue;
                }
                tm.bytes_received.fetch_add(n as u64, Ordering::Relaxed);
                inbuf.extend_from_slice(&chunk[..n]);
                if let Err(d) = handle_control_bytes(&mut session, &mut inbuf, &mut pending, ctx.message_size_limit, tm).await {
                    outbox.close(d);
                }
                if inbuf.is_empty() && inbuf.capacity() > READ_CHUNK_BYTES {
                    inbuf = Vec::new();
                }
            }
            datagram = mux.read_datagram() => {
                let Ok(datagram) = datagram else { break None };
                if outbox.is_closing() || !session.is_connected() {
                    continue;
                }
                let target = match native::split_datagram(&datagram) {
                    Err(_) => Err("malformed datagram".to_string()),
                    Ok((sub, data)) => match lanes.channel_of(sub) {
                        Some(ch) => Ok((ch.to_string(), Bytes::copy_from_slice(data))),
                        None => Err(format!("datagram for unknown subscription {sub}")),
                    },
                };
                match target {
                    Ok((channel, data)) => {
                        next_datagram_id = next_datagram_id.checked_add(1).unwrap_or(native::RESERVED_ID_BASE);
                        let body = CommandBody::Publish(PublishRequest { channel, data: Some(data) });
                        if let Err(d) = session.handle(Command { id: next_datagram_id, body }, now_ms()).await {
                            outbox.close(d);
                        }
                    }
                    Err(message) => {
                        notices += 1;
                        native::put_frame(&mut out, &ServerFrame::Notice(ClientError::BadRequest.code(), message));
                    }
                }
                if !write_control(&mut send, &mut out, write_timeout, tm).await {
                    break Some(write_failure(&outbox));
                }
                if notices > MAX_NOTICES {
                    break Some(Disconnect::TOO_MANY_ERRORS);
                }
            }
            _ = shutdown.changed() => {
                outbox.close(Disconnect::SHUTDOWN);
            }
            () = tokio::time::sleep(wait) => {
                if let Err(d) = session.tick(now_ms()).await {
                    outbox.close(d);
                }
            }
        }
    };

    session.close().await;
    tracing::debug!(client = %session.client_id(), streams = lanes.opened, "native connection ends");
    if let Some(d) = close {
        metrics.disconnects.inc(&d.code.to_string());
        if d == Disconnect::SLOW {
            metrics.slow_disconnects.fetch_add(1, Ordering::Relaxed);
        }
        out.clear();
        native::put_frame(&mut out, &ServerFrame::Disconnect(d.code, d.reason.to_string()));
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            if send.write_all(&out).await.is_ok() {
                send.finish().await;
            }
        })
        .await;
        mux.close(u32::from(d.code), d.reason.as_bytes());
    }
}

/// Whether `channel`'s namespace asks for datagram delivery.
fn datagram_delivery(hub: &Hub, channel: &str) -> bool {
    hub.channels().parse(channel).is_ok_and(|(_, r)| r.options.delivery == "datagram")
}

/// Writes what the control buffer holds; false when the write failed or timed out.
async fn write_control<S: SendHalf>(
    send: &mut S,
    out: &mut Vec<u8>,
    timeout: Duration,
    tm: &crate::metrics::TransportMetrics,
) -> bool {
    if out.is_empty() {
        return true;
    }
    let ok = matches!(tokio::time::timeout(timeout, send.write_all(out)).await, Ok(Ok(())));
    tm.bytes_sent.fetch_add(out.len() as u64, Ordering::Relaxed);
    out.clear();
    if out.capacity() > READ_CHUNK_BYTES {
        *out = Vec::new();
    }
    ok
}

async fn apply_control(session: &mut Session, outbox: &Outbox, control: Control) {
    if let Err(d) = session.handle_control(control, now_ms()).await {
        outbox.close(d);
    }
}

/// Decodes every whole frame in `inbuf` and hands the commands to the session in order.
async fn handle_control_bytes(
    session: &mut Session,
    inbuf: &mut Vec<u8>,
    pending: &mut VecDeque<(u32, PendingCommand)>,
    limit: usize,
    tm: &crate::metrics::TransportMetrics,
) -> Result<(), Disconnect> {
    let mut used = 0;
    let result = loop {
        let frame = match crate::protocol::framing::check_varint(&inbuf[used..], limit) {
            Err(_) => break Err(Disconnect::custom(Disconnect::BAD_REQUEST.code, "message size limit exceeded")),
            Ok(crate::protocol::framing::VarintCheck::Incomplete) => break Ok(()),
            Ok(crate::protocol::framing::VarintCheck::Complete { header, len }) => {
                let body = &inbuf[used + header..used + header + len];
                used += header + len;
                body
            }
        };
        let cmd = match native::decode_command(frame) {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "bad native command");
                break Err(Disconnect::BAD_REQUEST);
            }
        };
        tm.messages_received.fetch_add(1, Ordering::Relaxed);
        match &cmd.body {
            CommandBody::Subscribe(s) => remember(pending, cmd.id, PendingCommand::Subscribe(s.channel.clone())),
            CommandBody::Unsubscribe(s) => remember(pending, cmd.id, PendingCommand::Unsubscribe(s.channel.clone())),
            _ => {}
        }
        if let Err(d) = session.handle(cmd, now_ms()).await {
            break Err(d);
        }
    };
    inbuf.drain(..used);
    result
}

fn remember(pending: &mut VecDeque<(u32, PendingCommand)>, id: u32, cmd: PendingCommand) {
    if pending.len() >= MAX_PENDING_COMMANDS {
        pending.pop_front();
    }
    pending.push_back((id, cmd));
}

