//! The `tidewire` command: serve, genconfig, token, check-config.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use tidewire::config::{Config, Loaded};
use tidewire::server;

#[derive(Parser)]
#[command(name = "tidewire", version, about = "Real-time messaging server (Centrifugo-compatible)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (no config needed: memory engine, 127.0.0.1:8000, generated secrets).
    Serve {
        /// Config file (TOML or JSON, Centrifugo v6 key names).
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// Override http_server.address.
        #[arg(long)]
        address: Option<String>,
        /// Override http_server.port.
        #[arg(long)]
        port: Option<u16>,
    },
    /// Write a commented config with random secrets.
    Genconfig {
        /// Where to write it.
        #[arg(default_value = "tidewire.toml")]
        path: PathBuf,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Print a connection JWT (HS256) signed with the config's HMAC secret.
    Token {
        /// User id (`sub` claim).
        #[arg(long)]
        user: String,
        /// Lifetime in seconds (0 = no expiry).
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
        /// Config file holding client.token.hmac_secret_key.
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// The HMAC secret (instead of a config file).
        #[arg(long, env = "TIDEWIRE_CLIENT_TOKEN_HMAC_SECRET_KEY", hide_env_values = true)]
        secret: Option<String>,
    },
    /// Generate a development certificate (ECDSA P-256, self-signed, < 14 days) for QUIC,
    /// WebTransport and HTTP/3, and print its SHA-256 for `serverCertificateHashes`.
    Certs {
        /// Directory to write dev-cert.pem and dev-key.pem into.
        #[arg(long, default_value = "certs")]
        dir: PathBuf,
        /// Replace a certificate that is still valid.
        #[arg(long)]
        force: bool,
    },
    /// Validate a config file and name the bad key.
    CheckConfig {
        /// The file.
        path: PathBuf,
    },
}

fn load(path: Option<&std::path::Path>) -> anyhow::Result<Loaded> {
    Ok(Config::load(path, std::env::vars())?)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config, address, port } => {
            let no_file = config.is_none();
            let Loaded { mut config, unknown_keys } = load(config.as_deref())?;
            // Without a config file, `serve` is someone trying Tidewire: show them the demo
            // page (unless TIDEWIRE_DEMO_ENABLED says otherwise).
            if no_file && std::env::var_os("TIDEWIRE_DEMO_ENABLED").is_none() {
                config.demo.enabled = true;
            }
            if let Some(a) = address {
                config.http_server.address = a;
            }
            if let Some(p) = port {
                config.http_server.port = p;
            }
            init_logging(&config.log.level);
            if !unknown_keys.is_empty() {
                tracing::warn!(keys = %unknown_keys.join(", "), "config keys not supported by Tidewire (ignored)");
            }
            let generated = server::fill_secrets(&mut config);
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?
                .block_on(serve(config, generated))
        }
        Command::Genconfig { path, force } => {
            if path.exists() && !force {
                bail!("{} exists; pass --force to overwrite", path.display());
            }
            let text = tidewire::config::generate_toml(&server::random_secret(), &server::random_secret());
            std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
            println!("wrote {}", path.display());
            println!("start with: tidewire serve --config {}", path.display());
            Ok(())
        }
        Command::Token { user, ttl, config, secret } => {
            let secret = match secret {
                Some(s) => s,
                None => load(config.as_deref())?.config.client.token.hmac_secret_key,
            };
            if secret.is_empty() {
                bail!("no HMAC secret: pass --config FILE with client.token.hmac_secret_key, or --secret");
            }
            let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
            let mut claims = serde_json::json!({ "sub": user, "iat": now });
            if ttl > 0 {
                claims["exp"] = (now + ttl).into();
            }
            println!("{}", tidewire::auth::jwt::mint_hs256(&secret, &claims).map_err(anyhow::Error::msg)?);
            Ok(())
        }
        Command::Certs { dir, force } => {
            let now = SystemTime::now();
            if force {
                for f in ["dev.pem", "dev-cert.pem", "dev-key.pem"] {
                    let _ = std::fs::remove_file(dir.join(f));
                }
            }
            let cert = tidewire::tls::Certificate::dev(&dir, now)?;
            let expires = cert.not_after().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_secs());
            println!("certificate: {}", dir.join("dev-cert.pem").display());
            println!("key:         {}", dir.join("dev-key.pem").display());
            println!("sha-256:     {}", cert.sha256_hex());
            println!("expires:     {expires} (unix seconds); `tidewire serve` renews it before then");
            Ok(())
        }
        Command::CheckConfig { path } => {
            let loaded = Config::load(Some(&path), std::iter::empty()).map_err(|e| anyhow::anyhow!("{e}"))?;
            for key in &loaded.unknown_keys {
                println!("warning: {key} is not supported by Tidewire and would be ignored");
            }
            println!("{}: ok", path.display());
            Ok(())
        }
    }
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TIDEWIRE_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_target(false).init();
}

async fn serve(config: Config, generated: server::Generated) -> anyhow::Result<()> {
    let insecure = config.client.insecure;
    let demo = config.demo.enabled;
    let secret = config.client.token.hmac_secret_key.clone();
    let api_key = config.http_api.key.clone();
    let running = server::start(config).await?;
    let addr = running.http_addr;
    let note = |g: bool| if g { " (generated; set it in a config file to keep it)" } else { "" };
    println!("Tidewire {} is running (memory engine)", env!("CARGO_PKG_VERSION"));
    if demo {
        println!("  Demo page:   http://{addr}/   <- open it in a browser (demo mode: no config file; it mints tokens for anyone, development only)");
    }
    println!("  WebSocket:   ws://{addr}/connection/websocket");
    println!("  Server API:  http://{addr}/api/<method>   (header X-API-Key)");
    println!("  Health:      http://{addr}/health    Metrics: http://{addr}/metrics");
    if let Some(q) = running.quic_addr {
        let v6 = running.quic_addr_v6.map(|a| format!(" and {a}")).unwrap_or_default();
        println!("  QUIC (UDP):  {q}{v6} — WebTransport https://{q}/connection/webtransport (+ /native), raw QUIC ALPN tidewire/1");
    }
    if let Some(h3) = running.h3_addr {
        println!("  HTTP/3 API:  https://{h3}/api/<method>");
    }
    if let Some(store) = &running.certs {
        let cert = store.current();
        if store.is_dev() {
            println!("  Dev cert:    sha-256 {}  (GET http://{addr}/webtransport/cert-hash)", cert.sha256_hex());
        }
    }
    if !api_key.is_empty() {
        println!("  API key:     {api_key}{}", note(generated.api_key.is_some()));
    }
    if !secret.is_empty() {
        println!("  HMAC secret: {secret}{}", note(generated.hmac_secret_key.is_some()));
        println!("  Mint a connection token:  tidewire token --user 42 --secret '{secret}'");
    }
    println!("  Publish:     curl -H 'X-API-Key: {api_key}' -d '{{\"channel\":\"news\",\"data\":{{\"text\":\"hi\"}}}}' http://{addr}/api/publish");
    if insecure {
        tracing::warn!("client.insecure is ON: connections need no token and may use every channel. Development only!");
    }
    let mut running = running;
    shutdown_signal().await;
    running.request_shutdown();
    running.wait().await;
    println!("Tidewire stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
