//! From `engine.redis` to connected fred clients: one command client and one PUB/SUB
//! subscriber connection per shard.
//!
//! Every fred command carries the IO timeout (`default_command_timeout`) so a command
//! queued while Redis is away is dropped instead of being sent minutes later; the broker
//! also bounds each call itself. Reconnects back off exponentially (100 ms to 2 s) and
//! never give up: the process outlives any Redis outage.

use std::time::Duration;

use fred::clients::SubscriberClient;
use fred::prelude::{Builder, Client, ClientLike, Config, ReconnectPolicy, Server, ServerConfig, TlsConnector};
use fred::types::config::ClusterDiscoveryPolicy;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{RedisAddress, RedisEngine, RedisTls, RedisTopology};
use crate::hub::BrokerError;

/// Shortest wait before a reconnect attempt, in milliseconds.
const RECONNECT_MIN_MS: u32 = 100;
/// Longest wait between reconnect attempts, in milliseconds: a Redis that comes back is
/// used again within about this long.
const RECONNECT_MAX_MS: u32 = 2_000;

/// PUB/SUB messages a subscriber connection buffers for its reader. Past it the oldest are
/// lost (counted and logged as lagged): the reader only decodes and hands each to the hub,
/// so it falls this far behind only when the process is starved.
const SUBSCRIBER_BUFFER: usize = 4_096;

/// A shard's clients, connected.
pub(crate) struct Connected {
    /// For commands and scripts.
    pub(crate) client: Client,
    /// For SUBSCRIBE/UNSUBSCRIBE and the messages they bring.
    pub(crate) subscriber: SubscriberClient,
    /// For logs and errors: `redis://host:port`.
    pub(crate) name: String,
}

fn describe(a: &RedisAddress) -> String {
    let hosts: Vec<String> = a.hosts.iter().map(|(h, p)| format!("{h}:{p}")).collect();
    let kind = match &a.topology {
        RedisTopology::Standalone => "redis",
        RedisTopology::Cluster => "redis cluster",
        RedisTopology::Sentinel { .. } => "redis sentinel",
    };
    format!("{kind} {}", hosts.join(","))
}

/// What to look at when a TLS connection failed: fred reports rustls' errors only as
/// their debug text (`InvalidCertificate(UnknownIssuer)`, `AlertReceived(CertificateRequired)`).
fn tls_hint(message: &str) -> &'static str {
    if message.contains("InvalidCertificate") {
        " (TLS: the server's certificate is not signed by engine.redis.tls.server_ca_pem, or by the system's roots \
         when that is unset, or does not name the host or engine.redis.tls.server_name)"
    } else if message.contains("CertificateRequired") || message.contains("BadCertificate") {
        " (TLS: the server wants a client certificate signed by its CA: engine.redis.tls.cert_pem and key_pem)"
    } else {
        ""
    }
}

fn pem_input(key: &str, value: &str) -> Result<Vec<u8>, BrokerError> {
    if value.contains("-----BEGIN") {
        Ok(value.as_bytes().to_vec())
    } else {
        std::fs::read(value).map_err(|e| BrokerError(format!("{key}: cannot read {value}: {e}")))
    }
}

fn tls_connector(tls: &RedisTls) -> Result<TlsConnector, BrokerError> {
    if tls.server_ca_pem.is_empty() && tls.cert_pem.is_empty() {
        return TlsConnector::default_rustls().map_err(|e| BrokerError(format!("engine.redis.tls: {e}")));
    }
    let mut roots = rustls::RootCertStore::empty();
    if tls.server_ca_pem.is_empty() {
        return Err(BrokerError("engine.redis.tls.server_ca_pem: needed with a client certificate".into()));
    }
    let ca = pem_input("engine.redis.tls.server_ca_pem", &tls.server_ca_pem)?;
    for cert in CertificateDer::pem_slice_iter(&ca) {
        let cert = cert.map_err(|e| BrokerError(format!("engine.redis.tls.server_ca_pem: {e}")))?;
        roots.add(cert).map_err(|e| BrokerError(format!("engine.redis.tls.server_ca_pem: {e}")))?;
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let config = if tls.cert_pem.is_empty() {
        builder.with_no_client_auth()
    } else {
        let chain = pem_input("engine.redis.tls.cert_pem", &tls.cert_pem)?;
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&chain)
            .collect::<Result<_, _>>()
            .map_err(|e| BrokerError(format!("engine.redis.tls.cert_pem: {e}")))?;
        let key = pem_input("engine.redis.tls.key_pem", &tls.key_pem)?;
        let key = PrivateKeyDer::from_pem_slice(&key).map_err(|e| BrokerError(format!("engine.redis.tls.key_pem: {e}")))?;
        builder.with_client_auth_cert(chain, key).map_err(|e| BrokerError(format!("engine.redis.tls.cert_pem: {e}")))?
    };
    Ok(TlsConnector::from(config))
}

fn fred_config(a: &RedisAddress, cfg: &RedisEngine) -> Result<Config, BrokerError> {
    let server = |(h, p): &(String, u16)| {
        let mut s = Server::new(h.as_str(), *p);
        if !cfg.tls.server_name.is_empty() {
            s.tls_server_name = Some(cfg.tls.server_name.as_str().into());
        }
        s
    };
    let hosts: Vec<Server> = a.hosts.iter().map(server).collect();
    let first = hosts.first().cloned().ok_or_else(|| BrokerError("engine.redis.address: no host".into()))?;
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let server = match &a.topology {
        RedisTopology::Standalone => ServerConfig::Centralized { server: first },
        RedisTopology::Cluster => ServerConfig::Clustered { hosts, policy: ClusterDiscoveryPolicy::default() },
        RedisTopology::Sentinel { master } => ServerConfig::Sentinel {
            hosts,
            service_name: master.clone(),
            username: non_empty(&cfg.sentinel_user),
            password: non_empty(&cfg.sentinel_password),
        },
    };
    let tls = if a.tls { Some(tls_connector(&cfg.tls)?.into()) } else { None };
    Ok(Config {
        server,
        username: a.user.clone(),
        password: a.password.clone(),
        database: (a.db != 0).then_some(a.db),
        tls,
        ..Config::default()
    })
}

fn builder(config: Config, cfg: &RedisEngine, broadcast: usize) -> Builder {
    let io = cfg.io_timeout.0;
    let connect = cfg.connect_timeout.0;
    let mut b = Builder::from_config(config);
    b.with_connection_config(|c| {
        c.connection_timeout = connect;
        c.internal_command_timeout = io;
        // A command in flight when the connection drops is tried again once at most:
        // the caller's deadline (io_timeout) is what really bounds it.
        c.max_command_attempts = 2;
        c.tcp.nodelay = Some(true);
    })
    .with_performance_config(|p| {
        p.default_command_timeout = io;
        p.broadcast_channel_capacity = broadcast;
    })
    .set_policy(ReconnectPolicy::new_exponential(0, RECONNECT_MIN_MS, RECONNECT_MAX_MS, 2));
    b
}

/// Connects every shard, failing (naming the address) when one cannot be reached within
/// `connect_timeout`.
pub(crate) async fn connect(cfg: &RedisEngine) -> Result<Vec<Connected>, BrokerError> {
    let addresses = cfg.addresses().map_err(|e| BrokerError(e.to_string()))?;
    let mut shards = Vec::with_capacity(addresses.len());
    for a in &addresses {
        let name = describe(a);
        let config = fred_config(a, cfg)?;
        let fail = |e: &dyn std::fmt::Display| {
            let e = e.to_string();
            let hint = if a.tls { tls_hint(&e) } else { "" };
            BrokerError(format!("cannot connect to {name} (engine.redis.address): {e}{hint}"))
        };
        let client = builder(config.clone(), cfg, 32).build().map_err(|e| fail(&e))?;
        let subscriber = builder(config, cfg, SUBSCRIBER_BUFFER).build_subscriber_client().map_err(|e| fail(&e))?;
        // The initial connection may take connect_timeout per host tried; allow one retry.
        let deadline = cfg.connect_timeout.0 * 2 + Duration::from_millis(500);
        for c in [&client as &dyn InitClient, &subscriber] {
            match tokio::time::timeout(deadline, c.start()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(fail(&e)),
                Err(_) => return Err(fail(&"timed out")),
            }
        }
        shards.push(Connected { client, subscriber, name });
    }
    Ok(shards)
}

/// `init` for both client kinds, as a trait object.
trait InitClient: Sync {
    fn start(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), fred::error::Error>> + Send + '_>>;
}

impl<C: ClientLike + Sync> InitClient for C {
    fn start(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), fred::error::Error>> + Send + '_>> {
        Box::pin(async move {
            // The connection task runs until the client quits; its handle is not needed.
            let _task = self.init().await?;
            Ok(())
        })
    }
}
