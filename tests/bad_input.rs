//! Bad input over WebSocket: each case gets its documented code, nothing panics, and the
//! server keeps serving a bystander connected all along.

mod common;

use std::time::Duration;

use common::{Closed, start, token};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

/// A client connected before the abuse and checked after it.
async fn bystander_still_served(srv: &common::TestServer, ws: &mut common::Ws, n: u64) {
    srv.publish("watch", json!({"n": n})).await;
    assert_eq!(ws.push("pub").await["pub"]["data"]["n"], n, "bystander must keep receiving");
}

#[tokio::test]
async fn protocol_violations_close_with_their_codes() {
    let srv = start("").await;
    let (mut bystander, _) = srv.client("b").await;
    bystander.subscribe(2, "watch").await;
    let cases: Vec<(&str, Message, Closed)> = vec![
        ("malformed JSON", Message::Text("{\"id\":1,\"connect\":".into()), Closed::Frame(3501, "bad request".into())),
        ("not an object", Message::Text("[1,2,3]".into()), Closed::Frame(3501, "bad request".into())),
        ("empty frame", Message::Text("\n\n".into()), Closed::Frame(3501, "bad request".into())),
        (
            "command before connect",
            Message::Text(json!({"id": 1, "subscribe": {"channel": "a"}}).to_string().into()),
            Closed::Frame(3501, "bad request".into()),
        ),
        (
            "connect without id",
            Message::Text(json!({"connect": {"token": token("x", 60)}}).to_string().into()),
            Closed::Frame(3501, "bad request".into()),
        ),
        ("binary on a JSON connection", Message::Binary(vec![1, 2, 3].into()), Closed::Frame(3506, "inappropriate protocol".into())),
        (
            "oversize frame",
            Message::Text(format!("{{\"id\":1,\"connect\":{{\"data\":\"{}\"}}}}", "x".repeat(70_000)).into()),
            Closed::Frame(1009, "message size limit exceeded".into()),
        ),
    ];
    for (i, (name, msg, expected)) in cases.into_iter().enumerate() {
        let mut ws = srv.ws().await;
        ws.send_raw(msg).await;
        assert_eq!(ws.closed().await, expected, "{name}");
        bystander_still_served(&srv, &mut bystander, i as u64).await;
    }
    srv.shutdown().await;
}

#[tokio::test]
async fn invalid_utf8_text_frame_is_a_bad_request() {
    let srv = start("").await;
    let (mut bystander, _) = srv.client("b").await;
    bystander.subscribe(2, "watch").await;
    let mut ws = srv.ws().await;
    // A text frame whose payload is not UTF-8 can only be built from raw frame parts.
    let frame = tokio_tungstenite::tungstenite::protocol::frame::Frame::message(
        vec![0x7b, 0xff, 0xfe, 0x7d],
        tokio_tungstenite::tungstenite::protocol::frame::coding::OpCode::Data(
            tokio_tungstenite::tungstenite::protocol::frame::coding::Data::Text,
        ),
        true,
    );
    ws.send_raw(Message::Frame(frame)).await;
    assert_eq!(ws.closed().await, Closed::Frame(3501, "bad request".into()));
    bystander_still_served(&srv, &mut bystander, 1).await;
    srv.shutdown().await;
}

#[tokio::test]
async fn second_connect_and_command_without_id_close_the_connection() {
    let srv = start("").await;
    let (mut ws, _) = srv.client("u").await;
    ws.send(&json!({"id": 2, "connect": {"token": token("u", 60)}})).await;
    assert_eq!(ws.closed().await, Closed::Frame(3501, "bad request".into()));
    let (mut ws, _) = srv.client("u").await;
    ws.send(&json!({"subscribe": {"channel": "a"}})).await;
    assert_eq!(ws.closed().await, Closed::Frame(3501, "bad request".into()));
    srv.shutdown().await;
}

#[tokio::test]
async fn long_channel_names_and_too_many_subscriptions_are_errors_not_disconnects() {
    let srv = start("").await;
    let (mut ws, _) = srv.client("u").await;
    assert_eq!(ws.subscribe(2, &"a".repeat(256)).await["error"]["code"], 107);
    assert!(ws.subscribe(3, &"a".repeat(255)).await["subscribe"].is_object());
    // One subscription exists; fill up to the limit of 128, then one more.
    let frame: Vec<String> =
        (0..127).map(|i| json!({"id": 10 + i, "subscribe": {"channel": format!("c{i}")}}).to_string()).collect();
    ws.send_text(&frame.join("\n")).await;
    for i in 0..127 {
        assert!(ws.reply(10 + i).await["subscribe"].is_object(), "subscription {i}");
    }
    assert_eq!(ws.subscribe(500, "one-too-many").await["error"], json!({"code": 106, "message": "limit exceeded"}));
    ws.send(&json!({"id": 501, "publish": {"channel": "c1"}})).await;
    assert_eq!(ws.reply(501).await["error"]["code"], 107, "publish without data");
    srv.shutdown().await;
}

#[tokio::test]
async fn origins_are_checked_on_upgrade() {
    let srv = start("").await;
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(srv.ws_url())
        .expect("request");
    req.headers_mut().insert("origin", "http://evil.example".parse().expect("header"));
    let err = tokio_tungstenite::connect_async(req).await.expect_err("rejected");
    assert!(err.to_string().contains("403"), "{err}");
    srv.shutdown().await;

    let srv = start("[client]\nallowed_origins = [\"http://*.good.example\"]").await;
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(srv.ws_url())
        .expect("request");
    req.headers_mut().insert("origin", "http://app.good.example".parse().expect("header"));
    assert!(tokio_tungstenite::connect_async(req).await.is_ok(), "allowed origin");
    srv.shutdown().await;
}

#[tokio::test]
async fn slow_client_is_dropped_with_3008_and_others_keep_receiving() {
    let srv = start("[client]\nqueue_max_size = 2097152").await;
    let (mut slow, _) = srv.client("slow").await;
    let (mut fast, _) = srv.client("fast").await;
    slow.subscribe(2, "flood").await;
    fast.subscribe(2, "flood").await;
    // The fast reader drains in the background while the slow one reads nothing.
    let reader = tokio::spawn(async move {
        let mut got = 0u64;
        while got < 400 {
            fast.push("pub").await;
            got += 1;
        }
        (fast, got)
    });
    let chunk = "y".repeat(60_000);
    for i in 0..40 {
        let commands: Vec<_> =
            (0..10).map(|j| json!({"publish": {"channel": "flood", "data": {"i": i * 10 + j, "pad": chunk}}})).collect();
        let (status, _) = srv.api("batch", json!({"commands": commands})).await;
        assert_eq!(status, 200);
    }
    let (_, got) = tokio::time::timeout(Duration::from_secs(20), reader).await.expect("fast reader done").expect("join");
    assert_eq!(got, 400, "the fast client received everything");
    // The slow one was cut off: metric says so and its stream ends.
    let mut slow_count = 0;
    for _ in 0..50 {
        let text = srv.http.get(srv.url("/metrics")).send().await.expect("req").text().await.expect("body");
        slow_count = text
            .lines()
            .find(|l| l.starts_with("tidewire_client_slow_disconnects_total "))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        if slow_count > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(slow_count, 1);
    let mut received = 0;
    let end = loop {
        match tokio::time::timeout(common::WAIT, futures_util::StreamExt::next(&mut slow.stream)).await {
            Ok(Some(Ok(Message::Text(_)))) => received += 1,
            Ok(Some(Ok(Message::Close(f)))) => break f.map(|f| u16::from(f.code)),
            Ok(Some(Ok(_))) => {}
            Ok(None) | Ok(Some(Err(_))) | Err(_) => break None,
        }
    };
    assert!(received < 400, "the slow client did not get everything");
    if let Some(code) = end {
        assert_eq!(code, 3008);
    }
    srv.shutdown().await;
}
