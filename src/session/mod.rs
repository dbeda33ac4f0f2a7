//! One connection's state machine, sans I/O.
//!
//! A transport decodes commands and hands them to [`Session::handle`] with the current
//! time; the session checks them, talks to the hub, and queues replies and pushes in the
//! connection's [`Outbox`]. Timers (stale and expiry checks) are driven by
//! [`Session::tick`] at [`Session::next_deadline`], so tests step time instead of sleeping;
//! pings and pongs are the [`heartbeat::Heartbeat`]'s, which the connection driver runs
//! even while the session waits on the engine. A returned [`Disconnect`] tells the
//! transport to close after flushing.

mod connect;
pub mod heartbeat;
mod proxied;
mod recovery;
mod subs;
mod subscribe;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use bytes::Bytes;

use crate::auth::Verifier;
use crate::hub::{Control, Hub, Outbox, Outgoing};
use crate::protocol::json::{MAX_JSON_DEPTH, nested_deeper_than};
use crate::protocol::{ClientError, Command, CommandBody, Disconnect, Push, Reply, ReplyBody};

/// Grace before a connection whose connect failed is dropped, in ms (clients close first).
const FAILED_CLOSE_DELAY_MS: u64 = 5_000;

/// How far ahead a connection's or subscription's expiry may lie, in seconds (one year).
/// A later `exp`/`expire_at` — from a token, a proxy or the server API — is clamped to it,
/// as Centrifugo's core does (centrifuge PR #495, "max ttl 1 year"): such a value is a bug
/// in the issuer, and taken as is it broke timer arithmetic there (and wrapped here).
pub const MAX_EXPIRY_AHEAD_SECS: u64 = 365 * 24 * 60 * 60;

/// Clamps an expiry (unix seconds) to at most [`MAX_EXPIRY_AHEAD_SECS`] after `now_ms`.
fn capped_expiry(expire_at: Option<u64>, now_ms: u64) -> Option<u64> {
    expire_at.map(|at| at.min((now_ms / 1000).saturating_add(MAX_EXPIRY_AHEAD_SECS)))
}

/// Server version reported in connect and refresh results.
pub const VERSION: &str = concat!("tidewire ", env!("CARGO_PKG_VERSION"));

/// A config duration in ms, saturating (a duration too long for `u64` ms is "never").
fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Whether client data is JSON nested deeper than [`MAX_JSON_DEPTH`] levels. JSON codecs
/// hand over raw JSON; binary codecs may carry any bytes, which are relayed to JSON clients
/// verbatim only when they are JSON — so a deep scan result is confirmed with a parse
/// (serde_json skips raw values without recursing) before refusing binary data.
fn too_deep(data: Option<&Bytes>) -> bool {
    data.is_some_and(|d| nested_deeper_than(d, MAX_JSON_DEPTH) && crate::protocol::json::is_json(d))
}

/// What a transport can do, as far as the session cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransportInfo {
    /// Name for metrics and logs (`websocket`, `sse` …).
    pub name: &'static str,
    /// Clients send commands after connect (false for uni transports).
    pub bidirectional: bool,
    /// Report session and node in the connect result (emulation transports).
    pub emulation: bool,
}

/// Verifiers and backend proxies shared by every session.
#[derive(Debug, Clone)]
pub struct Auth {
    /// Connection tokens.
    pub connect: Verifier,
    /// Subscription tokens.
    pub subscribe: Verifier,
    /// The application backend's proxies (none configured: `None`).
    pub proxies: Option<Arc<crate::proxy::Proxies>>,
}

impl Auth {
    /// Builds verifiers from config (`client.token`, `client.subscription_token`).
    pub fn from_config(cfg: &crate::config::ClientConfig) -> Result<Arc<Self>, String> {
        let connect = Verifier::new(&cfg.token).map_err(|e| format!("client.token.{e}"))?;
        let subscribe = if cfg.subscription_token.enabled {
            Verifier::new(&cfg.subscription_token.token).map_err(|e| format!("client.subscription_token.{e}"))?
        } else {
            connect.clone()
        };
        Ok(Arc::new(Self { connect, subscribe, proxies: None }))
    }

    /// These verifiers with the backend proxies (kept only when some are configured).
    pub fn with_proxies(self: Arc<Self>, proxies: crate::proxy::Proxies) -> Arc<Self> {
        if proxies.is_empty() {
            return self;
        }
        let mut me = Arc::unwrap_or_clone(self);
        me.proxies = Some(Arc::new(proxies));
        Arc::new(me)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for `connect`.
    Connecting,
    /// Authenticated.
    Connected,
    /// `connect` was answered with an error; further commands are ignored.
    Failed,
}

/// One subscription of this connection.
#[derive(Debug, Clone, Default)]
struct Sub {
    /// Made by the server (token `channels`/`subs` or the server API).
    server_side: bool,
    /// Channel info from the subscription token.
    chan_info: Option<Bytes>,
    /// Expiry of the subscription token (unix seconds).
    expire_at: Option<u64>,
    /// A presence entry was added (remove it when leaving).
    presence: bool,
    /// A join was announced (announce the leave).
    join_leave: bool,
}

/// The state of one connection.
#[derive(Debug)]
pub struct Session {
    hub: Hub,
    auth: Arc<Auth>,
    outbox: Arc<Outbox>,
    transport: TransportInfo,
    conn: u64,
    /// Shared with the hub's indexes (one allocation for every copy of it).
    client: Arc<str>,
    session_id: uuid::Uuid,
    state: State,
    registered: bool,
    /// Shared with the hub's indexes, like the client id.
    user: Arc<str>,
    conn_info: Option<Bytes>,
    expire_at: Option<u64>,
    subs: subs::Subs<Sub>,
    created_ms: u64,
    failed_ms: u64,
    /// When the presence entries are next refreshed (0: not scheduled yet).
    next_presence_ms: u64,
    /// Headers and meta for proxy calls (boxed: only connections of a node with proxies
    /// pay for it).
    backend: Option<Box<proxied::Backend>>,
    /// The client speaks a binary protocol (the proxies' `protocol: protobuf`).
    binary_protocol: bool,
}

impl Session {
    /// A session for a connection opened at `now_ms` (unix milliseconds).
    pub fn new(hub: Hub, auth: Arc<Auth>, outbox: Arc<Outbox>, transport: TransportInfo, now_ms: u64) -> Self {
        Self {
            conn: hub.next_conn_id(),
            client: uuid::Uuid::new_v4().to_string().into(),
            session_id: uuid::Uuid::new_v4(),
            hub,
            outbox,
            transport,
            state: State::Connecting,
            registered: false,
            user: Arc::from(""),
            conn_info: None,
            expire_at: None,
            subs: subs::Subs::default(),
            created_ms: now_ms,
            failed_ms: 0,
            next_presence_ms: 0,
            backend: auth.proxies.as_ref().map(|_| Box::default()),
            binary_protocol: false,
            auth,
        }
    }

    /// The hub this session lives in.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.client
    }

    /// The session id (emulation: where `/emulation` posts are routed).
    pub fn session_id(&self) -> uuid::Uuid {
        self.session_id
    }

    /// The user id (empty before connect or for anonymous users).
    pub fn user(&self) -> &str {
        &self.user
    }

    /// Whether `connect` succeeded.
    pub fn is_connected(&self) -> bool {
        self.state == State::Connected
    }

    /// Channels this connection is subscribed to.
    pub fn channels(&self) -> impl Iterator<Item = &str> {
        self.subs.keys().map(String::as_str)
    }

    fn reply(&self, id: u32, body: ReplyBody) {
        if let ReplyBody::Error(e) = &body {
            self.hub.metrics().reply_errors.inc(&e.code().to_string());
        }
        if id != 0 {
            self.outbox.push(Outgoing::Reply(Box::new(Reply { id, body })));
        }
    }

    fn error(&self, id: u32, e: ClientError) {
        self.reply(id, ReplyBody::Error(e));
    }

    fn push(&self, push: Push) {
        self.outbox.push(Outgoing::Push(Box::new(push)));
    }

    /// Handles one command. `Err` means: close the connection with this code.
    pub async fn handle(&mut self, cmd: Command, now_ms: u64) -> Result<(), Disconnect> {
        self.hub.metrics().commands.inc(cmd.body.name());
        match self.state {
            State::Failed => return Ok(()),
            State::Connecting => {
                return match cmd.body {
                    CommandBody::Connect(req) if cmd.id != 0 => self.connect(cmd.id, req, now_ms).await,
                    _ => Err(Disconnect::BAD_REQUEST),
                };
            }
            State::Connected => {}
        }
        if cmd.id == 0 {
            return match cmd.body {
                // Pongs are the heartbeat's (the driver's); one reaching the session was not asked for.
                CommandBody::Send(_) => Err(Disconnect::NOT_AVAILABLE),
                _ => Err(Disconnect::BAD_REQUEST),
            };
        }
        let id = cmd.id;
        match cmd.body {
            CommandBody::Connect(_) => return Err(Disconnect::BAD_REQUEST),
            CommandBody::Subscribe(req) => return self.subscribe(id, req, now_ms).await,
            CommandBody::Unsubscribe(req) => self.unsubscribe(id, &req.channel).await,
            CommandBody::Publish(req) => return self.publish(id, req).await,
            CommandBody::Presence(req) => self.presence(id, &req.channel, false).await,
            CommandBody::PresenceStats(req) => self.presence(id, &req.channel, true).await,
            CommandBody::History(req) => self.history(id, req).await,
            CommandBody::Ping => self.reply(id, ReplyBody::Ping),
            CommandBody::Rpc(req) => return self.rpc(id, req).await,
            // Centrifugo OSS registers no `send` handler and disconnects.
            CommandBody::Send(_) => return Err(Disconnect::NOT_AVAILABLE),
            CommandBody::Refresh(req) => return self.refresh(id, &req.token, now_ms),
            CommandBody::SubRefresh(req) => return self.sub_refresh(id, &req.channel, &req.token, now_ms),
            CommandBody::Empty => return Err(Disconnect::BAD_REQUEST),
            CommandBody::Unknown => self.error(id, ClientError::MethodNotFound),
        }
        Ok(())
    }

    async fn presence(&mut self, id: u32, channel: &str, stats: bool) {
        let resolved = match self.hub.channels().parse(channel) {
            Ok((_, r)) => r,
            Err(e) => return self.error(id, e.client_error()),
        };
        if !resolved.options.presence {
            return self.error(id, ClientError::NotAvailable);
        }
        if !self.may_presence(resolved, channel, false) {
            return self.error(id, ClientError::PermissionDenied);
        }
        let body = if stats {
            self.hub.presence_stats(channel).await.map(ReplyBody::PresenceStats)
        } else {
            self.hub.presence(channel).await.map(|presence| ReplyBody::Presence(crate::protocol::PresenceResult { presence }))
        };
        match body {
            Ok(body) => self.reply(id, body),
            Err(e) => self.error(id, e.client_error()),
        }
    }

    async fn history(&mut self, id: u32, req: crate::protocol::HistoryRequest) {
        let resolved = match self.hub.channels().parse(&req.channel) {
            Ok((_, r)) => r,
            Err(e) => return self.error(id, e.client_error()),
        };
        if !resolved.options.history_enabled() {
            return self.error(id, ClientError::NotAvailable);
        }
        if !self.may_history(resolved, &req.channel) {
            return self.error(id, ClientError::PermissionDenied);
        }
        let cap = self.hub.config().client.history_max_publication_limit;
        let limit = match req.limit {
            -1 => cap,
            l if l < 0 => return self.error(id, ClientError::BadRequest),
            l => (l as usize).min(cap),
        };
        let filter = crate::hub::HistoryFilter { since: req.since, limit, reverse: req.reverse };
        match self.hub.history(&req.channel, &filter).await {
            Ok(page) => self.reply(
                id,
                ReplyBody::History(crate::protocol::HistoryResult {
                    publications: page.publications,
                    epoch: page.position.epoch,
                    offset: page.position.offset,
                }),
            ),
            Err(e) => self.error(id, e.client_error()),
        }
    }

    async fn publish(&mut self, id: u32, req: crate::protocol::PublishRequest) -> Result<(), Disconnect> {
        let (_, resolved) = match self.hub.channels().parse(&req.channel) {
            Ok(v) => v,
            Err(e) => {
                self.error(id, e.client_error());
                return Ok(());
            }
        };
        let Some(data) = req.data.filter(|d| !too_deep(Some(d))) else {
            // Missing, or nested past MAX_JSON_DEPTH: relayed verbatim, it could break
            // every subscriber's parser.
            self.error(id, ClientError::BadRequest);
            return Ok(());
        };
        let o = &resolved.options;
        let sub = self.subs.get(&req.channel);
        let info = crate::protocol::ClientInfo {
            user: self.user.to_string(),
            client: self.client.to_string(),
            conn_info: self.conn_info.clone(),
            chan_info: sub.and_then(|s| s.chan_info.clone()),
        };
        // A publish proxy decides instead of the allow_publish_* options.
        let request = match self.proxy_publish(&req.channel, data.clone(), o).await {
            Some(Ok(r)) => crate::hub::PublishRequest { info: Some(info), ..r },
            Some(Err(subscribe::Refusal::Reply(e))) => {
                self.error(id, e);
                return Ok(());
            }
            Some(Err(subscribe::Refusal::Close(d))) => return Err(d),
            None => {
                let identified = !self.user.is_empty() || o.allow_publish_for_anonymous;
                let allowed = self.hub.config().client.insecure
                    || (o.allow_publish_for_client && identified)
                    || (o.allow_publish_for_subscriber && sub.is_some() && identified);
                if !allowed {
                    self.error(id, ClientError::PermissionDenied);
                    return Ok(());
                }
                crate::hub::PublishRequest { channel: req.channel, data, info: Some(info), ..Default::default() }
            }
        };
        match self.hub.publish(request).await {
            Ok(_) => self.reply(id, ReplyBody::Publish),
            Err(e) => self.error(id, e.client_error()),
        }
        Ok(())
    }

    /// Applies a server API action routed to this connection.
    pub async fn handle_control(&mut self, control: Control, now_ms: u64) -> Result<(), Disconnect> {
        if self.state != State::Connected {
            return Ok(());
        }
        match control {
            Control::Subscribe(_, sub) => self.server_subscribe(sub, now_ms).await,
            Control::Unsubscribe(_, channel) => {
                if self.subs.contains_key(&channel) {
                    self.drop_subscription(&channel).await;
                    self.push(Push::Unsubscribe { channel, reason: crate::protocol::UnsubscribeReason::Server });
                }
                Ok(())
            }
            Control::InsufficientState(channel) => self.insufficient_state(&channel).await,
            // Node-to-node messages: the hub handles them and never routes them here.
            Control::Node { .. } | Control::Survey { .. } | Control::SurveyReply { .. } => Ok(()),
            Control::Disconnect(_, _, d) => Err(d),
            Control::Refresh { expired, expire_at, info, .. } => {
                if expired {
                    return Err(Disconnect::EXPIRED);
                }
                if let Some(info) = info {
                    self.conn_info = Some(info);
                }
                self.expire_at = capped_expiry(expire_at, now_ms);
                if !self.transport.bidirectional {
                    self.push(Push::Refresh(self.expiry(now_ms)));
                }
                Ok(())
            }
        }
    }

    /// Runs due timers. `Err` means: close with this code.
    pub async fn tick(&mut self, now_ms: u64) -> Result<(), Disconnect> {
        let cfg = &self.hub.config().client;
        match self.state {
            State::Connecting => {
                if now_ms >= self.created_ms.saturating_add(millis(cfg.stale_close_delay.0)) {
                    return Err(Disconnect::STALE);
                }
                return Ok(());
            }
            State::Failed => {
                if now_ms >= self.failed_ms.saturating_add(FAILED_CLOSE_DELAY_MS) {
                    return Err(Disconnect::BAD_REQUEST);
                }
                return Ok(());
            }
            State::Connected => {}
        }
        let now_s = now_ms / 1000;
        let grace = cfg.expired_sub_close_delay.0.as_secs();
        let close_grace = cfg.expired_close_delay.0.as_secs();
        if self.server_refresh() {
            // The refresh proxy renews the connection when its expire_at comes.
            if self.expire_at.is_some_and(|at| now_s >= at) {
                self.proxy_refresh(now_ms).await?;
            }
        } else if self.expire_at.is_some_and(|at| now_s >= at.saturating_add(close_grace)) {
            return Err(Disconnect::EXPIRED);
        }
        let due: Vec<String> = self
            .subs
            .iter()
            .filter(|(_, s)| s.expire_at.is_some_and(|at| now_s >= at))
            .map(|(ch, _)| ch.clone())
            .collect();
        for channel in due {
            if self.sub_refresh_proxied(&channel) {
                if !self.proxy_sub_refresh(&channel, now_ms).await? {
                    self.end_expired(channel).await;
                }
            } else if self.subs.get(&channel).and_then(|s| s.expire_at).is_some_and(|at| now_s >= at.saturating_add(grace)) {
                self.end_expired(channel).await;
            }
        }
        if now_ms >= self.next_presence_ms {
            if self.next_presence_ms != 0 {
                self.refresh_presence().await;
            }
            self.next_presence_ms = now_ms.saturating_add(millis(self.hub.config().client.presence_update_interval.0).max(1));
        }
        Ok(())
    }

    /// Refreshes this connection's presence entries, so that an engine that expires them
    /// (Redis: after `presence_ttl`) keeps a connection listed as long as it stays. Stops
    /// at the first failure: with the engine down every call would wait its IO timeout,
    /// holding this connection's commands for as many timeouts as it has channels; the
    /// next interval tries again.
    async fn refresh_presence(&self) {
        for (channel, sub) in self.subs.iter().filter(|(_, s)| s.presence) {
            let info = self.client_info(sub.chan_info.clone());
            if let Err(e) = self.hub.add_presence(channel, &info).await {
                tracing::warn!(channel, error = %e, "presence refresh failed; the rest waits for the next interval");
                return;
            }
        }
    }

    /// When [`Session::tick`] next has something to do (unix ms).
    pub fn next_deadline(&self) -> u64 {
        let cfg = &self.hub.config().client;
        match self.state {
            State::Connecting => self.created_ms.saturating_add(millis(cfg.stale_close_delay.0)),
            State::Failed => self.failed_ms.saturating_add(FAILED_CLOSE_DELAY_MS),
            State::Connected => {
                let mut next = u64::MAX;
                let to_ms = |at: u64, grace: u64| at.saturating_add(grace).saturating_mul(1000);
                if let Some(at) = self.expire_at {
                    let grace = if self.server_refresh() { 0 } else { cfg.expired_close_delay.0.as_secs() };
                    next = next.min(to_ms(at, grace));
                }
                let proxied = self.auth.proxies.is_some();
                for (channel, s) in self.subs.iter() {
                    if let Some(at) = s.expire_at {
                        let grace = if proxied && self.sub_refresh_proxied(channel) { 0 } else { cfg.expired_sub_close_delay.0.as_secs() };
                        next = next.min(to_ms(at, grace));
                    }
                }
                if self.subs.values().any(|s| s.presence) {
                    next = next.min(self.next_presence_ms);
                }
                next
            }
        }
    }

    fn pong_expected(&self) -> bool {
        self.transport.bidirectional && !self.hub.config().client.pong_timeout.0.is_zero()
    }

    /// This connection's ping and pong timers (`client.ping_interval`, `client.pong_timeout`;
    /// pongs only on bidirectional transports), for the driver to run.
    pub fn heartbeat(&self) -> heartbeat::Heartbeat {
        let cfg = &self.hub.config().client;
        heartbeat::Heartbeat::new(millis(cfg.ping_interval.0), self.pong_expected().then(|| millis(cfg.pong_timeout.0)))
    }

    /// Releases everything the connection holds in the hub. Call once when it ends.
    pub async fn close(&mut self) {
        let channels: Vec<String> = self.subs.keys().cloned().collect();
        for channel in channels {
            self.drop_subscription(&channel).await;
        }
        if self.registered {
            self.hub.unregister(&self.client);
            self.registered = false;
        }
    }
}
