//! The `tidewire` binary: serve with no config, genconfig, check-config, token, signals.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tidewire"))
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tidewire-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn genconfig_writes_a_config_that_check_config_accepts() {
    let dir = temp_dir("gen");
    let path = dir.join("t.toml");
    let out = bin().arg("genconfig").arg(&path).output().expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&path).expect("written");
    assert!(text.contains("hmac_secret_key = \"") && text.contains("# "), "commented, with a secret");
    let again = bin().arg("genconfig").arg(&path).output().expect("run");
    assert!(!again.status.success(), "refuses to overwrite without --force");
    let out = bin().arg("check-config").arg(&path).output().expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains(": ok"));
}

#[test]
fn check_config_names_the_bad_key_and_warns_about_unsupported_ones() {
    let dir = temp_dir("check");
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[client]\nchannel_limit = \"lots\"\n").expect("write");
    let out = bin().arg("check-config").arg(&bad).output().expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("client.channel_limit"), "{err}");

    let centrifugo = dir.join("config.json");
    std::fs::write(
        &centrifugo,
        r#"{"client":{"token":{"hmac_secret_key":"x"},"allowed_origins":["http://localhost:3000"]},
            "http_api":{"key":"k"},"admin":{"enabled":true,"password":"p"},
            "channel":{"without_namespace":{"presence":true},"namespaces":[{"name":"chat","join_leave":true}]}}"#,
    )
    .expect("write");
    let out = bin().arg("check-config").arg(&centrifugo).output().expect("run");
    assert!(out.status.success(), "a Centrifugo v6 JSON config loads: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("admin is not supported"));
}

#[test]
fn a_centrifugo_v5_config_is_refused_with_each_keys_v6_name() {
    let dir = temp_dir("v5");
    let v5 = dir.join("config.json");
    std::fs::write(
        &v5,
        r#"{"token_hmac_secret_key":"s","api_key":"k","allowed_origins":["http://localhost:3000"],
            "presence":true,"namespaces":[{"name":"chat"}],"engine":"memory"}"#,
    )
    .expect("write");
    let out = bin().arg("check-config").arg(&v5).output().expect("run");
    assert!(!out.status.success(), "check-config fails: {}", String::from_utf8_lossy(&out.stdout));
    let err = String::from_utf8_lossy(&out.stderr);
    for pair in [
        "token_hmac_secret_key -> client.token.hmac_secret_key",
        "api_key -> http_api.key",
        "allowed_origins -> client.allowed_origins",
        "presence -> channel.without_namespace.presence",
        "namespaces -> channel.namespaces",
        "engine -> engine.type",
    ] {
        assert!(err.contains(pair), "names {pair}: {err}");
    }
    // serve refuses it too, instead of starting with random secrets.
    let out = bin().args(["serve", "--port", "0", "--config"]).arg(&v5).current_dir(&dir).output().expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("api_key -> http_api.key"));
}

#[test]
fn token_prints_a_verifiable_jwt() {
    let out = bin().args(["token", "--user", "42", "--ttl", "60", "--secret", "sekret"]).output().expect("run");
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).expect("utf8");
    let verifier = tidewire::auth::Verifier::new(&tidewire::config::TokenConfig {
        hmac_secret_key: "sekret".into(),
        ..Default::default()
    })
    .expect("verifier");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let claims = verifier.connect(token.trim(), now).expect("valid token");
    assert_eq!(claims.user, "42");
    assert!(claims.expire_at.is_some_and(|e| e > now && e <= now + 60));
    let out = bin().args(["token", "--user", "1"]).env_remove("TIDEWIRE_CLIENT_TOKEN_HMAC_SECRET_KEY").output().expect("run");
    assert!(!out.status.success(), "no secret, no token");
}

#[test]
fn serve_without_config_prints_how_to_use_it_and_stops_on_sigterm() {
    let dir = temp_dir("serve");
    let mut child = bin()
        .arg("serve")
        .current_dir(&dir)
        .env("TIDEWIRE_HTTP_SERVER_PORT", "0")
        .env("TIDEWIRE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut seen = Vec::new();
    let mut ws_url = None;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        let Some(Ok(line)) = lines.next() else { break };
        if let Some(rest) = line.trim().strip_prefix("WebSocket:") {
            ws_url = Some(rest.trim().to_owned());
        }
        let done = line.contains("Publish:");
        seen.push(line);
        if done {
            break;
        }
    }
    let text = seen.join("\n");
    assert!(text.contains("API key:") && text.contains("(generated"), "{text}");
    assert!(text.contains("HMAC secret:") && text.contains(&format!("{} token --user", env!("CARGO_BIN_EXE_tidewire"))), "{text}");
    let ws_url = ws_url.expect("prints the WebSocket URL");
    let addr = ws_url.trim_start_matches("ws://").trim_end_matches("/connection/websocket").to_owned();
    // The server answers on that address.
    let health = std::net::TcpStream::connect(&addr).and_then(|mut s| {
        use std::io::{Read, Write};
        s.write_all(format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())?;
        let mut buf = String::new();
        s.read_to_string(&mut buf)?;
        Ok(buf)
    });
    let health = health.expect("health request");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(status.success(), "exits cleanly on SIGTERM: {status}");
            break;
        }
        assert!(Instant::now() < deadline, "did not stop within 10 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}
