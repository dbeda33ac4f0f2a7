//! `connect` and `refresh`: authenticating the connection and keeping it authenticated.

use std::collections::BTreeMap;

use super::{Session, State, Sub, VERSION};
use crate::auth::TokenError;
use crate::auth::jwt::SubOverride;
use crate::hub::ConnEntry;
use crate::protocol::{ClientError, ConnectRequest, ConnectResult, Disconnect, Expiry, Push, RefreshResult, ReplyBody};

impl Session {
    pub(super) fn expiry(&self, now_ms: u64) -> Expiry {
        if self.server_refresh() {
            // The refresh proxy renews it: the client has nothing to refresh.
            return Expiry::default();
        }
        match self.expire_at {
            Some(at) => Expiry { expires: true, ttl: at.saturating_sub(now_ms / 1000).min(u64::from(u32::MAX)) as u32 },
            None => Expiry::default(),
        }
    }

    pub(super) async fn connect(&mut self, id: u32, req: ConnectRequest, now_ms: u64) -> Result<(), Disconnect> {
        if self.hub.is_shutting_down() {
            return Err(Disconnect::SHUTDOWN);
        }
        if super::too_deep(req.data.as_ref()) || req.subs.values().any(|s| super::too_deep(s.data.as_ref())) {
            // Answered like a refused token: the reply, then this connection is done.
            self.error(id, ClientError::BadRequest);
            self.state = State::Failed;
            self.failed_ms = now_ms;
            return Ok(());
        }
        let cfg = self.hub.config().client.clone();
        let mut connect_data = None;
        let claims = if !req.token.is_empty() {
            match self.auth.connect.connect(&req.token, now_ms / 1000) {
                Ok(c) => {
                    if c.user.is_empty() && cfg.disallow_anonymous_connection_tokens {
                        return Err(Disconnect::INVALID_TOKEN);
                    }
                    c
                }
                Err(TokenError::Expired) => {
                    // The SDK fetches a fresh token and reconnects; this connection is done.
                    self.error(id, ClientError::TokenExpired);
                    self.state = State::Failed;
                    self.failed_ms = now_ms;
                    return Ok(());
                }
                Err(TokenError::Invalid(reason)) => {
                    crate::log::limited_info!("client.invalid_token", client = %self.client, %reason, "invalid connection token");
                    return Err(Disconnect::INVALID_TOKEN);
                }
            }
        } else if self.connect_proxied() {
            match self.proxy_connect(&req).await {
                Ok((claims, data)) => {
                    connect_data = data;
                    claims
                }
                Err(super::subscribe::Refusal::Reply(e)) => {
                    // As a refused token: the reply (100 when the backend gave no answer,
                    // else its own error), then this connection is done.
                    self.error(id, e);
                    self.state = State::Failed;
                    self.failed_ms = now_ms;
                    return Ok(());
                }
                Err(super::subscribe::Refusal::Close(d)) => return Err(d),
            }
        } else if cfg.insecure || cfg.allow_anonymous_connect_without_token {
            crate::auth::ConnectClaims::default()
        } else {
            return Err(Disconnect { code: Disconnect::BAD_REQUEST.code, reason: "client credentials not found".into() });
        };
        self.user = claims.user.into();
        self.conn_info = claims.info;
        self.keep_meta(claims.meta);
        self.expire_at = super::capped_expiry(claims.expire_at, now_ms);
        self.hub
            .register(ConnEntry {
                conn: self.conn,
                client: self.client.clone(),
                user: self.user.clone(),
                session: self.session_id,
                outbox: self.outbox.clone(),
            })
            .map_err(|_| Disconnect::CONNECTION_LIMIT)?;
        self.registered = true;
        self.state = State::Connected;

        // Server-side subscriptions from the token: `channels`, then `subs` with options.
        let mut server_subs: BTreeMap<String, (Sub, SubOverride)> = BTreeMap::new();
        for channel in claims.channels {
            server_subs.entry(channel).or_insert_with(|| (Sub { server_side: true, ..Default::default() }, SubOverride::default()));
        }
        let mut sub_data = Vec::new();
        for (channel, claim) in claims.subs {
            if let Some(data) = claim.data {
                sub_data.push((channel.clone(), data));
            }
            let sub = Sub { server_side: true, chan_info: claim.info, ..Default::default() };
            server_subs.insert(channel, (sub, claim.overrides));
        }
        if let Some(channel) = self.personal_channel() {
            server_subs.entry(channel).or_insert_with(|| (Sub { server_side: true, ..Default::default() }, SubOverride::default()));
        }
        if server_subs.len() > cfg.channel_limit {
            return Err(Disconnect::CHANNEL_LIMIT);
        }
        let subs = server_subs.into_iter().map(|(ch, (sub, o))| (ch, sub, o)).collect();
        let (mut results, pending) = self.connect_subscriptions(subs, &req.subs).await?;
        for (channel, data) in sub_data {
            if let Some(r) = results.get_mut(&channel) {
                r.data = Some(data);
            }
        }

        let ping = cfg.ping_interval.0.as_secs().max(1) as u32;
        let result = ConnectResult {
            client: self.client.to_string(),
            version: VERSION.into(),
            expiry: self.expiry(now_ms),
            data: connect_data,
            subs: results,
            ping,
            pong: self.pong_expected(),
            session: if self.transport.emulation || !self.transport.bidirectional {
                self.session_id.to_string()
            } else {
                String::new()
            },
            node: if self.transport.emulation { self.hub.node_id().to_owned() } else { String::new() },
        };
        if self.transport.bidirectional {
            self.reply(id, ReplyBody::Connect(Box::new(result)));
        } else {
            self.push(Push::Connect(Box::new(result)));
        }
        // The reply is queued first; the channels' held-back publications follow it.
        for p in pending {
            p.go_live(&self.outbox);
        }
        self.announce_joins().await;
        self.keep_single_connection().await
    }

    pub(super) fn refresh(&mut self, id: u32, token: &str, now_ms: u64) -> Result<(), Disconnect> {
        match self.auth.connect.connect(token, now_ms / 1000) {
            Ok(claims) => {
                if *claims.user != *self.user {
                    return Err(Disconnect::INVALID_TOKEN);
                }
                self.expire_at = super::capped_expiry(claims.expire_at, now_ms);
                if claims.info.is_some() {
                    self.conn_info = claims.info;
                }
                let result =
                    RefreshResult { client: self.client.to_string(), version: VERSION.into(), expiry: self.expiry(now_ms) };
                self.reply(id, ReplyBody::Refresh(result));
                Ok(())
            }
            Err(TokenError::Expired) => Err(Disconnect::EXPIRED),
            Err(TokenError::Invalid(_)) => Err(Disconnect::INVALID_TOKEN),
        }
    }
}
