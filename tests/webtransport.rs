//! WebTransport on the client UDP port: the Centrifugo-compatible mode (newline-delimited
//! JSON, or varint-delimited Protobuf with `?cf_protocol=protobuf`, on one bidirectional
//! stream, spoken here by a wtransport client exactly as centrifuge-js does), the native mode through `tidewire::client`, the certificate hash
//! route, and bad input.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{WAIT, next_pub, start_quic, token};
use serde_json::{Value, json};
use tidewire::client::Transport;
use tidewire::protocol::protobuf::messages as pb;
use tidewire::protocol::protobuf::put_delimited;
use wtransport::tls::Sha256Digest;

/// A compatible-mode session: the one stream and the lines read so far.
struct Compat {
    conn: wtransport::Connection,
    _endpoint: wtransport::Endpoint<wtransport::endpoint::endpoint_side::Client>,
    send: wtransport::SendStream,
    recv: wtransport::RecvStream,
    buf: Vec<u8>,
}

async fn wt_connect(srv: &common::TestServer, path: &str) -> Result<(wtransport::Connection, wtransport::Endpoint<wtransport::endpoint::endpoint_side::Client>), wtransport::error::ConnectingError> {
    let config = wtransport::ClientConfig::builder()
        .with_bind_default()
        .with_server_certificate_hashes([Sha256Digest::new(srv.cert_hash())])
        .build();
    let endpoint = wtransport::Endpoint::client(config).expect("client endpoint");
    let url = format!("https://127.0.0.1:{}{path}", srv.quic_addr().port());
    let conn = tokio::time::timeout(WAIT, endpoint.connect(url)).await.expect("connect in time")?;
    Ok((conn, endpoint))
}

impl Compat {
    async fn open(srv: &common::TestServer) -> Self {
        let (conn, endpoint) = wt_connect(srv, "/connection/webtransport").await.expect("session");
        let (send, recv) = conn.open_bi().await.expect("open").await.expect("opened");
        Self { conn, _endpoint: endpoint, send, recv, buf: Vec::new() }
    }

    /// Writes a batch the way centrifuge-js does: commands joined by `\n`, then `\n`.
    async fn send(&mut self, cmds: &[Value]) {
        let mut text = cmds.iter().map(Value::to_string).collect::<Vec<_>>().join("\n");
        text.push('\n');
        self.send.write_all(text.as_bytes()).await.expect("write");
    }

    /// The next JSON line, or None at the end of the stream.
    async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                let line = &line[..line.len() - 1];
                if line.is_empty() {
                    continue;
                }
                return Some(serde_json::from_slice(line).expect("server writes JSON lines"));
            }
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout(WAIT, self.recv.read(&mut chunk)).await.expect("data in time") {
                Ok(Some(n)) => self.buf.extend_from_slice(&chunk[..n]),
                _ => return None,
            }
        }
    }

    async fn next_non_ping(&mut self) -> Option<Value> {
        loop {
            let v = self.next().await?;
            if v != json!({}) {
                return Some(v);
            }
        }
    }
}

#[tokio::test]
async fn compatible_mode_speaks_centrifugo_json_and_pushes_the_disconnect() {
    let srv = start_quic("").await;
    let mut wt = Compat::open(&srv).await;
    // Optimistic subscribe in the same batch as connect, as centrifuge-js sends it.
    wt.send(&[
        json!({"id": 1, "connect": {"token": token("42", 3600)}}),
        json!({"id": 2, "subscribe": {"channel": "news"}}),
    ])
    .await;
    let connect = wt.next_non_ping().await.expect("connect reply");
    assert_eq!(connect["id"], 1);
    assert_eq!(connect["connect"]["pong"], true, "{connect}");
    assert_eq!(wt.next_non_ping().await.expect("subscribe reply"), json!({"id": 2, "subscribe": {}}));
    srv.publish("news", json!({"text": "over webtransport"})).await;
    assert_eq!(
        wt.next_non_ping().await.expect("publication"),
        json!({"push": {"channel": "news", "pub": {"data": {"text": "over webtransport"}}}})
    );
    // The server API disconnects the user: a disconnect push, then the stream ends.
    let (status, _) = srv.api("disconnect", json!({"user": "42", "disconnect": {"code": 4500, "reason": "bye"}})).await;
    assert_eq!(status, 200);
    assert_eq!(
        wt.next_non_ping().await.expect("disconnect push"),
        json!({"push": {"disconnect": {"code": 4500, "reason": "bye"}}})
    );
    assert!(wt.next().await.is_none(), "the stream ends after the disconnect push");
    let closed = tokio::time::timeout(WAIT, wt.conn.closed()).await.expect("session closed");
    assert!(closed.to_string().contains("4500") || closed.to_string().contains("bye"), "{closed}");
    srv.shutdown().await;
}

#[tokio::test]
async fn compatible_mode_bad_input_closes_with_3501() {
    let srv = start_quic("[webtransport]\nmessage_size_limit = 1024\n").await;
    // Garbage.
    let mut wt = Compat::open(&srv).await;
    wt.send.write_all(b"this is not json\n").await.expect("write");
    assert_eq!(wt.next().await.expect("push"), json!({"push": {"disconnect": {"code": 3501, "reason": "bad request"}}}));
    // An oversize line (no newline within the limit).
    let mut wt = Compat::open(&srv).await;
    wt.send.write_all(&vec![b'x'; 2048]).await.expect("write");
    let push = wt.next().await.expect("push");
    assert_eq!(push["push"]["disconnect"]["code"], 3501, "{push}");
    assert_eq!(push["push"]["disconnect"]["reason"], "message size limit exceeded");
    // A command before connect.
    let mut wt = Compat::open(&srv).await;
    wt.send(&[json!({"id": 1, "subscribe": {"channel": "news"}})]).await;
    assert_eq!(wt.next().await.expect("push")["push"]["disconnect"]["code"], 3501);
    // Everyone else is still served.
    let mut ok = Compat::open(&srv).await;
    ok.send(&[json!({"id": 1, "connect": {"token": token("1", 60)}})]).await;
    assert!(ok.next_non_ping().await.expect("reply")["connect"].is_object());
    srv.shutdown().await;
}

#[tokio::test]
async fn a_session_that_opens_no_stream_is_closed_after_the_timeout() {
    let srv = start_quic("[quic]\nstream_accept_timeout = \"300ms\"\n").await;
    let (conn, _endpoint) = wt_connect(&srv, "/connection/webtransport").await.expect("session");
    let started = Instant::now();
    let closed = tokio::time::timeout(WAIT, conn.closed()).await.expect("closed in time");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(closed.to_string().contains("3502") || closed.to_string().contains("stale"), "{closed}");
    srv.shutdown().await;
}

#[tokio::test]
async fn unknown_paths_get_404_and_protobuf_403() {
    let srv = start_quic("").await;
    assert_eq!(extended_connect_status(&srv, "/connection/nope").await, 404);
    assert_eq!(extended_connect_status(&srv, "/connection/webtransport/native?cf_protocol=protobuf").await, 403);
    // The native mode has its own format: Centrifugo Protobuf is for the compatible mode.
    let Err(err) = wt_connect(&srv, "/connection/webtransport/native?cf_protocol=protobuf").await else {
        panic!("the native mode accepted cf_protocol=protobuf")
    };
    assert!(matches!(err, wtransport::error::ConnectingError::SessionRejected), "{err}");
    // wtransport's client sees the refusal as a rejected session.
    let Err(err) = wt_connect(&srv, "/elsewhere").await else { panic!("session accepted on an unknown path") };
    assert!(matches!(err, wtransport::error::ConnectingError::SessionRejected), "{err}");
    // The endpoint keeps serving.
    let client = srv.native_client(Transport::WebTransport, "still").await;
    client.close().await;
    srv.shutdown().await;
}

/// The status of a WebTransport CONNECT to `path`, sent with hyperium's h3 client.
async fn extended_connect_status(srv: &common::TestServer, path: &str) -> u16 {
    let endpoint = h3_client_endpoint(srv);
    let conn = endpoint.connect(srv.quic_addr(), "127.0.0.1").expect("connecting").await.expect("handshake");
    let (mut driver, mut send) = h3::client::builder()
        .enable_extended_connect(true)
        .enable_datagram(true)
        .build::<_, _, Bytes>(h3_quinn::Connection::new(conn))
        .await
        .expect("h3 client");
    let drive = tokio::spawn(async move { std::future::poll_fn(|cx| driver.poll_close(cx)).await });
    let mut req = http::Request::builder()
        .method(http::Method::CONNECT)
        .uri(format!("https://127.0.0.1:{}{path}", srv.quic_addr().port()))
        .header("sec-webtransport-http3-draft02", "1")
        .header("origin", "http://127.0.0.1")
        .body(())
        .expect("request");
    req.extensions_mut().insert(h3::ext::Protocol::WEB_TRANSPORT);
    let mut stream = send.send_request(req).await.expect("sent");
    let resp = tokio::time::timeout(WAIT, stream.recv_response()).await.expect("response in time").expect("response");
    drive.abort();
    resp.status().as_u16()
}

fn h3_client_endpoint(srv: &common::TestServer) -> quinn::Endpoint {
    let certs = srv.running.as_ref().and_then(|r| r.certs.clone()).expect("certs");
    let mut roots = rustls::RootCertStore::empty();
    for c in certs.current().chain() {
        roots.add(c.clone()).expect("root");
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("tls13")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h3".to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).expect("quic tls");
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("endpoint");
    endpoint.set_default_client_config(quinn::ClientConfig::new(std::sync::Arc::new(crypto)));
    endpoint
}

#[tokio::test]
async fn native_mode_over_webtransport_streams_and_datagrams() {
    let srv = start_quic(
        "[[channel.namespaces]]\nname = \"live\"\ndelivery = \"datagram\"\nallow_subscribe_for_client = true\n",
    )
    .await;
    let client = srv.native_client(Transport::WebTransport, "wt").await;
    let mut a = client.subscribe("news").await.expect("subscribe");
    let mut b = client.subscribe("chat:x").await.expect("subscribe");
    assert_ne!(a.sub, b.sub);
    srv.publish("chat:x", json!("b")).await;
    srv.publish("news", json!("a")).await;
    assert_eq!(next_pub(&mut a).await.data, Bytes::from_static(b"\"a\""));
    assert_eq!(next_pub(&mut b).await.data, Bytes::from_static(b"\"b\""));
    let mut live = client.subscribe("live:x").await.expect("subscribe");
    let mut got = None;
    for i in 0..10 {
        srv.publish("live:x", json!(i)).await;
        if let Ok(Some(p)) = tokio::time::timeout(Duration::from_millis(500), live.next()).await {
            got = Some(p);
            break;
        }
    }
    assert!(got.expect("a datagram arrives").datagram);
    client.close().await;
    srv.shutdown().await;
}

#[tokio::test]
async fn the_dev_certificate_hash_is_served_over_http() {
    let srv = start_quic("").await;
    let body: Value = srv.http.get(srv.url("/webtransport/cert-hash")).send().await.expect("get").json().await.expect("json");
    let hex: String = srv.cert_hash().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(body, json!({"algorithm": "sha-256", "hash": hex}));
    srv.shutdown().await;
}

/// A compatible-mode session in Protobuf (`?cf_protocol=protobuf`).
struct PbCompat {
    _conn: wtransport::Connection,
    _endpoint: wtransport::Endpoint<wtransport::endpoint::endpoint_side::Client>,
    send: wtransport::SendStream,
    recv: wtransport::RecvStream,
    buf: Vec<u8>,
}

impl PbCompat {
    async fn open(srv: &common::TestServer) -> Self {
        let (conn, endpoint) = wt_connect(srv, "/connection/webtransport?cf_protocol=protobuf").await.expect("session");
        let (send, recv) = conn.open_bi().await.expect("open").await.expect("opened");
        Self { _conn: conn, _endpoint: endpoint, send, recv, buf: Vec::new() }
    }

    async fn send(&mut self, cmds: &[pb::Command]) {
        let mut out = Vec::new();
        for c in cmds {
            put_delimited(&mut out, c);
        }
        self.send.write_all(&out).await.expect("write");
    }

    /// The next delimited reply, or None at the end of the stream.
    async fn next(&mut self) -> Option<pb::Reply> {
        use prost::Message as _;
        loop {
            let mut view = &self.buf[..];
            if let Ok(len) = prost::decode_length_delimiter(&mut view)
                && view.len() >= len
            {
                let header = self.buf.len() - view.len();
                let reply = pb::Reply::decode(&view[..len]).expect("a reply");
                self.buf.drain(..header + len);
                return Some(reply);
            }
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout(WAIT, self.recv.read(&mut chunk)).await.expect("data in time") {
                Ok(Some(n)) => self.buf.extend_from_slice(&chunk[..n]),
                _ => return None,
            }
        }
    }

    async fn next_non_ping(&mut self) -> Option<pb::Reply> {
        loop {
            let r = self.next().await?;
            if r != pb::Reply::default() {
                return Some(r);
            }
        }
    }
}

#[tokio::test]
async fn compatible_mode_speaks_protobuf_with_cf_protocol() {
    let srv = start_quic("[webtransport]\nmessage_size_limit = 1024\n").await;
    let mut wt = PbCompat::open(&srv).await;
    wt.send(&[
        pb::Command { id: 1, connect: Some(pb::ConnectRequest { token: token("42", 3600), ..Default::default() }), ..Default::default() },
        pb::Command { id: 2, subscribe: Some(pb::SubscribeRequest { channel: "news".into(), ..Default::default() }), ..Default::default() },
    ])
    .await;
    let connect = wt.next_non_ping().await.expect("connect reply");
    assert!(connect.connect.is_some_and(|c| c.pong), "pongs are expected");
    assert!(wt.next_non_ping().await.expect("subscribe reply").subscribe.is_some());
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode([0u8, 0xff, 10]);
    let (status, _) = srv.api("publish", json!({"channel": "news", "b64data": b64})).await;
    assert_eq!(status, 200);
    let push = wt.next_non_ping().await.expect("publication").push.expect("push");
    assert_eq!((push.channel.as_str(), &push.r#pub.expect("pub").data[..]), ("news", &[0u8, 0xff, 10][..]));
    // A length prefix over the message size limit: a disconnect push, then the end.
    wt.send.write_all(&[0x80, 0x10]).await.expect("write"); // 2048
    let d = wt.next_non_ping().await.and_then(|r| r.push).and_then(|p| p.disconnect).expect("disconnect push");
    assert_eq!((d.code, d.reason.as_str()), (3501, "message size limit exceeded"));
    assert!(wt.next().await.is_none(), "the stream ends after the disconnect push");
    // A whole message with a wrong wire type (Command.id sent length-delimited).
    let mut wt = PbCompat::open(&srv).await;
    wt.send.write_all(&[2, 0x0a, 0]).await.expect("write");
    let d = wt.next_non_ping().await.and_then(|r| r.push).and_then(|p| p.disconnect).expect("disconnect push");
    assert_eq!(d.code, 3501, "a wrong wire type inside the length is a bad request");
    srv.shutdown().await;
}
