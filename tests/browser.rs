//! Browser tests: headless Debian Chromium (through playwright-core, tests/browser/)
//! against a Tidewire server started here — centrifuge-js over WebTransport (its JSON and
//! Protobuf builds), and a page speaking the native multiplexed mode (per-subscription
//! streams, a datagram channel).
//! scripts/test.sh installs Chromium and the pinned npm packages first.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::{API_KEY, SECRET};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_over_webtransport() {
    let modules = root().join("tests/browser/node_modules/playwright-core");
    assert!(modules.exists(), "{} is missing: run ./scripts/test.sh once (it installs the browser test packages)", modules.display());
    assert!(PathBuf::from("/usr/bin/chromium").exists(), "/usr/bin/chromium is missing: run ./scripts/test.sh (apt chromium)");
    let text = format!(
        r#"[http_server]
address = "127.0.0.1"
port = 0
[http_server.tls]
dev_dir = "{}"
[client]
allowed_origins = ["http://127.0.0.1:*"]
[client.token]
hmac_secret_key = "{SECRET}"
[http_api]
key = "{API_KEY}"
[channel.without_namespace]
allow_subscribe_for_client = true
[[channel.namespaces]]
name = "chat"
allow_subscribe_for_client = true
[[channel.namespaces]]
name = "live"
delivery = "datagram"
allow_subscribe_for_client = true
"#,
        common::cert_dir()
    );
    let srv = common::start_with_text(&text).await;
    let hash: String = srv.cert_hash().iter().map(|b| format!("{b:02x}")).collect();
    let mut cmd = Command::new("node");
    cmd.args(["--test", "--test-concurrency=1", "tests/browser/"])
        .current_dir(root())
        .env("TIDEWIRE_HTTP", format!("http://{}", srv.addr))
        .env("TIDEWIRE_QUIC_PORT", srv.quic_addr().port().to_string())
        .env("TIDEWIRE_CERT_HASH", &hash)
        .env("TIDEWIRE_API_KEY", API_KEY)
        .env("TIDEWIRE_TOKEN", common::token("browser", 3600));
    let out = tokio::time::timeout(Duration::from_secs(180), tokio::task::spawn_blocking(move || cmd.output()))
        .await
        .expect("browser suite took over 180 s")
        .expect("join")
        .expect("cannot run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("--- node --test tests/browser/ stdout ---\n{stdout}\n--- stderr ---\n{stderr}");
    assert!(out.status.success(), "browser suite failed ({}):\n{stdout}\n{stderr}", out.status);
    srv.shutdown().await;
}
