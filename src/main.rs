//! The `tidewire` command: serve, genconfig, token, check-config.

use std::io::IsTerminal;
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
        Command::Serve { config: config_path, address, port } => {
            let no_file = config_path.is_none();
            let loaded = load(config_path.as_deref())?;
            let warnings = loaded.warnings();
            let mut config = loaded.config;
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
            if !warnings.is_empty() {
                tracing::warn!(keys = %warnings.join("; "), "config keys not supported by Tidewire (ignored)");
            }
            let generated = server::fill_secrets(&mut config);
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?
                .block_on(serve(config, generated, config_path))
        }
        Command::Genconfig { path, force } => {
            if path.exists() && !force {
                bail!("{} exists; pass --force to overwrite", path.display());
            }
            let text = tidewire::config::generate_toml(&server::random_secret(), &server::random_secret());
            std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
            println!("wrote {}", path.display());
            println!("start with: {} serve --config {}", program(), shell_quote(&path.display().to_string()));
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
            for key in &loaded.warnings() {
                println!("warning: {key} is not supported by Tidewire and would be ignored");
            }
            // Proxy names and endpoints are checked as `serve` checks them.
            let metrics = std::sync::Arc::new(tidewire::metrics::Metrics::default());
            let (_, warnings) =
                tidewire::proxy::Proxies::from_config(&loaded.config, metrics).map_err(|e| anyhow::anyhow!("{e}"))?;
            for warning in &warnings {
                println!("warning: {warning}");
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
    // Colour codes only for a terminal: a log file or a pipe gets plain text.
    let ansi = std::io::stdout().is_terminal();
    tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_ansi(ansi).init();
}

/// How the banner and `genconfig` name this program in the commands they print: the path
/// of the running executable, so a printed command runs as shown after `cargo run` too
/// (where `tidewire` is not on the PATH).
fn program() -> String {
    let exe = std::env::current_exe().ok().map(|p| p.display().to_string()).unwrap_or_else(|| "tidewire".into());
    shell_quote(&exe)
}

/// `s` as one shell word: as is when it is plainly safe, else in single quotes.
fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-+:=@,".contains(&b));
    if plain { s.to_string() } else { format!("'{}'", s.replace('\'', "'\\''")) }
}

async fn serve(config: Config, generated: server::Generated, config_path: Option<PathBuf>) -> anyhow::Result<()> {
    let insecure = config.client.insecure;
    let demo = config.demo.enabled;
    let has_secret = !config.client.token.hmac_secret_key.is_empty();
    let stop = shutdown_signal()?;
    let running = server::start(config).await?;
    let addr = running.http_addr;
    println!("Tidewire {} is running ({} engine)", env!("CARGO_PKG_VERSION"), running.hub.engine_name());
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
    // Secrets are printed only when generated (nobody knows them otherwise); a configured
    // secret stays out of logs and terminals, and the commands point at where it lives.
    const KEEP: &str = " (generated; set it in a config file to keep it)";
    if let Some(key) = &generated.api_key {
        println!("  API key:     {key}{KEEP}");
    }
    if let Some(secret) = &generated.hmac_secret_key {
        println!("  HMAC secret: {secret}{KEEP}");
    }
    let prog = program();
    let token_source = match (&generated.hmac_secret_key, &config_path) {
        (Some(secret), _) => format!(" --secret {}", shell_quote(secret)),
        (None, Some(path)) => format!(" --config {}", shell_quote(&path.display().to_string())),
        // From TIDEWIRE_CLIENT_TOKEN_HMAC_SECRET_KEY, which `token` reads too.
        (None, None) => String::new(),
    };
    if has_secret {
        println!("  Mint a connection token:  {prog} token --user 42{token_source}");
    }
    let key = match &generated.api_key {
        Some(k) => shell_quote(&format!("X-API-Key: {k}")),
        None => "'X-API-Key: <your http_api.key>'".to_string(),
    };
    // In demo mode only the demo namespaces are open to clients: publish where the demo
    // page (and README's snippets) listen.
    let channel = if demo { tidewire::web::CHAT_CHANNEL } else { "news" };
    println!(
        "  Publish:     curl -H {key} -d '{{\"channel\":\"{channel}\",\"data\":{{\"text\":\"hi\"}}}}' http://{addr}/api/publish"
    );
    if insecure {
        tracing::warn!("client.insecure is ON: connections need no token and may use every channel. Development only!");
    }
    let mut running = running;
    stop.await;
    running.request_shutdown();
    running.wait().await;
    println!("Tidewire stopped");
    Ok(())
}

/// SIGINT (Ctrl-C) or SIGTERM, registered when made: a signal that arrives after the
/// banner is printed (a supervisor, a test) but before the wait starts is not lost.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}
