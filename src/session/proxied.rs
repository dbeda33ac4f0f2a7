//! Events the application backend decides through a proxy (`crate::proxy`): connect
//! without a token, server-side refresh of connections and subscriptions, subscribe,
//! publish and RPC.
//!
//! Centrifugo's rules: the backend's `error` reaches the client as sent and its
//! `disconnect` closes the connection with its code; a call that gives no answer
//! (timeout, transport error, bad answer) is error 100 for commands, a failed connect
//! (error 100, then this connection is done), and for refreshes one more minute to live
//! before the next try — a backend blip does not drop every connection at once.

use bytes::Bytes;

use super::subscribe::Refusal;
use super::{Session, Sub};
use crate::auth::ConnectClaims;
use crate::auth::jwt::{SubClaim, SubOverride};
use crate::protocol::{ClientError, ConnectRequest, Disconnect, Push, ReplyBody, RpcRequest, SubscribeRequest};
use crate::proxy::{Caller, Event, Outcome, RpcRoute};

/// What a refresh gives when the backend could not be asked, in seconds (Centrifugo's
/// value): the connection lives on and the backend is asked again then.
const RETRY_REFRESH_SECS: u64 = 60;

/// A connection's side of its proxy calls, kept only when proxies are configured.
#[derive(Debug, Default)]
pub(super) struct Backend {
    /// The client headers some proxy forwards (real ones, then emulated ones).
    pub(super) headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// The connection's `meta` (connect proxy result or token), never sent to the client.
    pub(super) meta: Option<Bytes>,
    /// The refresh proxy, not the client, renews this connection.
    pub(super) server_refresh: bool,
}

/// The outcome of a decision, for the caller to apply.
pub(super) type Decided<T> = Result<T, Refusal>;

fn refusal<T>(outcome: Outcome<T>) -> Result<T, Refusal> {
    match outcome {
        Outcome::Result(r) => Ok(r),
        Outcome::Error(e) => Err(Refusal::Reply(e)),
        Outcome::Disconnect(d) => Err(Refusal::Close(d)),
    }
}

impl Session {
    /// Keeps the client request's headers that some proxy forwards, as
    /// [`crate::proxy::Proxies::keep_headers`] picked them (transports call it once,
    /// before the driver runs).
    pub fn set_forwarded_headers(&mut self, headers: Vec<(http::HeaderName, http::HeaderValue)>) {
        if let Some(b) = self.backend.as_mut() {
            b.headers = headers;
        }
    }

    /// The client protocol is binary (Protobuf, native), for the proxies' `protocol` field.
    pub fn set_binary_protocol(&mut self, binary: bool) {
        self.binary_protocol = binary;
    }

    fn caller(&self) -> Caller<'_> {
        Caller {
            client: &self.client,
            transport: self.transport.name,
            protocol: if self.binary_protocol { "protobuf" } else { "json" },
            user: &self.user,
            meta: self.backend.as_ref().and_then(|b| b.meta.as_ref()),
        }
    }

    fn headers(&self) -> &[(http::HeaderName, http::HeaderValue)] {
        self.backend.as_ref().map_or(&[], |b| b.headers.as_slice())
    }

    /// Whether the refresh proxy renews this connection (then the client is told no
    /// expiry and never sends `refresh`).
    pub(super) fn server_refresh(&self) -> bool {
        self.backend.as_ref().is_some_and(|b| b.server_refresh)
    }

    /// Whether a connect without a token goes to the connect proxy.
    pub(super) fn connect_proxied(&self) -> bool {
        self.auth.proxies.as_ref().is_some_and(|p| p.connect().is_some())
    }

    /// Asks the connect proxy who this is: the claims to connect with and the connect
    /// result's data.
    pub(super) async fn proxy_connect(&mut self, req: &ConnectRequest) -> Decided<(ConnectClaims, Option<Bytes>)> {
        let Some(proxies) = self.auth.proxies.clone() else { return Err(Refusal::Reply(ClientError::Internal)) };
        let Some(proxy) = proxies.connect() else { return Err(Refusal::Reply(ClientError::Internal)) };
        if let Some(b) = self.backend.as_mut() {
            proxies.keep_emulated(&mut b.headers, &req.headers);
        }
        let outcome = proxies
            .connect_call(proxy, &self.caller(), self.headers(), req)
            .await
            .map_err(|_| Refusal::Reply(ClientError::Internal))?;
        let r = refusal(outcome)?;
        let refresh = proxies.refresh().is_some();
        if let Some(b) = self.backend.as_mut() {
            b.server_refresh = refresh && r.expire_at.is_some();
        }
        let subs = r
            .subs
            .into_iter()
            .map(|(ch, s)| (ch, SubClaim { info: s.info, data: s.data, overrides: s.overrides }))
            .collect();
        let claims =
            ConnectClaims { user: r.user, expire_at: r.expire_at, info: r.info, channels: Vec::new(), subs, meta: r.meta };
        Ok((claims, r.data))
    }

    /// Keeps the connection's meta for later proxy requests.
    pub(super) fn keep_meta(&mut self, meta: Option<Bytes>) {
        if let Some(b) = self.backend.as_mut() {
            b.meta = meta;
        }
    }

    /// The refresh proxy's turn: the connection's `expire_at` has come.
    pub(super) async fn proxy_refresh(&mut self, now_ms: u64) -> Result<(), Disconnect> {
        let Some(proxies) = self.auth.proxies.clone() else { return Err(Disconnect::EXPIRED) };
        let Some(proxy) = proxies.refresh() else { return Err(Disconnect::EXPIRED) };
        let now_s = now_ms / 1000;
        match proxies.refresh_call(proxy, &self.caller(), self.headers()).await {
            Err(_) => self.expire_at = Some(now_s + RETRY_REFRESH_SECS),
            Ok(Outcome::Disconnect(d)) => return Err(d),
            Ok(Outcome::Error(_)) => return Err(Disconnect::INTERNAL),
            Ok(Outcome::Result(r)) => {
                let at = super::capped_expiry(r.expire_at, now_ms).filter(|&at| at > now_s);
                match at {
                    Some(at) if !r.expired => {
                        self.expire_at = Some(at);
                        if r.info.is_some() {
                            self.conn_info = r.info;
                        }
                    }
                    _ => return Err(Disconnect::EXPIRED),
                }
            }
        }
        Ok(())
    }

    /// Whether the sub_refresh proxy renews this channel's subscriptions.
    pub(super) fn sub_refresh_proxied(&self, channel: &str) -> bool {
        let Some(proxies) = self.auth.proxies.as_ref() else { return false };
        self.hub.channels().parse(channel).is_ok_and(|(_, r)| proxies.channel(Event::SubRefresh, &r.options).is_some())
    }

    /// The sub_refresh proxy's turn for one subscription whose `expire_at` has come:
    /// `Ok(false)` means it ended (the caller unsubscribes it with 2501).
    pub(super) async fn proxy_sub_refresh(&mut self, channel: &str, now_ms: u64) -> Result<bool, Disconnect> {
        let Some(proxies) = self.auth.proxies.clone() else { return Ok(false) };
        let Ok((_, resolved)) = self.hub.channels().parse(channel) else { return Ok(false) };
        let Some(proxy) = proxies.channel(Event::SubRefresh, &resolved.options) else { return Ok(false) };
        let now_s = now_ms / 1000;
        let expire_at = match proxies.sub_refresh_call(proxy, &self.caller(), self.headers(), channel).await {
            Err(_) => Some(now_s + RETRY_REFRESH_SECS),
            Ok(Outcome::Disconnect(d)) => return Err(d),
            Ok(Outcome::Error(_)) => return Ok(false),
            Ok(Outcome::Result(r)) if r.expired => return Ok(false),
            Ok(Outcome::Result(r)) => {
                let at = super::capped_expiry(r.expire_at, now_ms).filter(|&at| at > now_s);
                if at.is_none() {
                    return Ok(false);
                }
                if let (Some(info), Some(sub)) = (r.info, self.subs.get_mut(channel)) {
                    sub.chan_info = Some(info);
                }
                at
            }
        };
        if let Some(sub) = self.subs.get_mut(channel) {
            sub.expire_at = expire_at;
        }
        Ok(true)
    }

    /// The subscribe proxy's decision, when the channel's namespace has one and the
    /// client brings no token (a token is checked as without proxies). `None`: not
    /// for a proxy. `Some(Ok)`: the subscription's state, overrides and result data.
    pub(super) async fn proxy_subscribe(&self, req: &SubscribeRequest, now_ms: u64) -> Option<Decided<(Sub, SubOverride, Option<Bytes>)>> {
        if !req.token.is_empty() {
            return None;
        }
        let proxies = self.auth.proxies.clone()?;
        let (name, resolved) = self.hub.channels().parse(&req.channel).ok()?;
        let proxy = proxies.channel(Event::Subscribe, &resolved.options)?;
        if name.private {
            // Private channels need a subscription token, whoever decides the rest.
            return Some(Err(Refusal::Reply(ClientError::PermissionDenied)));
        }
        if let Some(re) = &resolved.regex
            && !re.is_match(name.name)
        {
            return Some(Err(Refusal::Reply(ClientError::PermissionDenied)));
        }
        let decided = match proxies.subscribe_call(proxy, &self.caller(), self.headers(), req).await {
            Err(_) => Err(Refusal::Reply(ClientError::Internal)),
            Ok(outcome) => refusal(outcome).map(|r| {
                let sub = Sub { chan_info: r.info, expire_at: super::capped_expiry(r.expire_at, now_ms), ..Default::default() };
                (sub, r.overrides, r.data)
            }),
        };
        Some(decided)
    }

    /// The publish proxy's decision, when the channel's namespace has one. `None`: not
    /// for a proxy. `Some(Ok)`: what to publish.
    pub(super) async fn proxy_publish(
        &self,
        channel: &str,
        data: Bytes,
        options: &crate::config::ChannelOptions,
    ) -> Option<Decided<crate::hub::PublishRequest>> {
        let proxies = self.auth.proxies.clone()?;
        let proxy = proxies.channel(Event::Publish, options)?;
        let decided = match proxies.publish_call(proxy, &self.caller(), self.headers(), channel, &data).await {
            Err(_) => Err(Refusal::Reply(ClientError::Internal)),
            Ok(outcome) => refusal(outcome).and_then(|r| {
                let data = r.data.unwrap_or(data);
                if super::too_deep(Some(&data)) {
                    return Err(Refusal::Reply(ClientError::BadRequest));
                }
                Ok(crate::hub::PublishRequest {
                    channel: channel.to_owned(),
                    data,
                    info: None,
                    tags: r.tags,
                    skip_history: r.skip_history,
                    idempotency_key: r.idempotency_key,
                    delta: false,
                })
            }),
        };
        Some(decided)
    }

    /// An `rpc` command: `rpc.ping`, or the proxy of the method's namespace.
    pub(super) async fn rpc(&mut self, id: u32, req: RpcRequest) -> Result<(), Disconnect> {
        if super::too_deep(req.data.as_ref()) {
            self.error(id, ClientError::BadRequest);
            return Ok(());
        }
        let Some(proxies) = self.auth.proxies.clone() else {
            // No proxies, no RPC handler: the centrifuge core answers 108 "not available"
            // then (104 is for a method no handler matches).
            self.error(id, ClientError::NotAvailable);
            return Ok(());
        };
        let proxy = match proxies.rpc(&req.method) {
            RpcRoute::Ping => {
                self.reply(id, ReplyBody::Rpc(None));
                return Ok(());
            }
            RpcRoute::NotAvailable => {
                self.error(id, ClientError::NotAvailable);
                return Ok(());
            }
            RpcRoute::NotFound => {
                self.error(id, ClientError::MethodNotFound);
                return Ok(());
            }
            RpcRoute::Proxy(p) => p,
        };
        match proxies.rpc_call(proxy, &self.caller(), self.headers(), &req.method, req.data.as_ref()).await {
            Err(_) => self.error(id, ClientError::Internal),
            Ok(Outcome::Result(data)) => self.reply(id, ReplyBody::Rpc(data)),
            Ok(Outcome::Error(e)) => self.error(id, e),
            Ok(Outcome::Disconnect(d)) => return Err(d),
        }
        Ok(())
    }

    /// Ends a subscription whose refresh said so (2501, as an expired token does).
    pub(super) async fn end_expired(&mut self, channel: String) {
        self.drop_subscription(&channel).await;
        self.push(Push::Unsubscribe { channel, reason: crate::protocol::UnsubscribeReason::Expired });
    }
}

#[cfg(test)]
mod tests;
