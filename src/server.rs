//! Builds the running server: the only place that names concrete types (the memory
//! broker, the TCP listener) and starts long-lived tasks. Also owns graceful shutdown:
//! stop accepting, ask every connection to flush and close with 3001, and wait for them
//! up to `shutdown.timeout`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::distr::{Alphanumeric, SampleString};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::broker::MemoryBroker;
use crate::config::Config;
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::session::Auth;
use crate::transport::websocket;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A key or setting is unusable.
    #[error("config: {0}")]
    Config(String),
    /// The listener could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
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
pub async fn start(config: Config) -> Result<Running, StartError> {
    for (key, on) in [("http_stream.enabled", config.http_stream.enabled), ("sse.enabled", config.sse.enabled)] {
        if on {
            tracing::warn!(key, "this transport is not available in this version of Tidewire; WebSocket serves clients");
        }
    }
    let config = Arc::new(config);
    let auth = Auth::from_config(&config.client).map_err(StartError::Config)?;
    let metrics = Arc::new(Metrics::default());
    let broker = MemoryBroker::new();
    let hub = Hub::new(config.clone(), broker, metrics);

    let app = crate::api::router(hub.clone())
        .merge(websocket::router(websocket::Ctx { hub: hub.clone(), auth: auth.clone() }));

    let addr = format!("{}:{}", config.http_server.address, config.http_server.port);
    let listener = TcpListener::bind(&addr).await.map_err(|source| StartError::Bind { addr: addr.clone(), source })?;
    let http_addr = listener.local_addr().map_err(|source| StartError::Bind { addr, source })?;

    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let shutdown_timeout = config.shutdown.timeout.0;
    let task_hub = hub.clone();
    let task = tokio::spawn(async move {
        let (accepting_tx, accepting_rx) = oneshot::channel::<()>();
        let serve = axum::serve(listener, app.into_make_service())
            .with_graceful_shutdown(async move {
                let _ = accepting_rx.await;
            });
        let serve = tokio::spawn(async move {
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "http server failed");
            }
        });
        let _ = stop_rx.await;
        run_shutdown(&task_hub, accepting_tx, shutdown_timeout).await;
        let _ = tokio::time::timeout(Duration::from_secs(1), serve).await;
    });
    Ok(Running { http_addr, hub, stop: Some(stop_tx), task })
}

/// Stop accepting, ask every connection to close with 3001 after flushing, wait for them.
async fn run_shutdown(hub: &Hub, stop_accepting: oneshot::Sender<()>, timeout: Duration) {
    let _ = stop_accepting.send(());
    let asked = hub.shutdown();
    tracing::info!(connections = asked, "shutting down");
    let deadline = Instant::now() + timeout;
    while hub.metrics().total_connections() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let left = hub.metrics().total_connections();
    if left > 0 {
        tracing::warn!(left, "shutdown timeout reached with connections still open");
    }
}
