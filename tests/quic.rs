//! Raw QUIC (ALPN `tidewire/1`, native mode) end to end through `tidewire::client`:
//! per-subscription streams, the head-of-line guarantee and the slow-client bound,
//! datagram channels, and bad input on the QUIC side.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{WAIT, next_pub, start_quic};
use serde_json::json;
use tidewire::client::{Client, Event, Transport, Trust};

const LIVE: &str = r#"
[[channel.namespaces]]
name = "live"
delivery = "datagram"
allow_subscribe_for_client = true
allow_publish_for_subscriber = true
"#;

#[tokio::test]
async fn raw_quic_subscribe_publish_and_unsubscribe() {
    let srv = start_quic("").await;
    let alice = srv.native_client(Transport::Quic, "alice").await;
    let bob = srv.native_client(Transport::Quic, "bob").await;
    let mut news = alice.subscribe("news").await.expect("subscribe");
    assert!(news.sub > 0);
    srv.publish("news", json!({"text": "hello"})).await;
    let p = next_pub(&mut news).await;
    assert_eq!(&*p.channel, "news");
    assert_eq!(p.data, Bytes::from_static(br#"{"text":"hello"}"#));
    assert!(!p.datagram);

    // A client publish reaches another subscriber with the publisher's info.
    let mut room_a = alice.subscribe("chat:room").await.expect("subscribe");
    let _room_b = bob.subscribe("chat:room").await.expect("subscribe");
    bob.publish("chat:room", Bytes::from_static(b"\"hi\"")).await.expect("publish");
    let p = next_pub(&mut room_a).await;
    assert_eq!(p.data, Bytes::from_static(b"\"hi\""));
    assert_eq!(p.info.expect("info").user, "bob");

    // Errors come back with their codes; the connection stays usable.
    let err = alice.subscribe("nope:x").await.expect_err("unknown namespace");
    assert_eq!(err, tidewire::client::Error::Reply { code: 102, message: "unknown channel".into() });
    let err = alice.subscribe("news").await.expect_err("already subscribed");
    assert!(matches!(err, tidewire::client::Error::Reply { code: 105, .. }), "{err}");

    // After unsubscribing, the subscription's stream ends.
    alice.unsubscribe("news").await.expect("unsubscribe");
    srv.publish("news", json!(2)).await;
    assert!(tokio::time::timeout(WAIT, news.next()).await.expect("ends in time").is_none());
    alice.close().await;
    bob.close().await;
    srv.shutdown().await;
}

#[tokio::test]
async fn certificates_can_be_trusted_as_a_root_too() {
    let srv = start_quic("").await;
    let certs = srv.running.as_ref().and_then(|r| r.certs.clone()).expect("certs");
    let pem: String = certs
        .current()
        .chain()
        .iter()
        .map(|c| {
            use base64::Engine;
            let b64 = base64::engine::general_purpose::STANDARD.encode(c.as_ref());
            let lines: Vec<&str> = b64.as_bytes().chunks(64).map(|l| std::str::from_utf8(l).expect("ascii")).collect();
            format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", lines.join("\n"))
        })
        .collect();
    let mut opts = srv.client_options(Transport::Quic, "u");
    opts.trust = Trust::RootsPem(pem);
    let client = Client::connect(opts).await.expect("connects with the certificate as root");
    assert_eq!(client.connect_result().client.len(), 36);
    // A pin that does not match is refused.
    let mut opts = srv.client_options(Transport::Quic, "u");
    opts.trust = Trust::CertHash(vec![[7u8; 32]]);
    assert!(matches!(Client::connect(opts).await, Err(tidewire::client::Error::Connect(_))));
    client.close().await;
    srv.shutdown().await;
}

/// A subscriber that stops reading channel A keeps receiving channel B on time while A's
/// publications queue on the server; past `client.queue_max_size` the connection is
/// closed as slow (3008).
#[tokio::test]
async fn a_stalled_channel_does_not_delay_another_and_the_slow_bound_applies() {
    let srv = start_quic("[client]\nqueue_max_size = 262144\n").await;
    let mut opts = srv.client_options(Transport::Quic, "hol");
    opts.stream_receive_window = Some(16 * 1024);
    opts.subscription_buffer = 4;
    let client = Client::connect(opts).await.expect("connect");
    let mut a = client.subscribe("a").await.expect("a");
    let mut b = client.subscribe("b").await.expect("b");
    let payload = json!("x".repeat(2000));

    // Phase 1: A is not read; 40 × 2 KB overflow its 16 KB window and 4-slot queue.
    for _ in 0..40 {
        srv.publish("a", payload.clone()).await;
    }
    let started = Instant::now();
    srv.publish("b", json!("on time")).await;
    let p = next_pub(&mut b).await;
    assert_eq!(p.data, Bytes::from_static(b"\"on time\""));
    assert!(started.elapsed() < Duration::from_millis(500), "B was delayed {:?} by A", started.elapsed());
    assert!(a.try_next().is_some(), "A's queue holds what fitted");
    // A's publications were queued, not lost: all 40 arrive once A is read again.
    let mut got = 1;
    while got < 40 {
        next_pub(&mut a).await;
        got += 1;
    }

    // Phase 2: stall A again and publish past the 256 KiB bound → disconnected as slow.
    let mut published = 0;
    while published < 400 && client.disconnect_reason().is_none() {
        srv.publish("a", payload.clone()).await;
        published += 1;
        if published % 50 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let (code, reason) = tokio::time::timeout(WAIT, client.closed()).await.expect("closed in time");
    assert_eq!((code, reason.as_str()), (3008, "slow"), "after {published} publications");
    assert!(published > 100, "the bound is the configured 256 KiB, not less ({published})");
    srv.shutdown().await;
}

#[tokio::test]
async fn a_datagram_channel_delivers_and_falls_back_to_its_stream_when_too_big() {
    let srv = start_quic(LIVE).await;
    let client = srv.native_client(Transport::Quic, "d").await;
    let mut live = client.subscribe("live:cursor").await.expect("subscribe");
    // Datagrams are unreliable: publish until one arrives (loopback rarely drops any).
    let mut arrived = None;
    for i in 0..10 {
        srv.publish("live:cursor", json!({"x": i})).await;
        if let Ok(Some(p)) = tokio::time::timeout(Duration::from_millis(500), live.next()).await {
            arrived = Some(p);
            break;
        }
    }
    let p = arrived.expect("a datagram publication arrives");
    assert!(p.datagram, "delivered as a datagram");
    while live.try_next().is_some() {}
    // 4000 bytes cannot be one datagram: it comes on the subscription's stream instead.
    let big = "y".repeat(4000);
    srv.publish("live:cursor", json!(big)).await;
    let p = loop {
        let p = next_pub(&mut live).await;
        if p.data.len() > 4000 {
            break p;
        }
    };
    assert!(!p.datagram, "an oversize publication falls back to the stream");
    assert_eq!(p.data, Bytes::from(format!("\"{big}\"")));
    client.close().await;
    srv.shutdown().await;
}

#[tokio::test]
async fn client_datagrams_publish_and_an_unknown_subscription_gets_a_notice() {
    let srv = start_quic(LIVE).await;
    let sender = srv.native_client(Transport::Quic, "s").await;
    let receiver = srv.native_client(Transport::Quic, "r").await;
    let mut events = sender.events().expect("events");
    let sub = sender.subscribe("live:pos").await.expect("subscribe");
    let mut rx = receiver.subscribe("live:pos").await.expect("subscribe");
    let mut got = None;
    for _ in 0..10 {
        sender.publish_datagram(sub.sub, b"{\"x\":1}").expect("datagram sent");
        if let Ok(Some(p)) = tokio::time::timeout(Duration::from_millis(500), rx.next()).await {
            got = Some(p);
            break;
        }
    }
    let p = got.expect("a datagram publish reaches the other subscriber");
    assert_eq!(p.data, Bytes::from_static(b"{\"x\":1}"));
    assert_eq!(p.info.expect("publisher").user, "s");

    sender.publish_datagram(999, b"1").expect("datagram sent");
    let notice = loop {
        match tokio::time::timeout(WAIT, events.recv()).await.expect("event in time").expect("events open") {
            Event::Notice(code, message) => break (code, message),
            _ => continue,
        }
    };
    assert_eq!(notice, (107, "datagram for unknown subscription 999".to_string()));
    // The connection keeps working.
    sender.publish("live:pos", Bytes::from_static(b"2")).await.expect("still connected");
    sender.close().await;
    receiver.close().await;
    srv.shutdown().await;
}

#[tokio::test]
async fn garbage_on_the_control_stream_closes_that_connection_only() {
    let srv = start_quic("").await;
    let bystander = srv.native_client(Transport::Quic, "b").await;
    let mut news = bystander.subscribe("news").await.expect("subscribe");
    let bad = srv.native_client(Transport::Quic, "g").await;
    // A 5-byte frame that is not a postcard command.
    bad.send_raw_control(&[5, 0xff, 0xff, 0xff, 0xff, 0xff]).await.expect("written");
    let (code, reason) = tokio::time::timeout(WAIT, bad.closed()).await.expect("closed in time");
    assert_eq!((code, reason.as_str()), (3501, "bad request"));
    srv.publish("news", json!(1)).await;
    assert_eq!(next_pub(&mut news).await.data, Bytes::from_static(b"1"));
    bystander.close().await;
    srv.shutdown().await;
}

#[tokio::test]
async fn an_oversize_frame_is_refused_before_it_is_buffered() {
    let srv = start_quic("[webtransport]\nmessage_size_limit = 1024\n").await;
    let client = srv.native_client(Transport::Quic, "o").await;
    // The length prefix alone announces 100,000 bytes: refused without waiting for them.
    let mut frame = Vec::new();
    tidewire::protocol::framing::put_varint(&mut frame, 100_000);
    frame.extend_from_slice(&[0u8; 16]);
    client.send_raw_control(&frame).await.expect("written");
    let (code, reason) = tokio::time::timeout(WAIT, client.closed()).await.expect("closed in time");
    assert_eq!((code, reason.as_str()), (3501, "message size limit exceeded"));
    srv.shutdown().await;
}

fn raw_quic_endpoint(srv: &common::TestServer, alpn: &[u8]) -> quinn::Endpoint {
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
    tls.alpn_protocols = vec![alpn.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).expect("quic tls");
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("endpoint");
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    endpoint
}

#[tokio::test]
async fn a_wrong_alpn_is_refused_by_tls_and_others_keep_being_served() {
    let srv = start_quic("").await;
    let endpoint = raw_quic_endpoint(&srv, b"nope/1");
    let err = endpoint
        .connect(srv.quic_addr(), "127.0.0.1")
        .expect("connecting")
        .await
        .expect_err("no common ALPN");
    let text = err.to_string();
    assert!(text.contains("no_application_protocol") || text.contains("120"), "{text}");
    let client = srv.native_client(Transport::Quic, "after").await;
    assert!(client.subscribe("news").await.is_ok());
    client.close().await;
    srv.shutdown().await;
}

#[tokio::test]
async fn a_connection_that_never_opens_its_control_stream_is_closed() {
    let srv = start_quic("[quic]\nstream_accept_timeout = \"300ms\"\n").await;
    let endpoint = raw_quic_endpoint(&srv, b"tidewire/1");
    let conn = endpoint.connect(srv.quic_addr(), "127.0.0.1").expect("connecting").await.expect("handshake");
    let started = Instant::now();
    let err = tokio::time::timeout(WAIT, conn.closed()).await.expect("closed in time");
    match err {
        quinn::ConnectionError::ApplicationClosed(close) => {
            assert_eq!(close.error_code.into_inner(), 3502);
            assert_eq!(&close.reason[..], b"stale");
        }
        other => panic!("expected an application close, got {other}"),
    }
    assert!(started.elapsed() < Duration::from_secs(3));
    srv.shutdown().await;
}

#[tokio::test]
async fn many_clients_share_one_socket_through_a_connector() {
    let srv = start_quic("").await;
    let opts = srv.client_options(Transport::Quic, "shared");
    let connector = tidewire::client::Connector::new(&opts).expect("connector");
    let mut clients = Vec::new();
    let mut subs = Vec::new();
    for _ in 0..5 {
        let c = connector.connect(opts.clone()).await.expect("connects");
        subs.push(c.subscribe("news").await.expect("subscribe"));
        clients.push(c);
    }
    srv.publish("news", json!("all")).await;
    for s in &mut subs {
        assert_eq!(next_pub(s).await.data, Bytes::from_static(b"\"all\""));
    }
    for c in clients {
        c.close().await;
    }
    srv.shutdown().await;
}

#[tokio::test]
async fn graceful_shutdown_tells_quic_and_webtransport_clients_3001() {
    let mut srv = start_quic("").await;
    let quic = srv.native_client(Transport::Quic, "q").await;
    let wt = srv.native_client(Transport::WebTransport, "w").await;
    let running = srv.running.take().expect("running");
    let stopping = tokio::spawn(running.shutdown());
    let (code, reason) = tokio::time::timeout(WAIT, quic.closed()).await.expect("quic closed in time");
    assert_eq!((code, reason.as_str()), (3001, "shutdown"));
    let (code, reason) = tokio::time::timeout(WAIT, wt.closed()).await.expect("webtransport closed in time");
    assert_eq!((code, reason.as_str()), (3001, "shutdown"));
    tokio::time::timeout(WAIT, stopping).await.expect("shutdown completes").expect("no panic");
}

#[tokio::test]
async fn history_and_presence_through_the_native_client() {
    let srv = start_quic(
        "[[channel.namespaces]]\nname = \"hist\"\nallow_subscribe_for_client = true\nallow_publish_for_subscriber = true\nallow_history_for_subscriber = true\nallow_presence_for_subscriber = true\npresence = true\nhistory_size = 10\nhistory_ttl = \"60s\"\n",
    )
    .await;
    let client = srv.native_client(Transport::Quic, "hist").await;
    let mut sub = client.subscribe("hist:room").await.expect("subscribe");
    for i in 1..=3 {
        client.publish("hist:room", Bytes::from(i.to_string())).await.expect("publish");
    }
    let mut offsets = Vec::new();
    for _ in 0..3 {
        offsets.push(next_pub(&mut sub).await.offset);
    }
    assert_eq!(offsets, vec![1, 2, 3], "publications carry their stream offsets");
    let history = client.history("hist:room", -1, None).await.expect("history");
    let data: Vec<Bytes> = history.publications.iter().map(|p| p.data.clone()).collect();
    assert_eq!(data, vec![Bytes::from_static(b"1"), Bytes::from_static(b"2"), Bytes::from_static(b"3")]);
    assert_eq!(history.offset, 3);
    assert!(!history.epoch.is_empty());
    let presence = client.presence("hist:room").await.expect("presence");
    assert_eq!(presence.len(), 1);
    assert_eq!(presence[0].1.user, "hist");
    assert_eq!(client.presence_stats("hist:room").await.expect("stats"), (1, 1));
    // Not allowed where the namespace does not enable it.
    let err = client.history("news", 10, None).await.expect_err("no history on news");
    assert!(matches!(err, tidewire::client::Error::Reply { .. }), "{err}");
    client.close().await;
    srv.shutdown().await;
}
