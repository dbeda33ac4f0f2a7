//! Typed configuration: a TOML or JSON file, then `TIDEWIRE_*` environment variables,
//! then defaults. Keys follow Centrifugo v6 names where the concept is shared, so an
//! existing Centrifugo v6 config starts Tidewire as is; keys Tidewire does not implement
//! are reported (all at once) instead of being silently ignored.
//!
//! Every setting documents its default and what it protects. Validation names the bad key
//! (`channel.namespaces[1].name: …`).

use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

mod env;
mod proxy;
mod redis;
mod unsupported;
mod v5;

pub use proxy::{
    ChannelProxies, ClientEventProxy, ClientProxies, NamedProxy, ProxyEndpoint, ProxyHttp, RpcConfig, RpcNamespace, RpcOptions,
    RpcPing,
};
pub use env::CENTRIFUGO_ENV_PREFIX;
pub use redis::{RedisAddress, RedisEngine, RedisTls, RedisTopology};

/// A configuration problem, naming the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or JSON.
    #[error("cannot parse {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message.
        message: String,
    },
    /// A key has a value of the wrong type or out of range.
    #[error("{key}: {message}")]
    Invalid {
        /// The dotted key path.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// The file uses Centrifugo v5's flat key names, which Tidewire (like Centrifugo v6)
    /// does not read: loading it would silently drop secrets and options.
    #[error("{}", v5_message(.0))]
    V5Keys(Vec<(String, &'static str)>),
}

fn v5_message(keys: &[(String, &'static str)]) -> String {
    let mut text = String::from("this is a Centrifugo v5 config; Tidewire reads Centrifugo v6 key names. Rename:");
    for (v5, v6) in keys {
        text.push_str(&format!("\n  {v5} -> {v6}"));
    }
    text
}

impl ConfigError {
    fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid { key: key.into(), message: message.into() }
    }
}

/// A duration written the Go way (`"25s"`, `"720h"`, `"1m30s"`, `"100ms"`, `"0"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Dur(pub Duration);

impl Dur {
    /// Whole seconds.
    pub const fn secs(s: u64) -> Self {
        Self(Duration::from_secs(s))
    }

    /// Parses a Go-style duration string.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s == "0" {
            return Ok(Self(Duration::ZERO));
        }
        if s.is_empty() {
            return Err("empty duration".into());
        }
        let mut total = Duration::ZERO;
        let mut rest = s;
        while !rest.is_empty() {
            let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
            let (num, tail) = rest.split_at(digits);
            let unit_len = tail.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(tail.len());
            let (unit, tail) = tail.split_at(unit_len);
            let n: f64 = num.parse().map_err(|_| format!("invalid duration {s:?}"))?;
            let scale = match unit {
                "ns" => 1e-9,
                "us" | "µs" => 1e-6,
                "ms" => 1e-3,
                "s" => 1.0,
                "m" => 60.0,
                "h" => 3600.0,
                _ => return Err(format!("invalid duration {s:?}: use a unit of ns, us, ms, s, m, h")),
            };
            total += Duration::from_secs_f64(n * scale);
            rest = tail;
        }
        Ok(Self(total))
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.is_zero() {
            f.write_str("0s")
        } else if d.subsec_nanos() == 0 {
            let s = d.as_secs();
            if s.is_multiple_of(3600) {
                write!(f, "{}h", s / 3600)
            } else if s.is_multiple_of(60) {
                write!(f, "{}m", s / 60)
            } else {
                write!(f, "{s}s")
            }
        } else {
            write!(f, "{}ms", d.as_millis())
        }
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Seconds(u64),
        }
        match Raw::deserialize(d)? {
            Raw::Text(s) => Dur::parse(&s).map_err(serde::de::Error::custom),
            Raw::Seconds(n) => Ok(Dur::secs(n)),
        }
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Config {
    /// Client-facing HTTP server (WebSocket, HTTP API, health, metrics).
    pub http_server: HttpServer,
    /// Logging.
    pub log: Log,
    /// Which engine runs brokerage, history and presence.
    pub engine: Engine,
    /// Connection-level settings.
    pub client: ClientConfig,
    /// Channels and namespaces.
    pub channel: ChannelConfig,
    /// Server HTTP API.
    pub http_api: HttpApi,
    /// Bidirectional WebSocket transport.
    pub websocket: WebSocketConfig,
    /// HTTP-streaming transport (bidirectional emulation). On by default, so browsers
    /// whose network blocks UDP and WebSocket still connect.
    pub http_stream: StreamTransport,
    /// SSE transport (bidirectional emulation). On by default, as `http_stream`.
    pub sse: StreamTransport,
    /// `POST /emulation`: commands of HTTP-streaming and SSE sessions.
    pub emulation: Emulation,
    /// Unidirectional WebSocket (`/connection/uni_websocket`). Off by default.
    pub uni_websocket: Toggle,
    /// Unidirectional SSE (`/connection/uni_sse`). Off by default.
    pub uni_sse: UniStreamTransport,
    /// Unidirectional HTTP-streaming (`/connection/uni_http_stream`). Off by default.
    pub uni_http_stream: UniStreamTransport,
    /// `/health` endpoint. On by default.
    pub health: OnToggle,
    /// `/metrics` endpoint. On by default.
    pub prometheus: OnToggle,
    /// Graceful shutdown.
    pub shutdown: Shutdown,
    /// WebTransport on the client UDP port (Centrifugo-compatible and native modes). On by default.
    pub webtransport: WebTransportConfig,
    /// The client UDP port: one QUIC endpoint for WebTransport (ALPN `h3`) and raw QUIC
    /// (ALPN `tidewire/1`).
    pub quic: QuicConfig,
    /// Client RPC: routing methods to proxies, the built-in ping.
    pub rpc: RpcConfig,
    /// Named proxies, referred to by `*_proxy_name` (see `crate::proxy`).
    pub proxies: Vec<NamedProxy>,
    /// Demo mode (`demo.enabled`, off by default; `tidewire serve` without a config file
    /// turns it on): the demo page at `/`, `GET /demo/token?user=NAME` minting tokens for
    /// anyone (development only), the namespaces the page needs and a stats ticker.
    pub demo: Toggle,
}

/// Most threads `http_server.threads` may ask for.
pub const MAX_HTTP_THREADS: u16 = 256;

/// `http_server.*`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpServer {
    /// Address to listen on. Default `127.0.0.1`: nothing is exposed until you choose to.
    pub address: String,
    /// TCP port. Default 8000; 0 picks a free port (tests).
    pub port: u16,
    /// The certificate of every TLS listener (the QUIC endpoint and the HTTP/3 API).
    pub tls: TlsConfig,
    /// The server API over HTTP/3 on its own UDP port.
    pub http3: Http3Config,
    /// Longest a TCP connection may take to send a request's headers: from accept for
    /// the first request (HTTP/1.1 or HTTP/2), from the end of the previous response for
    /// the next HTTP/1.1 one — so it is also how long an idle HTTP/1.1 keep-alive
    /// connection stays open. Default 10s (Centrifugo's `ReadHeaderTimeout`): protects
    /// the fd table from clients that open connections and never finish a request.
    pub header_read_timeout: Dur,
    /// Interval of HTTP/2 keep-alive PINGs; a connection whose peer does not answer one
    /// within the same time is closed. 0 disables. Default 20s: dead peers behind NATs
    /// otherwise hold an fd and a task until TCP gives up, which takes many minutes.
    pub http2_keep_alive_interval: Dur,
    /// Threads of the TCP listener's own runtime (the server API, health, metrics, and
    /// the requests that open client connections), beside the runtime the connections run
    /// on. Default 1: a publish request is served at once instead of waiting behind the
    /// connection tasks the last publications woke. 0: the listener shares the
    /// connections' runtime. SSE and HTTP-streaming bodies are written by the listener's
    /// threads, so a node with many such clients wants more than one.
    pub threads: u16,
}

impl Default for HttpServer {
    fn default() -> Self {
        Self {
            address: "127.0.0.1".into(),
            port: 8000,
            tls: TlsConfig::default(),
            http3: Http3Config::default(),
            header_read_timeout: Dur::secs(10),
            http2_keep_alive_interval: Dur::secs(20),
            threads: 1,
        }
    }
}

/// `http_server.tls.*`: which certificate QUIC and HTTP/3 present.
///
/// Off (the default): a development certificate (ECDSA P-256, self-signed, valid under 14
/// days so browsers accept it through `serverCertificateHashes`) is generated into
/// `dev_dir`, reused while valid and renewed before it expires; its SHA-256 is served at
/// `GET /webtransport/cert-hash`. On: `cert_pem` and `key_pem` are used as they are.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct TlsConfig {
    /// Use `cert_pem`/`key_pem` instead of a development certificate. Default false.
    pub enabled: bool,
    /// Certificate chain: a PEM file path or the PEM text itself.
    pub cert_pem: String,
    /// Private key (PKCS#8, SEC1 or PKCS#1): a PEM file path or the PEM text itself.
    pub key_pem: String,
    /// Where development certificates are kept. Default `certs`.
    pub dev_dir: String,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self { enabled: false, cert_pem: String::new(), key_pem: String::new(), dev_dir: "certs".into() }
    }
}

/// `http_server.http3.*`: the server API (`/api`, `/api/<method>`) over HTTP/3.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Http3Config {
    /// Serve the API over HTTP/3. Default true.
    pub enabled: bool,
    /// UDP port on `http_server.address`. Default: the TCP port + 1000 (9000 for the
    /// default 8000), or 0 (a free port) when `http_server.port` is 0, so that two servers
    /// started with different `--port`s on one host never collide.
    #[serde(deserialize_with = "optional_port")]
    pub port: Option<u16>,
}

impl Default for Http3Config {
    fn default() -> Self {
        Self { enabled: true, port: None }
    }
}

impl Http3Config {
    /// How far above the TCP port the HTTP/3 API listens by default: 8000 → UDP 9000.
    /// The client QUIC endpoint takes the TCP port's own number, so the API needs another.
    pub const PORT_OFFSET: u16 = 1000;

    /// The UDP port to bind, given the HTTP server's TCP port; `None` when the derived
    /// port would pass 65535 (set `http_server.http3.port` then).
    pub fn port_for(&self, http_port: u16) -> Option<u16> {
        match (self.port, http_port) {
            (Some(p), _) => Some(p),
            (None, 0) => Some(0),
            (None, p) => p.checked_add(Self::PORT_OFFSET),
        }
    }
}

/// `webtransport.*`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct WebTransportConfig {
    /// Accept WebTransport sessions (ALPN `h3`) on the client UDP port. Default true.
    pub enabled: bool,
    /// Largest inbound message in bytes, in both modes (a larger one closes with 3501). Default 65,536.
    pub message_size_limit: usize,
}

impl Default for WebTransportConfig {
    fn default() -> Self {
        Self { enabled: true, message_size_limit: 65_536 }
    }
}

/// `quic.*`: the client UDP port and its QUIC limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct QuicConfig {
    /// Accept raw QUIC connections (ALPN `tidewire/1`, native mode). Default true.
    pub enabled: bool,
    /// UDP port on `http_server.address`. Default: the same number as `http_server.port`.
    #[serde(deserialize_with = "optional_port")]
    pub port: Option<u16>,
    /// Also bind the IPv6 counterpart of `http_server.address` (`::1` for `127.0.0.1`,
    /// `::` for `0.0.0.0`) on the same port: Chromium resolves `localhost` to `::1` for
    /// QUIC and does not fall back. Default true.
    pub ipv6: bool,
    /// Open QUIC connections per endpoint; more are refused. Default 10,000.
    pub max_connections: usize,
    /// Bidirectional streams a client may have open at once (the control stream, a
    /// WebTransport CONNECT and its session stream). Default 4: what a session uses plus
    /// spares. quinn sets aside a slot per allowed stream in every connection up front
    /// (8 + 8 cost an idle connection about 0.4 KB more than 4 + 4, measured).
    pub max_bidi_streams: u32,
    /// Unidirectional streams a client may have open at once (HTTP/3 control and QPACK
    /// streams: 3). Default 4, for the same reason.
    pub max_uni_streams: u32,
    /// Bytes a peer may send on one stream before we read it (flow control). Default 256 KiB.
    pub stream_receive_window: u32,
    /// A connection silent this long is closed. Default 30s.
    pub idle_timeout: Dur,
    /// Interval of QUIC keep-alive pings from the server. Default 10s.
    pub keep_alive_interval: Dur,
    /// Time a client has after the handshake to open its control (or WebTransport) stream
    /// before the session is closed. Default 10s (what Centrifugo allows).
    pub stream_accept_timeout: Dur,
}

impl Default for QuicConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            port: None,
            ipv6: true,
            max_connections: 10_000,
            max_bidi_streams: 4,
            max_uni_streams: 4,
            stream_receive_window: 256 * 1024,
            idle_timeout: Dur::secs(30),
            keep_alive_interval: Dur::secs(10),
            stream_accept_timeout: Dur::secs(10),
        }
    }
}

/// An optional port written as a number or (from the environment) as text.
fn optional_port<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(u16),
        Text(String),
    }
    match Option::<Raw>::deserialize(d)? {
        None => Ok(None),
        Some(Raw::Number(n)) => Ok(Some(n)),
        Some(Raw::Text(t)) if t.is_empty() => Ok(None),
        Some(Raw::Text(t)) => t.parse().map(Some).map_err(|_| serde::de::Error::custom(format!("invalid port {t:?}"))),
    }
}

impl QuicConfig {
    /// The UDP port to bind, given the HTTP server's TCP port.
    pub fn port_for(&self, http_port: u16) -> u16 {
        self.port.unwrap_or(http_port)
    }
}

/// `log.*`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Log {
    /// `trace`, `debug`, `info`, `warn`, `error` or a tracing filter. Default `info`.
    pub level: String,
}

impl Default for Log {
    fn default() -> Self {
        Self { level: "info".into() }
    }
}

/// `engine.*`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Engine {
    /// `memory` (default, single node) or `redis` (several nodes sharing channels,
    /// history and presence through Redis; see `engine.redis`).
    #[serde(rename = "type")]
    pub kind: String,
    /// The Redis engine's connection settings (read when `type = "redis"`).
    pub redis: RedisEngine,
}

impl Default for Engine {
    fn default() -> Self {
        Self { kind: "memory".into(), redis: RedisEngine::default() }
    }
}

/// Keys that verify connection or subscription JWTs.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct TokenConfig {
    /// HMAC secret for HS256/384/512. Generated and printed at start when no key is set.
    pub hmac_secret_key: String,
    /// RSA public key (PEM) for RS256/384/512.
    pub rsa_public_key: String,
    /// ECDSA public key (PEM) for ES256/384.
    pub ecdsa_public_key: String,
    /// Required `aud` claim (checked only when set).
    pub audience: String,
    /// Required `iss` claim (checked only when set).
    pub issuer: String,
}

impl TokenConfig {
    /// Whether any verification key is set.
    pub fn has_key(&self) -> bool {
        !(self.hmac_secret_key.is_empty() && self.rsa_public_key.is_empty() && self.ecdsa_public_key.is_empty())
    }
}

/// `client.subscription_token.*`: a separate verifier for subscription tokens.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct SubscriptionTokenConfig {
    /// Use these keys instead of `client.token` for subscription tokens. Default false.
    pub enabled: bool,
    /// The keys.
    #[serde(flatten)]
    pub token: TokenConfig,
}

/// `client.*`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ClientConfig {
    /// Connection token verification.
    pub token: TokenConfig,
    /// Subscription token verification (defaults to `token`).
    pub subscription_token: SubscriptionTokenConfig,
    /// Origins allowed to open browser connections (`*` wildcards allowed). Empty rejects
    /// any request that carries an `Origin` header, as Centrifugo does.
    pub allowed_origins: Vec<String>,
    /// Development only: accept connections without tokens and allow every channel
    /// action. Logged loudly at start.
    pub insecure: bool,
    /// Accept connections without a token as anonymous users. Default false.
    pub allow_anonymous_connect_without_token: bool,
    /// Reject connection tokens with an empty `sub`. Default false.
    pub disallow_anonymous_connection_tokens: bool,
    /// Interval of server pings. Default 25s.
    pub ping_interval: Dur,
    /// How long a client may take to answer a ping; 0 disables pongs. Default 8s.
    pub pong_timeout: Dur,
    /// Bytes a connection may have queued before it is dropped as slow (3008). Default 1 MiB:
    /// bounds the memory one stalled reader can pin.
    pub queue_max_size: usize,
    /// Subscriptions per connection. Default 128.
    pub channel_limit: usize,
    /// Time to send `connect` after opening a connection (else 3502). Default 10s.
    pub stale_close_delay: Dur,
    /// Grace after the connection token's expiry before 3005. Default 25s.
    pub expired_close_delay: Dur,
    /// Grace after a subscription token's expiry before unsubscribing (2501). Default 25s.
    pub expired_sub_close_delay: Dur,
    /// Cap on publications one history call returns. Default 300.
    pub history_max_publication_limit: usize,
    /// Cap on publications one recovery returns. Default 300.
    pub recovery_max_publication_limit: usize,
    /// Connections per user on this node; 0 = unlimited. Default 0.
    pub user_connection_limit: usize,
    /// Client connections (WebSocket, SSE, HTTP-stream, WebTransport, QUIC) on this node;
    /// 0 = unlimited. Default: the process's open-file soft limit minus a 5 % reserve
    /// (64 to 1,024 descriptors; see `fd_limit.rs`), so clients cannot take the fds that
    /// `/health`, the API and the listeners need; 0 when that limit is unknown.
    pub connection_limit: usize,
    /// Interval at which connections refresh their presence. Default 27s.
    pub presence_update_interval: Dur,
    /// Connect and refresh proxies (`client.proxy.connect`, `client.proxy.refresh`).
    pub proxy: ClientProxies,
    /// Every connection with a user subscribed server-side to its personal channel.
    pub subscribe_to_user_personal_channel: PersonalChannel,
}

/// `client.subscribe_to_user_personal_channel.*` (Centrifugo's keys): each connection with
/// a non-empty user is subscribed server-side to `#<user>`, or `<namespace>:#<user>`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct PersonalChannel {
    /// Subscribe every identified connection to its personal channel. Default false.
    pub enabled: bool,
    /// Namespace of the personal channel (empty: channels without namespace).
    pub personal_channel_namespace: String,
    /// Keep one connection per user: a new one closes the user's others with 3504 (found
    /// through presence in the personal channel, which needs `presence` on). Default false.
    pub single_connection: bool,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            token: TokenConfig::default(),
            subscription_token: SubscriptionTokenConfig::default(),
            allowed_origins: Vec::new(),
            insecure: false,
            allow_anonymous_connect_without_token: false,
            disallow_anonymous_connection_tokens: false,
            ping_interval: Dur::secs(25),
            pong_timeout: Dur::secs(8),
            queue_max_size: 1_048_576,
            channel_limit: 128,
            stale_close_delay: Dur::secs(10),
            expired_close_delay: Dur::secs(25),
            expired_sub_close_delay: Dur::secs(25),
            history_max_publication_limit: 300,
            recovery_max_publication_limit: 300,
            user_connection_limit: 0,
            connection_limit: crate::fd_limit::default_connection_limit(),
            presence_update_interval: Dur::secs(27),
            proxy: ClientProxies::default(),
            subscribe_to_user_personal_channel: PersonalChannel::default(),
        }
    }
}

/// Options of a namespace (or of channels without one). All off by default.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(default)]
pub struct ChannelOptions {
    /// Keep online presence.
    pub presence: bool,
    /// Emit join/leave events (pushed to subscribers that ask for them).
    pub join_leave: bool,
    /// Push join/leave to every subscriber.
    pub force_push_join_leave: bool,
    /// Publications kept in history (history needs both size and ttl > 0).
    pub history_size: usize,
    /// How long history is kept.
    pub history_ttl: Dur,
    /// How long the stream's offset/epoch live without publications (default `channel.history_meta_ttl`).
    pub history_meta_ttl: Option<Dur>,
    /// Always check stream positions.
    pub force_positioning: bool,
    /// Let clients ask for positioning.
    pub allow_positioning: bool,
    /// Always make subscriptions recoverable.
    pub force_recovery: bool,
    /// Let clients ask for recovery.
    pub allow_recovery: bool,
    /// `stream` (default) or `cache` (only the latest publication).
    pub force_recovery_mode: String,
    /// Cache mode: every subscribe is cache-recovered, also when the client does not ask
    /// (`recover: false`), so a new subscriber gets the latest publication. Needs
    /// `force_recovery` and `force_recovery_mode = "cache"` (as in Centrifugo v6.8.3).
    pub auto_cache_recover: bool,
    /// Delta compression types a subscriber may ask for (`delta` in its subscribe
    /// request): only `"fossil"` exists; empty (the default) refuses every request with
    /// 107, as Centrifugo does. Negotiated only for positioned subscriptions (history
    /// with `force_positioning`/`allow_positioning` or recovery); others get full data.
    pub allowed_delta_types: Vec<String>,
    /// Every publication in the namespace is delta-eligible, as if published with the
    /// API's `delta: true`.
    pub delta_publish: bool,
    /// Subscribe without a token (authenticated users).
    pub allow_subscribe_for_client: bool,
    /// … and anonymous ones too.
    pub allow_subscribe_for_anonymous: bool,
    /// Publish when subscribed.
    pub allow_publish_for_subscriber: bool,
    /// Publish as any authenticated client.
    pub allow_publish_for_client: bool,
    /// … and as anonymous clients.
    pub allow_publish_for_anonymous: bool,
    /// History for subscribers.
    pub allow_history_for_subscriber: bool,
    /// History for any authenticated client.
    pub allow_history_for_client: bool,
    /// … and anonymous ones.
    pub allow_history_for_anonymous: bool,
    /// Presence for subscribers.
    pub allow_presence_for_subscriber: bool,
    /// Presence for any authenticated client.
    pub allow_presence_for_client: bool,
    /// … and anonymous ones.
    pub allow_presence_for_anonymous: bool,
    /// Allow `#`-limited channels (`dialog#1,2`).
    pub allow_user_limited_channels: bool,
    /// Regex the channel name (after `ns:`) must match for client-side subscribes.
    pub channel_regex: String,
    /// Tidewire: `stream` (default, every publication) or `datagram` (latest value over QUIC datagrams).
    pub delivery: String,
    /// Coalescing window (Centrifugo PRO's key): a connection holds this namespace's
    /// publications up to this long to send more of them per frame and write. Trades
    /// latency for throughput; 0 (the default) sends at once. At most 1 s.
    pub batch_max_delay: Dur,
    /// With `batch_max_delay`: send as soon as this many messages are held (0: no count
    /// limit, the delay alone decides).
    pub batch_max_size: usize,
    /// Ask the subscribe proxy whether a client may subscribe (instead of the `allow_*`
    /// options; a subscription token still wins).
    pub subscribe_proxy_enabled: bool,
    /// Which proxy: a `proxies[]` name, or `default` (`channel.proxy.subscribe`) when empty.
    pub subscribe_proxy_name: String,
    /// Ask the publish proxy whether a client may publish (it may rewrite the data).
    pub publish_proxy_enabled: bool,
    /// Which proxy (`default`: `channel.proxy.publish`).
    pub publish_proxy_name: String,
    /// Ask the sub_refresh proxy when a subscription's `expire_at` comes.
    pub sub_refresh_proxy_enabled: bool,
    /// Which proxy (`default`: `channel.proxy.sub_refresh`).
    pub sub_refresh_proxy_name: String,
}

/// One entry of `channel.namespaces`.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(default)]
pub struct Namespace {
    /// Name: `^[-a-zA-Z0-9_]{2,}$`.
    pub name: String,
    /// Its options.
    #[serde(flatten)]
    pub options: ChannelOptions,
}

/// `channel.*`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ChannelConfig {
    /// Longest channel name in bytes. Default 255.
    pub max_length: usize,
    /// Prefix of private channels (need a subscription token). Default `$`.
    pub private_prefix: String,
    /// Separates namespace and name. Default `:`.
    pub namespace_boundary: String,
    /// Starts the user list of user-limited channels. Default `#`.
    pub user_boundary: String,
    /// Separates users in that list. Default `,`.
    pub user_separator: String,
    /// Default for `history_meta_ttl`. Default 720h.
    pub history_meta_ttl: Dur,
    /// Options of channels without a namespace.
    pub without_namespace: ChannelOptions,
    /// Namespaces.
    pub namespaces: Vec<Namespace>,
    /// The channel proxies namespaces call `default`.
    pub proxy: ChannelProxies,
}

impl Default for ChannelConfig {
    fn default() -> Self {
        Self {
            max_length: 255,
            private_prefix: "$".into(),
            namespace_boundary: ":".into(),
            user_boundary: "#".into(),
            user_separator: ",".into(),
            history_meta_ttl: Dur::secs(720 * 3600),
            without_namespace: ChannelOptions::default(),
            namespaces: Vec::new(),
            proxy: ChannelProxies::default(),
        }
    }
}

/// `http_api.*`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpApi {
    /// API key. Generated and printed at start when empty and not insecure.
    pub key: String,
    /// Turn API key checks off (development only).
    pub insecure: bool,
    /// Largest request body in bytes (413 above). Default 1 MiB.
    pub max_request_body_size: usize,
    /// `""` (errors in the body, HTTP 200) or `transport` (HTTP status codes).
    pub error_mode: String,
}

impl Default for HttpApi {
    fn default() -> Self {
        Self { key: String::new(), insecure: false, max_request_body_size: 1_048_576, error_mode: String::new() }
    }
}

/// `websocket.*`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct WebSocketConfig {
    /// Largest inbound message in bytes; a larger one closes the connection with 1009. Default 65,536.
    pub message_size_limit: usize,
    /// How long one write may take before the connection is dropped (3009). Default 1s.
    pub write_timeout: Dur,
}

impl Default for WebSocketConfig {
    fn default() -> Self {
        Self { message_size_limit: 65_536, write_timeout: Dur::secs(1) }
    }
}

/// An HTTP streaming transport (on by default).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamTransport {
    /// On or off.
    pub enabled: bool,
    /// Largest connect request body in bytes (413 above). Default 65,536.
    pub max_request_body_size: usize,
}

impl Default for StreamTransport {
    fn default() -> Self {
        Self { enabled: true, max_request_body_size: 65_536 }
    }
}

/// A unidirectional HTTP streaming transport (off by default).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct UniStreamTransport {
    /// On or off.
    pub enabled: bool,
    /// Largest connect request body in bytes (413 above). Default 65,536.
    pub max_request_body_size: usize,
}

impl Default for UniStreamTransport {
    fn default() -> Self {
        Self { enabled: false, max_request_body_size: 65_536 }
    }
}

/// `emulation.*`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Emulation {
    /// Largest `/emulation` body in bytes (413 above). Default 65,536.
    pub max_request_body_size: usize,
}

impl Default for Emulation {
    fn default() -> Self {
        Self { max_request_body_size: 65_536 }
    }
}

/// A block that only switches something on (off by default).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Toggle {
    /// On or off.
    pub enabled: bool,
}

/// A block that only switches something off (on by default).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct OnToggle {
    /// On or off.
    pub enabled: bool,
}

impl Default for OnToggle {
    fn default() -> Self {
        Self { enabled: true }
    }
}

/// `shutdown.*`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Shutdown {
    /// Longest a graceful shutdown may take. Default 30s.
    pub timeout: Dur,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self { timeout: Dur::secs(30) }
    }
}

/// Environment variable prefix for overrides (`TIDEWIRE_HTTP_API_KEY` → `http_api.key`).
pub const ENV_PREFIX: &str = "TIDEWIRE_";

/// The result of loading: the config and the keys it did not recognise.
#[derive(Debug)]
pub struct Loaded {
    /// The typed configuration.
    pub config: Config,
    /// Dotted paths of keys that Tidewire does not support (warned about at start).
    pub unknown_keys: Vec<String>,
}

impl Loaded {
    /// The start-up warning's lines: each unsupported key (a dotted path, or a
    /// `CENTRIFUGO_*` variable that names no key) with why it is ignored, when known.
    pub fn warnings(&self) -> Vec<String> {
        self.unknown_keys
            .iter()
            .map(|key| match unsupported::reason(key) {
                Some(why) => format!("{key} ({why})"),
                None => key.clone(),
            })
            .collect()
    }
}

impl Config {
    /// Loads a file (TOML, or JSON when it ends in `.json` or starts with `{`), applies
    /// `TIDEWIRE_*` and Centrifugo's `CENTRIFUGO_*` variables from `env` (see `env.rs`),
    /// and validates.
    pub fn load(path: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Loaded, ConfigError> {
        let file_value = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
                parse_text(&text, path.extension().is_some_and(|e| e == "json"))
                    .map_err(|message| ConfigError::Parse { path: path.display().to_string(), message })?
            }
            None => Value::Object(Default::default()),
        };
        Self::from_value(file_value, env)
    }

    /// Parses config text (TOML or JSON) with no environment overrides.
    pub fn from_text(text: &str) -> Result<Loaded, ConfigError> {
        let value = parse_text(text, false)
            .map_err(|message| ConfigError::Parse { path: "<config>".into(), message })?;
        Self::from_value(value, std::iter::empty())
    }

    fn from_value(mut value: Value, env: impl IntoIterator<Item = (String, String)>) -> Result<Loaded, ConfigError> {
        let v5 = v5::keys(&value);
        if !v5.is_empty() {
            return Err(ConfigError::V5Keys(v5));
        }
        let unknown_env = env::apply(&mut value, env)?;
        let config: Config = serde_path_to_error::deserialize(&value).map_err(|e| {
            let key = e.path().to_string();
            ConfigError::invalid(key, e.into_inner().to_string())
        })?;
        let known = serde_json::to_value(&config).map_err(|e| ConfigError::invalid("", e.to_string()))?;
        let mut unknown_keys = Vec::new();
        collect_unknown(&value, &known, "", &mut unknown_keys);
        unknown_keys.extend(unknown_env);
        config.validate()?;
        Ok(Loaded { config, unknown_keys })
    }

    /// Checks values serde cannot: names, regexes, combinations.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let name_ok = |n: &str| n.len() >= 2 && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        let mut seen = std::collections::HashSet::new();
        for (i, ns) in self.channel.namespaces.iter().enumerate() {
            let key = format!("channel.namespaces[{i}]");
            if !name_ok(&ns.name) {
                return Err(ConfigError::invalid(
                    format!("{key}.name"),
                    format!("{:?} must match ^[-a-zA-Z0-9_]{{2,}}$", ns.name),
                ));
            }
            if !seen.insert(ns.name.as_str()) {
                return Err(ConfigError::invalid(format!("{key}.name"), format!("duplicate namespace {:?}", ns.name)));
            }
            ns.options.validate(&key)?;
        }
        self.channel.without_namespace.validate("channel.without_namespace")?;
        let personal = &self.client.subscribe_to_user_personal_channel;
        let personal_options = if personal.personal_channel_namespace.is_empty() {
            Some(&self.channel.without_namespace)
        } else {
            self.channel.namespaces.iter().find(|n| n.name == personal.personal_channel_namespace).map(|n| &n.options)
        };
        if personal.enabled && personal_options.is_none() {
            return Err(ConfigError::invalid(
                "client.subscribe_to_user_personal_channel.personal_channel_namespace",
                format!("no namespace {:?} in channel.namespaces", personal.personal_channel_namespace),
            ));
        }
        if personal.enabled && personal.single_connection && !personal_options.is_some_and(|o| o.presence) {
            return Err(ConfigError::invalid(
                "client.subscribe_to_user_personal_channel.single_connection",
                "needs presence on in the personal channel's namespace",
            ));
        }
        let c = &self.client;
        if !c.pong_timeout.0.is_zero() && c.ping_interval <= c.pong_timeout {
            return Err(ConfigError::invalid("client.ping_interval", "must be longer than client.pong_timeout"));
        }
        if c.ping_interval.0.is_zero() {
            return Err(ConfigError::invalid("client.ping_interval", "must be greater than 0"));
        }
        if c.queue_max_size == 0 {
            return Err(ConfigError::invalid("client.queue_max_size", "must be greater than 0"));
        }
        if self.websocket.message_size_limit == 0 {
            return Err(ConfigError::invalid("websocket.message_size_limit", "must be greater than 0"));
        }
        if self.webtransport.message_size_limit == 0 {
            return Err(ConfigError::invalid("webtransport.message_size_limit", "must be greater than 0"));
        }
        let tls = &self.http_server.tls;
        if tls.enabled && (tls.cert_pem.is_empty() || tls.key_pem.is_empty()) {
            return Err(ConfigError::invalid("http_server.tls.cert_pem", "tls.enabled needs both cert_pem and key_pem"));
        }
        if self.quic.max_bidi_streams == 0 {
            return Err(ConfigError::invalid("quic.max_bidi_streams", "must be greater than 0"));
        }
        if self.quic.max_uni_streams < 3 {
            return Err(ConfigError::invalid("quic.max_uni_streams", "must be at least 3 (HTTP/3 opens 3)"));
        }
        if self.http_server.header_read_timeout.0.is_zero() {
            return Err(ConfigError::invalid("http_server.header_read_timeout", "must be greater than 0"));
        }
        if self.http_server.threads > MAX_HTTP_THREADS {
            return Err(ConfigError::invalid("http_server.threads", format!("must be at most {MAX_HTTP_THREADS}")));
        }
        if self.http_api.max_request_body_size == 0 {
            return Err(ConfigError::invalid("http_api.max_request_body_size", "must be greater than 0"));
        }
        if !matches!(self.http_api.error_mode.as_str(), "" | "transport") {
            return Err(ConfigError::invalid("http_api.error_mode", "must be \"\" or \"transport\""));
        }
        match self.engine.kind.as_str() {
            "memory" => {}
            "redis" => self.engine.redis.validate()?,
            other => {
                return Err(ConfigError::invalid("engine.type", format!("{other:?} is not supported; use \"memory\" or \"redis\"")));
            }
        }
        if self.channel.max_length == 0 {
            return Err(ConfigError::invalid("channel.max_length", "must be greater than 0"));
        }
        for (key, t) in [("client.token", &c.token), ("client.subscription_token", &c.subscription_token.token)] {
            for (name, pem) in [("rsa_public_key", &t.rsa_public_key), ("ecdsa_public_key", &t.ecdsa_public_key)] {
                if !pem.is_empty() && !pem.contains("-----BEGIN") {
                    return Err(ConfigError::invalid(format!("{key}.{name}"), "must be a PEM public key"));
                }
            }
        }
        Ok(())
    }
}

/// Longest coalescing window: past it, a "batch" is a stall.
const MAX_BATCH_DELAY: std::time::Duration = std::time::Duration::from_secs(1);

impl ChannelOptions {
    fn validate(&self, key: &str) -> Result<(), ConfigError> {
        if (self.history_size > 0) == self.history_ttl.0.is_zero() {
            return Err(ConfigError::invalid(
                format!("{key}.history_size"),
                "history needs both history_size and history_ttl greater than 0",
            ));
        }
        if !self.channel_regex.is_empty() {
            regex::Regex::new(&self.channel_regex)
                .map_err(|e| ConfigError::invalid(format!("{key}.channel_regex"), e.to_string()))?;
        }
        if !matches!(self.force_recovery_mode.as_str(), "" | "stream" | "cache") {
            return Err(ConfigError::invalid(format!("{key}.force_recovery_mode"), "must be \"stream\" or \"cache\""));
        }
        if self.auto_cache_recover && !(self.force_recovery && self.force_recovery_mode == "cache") {
            return Err(ConfigError::invalid(
                format!("{key}.auto_cache_recover"),
                "needs force_recovery and force_recovery_mode = \"cache\"",
            ));
        }
        if let Some(bad) = self.allowed_delta_types.iter().find(|t| *t != "fossil") {
            return Err(ConfigError::invalid(format!("{key}.allowed_delta_types"), format!("{bad:?}: only \"fossil\" exists")));
        }
        if !matches!(self.delivery.as_str(), "" | "stream" | "datagram") {
            return Err(ConfigError::invalid(format!("{key}.delivery"), "must be \"stream\" or \"datagram\""));
        }
        if self.batch_max_delay.0 > MAX_BATCH_DELAY {
            return Err(ConfigError::invalid(format!("{key}.batch_max_delay"), "must be at most 1s"));
        }
        Ok(())
    }

    /// Whether history (and so offsets and epochs) is kept.
    pub fn history_enabled(&self) -> bool {
        self.history_size > 0 && !self.history_ttl.0.is_zero()
    }
}

fn parse_text(text: &str, json: bool) -> Result<Value, String> {
    if json || text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|e| e.to_string())
    } else {
        let v: toml::Value = toml::from_str(text).map_err(|e| e.to_string())?;
        serde_json::to_value(v).map_err(|e| e.to_string())
    }
}

fn collect_unknown(input: &Value, known: &Value, prefix: &str, out: &mut Vec<String>) {
    match (input, known) {
        (Value::Object(i), Value::Object(k)) => {
            for (key, child) in i {
                let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                match k.get(key) {
                    Some(known_child) => collect_unknown(child, known_child, &path, out),
                    None => out.push(path),
                }
            }
        }
        (Value::Array(i), Value::Array(k)) => {
            for (n, (ic, kc)) in i.iter().zip(k).enumerate() {
                collect_unknown(ic, kc, &format!("{prefix}[{n}]"), out);
            }
        }
        _ => {}
    }
}

/// A commented TOML config with fresh random secrets (`tidewire genconfig`).
pub fn generate_toml(hmac_secret: &str, api_key: &str) -> String {
    format!(
        r#"# Tidewire configuration. Keys follow Centrifugo v6 names where the concept is shared.
# Every key can be overridden by an environment variable: TIDEWIRE_ + the dotted path in
# upper case with `_` for `.`, e.g. TIDEWIRE_HTTP_SERVER_PORT=9001.

[http_server]
# Address and TCP port of the client-facing HTTP server (WebSocket, API, health, metrics).
address = "127.0.0.1"
port = 8000

[log]
# trace, debug, info, warn or error.
level = "info"

[client]
# Origins allowed to connect from browsers (wildcards with *). Empty rejects any request
# carrying an Origin header; Node and native clients send none.
allowed_origins = ["http://localhost:8000", "http://127.0.0.1:8000"]
# Bytes queued per connection before it is dropped as slow (disconnect 3008).
queue_max_size = 1048576
# Subscriptions per connection.
channel_limit = 128
ping_interval = "25s"
pong_timeout = "8s"

[client.token]
# HMAC secret that signs connection and subscription JWTs (HS256/384/512).
# Mint a token with: tidewire token --config THIS_FILE --user 42
hmac_secret_key = "{hmac_secret}"

[http_api]
# Backends call POST /api/<method> with the header `X-API-Key: <key>`.
key = "{api_key}"
# Largest API request body in bytes (HTTP 413 above it).
max_request_body_size = 1048576

[websocket]
# Largest inbound WebSocket message in bytes (closed with 1009 above it).
message_size_limit = 65536

[channel.without_namespace]
# Options for channels without a "namespace:" prefix.
allow_subscribe_for_client = true
allow_publish_for_subscriber = false

# A namespace: channels named "chat:<anything>".
[[channel.namespaces]]
name = "chat"
allow_subscribe_for_client = true
allow_publish_for_subscriber = true

[shutdown]
# Longest a graceful shutdown (SIGINT/SIGTERM) may take.
timeout = "30s"
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_no_file() {
        let loaded = Config::load(None, std::iter::empty()).expect("defaults load");
        assert_eq!(loaded.config.http_server.port, 8000);
        assert_eq!(loaded.config.client.channel_limit, 128);
        assert!(loaded.unknown_keys.is_empty());
    }

    #[test]
    fn coalescing_keys_are_read_and_bounded() {
        let text = "[[channel.namespaces]]\nname = \"feed\"\nbatch_max_delay = \"20ms\"\nbatch_max_size = 50\n";
        let loaded = Config::from_text(text).expect("valid");
        assert!(loaded.unknown_keys.is_empty(), "Centrifugo PRO's names are ours: {:?}", loaded.unknown_keys);
        let ns = &loaded.config.channel.namespaces[0].options;
        assert_eq!((ns.batch_max_delay.0, ns.batch_max_size), (std::time::Duration::from_millis(20), 50));
        assert_eq!(ChannelOptions::default().batch_max_delay.0, std::time::Duration::ZERO, "off by default");
        let err = Config::from_text("[channel.without_namespace]\nbatch_max_delay = \"2s\"\n").expect_err("too long");
        assert!(err.to_string().contains("channel.without_namespace.batch_max_delay"), "{err}");
    }

    #[test]
    fn the_http3_port_follows_the_tcp_port() {
        let h3 = Http3Config::default();
        assert_eq!(h3.port_for(8000), Some(9000));
        assert_eq!(h3.port_for(8100), Some(9100), "a second server on --port 8100 does not clash on 9000");
        assert_eq!(h3.port_for(0), Some(0));
        assert_eq!(h3.port_for(65000), None, "past 65535 the key must be set");
        assert_eq!(Http3Config { port: Some(7443), ..h3 }.port_for(8000), Some(7443));
    }

    #[test]
    fn durations_parse_go_style() {
        assert_eq!(Dur::parse("25s"), Ok(Dur::secs(25)));
        assert_eq!(Dur::parse("1m30s"), Ok(Dur::secs(90)));
        assert_eq!(Dur::parse("720h"), Ok(Dur::secs(720 * 3600)));
        assert_eq!(Dur::parse("100ms"), Ok(Dur(Duration::from_millis(100))));
        assert!(Dur::parse("10 parsecs").is_err());
        assert_eq!(Dur::parse(&Dur::secs(90).to_string()), Ok(Dur::secs(90)));
    }

    #[test]
    fn centrifugo_v6_file_loads_and_unknown_keys_are_reported() {
        let text = r#"
            [http_server]
            port = 9001
            [client.token]
            hmac_secret_key = "s"
            [client.proxy.connect]
            enabled = true
            endpoint = "http://127.0.0.1:9/connect"
            grpc = { compression = true }
            [channel.without_namespace]
            allow_subscribe_for_client = true
            [[channel.namespaces]]
            name = "chat"
            presence = true
            subscribe_proxy_enabled = true
            subscribe_stream_proxy_enabled = true
            allowed_delta_types = ["fossil"]
            delta_publish = true
            [admin]
            enabled = true
        "#;
        let loaded = Config::from_text(text).expect("loads");
        assert_eq!(loaded.config.http_server.port, 9001);
        assert!(loaded.config.channel.namespaces[0].options.presence);
        assert!(loaded.config.channel.namespaces[0].options.subscribe_proxy_enabled);
        assert_eq!(loaded.config.channel.namespaces[0].options.allowed_delta_types, ["fossil"]);
        assert!(loaded.config.channel.namespaces[0].options.delta_publish);
        assert!(loaded.config.client.proxy.connect.enabled);
        assert_eq!(loaded.config.client.proxy.connect.proxy.timeout, Dur::secs(1));
        assert_eq!(
            loaded.unknown_keys,
            vec!["admin", "channel.namespaces[0].subscribe_stream_proxy_enabled", "client.proxy.connect.grpc"]
        );
    }

    #[test]
    fn json_config_loads() {
        let loaded = Config::from_text(r#"{"http_api":{"key":"k"},"client":{"allowed_origins":["*"]}}"#).expect("loads");
        assert_eq!(loaded.config.http_api.key, "k");
    }

    #[test]
    fn bad_values_name_their_key() {
        let err = Config::from_text("[http_server]\nport = \"high\"").expect_err("bad port");
        assert!(err.to_string().starts_with("http_server.port:"), "{err}");
        let err = Config::from_text("[[channel.namespaces]]\nname = \"a\"").expect_err("short name");
        assert!(err.to_string().starts_with("channel.namespaces[0].name:"), "{err}");
        let err = Config::from_text("[client]\nping_interval = \"5s\"\npong_timeout = \"8s\"").expect_err("ping");
        assert!(err.to_string().starts_with("client.ping_interval:"), "{err}");
        let err = Config::from_text("[channel.without_namespace]\nchannel_regex = \"(\"").expect_err("regex");
        assert!(err.to_string().starts_with("channel.without_namespace.channel_regex:"), "{err}");
        let err = Config::from_text("[channel.without_namespace]\nhistory_size = 10").expect_err("ttl");
        assert!(err.to_string().contains("history_ttl"), "{err}");
        let err = Config::from_text("[http_server]\nthreads = 257").expect_err("threads");
        assert!(err.to_string().starts_with("http_server.threads:"), "{err}");
        assert_eq!(Config::from_text("[http_server]\nthreads = 0").expect("0: shared").config.http_server.threads, 0);
        assert_eq!(HttpServer::default().threads, 1, "the listener has a thread of its own by default");
    }

    #[test]
    fn env_overrides_file() {
        let env = [
            ("TIDEWIRE_HTTP_SERVER_PORT".to_string(), "7000".to_string()),
            ("TIDEWIRE_HTTP_API_KEY".into(), "from-env".into()),
            ("TIDEWIRE_CLIENT_ALLOWED_ORIGINS".into(), "http://a http://b".into()),
            ("TIDEWIRE_CLIENT_INSECURE".into(), "true".into()),
            ("TIDEWIRE_CHANNEL_NAMESPACES".into(), r#"[{"name":"ns","presence":true}]"#.into()),
            ("OTHER".into(), "x".into()),
        ];
        let loaded = Config::from_value(serde_json::json!({"http_server":{"port":1}}), env).expect("loads");
        let c = loaded.config;
        assert_eq!(c.http_server.port, 7000);
        assert_eq!(c.http_api.key, "from-env");
        assert_eq!(c.client.allowed_origins, vec!["http://a", "http://b"]);
        assert!(c.client.insecure);
        assert_eq!(c.channel.namespaces[0].name, "ns");
        let err = Config::from_value(Value::Null, [("TIDEWIRE_CLIENT_INSECURE".to_string(), "yes".to_string())])
            .expect_err("bad bool");
        assert!(err.to_string().starts_with("TIDEWIRE_CLIENT_INSECURE"), "{err}");
    }

    #[test]
    fn generated_config_is_valid() {
        let loaded = Config::from_text(&generate_toml("secret", "key")).expect("valid");
        assert!(loaded.unknown_keys.is_empty(), "{:?}", loaded.unknown_keys);
        assert_eq!(loaded.config.client.token.hmac_secret_key, "secret");
    }
}
