//! `subscribe`, `unsubscribe`, `sub_refresh` and server-side subscriptions: who may join a
//! channel, and the order guarantee (the subscribe reply precedes the channel's publications).

use super::{Session, Sub};
use crate::auth::TokenError;
use crate::hub::{Outgoing, ServerSubscribe, Subscriber};
use crate::protocol::{ClientError, Disconnect, Expiry, Push, Reply, ReplyBody, SubscribeRequest, SubscribeResult};

impl Session {
    /// Decides whether a client-side subscribe is allowed; returns the subscription's
    /// token-derived state.
    fn authorize_subscribe(&self, req: &SubscribeRequest, now_ms: u64) -> Result<Sub, ClientError> {
        let (name, resolved) = self.hub.channels().parse(&req.channel).map_err(|e| e.client_error())?;
        let o = &resolved.options;
        let insecure = self.hub.config().client.insecure;
        if let Some(re) = &resolved.regex
            && !re.is_match(name.name)
        {
            return Err(ClientError::PermissionDenied);
        }
        if !req.token.is_empty() {
            let claims = match self.auth.subscribe.subscribe(&req.token, now_ms / 1000) {
                Ok(c) => c,
                Err(TokenError::Expired) => return Err(ClientError::TokenExpired),
                Err(TokenError::Invalid(_)) => return Err(ClientError::PermissionDenied),
            };
            if claims.channel != req.channel
                || claims.user != self.user
                || (!claims.client.is_empty() && claims.client != self.client)
            {
                return Err(ClientError::PermissionDenied);
            }
            return Ok(Sub { server_side: false, chan_info: claims.info, expire_at: claims.expire_at });
        }
        if name.private && !insecure {
            return Err(ClientError::PermissionDenied);
        }
        let allowed = insecure
            || (name.users.is_some() && o.allow_user_limited_channels && self.hub.channels().user_allowed(&name, &self.user))
            || (name.users.is_none()
                && o.allow_subscribe_for_client
                && (!self.user.is_empty() || o.allow_subscribe_for_anonymous));
        if allowed { Ok(Sub::default()) } else { Err(ClientError::PermissionDenied) }
    }

    pub(super) async fn subscribe(&mut self, id: u32, req: SubscribeRequest, now_ms: u64) {
        if self.subs.contains_key(&req.channel) {
            return self.error(id, ClientError::AlreadySubscribed);
        }
        let sub = match self.authorize_subscribe(&req, now_ms) {
            Ok(sub) => sub,
            Err(e) => return self.error(id, e),
        };
        if self.subs.len() >= self.hub.config().client.channel_limit {
            return self.error(id, ClientError::LimitExceeded);
        }
        let result = SubscribeResult {
            expiry: match sub.expire_at {
                Some(at) => Expiry { expires: true, ttl: at.saturating_sub(now_ms / 1000).min(u64::from(u32::MAX)) as u32 },
                None => Expiry::default(),
            },
            ..Default::default()
        };
        let outbox = self.outbox.clone();
        let reply = Outgoing::Reply(Reply { id, body: ReplyBody::Subscribe(Box::new(result)) });
        let subscriber = Subscriber { conn: self.conn, outbox: self.outbox.clone() };
        match self.hub.subscribe(&req.channel, subscriber, move || { outbox.push(reply); }).await {
            Ok(()) => {
                self.subs.insert(req.channel, sub);
            }
            Err(e) => {
                self.hub.unsubscribe(&req.channel, self.conn).await;
                self.error(id, e.client_error());
            }
        }
    }

    pub(super) async fn unsubscribe(&mut self, id: u32, channel: &str) {
        // Server-side subscriptions are the server's to end; a client cannot drop them.
        if self.subs.get(channel).is_some_and(|s| !s.server_side) {
            self.subs.remove(channel);
            self.hub.unsubscribe(channel, self.conn).await;
        }
        self.reply(id, ReplyBody::Unsubscribe);
    }

    pub(super) fn sub_refresh(&mut self, id: u32, channel: &str, token: &str, now_ms: u64) {
        if !self.subs.contains_key(channel) {
            return self.error(id, ClientError::PermissionDenied);
        }
        let claims = match self.auth.subscribe.subscribe(token, now_ms / 1000) {
            Ok(c) => c,
            Err(TokenError::Expired) => return self.error(id, ClientError::TokenExpired),
            Err(TokenError::Invalid(_)) => return self.error(id, ClientError::PermissionDenied),
        };
        if claims.channel != channel || claims.user != self.user || (!claims.client.is_empty() && claims.client != self.client) {
            return self.error(id, ClientError::PermissionDenied);
        }
        let expiry = match claims.expire_at {
            Some(at) => Expiry { expires: true, ttl: at.saturating_sub(now_ms / 1000).min(u64::from(u32::MAX)) as u32 },
            None => Expiry::default(),
        };
        if let Some(sub) = self.subs.get_mut(channel) {
            sub.expire_at = claims.expire_at;
        }
        self.reply(id, ReplyBody::SubRefresh(expiry));
    }

    /// A subscription made by the server API: no permission check, a `subscribe` push.
    pub(super) async fn server_subscribe(&mut self, req: ServerSubscribe, _now_ms: u64) -> Result<(), Disconnect> {
        if self.subs.contains_key(&req.channel) {
            return Ok(());
        }
        if self.subs.len() >= self.hub.config().client.channel_limit {
            return Err(Disconnect::CHANNEL_LIMIT);
        }
        if let Err(e) = self.hub.channels().parse(&req.channel) {
            tracing::warn!(client = %self.client, channel = %req.channel, error = %e, "server subscribe skipped");
            return Ok(());
        }
        let outbox = self.outbox.clone();
        let push = Outgoing::Push(Push::Subscribe {
            channel: req.channel.clone(),
            result: Box::new(SubscribeResult { data: req.data.clone(), ..Default::default() }),
        });
        let subscriber = Subscriber { conn: self.conn, outbox: self.outbox.clone() };
        self.hub
            .subscribe(&req.channel, subscriber, move || { outbox.push(push); })
            .await
            .map_err(|_| Disconnect::INTERNAL)?;
        self.subs.insert(req.channel, Sub { server_side: true, chan_info: req.info, expire_at: req.expire_at });
        Ok(())
    }
}
