//! `subscribe`, `unsubscribe`, `sub_refresh` and server-side subscriptions: who may join a
//! channel, stream positioning and recovery, presence and join/leave.
//!
//! Order guarantees: a subscribe reply (or subscribe push) always precedes the channel's
//! publications. For positioned subscriptions the subscriber is registered *buffering*
//! before history is read; once the reply is built, the held-back publications newer than
//! the history read follow it, under one lock — nothing is lost or delivered twice.

use std::sync::Arc;

use super::{Session, Sub, recovery};
use crate::auth::TokenError;
use crate::auth::jwt::SubOverride;
use crate::hub::{
    Control, HistoryFilter, HistoryRead, Outgoing, Resolved, ServerSubscribe, SharedPublication, StreamState,
    Subscriber,
};
use crate::protocol::{
    ClientError, ClientInfo, Disconnect, Expiry, Push, Reply, ReplyBody, StreamPosition, SubscribeRequest,
    SubscribeResult,
};

/// The options in force for one subscription: namespace options, token overrides and
/// what the client asked for.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Effective {
    presence: bool,
    join_leave: bool,
    push_join_leave: bool,
    recoverable: bool,
    positioned: bool,
    /// Cache recovery mode (recoverable subscriptions only).
    cache: bool,
    /// Cache-recover also when the client does not ask (`auto_cache_recover`).
    auto_cache: bool,
    /// Delta compression negotiated: the client asked for a type the namespace allows,
    /// on a positioned subscription (a patch needs the publication just before it).
    delta: bool,
}

impl Effective {
    pub(super) fn new(resolved: &Resolved, overrides: &SubOverride, asked: &SubscribeRequest, may_presence: bool) -> Self {
        let o = &resolved.options;
        let history = o.history_enabled();
        let join_leave = overrides.join_leave.unwrap_or(o.join_leave);
        let force_push = overrides.force_push_join_leave.unwrap_or(o.force_push_join_leave);
        let recoverable =
            history && (overrides.force_recovery.unwrap_or(o.force_recovery) || (o.allow_recovery && asked.recoverable));
        let positioned = history
            && (recoverable
                || overrides.force_positioning.unwrap_or(o.force_positioning)
                || (o.allow_positioning && asked.positioned));
        Self {
            presence: overrides.presence.unwrap_or(o.presence),
            join_leave,
            push_join_leave: join_leave && (force_push || (asked.join_leave && may_presence)),
            recoverable,
            positioned,
            cache: recoverable && o.force_recovery_mode == "cache",
            auto_cache: recoverable && o.force_recovery_mode == "cache" && o.auto_cache_recover,
            delta: positioned && delta_allowed(resolved, &asked.delta) && !asked.delta.is_empty(),
        }
    }
}

/// Whether the namespace allows the delta type a subscriber asked for (none asked: yes).
fn delta_allowed(resolved: &Resolved, asked: &str) -> bool {
    asked.is_empty() || resolved.options.allowed_delta_types.iter().any(|t| t == asked)
}

/// Why a client-side subscribe is refused: an error reply, or closing the connection.
#[derive(Debug)]
pub(super) enum Refusal {
    /// Answer the command with this error; the connection stays.
    Reply(ClientError),
    /// Close the connection (a subscription token for another channel, user or client).
    Close(Disconnect),
}

impl From<ClientError> for Refusal {
    fn from(e: ClientError) -> Self {
        Self::Reply(e)
    }
}

/// Whether a verified subscription token was issued for this channel, user and client.
/// Centrifugo closes the connection with 3500 when it was not (the client holds a token
/// meant for someone or something else), while a token that does not verify is only 103.
fn token_matches(claims: &crate::auth::SubscribeClaims, channel: &str, user: &str, client: &str) -> bool {
    claims.channel == channel && claims.user == user && (claims.client.is_empty() || claims.client == client)
}

/// What the recovery step found.
struct Recovery {
    result: SubscribeResult,
    /// The position the reply leaves the client at (publications after it follow live).
    top: StreamPosition,
}

fn expiry(expire_at: Option<u64>, now_ms: u64) -> Expiry {
    match expire_at {
        Some(at) => Expiry { expires: true, ttl: at.saturating_sub(now_ms / 1000).min(u64::from(u32::MAX)) as u32 },
        None => Expiry::default(),
    }
}

/// Queues, after a reply, the held-back publications the reply does not cover (offsets
/// of `top`'s epoch up to its offset came from history); returns the offset the
/// subscriber ends at. For a positioned subscription a gap among them, or a publication
/// of another epoch, means the client must recover.
fn queue_buffered(
    outbox: &crate::hub::Outbox,
    channel: &str,
    top: &StreamPosition,
    positioned: bool,
    delta: bool,
    buffered: Vec<Arc<SharedPublication>>,
) -> u64 {
    let mut last = top.offset;
    for p in buffered {
        let offset = p.publication.offset;
        let same_stream = top.epoch.is_empty() || *top.epoch == *p.epoch;
        if offset != 0 && same_stream && offset <= last {
            continue; // already in the reply
        }
        if positioned && offset != 0 && (!same_stream || last.checked_add(1) != Some(offset)) {
            let _ = outbox.push(Outgoing::Control(Box::new(Control::InsufficientState(channel.to_owned()))));
            break;
        }
        if offset != 0 {
            last = offset;
        }
        // A delta subscriber gets these in full (its form), never as patches.
        let item = if delta { p.for_delta(false).clone() } else { p };
        let _ = outbox.push(Outgoing::Publication(item));
    }
    last
}

impl Session {
    pub(super) fn client_info(&self, chan_info: Option<bytes::Bytes>) -> ClientInfo {
        ClientInfo { user: self.user.to_string(), client: self.client.to_string(), conn_info: self.conn_info.clone(), chan_info }
    }

    /// Decides whether a client-side subscribe is allowed; returns the subscription's
    /// token-derived state and overrides.
    fn authorize_subscribe(&self, req: &SubscribeRequest, now_ms: u64) -> Result<(Sub, SubOverride), Refusal> {
        let (name, resolved) = self.hub.channels().parse(&req.channel).map_err(|e| e.client_error())?;
        let o = &resolved.options;
        let insecure = self.hub.config().client.insecure;
        if let Some(re) = &resolved.regex
            && !re.is_match(name.name)
        {
            return Err(ClientError::PermissionDenied.into());
        }
        if !req.token.is_empty() {
            let claims = match self.auth.subscribe.subscribe(&req.token, now_ms / 1000) {
                Ok(c) => c,
                Err(TokenError::Expired) => return Err(ClientError::TokenExpired.into()),
                Err(TokenError::Invalid(_)) => return Err(ClientError::PermissionDenied.into()),
            };
            if !token_matches(&claims, &req.channel, &self.user, &self.client) {
                crate::log::limited_info!("client.sub_token_mismatch", client = %self.client, channel = %req.channel, "subscription token for another channel, user or client");
                return Err(Refusal::Close(Disconnect::INVALID_TOKEN));
            }
            let sub = Sub {
                chan_info: claims.info,
                expire_at: super::capped_expiry(claims.expire_at, now_ms),
                ..Default::default()
            };
            return Ok((sub, claims.overrides));
        }
        if name.private && !insecure {
            return Err(ClientError::PermissionDenied.into());
        }
        let allowed = insecure
            || (name.users.is_some() && o.allow_user_limited_channels && self.hub.channels().user_allowed(&name, &self.user))
            || (name.users.is_none()
                && o.allow_subscribe_for_client
                && (!self.user.is_empty() || o.allow_subscribe_for_anonymous));
        if allowed { Ok((Sub::default(), SubOverride::default())) } else { Err(ClientError::PermissionDenied.into()) }
    }

    /// Whether this connection may call presence on a channel (also gates join/leave
    /// requests, where `subscribing` counts the subscription being made).
    pub(super) fn may_presence(&self, resolved: &Resolved, channel: &str, subscribing: bool) -> bool {
        let o = &resolved.options;
        let identified = !self.user.is_empty() || o.allow_presence_for_anonymous;
        self.hub.config().client.insecure
            || (o.allow_presence_for_client && identified)
            || (o.allow_presence_for_subscriber && (subscribing || self.subs.contains_key(channel)) && identified)
    }

    /// Whether this connection may read a channel's history.
    pub(super) fn may_history(&self, resolved: &Resolved, channel: &str) -> bool {
        let o = &resolved.options;
        let identified = !self.user.is_empty() || o.allow_history_for_anonymous;
        self.hub.config().client.insecure
            || (o.allow_history_for_client && identified)
            || (o.allow_history_for_subscriber && self.subs.contains_key(channel) && identified)
    }

    /// Reads the stream for a positioned subscribe and decides what the reply says about
    /// the client's place in it: Centrifugo's recovery table, see [`super::recovery`].
    async fn recover(&self, channel: &str, eff: Effective, req: &SubscribeRequest) -> Result<Recovery, ClientError> {
        let mut result = SubscribeResult {
            recoverable: eff.recoverable,
            positioned: eff.positioned,
            was_recovering: req.recover,
            ..Default::default()
        };
        let recovering = eff.recoverable && (req.recover || eff.auto_cache);
        // Auto cache recovery of a client that did not ask: as a client with no state.
        let (offset, epoch) = if req.recover { (req.offset, req.epoch.as_str()) } else { (0, "") };
        let limit = self.hub.config().client.recovery_max_publication_limit;
        let position_only = HistoryFilter::default();
        let page = if recovering && !eff.cache {
            let since = StreamPosition { offset, epoch: epoch.to_owned() };
            let filter = HistoryFilter { since: Some(since), limit: limit.saturating_add(1), reverse: false };
            match self.hub.history(channel, &filter).await {
                Ok(page) => {
                    result.recovered = recovery::stream_recovered(&page.publications, &page.position, offset, epoch, limit);
                    if result.recovered {
                        result.publications = page.publications.clone();
                    }
                    page
                }
                Err(HistoryRead::Position(_)) => {
                    self.hub.history(channel, &position_only).await.map_err(|e| e.client_error())?
                }
                Err(e) => return Err(e.client_error()),
            }
        } else if recovering {
            let latest = HistoryFilter { since: None, limit: 1, reverse: true };
            let page = self.hub.history(channel, &latest).await.map_err(|e| e.client_error())?;
            let (recovered, send) =
                recovery::cache_recovered(page.publications.first().map(|p| &**p), &page.position, offset, epoch);
            result.recovered = recovered;
            if send {
                result.publications = page.publications.clone();
            }
            page
        } else {
            self.hub.history(channel, &position_only).await.map_err(|e| e.client_error())?
        };
        result.epoch = page.position.epoch.clone();
        result.offset = page.position.offset;
        if recovering && req.recover && !result.recovered && req.flag & recovery::FLAG_REJECT_UNRECOVERED != 0 {
            return Err(ClientError::UnrecoverablePosition);
        }
        Ok(Recovery { top: page.position, result })
    }

    /// Registers, reads the stream if needed, and queues `answer(result)` (a reply or a
    /// push) followed by the channel's publications; then presence and join.
    async fn establish(
        &mut self,
        channel: &str,
        mut sub: Sub,
        eff: Effective,
        req: &SubscribeRequest,
        answer: impl FnOnce(SubscribeResult) -> Outgoing,
    ) -> Result<(), ClientError> {
        let outbox = self.outbox.clone();
        if eff.positioned || eff.cache {
            let state = StreamState::buffering_with_delta(eff.positioned, eff.delta);
            let subscriber = Subscriber::new(self.conn, outbox.clone(), eff.push_join_leave, Some(state.clone()));
            self.hub.subscribe(channel, subscriber, || ()).await.map_err(|e| e.client_error())?;
            let recovery = match self.recover(channel, eff, req).await {
                Ok(mut r) => {
                    r.result.delta = state.delta();
                    r
                }
                Err(e) => {
                    self.hub.unsubscribe(channel, self.conn).await;
                    return Err(e);
                }
            };
            let item = answer(recovery.result);
            state.go_live(&recovery.top.epoch, |buffered| {
                let _ = outbox.push(item);
                queue_buffered(&outbox, channel, &recovery.top, eff.positioned, state.delta(), buffered)
            });
        } else {
            let subscriber = Subscriber::new(self.conn, outbox.clone(), eff.push_join_leave, None);
            let item = answer(SubscribeResult::default());
            self.hub
                .subscribe(channel, subscriber, move || {
                    let _ = outbox.push(item);
                })
                .await
                .map_err(|e| e.client_error())?;
        }
        let info = self.client_info(sub.chan_info.clone());
        if eff.presence {
            if let Err(e) = self.hub.add_presence(channel, &info).await {
                tracing::warn!(channel, error = %e, "presence add failed");
            }
            sub.presence = true;
        }
        if eff.join_leave {
            if let Err(e) = self.hub.join_leave(channel, &info, true).await {
                tracing::warn!(channel, error = %e, "join event failed");
            }
            sub.join_leave = true;
        }
        self.subs.insert(channel.to_owned(), sub);
        Ok(())
    }

    /// `Err` means: close the connection with this code.
    pub(super) async fn subscribe(&mut self, id: u32, req: SubscribeRequest, now_ms: u64) -> Result<(), Disconnect> {
        if self.subs.contains_key(&req.channel) {
            self.error(id, ClientError::AlreadySubscribed);
            return Ok(());
        }
        if super::too_deep(req.data.as_ref()) {
            self.error(id, ClientError::BadRequest);
            return Ok(());
        }
        // Every channel here is a stream channel: map subscriptions (types 1–3) and
        // shared poll (4) are refused as Centrifugo refuses a channel of another type.
        if req.kind != 0 && self.hub.channels().parse(&req.channel).is_ok() {
            self.error(id, ClientError::NotAvailable);
            return Ok(());
        }
        let decided = match self.proxy_subscribe(&req, now_ms).await {
            Some(decided) => decided,
            None => self.authorize_subscribe(&req, now_ms).map(|(sub, overrides)| (sub, overrides, None)),
        };
        let (sub, overrides, data) = match decided {
            Ok(v) => v,
            Err(Refusal::Reply(e)) => {
                self.error(id, e);
                return Ok(());
            }
            Err(Refusal::Close(d)) => return Err(d),
        };
        if self.subs.len() >= self.hub.config().client.channel_limit {
            self.error(id, ClientError::LimitExceeded);
            return Ok(());
        }
        let Ok((_, resolved)) = self.hub.channels().parse(&req.channel) else {
            self.error(id, ClientError::BadRequest);
            return Ok(());
        };
        // A delta type the namespace does not allow (or none exists by that name): 107, as
        // Centrifugo answers.
        if !delta_allowed(resolved, &req.delta) {
            self.error(id, ClientError::BadRequest);
            return Ok(());
        }
        let eff = Effective::new(resolved, &overrides, &req, self.may_presence(resolved, &req.channel, true));
        // A subscription the sub_refresh proxy renews has nothing for the client to refresh.
        let sub_expiry = if self.sub_refresh_proxied(&req.channel) { Expiry::default() } else { expiry(sub.expire_at, now_ms) };
        let channel = req.channel.clone();
        let answer = move |mut result: SubscribeResult| {
            result.expiry = sub_expiry;
            if data.is_some() {
                result.data = data;
            }
            Outgoing::Reply(Box::new(Reply { id, body: ReplyBody::Subscribe(Box::new(result)) }))
        };
        if let Err(e) = self.establish(&channel, sub, eff, &req, answer).await {
            self.error(id, e);
        }
        Ok(())
    }

    /// Drops a subscription: registry, presence, leave event.
    pub(super) async fn drop_subscription(&mut self, channel: &str) {
        let Some(sub) = self.subs.remove(channel) else { return };
        self.hub.unsubscribe(channel, self.conn).await;
        if sub.presence
            && let Err(e) = self.hub.remove_presence(channel, &self.client).await
        {
            tracing::warn!(channel, error = %e, "presence remove failed");
        }
        if sub.join_leave {
            let info = self.client_info(sub.chan_info);
            if let Err(e) = self.hub.join_leave(channel, &info, false).await {
                tracing::warn!(channel, error = %e, "leave event failed");
            }
        }
    }

    pub(super) async fn unsubscribe(&mut self, id: u32, channel: &str) {
        // Server-side subscriptions are the server's to end; a client cannot drop them.
        if self.subs.get(channel).is_some_and(|s| !s.server_side) {
            self.drop_subscription(channel).await;
        }
        self.reply(id, ReplyBody::Unsubscribe);
    }

    /// `Err` means: close the connection with this code. As in Centrifugo, a refresh token
    /// that does not verify, or was issued for another channel, user or client, costs the
    /// connection (3500); an expired one is error 109.
    pub(super) fn sub_refresh(&mut self, id: u32, channel: &str, token: &str, now_ms: u64) -> Result<(), Disconnect> {
        if !self.subs.contains_key(channel) {
            self.error(id, ClientError::PermissionDenied);
            return Ok(());
        }
        let claims = match self.auth.subscribe.subscribe(token, now_ms / 1000) {
            Ok(c) => c,
            Err(TokenError::Expired) => {
                self.error(id, ClientError::TokenExpired);
                return Ok(());
            }
            Err(TokenError::Invalid(reason)) => {
                crate::log::limited_info!("client.invalid_sub_token", client = %self.client, channel, %reason, "invalid subscription refresh token");
                return Err(Disconnect::INVALID_TOKEN);
            }
        };
        if !token_matches(&claims, channel, &self.user, &self.client) {
            crate::log::limited_info!("client.sub_token_mismatch", client = %self.client, channel, "sub_refresh token for another channel, user or client");
            return Err(Disconnect::INVALID_TOKEN);
        }
        let expire_at = super::capped_expiry(claims.expire_at, now_ms);
        if let Some(sub) = self.subs.get_mut(channel) {
            sub.expire_at = expire_at;
        }
        self.reply(id, ReplyBody::SubRefresh(expiry(expire_at, now_ms)));
        Ok(())
    }

    /// A subscription made by the server API: no permission check, a `subscribe` push.
    pub(super) async fn server_subscribe(&mut self, req: ServerSubscribe, now_ms: u64) -> Result<(), Disconnect> {
        if self.subs.contains_key(&req.channel) {
            return Ok(());
        }
        if self.subs.len() >= self.hub.config().client.channel_limit {
            return Err(Disconnect::CHANNEL_LIMIT);
        }
        let resolved = match self.hub.channels().parse(&req.channel) {
            Ok((_, r)) => r,
            Err(e) => {
                tracing::warn!(client = %self.client, channel = %req.channel, error = %e, "server subscribe skipped");
                return Ok(());
            }
        };
        let asked = SubscribeRequest {
            channel: req.channel.clone(),
            recover: req.recover_since.is_some(),
            offset: req.recover_since.as_ref().map_or(0, |p| p.offset),
            epoch: req.recover_since.as_ref().map(|p| p.epoch.clone()).unwrap_or_default(),
            ..Default::default()
        };
        let eff = Effective::new(resolved, &SubOverride::default(), &asked, false);
        let channel = req.channel.clone();
        let data = req.data.clone();
        let push_channel = channel.clone();
        let answer = move |mut result: SubscribeResult| {
            result.data = data;
            Outgoing::Push(Box::new(Push::Subscribe { channel: push_channel, result: Box::new(result) }))
        };
        let expire_at = super::capped_expiry(req.expire_at, now_ms);
        let sub = Sub { server_side: true, chan_info: req.info, expire_at, ..Default::default() };
        self.establish(&channel, sub, eff, &asked, answer).await.map_err(|_| Disconnect::INTERNAL)
    }

    /// Fan-out saw a gap in a positioned subscription: a client-side subscription is
    /// ended with 2500 (the SDK resubscribes and recovers), a server-side one costs the
    /// connection (3010, the SDK reconnects and recovers).
    pub(super) async fn insufficient_state(&mut self, channel: &str) -> Result<(), Disconnect> {
        match self.subs.get(channel) {
            None => Ok(()),
            Some(s) if s.server_side => Err(Disconnect::INSUFFICIENT_STATE),
            Some(_) => {
                self.drop_subscription(channel).await;
                self.push(Push::Unsubscribe {
                    channel: channel.to_owned(),
                    reason: crate::protocol::UnsubscribeReason::InsufficientState,
                });
                Ok(())
            }
        }
    }

    /// Server-side subscriptions at connect (token `channels`/`subs`, recovered with the
    /// positions in `ConnectRequest.subs`): registers them buffering, reads their streams,
    /// and returns their results for the connect reply plus what to do once it is queued.
    pub(super) async fn connect_subscriptions(
        &mut self,
        subs: Vec<(String, Sub, SubOverride)>,
        asked: &std::collections::BTreeMap<String, SubscribeRequest>,
    ) -> Result<(std::collections::BTreeMap<String, SubscribeResult>, Vec<PendingLive>), Disconnect> {
        let mut results = std::collections::BTreeMap::new();
        let mut pending = Vec::new();
        for (channel, mut sub, overrides) in subs {
            let Ok((_, resolved)) = self.hub.channels().parse(&channel) else {
                crate::log::limited_warn!("client.token_channel", client = %self.client, channel, "skipping an invalid token channel");
                continue;
            };
            let req = asked.get(&channel).cloned().map_or_else(
                || SubscribeRequest { channel: channel.clone(), ..Default::default() },
                |mut r| {
                    r.channel = channel.clone();
                    r
                },
            );
            let eff = Effective::new(resolved, &overrides, &req, false);
            // Every connect-time subscription buffers until the connect reply is queued,
            // so none of its publications can overtake the reply.
            let state = StreamState::buffering(eff.positioned);
            let subscriber = Subscriber::new(self.conn, self.outbox.clone(), eff.push_join_leave, Some(state.clone()));
            self.hub.subscribe(&channel, subscriber, || ()).await.map_err(|_| Disconnect::INTERNAL)?;
            let (result, top) = if eff.positioned || eff.cache {
                let r = self.recover(&channel, eff, &req).await.map_err(|_| Disconnect::INTERNAL)?;
                (r.result, r.top)
            } else {
                (SubscribeResult::default(), StreamPosition::default())
            };
            results.insert(channel.clone(), result);
            sub.server_side = true;
            let info = self.client_info(sub.chan_info.clone());
            if eff.presence {
                let _ = self.hub.add_presence(&channel, &info).await;
                sub.presence = true;
            }
            if eff.join_leave {
                // Announced once the connect reply is queued (`announce_joins`): the
                // client's own join must not reach it before the reply names the channel.
                sub.join_leave = true;
            }
            pending.push(PendingLive { channel: channel.clone(), state, top });
            self.subs.insert(channel, sub);
        }
        Ok((results, pending))
    }
}

impl Session {
    /// The join events of connect-time subscriptions, once the connect reply is queued
    /// (Centrifugo writes the reply first, then the joins).
    pub(super) async fn announce_joins(&self) {
        for (channel, sub) in self.subs.iter().filter(|(_, s)| s.server_side && s.join_leave) {
            let info = self.client_info(sub.chan_info.clone());
            if let Err(e) = self.hub.join_leave(channel, &info, true).await {
                tracing::warn!(channel, error = %e, "join event failed");
            }
        }
    }
}

impl Session {
    /// The connection's personal channel (`client.subscribe_to_user_personal_channel`):
    /// `#<user>`, or `<namespace>:#<user>`; none for an anonymous connection.
    pub(super) fn personal_channel(&self) -> Option<String> {
        let cfg = self.hub.config();
        let personal = &cfg.client.subscribe_to_user_personal_channel;
        if !personal.enabled || self.user.is_empty() {
            return None;
        }
        let ch = &cfg.channel;
        let name = format!("{}{}", ch.user_boundary, self.user);
        Some(if personal.personal_channel_namespace.is_empty() {
            name
        } else {
            format!("{}{}{name}", personal.personal_channel_namespace, ch.namespace_boundary)
        })
    }

    /// `single_connection`: once connected (and present in the personal channel), a
    /// user with another connection there has the others closed with 3504, on every
    /// node, as Centrifugo does (at most once: a lost control message leaves both).
    pub(super) async fn keep_single_connection(&self) -> Result<(), Disconnect> {
        if !self.hub.config().client.subscribe_to_user_personal_channel.single_connection {
            return Ok(());
        }
        let Some(channel) = self.personal_channel() else { return Ok(()) };
        let stats = self.hub.presence_stats(&channel).await.map_err(|_| Disconnect::INTERNAL)?;
        if stats.num_clients >= 2 {
            let target = crate::hub::Target { user: self.user.to_string(), ..Default::default() };
            let control = Control::Disconnect(target, vec![self.client.to_string()], Disconnect::CONNECTION_LIMIT);
            self.hub.control(control).await.map_err(|_| Disconnect::INTERNAL)?;
        }
        Ok(())
    }
}

/// A connect-time positioned subscription waiting for the connect reply to be queued.
pub(super) struct PendingLive {
    channel: String,
    state: Arc<StreamState>,
    top: StreamPosition,
}

impl PendingLive {
    /// Releases the held-back publications after the connect reply.
    pub(super) fn go_live(self, outbox: &crate::hub::Outbox) {
        let positioned = self.state.positioned();
        let delta = self.state.delta();
        self.state.go_live(&self.top.epoch, |buffered| queue_buffered(outbox, &self.channel, &self.top, positioned, delta, buffered));
    }
}
