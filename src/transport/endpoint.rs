//! The client UDP port: quinn endpoints (one per address family) whose connections are
//! dispatched by the ALPN they negotiated: `h3` → WebTransport (`webtransport.rs`, through
//! wtransport's `IncomingSessionFuture::with_quic_connecting`), `tidewire/1` → raw QUIC
//! (`quic.rs`). A client offering neither is refused by TLS itself (no_application_protocol)
//! before any of this runs.
//!
//! The QUIC limits (streams per connection, flow-control windows, idle timeout, open
//! connections) are set here, in one place, from `quic.*`.

use std::sync::Arc;
use std::time::Duration;

use super::{mux, quic, webtransport};
use crate::config::Config;

/// ALPN of HTTP/3 (WebTransport sessions).
pub const ALPN_H3: &[u8] = b"h3";
/// ALPN of the native protocol over raw QUIC.
pub const ALPN_NATIVE: &[u8] = b"tidewire/1";

/// Longest a TLS handshake may take before its ALPN is known: a peer that stalls here
/// holds a task and a quinn connection slot, so it is cut off.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connection-level flow-control window as a multiple of the per-stream window: a few
/// streams' worth, so one stream cannot take it all and the total a client can make us
/// buffer stays bounded.
const CONNECTION_WINDOW_STREAMS: u64 = 4;

/// Datagrams received but not yet read, in bytes (64 KiB): clients send few; more are dropped.
const DATAGRAM_RECEIVE_BUFFER_BYTES: usize = 64 * 1024;

/// Datagrams queued for sending, in bytes (256 KiB); when full, quinn drops the oldest,
/// which suits latest-value channels.
const DATAGRAM_SEND_BUFFER_BYTES: usize = 256 * 1024;

/// Why the endpoint could not be configured.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// The TLS config does not suit QUIC (it must allow TLS 1.3).
    #[error("TLS config unusable for QUIC: {0}")]
    Tls(String),
}

/// The quinn transport settings of `quic.*`.
///
/// What an idle connection costs is mostly fixed inside quinn (its connection state, the
/// first block of its event channel, its send buffer) and rustls (packet keys); of these
/// settings only the stream limits allocate per connection (a slot per allowed stream).
/// The flow-control windows and datagram buffers are bounds on what a busy client can
/// make us hold, not allocations: changing them does not move idle memory.
pub fn transport_config(cfg: &Config) -> quinn::TransportConfig {
    let q = &cfg.quic;
    let mut t = quinn::TransportConfig::default();
    t.max_concurrent_bidi_streams(q.max_bidi_streams.into());
    t.max_concurrent_uni_streams(q.max_uni_streams.into());
    t.stream_receive_window(q.stream_receive_window.into());
    t.receive_window(
        (u64::from(q.stream_receive_window) * CONNECTION_WINDOW_STREAMS).try_into().unwrap_or(quinn::VarInt::MAX),
    );
    t.max_idle_timeout(quinn::IdleTimeout::try_from(q.idle_timeout.0).ok());
    t.keep_alive_interval((!q.keep_alive_interval.0.is_zero()).then_some(q.keep_alive_interval.0));
    t.datagram_receive_buffer_size(Some(DATAGRAM_RECEIVE_BUFFER_BYTES));
    t.datagram_send_buffer_size(DATAGRAM_SEND_BUFFER_BYTES);
    t
}

/// A quinn server config for `tls` (which must offer `h3` and/or `tidewire/1`) with the
/// client limits of `quic.*`, or quinn's defaults for the HTTP/3 API (`api`: backends
/// run many requests, each a stream, at once).
pub fn server_config(tls: rustls::ServerConfig, cfg: &Config, api: bool) -> Result<quinn::ServerConfig, EndpointError> {
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls).map_err(|e| EndpointError::Tls(e.to_string()))?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let transport = if api { quinn::TransportConfig::default() } else { transport_config(cfg) };
    server.transport_config(Arc::new(transport));
    // Connection migration stays on (the default): native apps change networks.
    server.migration(true);
    Ok(server)
}

/// Accepts connections on `endpoint` until it is closed, one task each.
pub async fn run(endpoint: quinn::Endpoint, ctx: mux::Ctx) {
    let cfg = ctx.hub.config().clone();
    let max = cfg.quic.max_connections;
    while let Some(incoming) = endpoint.accept().await {
        if endpoint.open_connections() >= max {
            crate::log::limited_warn!("quic.max_connections", max, "quic.max_connections reached; refusing");
            incoming.refuse();
            continue;
        }
        let mut connecting = match incoming.accept() {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "quic accept failed");
                continue;
            }
        };
        let ctx = ctx.clone();
        let (webtransport_on, quic_on) = (cfg.webtransport.enabled, cfg.quic.enabled);
        tokio::spawn(async move {
            let alpn = match tokio::time::timeout(HANDSHAKE_TIMEOUT, connecting.handshake_data()).await {
                Ok(Ok(data)) => data
                    .downcast::<quinn::crypto::rustls::HandshakeData>()
                    .ok()
                    .and_then(|hd| hd.protocol),
                _ => None,
            };
            // Each service's future is boxed: the task then carries the one it runs, not
            // the larger of the two (an idle raw QUIC connection would otherwise pay for
            // WebTransport's handshake states).
            match alpn.as_deref() {
                Some(ALPN_H3) if webtransport_on => {
                    let incoming = wtransport::endpoint::IncomingSessionFuture::with_quic_connecting(connecting);
                    Box::pin(webtransport::run(ctx, incoming)).await;
                }
                Some(ALPN_NATIVE) if quic_on => Box::pin(quic::run(ctx, connecting)).await,
                other => {
                    tracing::debug!(alpn = ?other.map(String::from_utf8_lossy), "quic: no service for this ALPN");
                    if let Ok(conn) = connecting.await {
                        conn.close(quinn::VarInt::from_u32(0x0178), b"no application protocol");
                    }
                }
            }
        });
    }
}

/// The ALPN list to offer given which services are on.
pub fn alpn_protocols(cfg: &Config) -> Vec<&'static [u8]> {
    let mut alpn = Vec::new();
    if cfg.webtransport.enabled {
        alpn.push(ALPN_H3);
    }
    if cfg.quic.enabled {
        alpn.push(ALPN_NATIVE);
    }
    alpn
}
