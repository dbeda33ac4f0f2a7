//! The server API over HTTP/3 (its own UDP port), called with hyperium's h3 client: the
//! same handlers, key check and answers as over HTTP/1.1.

mod common;

use std::sync::Arc;
use std::time::SystemTime;

use bytes::{Buf, Bytes};
use common::{API_KEY, WAIT, start_quic};
use serde_json::{Value, json};

async fn h3_call(srv: &common::TestServer, path: &str, key: Option<&str>, body: &str) -> (u16, String) {
    let certs = srv.running.as_ref().and_then(|r| r.certs.clone()).expect("certs");
    let mut roots = rustls::RootCertStore::empty();
    for c in certs.current().chain() {
        roots.add(c.clone()).expect("root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("tls13")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h3".to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).expect("quic tls");
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("endpoint");
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    let conn = endpoint.connect(srv.h3_addr(), "127.0.0.1").expect("connecting").await.expect("handshake");
    let (mut driver, mut send) = h3::client::new(h3_quinn::Connection::new(conn)).await.expect("h3 client");
    let drive = tokio::spawn(async move { std::future::poll_fn(|cx| driver.poll_close(cx)).await });
    let mut req = http::Request::builder()
        .method(http::Method::POST)
        .uri(format!("https://127.0.0.1:{}{path}", srv.h3_addr().port()))
        .header("content-type", "application/json");
    if let Some(key) = key {
        req = req.header("x-api-key", key);
    }
    let mut stream = send.send_request(req.body(()).expect("request")).await.expect("sent");
    stream.send_data(Bytes::from(body.to_string())).await.expect("body");
    stream.finish().await.expect("finish");
    let resp = tokio::time::timeout(WAIT, stream.recv_response()).await.expect("in time").expect("response");
    let mut text = Vec::new();
    while let Some(mut chunk) = stream.recv_data().await.expect("data") {
        while chunk.has_remaining() {
            let part = chunk.chunk().to_vec();
            chunk.advance(part.len());
            text.extend(part);
        }
    }
    drive.abort();
    (resp.status().as_u16(), String::from_utf8(text).expect("utf8"))
}

#[tokio::test]
async fn publish_over_http3_reaches_a_websocket_subscriber() {
    let srv = start_quic("").await;
    let (mut ws, _) = srv.client("7").await;
    ws.subscribe(2, "news").await;
    let (status, body) = h3_call(&srv, "/api/publish", Some(API_KEY), r#"{"channel":"news","data":{"via":"h3"}}"#).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).expect("json"), json!({"result": {}}));
    assert_eq!(ws.push("pub").await["pub"]["data"], json!({"via": "h3"}));
    // The legacy single endpoint is served too.
    let (status, body) = h3_call(&srv, "/api", Some(API_KEY), r#"{"method":"info","params":{}}"#).await;
    assert_eq!(status, 200);
    assert!(serde_json::from_str::<Value>(&body).expect("json")["result"]["nodes"].is_array(), "{body}");
    srv.shutdown().await;
}

#[tokio::test]
async fn http3_api_without_a_key_is_401_and_bad_input_gets_its_status() {
    let text = format!(
        "[http_server]\naddress = \"127.0.0.1\"\nport = 0\n[http_server.tls]\ndev_dir = \"{}\"\n[client.token]\nhmac_secret_key = \"{}\"\n[http_api]\nkey = \"{API_KEY}\"\nmax_request_body_size = 1000\n",
        common::cert_dir(),
        common::SECRET
    );
    let srv = common::start_with_text(&text).await;
    let (status, body) = h3_call(&srv, "/api/publish", None, r#"{"channel":"news","data":1}"#).await;
    assert_eq!((status, body.as_str()), (401, ""));
    let (status, _) = h3_call(&srv, "/api/publish", Some("wrong"), r#"{"channel":"news","data":1}"#).await;
    assert_eq!(status, 401);
    let (status, _) = h3_call(&srv, "/api/nope", Some(API_KEY), "{}").await;
    assert_eq!(status, 404);
    let big = format!(r#"{{"channel":"news","data":"{}"}}"#, "x".repeat(2000));
    let (status, _) = h3_call(&srv, "/api/publish", Some(API_KEY), &big).await;
    assert_eq!(status, 413);
    // Still serving.
    let (status, _) = h3_call(&srv, "/api/publish", Some(API_KEY), r#"{"channel":"news","data":1}"#).await;
    assert_eq!(status, 200);
    srv.shutdown().await;
}

#[tokio::test]
async fn a_configured_certificate_is_used_as_is_and_no_hash_is_served() {
    let (cert, cert_pem, key_pem) = tidewire::tls::Certificate::generate_dev(SystemTime::now()).expect("cert");
    let text = format!(
        "[http_server]\naddress = \"127.0.0.1\"\nport = 0\n[http_server.tls]\nenabled = true\ncert_pem = '''{cert_pem}'''\nkey_pem = '''{key_pem}'''\n[client.token]\nhmac_secret_key = \"{}\"\n[http_api]\nkey = \"{API_KEY}\"\n",
        common::SECRET
    );
    let srv = common::start_with_text(&text).await;
    assert_eq!(srv.cert_hash(), cert.sha256(), "the configured certificate is served");
    let status = srv.http.get(srv.url("/webtransport/cert-hash")).send().await.expect("get").status();
    assert_eq!(status.as_u16(), 404, "no hash route with a real certificate");
    let (status, _) = h3_call(&srv, "/api/info", Some(API_KEY), "{}").await;
    assert_eq!(status, 200);
    srv.shutdown().await;
}
