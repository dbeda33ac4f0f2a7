//! The multiplexed (native) mode, written once against a small trait that both
//! WebTransport sessions (wtransport) and raw QUIC connections (quinn) implement.
//!
//! One task per connection runs the connection driver (`driver.rs`), like every transport;
//! this is its framing: control frames in, finished stream writes and client datagrams
//! watched while it waits for them. Replies and non-publication pushes go on the control
//! stream. Each subscription gets a server-opened
//! unidirectional stream (a *lane*) that starts with a [`StreamHeader`]; its publications
//! queue in the lane as their shared frames (encoded once for the native codec, the same
//! bytes for every subscriber, handed to the QUIC stack as they are: no copy) and are
//! written by a future that owns the stream, so a lane blocked by flow control never
//! delays another lane or the control stream. All bytes
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

use super::driver::{self, Inbound, Transport, WriteError};
use super::now_ms;
use crate::hub::{Hub, Outbox, Outgoing};
use crate::protocol::codec::{Codec, Framed};
use crate::protocol::native::{self, ServerFrame, StreamHeader, WireReply};
use crate::protocol::{ClientError, Command, CommandBody, Disconnect, PublishRequest, ReplyBody};
use crate::session::{Auth, Session, TransportInfo};

/// Most bytes taken from a stream per read, in bytes (4 KiB). The stack hands over the
/// bytes it already holds (no buffer of ours waits on an idle stream), so this only
/// bounds how much one read moves into [`Pending`]; bigger frames arrive in several reads.
pub(super) const READ_CHUNK_BYTES: usize = 4096;

/// How long the server waits for the peer to acknowledge its last frames before closing
/// the connection, so the disconnect frame is not lost to the close.
pub const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Longest the server waits, after its disconnect frame or push was acknowledged, for the
/// client to close the connection itself (native and compatible modes): the SDKs do so
/// within milliseconds of reading it; 2 s leaves room for a page on a loaded machine and
/// bounds what a client that never closes can hold.
pub const PEER_CLOSE_WAIT: Duration = Duration::from_secs(2);

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
    /// Writes all of `chunks` in order, waiting on flow control as needed. QUIC stacks
    /// keep the chunks as they are (shared bytes, no copy); the default writes each one.
    fn write_chunks<'a>(&'a mut self, chunks: &'a mut [Bytes]) -> impl Future<Output = Result<(), MuxError>> + Send + 'a {
        async move {
            for chunk in chunks.iter() {
                self.write_all(chunk).await?;
            }
            Ok(())
        }
    }
    /// Ends the stream and waits (bounded by the caller) until the peer has everything.
    fn finish(&mut self) -> impl Future<Output = ()> + Send + '_;
    /// Sets the send priority (higher first).
    fn set_priority(&self, priority: i32);
}

/// The receiving half of a stream.
pub trait RecvHalf: Send + 'static {
    /// The next bytes the stream holds, at most `max` of them; `Ok(None)` at its end.
    /// The stack hands over its own buffer, so a caller waiting here holds none.
    /// Cancel-safe.
    fn read_chunk(&mut self, max: usize) -> impl Future<Output = Result<Option<Bytes>, MuxError>> + Send + '_;
}

/// Inbound stream bytes not yet taken as whole messages. It holds nothing while nothing
/// is pending, so an idle connection keeps no read buffer; a frame split over reads is
/// gathered here and the buffer is given back once it is taken.
#[derive(Debug, Default)]
pub(super) struct Pending(Vec<u8>);

impl Pending {
    /// Appends what a read returned.
    pub(super) fn push(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }

    /// The bytes waiting.
    pub(super) fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// Drops the first `n` bytes (a message taken); frees the buffer when none are left.
    pub(super) fn consume(&mut self, n: usize) {
        self.0.drain(..n);
        if self.0.is_empty() {
            self.0 = Vec::new();
        }
    }

    /// Bytes allocated (0 when idle).
    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.0.capacity()
    }
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
    /// Completes once the connection is closed (by either side).
    fn closed(&self) -> impl Future<Output = ()> + Send;
}

// --- quinn (raw QUIC) ---------------------------------------------------------------

impl SendHalf for quinn::SendStream {
    async fn write_all<'a>(&'a mut self, buf: &'a [u8]) -> Result<(), MuxError> {
        quinn::SendStream::write_all(self, buf).await.map_err(|e| MuxError(e.to_string()))
    }

    async fn write_chunks<'a>(&'a mut self, chunks: &'a mut [Bytes]) -> Result<(), MuxError> {
        quinn::SendStream::write_all_chunks(self, chunks).await.map_err(|e| MuxError(e.to_string()))
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
    async fn read_chunk(&mut self, max: usize) -> Result<Option<Bytes>, MuxError> {
        let chunk = quinn::RecvStream::read_chunk(self, max, true).await.map_err(|e| MuxError(e.to_string()))?;
        Ok(chunk.map(|c| c.bytes))
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

    async fn closed(&self) {
        quinn::Connection::closed(self).await;
    }
}

// --- wtransport (WebTransport) ------------------------------------------------------

impl SendHalf for wtransport::SendStream {
    async fn write_all<'a>(&'a mut self, buf: &'a [u8]) -> Result<(), MuxError> {
        wtransport::SendStream::write_all(self, buf).await.map_err(|e| MuxError(e.to_string()))
    }

    async fn write_chunks<'a>(&'a mut self, chunks: &'a mut [Bytes]) -> Result<(), MuxError> {
        // wtransport's stream is quinn's (its header went out when it was opened).
        self.quic_stream_mut().write_all_chunks(chunks).await.map_err(|e| MuxError(e.to_string()))
    }

    async fn finish(&mut self) {
        let _ = wtransport::SendStream::finish(self).await;
    }

    fn set_priority(&self, priority: i32) {
        wtransport::SendStream::set_priority(self, priority);
    }
}

impl RecvHalf for wtransport::RecvStream {
    async fn read_chunk(&mut self, max: usize) -> Result<Option<Bytes>, MuxError> {
        // wtransport's `read` is quinn's `read` on the same stream (the WebTransport
        // stream header was consumed when it was accepted), so its chunks are the data.
        RecvHalf::read_chunk(self.quic_stream_mut(), max).await
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

    async fn closed(&self) {
        wtransport::Connection::closed(self).await;
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
    /// What waits for the next write (starts with the stream header): publications'
    /// shared frames, written as they are.
    pending: Vec<Bytes>,
    /// What they cost against the connection's bound (see [`chunk_cost`]).
    pending_bytes: usize,
    /// Unsubscribed: finish the stream once `pending` is written.
    closing: bool,
}

/// What one queued chunk costs against `client.queue_max_size`: its bytes and its handle.
/// The bytes are shared with the other subscribers, the handle is this lane's own, so a
/// stream of tiny publications cannot hold many times the bound in handles.
fn chunk_cost(chunk: &Bytes) -> usize {
    chunk.len() + std::mem::size_of::<Bytes>()
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
        let mut header = Vec::new();
        native::put_frame(&mut header, &StreamHeader { sub, channel: channel.to_string() });
        let header = Bytes::from(header);
        let pending_bytes = chunk_cost(&header);
        self.queued += pending_bytes;
        self.by_channel.insert(channel.clone(), sub);
        let pending = vec![header];
        self.lanes.insert(sub, Lane { channel, datagram, stream: None, busy: false, pending, pending_bytes, closing: false });
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
            self.queued -= lane.pending_bytes;
            self.lanes.remove(&sub);
            return;
        }
        self.start(sub);
    }

    /// Queues a publication body for `channel`. Err(SLOW) when the connection's bound is passed.
    fn publish(&mut self, channel: &str, framed: &Framed) -> Result<bool, Disconnect> {
        let Some(&sub) = self.by_channel.get(channel) else { return Ok(false) };
        let Some(lane) = self.lanes.get_mut(&sub) else { return Ok(false) };
        if lane.datagram {
            let body = framed.body();
            let mut d = Vec::with_capacity(body.len() + 5);
            native::put_datagram(&mut d, sub, body);
            let fits = self.mux.max_datagram_size().is_some_and(|max| d.len() <= max);
            if fits && self.mux.send_datagram(Bytes::from(d)).is_ok() {
                return Ok(true);
            }
        }
        // The varint-framed bytes every subscriber of this publication shares (not copied).
        let frame = framed.frame().clone();
        let cost = chunk_cost(&frame);
        lane.pending_bytes += cost;
        self.queued += cost;
        lane.pending.push(frame);
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
        let mut chunks = std::mem::take(&mut lane.pending);
        let bytes = std::mem::take(&mut lane.pending_bytes);
        let finish = lane.closing;
        let stream = lane.stream.take();
        let mux = self.mux.clone();
        if stream.is_none() {
            self.opened += 1;
        }
        self.in_flight.push(Box::pin(async move {
            let mut stream = match stream {
                Some(s) => s,
                None => match mux.open_uni(0).await {
                    Ok(s) => s,
                    Err(e) => return Written { sub, stream: None, bytes, result: Err(e), finished: false },
                },
            };
            let mut result = if chunks.is_empty() { Ok(()) } else { stream.write_chunks(&mut chunks).await };
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
            self.queued = self.queued.saturating_sub(lane.pending_bytes);
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

/// A read kept across the driver's turns (boxed, owning what it reads from).
type Reading<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// What a control-stream read hands back: the stream, and what it read.
type ControlRead<R> = (R, Result<Option<Bytes>, MuxError>);

fn read_control<R: RecvHalf>(mut recv: R) -> Reading<ControlRead<R>> {
    Box::pin(async move {
        let read = recv.read_chunk(READ_CHUNK_BYTES).await;
        (recv, read)
    })
}

fn read_datagram<M: Mux>(mux: M) -> Reading<Result<Bytes, MuxError>> {
    Box::pin(async move { mux.read_datagram().await })
}

/// Polls a kept read only once the waker it last registered has fired (or it is new).
/// A connection's task is woken for every publication it writes, and each poll of the
/// QUIC stack's stream and datagram reads locks the connection and registers the waker
/// again; behind a gate they are polled when they have something.
struct Gate {
    state: Arc<GateState>,
    /// The waker the gated read is polled with (made once).
    waker: std::task::Waker,
}

#[derive(Default)]
struct GateState {
    /// The read's waker fired since its last poll.
    fired: std::sync::atomic::AtomicBool,
    /// The connection's task, woken with it.
    task: futures_util::task::AtomicWaker,
}

impl std::task::Wake for GateState {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl Gate {
    fn new() -> Self {
        let state = Arc::new(GateState { fired: true.into(), ..GateState::default() });
        Self { waker: std::task::Waker::from(state.clone()), state }
    }

    fn poll<T>(&self, read: &mut Reading<T>, cx: &mut std::task::Context<'_>) -> std::task::Poll<T> {
        self.state.task.register(cx.waker());
        if !self.state.fired.swap(false, Ordering::AcqRel) {
            return std::task::Poll::Pending;
        }
        let polled = read.as_mut().poll(&mut std::task::Context::from_waker(&self.waker));
        if polled.is_ready() {
            // The next read is new: poll it at once.
            self.state.fired.store(true, Ordering::Release);
        }
        polled
    }
}

/// A remembered subscribe/unsubscribe command, until its reply is written.
enum PendingCommand {
    Subscribe(String),
    Unsubscribe(String),
}

/// Serves one native-mode connection whose control stream is `control` until it closes.
/// A plain function returning the driver's future: an `async fn` would carry its
/// arguments beside it for as long as the connection lives.
pub fn run<M: Mux>(ctx: Ctx, mux: M, control: (M::Send, M::Recv), info: TransportInfo) -> impl Future<Output = ()> {
    let Ctx { hub, auth, message_size_limit, shutdown } = ctx;
    let queue_max_size = hub.config().client.queue_max_size;
    let outbox = Outbox::new(queue_max_size);
    let session = Session::new(hub.clone(), auth, outbox.clone(), info, now_ms());
    let (send, recv) = control;
    send.set_priority(CONTROL_PRIORITY);
    let native = Native {
        lanes: Lanes::new(mux.clone(), queue_max_size),
        datagrams: read_datagram(mux.clone()),
        datagram_gate: Gate::new(),
        mux,
        send,
        control: read_control(recv),
        control_gate: Gate::new(),
        info,
        hub,
        limit: message_size_limit,
        shutdown: Some(shutdown),
        pending: VecDeque::new(),
        out: Vec::new(),
        inbuf: Pending::default(),
        notices: 0,
        next_datagram_id: native::RESERVED_ID_BASE,
        connected: false,
    };
    driver::run(native, session, outbox, Vec::new())
}

/// The framing of one native-mode connection: postcard frames on the control stream, a
/// stream per subscription, datagrams.
struct Native<M: Mux> {
    mux: M,
    lanes: Lanes<M>,
    send: M::Send,
    /// The control stream's next read, and its gate.
    control: Reading<ControlRead<M::Recv>>,
    control_gate: Gate,
    /// The next client datagram, and its gate.
    datagrams: Reading<Result<Bytes, MuxError>>,
    datagram_gate: Gate,
    info: TransportInfo,
    hub: Hub,
    limit: usize,
    /// Server shutdown, until it has been seen.
    shutdown: Option<tokio::sync::watch::Receiver<bool>>,
    /// Subscribe/unsubscribe commands whose replies are not written yet.
    pending: VecDeque<(u32, PendingCommand)>,
    /// Control-stream bytes waiting for the next write (given back after each write:
    /// control writes are rare, so an idle connection holds none).
    out: Vec<u8>,
    /// Control-stream bytes read but not yet a whole frame.
    inbuf: Pending,
    notices: u32,
    next_datagram_id: u32,
    /// The connect reply went out: datagram publishes are taken from now on.
    connected: bool,
}

impl<M: Mux> Native<M> {
    fn tm(&self) -> &crate::metrics::TransportMetrics {
        self.hub.metrics().transport(self.info.name)
    }

    /// The next whole control frame in `inbuf`, if one is there.
    fn take_frame(&mut self) -> Result<Option<Bytes>, Disconnect> {
        match crate::protocol::framing::check_varint(self.inbuf.bytes(), self.limit) {
            Err(_) => Err(Disconnect::custom(Disconnect::BAD_REQUEST.code, "message size limit exceeded")),
            Ok(crate::protocol::framing::VarintCheck::Incomplete) => Ok(None),
            Ok(crate::protocol::framing::VarintCheck::Complete { header, len }) => {
                let frame = Bytes::copy_from_slice(&self.inbuf.bytes()[header..header + len]);
                self.inbuf.consume(header + len);
                Ok(Some(frame))
            }
        }
    }

    fn notice(&mut self, code: u32, message: String) {
        self.notices += 1;
        native::put_frame(&mut self.out, &ServerFrame::Notice(code, message));
    }

    /// A client datagram: a fire-and-forget publish into its subscription's channel.
    fn datagram(&mut self, datagram: &[u8]) -> Inbound {
        if !self.connected {
            return Inbound::Commands(Vec::new());
        }
        let target = match native::split_datagram(datagram) {
            Err(_) => Err("malformed datagram".to_string()),
            Ok((sub, data)) => match self.lanes.channel_of(sub) {
                Some(ch) => Ok((ch.to_string(), Bytes::copy_from_slice(data))),
                None => Err(format!("datagram for unknown subscription {sub}")),
            },
        };
        match target {
            Ok((channel, data)) => {
                self.next_datagram_id = self.next_datagram_id.checked_add(1).unwrap_or(native::RESERVED_ID_BASE);
                let body = CommandBody::Publish(PublishRequest { channel, data: Some(data) });
                Inbound::Commands(vec![Command { id: self.next_datagram_id, body }])
            }
            Err(message) => {
                self.notice(ClientError::BadRequest.code(), message);
                if self.notices > MAX_NOTICES { Inbound::Close(Disconnect::TOO_MANY_ERRORS) } else { Inbound::Flush }
            }
        }
    }

    /// Encodes one outgoing item: publications into their lanes, the rest into `out`.
    fn put(&mut self, item: Outgoing) -> Result<(), Disconnect> {
        match item {
            Outgoing::Publication(p) => {
                if self.lanes.publish(&p.publication.channel, p.framed(Codec::Native))? {
                    self.tm().messages_sent.fetch_add(1, Ordering::Relaxed);
                }
            }
            Outgoing::Reply(r) => {
                if r.id >= native::RESERVED_ID_BASE {
                    // A datagram publish: only failures are reported.
                    if let ReplyBody::Error(e) = r.body {
                        self.notice(e.code(), format!("datagram publish: {}", e.message()));
                    }
                    return Ok(());
                }
                let mut sub = 0;
                let cmd = self.pending.iter().position(|(id, _)| *id == r.id).and_then(|i| self.pending.remove(i));
                if self.pending.is_empty() {
                    // Replies follow their commands at once: nothing stays allocated while idle.
                    self.pending = VecDeque::new();
                }
                match (cmd, &r.body) {
                    (Some((_, PendingCommand::Subscribe(ch))), ReplyBody::Subscribe(_)) => {
                        sub = self.lanes.open(&ch, datagram_delivery(&self.hub, &ch));
                    }
                    (Some((_, PendingCommand::Unsubscribe(ch))), ReplyBody::Unsubscribe) => self.lanes.close(&ch),
                    (_, ReplyBody::Connect(result)) => {
                        self.connected = true;
                        for ch in result.subs.keys() {
                            self.lanes.open(ch, datagram_delivery(&self.hub, ch));
                        }
                    }
                    _ => {}
                }
                let wire: WireReply = native::reply_to_wire(&r, sub, &|ch| self.lanes.sub_of(ch));
                native::put_frame(&mut self.out, &ServerFrame::Reply(wire));
                self.tm().messages_sent.fetch_add(1, Ordering::Relaxed);
            }
            Outgoing::Push(p) => {
                let mut sub = 0;
                match &*p {
                    crate::protocol::Push::Subscribe { channel, .. } => {
                        sub = self.lanes.open(channel, datagram_delivery(&self.hub, channel));
                    }
                    crate::protocol::Push::Unsubscribe { channel, .. } => self.lanes.close(channel),
                    _ => {}
                }
                if let Some(frame) = native::push_to_frame(&p, sub) {
                    native::put_frame(&mut self.out, &frame);
                    self.tm().messages_sent.fetch_add(1, Ordering::Relaxed);
                }
            }
            Outgoing::Ping => native::put_frame(&mut self.out, &ServerFrame::Ping),
            Outgoing::Control(_) => {}
        }
        Ok(())
    }
}

impl<M: Mux> Transport for Native<M> {
    fn info(&self) -> TransportInfo {
        self.info
    }

    fn codec(&self) -> Codec {
        Codec::Native
    }

    async fn recv(&mut self) -> Inbound {
        loop {
            match self.take_frame() {
                Err(d) => return Inbound::Close(d),
                Ok(Some(frame)) => return Inbound::Message(frame),
                Ok(None) => {}
            }
            tokio::select! {
                Some(w) = self.lanes.in_flight.next(), if !self.lanes.in_flight.is_empty() => self.lanes.written(w),
                (recv, read) = std::future::poll_fn(|cx| self.control_gate.poll(&mut self.control, cx)) => {
                    self.control = read_control(recv);
                    let Ok(Some(bytes)) = read else { return Inbound::Gone };
                    self.hub.metrics().transport(self.info.name).bytes_received.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                    self.inbuf.push(&bytes);
                }
                datagram = std::future::poll_fn(|cx| self.datagram_gate.poll(&mut self.datagrams, cx)) => {
                    self.datagrams = read_datagram(self.mux.clone());
                    let Ok(datagram) = datagram else { return Inbound::Gone };
                    return self.datagram(&datagram);
                }
                changed = shutdown_signal(&mut self.shutdown) => {
                    if changed {
                        return Inbound::Close(Disconnect::SHUTDOWN);
                    }
                }
            }
        }
    }

    fn inbound(&mut self, cmd: &Command) {
        let remembered = match &cmd.body {
            CommandBody::Subscribe(s) => PendingCommand::Subscribe(s.channel.clone()),
            CommandBody::Unsubscribe(s) => PendingCommand::Unsubscribe(s.channel.clone()),
            _ => return,
        };
        if self.pending.len() >= MAX_PENDING_COMMANDS {
            self.pending.pop_front();
        }
        self.pending.push_back((cmd.id, remembered));
    }

    async fn write(&mut self, items: &mut Vec<Outgoing>) -> Result<(), WriteError> {
        for item in items.drain(..) {
            self.put(item).map_err(WriteError::Close)?;
        }
        if self.notices > MAX_NOTICES {
            return Err(WriteError::Close(Disconnect::TOO_MANY_ERRORS));
        }
        if self.out.is_empty() {
            return Ok(());
        }
        let result = self.send.write_all(&self.out).await;
        self.tm().bytes_sent.fetch_add(self.out.len() as u64, Ordering::Relaxed);
        self.out = Vec::new();
        result.map_err(|_| WriteError::Io)
    }

    async fn close(&mut self, reason: Option<&Disconnect>) {
        tracing::debug!(streams = self.lanes.opened, "native connection ends");
        let Some(d) = reason else { return };
        self.out.clear();
        native::put_frame(&mut self.out, &ServerFrame::Disconnect(d.code, d.reason.to_string()));
        let (send, out) = (&mut self.send, &self.out);
        let delivered = tokio::time::timeout(CLOSE_GRACE, async {
            if send.write_all(out).await.is_ok() {
                // Completes once the peer's QUIC stack has acknowledged every byte.
                send.finish().await;
                true
            } else {
                false
            }
        })
        .await;
        if matches!(delivered, Ok(true)) {
            // Acknowledged is not yet read: a browser drops stream data its page has not
            // read when the session closes under it. The SDKs close once they have handled
            // the disconnect frame, so their close is the signal (bounded for those that
            // never do).
            let _ = tokio::time::timeout(PEER_CLOSE_WAIT, self.mux.closed()).await;
        }
        self.mux.close(u32::from(d.code), d.reason.as_bytes());
    }
}

/// Waits for the server's shutdown signal, once: true when it came; false when the
/// sender is gone. Either way `watch` is left `None`, so a stream transport's reader
/// waits on it no more.
pub(super) async fn shutdown_signal(watch: &mut Option<tokio::sync::watch::Receiver<bool>>) -> bool {
    let changed = match watch.as_mut() {
        Some(rx) => rx.changed().await.is_ok(),
        None => std::future::pending().await,
    };
    *watch = None;
    changed
}

/// Whether `channel`'s namespace asks for datagram delivery.
fn datagram_delivery(hub: &Hub, channel: &str) -> bool {
    hub.channels().parse(channel).is_ok_and(|(_, r)| r.options.delivery == "datagram")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A read that counts its polls and stays pending until told, keeping the last waker.
    #[derive(Default)]
    struct Probe {
        polls: std::sync::atomic::AtomicUsize,
        ready: std::sync::atomic::AtomicBool,
        waker: std::sync::Mutex<Option<std::task::Waker>>,
    }

    fn probed(probe: &Arc<Probe>) -> Reading<u32> {
        let probe = probe.clone();
        Box::pin(std::future::poll_fn(move |cx| {
            probe.polls.fetch_add(1, Ordering::Relaxed);
            if probe.ready.load(Ordering::Relaxed) {
                return std::task::Poll::Ready(7);
            }
            *probe.waker.lock().expect("lock") = Some(cx.waker().clone());
            std::task::Poll::Pending
        }))
    }

    #[test]
    fn a_gated_read_is_polled_again_only_after_its_waker_fired() {
        let probe = Arc::new(Probe::default());
        let mut read = probed(&probe);
        let gate = Gate::new();
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(gate.poll(&mut read, &mut cx).is_pending(), "a new read is polled");
        for _ in 0..5 {
            assert!(gate.poll(&mut read, &mut cx).is_pending());
        }
        assert_eq!(probe.polls.load(Ordering::Relaxed), 1, "not polled again while its waker is quiet");
        probe.ready.store(true, Ordering::Relaxed);
        probe.waker.lock().expect("lock").take().expect("registered").wake();
        assert_eq!(gate.poll(&mut read, &mut cx), std::task::Poll::Ready(7), "polled once woken");
        let mut next = probed(&probe);
        assert_eq!(gate.poll(&mut next, &mut cx), std::task::Poll::Ready(7), "the next read is polled at once");
        assert_eq!(probe.polls.load(Ordering::Relaxed), 3);
    }

    /// An idle connection keeps no read buffer: a frame split over two reads is gathered,
    /// and once it is taken the buffer is given back.
    #[test]
    fn pending_bytes_are_freed_once_taken() {
        let mut frame = Vec::new();
        native::put_frame(&mut frame, &ServerFrame::Ping);
        frame.extend_from_slice(&frame.clone());
        let mut inbuf = Pending::default();
        assert_eq!(inbuf.capacity(), 0);
        inbuf.push(&frame[..1]);
        inbuf.push(&frame[1..]);
        assert_eq!(inbuf.bytes(), &frame[..]);
        inbuf.consume(frame.len() / 2);
        assert_eq!(inbuf.bytes(), &frame[frame.len() / 2..], "the second frame stays");
        assert!(inbuf.capacity() > 0);
        inbuf.consume(frame.len() / 2);
        assert_eq!(inbuf.capacity(), 0, "nothing pending, nothing held");
    }
}
