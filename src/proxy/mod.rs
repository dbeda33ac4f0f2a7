//! Calls to the application backend: connect, refresh, subscribe, publish, sub_refresh
//! and rpc events, POSTed as Centrifugo's JSON bodies to the `http(s)://` endpoints the
//! config names ([`http`], [`wire`]), or unary calls to Centrifugo's `CentrifugoProxy`
//! gRPC service at `grpc://` endpoints ([`grpc`]).
//!
//! This room knows config, protocol model types and metrics; it knows nothing of
//! sessions or sockets. The session asks [`Proxies`] which proxy (if any) decides an
//! event and awaits the call inside the command's future, which the connection driver
//! polls beside its writer, pings and timers: a slow backend delays that command's reply
//! only. Every call is bounded by the proxy's `timeout` and, per proxy and event, by
//! [`MAX_IN_FLIGHT`] calls at once (past it a call fails at once instead of queueing
//! behind a dead backend). A failed call is a [`CallError`]; what it means for the client
//! (error 100, a failed connect) is the session's decision.

pub mod grpc;
pub mod http;
pub mod wire;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ::http::{HeaderMap, HeaderName, HeaderValue, Uri};
use bytes::Bytes;

use crate::config::{ChannelOptions, Config, ProxyEndpoint};
use crate::metrics::{Metrics, ProxyStats};
pub use wire::{Caller, ConnectReply, Outcome, PublishReply, RefreshReply, SubscribeReply};

/// Calls one proxy may have under way for one event, node-wide. A dead backend that
/// holds every call until its timeout costs at most this many pending requests; past it
/// calls fail at once (error 100) instead of queueing.
pub const MAX_IN_FLIGHT: i64 = 4096;

/// Connect timeout of the HTTP client, in ms: a backend that does not accept within it
/// is down (the call's own `timeout` bounds the whole exchange as well).
const CONNECT_TIMEOUT_MS: u64 = 1_000;

/// The name `*_proxy_name` uses for the built-in proxy of that event.
pub const DEFAULT_NAME: &str = "default";

/// Why a proxy call gave no decision.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The backend did not answer within the proxy's timeout.
    #[error("timeout after {0:?}")]
    Timeout(Duration),
    /// The HTTP exchange failed (connect, status, body).
    #[error("{0}")]
    Http(#[from] http::HttpError),
    /// The gRPC exchange failed (transport, grpc-status, body).
    #[error("{0}")]
    Grpc(#[from] grpc::GrpcError),
    /// The answer was not a valid proxy answer.
    #[error("bad answer: {0}")]
    BadAnswer(#[from] wire::BadAnswer),
    /// [`MAX_IN_FLIGHT`] calls are already waiting on this proxy.
    #[error("too many calls in flight")]
    Overloaded,
    /// No client for the endpoint (not reachable with a configured proxy).
    #[error("unsupported endpoint {0:?}")]
    Unsupported(String),
}

impl CallError {
    fn kind(&self) -> &'static str {
        match self {
            Self::Timeout(_) => "timeout",
            Self::Http(e) => e.kind(),
            Self::Grpc(e) => e.kind(),
            Self::BadAnswer(_) => "bad_answer",
            Self::Overloaded => "overloaded",
            Self::Unsupported(_) => "unsupported",
        }
    }
}

/// The events a proxy decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// `connect`.
    Connect,
    /// `refresh`.
    Refresh,
    /// `subscribe`.
    Subscribe,
    /// `publish`.
    Publish,
    /// `sub_refresh`.
    SubRefresh,
    /// `rpc`.
    Rpc,
}

impl Event {
    /// The name in metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Refresh => "refresh",
            Self::Subscribe => "subscribe",
            Self::Publish => "publish",
            Self::SubRefresh => "sub_refresh",
            Self::Rpc => "rpc",
        }
    }
}

/// Where a proxy's calls go.
#[derive(Debug)]
enum Target {
    /// JSON over HTTP POST to this URL.
    Http(Uri),
    /// Centrifugo's gRPC service at this base (`http://host:port`, h2c).
    Grpc(Uri),
}

/// One configured endpoint, resolved.
#[derive(Debug)]
pub struct Proxy {
    name: String,
    target: Target,
    endpoint: String,
    timeout: Duration,
    /// Lower-case names of the client headers forwarded (`http_headers`, or
    /// `grpc_metadata` for gRPC endpoints).
    allowed: Vec<HeaderName>,
    statics: Vec<(HeaderName, HeaderValue)>,
    shape: wire::Shape,
}

impl Proxy {
    fn new(name: &str, key: &str, cfg: &ProxyEndpoint) -> Result<Self, String> {
        let endpoint = cfg.endpoint.trim();
        let (target, list, list_key) = if endpoint.starts_with("http://") || endpoint.starts_with("https://") {
            let uri = endpoint.parse::<Uri>().map_err(|e| format!("{key}.endpoint: {e}"))?;
            (Target::Http(uri), &cfg.http_headers, "http_headers")
        } else if let Some(rest) = endpoint.strip_prefix("grpc://") {
            let uri = format!("http://{rest}").parse::<Uri>().map_err(|e| format!("{key}.endpoint: {e}"))?;
            (Target::Grpc(uri), &cfg.grpc_metadata, "grpc_metadata")
        } else if endpoint.is_empty() {
            return Err(format!("{key}.endpoint: required"));
        } else {
            return Err(format!("{key}.endpoint: {endpoint:?} must start with http://, https:// or grpc://"));
        };
        if cfg.timeout.0.is_zero() {
            return Err(format!("{key}.timeout: must be greater than 0"));
        }
        let allowed = list
            .iter()
            .map(|h| HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes()).map_err(|e| format!("{key}.{list_key}: {h:?}: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let statics = cfg
            .http
            .static_headers
            .iter()
            .map(|(k, v)| {
                let name = HeaderName::from_bytes(k.as_bytes()).map_err(|e| format!("{key}.http.static_headers: {k:?}: {e}"))?;
                let value = HeaderValue::from_str(v).map_err(|e| format!("{key}.http.static_headers.{k}: {e}"))?;
                Ok((name, value))
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Self {
            name: name.to_owned(),
            target,
            endpoint: endpoint.to_owned(),
            timeout: cfg.timeout.0,
            allowed,
            statics,
            shape: wire::Shape { binary: cfg.binary_encoding, meta: cfg.include_connection_meta },
        })
    }

    /// The proxy's name (`default`, a `proxies[]` name, or `connect`/`refresh`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How it shapes requests.
    pub fn shape(&self) -> wire::Shape {
        self.shape
    }

    /// The headers of a request to this proxy: static ones, then the allowlisted client
    /// headers (which win).
    fn headers(&self, client: &[(HeaderName, HeaderValue)]) -> Vec<(HeaderName, HeaderValue)> {
        let mut out = self.statics.clone();
        for (k, v) in client {
            if self.allowed.contains(k) {
                out.retain(|(s, _)| s != k);
                out.push((k.clone(), v.clone()));
            }
        }
        out
    }
}

/// The route of one RPC method.
#[derive(Debug)]
pub enum RpcRoute<'a> {
    /// `rpc.ping`: answer with empty data.
    Ping,
    /// Call this proxy.
    Proxy(&'a Proxy),
    /// No proxy for this method's namespace (error 104).
    NotFound,
    /// No RPC proxy is configured at all (error 108).
    NotAvailable,
}

/// Every configured proxy, resolved from config once at start.
#[derive(Debug)]
pub struct Proxies {
    connect: Option<Arc<Proxy>>,
    refresh: Option<Arc<Proxy>>,
    /// `proxies[]` by name.
    named: HashMap<String, Arc<Proxy>>,
    subscribe: Option<Arc<Proxy>>,
    publish: Option<Arc<Proxy>>,
    sub_refresh: Option<Arc<Proxy>>,
    rpc_default: Option<Arc<Proxy>>,
    rpc_boundary: String,
    /// RPC namespace → proxy (`None`: namespace without a proxy).
    rpc_namespaces: HashMap<String, Option<Arc<Proxy>>>,
    rpc_without_namespace: Option<Arc<Proxy>>,
    rpc_ping: Option<String>,
    rpc_any: bool,
    /// Union of every proxy's allowlist: the only client headers a connection keeps.
    forwarded: Vec<HeaderName>,
    stats: HashMap<(String, &'static str), Arc<ProxyStats>>,
    client: Option<http::HttpClient>,
    grpc: Option<grpc::GrpcClient>,
    metrics: Arc<Metrics>,
}

impl Proxies {
    /// Resolves the config's proxies. `Err` names the bad key; the warnings name keys
    /// that load but do not work as configured.
    pub fn from_config(cfg: &Config, metrics: Arc<Metrics>) -> Result<(Self, Vec<String>), String> {
        let mut warnings = Vec::new();
        let mut named = HashMap::new();
        for (i, p) in cfg.proxies.iter().enumerate() {
            let key = format!("proxies[{i}]");
            if p.name.is_empty() || p.name == DEFAULT_NAME {
                return Err(format!("{key}.name: required, and {DEFAULT_NAME:?} is taken by the built-in proxies"));
            }
            let proxy = Proxy::new(&p.name, &key, &p.proxy)?;
            if named.insert(p.name.clone(), Arc::new(proxy)).is_some() {
                return Err(format!("{key}.name: duplicate proxy {:?}", p.name));
            }
        }
        let client_proxy = |e: &crate::config::ClientEventProxy, name: &str| {
            e.enabled.then(|| Proxy::new(name, &format!("client.proxy.{name}"), &e.proxy).map(Arc::new)).transpose()
        };
        let connect = client_proxy(&cfg.client.proxy.connect, "connect")?;
        let refresh = client_proxy(&cfg.client.proxy.refresh, "refresh")?;

        // Channel events: resolve every namespace's choice now, so a missing name is a
        // start-up error, and build the "default" proxy only when one refers to it.
        let mut options: Vec<(String, &ChannelOptions)> = vec![("channel.without_namespace".into(), &cfg.channel.without_namespace)];
        for (i, ns) in cfg.channel.namespaces.iter().enumerate() {
            options.push((format!("channel.namespaces[{i}]"), &ns.options));
        }
        let mut defaults: [Option<Arc<Proxy>>; 3] = [None, None, None];
        let endpoints = [&cfg.channel.proxy.subscribe, &cfg.channel.proxy.publish, &cfg.channel.proxy.sub_refresh];
        let events = ["subscribe", "publish", "sub_refresh"];
        for (key, o) in &options {
            let wanted = [
                (o.subscribe_proxy_enabled, &o.subscribe_proxy_name),
                (o.publish_proxy_enabled, &o.publish_proxy_name),
                (o.sub_refresh_proxy_enabled, &o.sub_refresh_proxy_name),
            ];
            for (i, (enabled, name)) in wanted.into_iter().enumerate() {
                if !enabled {
                    continue;
                }
                if is_default(name) {
                    if defaults[i].is_none() {
                        let k = format!("channel.proxy.{}", events[i]);
                        defaults[i] = Some(Arc::new(Proxy::new(DEFAULT_NAME, &k, endpoints[i])?));
                    }
                } else if !named.contains_key(name.as_str()) {
                    return Err(format!("{key}.{}_proxy_name: no proxy named {name:?} in proxies[]", events[i]));
                }
            }
        }
        let [subscribe, publish, sub_refresh] = defaults;

        let rpc = &cfg.rpc;
        let mut rpc_default = None;
        let mut resolve_rpc = |key: &str, o: &crate::config::RpcOptions| -> Result<Option<Arc<Proxy>>, String> {
            if !o.proxy_enabled {
                return Ok(None);
            }
            if is_default(&o.proxy_name) {
                if rpc_default.is_none() {
                    rpc_default = Some(Arc::new(Proxy::new(DEFAULT_NAME, "rpc.proxy", &rpc.proxy)?));
                }
                return Ok(rpc_default.clone());
            }
            named
                .get(&o.proxy_name)
                .cloned()
                .map(Some)
                .ok_or_else(|| format!("{key}.proxy_name: no proxy named {:?} in proxies[]", o.proxy_name))
        };
        let rpc_without_namespace = resolve_rpc("rpc.without_namespace", &rpc.without_namespace)?;
        let mut rpc_namespaces = HashMap::new();
        for (i, ns) in rpc.namespaces.iter().enumerate() {
            let key = format!("rpc.namespaces[{i}]");
            if ns.name.is_empty() {
                return Err(format!("{key}.name: required"));
            }
            let p = resolve_rpc(&key, &ns.options)?;
            if rpc_namespaces.insert(ns.name.clone(), p).is_some() {
                return Err(format!("{key}.name: duplicate rpc namespace {:?}", ns.name));
            }
        }
        if rpc.namespace_boundary.is_empty() {
            return Err("rpc.namespace_boundary: must not be empty".into());
        }
        let rpc_any = rpc_without_namespace.is_some() || rpc_namespaces.values().any(Option::is_some);

        let mut me = Self {
            connect,
            refresh,
            named,
            subscribe,
            publish,
            sub_refresh,
            rpc_default,
            rpc_boundary: rpc.namespace_boundary.clone(),
            rpc_namespaces,
            rpc_without_namespace,
            rpc_ping: rpc.ping.enabled.then(|| rpc.ping.method.clone()),
            rpc_any,
            forwarded: Vec::new(),
            stats: HashMap::new(),
            client: None,
            grpc: None,
            metrics,
        };
        let mut forwarded: Vec<HeaderName> = Vec::new();
        let mut stats = HashMap::new();
        let (mut any_http, mut any_grpc) = (false, false);
        for (event, p) in me.all() {
            match p.target {
                Target::Http(_) => any_http = true,
                Target::Grpc(_) => any_grpc = true,
            }
            for h in &p.allowed {
                if !forwarded.contains(h) {
                    forwarded.push(h.clone());
                }
            }
            stats.insert((p.name.clone(), event.name()), me.metrics.proxies.stats(&p.name, event.name()));
        }
        me.forwarded = forwarded;
        me.stats = stats;
        if any_http {
            me.client = Some(http::HttpClient::new(Duration::from_millis(CONNECT_TIMEOUT_MS))?);
        }
        if any_grpc {
            me.grpc = Some(grpc::GrpcClient::new(Duration::from_millis(CONNECT_TIMEOUT_MS)));
        }
        for (i, p) in cfg.proxies.iter().enumerate() {
            if p.proxy.endpoint.starts_with("grpc://") && !p.proxy.http_headers.is_empty() {
                warnings.push(format!("proxies[{i}].http_headers: ignored for a grpc:// endpoint; list them in grpc_metadata"));
            }
        }
        Ok((me, warnings))
    }

    /// Every (event, proxy) pair that can be called.
    fn all(&self) -> Vec<(Event, &Proxy)> {
        let mut out: Vec<(Event, &Proxy)> = Vec::new();
        let single = [
            (Event::Connect, &self.connect),
            (Event::Refresh, &self.refresh),
            (Event::Subscribe, &self.subscribe),
            (Event::Publish, &self.publish),
            (Event::SubRefresh, &self.sub_refresh),
            (Event::Rpc, &self.rpc_default),
        ];
        for (e, p) in single {
            if let Some(p) = p {
                out.push((e, p));
            }
        }
        // A named proxy may serve any channel event or RPC.
        for p in self.named.values() {
            for e in [Event::Subscribe, Event::Publish, Event::SubRefresh, Event::Rpc] {
                out.push((e, p));
            }
        }
        out
    }

    /// Whether any proxy is configured (else sessions never ask).
    pub fn is_empty(&self) -> bool {
        self.client.is_none() && self.grpc.is_none()
    }

    /// The connect proxy (`client.proxy.connect.enabled`).
    pub fn connect(&self) -> Option<&Proxy> {
        self.connect.as_deref()
    }

    /// The refresh proxy (`client.proxy.refresh.enabled`).
    pub fn refresh(&self) -> Option<&Proxy> {
        self.refresh.as_deref()
    }

    /// The proxy deciding `event` (subscribe, publish, sub_refresh) for channels with
    /// these options, if the namespace enables one.
    pub fn channel(&self, event: Event, o: &ChannelOptions) -> Option<&Proxy> {
        let (enabled, name, default) = match event {
            Event::Subscribe => (o.subscribe_proxy_enabled, &o.subscribe_proxy_name, &self.subscribe),
            Event::Publish => (o.publish_proxy_enabled, &o.publish_proxy_name, &self.publish),
            Event::SubRefresh => (o.sub_refresh_proxy_enabled, &o.sub_refresh_proxy_name, &self.sub_refresh),
            _ => return None,
        };
        if !enabled {
            return None;
        }
        if is_default(name) { default.as_deref() } else { self.named.get(name.as_str()).map(|p| &**p) }
    }

    /// Where an RPC method goes (`ns:method` by `rpc.namespace_boundary`).
    pub fn rpc(&self, method: &str) -> RpcRoute<'_> {
        if self.rpc_ping.as_deref() == Some(method) {
            return RpcRoute::Ping;
        }
        if !self.rpc_any {
            return RpcRoute::NotAvailable;
        }
        let proxy = match method.split_once(self.rpc_boundary.as_str()) {
            Some((ns, _)) => self.rpc_namespaces.get(ns).and_then(Option::as_deref),
            None => self.rpc_without_namespace.as_deref(),
        };
        proxy.map_or(RpcRoute::NotFound, RpcRoute::Proxy)
    }

    /// The client headers a connection keeps for its proxy calls: those some proxy
    /// forwards, nothing else (an idle connection holds no other header).
    pub fn keep_headers(&self, headers: &HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
        let mut out = Vec::new();
        for name in &self.forwarded {
            if let Some(v) = headers.get(name) {
                out.push((name.clone(), v.clone()));
            }
        }
        out
    }

    /// [`Proxies::keep_headers`] for headers emulated by the SDK (`headers` in connect),
    /// which do not replace real ones.
    pub fn keep_emulated(&self, kept: &mut Vec<(HeaderName, HeaderValue)>, emulated: &std::collections::BTreeMap<String, String>) {
        for (k, v) in emulated {
            let Ok(name) = HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()) else { continue };
            let Ok(value) = HeaderValue::from_str(v) else { continue };
            if self.forwarded.contains(&name) && !kept.iter().any(|(n, _)| *n == name) {
                kept.push((name, value));
            }
        }
    }

    /// Runs one call to `proxy` for `event`: bounded by the proxy's timeout and
    /// [`MAX_IN_FLIGHT`], measured, and logged when it fails.
    async fn measured<T>(
        &self,
        proxy: &Proxy,
        event: Event,
        call: impl std::future::Future<Output = Result<T, CallError>>,
    ) -> Result<T, CallError> {
        let stats = self.stats.get(&(proxy.name.clone(), event.name())).cloned();
        let stats = stats.unwrap_or_else(|| self.metrics.proxies.stats(&proxy.name, event.name()));
        let started = Instant::now();
        let result = async {
            if stats.in_flight.fetch_add(1, Ordering::Relaxed) >= MAX_IN_FLIGHT {
                stats.in_flight.fetch_sub(1, Ordering::Relaxed);
                return Err(CallError::Overloaded);
            }
            let r = tokio::time::timeout(proxy.timeout, call).await;
            stats.in_flight.fetch_sub(1, Ordering::Relaxed);
            r.unwrap_or(Err(CallError::Timeout(proxy.timeout)))
        }
        .await;
        stats.observe(started.elapsed());
        if let Err(e) = &result {
            stats.errors.inc(e.kind());
            crate::log::limited_warn!("proxy.call_failed", proxy = %proxy.name, event = event.name(), endpoint = %proxy.endpoint, status = %e, "proxy call failed");
        }
        result
    }

    /// One call: the JSON body over HTTP, or the gRPC message, and the answer read.
    #[allow(clippy::too_many_arguments)]
    async fn call<T, Q: prost::Message, A: prost::Message + Default>(
        &self,
        proxy: &Proxy,
        event: Event,
        headers: &[(HeaderName, HeaderValue)],
        json: impl FnOnce() -> Vec<u8>,
        parse: fn(&[u8]) -> Result<Outcome<T>, wire::BadAnswer>,
        grpc_request: impl FnOnce() -> Q,
        grpc_parse: fn(A) -> Result<Outcome<T>, wire::BadAnswer>,
    ) -> Result<Outcome<T>, CallError> {
        let headers = proxy.headers(headers);
        self.measured(proxy, event, async {
            match &proxy.target {
                Target::Http(uri) => {
                    let client = self.client.as_ref().ok_or_else(|| CallError::Unsupported(proxy.endpoint.clone()))?;
                    let answer = client.post(uri, &headers, json()).await?;
                    Ok(parse(&answer)?)
                }
                Target::Grpc(base) => {
                    let client = self.grpc.as_ref().ok_or_else(|| CallError::Unsupported(proxy.endpoint.clone()))?;
                    let answer: A = client.call(base, grpc_method(event), &headers, &grpc_request()).await?;
                    Ok(grpc_parse(answer)?)
                }
            }
        })
        .await
    }

    /// A connect event.
    pub async fn connect_call(
        &self,
        proxy: &Proxy,
        caller: &Caller<'_>,
        headers: &[(HeaderName, HeaderValue)],
        req: &crate::protocol::ConnectRequest,
    ) -> Result<Outcome<ConnectReply>, CallError> {
        let channels: Vec<&str> = req.subs.keys().map(String::as_str).collect();
        let json = || wire::connect_request(caller, proxy.shape, &req.name, &req.version, req.data.as_ref(), &channels);
        let pb = || grpc::connect_request(caller, proxy.shape, req);
        self.call(proxy, Event::Connect, headers, json, wire::connect_answer, pb, grpc::connect_answer).await
    }

    /// A refresh event.
    pub async fn refresh_call(&self, proxy: &Proxy, caller: &Caller<'_>, headers: &[(HeaderName, HeaderValue)]) -> Result<Outcome<RefreshReply>, CallError> {
        let json = || wire::refresh_request(caller, proxy.shape);
        let pb = || grpc::refresh_request(caller, proxy.shape);
        self.call(proxy, Event::Refresh, headers, json, wire::refresh_answer, pb, grpc::refresh_answer).await
    }

    /// A subscribe event.
    pub async fn subscribe_call(
        &self,
        proxy: &Proxy,
        caller: &Caller<'_>,
        headers: &[(HeaderName, HeaderValue)],
        req: &crate::protocol::SubscribeRequest,
    ) -> Result<Outcome<SubscribeReply>, CallError> {
        let json = || wire::subscribe_request(caller, proxy.shape, &req.channel, &req.token, req.data.as_ref());
        let pb = || grpc::subscribe_request(caller, proxy.shape, req);
        self.call(proxy, Event::Subscribe, headers, json, wire::subscribe_answer, pb, grpc::subscribe_answer).await
    }

    /// A publish event.
    pub async fn publish_call(
        &self,
        proxy: &Proxy,
        caller: &Caller<'_>,
        headers: &[(HeaderName, HeaderValue)],
        channel: &str,
        data: &Bytes,
    ) -> Result<Outcome<PublishReply>, CallError> {
        let json = || wire::publish_request(caller, proxy.shape, channel, data);
        let pb = || grpc::publish_request(caller, proxy.shape, channel, data);
        self.call(proxy, Event::Publish, headers, json, wire::publish_answer, pb, grpc::publish_answer).await
    }

    /// A sub_refresh event.
    pub async fn sub_refresh_call(
        &self,
        proxy: &Proxy,
        caller: &Caller<'_>,
        headers: &[(HeaderName, HeaderValue)],
        channel: &str,
    ) -> Result<Outcome<RefreshReply>, CallError> {
        let json = || wire::sub_refresh_request(caller, proxy.shape, channel);
        let pb = || grpc::sub_refresh_request(caller, proxy.shape, channel);
        self.call(proxy, Event::SubRefresh, headers, json, wire::refresh_answer, pb, grpc::refresh_answer).await
    }

    /// An RPC event.
    pub async fn rpc_call(
        &self,
        proxy: &Proxy,
        caller: &Caller<'_>,
        headers: &[(HeaderName, HeaderValue)],
        method: &str,
        data: Option<&Bytes>,
    ) -> Result<Outcome<Option<Bytes>>, CallError> {
        let json = || wire::rpc_request(caller, proxy.shape, method, data);
        let pb = || grpc::rpc_request(caller, proxy.shape, method, data);
        self.call(proxy, Event::Rpc, headers, json, wire::rpc_answer, pb, grpc::rpc_answer).await
    }
}

/// The `CentrifugoProxy` method of an event.
fn grpc_method(event: Event) -> &'static str {
    match event {
        Event::Connect => "Connect",
        Event::Refresh => "Refresh",
        Event::Subscribe => "Subscribe",
        Event::Publish => "Publish",
        Event::SubRefresh => "SubRefresh",
        Event::Rpc => "RPC",
    }
}

fn is_default(name: &str) -> bool {
    name.is_empty() || name == DEFAULT_NAME
}

#[cfg(test)]
mod tests;
