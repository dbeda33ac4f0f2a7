//! Tidewire: a real-time messaging server. Backends publish once; Tidewire holds every
//! client connection and delivers to each subscriber of the channel.
//!
//! # Layout
//! - [`protocol`]: the message model and its codecs (Centrifugo JSON). Pure data, no I/O.
//! - [`hub`]: channels, subscriptions, fan-out, the connection index, the [`hub::Broker`] port.
//! - [`broker`]: engines behind that port (memory).
//! - [`session`]: one connection's state machine, sans I/O, driven with `now`.
//! - [`proxy`]: calls to the application backend (connect, refresh, subscribe, publish,
//!   sub_refresh, rpc) over HTTP, as Centrifugo's proxies make them.
//! - [`auth`]: JWT verification.
//! - [`transport`]: moves bytes between sockets and sessions: one connection loop (the
//!   driver) for every transport, each of which is framing only (WebSocket, HTTP-streaming
//!   and SSE; WebTransport and raw QUIC on one UDP port, dispatched by ALPN).
//! - [`tls`]: certificates (configured, or generated development ones) for QUIC and HTTP/3.
//! - [`client`]: a Rust client for the native mode over raw QUIC or WebTransport.
//! - [`api`]: the server HTTP API, one axum service for every HTTP version.
//! - [`web`]: the browser SDK's modules and, in demo mode, the demo page (embedded from
//!   `web-client/dist/`), its token route and stats ticker.
//! - [`config`], [`metrics`]: typed configuration, Prometheus metrics.
//! - [`fd_limit`]: the process's open-file limit and the client connection limit derived from it.
//! - [`log`]: rate limits for warnings the network can trigger once per connection.
//! - [`server`]: the only place that names concrete types and starts long-lived tasks.
//!
//! # Dependency rules (checked by `tests/architecture.rs`)
//! - `protocol` depends on nothing of ours.
//! - `hub` depends on `config`, `metrics` and `protocol` only; it owns the `Broker` trait and `broker` implements it.
//! - `session` depends on `hub`, `protocol`, `auth`, `proxy` (and `config`, `metrics`, `log` for rate-limited lines).
//! - `proxy` depends on `config`, `protocol`, `auth` (override types), `metrics` and `log`; never on `session`, `hub` or a transport.
//! - `transport` and `api` depend on `session`/`hub`/`protocol`, never on `broker`.
//! - Only `server` names concrete brokers and listeners.
//! - `web` depends on `hub`, `config`, `auth` (token minting) and `metrics`; never on a transport or `broker`.
//! - `tls` depends on `config` only; `client` on `protocol` only (it is what an app links).

pub mod api;
pub mod auth;
pub mod broker;
pub mod client;
pub mod config;
pub mod fd_limit;
pub mod hub;
pub mod log;
pub mod metrics;
pub mod protocol;
pub mod proxy;
pub mod server;
pub mod session;
pub mod tls;
pub mod transport;
pub mod web;
