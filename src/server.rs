//! Builds the running server: the only place that names concrete types (the memory or
//! Redis broker, the TCP listener, the QUIC endpoints and the HTTP/3 listener) and starts
//! long-lived tasks (the HTTP server, the QUIC accept loops, the certificate renewal, the
//! demo ticker). Also owns graceful shutdown:
//! stop accepting, ask every connection to flush and close with 3001, and wait for them
//! up to `shutdown.timeout`.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rand::distr::{Alphanumeric, SampleString};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::broker::{MemoryBroker, RedisBroker};
use crate::config::Config;
use crate::hub::{Broker, Hub};
use crate::metrics::Metrics;
use crate::session::Auth;
use crate::tls::{CertStore, TlsError};
use crate::transport::{endpoint, mux, sse, webtransport, websocket};

/// How often development certificates are checked for renewal: hourly, far more often
/// than their renew-before margin of days.
const CERT_CHECK_INTERVAL: Duration = Duration::from_secs(3600);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A key or setting is unusable.
    #[error("config: {0}")]
    Config(String),
    /// The certificate could not be loaded or generated.
    #[error("certificate: {0}")]
    Tls(#[from] TlsError),
    /// The engine could not be reached.
    #[error("engine: {0}")]
    Engine(String),
    /// The listener could not bind.
    #[error("cannot listen on {addr} (set by {key}): {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The config key that chose the port, so the message says what to change.
        key: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// A runtime or thread a setting asked for could not be made (out of threads or
    /// memory): not a port problem, so not `Bind`.
    #[error("cannot start the {what} (set by {key}): {source}")]
    Runtime {
        /// What was being started.
        what: &'static str,
        /// The config key that asked for it.
        key: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Secrets generated because the config had none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Generated {
    /// A generated `client.token.hmac_secret_key`.
    pub hmac_secret_key: Option<String>,
    /// A generated `http_api.key`.
    pub api_key: Option<String>,
}

/// A random secret of 32 alphanumerics (about 190 bits).
pub fn random_secret() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 32)
}

/// Fills in the secrets a config lacks, so the server is never open by accident.
pub fn fill_secrets(config: &mut Config) -> Generated {
    let mut generated = Generated::default();
    if !config.client.token.has_key() && !config.client.insecure {
        let s = random_secret();
        config.client.token.hmac_secret_key = s.clone();
        generated.hmac_secret_key = Some(s);
    }
    if config.http_api.key.is_empty() && !config.http_api.insecure {
        let k = random_secret();
        config.http_api.key = k.clone();
        generated.api_key = Some(k);
    }
    generated
}

/// A started server.
#[derive(Debug)]
pub struct Running {
    /// Where the HTTP server listens.
    pub http_addr: SocketAddr,
    /// The hub (tests inspect it).
    pub hub: Hub,
    /// Where the client QUIC endpoint listens (WebTransport + raw QUIC), when on.
    pub quic_addr: Option<SocketAddr>,
    /// The IPv6 counterpart of `quic_addr`, when bound.
    pub quic_addr_v6: Option<SocketAddr>,
    /// Where the HTTP/3 API listens, when on.
    pub h3_addr: Option<SocketAddr>,
    /// The certificate of the QUIC listeners, when any is on.
    pub certs: Option<Arc<CertStore>>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Running {
    /// Shuts down gracefully and waits until done.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }

    /// Waits until the server stops (after a shutdown was requested elsewhere).
    pub async fn wait(mut self) {
        let _ = (&mut self.task).await;
    }

    /// Requests shutdown without waiting.
    pub fn request_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts the server on `config` (secrets must be filled in already; see [`fill_secrets`]).
pub async fn start(mut config: Config) -> Result<Running, StartError> {
    if config.demo.enabled {
        let added = crate::web::apply_demo(&mut config);
        tracing::info!(
            added = %added.join("; "),
            "demo mode is ON: demo page at /, tokens for any user at /demo/token (development only; set demo.enabled = false in production)"
        );
    }
    let config = Arc::new(config);
    let metrics = Arc::new(Metrics::default());
    let (proxies, warnings) = crate::proxy::Proxies::from_config(&config, metrics.clone()).map_err(StartError::Config)?;
    for warning in &warnings {
        tracing::warn!("{warning}");
    }
    let auth = Auth::from_config(&config.client).map_err(StartError::Config)?.with_proxies(proxies);
    let broker = engine(&config, metrics.clone()).await?;
    let hub = Hub::new(config.clone(), broker, metrics);
    hub.start();

    // The TCP listener's own threads, if any (`http_server.threads`); connections run here.
    let runtime = if config.http_server.threads > 0 {
        crate::transport::ConnRuntime::on(tokio::runtime::Handle::current())
    } else {
        crate::transport::ConnRuntime::here()
    };
    let ws = websocket::Ctx { hub: hub.clone(), auth: auth.clone(), sockets: websocket_sockets(), runtime: runtime.clone() };
    let mut app = crate::api::router(hub.clone())
        .merge(websocket::router(ws))
        .merge(sse::router(sse::Ctx::new(hub.clone(), auth.clone(), runtime)));

    // --- QUIC: certificate, client endpoint(s), HTTP/3 API ---
    let client_udp = config.webtransport.enabled || config.quic.enabled;
    let h3_on = config.http_server.http3.enabled;
    let certs = if client_udp || h3_on {
        let store = Arc::new(CertStore::from_config(&config.http_server.tls, SystemTime::now())?);
        let cert = store.current();
        if store.is_dev() {
            tracing::info!(sha256 = %cert.sha256_hex(), dir = %config.http_server.tls.dev_dir, "development certificate (pin it with serverCertificateHashes)");
            let hash_store = store.clone();
            app = app.merge(webtransport::cert_hash_router(Arc::new(move || hash_store.current().sha256_hex())));
        }
        Some(store)
    } else {
        None
    };
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let mut client_endpoints = Vec::new();
    let mut h3_endpoint = None;
    if let Some(store) = &certs {
        let cert = store.current();
        if client_udp {
            let alpn = endpoint::alpn_protocols(&config);
            let tls = crate::tls::server_config(&cert, &alpn)?;
            let server = endpoint::server_config(tls, &config, false).map_err(|e| StartError::Config(e.to_string()))?;
            let port = config.quic.port_for(config.http_server.port);
            client_endpoints = bind_udp(&config.http_server.address, port, config.quic.ipv6, &server, "quic.port").await?;
        }
        if h3_on {
            let tls = crate::tls::server_config(&cert, &[endpoint::ALPN_H3])?;
            let server = endpoint::server_config(tls, &config, true).map_err(|e| StartError::Config(e.to_string()))?;
            let port = config.http_server.http3.port_for(config.http_server.port).ok_or_else(|| {
                StartError::Config(format!(
                    "http_server.http3.port: the default (TCP port {} + {}) is over 65535; set it",
                    config.http_server.port,
                    crate::config::Http3Config::PORT_OFFSET
                ))
            })?;
            h3_endpoint = bind_udp(&config.http_server.address, port, false, &server, "http_server.http3.port").await?.into_iter().next();
        }
    }
    let local = |e: &quinn::Endpoint| e.local_addr().ok();
    let quic_addr = client_endpoints.first().and_then(local);
    let quic_addr_v6 = client_endpoints.get(1).and_then(local);
    let h3_addr = h3_endpoint.as_ref().and_then(local);
    // The SDK's modules, and in demo mode the demo page: it needs the bound QUIC port.
    let quic_port = if config.webtransport.enabled { quic_addr.map(|a| a.port()) } else { None };
    app = app.merge(crate::web::router(crate::web::Ctx::new(&config, quic_port)));
    let mux_ctx = mux::Ctx {
        hub: hub.clone(),
        auth: auth.clone(),
        message_size_limit: config.webtransport.message_size_limit,
        shutdown: shutdown_rx,
    };
    for ep in &client_endpoints {
        tokio::spawn(endpoint::run(ep.clone(), mux_ctx.clone()));
    }
    if config.demo.enabled {
        tokio::spawn(crate::web::run(hub.clone(), mux_ctx.shutdown.clone()));
    }
    if let Some(ep) = &h3_endpoint {
        tokio::spawn(crate::api::h3::run(ep.clone(), crate::api::router(hub.clone()), config.http_api.max_request_body_size, config.quic.max_connections));
    }
    if let Some(store) = certs.clone().filter(|s| s.is_dev()) {
        let alpn = endpoint::alpn_protocols(&config);
        let mut all: Vec<_> = client_endpoints.iter().map(|e| (e.clone(), alpn.clone(), false)).collect();
        all.extend(h3_endpoint.iter().map(|e| (e.clone(), vec![endpoint::ALPN_H3], true)));
        tokio::spawn(renew(store, all, config.clone()));
    }

    let addr = format!("{}:{}", config.http_server.address, config.http_server.port);
    let key = "http_server.port";
    let listener = TcpListener::bind(&addr).await.map_err(|source| StartError::Bind { addr: addr.clone(), key, source })?;
    let http_addr = listener.local_addr().map_err(|source| StartError::Bind { addr, key, source })?;

    let tcp_limits = crate::api::tcp::Limits::from_config(&config.http_server);
    log_connection_limit(config.client.connection_limit);

    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let shutdown_timeout = config.shutdown.timeout.0;
    let task_hub = hub.clone();
    let (accepting_tx, accepting_rx) = oneshot::channel::<()>();
    let serve = serve_tcp(listener, app, tcp_limits, config.http_server.threads, async move {
        let _ = accepting_rx.await;
    })?;
    let task = tokio::spawn(async move {
        let _ = stop_rx.await;
        // QUIC connections that have not connected yet are not in the hub's index: the
        // watch reaches them too. New QUIC connections are refused from here on.
        let _ = shutdown_tx.send(true);
        for ep in &client_endpoints {
            ep.set_server_config(None);
        }
        run_shutdown(&task_hub, accepting_tx, shutdown_timeout).await;
        let _ = tokio::time::timeout(Duration::from_secs(1), serve).await;
        for ep in client_endpoints.iter().chain(h3_endpoint.iter()) {
            ep.close(quinn::VarInt::from_u32(u32::from(crate::protocol::Disconnect::SHUTDOWN.code)), b"shutdown");
        }
        for ep in client_endpoints.iter().chain(h3_endpoint.iter()) {
            let _ = tokio::time::timeout(Duration::from_secs(1), ep.wait_idle()).await;
        }
    });
    Ok(Running { http_addr, hub, quic_addr, quic_addr_v6, h3_addr, certs, stop: Some(stop_tx), task })
}

/// Serves the TCP listener until `stop` completes (see [`crate::api::tcp::run`]), on the
/// current runtime with `threads` 0, else on a runtime of that many threads of its own;
/// the receiver completes when it is done. The listener's runtime ends with it (and, at
/// the latest, once `stop` completes and its last connection closes, when the
/// [`Running`] is dropped without a shutdown).
fn serve_tcp(
    listener: TcpListener,
    app: axum::Router,
    limits: crate::api::tcp::Limits,
    threads: u16,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<oneshot::Receiver<()>, StartError> {
    let (done_tx, done) = oneshot::channel::<()>();
    let serve = move |listener: TcpListener| async move {
        crate::api::tcp::run(listener, app, limits, stop).await;
        let _ = done_tx.send(());
    };
    if threads == 0 {
        tokio::spawn(serve(listener));
        return Ok(done);
    }
    let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let key = "http_server.threads";
    let failed = |source: std::io::Error| StartError::Runtime { what: "TCP listener's thread", key, source };
    // The listening socket moves to the listener's runtime (it is registered with this one).
    let listener = listener.into_std().map_err(|source| StartError::Bind { addr: addr.clone(), key, source })?;
    let runtime = if threads == 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(threads.into()).thread_name("tidewire-http").enable_all().build()
    }
    .map_err(failed)?;
    std::thread::Builder::new()
        .name("tidewire-http".into())
        .spawn(move || {
            runtime.block_on(async move {
                match TcpListener::from_std(listener) {
                    Ok(listener) => serve(listener).await,
                    Err(e) => tracing::error!(error = %e, "the TCP listener could not move to its runtime"),
                }
            });
        })
        .map_err(failed)?;
    Ok(done)
}

/// The engine `engine.type` names: memory, or Redis with one reader task per shard (they
/// end when the engine is dropped).
async fn engine(config: &Config, metrics: Arc<Metrics>) -> Result<Arc<dyn Broker>, StartError> {
    match config.engine.kind.as_str() {
        "redis" => {
            let (broker, readers) =
                RedisBroker::connect(&config.engine.redis, metrics).await.map_err(|e| StartError::Engine(e.to_string()))?;
            for reader in readers {
                tokio::spawn(reader.run());
            }
            tracing::info!(shards = broker.shard_count(), prefix = %config.engine.redis.prefix, "redis engine connected");
            Ok(broker)
        }
        _ => Ok(MemoryBroker::new()),
    }
}

/// Logs the client connection limit next to the open-file limit it must stay under.
fn log_connection_limit(limit: usize) {
    let fds = crate::fd_limit::current();
    let (soft, hard) = (fds.and_then(|l| l.soft), fds.and_then(|l| l.hard));
    if limit == 0 {
        tracing::warn!(?soft, ?hard, "client.connection_limit is 0 (unlimited): clients can exhaust the open-file limit and starve /health and the API");
    } else if soft.is_some_and(|s| limit as u64 >= s) {
        tracing::warn!(limit, ?soft, ?hard, "client.connection_limit is not below the open-file limit: clients can starve /health and the API");
    } else {
        tracing::info!(limit, ?soft, ?hard, "client connection limit (open-file limit soft/hard)");
    }
}

/// Stop accepting, ask every connection to close with 3001 after flushing, wait for them.
async fn run_shutdown(hub: &Hub, stop_accepting: oneshot::Sender<()>, timeout: Duration) {
    let _ = stop_accepting.send(());
    let asked = hub.shutdown();
    tracing::info!(connections = asked, "shutting down");
    hub.announce_leaving().await;
    let deadline = Instant::now() + timeout;
    while hub.metrics().total_connections() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let left = hub.metrics().total_connections();
    if left > 0 {
        tracing::warn!(left, "shutdown timeout reached with connections still open");
    }
}

/// Binds quinn endpoints for `address:port`: the address itself, and with `ipv6` its IPv6
/// counterpart on the same port (`::1` for a loopback address, `::` — dual-stack — instead
/// of `0.0.0.0`). Port 0 picks a free port for the first; the second reuses it. A failed
/// IPv6 bind is a warning (hosts without IPv6), a failed first bind is an error.
async fn bind_udp(
    address: &str,
    port: u16,
    ipv6: bool,
    server: &quinn::ServerConfig,
    key: &'static str,
) -> Result<Vec<quinn::Endpoint>, StartError> {
    let ip: IpAddr = match address.parse() {
        Ok(ip) => ip,
        Err(_) => tokio::net::lookup_host(format!("{address}:{port}"))
            .await
            .ok()
            .and_then(|mut a| a.next())
            .map(|a| a.ip())
            .ok_or_else(|| StartError::Config(format!("http_server.address: cannot resolve {address:?}")))?,
    };
    let bind = |addr: SocketAddr| {
        quinn::Endpoint::server(server.clone(), addr).map_err(|source| StartError::Bind { addr: format!("udp {addr}"), key, source })
    };
    if ipv6 && ip == IpAddr::from([0, 0, 0, 0]) {
        // One dual-stack socket serves both families.
        if let Ok(ep) = bind(SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port)) {
            return Ok(vec![ep]);
        }
    }
    let first = bind(SocketAddr::new(ip, port))?;
    let mut endpoints = vec![first];
    if ipv6 && ip.is_loopback() && ip.is_ipv4() {
        let port = endpoints[0].local_addr().map(|a| a.port()).unwrap_or(port);
        match bind(SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port)) {
            Ok(ep) => endpoints.push(ep),
            Err(e) => tracing::warn!(error = %e, "no IPv6 loopback QUIC endpoint; browsers must use 127.0.0.1, not localhost"),
        }
    }
    Ok(endpoints)
}

/// Renews the development certificate before it expires and swaps it into every QUIC
/// endpoint; connections already open keep theirs.
async fn renew(store: Arc<CertStore>, endpoints: Vec<(quinn::Endpoint, Vec<&'static [u8]>, bool)>, config: Arc<Config>) {
    let mut interval = tokio::time::interval(CERT_CHECK_INTERVAL);
    interval.tick().await;
    loop {
        interval.tick().await;
        let cert = match store.renew_if_due(SystemTime::now()) {
            Ok(Some(cert)) => cert,
            Ok(None) => continue,
            Err(e) => {
                tracing::error!(error = %e, "development certificate renewal failed");
                continue;
            }
        };
        tracing::info!(sha256 = %cert.sha256_hex(), "development certificate renewed");
        for (ep, alpn, api) in &endpoints {
            let server = crate::tls::server_config(&cert, alpn)
                .map_err(|e| e.to_string())
                .and_then(|tls| endpoint::server_config(tls, &config, *api).map_err(|e| e.to_string()));
            match server {
                Ok(server) => ep.set_server_config(Some(server)),
                Err(e) => tracing::error!(error = %e, "cannot use the renewed certificate"),
            }
        }
    }
}

/// The TCP listener's sockets as the WebSocket transport takes them: the raw stream out
/// of hyper's upgrade (served as `TokioIo<Lingering>`), closed lingeringly at the end.
fn websocket_sockets() -> websocket::Sockets {
    use crate::api::tcp::Lingering;
    websocket::Sockets {
        take: |upgraded| {
            crate::transport::ws_frame::upgraded_stream(upgraded, |io: hyper_util::rt::TokioIo<Lingering>| {
                io.into_inner().into_inner()
            })
        },
        on_drop: |stream| drop(Lingering::new(stream)),
    }
}
