//! The client protocol over WebSocket, end to end against a real server on 127.0.0.1.

mod common;

use std::time::Duration;

use common::{Closed, start, token, token_with};
use serde_json::{Value, json};

#[tokio::test]
async fn connect_subscribe_and_receive_an_api_publication() {
    let srv = start("").await;
    let (mut ws, connect) = srv.client("42").await;
    assert!(connect["client"].as_str().is_some_and(|c| c.len() == 36), "{connect}");
    assert_eq!(connect["ping"], 25);
    assert_eq!(connect["pong"], true);
    assert!(connect["expires"].as_bool().unwrap_or(false));
    let sub = ws.subscribe(2, "news").await;
    assert_eq!(sub, json!({"id": 2, "subscribe": {}}));
    srv.publish("news", json!({"text": "hello"})).await;
    let push = ws.push("pub").await;
    assert_eq!(push, json!({"channel": "news", "pub": {"data": {"text": "hello"}}}));
    srv.shutdown().await;
}

/// The TCP listener on the connections' runtime (`http_server.threads = 0`) or on two
/// threads of its own: connections opened through it are served either way, and the API
/// publishes to them (the default, one thread, is what every other test runs).
#[tokio::test]
async fn connections_are_served_whatever_the_listener_s_threads() {
    for threads in [0, 2] {
        let srv = common::start_edited("", |c| c.http_server.threads = threads).await;
        let (mut ws, _) = srv.client("42").await;
        assert_eq!(ws.subscribe(2, "news").await, json!({"id": 2, "subscribe": {}}), "threads = {threads}");
        srv.publish("news", json!({"n": threads})).await;
        assert_eq!(ws.push("pub").await["pub"]["data"], json!({"n": threads}), "threads = {threads}");
        srv.shutdown().await;
    }
}

#[tokio::test]
async fn connect_and_subscribes_in_one_frame_are_processed_in_order() {
    let srv = start("").await;
    let mut ws = srv.ws().await;
    let frame = format!(
        "{}\n{}\n{}",
        json!({"id": 1, "connect": {"token": token("1", 60)}}),
        json!({"id": 2, "subscribe": {"channel": "a", "flag": 1}}),
        json!({"id": 3, "subscribe": {"channel": "chat:b"}})
    );
    ws.send_text(&frame).await;
    assert!(ws.next().await.expect("reply")["connect"].is_object());
    assert_eq!(ws.next().await.expect("reply")["id"], 2);
    assert_eq!(ws.next().await.expect("reply")["id"], 3);
    srv.shutdown().await;
}

#[tokio::test]
async fn client_publish_reaches_other_subscribers_with_publisher_info() {
    let srv = start("").await;
    let (mut alice, a) = srv.client("alice").await;
    let (mut bob, _) = srv.client("bob").await;
    alice.subscribe(2, "chat:room").await;
    bob.subscribe(2, "chat:room").await;
    alice.send(&json!({"id": 3, "publish": {"channel": "chat:room", "data": {"msg": "hi bob"}}})).await;
    assert_eq!(alice.reply(3).await, json!({"id": 3, "publish": {}}));
    let push = bob.push("pub").await;
    assert_eq!(push["pub"]["data"], json!({"msg": "hi bob"}));
    assert_eq!(push["pub"]["info"]["user"], "alice");
    assert_eq!(push["pub"]["info"]["client"], a["client"]);
    srv.shutdown().await;
}

#[tokio::test]
async fn permissions_and_namespaces_give_their_error_codes() {
    let srv = start("").await;
    let (mut ws, _) = srv.client("7").await;
    let err = |v: &Value| v["error"]["code"].as_u64();
    // Unknown namespace → 102.
    assert_eq!(err(&ws.subscribe(2, "nope:x").await), Some(102));
    // Publishing without being subscribed (subscriber-only) → 103; read-only namespace → 103.
    ws.send(&json!({"id": 3, "publish": {"channel": "chat:x", "data": 1}})).await;
    assert_eq!(err(&ws.reply(3).await), Some(103));
    ws.subscribe(4, "readonly:x").await;
    ws.send(&json!({"id": 5, "publish": {"channel": "readonly:x", "data": 1}})).await;
    assert_eq!(err(&ws.reply(5).await), Some(103));
    // Already subscribed → 105.
    assert_eq!(err(&ws.subscribe(6, "readonly:x").await), Some(105));
    // Private channel without a token → 103; user-limited channel for someone else → 103.
    assert_eq!(err(&ws.subscribe(7, "$secret").await), Some(103));
    assert_eq!(err(&ws.subscribe(8, "dm:talk#1,2").await), Some(103));
    assert!(ws.subscribe(9, "dm:talk#7,8").await["subscribe"].is_object());
    // channel_regex applies to the part after "ns:".
    assert_eq!(err(&ws.subscribe(10, "rx:Upper").await), Some(103));
    assert!(ws.subscribe(11, "rx:lower").await["subscribe"].is_object());
    // History and presence are off in these namespaces → 108; rpc without an RPC proxy → 108
    // (centrifuge-js's own suite expects it); unknown command → 104.
    ws.send(&json!({"id": 12, "history": {"channel": "chat:x", "limit": 10}})).await;
    assert_eq!(err(&ws.reply(12).await), Some(108));
    ws.send(&json!({"id": 13, "presence": {"channel": "chat:x"}})).await;
    assert_eq!(err(&ws.reply(13).await), Some(108));
    ws.send(&json!({"id": 14, "rpc": {"method": "m", "data": {}}})).await;
    assert_eq!(err(&ws.reply(14).await), Some(108));
    ws.send(&json!({"id": 15, "frobnicate": {}})).await;
    assert_eq!(err(&ws.reply(15).await), Some(104));
    ws.send(&json!({"id": 16, "ping": {}})).await;
    assert_eq!(ws.reply(16).await, json!({"id": 16, "ping": {}}));
    srv.shutdown().await;
}

#[tokio::test]
async fn anonymous_access_follows_namespace_options() {
    let srv = start("[client]\nallow_anonymous_connect_without_token = true").await;
    let mut ws = srv.ws().await;
    ws.send(&json!({"id": 1, "connect": {}})).await;
    assert!(ws.reply(1).await["connect"].is_object());
    assert_eq!(ws.subscribe(2, "news").await["error"]["code"], 103);
    assert!(ws.subscribe(3, "open:lobby").await["subscribe"].is_object());
    ws.send(&json!({"id": 4, "publish": {"channel": "open:lobby", "data": {"a": 1}}})).await;
    assert_eq!(ws.reply(4).await, json!({"id": 4, "publish": {}}));
    assert_eq!(ws.push("pub").await["pub"]["data"], json!({"a": 1}));
    srv.shutdown().await;
}

#[tokio::test]
async fn connecting_without_credentials_is_refused_with_3501() {
    let srv = start("").await;
    let mut ws = srv.ws().await;
    ws.send(&json!({"id": 1, "connect": {}})).await;
    assert_eq!(ws.closed().await, Closed::Frame(3501, "client credentials not found".into()));
    srv.shutdown().await;
}

#[tokio::test]
async fn subscription_token_grants_a_private_channel() {
    let srv = start("").await;
    let (mut ws, connect) = srv.client("u1").await;
    let client = connect["client"].as_str().expect("client id").to_owned();
    let good = token_with(&json!({"sub": "u1", "channel": "$room", "client": client, "info": {"role": "mod"}}));
    ws.send(&json!({"id": 2, "subscribe": {"channel": "$room", "token": good}})).await;
    assert!(ws.reply(2).await["subscribe"].is_object());
    // A token that does not verify: 103, the connection stays.
    let forged = tidewire::auth::jwt::mint_hs256("not-the-secret", &json!({"sub": "u1", "channel": "$other"}))
        .expect("mint");
    ws.send(&json!({"id": 3, "subscribe": {"channel": "$other", "token": forged}})).await;
    assert_eq!(ws.reply(3).await["error"]["code"], 103);
    // A token for another user or channel costs the connection (3500), as in Centrifugo.
    for (claims, channel) in [(json!({"sub": "u2", "channel": "$other"}), "$other"), (json!({"sub": "u1", "channel": "$x"}), "$y")] {
        let (mut other, _) = srv.client("u1").await;
        other.send(&json!({"id": 2, "subscribe": {"channel": channel, "token": token_with(&claims)}})).await;
        assert_eq!(other.closed().await, Closed::Frame(3500, "invalid token".into()), "{claims}");
    }
    let expired = token_with(&json!({"sub": "u1", "channel": "$z", "exp": common::now_secs() - 5}));
    ws.send(&json!({"id": 5, "subscribe": {"channel": "$z", "token": expired}})).await;
    assert_eq!(ws.reply(5).await["error"]["code"], 109);
    // sub_refresh with a fresh token extends the subscription.
    let fresh = token_with(&json!({"sub": "u1", "channel": "$room", "exp": common::now_secs() + 100}));
    ws.send(&json!({"id": 6, "sub_refresh": {"channel": "$room", "token": fresh}})).await;
    let r = ws.reply(6).await;
    assert_eq!(r["sub_refresh"]["expires"], true, "{r}");
    srv.shutdown().await;
}

#[tokio::test]
async fn token_channels_claim_makes_server_side_subscriptions() {
    let srv = start("").await;
    let mut ws = srv.ws().await;
    let t = token_with(&json!({"sub": "5", "channels": ["news", "chat:a"]}));
    ws.send(&json!({"id": 1, "connect": {"token": t}})).await;
    let reply = ws.reply(1).await;
    assert_eq!(reply["connect"]["subs"], json!({"chat:a": {}, "news": {}}));
    srv.publish("chat:a", json!("x")).await;
    assert_eq!(ws.push("pub").await["channel"], "chat:a");
    // A client cannot unsubscribe a server-side subscription.
    ws.send(&json!({"id": 2, "unsubscribe": {"channel": "chat:a"}})).await;
    ws.reply(2).await;
    srv.publish("chat:a", json!("y")).await;
    assert_eq!(ws.push("pub").await["pub"]["data"], "y");
    srv.shutdown().await;
}

#[tokio::test]
async fn server_api_subscribe_unsubscribe_and_disconnect_take_effect() {
    let srv = start("").await;
    let (mut ws, _) = srv.client("99").await;
    let (status, body) = srv.api("subscribe", json!({"user": "99", "channel": "chat:srv", "data": {"w": 1}})).await;
    assert_eq!((status, body), (200, json!({"result": {}})));
    let push = ws.push("subscribe").await;
    assert_eq!(push, json!({"channel": "chat:srv", "subscribe": {"data": {"w": 1}}}));
    srv.publish("chat:srv", json!(1)).await;
    assert_eq!(ws.push("pub").await["pub"]["data"], 1);
    srv.api("unsubscribe", json!({"user": "99", "channel": "chat:srv"})).await;
    let push = ws.push("unsubscribe").await;
    assert_eq!(push["unsubscribe"], json!({"code": 2000, "reason": "server unsubscribe"}));
    let (_, info) = srv.api("channels", json!({})).await;
    assert_eq!(info["result"]["channels"], json!({}));
    srv.api("disconnect", json!({"user": "99", "disconnect": {"code": 4501, "reason": "bye"}})).await;
    assert_eq!(ws.closed().await, Closed::Frame(4501, "bye".into()));
    srv.shutdown().await;
}

#[tokio::test]
async fn disconnect_api_respects_client_filter_and_whitelist() {
    let srv = start("").await;
    let (mut a, ca) = srv.client("u").await;
    let (mut b, cb) = srv.client("u").await;
    let a_id = ca["client"].as_str().expect("id").to_owned();
    srv.api("disconnect", json!({"user": "u", "whitelist": [a_id]})).await;
    assert_eq!(b.closed().await, Closed::Frame(3503, "force disconnect".into()));
    a.send(&json!({"id": 5, "ping": {}})).await;
    assert_eq!(a.reply(5).await["id"], 5, "whitelisted client stays connected");
    let _ = cb;
    srv.shutdown().await;
}

#[tokio::test]
async fn refresh_extends_and_expired_refresh_closes_with_3005() {
    let srv = start("").await;
    let (mut ws, _) = srv.client("r").await;
    ws.send(&json!({"id": 2, "refresh": {"token": token("r", 7200)}})).await;
    let r = ws.reply(2).await;
    assert_eq!(r["refresh"]["expires"], true);
    assert!(r["refresh"]["ttl"].as_u64().is_some_and(|t| t > 3600), "{r}");
    ws.send(&json!({"id": 3, "refresh": {"token": token("r", -10)}})).await;
    assert_eq!(ws.closed().await, Closed::Frame(3005, "connection expired".into()));
    srv.shutdown().await;
}

#[tokio::test]
async fn token_errors_expired_is_109_and_invalid_is_3500() {
    let srv = start("").await;
    let mut ws = srv.ws().await;
    ws.send(&json!({"id": 1, "connect": {"token": token("x", -10)}})).await;
    let r = ws.reply(1).await;
    assert_eq!(r["error"], json!({"code": 109, "message": "token expired"}));
    // After a failed connect the connection ignores commands.
    ws.send(&json!({"id": 2, "subscribe": {"channel": "news"}})).await;
    ws.quiet_for(Duration::from_millis(300)).await;

    let forged = tidewire::auth::jwt::mint_hs256("not-the-secret", &json!({"sub": "x"})).expect("mint");
    let wrong_alg = {
        // A valid HMAC token whose header claims RS256.
        let t = token("x", 60);
        let parts: Vec<&str> = t.split('.').collect();
        use base64::Engine;
        let h = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        format!("{h}.{}.{}", parts[1], parts[2])
    };
    let alg_none = {
        use base64::Engine;
        let e = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        format!("{}.{}.", e(br#"{"alg":"none"}"#), e(br#"{"sub":"x"}"#))
    };
    for bad in [forged, wrong_alg, alg_none, "garbage".to_string()] {
        let mut ws = srv.ws().await;
        ws.send(&json!({"id": 1, "connect": {"token": bad}})).await;
        assert_eq!(ws.closed().await, Closed::Frame(3500, "invalid token".into()));
    }
    srv.shutdown().await;
}

#[tokio::test]
async fn ping_pong_keeps_the_connection_and_a_missing_pong_closes_3012() {
    let srv = start("[client]\nping_interval = \"600ms\"\npong_timeout = \"300ms\"").await;
    let (mut ws, connect) = srv.client("p").await;
    assert_eq!(connect["ping"], 1, "ping is reported in whole seconds, at least 1");
    // Answer two pings: still connected.
    for _ in 0..2 {
        assert_eq!(ws.next().await, Some(json!({})));
        ws.send(&json!({})).await;
    }
    ws.send(&json!({"id": 9, "ping": {}})).await;
    assert_eq!(ws.reply(9).await["id"], 9);
    // Stop answering.
    assert_eq!(ws.next().await, Some(json!({})));
    assert_eq!(ws.closed().await, Closed::Frame(3012, "no pong".into()));
    srv.shutdown().await;
}

#[tokio::test]
async fn unnecessary_pong_and_send_close_the_connection() {
    let srv = start("").await;
    let (mut ws, _) = srv.client("p").await;
    ws.send(&json!({})).await;
    assert_eq!(ws.closed().await, Closed::Frame(3501, "bad request".into()));
    let (mut ws, _) = srv.client("p").await;
    ws.send(&json!({"send": {"data": {}}})).await;
    assert_eq!(ws.closed().await, Closed::Frame(3508, "not available".into()));
    srv.shutdown().await;
}

#[tokio::test]
async fn stale_connection_is_closed_with_3502() {
    let srv = start("[client]\nstale_close_delay = \"300ms\"").await;
    let mut ws = srv.ws().await;
    assert_eq!(ws.closed().await, Closed::Frame(3502, "stale".into()));
    srv.shutdown().await;
}

#[tokio::test]
async fn unsubscribe_stops_delivery() {
    let srv = start("").await;
    let (mut ws, _) = srv.client("u").await;
    ws.subscribe(2, "news").await;
    ws.send(&json!({"id": 3, "unsubscribe": {"channel": "news"}})).await;
    assert_eq!(ws.reply(3).await, json!({"id": 3, "unsubscribe": {}}));
    srv.publish("news", json!(1)).await;
    ws.quiet_for(Duration::from_millis(200)).await;
    let (_, channels) = srv.api("channels", json!({})).await;
    assert_eq!(channels["result"]["channels"], json!({}), "the channel is dropped with its last subscriber");
    srv.shutdown().await;
}

#[tokio::test]
async fn graceful_shutdown_flushes_and_closes_every_client_with_3001() {
    let srv = start("").await;
    let (mut a, _) = srv.client("a").await;
    let (mut b, _) = srv.client("b").await;
    a.subscribe(2, "news").await;
    srv.publish("news", json!("last words")).await;
    let stop = tokio::spawn(srv.shutdown());
    assert_eq!(a.push("pub").await["pub"]["data"], "last words", "queued publications are flushed first");
    assert_eq!(a.closed().await, Closed::Frame(3001, "shutdown".into()));
    assert_eq!(b.closed().await, Closed::Frame(3001, "shutdown".into()));
    tokio::time::timeout(common::WAIT, stop).await.expect("shutdown finishes").expect("join");
}

#[tokio::test]
async fn a_client_close_is_answered_with_a_close_frame() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    let srv = start("").await;
    let (mut ws, _) = srv.client("bye").await;
    let frame = CloseFrame { code: CloseCode::Normal, reason: "bye".into() };
    ws.stream.send(Message::Close(Some(frame))).await.expect("send close");
    assert_eq!(ws.closed().await, Closed::Frame(1000, "bye".into()), "the server echoes the close");
    srv.shutdown().await;
}
