//! Interop: the real, unmodified Centrifugo SDKs (npm `centrifuge` and `cent.js`, PyPI
//! `centrifuge-python` and `cent`) against a Tidewire server started here on 127.0.0.1.
//! The suites live in tests/interop/ (see its README for the contract); scripts/test.sh
//! installs their pinned packages first.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{API_KEY, SECRET};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Starts the server on tests/interop/dev.toml (the channel rules the suites rely on),
/// with a port of our choosing and the test secrets instead of the file's fixed ones.
async fn start() -> common::TestServer {
    start_with(|_| ()).await
}

/// The second server: dev.toml plus the personal channel (`personal:#<user>`, one
/// connection per user), which would change every other test's events on the first.
async fn start_personal() -> common::TestServer {
    start_with(|config| {
        let personal = &mut config.client.subscribe_to_user_personal_channel;
        personal.enabled = true;
        personal.personal_channel_namespace = "personal".into();
        personal.single_connection = true;
    })
    .await
}

async fn start_with(adjust: impl FnOnce(&mut tidewire::config::Config)) -> common::TestServer {
    let path = root().join("tests/interop/dev.toml");
    let mut config = tidewire::config::Config::load(Some(&path), std::iter::empty()).expect("dev.toml loads").config;
    config.http_server.address = "127.0.0.1".into();
    config.http_server.port = 0;
    config.client.token.hmac_secret_key = SECRET.into();
    config.http_api.key = API_KEY.into();
    adjust(&mut config);
    config.validate().expect("adjusted dev.toml is valid");
    common::start_config(config).await
}

/// Runs a suite as a child process with the server's address in its environment, off the
/// async runtime so the server keeps serving, and bounded in time.
async fn run_suite(srv: &common::TestServer, personal: &common::TestServer, program: &str, args: &[&str], needs: &Path) {
    assert!(
        needs.exists(),
        "{} is missing: run ./scripts/test.sh once (it installs the interop packages)",
        needs.display()
    );
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(root())
        .env("TIDEWIRE_HTTP", format!("http://{}", srv.addr))
        .env("TIDEWIRE_WS", srv.ws_url())
        .env("TIDEWIRE_PERSONAL_HTTP", format!("http://{}", personal.addr))
        .env("TIDEWIRE_PERSONAL_WS", personal.ws_url())
        .env("TIDEWIRE_API_KEY", API_KEY)
        .env("TIDEWIRE_HMAC_SECRET", SECRET);
    let label = format!("{program} {}", args.join(" "));
    let out = tokio::time::timeout(Duration::from_secs(240), tokio::task::spawn_blocking(move || cmd.output()))
        .await
        .unwrap_or_else(|_| panic!("{label} took over 240 s"))
        .expect("join")
        .unwrap_or_else(|e| panic!("cannot run {label}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("--- {label} stdout ---\n{stdout}\n--- stderr ---\n{stderr}");
    assert!(out.status.success(), "{label} failed ({}):\n{stdout}\n{stderr}", out.status);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn centrifuge_js_and_cent_js() {
    let (srv, personal) = (start().await, start_personal().await);
    let modules = root().join("tests/interop/js/node_modules/centrifuge");
    run_suite(&srv, &personal, "node", &["--test", "--test-concurrency=1", "tests/interop/js/"], &modules).await;
    srv.shutdown().await;
    personal.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn centrifuge_python_and_cent() {
    let (srv, personal) = (start().await, start_personal().await);
    let marker = root().join("tests/interop/python/requirements.txt");
    run_suite(&srv, &personal, "python3", &["-m", "pytest", "-q", "tests/interop/python"], &marker).await;
    srv.shutdown().await;
    personal.shutdown().await;
}
