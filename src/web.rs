//! The browser side served on the HTTP port: the SDK's ES modules (`GET /tidewire.js` and
//! the modules it imports), and in demo mode the demo page (`GET /`), its token and info
//! routes and the ticker that feeds its live chart.
//!
//! Everything served is embedded at compile time from `web-client/dist/` (built by
//! `npm run build` in `web-client/` and committed), so the binary reads no files at run
//! time and needs no npm. Demo mode (`[demo] enabled`, on when `tidewire serve` runs
//! without a config file) adds the namespaces the page needs when they are not configured
//! (`chat`, `live`), allows the page's own origins, mints HS256 tokens for any user name
//! at `GET /demo/token?user=NAME` — development only — and publishes a small stats sample
//! to the datagram channel `live:stats` every [`TICK`].
//!
//! This room knows the hub, the config and token minting; no transport, no broker.

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use serde::Deserialize;

use crate::config::{ChannelOptions, Config, Dur, Namespace};
use crate::hub::{Hub, PublishRequest};

/// The chat room channel of the demo page.
pub const CHAT_CHANNEL: &str = "chat:lobby";
/// The datagram channel the ticker feeds.
pub const LIVE_CHANNEL: &str = "live:stats";
/// How often the ticker publishes a sample: five a second keeps the chart lively and
/// costs nothing measurable.
pub const TICK: Duration = Duration::from_millis(200);
/// Ticks the messages-per-second figure is averaged over (one second).
const RATE_WINDOW_TICKS: usize = 5;
/// Lifetime of a demo token in seconds (one hour; the SDK fetches a new one before expiry).
pub const TOKEN_TTL_SECS: u64 = 3600;
/// Longest demo user name, in bytes.
const MAX_USER_LEN: usize = 32;
/// Messages the demo chat keeps in history.
const DEMO_HISTORY_SIZE: usize = 50;
/// How long the demo chat keeps history.
const DEMO_HISTORY_TTL: Duration = Duration::from_secs(3600);

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// One embedded file of `web-client/dist/`.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    /// File name in `dist/` (served at `/<name>`).
    pub name: &'static str,
    /// Its Content-Type.
    pub content_type: &'static str,
    /// Its bytes.
    pub body: &'static [u8],
    /// Part of the demo page (served in demo mode only) rather than the SDK.
    pub demo: bool,
}

macro_rules! asset {
    ($name:literal, $ct:expr, $demo:expr) => {
        Asset {
            name: $name,
            content_type: $ct,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/web-client/dist/", $name)),
            demo: $demo,
        }
    };
}

/// Every file of `web-client/dist/` that browsers load (tests/web_client.rs checks that
/// none is missing). Type declarations (`.d.ts`) are for bundlers and editors, not served.
pub const ASSETS: &[Asset] = &[
    asset!("index.html", HTML, true),
    asset!("demo.css", CSS, true),
    asset!("demo.js", JS, true),
    asset!("tidewire.js", JS, false),
    asset!("backoff.js", JS, false),
    asset!("client.js", JS, false),
    asset!("emitter.js", JS, false),
    asset!("native.js", JS, false),
    asset!("position.js", JS, false),
    asset!("postcard.js", JS, false),
    asset!("protocol.js", JS, false),
    asset!("sse.js", JS, false),
    asset!("subscription.js", JS, false),
    asset!("transport.js", JS, false),
    asset!("types.js", JS, false),
    asset!("websocket.js", JS, false),
    asset!("webtransport.js", JS, false),
];

/// What the routes need.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// Whether demo mode is on.
    pub demo: bool,
    /// The HMAC secret demo tokens are signed with (empty: no demo tokens).
    pub hmac_secret: String,
    /// The client QUIC port (WebTransport), when that endpoint is on.
    pub quic_port: Option<u16>,
}

impl Ctx {
    /// The routes' settings from the config and the bound QUIC port.
    pub fn new(config: &Config, quic_port: Option<u16>) -> Self {
        Self { demo: config.demo.enabled, hmac_secret: config.client.token.hmac_secret_key.clone(), quic_port }
    }
}

/// The SDK modules, and in demo mode the page and its routes.
pub fn router(ctx: Ctx) -> Router {
    let mut router = Router::new();
    for asset in ASSETS.iter().filter(|a| ctx.demo || !a.demo) {
        let serve = get(move || async move { asset_response(asset) });
        if asset.name == "index.html" {
            router = router.route("/", serve.clone());
        }
        router = router.route(&format!("/{}", asset.name), serve);
    }
    if ctx.demo {
        router = router.route("/demo/token", get(token)).route("/demo/info", get(info));
    }
    router.with_state(ctx)
}

fn asset_response(asset: &Asset) -> Response {
    let mut resp = (StatusCode::OK, Bytes::from_static(asset.body)).into_response();
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    // Embedded files change only with the binary; revalidating keeps upgrades visible.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Pages on other origins may import the SDK as a module (which needs CORS); these are
    // public static files.
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    resp
}

fn json(status: StatusCode, body: &serde_json::Value) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// `GET /demo/token?user=NAME` query.
#[derive(Debug, Deserialize)]
struct TokenQuery {
    user: Option<String>,
}

/// Whether `user` is a name the demo mints tokens for: 1–32 bytes of letters, digits,
/// `-`, `_` and `.`.
pub fn valid_user(user: &str) -> bool {
    !user.is_empty()
        && user.len() <= MAX_USER_LEN
        && user.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// `GET /demo/token?user=NAME` → `{"token": "<HS256 JWT for NAME, 1 h>"}`.
async fn token(State(ctx): State<Ctx>, Query(q): Query<TokenQuery>) -> Response {
    let Some(user) = q.user.filter(|u| valid_user(u)) else {
        let message = "user must be 1-32 letters, digits, '-', '_' or '.'";
        return json(StatusCode::BAD_REQUEST, &serde_json::json!({ "error": message }));
    };
    if ctx.hmac_secret.is_empty() {
        let message = "demo tokens need client.token.hmac_secret_key";
        return json(StatusCode::SERVICE_UNAVAILABLE, &serde_json::json!({ "error": message }));
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let claims = serde_json::json!({"sub": user, "iat": now, "exp": now + TOKEN_TTL_SECS});
    match crate::auth::jwt::mint_hs256(&ctx.hmac_secret, &claims) {
        Ok(token) => json(StatusCode::OK, &serde_json::json!({ "token": token })),
        Err(e) => {
            tracing::error!(error = %e, "cannot mint a demo token");
            json(StatusCode::INTERNAL_SERVER_ERROR, &serde_json::json!({"error": "cannot mint a token"}))
        }
    }
}

/// `GET /demo/info` → where the page's WebTransport goes and which channels it uses.
async fn info(State(ctx): State<Ctx>) -> Response {
    json(StatusCode::OK, &serde_json::json!({"quic_port": ctx.quic_port, "chat": CHAT_CHANNEL, "live": LIVE_CHANNEL}))
}

/// Prepares a config for demo mode: adds the `chat` and `live` namespaces when no
/// namespace has those names, and the page's own origins to `client.allowed_origins`.
/// Returns what it added, for the log.
pub fn apply_demo(config: &mut Config) -> Vec<String> {
    let mut added = Vec::new();
    let has = |config: &Config, name: &str| config.channel.namespaces.iter().any(|n| n.name == name);
    if !has(config, "chat") {
        config.channel.namespaces.push(Namespace {
            name: "chat".into(),
            options: ChannelOptions {
                allow_subscribe_for_client: true,
                allow_publish_for_subscriber: true,
                presence: true,
                join_leave: true,
                force_push_join_leave: true,
                allow_presence_for_subscriber: true,
                allow_history_for_subscriber: true,
                history_size: DEMO_HISTORY_SIZE,
                history_ttl: Dur(DEMO_HISTORY_TTL),
                force_recovery: true,
                ..Default::default()
            },
        });
        added.push("namespace chat (history 50 / 1h, presence, join/leave, recovery)".to_string());
    }
    if !has(config, "live") {
        config.channel.namespaces.push(Namespace {
            name: "live".into(),
            options: ChannelOptions { allow_subscribe_for_client: true, delivery: "datagram".into(), ..Default::default() },
        });
        added.push("namespace live (datagram delivery)".to_string());
    }
    // Port 0 picks a free port at bind time: any port of these hosts is the page's.
    let port = match config.http_server.port {
        0 => "*".to_string(),
        p => p.to_string(),
    };
    for host in ["127.0.0.1", "localhost"] {
        let origin = format!("http://{host}:{port}");
        if !config.client.allowed_origins.contains(&origin) {
            added.push(format!("allowed origin {origin}"));
            config.client.allowed_origins.push(origin);
        }
    }
    added
}

/// Messages written to clients over every transport (replies, pushes, pings, publications):
/// what the demo chart calls messages.
fn messages_sent(hub: &Hub) -> u64 {
    let metrics = hub.metrics();
    crate::metrics::TRANSPORTS.iter().map(|t| metrics.transport(t).messages_sent.load(Ordering::Relaxed)).sum()
}

/// Publishes a stats sample to [`LIVE_CHANNEL`] every [`TICK`] until shutdown:
/// `{"t": <unix ms>, "connections": N, "msgs_per_sec": X}` where X is the messages the
/// server delivered per second over the last second (every tab of the demo adds its share
/// of these samples; chatting makes it jump).
pub async fn run(hub: Hub, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last = messages_sent(&hub);
    let mut window = [0u64; RATE_WINDOW_TICKS];
    let mut slot = 0usize;
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    return;
                }
                continue;
            }
        }
        let now = messages_sent(&hub);
        window[slot] = now.saturating_sub(last);
        slot = (slot + 1) % RATE_WINDOW_TICKS;
        last = now;
        let window_secs = TICK.as_secs_f64() * RATE_WINDOW_TICKS as f64;
        let per_sec = window.iter().sum::<u64>() as f64 / window_secs;
        let t = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let sample = serde_json::json!({"t": t, "connections": hub.num_connections(), "msgs_per_sec": per_sec});
        let req = PublishRequest { channel: LIVE_CHANNEL.into(), data: Bytes::from(sample.to_string()), ..Default::default() };
        if let Err(e) = hub.publish(req).await {
            tracing::debug!(error = %e, "demo ticker publish failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_adds_missing_namespaces_and_origins_once() {
        let mut config = Config::default();
        config.http_server.port = 8000;
        let added = apply_demo(&mut config);
        assert_eq!(added.len(), 4, "{added:?}");
        let chat = config.channel.namespaces.iter().find(|n| n.name == "chat").expect("chat");
        assert!(chat.options.presence && chat.options.join_leave && chat.options.force_recovery);
        assert!(chat.options.history_enabled());
        let live = config.channel.namespaces.iter().find(|n| n.name == "live").expect("live");
        assert_eq!(live.options.delivery, "datagram");
        assert!(config.client.allowed_origins.contains(&"http://127.0.0.1:8000".to_string()));
        assert!(config.client.allowed_origins.contains(&"http://localhost:8000".to_string()));
        assert!(config.validate().is_ok());
        assert!(apply_demo(&mut config).is_empty(), "a second pass adds nothing");
    }

    #[test]
    fn demo_keeps_configured_namespaces_and_uses_a_wildcard_port_for_port_zero() {
        let mut config = Config::default();
        config.http_server.port = 0;
        config.channel.namespaces.push(Namespace { name: "chat".into(), ..Default::default() });
        apply_demo(&mut config);
        let chats: Vec<_> = config.channel.namespaces.iter().filter(|n| n.name == "chat").collect();
        assert_eq!(chats.len(), 1);
        assert!(!chats[0].options.presence, "the configured namespace is left alone");
        assert!(config.client.allowed_origins.contains(&"http://127.0.0.1:*".to_string()));
    }

    #[test]
    fn user_names_are_bounded_and_plain() {
        assert!(valid_user("alice"));
        assert!(valid_user("guest-1234.x_y"));
        assert!(!valid_user(""));
        assert!(!valid_user(&"a".repeat(MAX_USER_LEN + 1)));
        assert!(!valid_user("a b"));
        assert!(!valid_user("<script>"));
    }

    #[test]
    fn every_asset_has_a_body_and_the_page_is_html() {
        for a in ASSETS {
            assert!(!a.body.is_empty(), "{} is empty", a.name);
        }
        let page = ASSETS.iter().find(|a| a.name == "index.html").expect("index.html");
        assert!(page.body.starts_with(b"<!doctype html>"));
    }
}
