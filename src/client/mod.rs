//! A Rust client for Tidewire's native mode, over raw QUIC (ALPN `tidewire/1`) or
//! WebTransport (`/connection/webtransport/native`, through wtransport — an independent
//! HTTP/3 implementation, so the tests that use it are interop tests).
//!
//! ```no_run
//! # async fn demo() -> Result<(), tidewire::client::Error> {
//! use tidewire::client::{Client, Options, Transport, Trust};
//! let hash = [0u8; 32]; // from GET /webtransport/cert-hash (dev) — or use Trust::RootsPem
//! let mut opts = Options::new("127.0.0.1:8000".parse().unwrap(), Transport::Quic, Trust::CertHash(vec![hash]));
//! opts.token = "<connection JWT>".into();
//! let client = Client::connect(opts).await?;
//! let mut news = client.subscribe("news").await?;
//! client.publish("news", br#"{"text":"hi"}"#.to_vec()).await?;
//! while let Some(p) = news.next().await {
//!     println!("{} @{}: {}", p.channel, p.offset, String::from_utf8_lossy(&p.data));
//! }
//! # Ok(()) }
//! ```
//!
//! Each subscription has its own stream from the server and its own bounded queue here:
//! a subscription whose publications are not consumed stops reading its stream (QUIC flow
//! control then holds the server back) without delaying any other subscription.
//! Depends on `protocol` only.

mod conn;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::protocol::framing::{self, VarintCheck};
use crate::protocol::native::{
    self, ServerFrame, StreamHeader, WireClientInfo, WireCommand, WireCommandBody, WireConnect, WireConnectResult,
    WireHistory, WireHistoryResult, WirePublication, WirePush, WireReplyBody, WireServerSub, WireSubscribe,
    WireSubscribeResult,
};
use conn::{Conn, RecvStream, SendStream};

/// One client UDP socket shared by many connections (load generators, apps holding many
/// sessions): made once from [`Options`], then [`Connector::connect`] per connection.
/// Connections with different trust or transport need their own connector.
#[derive(Clone)]
pub struct Connector {
    endpoint: conn::Endpoint,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector").finish_non_exhaustive()
    }
}

impl Connector {
    /// A socket with `opts`' transport, trust and QUIC settings.
    pub fn new(opts: &Options) -> Result<Self, Error> {
        Ok(Self { endpoint: conn::Endpoint::new(opts)? })
    }

    /// Connects one client through this socket.
    pub async fn connect(&self, opts: Options) -> Result<Client, Error> {
        Client::connect_on(&self.endpoint, opts, false).await
    }
}

/// Largest frame the client accepts from the server, in bytes (16 MiB): a bound, not a
/// tuning knob; history replies are the largest frames.
const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;
/// Bytes read per call.
const READ_CHUNK_BYTES: usize = 16 * 1024;
/// Events (pushes) kept while the application does not read them; more are dropped.
const EVENT_BUFFER: usize = 1024;

/// How the client reaches the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Raw QUIC, ALPN `tidewire/1`.
    Quic,
    /// WebTransport over HTTP/3, native mode.
    WebTransport,
}

/// Which server certificates the client accepts.
#[derive(Debug, Clone)]
pub enum Trust {
    /// Exactly these SHA-256 hashes of the leaf certificate (development certificates;
    /// what browsers do with `serverCertificateHashes`).
    CertHash(Vec<[u8; 32]>),
    /// Certificates chaining to these roots (PEM text), with the server name checked.
    RootsPem(String),
}

/// Connection options.
#[derive(Debug, Clone)]
pub struct Options {
    /// The server's client UDP port.
    pub addr: SocketAddr,
    /// Name checked against the certificate (and the WebTransport URL's host). Empty: the
    /// address itself.
    pub server_name: String,
    /// Raw QUIC or WebTransport.
    pub transport: Transport,
    /// Certificate trust.
    pub trust: Trust,
    /// Connection JWT (empty for anonymous or insecure servers).
    pub token: String,
    /// Client name sent in connect.
    pub name: String,
    /// Publications buffered per subscription before its stream is left unread. Default 256.
    pub subscription_buffer: usize,
    /// Subscriptions this client may hold (streams the server may open). Default 256.
    pub max_subscriptions: u32,
    /// QUIC per-stream receive window in bytes (None: quinn's default). Small values make
    /// flow control bite early (tests).
    pub stream_receive_window: Option<u32>,
    /// Longest wait for a connect or a reply. Default 10s.
    pub timeout: Duration,
}

impl Options {
    /// Options with defaults for `addr`.
    pub fn new(addr: SocketAddr, transport: Transport, trust: Trust) -> Self {
        Self {
            addr,
            server_name: String::new(),
            transport,
            trust,
            token: String::new(),
            name: "tidewire-rust".into(),
            subscription_buffer: 256,
            max_subscriptions: 256,
            stream_receive_window: None,
            timeout: Duration::from_secs(10),
        }
    }
}

/// What can go wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// TLS setup failed (bad PEM …).
    #[error("tls: {0}")]
    Tls(String),
    /// The connection could not be made.
    #[error("connect: {0}")]
    Connect(String),
    /// The connection is closed.
    #[error("closed: {0}")]
    Closed(String),
    /// The server closed the connection with this disconnect.
    #[error("disconnected: {code} {reason}")]
    Disconnected {
        /// Disconnect code.
        code: u32,
        /// Reason.
        reason: String,
    },
    /// The server answered with an error.
    #[error("error {code}: {message}")]
    Reply {
        /// Client error code (100–1999).
        code: u32,
        /// Message.
        message: String,
    },
    /// No reply in time.
    #[error("timed out")]
    Timeout,
    /// The server sent something unexpected.
    #[error("protocol: {0}")]
    Protocol(String),
    /// A datagram could not be sent.
    #[error("datagram: {0}")]
    Datagram(String),
}

/// A publication received on a subscription.
#[derive(Debug, Clone, PartialEq)]
pub struct Publication {
    /// The channel.
    pub channel: Arc<str>,
    /// Offset in the channel's stream (0 without history).
    pub offset: u64,
    /// The payload.
    pub data: Bytes,
    /// Publisher (client publishes).
    pub info: Option<WireClientInfo>,
    /// Tags.
    pub tags: Vec<(String, String)>,
    /// Arrived as a datagram.
    pub datagram: bool,
}

/// Something the server pushed that is not a publication or reply.
#[derive(Debug)]
pub enum Event {
    /// The server subscribed this client (token or server API).
    Subscribed(Subscription),
    /// The server ended a subscription (channel, code, reason).
    Unsubscribed(String, u32, String),
    /// Join (channel, info).
    Join(String, WireClientInfo),
    /// Leave (channel, info).
    Leave(String, WireClientInfo),
    /// An async message.
    Message(Bytes),
    /// A problem that did not close the connection (code, message).
    Notice(u32, String),
    /// The server closes the connection (code, reason).
    Disconnected(u32, String),
}

/// One subscription: its publications, in order (datagram channels: as they arrive).
#[derive(Debug)]
pub struct Subscription {
    /// Subscription id (names its stream and datagrams).
    pub sub: u32,
    /// The channel.
    pub channel: Arc<str>,
    /// The subscribe result (recovery state, expiry …).
    pub result: WireSubscribeResult,
    rx: mpsc::Receiver<Publication>,
}

impl Subscription {
    /// The next publication; None when the subscription or connection ended.
    pub async fn next(&mut self) -> Option<Publication> {
        self.rx.recv().await
    }

    /// A publication if one is waiting.
    pub fn try_next(&mut self) -> Option<Publication> {
        self.rx.try_recv().ok()
    }

    /// Calls `f` for every publication, on its own task, until the subscription ends.
    pub fn on_publication(mut self, mut f: impl FnMut(Publication) + Send + 'static) -> JoinHandle<()> {
        tokio::spawn(async move {
            while let Some(p) = self.rx.recv().await {
                f(p);
            }
        })
    }
}

type ReplyTx = oneshot::Sender<(WireReplyBody, Option<Subscription>)>;

struct SubSlot {
    channel: Arc<str>,
    tx: mpsc::Sender<Publication>,
}

struct Shared {
    control: tokio::sync::Mutex<SendStream>,
    next_id: AtomicU32,
    pending: Mutex<HashMap<u32, (Option<String>, ReplyTx)>>,
    subs: Mutex<HashMap<u32, SubSlot>>,
    sub_ready: Notify,
    events: mpsc::Sender<Event>,
    disconnect: Mutex<Option<(u32, String)>>,
    pong: AtomicBool,
    buffer: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section is a single map operation; a poisoned map is still consistent.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    async fn send(&self, cmd: &WireCommand) -> Result<(), Error> {
        let mut out = Vec::new();
        native::put_frame(&mut out, cmd);
        self.control.lock().await.write_all(&out).await
    }

    fn register(&self, sub: u32, channel: &str, result: WireSubscribeResult) -> Subscription {
        let (tx, rx) = mpsc::channel(self.buffer.max(1));
        let channel: Arc<str> = Arc::from(channel);
        lock(&self.subs).insert(sub, SubSlot { channel: channel.clone(), tx });
        self.sub_ready.notify_waiters();
        Subscription { sub, channel, result, rx }
    }

    fn event(&self, e: Event) {
        let _ = self.events.try_send(e);
    }
}

/// A connected client.
pub struct Client {
    shared: Arc<Shared>,
    conn: Conn,
    connect: WireConnectResult,
    events: Mutex<Option<mpsc::Receiver<Event>>>,
    tasks: Vec<JoinHandle<()>>,
    timeout: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("client", &self.connect.client).finish()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Client {
    /// Connects on a socket of its own, opens the control stream and completes `connect`.
    pub async fn connect(opts: Options) -> Result<Self, Error> {
        let endpoint = conn::Endpoint::new(&opts)?;
        Self::connect_on(&endpoint, opts, true).await
    }

    async fn connect_on(endpoint: &conn::Endpoint, opts: Options, owned: bool) -> Result<Self, Error> {
        let conn: Conn =
            tokio::time::timeout(opts.timeout, endpoint.connect(&opts, owned)).await.map_err(|_| Error::Timeout)??;
        let (send, recv) = conn.open_bi().await?;
        let (events_tx, events_rx) = mpsc::channel(EVENT_BUFFER);
        let shared = Arc::new(Shared {
            control: tokio::sync::Mutex::new(send),
            next_id: AtomicU32::new(1),
            pending: Mutex::new(HashMap::new()),
            subs: Mutex::new(HashMap::new()),
            sub_ready: Notify::new(),
            events: events_tx,
            disconnect: Mutex::new(None),
            pong: AtomicBool::new(false),
            buffer: opts.subscription_buffer,
        });
        let tasks = vec![
            tokio::spawn(read_control(shared.clone(), recv, conn.clone())),
            tokio::spawn(accept_streams(shared.clone(), conn.clone())),
            tokio::spawn(read_datagrams(shared.clone(), conn.clone())),
        ];
        let mut client = Self {
            shared,
            conn,
            connect: WireConnectResult::default(),
            events: Mutex::new(Some(events_rx)),
            tasks,
            timeout: opts.timeout,
        };
        let body = WireCommandBody::Connect(WireConnect {
            token: opts.token.clone(),
            name: opts.name.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
            ..Default::default()
        });
        match client.request(body, None).await? {
            (WireReplyBody::Connect(result), _) => {
                client.shared.pong.store(result.pong, Ordering::Relaxed);
                client.connect = result;
                Ok(client)
            }
            (other, _) => Err(Error::Protocol(format!("unexpected connect reply {other:?}"))),
        }
    }

    /// The connect result (client id, server-side subscriptions, ping interval …).
    pub fn connect_result(&self) -> &WireConnectResult {
        &self.connect
    }

    /// Pushes that are not publications; can be taken once.
    pub fn events(&self) -> Option<mpsc::Receiver<Event>> {
        lock(&self.events).take()
    }

    async fn request(
        &self,
        body: WireCommandBody,
        subscribe: Option<String>,
    ) -> Result<(WireReplyBody, Option<Subscription>), Error> {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed) % native::RESERVED_ID_BASE;
        let id = id.max(1);
        let (tx, rx) = oneshot::channel();
        lock(&self.shared.pending).insert(id, (subscribe, tx));
        if let Err(e) = self.shared.send(&WireCommand { id, body }).await {
            lock(&self.shared.pending).remove(&id);
            return Err(self.closed_error().unwrap_or(e));
        }
        match tokio::time::timeout(self.timeout, rx).await {
            Err(_) => {
                lock(&self.shared.pending).remove(&id);
                Err(Error::Timeout)
            }
            Ok(Err(_)) => Err(self.closed_error().unwrap_or_else(|| Error::Closed("connection ended".into()))),
            Ok(Ok((WireReplyBody::Error(code, message, _), _))) => Err(Error::Reply { code, message }),
            Ok(Ok(reply)) => Ok(reply),
        }
    }

    fn closed_error(&self) -> Option<Error> {
        lock(&self.shared.disconnect).clone().map(|(code, reason)| Error::Disconnected { code, reason })
    }

    /// Subscribes to `channel`.
    pub async fn subscribe(&self, channel: &str) -> Result<Subscription, Error> {
        self.subscribe_with(WireSubscribe { channel: channel.into(), ..Default::default() }).await
    }

    /// Subscribes with every option (token, recovery …).
    pub async fn subscribe_with(&self, req: WireSubscribe) -> Result<Subscription, Error> {
        let channel = req.channel.clone();
        match self.request(WireCommandBody::Subscribe(req), Some(channel)).await? {
            (WireReplyBody::Subscribe(..), Some(sub)) => Ok(sub),
            (other, _) => Err(Error::Protocol(format!("unexpected subscribe reply {other:?}"))),
        }
    }

    /// Leaves `channel`.
    pub async fn unsubscribe(&self, channel: &str) -> Result<(), Error> {
        self.request(WireCommandBody::Unsubscribe(channel.into()), None).await?;
        lock(&self.shared.subs).retain(|_, slot| &*slot.channel != channel);
        Ok(())
    }

    /// Publishes `data` into `channel` (the server must allow client publishing there).
    pub async fn publish(&self, channel: &str, data: impl Into<Bytes>) -> Result<(), Error> {
        self.request(WireCommandBody::Publish(channel.into(), data.into()), None).await.map(|_| ())
    }

    /// Publishes `data` into a subscription's channel as a datagram: unreliable, no reply
    /// (failures come back as [`Event::Notice`]).
    pub fn publish_datagram(&self, sub: u32, data: &[u8]) -> Result<(), Error> {
        let mut d = Vec::with_capacity(data.len() + 5);
        native::put_datagram(&mut d, sub, data);
        self.conn.send_datagram(Bytes::from(d))
    }

    /// Sends raw bytes as a datagram (tests of the server's bad-input handling).
    pub fn send_raw_datagram(&self, d: Bytes) -> Result<(), Error> {
        self.conn.send_datagram(d)
    }

    /// Writes raw bytes on the control stream (tests of the server's bad-input handling).
    pub async fn send_raw_control(&self, bytes: &[u8]) -> Result<(), Error> {
        self.shared.control.lock().await.write_all(bytes).await
    }

    /// A channel's history: `limit` publications (-1: up to the server's cap), after `since`.
    pub async fn history(&self, channel: &str, limit: i32, since: Option<(u64, String)>) -> Result<WireHistoryResult, Error> {
        let body = WireCommandBody::History(WireHistory { channel: channel.into(), limit, since, reverse: false });
        match self.request(body, None).await? {
            (WireReplyBody::History(h), _) => Ok(h),
            (other, _) => Err(Error::Protocol(format!("unexpected history reply {other:?}"))),
        }
    }

    /// Who is in a channel: client id → info.
    pub async fn presence(&self, channel: &str) -> Result<Vec<(String, WireClientInfo)>, Error> {
        match self.request(WireCommandBody::Presence(channel.into()), None).await? {
            (WireReplyBody::Presence(p), _) => Ok(p),
            (other, _) => Err(Error::Protocol(format!("unexpected presence reply {other:?}"))),
        }
    }

    /// Presence counters: (clients, users).
    pub async fn presence_stats(&self, channel: &str) -> Result<(u32, u32), Error> {
        match self.request(WireCommandBody::PresenceStats(channel.into()), None).await? {
            (WireReplyBody::PresenceStats(c, u), _) => Ok((c, u)),
            (other, _) => Err(Error::Protocol(format!("unexpected presence_stats reply {other:?}"))),
        }
    }

    /// The disconnect the server sent, if it sent one.
    pub fn disconnect_reason(&self) -> Option<(u32, String)> {
        lock(&self.shared.disconnect).clone()
    }

    /// Waits until the connection closes; returns the server's disconnect (code, reason),
    /// or the QUIC close code and text when no disconnect frame arrived.
    pub async fn closed(&self) -> (u32, String) {
        let closed = self.conn.closed().await;
        // The disconnect frame may still be in the reader's hands for a moment.
        for _ in 0..20 {
            if let Some(d) = self.disconnect_reason() {
                return d;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        closed
    }

    /// Closes the connection (code 0) and waits briefly for the server to see it.
    pub async fn close(self) {
        self.conn.close(0, b"client closed").await;
    }
}

/// Reads frames from `recv` into `buf`; returns the next whole one's bounds, or None at
/// the end of the stream.
async fn next_frame(recv: &mut RecvStream, buf: &mut Vec<u8>, used: &mut usize) -> Result<Option<(usize, usize)>, Error> {
    let mut chunk = vec![0u8; READ_CHUNK_BYTES];
    loop {
        match framing::check_varint(&buf[*used..], MAX_FRAME_BYTES) {
            Err(e) => return Err(Error::Protocol(e.to_string())),
            Ok(VarintCheck::Complete { header, len }) => {
                let start = *used + header;
                *used = start + len;
                return Ok(Some((start, start + len)));
            }
            Ok(VarintCheck::Incomplete) => {}
        }
        buf.drain(..*used);
        *used = 0;
        match recv.read(&mut chunk).await? {
            Some(n) => buf.extend_from_slice(&chunk[..n]),
            None => return Ok(None),
        }
    }
}

fn to_publication(channel: &Arc<str>, p: WirePublication, datagram: bool) -> Publication {
    Publication { channel: channel.clone(), offset: p.offset, data: p.data, info: p.info, tags: p.tags, datagram }
}

async fn read_control(shared: Arc<Shared>, mut recv: RecvStream, conn: Conn) {
    let (mut buf, mut used) = (Vec::new(), 0);
    while let Ok(Some((start, end))) = next_frame(&mut recv, &mut buf, &mut used).await {
        let frame: ServerFrame = match postcard::from_bytes(&buf[start..end]) {
            Ok(f) => f,
            Err(e) => {
                shared.event(Event::Notice(0, format!("undecodable server frame: {e}")));
                break;
            }
        };
        match frame {
            ServerFrame::Reply(reply) => {
                let Some((channel, tx)) = lock(&shared.pending).remove(&reply.id) else { continue };
                let sub = match (&reply.body, channel) {
                    (WireReplyBody::Subscribe(sub, result), Some(channel)) => {
                        Some(shared.register(*sub, &channel, result.clone()))
                    }
                    (WireReplyBody::Connect(result), _) => {
                        for s in &result.subs {
                            let sub = shared.register(s.sub, &s.channel, s.result.clone());
                            shared.event(Event::Subscribed(sub));
                        }
                        None
                    }
                    _ => None,
                };
                let _ = tx.send((reply.body, sub));
            }
            ServerFrame::Push(push) => match push {
                WirePush::Subscribe(WireServerSub { channel, sub, result }) => {
                    let s = shared.register(sub, &channel, result);
                    shared.event(Event::Subscribed(s));
                }
                WirePush::Unsubscribe(channel, code, reason) => {
                    lock(&shared.subs).retain(|_, slot| *slot.channel != *channel);
                    shared.event(Event::Unsubscribed(channel, code, reason));
                }
                WirePush::Join(c, i) => shared.event(Event::Join(c, i)),
                WirePush::Leave(c, i) => shared.event(Event::Leave(c, i)),
                WirePush::Message(d) => shared.event(Event::Message(d)),
                WirePush::Refresh(..) => {}
            },
            ServerFrame::Ping => {
                if shared.pong.load(Ordering::Relaxed) {
                    let _ = shared.send(&WireCommand { id: 0, body: WireCommandBody::Pong }).await;
                }
            }
            ServerFrame::Notice(code, message) => shared.event(Event::Notice(code, message)),
            ServerFrame::Disconnect(code, reason) => {
                *lock(&shared.disconnect) = Some((u32::from(code), reason.clone()));
                shared.event(Event::Disconnected(u32::from(code), reason.clone()));
                // As the SDKs do: the server said goodbye, so end the connection (the server
                // waits, bounded, for this before closing, so the frame is not lost).
                conn.close(u32::from(code), reason.as_bytes()).await;
            }
        }
    }
    // Waiters get "closed"; subscriptions end.
    lock(&shared.pending).clear();
    lock(&shared.subs).clear();
}

async fn accept_streams(shared: Arc<Shared>, conn: Conn) {
    while let Ok(stream) = conn.accept_uni().await {
        tokio::spawn(read_subscription(shared.clone(), stream));
    }
}

/// Reads one subscription stream: its header, then publications into the subscription's
/// queue. A full queue stops the reading, so flow control holds the server back on this
/// stream only.
async fn read_subscription(shared: Arc<Shared>, mut recv: RecvStream) {
    let (mut buf, mut used) = (Vec::new(), 0);
    let Ok(Some((start, end))) = next_frame(&mut recv, &mut buf, &mut used).await else { return };
    let Ok(header) = postcard::from_bytes::<StreamHeader>(&buf[start..end]) else { return };
    // The stream may arrive before the subscribe reply registered its id.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let (channel, tx) = loop {
        let notified = shared.sub_ready.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if let Some(slot) = lock(&shared.subs).get(&header.sub) {
            break (slot.channel.clone(), slot.tx.clone());
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return;
        }
    };
    while let Ok(Some((start, end))) = next_frame(&mut recv, &mut buf, &mut used).await {
        let Ok(p) = postcard::from_bytes::<WirePublication>(&buf[start..end]) else { return };
        if tx.send(to_publication(&channel, p, false)).await.is_err() {
            return;
        }
    }
}

async fn read_datagrams(shared: Arc<Shared>, conn: Conn) {
    while let Ok(d) = conn.read_datagram().await {
        let Ok((sub, rest)) = native::split_datagram(&d) else { continue };
        let Ok(p) = postcard::from_bytes::<WirePublication>(rest) else { continue };
        let target = lock(&shared.subs).get(&sub).map(|s| (s.channel.clone(), s.tx.clone()));
        if let Some((channel, tx)) = target {
            // Datagrams are latest-value: when the queue is full, this one is dropped.
            let _ = tx.try_send(to_publication(&channel, p, true));
        }
    }
}
