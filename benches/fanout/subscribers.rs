//! The subscribers: WebSocket connections speaking the Centrifugo v2 client
//! protocol in JSON or (`--protocol protobuf`) in Protobuf, or QUIC /
//! WebTransport native mode through `tidewire::client`, one task each,
//! counting what arrives.
//!
//! Subscriber i binds source address 127.0.0.(2 + i % K), connects to node
//! `i % N` of the run's N server processes (one, unless `--nodes`), sends
//! connect + subscribe to `bench-{i % C}` in one frame and waits for both
//! replies — JSON: newline-separated text; Protobuf (`?format=protobuf`):
//! varint-delimited `Command`s in one binary frame, `Reply`s back in binary
//! frames, pings an empty Reply answered by an empty Command when the connect
//! result says `pong` — (≤ `--connect-concurrency` handshakes in flight, each bounded by
//! `HANDSHAKE_TIMEOUT`), then reports ready and counts every frame until its
//! stop signal or the server closes it. The counting itself is in
//! `delivery.rs`; the server is only an address here, so a spawned Tidewire, a
//! spawned limit-server and a `--target` are driven the same way.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, anyhow, bail};
use futures_util::{SinkExt as _, StreamExt as _};
use serde::Serialize;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{WebSocketStream, client_async_with_config};

use tidewire::protocol::protobuf::messages as pb;
use tidewire::protocol::protobuf::put_delimited;

use crate::delivery::{Ending, Merged, SeqTracker, SubscriberStats};
use crate::histogram::Histogram;
use crate::http::explain_io;
use crate::run::Progress;
use crate::scenario::{Args, HMAC_SECRET, node_of};
use crate::server::Server;

/// Budget for one subscriber: TCP connect + WebSocket upgrade + both replies.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the subscriber tasks get, all together, to hand in their tallies.
const FINISH_TIMEOUT: Duration = Duration::from_secs(10);
/// What every subscriber task shares.
pub(crate) struct SubscriberContext {
    /// Every node's WebSocket address; subscriber i connects to node `i % len`
    /// (`scenario::node_of`).
    pub(crate) nodes: Vec<SocketAddr>,
    /// Number of 127.0.0.x source addresses to spread over.
    pub(crate) source_ips: u8,
    /// Channel count C.
    pub(crate) channels: usize,
    /// Publications per request, to find a seq's publisher.
    pub(crate) batch: u64,
    /// Publisher count P, to find a seq's publisher.
    pub(crate) publishers: u64,
    /// WebSocket subscribers speak Protobuf (`?format=protobuf`) instead of JSON.
    pub(crate) protobuf: bool,
    /// tungstenite read buffer size.
    pub(crate) ws_read_buffer: usize,
    /// Bounds the handshakes in flight.
    pub(crate) connect_gate: Semaphore,
    /// The clock origin shared with the publishers.
    pub(crate) origin: Instant,
    /// Live counters.
    pub(crate) progress: Arc<Progress>,
}

type Ws = WebSocketStream<TcpStream>;

/// Tells the bench how subscriber `i`'s handshake (bounded by [`HANDSHAKE_TIMEOUT`]) went
/// and counts it as connected and open when it succeeded; the opened connection, if any.
async fn report_handshake<T>(
    ctx: &SubscriberContext,
    i: usize,
    handshake: Result<anyhow::Result<T>, tokio::time::error::Elapsed>,
    ready: mpsc::Sender<Result<(), String>>,
) -> Option<T> {
    let opened = match handshake {
        Ok(Ok(opened)) => opened,
        Ok(Err(e)) => {
            let _ = ready.send(Err(format!("subscriber {i}: {e:#}"))).await;
            return None;
        }
        Err(_) => {
            let _ = ready.send(Err(format!("subscriber {i}: handshake took over {HANDSHAKE_TIMEOUT:?}"))).await;
            return None;
        }
    };
    ctx.progress.connected.fetch_add(1, Ordering::Relaxed);
    ctx.progress.open.fetch_add(1, Ordering::Relaxed);
    let _ = ready.send(Ok(())).await;
    Some(opened)
}

/// One subscriber: connect, subscribe, report ready, then count deliveries
/// until told to stop or the server closes the connection.
pub(crate) async fn run_subscriber(
    ctx: Arc<SubscriberContext>,
    i: usize,
    stop: watch::Receiver<bool>,
    mut stopped: oneshot::Receiver<()>,
    ready: mpsc::Sender<Result<(), String>>,
) -> SubscriberStats {
    let mut stats = SubscriberStats::default();
    let handshake = {
        let Ok(_permit) = ctx.connect_gate.acquire().await else {
            return stats;
        };
        if *stop.borrow() {
            return stats;
        }
        tokio::time::timeout(HANDSHAKE_TIMEOUT, open_subscriber(&ctx, i)).await
    };
    let Some((mut ws, pong)) = report_handshake(&ctx, i, handshake, ready).await else { return stats };

    let mut seqs = SeqTracker::new(ctx.batch, ctx.publishers);
    loop {
        let msg = tokio::select! {
            biased;
            // A per-task oneshot, not the shared watch: polling it touches no
            // state shared with other subscribers.
            _ = &mut stopped => break,
            msg = ws.next() => msg,
        };
        let now_us = ctx.origin.elapsed().as_micros() as u64;
        let (fresh, pings) = match msg {
            Some(Ok(Message::Text(text))) if !ctx.protobuf => {
                stats.frames += 1;
                stats.absorb_frame(&text, now_us, &mut seqs)
            }
            Some(Ok(Message::Binary(frame))) if ctx.protobuf => {
                stats.frames += 1;
                stats.absorb_binary_frame(&frame, now_us, &mut seqs)
            }
            Some(Ok(Message::Text(_) | Message::Binary(_))) => {
                stats.other_messages += 1; // the other protocol's frame type
                continue;
            }
            Some(Ok(Message::Close(frame))) => {
                stats.ended = Some(match frame {
                    Some(f) if u16::from(f.code) == 3008 => Ending::Slow,
                    Some(f) => Ending::Other(format!("close {} {}", u16::from(f.code), f.reason.as_str())),
                    None => Ending::Other("close frame without code".into()),
                });
                break;
            }
            Some(Ok(_)) => continue, // ping, pong: tungstenite answers pings itself
            Some(Err(e)) => {
                stats.ended = Some(Ending::Other(format!("read error: {e}")));
                break;
            }
            None => {
                stats.ended = Some(Ending::Other("connection closed without close frame".into()));
                break;
            }
        };
        if fresh > 0 {
            ctx.progress.delivered.fetch_add(fresh, Ordering::Relaxed);
        }
        stats.pings += u64::from(pings);
        for _ in 0..if pong { pings } else { 0 } {
            if let Err(e) = ws.send(pong_message(ctx.protobuf)).await {
                stats.ended = Some(Ending::Other(format!("sending pong: {e}")));
                break;
            }
            stats.pongs += 1;
        }
        if stats.ended.is_some() {
            break;
        }
    }
    ctx.progress.open.fetch_sub(1, Ordering::Relaxed);
    stats
}

/// What QUIC and WebTransport subscribers share: the client sockets and options.
pub(crate) struct NativeContext {
    /// One socket per [`CLIENTS_PER_SOCKET`] subscribers: a single socket for thousands
    /// of connections would make the load generator the bottleneck.
    connectors: Vec<tidewire::client::Connector>,
    /// Options (address, transport, pinned certificate hash).
    options: tidewire::client::Options,
}

/// Subscribers sharing one client UDP socket.
const CLIENTS_PER_SOCKET: usize = 100;

/// For `--transport quic|webtransport`: fetches the dev certificate hash and opens the
/// client sockets; `None` for WebSocket.
pub(crate) async fn native_context(args: &Args, server: &Server) -> anyhow::Result<Option<Arc<NativeContext>>> {
    use tidewire::client::{Connector, Options, Transport, Trust};
    let transport = match args.transport.as_str() {
        "quic" => Transport::Quic,
        "webtransport" => Transport::WebTransport,
        _ => return Ok(None),
    };
    let addr = server.addr;
    let quic = server.quic.ok_or_else(|| anyhow!("--transport {} needs the server's QUIC port", args.transport))?;
    let body = tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(addr).context("connecting for the cert hash")?;
        s.write_all(format!("GET /webtransport/cert-hash HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())?;
        let mut text = String::new();
        s.read_to_string(&mut text)?;
        Ok(text)
    })
    .await
    .context("cert hash task")??;
    let json = body.split("\r\n\r\n").nth(1).ok_or_else(|| anyhow!("no body in the cert-hash answer"))?;
    let value: serde_json::Value = serde_json::from_str(json.trim()).context("cert-hash JSON")?;
    let hex = value["hash"].as_str().ok_or_else(|| anyhow!("cert-hash has no hash: {json}"))?;
    let mut hash = [0u8; 32];
    for (i, byte) in hash.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2).ok_or_else(|| anyhow!("short hash"))?, 16)?;
    }
    let options = Options::new(quic, transport, Trust::CertHash(vec![hash]));
    let sockets = args.subscribers.div_ceil(CLIENTS_PER_SOCKET).max(1);
    let connectors = (0..sockets)
        .map(|_| Connector::new(&options).map_err(|e| anyhow!("client socket: {e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Some(Arc::new(NativeContext { connectors, options })))
}

/// A QUIC or WebTransport subscriber through `tidewire::client`: connect, subscribe to
/// its channel, report ready, then count deliveries (stream or datagram) until stopped.
pub(crate) async fn run_native_subscriber(
    ctx: Arc<SubscriberContext>,
    native: Arc<NativeContext>,
    i: usize,
    mut stopped: oneshot::Receiver<()>,
    ready: mpsc::Sender<Result<(), String>>,
) -> SubscriberStats {
    let mut stats = SubscriberStats::default();
    let opened = async {
        let _permit = ctx.connect_gate.acquire().await.map_err(|e| anyhow!("{e}"))?;
        let mut options = native.options.clone();
        options.token = connection_token(&format!("bench-user-{i}"))?;
        options.subscription_buffer = 4096;
        let connector = &native.connectors[i % native.connectors.len()];
        let client = connector.connect(options).await.map_err(|e| anyhow!("connect: {e}"))?;
        let channel = format!("bench-{}", i % ctx.channels);
        let sub = client.subscribe(&channel).await.map_err(|e| anyhow!("subscribe: {e}"))?;
        anyhow::Ok((client, sub))
    };
    let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, opened).await;
    let Some((client, mut sub)) = report_handshake(&ctx, i, handshake, ready).await else { return stats };
    let mut seqs = SeqTracker::new(ctx.batch, ctx.publishers);
    loop {
        let publication = tokio::select! {
            biased;
            _ = &mut stopped => break,
            p = sub.next() => p,
        };
        let Some(p) = publication else {
            let (code, reason) = client.disconnect_reason().unwrap_or((0, "subscription ended".into()));
            stats.ended = Some(if code == 3008 { Ending::Slow } else { Ending::Other(format!("{code} {reason}")) });
            break;
        };
        let now_us = ctx.origin.elapsed().as_micros() as u64;
        if stats.absorb_publication(&p.data, now_us, &mut seqs) {
            ctx.progress.delivered.fetch_add(1, Ordering::Relaxed);
        }
    }
    ctx.progress.open.fetch_sub(1, Ordering::Relaxed);
    drop(sub);
    client.close().await;
    stats
}

/// The pong answering one server ping: `{}` in JSON, an empty Command
/// (delimited: one zero byte) in Protobuf.
fn pong_message(protobuf: bool) -> Message {
    if protobuf {
        let mut out = Vec::with_capacity(1);
        put_delimited(&mut out, &pb::Command::default());
        Message::binary(out)
    } else {
        Message::text("{}")
    }
}

/// TCP connect from this subscriber's source address, WebSocket upgrade,
/// connect + subscribe in one frame (JSON or Protobuf), and wait for both
/// replies. Returns the stream and whether the server wants pongs.
async fn open_subscriber(ctx: &SubscriberContext, i: usize) -> anyhow::Result<(Ws, bool)> {
    let source = Ipv4Addr::new(127, 0, 0, 2 + (i % usize::from(ctx.source_ips)) as u8);
    let socket = TcpSocket::new_v4().map_err(explain_io)?;
    socket.bind(SocketAddr::new(IpAddr::V4(source), 0)).map_err(explain_io)?;
    let server = ctx.nodes[node_of(i, ctx.nodes.len())];
    let stream = socket.connect(server).await.map_err(explain_io)?;
    stream.set_nodelay(true)?;
    let config = WebSocketConfig::default().read_buffer_size(ctx.ws_read_buffer).write_buffer_size(0);
    let query = if ctx.protobuf { "?format=protobuf" } else { "" };
    let url = format!("ws://{server}/connection/websocket{query}");
    let (mut ws, _) = client_async_with_config(url.as_str(), stream, Some(config))
        .await
        .context("WebSocket upgrade")?;

    let channel = format!("bench-{}", i % ctx.channels);
    let token = connection_token(&format!("user-{i}"))?;
    let (pong, pending_pings) = if ctx.protobuf {
        handshake_protobuf(&mut ws, token, channel).await?
    } else {
        handshake_json(&mut ws, &token, &channel).await?
    };
    if pong {
        for _ in 0..pending_pings {
            ws.send(pong_message(ctx.protobuf)).await.context("sending pong")?;
        }
    }
    Ok((ws, pong))
}

/// The next data frame of the handshake (text or binary, as the server sent it).
async fn handshake_frame(ws: &mut Ws) -> anyhow::Result<Message> {
    loop {
        match ws.next().await {
            Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => return Ok(m),
            Some(Ok(Message::Close(frame))) => {
                let why = frame.map(|f| format!("{} {}", u16::from(f.code), f.reason.as_str())).unwrap_or_default();
                bail!("server closed the connection during connect/subscribe: {why}");
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => bail!("reading connect/subscribe replies: {e}"),
            None => bail!("connection closed before the connect/subscribe replies"),
        }
    }
}

/// JSON connect (id 1) + subscribe (id 2) in one text frame, then both replies;
/// returns (the server wants pongs, pings received meanwhile).
async fn handshake_json(ws: &mut Ws, token: &str, channel: &str) -> anyhow::Result<(bool, u32)> {
    let hello = format!(
        "{{\"id\":1,\"connect\":{{\"token\":\"{token}\"}}}}\n{{\"id\":2,\"subscribe\":{{\"channel\":\"{channel}\"}}}}"
    );
    ws.send(Message::text(hello)).await.context("sending connect + subscribe")?;

    let (mut pong, mut connected, mut subscribed, mut pending_pings) = (false, false, false, 0u32);
    while !(connected && subscribed) {
        let Message::Text(frame) = handshake_frame(ws).await? else { continue };
        for line in frame.split('\n').map(str::trim).filter(|l| !l.is_empty()) {
            if line == "{}" {
                pending_pings += 1;
                continue;
            }
            let value: serde_json::Value =
                serde_json::from_str(line).with_context(|| format!("unparsable server message {line:?}"))?;
            if value.get("error").is_some() {
                let to = if value.get("id").and_then(serde_json::Value::as_u64) == Some(1) { "connect" } else { "subscribe" };
                bail!("server replied to {to} with an error: {line}");
            }
            match value.get("id").and_then(serde_json::Value::as_u64) {
                Some(1) => {
                    let result = value.get("connect").ok_or_else(|| anyhow!("reply 1 has no connect result: {line}"))?;
                    pong = result.get("pong").and_then(serde_json::Value::as_bool).unwrap_or(false);
                    connected = true;
                }
                Some(2) => {
                    value.get("subscribe").ok_or_else(|| anyhow!("reply 2 has no subscribe result: {line}"))?;
                    subscribed = true;
                }
                _ => {} // a push before our replies: nothing is published yet, ignore
            }
        }
    }
    Ok((pong, pending_pings))
}

/// Protobuf connect (id 1) + subscribe (id 2) as varint-delimited Commands in one
/// binary frame, then both Replies; returns (the server wants pongs, pings
/// received meanwhile).
async fn handshake_protobuf(ws: &mut Ws, token: String, channel: String) -> anyhow::Result<(bool, u32)> {
    let connect = pb::Command { id: 1, connect: Some(pb::ConnectRequest { token, ..Default::default() }), ..Default::default() };
    let subscribe =
        pb::Command { id: 2, subscribe: Some(pb::SubscribeRequest { channel, ..Default::default() }), ..Default::default() };
    let mut hello = Vec::new();
    put_delimited(&mut hello, &connect);
    put_delimited(&mut hello, &subscribe);
    ws.send(Message::binary(hello)).await.context("sending connect + subscribe")?;

    let (mut pong, mut connected, mut subscribed, mut pending_pings) = (false, false, false, 0u32);
    while !(connected && subscribed) {
        let Message::Binary(frame) = handshake_frame(ws).await? else { continue };
        for body in tidewire::protocol::protobuf::messages(&frame) {
            let body = body.map_err(|e| anyhow!("server frame: {e}"))?;
            if body.is_empty() {
                pending_pings += 1;
                continue;
            }
            let reply = <pb::Reply as prost::Message>::decode(body).context("unparsable server Reply")?;
            if let Some(error) = &reply.error {
                let to = if reply.id == 1 { "connect" } else { "subscribe" };
                bail!("server replied to {to} with error {} {}", error.code, error.message);
            }
            match reply.id {
                1 => {
                    let result = reply.connect.ok_or_else(|| anyhow!("reply 1 has no connect result"))?;
                    pong = result.pong;
                    connected = true;
                }
                2 => {
                    reply.subscribe.ok_or_else(|| anyhow!("reply 2 has no subscribe result"))?;
                    subscribed = true;
                }
                _ => {} // a push before our replies: nothing is published yet, ignore
            }
        }
    }
    Ok((pong, pending_pings))
}

/// HS256 connection JWT for `user`, valid for one hour.
pub(crate) fn connection_token(user: &str) -> anyhow::Result<String> {
    #[derive(Serialize)]
    struct Claims<'a> {
        sub: &'a str,
        exp: u64,
    }
    let exp = SystemTime::now().duration_since(UNIX_EPOCH).context("system clock before 1970")?.as_secs() + 3600;
    let key = jsonwebtoken::EncodingKey::from_secret(HMAC_SECRET.as_bytes());
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &Claims { sub: user, exp }, &key).context("signing a JWT")
}


/// Tells every subscriber task to stop, waits for them (≤ 10 s in all) and
/// merges their stats.
pub(crate) async fn finish_tasks(tasks: Vec<tokio::task::JoinHandle<SubscriberStats>>, stoppers: Vec<oneshot::Sender<()>>) -> Merged {
    for stopper in stoppers {
        let _ = stopper.send(());
    }
    let mut merged = Merged { latency: Histogram::new(), ..Merged::default() };
    let deadline = Instant::now() + FINISH_TIMEOUT;
    for task in tasks {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let Ok(Ok(stats)) = tokio::time::timeout(remaining, task).await else {
            merged.add_failure("subscriber task did not finish".into());
            continue;
        };
        merged.add(stats);
    }
    merged
}
