//! Raw QUIC for native and mobile apps (ALPN `tidewire/1`): the native multiplexed mode of
//! `mux.rs` without HTTP/3 or WebTransport framing. The client opens the control stream
//! (the first bidirectional stream); the server opens one unidirectional stream per
//! subscription and sends datagram channels as QUIC datagrams. Connection migration is
//! left on (quinn's default), so a phone moving between networks keeps its session.

use std::sync::atomic::Ordering;

use super::mux;
use crate::protocol::Disconnect;
use crate::session::TransportInfo;

const INFO: TransportInfo = TransportInfo { name: "quic", bidirectional: true, emulation: false };

/// Serves one raw QUIC connection from its handshake to its end.
pub async fn run(ctx: mux::Ctx, connecting: quinn::Connecting) {
    let cfg = ctx.hub.config().clone();
    let timeout = cfg.quic.stream_accept_timeout.0;
    let conn = match tokio::time::timeout(timeout, connecting).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "quic handshake failed");
            return;
        }
        Err(_) => return,
    };
    let limit = cfg.client.connection_limit;
    if ctx.hub.is_shutting_down() || (limit > 0 && ctx.hub.metrics().total_connections() >= limit as i64) {
        let d = if ctx.hub.is_shutting_down() { Disconnect::SHUTDOWN } else { Disconnect::CONNECTION_LIMIT };
        conn.close(quinn::VarInt::from_u32(u32::from(d.code)), d.reason.as_bytes());
        return;
    }
    let metrics = ctx.hub.metrics().clone();
    let tm = metrics.transport(INFO.name);
    tm.accepted.fetch_add(1, Ordering::Relaxed);
    tm.connections.fetch_add(1, Ordering::Relaxed);
    match tokio::time::timeout(timeout, conn.accept_bi()).await {
        Ok(Ok(control)) => mux::run(ctx, conn, control, INFO).await,
        Ok(Err(e)) => tracing::debug!(error = %e, "quic connection ended before its control stream"),
        Err(_) => {
            tracing::debug!("quic connection opened no control stream in time");
            let d = Disconnect::STALE;
            conn.close(quinn::VarInt::from_u32(u32::from(d.code)), d.reason.as_bytes());
        }
    }
    tm.connections.fetch_sub(1, Ordering::Relaxed);
}
