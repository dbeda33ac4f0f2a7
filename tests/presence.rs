//! Presence and join/leave, end to end over WebSocket and the server API.

mod common;

use std::time::Duration;

use common::{TestServer, start, token_with};
use serde_json::{Value, json};

const PRESENCE: &str = r#"
[[channel.namespaces]]
name = "room"
allow_subscribe_for_client = true
allow_presence_for_subscriber = true
presence = true
join_leave = true

[[channel.namespaces]]
name = "lobby"
allow_subscribe_for_client = true
presence = true
join_leave = true
force_push_join_leave = true
"#;

async fn server() -> TestServer {
    start(PRESENCE).await
}

/// Connects `user` with connection info.
async fn client(srv: &TestServer, user: &str) -> (common::Ws, String) {
    let mut ws = srv.ws().await;
    let t = token_with(&json!({"sub": user, "info": {"name": format!("{user}-name")}}));
    ws.send(&json!({"id": 1, "connect": {"token": t}})).await;
    let r = ws.reply(1).await;
    (ws, r["connect"]["client"].as_str().expect("client").to_owned())
}

/// Polls the presence API until `pred` holds (presence changes are applied as the
/// server processes the disconnect).
async fn wait_presence(srv: &TestServer, channel: &str, pred: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..100 {
        let (_, p) = srv.api("presence", json!({"channel": channel})).await;
        if pred(&p["result"]["presence"]) {
            return p["result"]["presence"].clone();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("presence of {channel} never matched");
}

#[tokio::test]
async fn presence_lists_subscribers_with_their_info_and_counts_users() {
    let srv = server().await;
    let (mut a, a_id) = client(&srv, "alice").await;
    let (mut b, b_id) = client(&srv, "bob").await;
    let (mut b2, b2_id) = client(&srv, "bob").await;
    for ws in [&mut a, &mut b, &mut b2] {
        assert!(ws.subscribe(2, "room:1").await["subscribe"].is_object());
    }
    a.send(&json!({"id": 3, "presence": {"channel": "room:1"}})).await;
    let p = a.reply(3).await["presence"]["presence"].clone();
    assert_eq!(p.as_object().map(|o| o.len()), Some(3));
    assert_eq!(p[&a_id], json!({"user": "alice", "client": a_id, "conn_info": {"name": "alice-name"}}));
    assert_eq!(p[&b2_id]["user"], "bob");
    a.send(&json!({"id": 4, "presence_stats": {"channel": "room:1"}})).await;
    assert_eq!(a.reply(4).await["presence_stats"], json!({"num_clients": 3, "num_users": 2}));
    let (_, stats) = srv.api("presence_stats", json!({"channel": "room:1"})).await;
    assert_eq!(stats["result"], json!({"num_clients": 3, "num_users": 2}));
    // Unsubscribing removes the entry.
    b.send(&json!({"id": 5, "unsubscribe": {"channel": "room:1"}})).await;
    b.reply(5).await;
    let p = wait_presence(&srv, "room:1", |p| p.as_object().is_some_and(|o| o.len() == 2)).await;
    assert!(p.get(&b_id).is_none());
    srv.shutdown().await;
}

#[tokio::test]
async fn presence_entry_vanishes_when_a_connection_dies_without_a_close() {
    let srv = server().await;
    let (mut a, a_id) = client(&srv, "alice").await;
    let (mut b, b_id) = client(&srv, "bob").await;
    a.send(&json!({"id": 2, "subscribe": {"channel": "room:2", "join_leave": true}})).await;
    a.reply(2).await;
    b.subscribe(2, "room:2").await;
    wait_presence(&srv, "room:2", |p| p.get(&b_id).is_some()).await;
    // Drop bob's TCP connection without a WebSocket close handshake.
    drop(b);
    let p = wait_presence(&srv, "room:2", |p| p.get(&b_id).is_none()).await;
    assert!(p.get(&a_id).is_some());
    // alice sees bob leave.
    let leave = a.push("leave").await;
    assert_eq!(leave["leave"]["info"]["user"], "bob");
    srv.shutdown().await;
}

#[tokio::test]
async fn join_and_leave_reach_subscribers_that_asked_or_all_when_forced() {
    let srv = server().await;
    // room: join_leave on, pushed only to subscribers asking for it (and allowed presence).
    let (mut watcher, _) = client(&srv, "watcher").await;
    watcher.send(&json!({"id": 2, "subscribe": {"channel": "room:3", "join_leave": true}})).await;
    watcher.reply(2).await;
    assert_eq!(watcher.push("join").await["join"]["info"]["user"], "watcher", "its own join comes first");
    let (mut quiet, _) = client(&srv, "quiet").await;
    quiet.subscribe(2, "room:3").await;
    let join = watcher.push("join").await;
    assert_eq!(join["channel"], "room:3");
    assert_eq!(join["join"]["info"]["user"], "quiet");
    assert_eq!(join["join"]["info"]["conn_info"], json!({"name": "quiet-name"}));
    let (mut other, _) = client(&srv, "other").await;
    other.subscribe(2, "room:3").await;
    assert_eq!(watcher.push("join").await["join"]["info"]["user"], "other");
    quiet.send(&json!({"id": 3, "unsubscribe": {"channel": "room:3"}})).await;
    quiet.reply(3).await;
    assert_eq!(watcher.push("leave").await["leave"]["info"]["user"], "quiet");
    // `other` did not ask: it got no join/leave pushes, only silence.
    other.quiet_for(Duration::from_millis(200)).await;

    // lobby: force_push_join_leave, everyone gets them.
    let (mut a, _) = client(&srv, "a").await;
    a.subscribe(2, "lobby:x").await;
    assert_eq!(a.push("join").await["join"]["info"]["user"], "a", "a subscriber sees its own join");
    let (mut b, _) = client(&srv, "b").await;
    b.subscribe(2, "lobby:x").await;
    assert_eq!(a.push("join").await["join"]["info"]["user"], "b");
    srv.shutdown().await;
}

#[tokio::test]
async fn presence_errors() {
    let srv = server().await;
    let (mut ws, _) = client(&srv, "u").await;
    // No presence in this namespace → 108 (client and API).
    ws.send(&json!({"id": 2, "presence": {"channel": "news"}})).await;
    assert_eq!(ws.reply(2).await["error"]["code"], 108);
    assert_eq!(srv.api("presence", json!({"channel": "news"})).await.1["error"]["code"], 108);
    assert_eq!(srv.api("presence_stats", json!({"channel": "nope:x"})).await.1["error"]["code"], 102);
    // Presence on for the namespace, but only for subscribers → 103 before subscribing.
    ws.send(&json!({"id": 3, "presence": {"channel": "room:9"}})).await;
    assert_eq!(ws.reply(3).await["error"]["code"], 103);
    srv.shutdown().await;
}
